//! `livepeer-gateway byoc-train`: submits a BYOC training job and follows it to the end with a
//! progress bar (stderr, on a terminal) and a line per state change, topping it up when asked.
//! The outcome goes to stdout: a summary, or with `--json` the final status as go's
//! orchestrator sends it (with `--no-wait`, the submitted job instead). Exit codes: 0 completed
//! (or submitted, with `--no-wait`), 1 failed, cancelled or refused, 2 bad options, 130 Ctrl-C,
//! which cancels the job on the orchestrator first.

use std::time::Duration;

use clap::Args;
use gateway_actors::{TrainingJob, TrainingRequest, WaitOptions};
use gateway_core::training::{TrainingState, TrainingStatus};

use crate::cli::{self, Progress};
use crate::network::{EmbeddedTweaks, Network, NetworkArgs};

/// Options of `byoc-train`.
#[derive(Debug, Args)]
pub struct ByocTrainArgs {
    /// Registered BYOC capability that trains.
    #[arg(long, default_value = "text-reversal")]
    pub capability: String,
    /// The model to train.
    #[arg(long, value_name = "ID")]
    pub model_id: String,
    /// Training parameters as a JSON object.
    #[arg(long, value_name = "JSON", value_parser = cli::parse_json_object)]
    pub params: Option<serde_json::Map<String, serde_json::Value>>,
    /// One parameter, `key=value` (value parsed as JSON when it is JSON, else a string);
    /// repeatable, applied over --params.
    #[arg(long = "param", value_name = "K=V", value_parser = cli::parse_param)]
    pub param: Vec<(String, serde_json::Value)>,
    /// Where the orchestrator may call back.
    #[arg(long, value_name = "URL")]
    pub callback_url: Option<String>,
    /// The job header's timeout_seconds (training itself may run up to 8 h).
    #[arg(long, value_name = "SECS", default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..))]
    pub timeout: u32,
    /// Highest acceptable price, wei per second.
    #[arg(long, value_name = "WEI")]
    pub max_price: Option<f64>,
    /// Seconds between status polls.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub poll_interval: f64,
    /// Give up waiting after this many seconds (the job runs on).
    #[arg(long, value_name = "SECS", default_value_t = 8.0 * 3600.0)]
    pub wait_timeout: f64,
    /// Top the job up whenever its balance falls below this many wei.
    #[arg(long, value_name = "WEI")]
    pub top_up_below: Option<f64>,
    /// Submit, print the job and return without waiting.
    #[arg(long)]
    pub no_wait: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub network: NetworkArgs,
}

fn positive_secs(name: &str, secs: f64) -> anyhow::Result<Duration> {
    if !(secs.is_finite() && secs > 0.0) {
        return Err(cli::UsageError(format!("{name} must be a positive number of seconds")).into());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Runs the command.
pub async fn run(args: ByocTrainArgs) -> anyhow::Result<()> {
    if args.model_id.is_empty() {
        return Err(cli::UsageError("--model-id must not be empty".into()).into());
    }
    if args.max_price.is_some_and(|p| !p.is_finite() || p < 0.0) {
        return Err(cli::UsageError("--max-price must be a non-negative number".into()).into());
    }
    let options = WaitOptions {
        poll_interval: positive_secs("--poll-interval", args.poll_interval)?,
        timeout: positive_secs("--wait-timeout", args.wait_timeout)?,
        top_up_below_wei: args.top_up_below,
    };
    let mut request = TrainingRequest::new(args.capability.clone(), args.model_id.clone());
    request.params = args.params.clone().unwrap_or_default();
    request.params.extend(args.param.iter().cloned());
    request.callback_url = args.callback_url.clone();
    request.timeout_seconds = args.timeout;
    request.max_price_wei_per_unit = args.max_price;

    let net = Network::connect(&args.network, EmbeddedTweaks::default()).await?;
    let result = train(&net, request, &options, &args).await;
    net.shutdown().await;
    result
}

async fn train(
    net: &Network,
    request: TrainingRequest,
    options: &WaitOptions,
    args: &ByocTrainArgs,
) -> anyhow::Result<()> {
    let job = cli::interruptible(net.gateway.submit_training(request)).await?;
    eprintln!("training job {} submitted to {}", job.job_id, job.orchestrator);
    if args.no_wait {
        if args.json {
            println!("{}", serde_json::json!({ "job_id": job.job_id, "orchestrator": job.orchestrator }));
        } else {
            println!("{} {}", job.job_id, job.orchestrator);
        }
        return Ok(());
    }
    let progress = Progress::new(Some(100));
    let mut last_state = None;
    let watched = cli::interruptible(job.wait(options, |s| {
        progress.update(s.progress.clamp(0, 100) as u64, describe(s));
        if last_state.as_ref() != Some(&s.state()) {
            progress.println(format!("{}: {}", job.job_id, describe(s)));
            last_state = Some(s.state());
        }
    }))
    .await;
    progress.finish();
    let status = match watched {
        Ok(s) => s,
        Err(e) if e.is::<cli::Interrupted>() => {
            cancel_on_interrupt(&job).await;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    report(&status, args.json);
    match status.state() {
        TrainingState::Completed => Ok(()),
        state if state.is_terminal() => anyhow::bail!(
            "training job {} ended {}{}",
            status.job_id,
            state.as_str(),
            status.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
        ),
        state => anyhow::bail!(
            "training job {} still {} after --wait-timeout; it runs on at {}",
            status.job_id,
            state.as_str(),
            job.orchestrator
        ),
    }
}

/// A user who stops a foreground training wants it stopped, not left charging.
async fn cancel_on_interrupt(job: &TrainingJob) {
    cli::cleanup("cancelling the training job", job.cancel()).await;
    eprintln!("training job {} cancelled", job.job_id);
}

fn describe(s: &TrainingStatus) -> String {
    let mut text = format!("{} {} %", s.status, s.progress);
    if !s.cost.is_empty() && s.cost != "0" {
        text.push_str(&format!(", cost {} wei", s.cost));
    }
    if !s.balance.is_empty() {
        text.push_str(&format!(", balance {} wei", s.balance));
    }
    text
}

fn report(s: &TrainingStatus, json: bool) {
    if json {
        println!("{}", serde_json::to_string(s).unwrap_or_default());
        return;
    }
    println!("{}: {}", s.job_id, describe(s));
    if let Some(url) = s.lora_url() {
        println!("lora: {url}");
    }
    if let Some(e) = &s.error {
        println!("error: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_parse_as_json_or_text() {
        assert_eq!(cli::parse_param("steps=100").unwrap(), ("steps".into(), 100.into()));
        assert_eq!(cli::parse_param("name=cat").unwrap(), ("name".into(), "cat".into()));
        assert_eq!(cli::parse_param("flag=true").unwrap(), ("flag".into(), true.into()));
        assert!(cli::parse_param("novalue").is_err());
        assert!(cli::parse_param("=x").is_err());
    }
}
