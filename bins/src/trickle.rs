//! `livepeer-gateway trickle publish|subscribe`: a curl for trickle channels, usable against any
//! trickle server (an orchestrator's `/ai/trickle/{channel}`, the local network's).
//!
//! `publish` cuts stdin into segments (by size or by time) and posts them through the library's
//! [`SegmentedPublisher`]: a failed segment drops the rest of its piece of input and the next
//! piece goes on in the next segment, and only confirmed bytes count as published. Once the
//! publisher gives up it stops reading stdin. At the end of input it deletes the channel, which
//! tells subscribers the stream ended (`--keep-open` leaves it for late readers). `subscribe`
//! writes segments to stdout, or one file per segment into a folder.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use gateway_actors::http::HttpClients;
use gateway_actors::tls::OrchestratorTrust;
use gateway_actors::trickle::{
    BehindWindow, EndReason, PublisherConfig, SegmentedPublisher, SubscriberConfig, SubscriberNotice,
    TricklePublisher, TrickleSubscriber,
};
use gateway_core::error::{redact_url, TrickleError};
use gateway_core::trickle::{SeqSpec, MIME_MPEGTS, SERVER_RING_SIZE};
use gateway_media::ts::cutter::{CutError, TsCutter, TsCutterConfig};
use gateway_media::SegmentEvent;
use tokio::io::AsyncWriteExt;

use crate::cli::{self, human_bytes, MediaPacer, Progress, PACED_STEP};

/// `trickle` subcommands.
#[derive(Debug, Subcommand)]
pub enum TrickleCommand {
    /// Publish stdin to a channel, cut into segments.
    ///
    /// A segment that fails (stall, dropped connection, error status) is reported and the rest
    /// of its input dropped; the next cut goes on in the next segment. The summary counts only
    /// confirmed segments and bytes. Exit code 1 if a segment failed, or once the publisher gave
    /// up (channel gone or closed, 3 failures in a row), which also stops reading stdin.
    Publish(PublishArgs),
    /// Read a channel's segments to stdout or into a folder.
    ///
    /// A server keeps only the last few segments: a reader that falls out of that window skips
    /// to the live edge, with a warning on stderr and the count in the summary, unless
    /// --strict-window makes it an error (exit code 1), as go-livepeer's subscriber does. A
    /// --start index ahead of the live edge is waited for, --ahead-timeout seconds at most.
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
    fn clients(&self) -> anyhow::Result<HttpClients> {
        let parsed = url::Url::parse(&self.url)
            .map_err(|e| cli::UsageError(format!("invalid channel URL {}: {e}", redact_url(&self.url))))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(cli::UsageError("the channel URL must start with http:// or https://".into()).into());
        }
        let trust = if self.insecure { OrchestratorTrust::Insecure } else { OrchestratorTrust::default() };
        Ok(HttpClients::new(trust)?)
    }

    /// The client `trickle publish` posts with.
    fn publish_client(&self) -> anyhow::Result<reqwest::Client> {
        Ok(self.clients()?.orchestrator(&self.url)?)
    }
}

/// Options of `trickle publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Cut a segment every N bytes (default 1 MiB).
    #[arg(long, value_name = "N", conflicts_with_all = ["segment_ms", "keyframes"], value_parser = clap::value_parser!(u64).range(1..))]
    pub segment_bytes: Option<u64>,
    /// Cut a segment every N milliseconds of wall-clock time instead (for live input).
    #[arg(long, value_name = "N", conflicts_with = "keyframes", value_parser = clap::value_parser!(u64).range(1..))]
    pub segment_ms: Option<u64>,
    /// The input is MPEG-TS: cut it on its video keyframes, at least `--min-segment-ms` apart,
    /// each segment starting with the PAT and PMT (no re-encoding); the mime type becomes
    /// MPEG-TS unless `--mime` says otherwise.
    #[arg(long)]
    pub keyframes: bool,
    /// With `--keyframes`: the shortest segment, in milliseconds of media time.
    #[arg(long, value_name = "N", default_value_t = 1000, requires = "keyframes")]
    pub min_segment_ms: u64,
    /// With `--keyframes`: publish at the stream's own pace (its timestamps), as a live source
    /// would, instead of as fast as the server takes it (for files).
    #[arg(long, requires = "keyframes")]
    pub pace: bool,
    /// Content type of the segments.
    #[arg(long, value_name = "TYPE")]
    pub mime: Option<String>,
    /// At the end of input, leave the channel open instead of deleting it.
    #[arg(long)]
    pub keep_open: bool,
    /// Exit 0 even when segments failed or the publisher gave up before the input ended; the
    /// summary still says what was not published.
    #[arg(long)]
    pub allow_partial: bool,
}

/// Options of `trickle subscribe`.
#[derive(Debug, Args)]
pub struct SubscribeArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Where to start: -1 the next segment, -2 the one being written now, N that index.
    #[arg(
        long,
        value_name = "-1|-2|N",
        default_value = "-1",
        allow_negative_numbers = true,
        value_parser = parse_start
    )]
    pub start: SeqSpec,
    /// Stop after this many segments (0: until the channel ends).
    #[arg(long, default_value_t = 0)]
    pub count: u64,
    /// `-` writes the bytes to stdout; a folder gets one file per segment, named by its index.
    #[arg(long, value_name = "-|DIR", default_value = "-")]
    pub output: String,
    /// Fail (exit code 1) when the next segment has fallen out of the server's window, instead
    /// of skipping to the live edge (go-livepeer's subscriber behaviour).
    #[arg(long)]
    pub strict_window: bool,
    /// Seconds to wait for a --start index ahead of the live edge before failing (0: fail at
    /// once, as go-livepeer's subscriber does).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub ahead_timeout: u64,
    /// Exit 0 even when the channel ended before --count segments; the summary still says how
    /// many arrived.
    #[arg(long)]
    pub allow_partial: bool,
}

/// Parses `--start`: `-1`, `-2` or an index, with a message that says so.
fn parse_start(s: &str) -> Result<SeqSpec, String> {
    s.trim().parse::<i64>().ok().and_then(SeqSpec::from_wire).ok_or_else(|| {
        "must be -1 (the next segment), -2 (the segment being written now) or a segment index, 0 or above"
            .to_owned()
    })
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
    let http = args.connect.publish_client()?;
    let default_mime = if args.keyframes { MIME_MPEGTS } else { "application/octet-stream" };
    let mime = args.mime.clone().unwrap_or_else(|| default_mime.to_owned());
    let config = PublisherConfig { mime, ..Default::default() };
    let mut cutter = args
        .keyframes
        .then(|| TsCutter::new(TsCutterConfig { min_duration: Duration::from_millis(args.min_segment_ms) }));
    let mut pacer = MediaPacer::default();
    let publisher = cli::interruptible(async {
        anyhow::Ok(TricklePublisher::start(http, &args.connect.url, config).await)
    })
    .await?;
    let first_seq = publisher.next_seq();
    let mut stream = SegmentedPublisher::new(publisher);
    let cut_bytes = args.segment_bytes.unwrap_or(DEFAULT_SEGMENT_BYTES);
    let cut_after = args.segment_ms.map(Duration::from_millis);
    let mut input = cli::read_on_thread(Box::new(std::io::stdin()), READ_CHUNK);

    let progress = Progress::new(None);
    let outcome = cli::interruptible(async {
        // When the current piece started (for cuts by time).
        let mut piece_started: Option<tokio::time::Instant> = None;
        loop {
            let cut_at = piece_started.and_then(|at| cut_after.map(|d| at + d));
            let item = tokio::select! {
                item = input.recv() => item,
                _ = sleep_until(cut_at) => {
                    piece_started = None;
                    settle(stream.cut().await, &progress)?;
                    continue;
                }
            };
            let mut chunk = match item {
                Some(Ok(c)) => c,
                Some(Err(e)) => anyhow::bail!("reading stdin: {e}"),
                None => break,
            };
            if let Some(cutter) = cutter.as_mut() {
                // Paced in small steps, so the stream's clock is followed closely.
                let step = if args.pace { PACED_STEP } else { chunk.len().max(1) };
                for part in chunk.chunks(step) {
                    let events = cutter.push(part).map_err(|e| input_error(e, &stream))?;
                    publish_cut(events, &mut stream, &progress).await?;
                    if args.pace {
                        pacer.wait(cutter.clock()).await;
                    }
                }
                chunk.clear();
            }
            while !chunk.is_empty() {
                piece_started.get_or_insert_with(tokio::time::Instant::now);
                // With size cuts, a chunk may straddle two pieces.
                let room =
                    if cut_after.is_some() { chunk.len() as u64 } else { cut_bytes - stream.piece_bytes() };
                let part = chunk.split_to((room as usize).min(chunk.len()));
                settle(stream.write(part).await, &progress)?;
                if cut_after.is_none() && stream.piece_bytes() >= cut_bytes {
                    piece_started = None;
                    settle(stream.cut().await, &progress)?;
                }
            }
            let t = stream.totals();
            progress.update(
                t.segments_published,
                format!(
                    "{} segments, {} ({})",
                    t.segments_published,
                    human_bytes(t.bytes_published),
                    progress.rate(t.bytes_in)
                ),
            );
        }
        if let Some(cutter) = cutter.as_mut() {
            let events = cutter.finish().map_err(|e| input_error(e, &stream))?;
            publish_cut(events, &mut stream, &progress).await?;
        }
        settle(stream.cut().await, &progress)
    })
    .await;
    progress.finish();
    if let Some(c) = &cutter {
        let c = c.stats();
        if c.bytes_before_first_keyframe > 0 {
            eprintln!(
                "note: {} before the first keyframe not published (segments start at a keyframe)",
                human_bytes(c.bytes_before_first_keyframe)
            );
        }
    }
    let totals = stream.totals();
    let started = stream.publisher().stats().segments_started;
    // An unfinished segment (Ctrl-C) is abandoned: deleted, never completed short.
    let publisher = stream.into_publisher();
    if !args.keep_open {
        publisher.close().await;
    }
    let range = match started {
        0 => String::new(),
        n => format!(" (segments {first_seq}..{})", first_seq + n - 1),
    };
    let failed = match (totals.segments_failed, totals.bytes_drained) {
        (0, 0) => String::new(),
        (n, drained) => format!("; {n} failed, {} not published", human_bytes(drained)),
    };
    eprintln!(
        "published {} segment(s) / {} to {}{range}{failed}",
        totals.segments_published,
        human_bytes(totals.bytes_published),
        redact_url(&args.connect.url),
    );
    let shortfall = match outcome {
        Err(e) if e.is::<PublisherGaveUp>() => Some(e.to_string()),
        Err(e) => return Err(e),
        Ok(()) if totals.segments_failed > 0 => Some(format!(
            "{} segment(s) failed: {} not published",
            totals.segments_failed,
            human_bytes(totals.bytes_drained)
        )),
        Ok(()) => None,
    };
    cli::verdict(shortfall, args.allow_partial)
}

/// Publishes what the TS cutter gave: its chunks into the open piece, a cut at each segment's
/// end.
async fn publish_cut(
    events: Vec<SegmentEvent>,
    stream: &mut SegmentedPublisher,
    progress: &Progress,
) -> anyhow::Result<()> {
    for event in events {
        match event {
            SegmentEvent::SegmentStart { .. } => {}
            SegmentEvent::Chunk(bytes) => settle(stream.write(bytes).await, progress)?,
            SegmentEvent::SegmentEnd(_) => settle(stream.cut().await, progress)?,
        }
    }
    Ok(())
}

/// Input `--keyframes` cannot cut: a usage error (exit 2) while nothing was published, else a
/// failure (exit 1) after what was.
fn input_error(e: CutError, stream: &SegmentedPublisher) -> anyhow::Error {
    let what = format!("the input cannot be cut on keyframes: {e}");
    match stream.totals().bytes_in {
        0 => cli::UsageError(what).into(),
        _ => anyhow::anyhow!(what),
    }
}

/// The publisher stopped for good (the channel is gone or closed, or too many segments failed
/// in a row): `trickle publish` stops reading its input and exits with 1.
#[derive(Debug)]
struct PublisherGaveUp(TrickleError);

impl std::fmt::Display for PublisherGaveUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let why = match &self.0 {
            TrickleError::ChannelNotFound { .. } => "the channel is gone (HTTP 404)".to_owned(),
            TrickleError::EndOfStream => "the server closed the channel".to_owned(),
            TrickleError::Terminal { consecutive_failures } => {
                format!("{consecutive_failures} segments failed in a row")
            }
            other => other.to_string(),
        };
        write!(f, "the publisher gave up: {why}; stopped reading the input")
    }
}

impl std::error::Error for PublisherGaveUp {}

/// What a segment's failure means for the command: a terminal one stops it; any other is
/// reported (the rest of that segment's input is dropped) and publishing goes on.
fn settle(result: Result<(), TrickleError>, progress: &Progress) -> anyhow::Result<()> {
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.is_terminal() => Err(PublisherGaveUp(e).into()),
        Err(e) => {
            progress.println(format!(
                "warning: {e}; the rest of its input is dropped, publishing goes on with the next segment"
            ));
            Ok(())
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn subscribe(args: SubscribeArgs) -> anyhow::Result<()> {
    let http = args.connect.clients()?.segment_reader();
    let dir = (args.output != "-").then(|| PathBuf::from(&args.output));
    if let Some(dir) = &dir {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    let config = SubscriberConfig {
        start: args.start,
        behind_window: if args.strict_window { BehindWindow::Fail } else { BehindWindow::Skip },
        ahead_timeout: Duration::from_secs(args.ahead_timeout),
        ..Default::default()
    };
    let mut subscriber = TrickleSubscriber::new(http, &args.connect.url, config);
    let progress = Progress::new(None);
    let notices = tokio::spawn(print_notices(subscriber.notices(), progress.clone()));
    let (mut segments, mut bytes) = (0u64, 0u64);
    let mut stdout = tokio::io::stdout();
    let outcome = cli::interruptible(async {
        while args.count == 0 || segments < args.count {
            let Some(mut segment) = subscriber.next_segment().await.map_err(subscribe_error)? else { break };
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
    let end_reason = subscriber.end_reason();
    let skipped = subscriber.stats().segments_skipped;
    drop(subscriber); // ends the notices, so every one is printed before the summary
    let _ = notices.await;
    progress.finish();
    let url = redact_url(&args.connect.url);
    if outcome.is_ok() && segments == 0 && end_reason == Some(EndReason::NotFound) {
        anyhow::bail!("channel {url} not found");
    }
    let skipped_note = match skipped {
        0 => String::new(),
        n => format!("; skipped {n} segment(s) that fell out of the server's window"),
    };
    let end = match end_reason {
        Some(EndReason::Closed) => "; the channel was closed",
        Some(EndReason::NotFound) => "; the channel is gone",
        None => "",
    };
    eprintln!("received {segments} segment(s) / {} from {url}{skipped_note}{end}", human_bytes(bytes));
    outcome?;
    // Skipping to the live edge is the chosen window policy (warned about, --strict-window
    // fails instead); ending short of --count is not what was asked.
    let shortfall = (args.count > 0 && segments < args.count)
        .then(|| format!("the channel ended after {segments} of {} segment(s)", args.count));
    cli::verdict(shortfall, args.allow_partial)
}

/// Prints the subscriber's notices (waiting ahead of the live edge, skipped segments) as
/// warnings, until the subscriber is dropped.
async fn print_notices(
    mut notices: tokio::sync::mpsc::UnboundedReceiver<SubscriberNotice>,
    progress: Progress,
) {
    while let Some(notice) = notices.recv().await {
        let line = match notice {
            SubscriberNotice::WaitingAhead { requested, latest, timeout } => {
                let at = latest.map_or_else(|| "an unknown index".to_owned(), |l| l.to_string());
                format!(
                    "segment {requested} is ahead of the live edge (the server is at {at}): \
                     waiting up to {} s for it (--ahead-timeout)",
                    timeout.as_secs()
                )
            }
            SubscriberNotice::Skipped { first, last } => {
                let which = if first == last {
                    format!("segment {first}")
                } else {
                    format!("segments {first}..{last}")
                };
                format!(
                    "warning: {which} fell out of the server's window (it keeps the last \
                     {SERVER_RING_SIZE}): skipped to {} (--strict-window fails instead)",
                    last.saturating_add(1)
                )
            }
        };
        progress.println(line);
    }
}

/// Says what to do about the subscriber errors a user can act on.
fn subscribe_error(e: TrickleError) -> anyhow::Error {
    let what = match &e {
        TrickleError::FellBehind { .. } => "stopped (--strict-window)",
        TrickleError::AheadOfLiveEdge { .. } => "gave up waiting (--ahead-timeout)",
        _ => return e.into(),
    };
    anyhow::Error::new(e).context(what)
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
