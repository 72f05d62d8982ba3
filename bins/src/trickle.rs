//! `livepeer-gateway trickle publish|subscribe`: a curl for trickle channels, usable against any
//! trickle server (an orchestrator's `/ai/trickle/{channel}`, the local network's).
//!
//! `publish` cuts stdin into segments (by size or by time) and posts them; at the end of input it
//! deletes the channel, which tells subscribers the stream ended (`--keep-open` leaves it for
//! late readers). `subscribe` writes segments to stdout, or one file per segment into a folder.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, Subcommand};
use gateway_actors::http::HttpClients;
use gateway_actors::tls::OrchestratorTrust;
use gateway_actors::trickle::{
    EndReason, PublisherConfig, SegmentSink, SubscriberConfig, TricklePublisher, TrickleSubscriber,
};
use gateway_core::error::redact_url;
use gateway_core::trickle::SeqSpec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cli::{self, human_bytes, Progress};

/// `trickle` subcommands.
#[derive(Debug, Subcommand)]
pub enum TrickleCommand {
    /// Publish stdin to a channel, cut into segments.
    Publish(PublishArgs),
    /// Read a channel's segments to stdout or into a folder.
    Subscribe(SubscribeArgs),
}

/// Options shared by both directions.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// The channel URL, e.g. https://host:8935/ai/trickle/my-channel.
    pub url: String,
    /// Accept any server certificate (otherwise the first one seen is pinned for this run).
    #[arg(long)]
    pub insecure: bool,
}

impl ConnectArgs {
    fn client(&self) -> anyhow::Result<reqwest::Client> {
        let parsed = url::Url::parse(&self.url)
            .map_err(|e| cli::UsageError(format!("invalid channel URL {}: {e}", redact_url(&self.url))))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(cli::UsageError("the channel URL must start with http:// or https://".into()).into());
        }
        let trust = if self.insecure { OrchestratorTrust::Insecure } else { OrchestratorTrust::default() };
        Ok(HttpClients::new(trust)?.orchestrator(&self.url)?)
    }
}

/// Options of `trickle publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Cut a segment every N bytes (default 1 MiB).
    #[arg(long, value_name = "N", conflicts_with = "segment_ms", value_parser = clap::value_parser!(u64).range(1..))]
    pub segment_bytes: Option<u64>,
    /// Cut a segment every N milliseconds of wall-clock time instead (for live input).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub segment_ms: Option<u64>,
    /// Content type of the segments.
    #[arg(long, value_name = "TYPE", default_value = "application/octet-stream")]
    pub mime: String,
    /// At the end of input, leave the channel open instead of deleting it.
    #[arg(long)]
    pub keep_open: bool,
}

/// Options of `trickle subscribe`.
#[derive(Debug, Args)]
pub struct SubscribeArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Where to start: -1 the next segment, -2 the one being written now, N that index.
    #[arg(long, default_value = "-1", allow_negative_numbers = true, value_parser = parse_seq)]
    pub start: SeqSpec,
    /// Stop after this many segments (0: until the channel ends).
    #[arg(long, default_value_t = 0)]
    pub count: u64,
    /// `-` writes the bytes to stdout; a folder gets one file per segment, named by its index.
    #[arg(long, value_name = "-|DIR", default_value = "-")]
    pub output: String,
}

fn parse_seq(s: &str) -> Result<SeqSpec, String> {
    s.parse::<SeqSpec>().map_err(|e| e.to_string())
}

/// Runs a `trickle` subcommand.
pub async fn run(command: TrickleCommand) -> anyhow::Result<()> {
    match command {
        TrickleCommand::Publish(args) => publish(args).await,
        TrickleCommand::Subscribe(args) => subscribe(args).await,
    }
}

const DEFAULT_SEGMENT_BYTES: u64 = 1024 * 1024;
const READ_CHUNK: usize = 64 * 1024;

async fn publish(args: PublishArgs) -> anyhow::Result<()> {
    let http = args.connect.client()?;
    let config = PublisherConfig { mime: args.mime.clone(), ..Default::default() };
    let mut publisher = cli::interruptible(async {
        anyhow::Ok(TricklePublisher::start(http, &args.connect.url, config).await)
    })
    .await?;
    let cut_bytes = args.segment_bytes.unwrap_or(DEFAULT_SEGMENT_BYTES);
    let cut_after = args.segment_ms.map(Duration::from_millis);

    // stdin is read on its own task so the time-based cut can fire while a read waits.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        loop {
            let mut buf = vec![0u8; READ_CHUNK];
            let read = stdin.read(&mut buf).await;
            let done = matches!(read, Ok(0) | Err(_));
            let item = read.map(|n| {
                buf.truncate(n);
                Bytes::from(buf)
            });
            if tx.send(item).await.is_err() || done {
                return;
            }
        }
    });

    let progress = Progress::new(None);
    let (mut segments, mut bytes, mut failed) = (0u64, 0u64, 0u64);
    let mut first_seq = None;
    let outcome = cli::interruptible(async {
        let mut open: Option<(SegmentSink, tokio::time::Instant)> = None;
        loop {
            let cut_at = open.as_ref().and_then(|(_, opened)| cut_after.map(|d| *opened + d));
            let item = tokio::select! {
                item = rx.recv() => item,
                _ = sleep_until(cut_at) => {
                    let (sink, _) = open.take().expect("a cut time implies an open segment");
                    close_segment(sink, &mut segments, &mut failed).await;
                    continue;
                }
            };
            let mut chunk = match item {
                Some(Ok(c)) if c.is_empty() => break,
                Some(Ok(c)) => c,
                Some(Err(e)) => anyhow::bail!("reading stdin: {e}"),
                None => break,
            };
            while !chunk.is_empty() {
                if open.is_none() {
                    let sink = publisher.next_segment()?;
                    first_seq.get_or_insert(sink.seq());
                    open = Some((sink, tokio::time::Instant::now()));
                }
                let (sink, _) = open.as_mut().expect("opened above");
                // With size cuts, a chunk may straddle two segments.
                let room =
                    if cut_after.is_some() { chunk.len() as u64 } else { cut_bytes - sink.bytes_written() };
                let part = chunk.split_to((room as usize).min(chunk.len()));
                bytes += part.len() as u64;
                if let Err(e) = sink.write(part).await {
                    tracing::debug!(error = %e, "segment write failed");
                }
                if cut_after.is_none() && sink.bytes_written() >= cut_bytes {
                    let (sink, _) = open.take().expect("open");
                    close_segment(sink, &mut segments, &mut failed).await;
                }
            }
            progress.update(
                segments,
                format!("{segments} segments, {} ({})", human_bytes(bytes), progress.rate(bytes)),
            );
        }
        if let Some((sink, _)) = open.take() {
            close_segment(sink, &mut segments, &mut failed).await;
        }
        anyhow::Ok(())
    })
    .await;
    progress.finish();
    let terminal = publisher.terminal_error();
    if !args.keep_open {
        publisher.close().await;
    }
    outcome?;
    let range = match first_seq {
        Some(first) => format!(" (segments {first}..{})", first + segments + failed - 1),
        None => String::new(),
    };
    eprintln!(
        "published {segments} segment(s) / {} to {}{range}{}",
        human_bytes(bytes),
        redact_url(&args.connect.url),
        if failed > 0 { format!(", {failed} failed") } else { String::new() }
    );
    if let Some(e) = terminal {
        anyhow::bail!("the publisher gave up: {e}");
    }
    if failed > 0 {
        anyhow::bail!("{failed} segment(s) failed");
    }
    Ok(())
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn close_segment(sink: SegmentSink, completed: &mut u64, failed: &mut u64) {
    let seq = sink.seq();
    match sink.finish().await {
        Ok(()) => *completed += 1,
        Err(e) => {
            eprintln!("warning: segment {seq} failed: {e}");
            *failed += 1;
        }
    }
}

async fn subscribe(args: SubscribeArgs) -> anyhow::Result<()> {
    let http = args.connect.client()?;
    let dir = (args.output != "-").then(|| PathBuf::from(&args.output));
    if let Some(dir) = &dir {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    let config = SubscriberConfig { start: args.start, ..Default::default() };
    let mut subscriber = TrickleSubscriber::new(http, &args.connect.url, config);
    let progress = Progress::new(None);
    let (mut segments, mut bytes) = (0u64, 0u64);
    let mut stdout = tokio::io::stdout();
    let outcome = cli::interruptible(async {
        while args.count == 0 || segments < args.count {
            let Some(mut segment) = subscriber.next_segment().await? else { break };
            let seq = segment.seq();
            let mut file = match &dir {
                Some(dir) => Some(create_segment_file(dir, seq, segment.content_type()).await?),
                None => None,
            };
            while let Some(chunk) = segment.chunk().await? {
                bytes += chunk.len() as u64;
                match file.as_mut() {
                    Some(f) => f.write_all(&chunk).await?,
                    None => stdout.write_all(&chunk).await?,
                }
            }
            match file.as_mut() {
                Some(f) => f.flush().await?,
                None => stdout.flush().await?,
            }
            segments += 1;
            progress.update(
                segments,
                format!("{segments} segments, {} ({})", human_bytes(bytes), progress.rate(bytes)),
            );
        }
        anyhow::Ok(())
    })
    .await;
    progress.finish();
    let end_reason = subscriber.end_reason();
    subscriber.close();
    outcome?;
    let url = redact_url(&args.connect.url);
    if segments == 0 && end_reason == Some(EndReason::NotFound) {
        anyhow::bail!("channel {url} not found");
    }
    let end = match end_reason {
        Some(EndReason::Closed) => "; the channel was closed",
        Some(EndReason::NotFound) => "; the channel is gone",
        None => "",
    };
    eprintln!("received {segments} segment(s) / {} from {url}{end}", human_bytes(bytes));
    Ok(())
}

async fn create_segment_file(
    dir: &Path,
    seq: i64,
    content_type: Option<&str>,
) -> anyhow::Result<tokio::fs::File> {
    let ext = match content_type.unwrap_or_default() {
        t if t.eq_ignore_ascii_case(gateway_core::trickle::MIME_MPEGTS) => "ts",
        t if t.eq_ignore_ascii_case(gateway_core::trickle::MIME_IVF) => "ivf",
        t if t.starts_with("application/json") => "json",
        t if t.starts_with("text/") => "txt",
        _ => "bin",
    };
    let path = dir.join(format!("{seq}.{ext}"));
    tokio::fs::File::create(&path).await.map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))
}
