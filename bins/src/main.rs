//! `livepeer-gateway`: the command line of livepeer-gateway-rs.
//!
//! Argument parsing, output formatting and progress only; the protocol lives in the library
//! crates. Exit codes: 0 success, 1 the job failed, 2 bad arguments, 130 Ctrl-C.
//!
//! Job subcommands take the network flags of [`network::NetworkArgs`]; without any of
//! `--orchestrator`, `--signer`, `--discovery` or `--token` they run against the embedded local
//! network, so each works out of the box.

mod audio_input;
mod audio_output;
mod byoc_request;
mod byoc_text_reversal;
mod byoc_train;
mod byoc_update;
mod byoc_write_frames;
mod byoc_write_text;
mod call_runner;
mod cli;
mod demo;
mod frames;
mod local_network;
mod network;
mod orchestrator_info;
mod output;
mod payments;
mod runners;
mod scope;
mod select;
mod serve;
mod serve_runner;
mod subscribe_events;
mod swaps;
mod trickle;
mod ts_input;
mod write_control;
mod write_frames;

use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgAction, Parser, Subcommand};
use gateway_core::capabilities::CapabilityQuery;

/// After Ctrl-C, how long a command may take to stop its job and network before it is abandoned.
const STOP_GRACE: Duration = Duration::from_secs(15);

#[derive(Debug, Parser)]
#[command(name = "livepeer-gateway", version, about = "Send live video and AI jobs to the Livepeer network")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a BYOC text-reversal job and a live video job against the embedded local network.
    Demo(demo::DemoArgs),
    /// Run the local Livepeer network (orchestrators, signer, trickle) until Ctrl-C.
    LocalNetwork(local_network::LocalNetworkArgs),
    /// Parse pipeline/model capability queries and print what GetOrchestrator would ask for.
    Capabilities {
        /// Queries like byoc/text-reversal; comma-delimited and/or repeated.
        #[arg(required = true, action = ArgAction::Append, value_delimiter = ',', value_parser = cli::parse_capability)]
        queries: Vec<CapabilityQuery>,
    },
    /// Ask orchestrators what they offer: capabilities, capacity, prices, ticket parameters.
    GetOrchestratorInfo(orchestrator_info::OrchestratorInfoArgs),
    /// Select orchestrators for a job and print the ranking and every rejection.
    SelectOrchestrator(select::SelectArgs),
    /// Send one single-shot BYOC request (/process/request) and stream its answer.
    ByocRequest(byoc_request::ByocRequestArgs),
    /// List the live runners orchestrators serve (GET /discovery), by app and GPU.
    Runners(runners::RunnersArgs),
    /// Call a live runner's app once (paid per call), streaming its answer.
    CallRunner(call_runner::CallRunnerArgs),
    /// Start a Scope job through a live runner and follow its events.
    Scope(scope::ScopeArgs),
    /// Serve a sample live-runner app and register it with an orchestrator (a Rust runner).
    ServeRunner(serve_runner::ServeRunnerArgs),
    /// Run a gateway node other programs call over HTTP (go-livepeer's BYOC gateway routes).
    #[command(args_override_self = true)]
    Serve(serve::ServeArgs),
    /// Submit a BYOC training job and follow it to the end (progress, top-ups, outcome).
    ByocTrain(byoc_train::ByocTrainArgs),
    /// Send new parameters to a running BYOC stream by its id (/ai/stream/update).
    ByocUpdate(byoc_update::ByocUpdateArgs),
    /// Send one text to a BYOC text-reversal job and print the reply.
    ByocTextReversal(byoc_text_reversal::TextReversalArgs),
    /// Stream text lines (stdin or --text) to a BYOC job and print each reply.
    ByocWriteText(byoc_write_text::WriteTextArgs),
    /// Publish the test pattern to a live video-to-video (LV2V) job (H.264).
    WriteFrames(write_frames::WriteFramesArgs),
    /// Publish the test pattern to a BYOC stream job (H.264 or AV1).
    ByocWriteFrames(byoc_write_frames::ByocWriteFramesArgs),
    /// Start an LV2V job and print its events.
    SubscribeEvents(subscribe_events::SubscribeEventsArgs),
    /// Start an LV2V job and write control messages to it.
    WriteControl(write_control::WriteControlArgs),
    /// Start an LV2V job and watch its payments for a while.
    Payments(payments::PaymentsArgs),
    /// Publish to or subscribe to any trickle channel (a curl for trickle).
    #[command(subcommand)]
    Trickle(trickle::TrickleCommand),
}

/// `serve`'s long option names (what its `--config` file may set).
fn serve_options() -> std::collections::HashSet<String> {
    let command = <serve::ServeArgs as clap::Args>::augment_args(clap::Command::new("serve"));
    command.get_arguments().filter_map(|a| a.get_long()).map(str::to_owned).collect()
}

fn init_tracing() {
    // Re-pins are told once per orchestrator by the command itself (`network::repin_notice`),
    // so the library's log line of the same event is off unless RUST_LOG asks for it; so is the
    // platform verifier's, whose refusals reach the user as the orchestrator's typed error.
    let default = format!("warn,{}=off,rustls_platform_verifier=off", gateway_actors::tls::REPIN_LOG_TARGET);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // One JSON object per line for log collectors (`serve` in a cluster, say).
    if cli::json_logs() {
        logs.json().init();
    } else {
        logs.init();
    }
}

fn main() -> ExitCode {
    init_tracing();
    let cli = match serve::config::expand(std::env::args_os().collect(), &serve_options()) {
        Ok(args) => Cli::parse_from(args),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime(&cli.command) {
        Ok(runtime) => runtime.block_on(run_cli(cli)),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::from(1)
        }
    }
}

/// The process's runtime: multi-threaded, one worker per core (or `TOKIO_WORKER_THREADS`)
/// unless `serve --threads` says how many.
fn runtime(command: &Command) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Command::Serve(serve::ServeArgs { threads: Some(n), .. }) = command {
        builder.worker_threads(usize::from(*n));
    }
    builder.build()
}

async fn run_cli(cli: Cli) -> ExitCode {
    cli::install_ctrl_c_handler();
    let command = run(cli.command);
    // Commands stop their jobs themselves on Ctrl-C; this only bounds how long that may take.
    let result = tokio::select! {
        r = command => r,
        _ = async { cli::interrupted().await; tokio::time::sleep(STOP_GRACE).await } => Err(cli::Interrupted.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<cli::Interrupted>() => ExitCode::from(130),
        Err(e) if e.is::<cli::UsageError>() => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Demo(args) => demo::run(args).await,
        Command::LocalNetwork(args) => local_network::run(args).await,
        Command::Capabilities { queries } => print_capabilities(queries),
        Command::GetOrchestratorInfo(args) => orchestrator_info::run(args).await,
        Command::SelectOrchestrator(args) => select::run(args).await,
        Command::ByocRequest(args) => byoc_request::run(args).await,
        Command::ByocTrain(args) => byoc_train::run(args).await,
        Command::Runners(args) => runners::run(args).await,
        Command::CallRunner(args) => call_runner::run(args).await,
        Command::Scope(args) => scope::run(args).await,
        Command::ServeRunner(args) => serve_runner::run(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::ByocUpdate(args) => byoc_update::run(args).await,
        Command::ByocTextReversal(args) => byoc_text_reversal::run(args).await,
        Command::ByocWriteText(args) => byoc_write_text::run(args).await,
        Command::WriteFrames(args) => write_frames::run(args).await,
        Command::ByocWriteFrames(args) => byoc_write_frames::run(args).await,
        Command::SubscribeEvents(args) => subscribe_events::run(args).await,
        Command::WriteControl(args) => write_control::run(args).await,
        Command::Payments(args) => payments::run(args).await,
        Command::Trickle(command) => trickle::run(command).await,
    }
}

fn print_capabilities(mut queries: Vec<CapabilityQuery>) -> anyhow::Result<()> {
    let mut seen = std::collections::HashSet::new();
    queries.retain(|q| seen.insert(q.clone()));
    let caps = gateway_core::capabilities::build_capabilities(&queries);
    for q in &queries {
        println!("{q}\t{} \tmodel {}", q.capability, q.model);
    }
    println!("capacities: {:?}", caps.capacities);
    Ok(())
}
