//! What every subcommand shares: exit-code errors, Ctrl-C handling, argument parsers, progress
//! display and where output goes.
//!
//! Exit codes are decided in `main` from the error type: [`UsageError`] is a bad argument (2,
//! like clap's own errors), [`Interrupted`] is Ctrl-C (130), anything else is a failed job (1).

use std::fmt;
use std::future::Future;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use gateway_core::capabilities::CapabilityQuery;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::io::AsyncWrite;
use tokio::sync::watch;

/// A bad argument found after clap parsed the command line (exit code 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The user pressed Ctrl-C (exit code 130).
#[derive(Debug)]
pub struct Interrupted;

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

static INTERRUPT: OnceLock<watch::Receiver<bool>> = OnceLock::new();

/// Starts the one Ctrl-C listener of the process. The first Ctrl-C asks the running command to
/// stop (it then stops its job and the embedded network); a second one exits at once, so a
/// cleanup that hangs never traps the user. One listener, installed up front, means a Ctrl-C is
/// never missed between two awaits.
pub fn install_ctrl_c_handler() {
    let (tx, rx) = watch::channel(false);
    if INTERRUPT.set(rx).is_err() {
        return;
    }
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        let _ = tx.send(true);
        eprintln!("interrupted: stopping (Ctrl-C again to quit at once)");
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
}

/// Resolves once Ctrl-C was pressed (never, if no handler is installed).
pub async fn interrupted() {
    match INTERRUPT.get() {
        Some(rx) => {
            let mut rx = rx.clone();
            if rx.wait_for(|pressed| *pressed).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

/// Runs `work` unless Ctrl-C comes first, in which case it is dropped and [`Interrupted`]
/// returned. Callers clean up (stop the job) after this returns, whatever it returned.
pub async fn interruptible<T, E>(work: impl Future<Output = Result<T, E>>) -> anyhow::Result<T>
where
    E: Into<anyhow::Error>,
{
    tokio::select! {
        r = work => r.map_err(Into::into),
        _ = interrupted() => Err(Interrupted.into()),
    }
}

/// Bounds a cleanup step (stopping a job, shutting the network down) so a dead peer cannot
/// keep the command from exiting; a failure is reported on stderr, not returned, because the
/// command's own outcome matters more.
pub async fn cleanup<T, E: fmt::Display>(what: &str, step: impl Future<Output = Result<T, E>>) {
    match tokio::time::timeout(Duration::from_secs(10), step).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => eprintln!("warning: {what}: {e}"),
        Err(_) => eprintln!("warning: {what}: no answer within 10 s"),
    }
}

/// Parses one `pipeline/model` capability query (clap splits commas first, so a bad entry is
/// reported on its own with exit code 2).
pub fn parse_capability(s: &str) -> Result<CapabilityQuery, String> {
    s.parse::<CapabilityQuery>().map_err(|e| e.to_string())
}

/// Parses a frame width or height: even (4:2:0 chroma needs it) and between 16 and 7680.
pub fn parse_dimension(s: &str) -> Result<u32, String> {
    let v: u32 = s.trim().parse().map_err(|_| "not a whole number".to_string())?;
    if !(16..=7680).contains(&v) || !v.is_multiple_of(2) {
        return Err("must be an even number from 16 to 7680".into());
    }
    Ok(v)
}

/// Parses a JSON object (for control messages, which get fields added).
pub fn parse_json_object(s: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(serde_json::Value::Object(o)) => Ok(o),
        Ok(_) => Err("must be a JSON object, like {\"type\":\"ping\"}".into()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

/// Where a stream of bytes goes: `-` is stdout, anything else a file (created or truncated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSpec {
    /// Standard output.
    Stdout,
    /// A file path.
    File(PathBuf),
}

impl std::str::FromStr for OutputSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "" => Err("empty path".into()),
            "-" => Ok(OutputSpec::Stdout),
            p => Ok(OutputSpec::File(PathBuf::from(p))),
        }
    }
}

impl OutputSpec {
    /// Opens the destination for writing.
    pub async fn open(&self) -> anyhow::Result<Box<dyn AsyncWrite + Unpin + Send>> {
        Ok(match self {
            OutputSpec::Stdout => Box::new(tokio::io::stdout()),
            OutputSpec::File(p) => Box::new(
                tokio::fs::File::create(p)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", p.display()))?,
            ),
        })
    }
}

/// Prints status lines: to stdout normally, to stderr when stdout carries data (so a pipe into
/// ffplay or a file gets only the stream).
#[derive(Debug, Clone, Copy)]
pub struct Console {
    /// Whether stdout carries a data stream.
    pub data_on_stdout: bool,
}

impl Console {
    /// Prints one line.
    pub fn line(&self, text: impl fmt::Display) {
        if self.data_on_stdout {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }
}

/// A progress line on stderr when stderr is a terminal; invisible otherwise, so pipes and
/// logs stay machine-readable. Clones draw the same line.
#[derive(Debug, Clone)]
pub struct Progress {
    bar: ProgressBar,
    started: Instant,
}

impl Progress {
    /// A spinner with a message (`total` frames or segments turn it into a bar).
    pub fn new(total: Option<u64>) -> Progress {
        let bar = if !std::io::stderr().is_terminal() {
            ProgressBar::hidden()
        } else if let Some(total) = total {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}") {
                bar.set_style(style);
            }
            bar
        } else {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        };
        Progress { bar, started: Instant::now() }
    }

    /// Sets the position (frames or segments so far) and the message.
    pub fn update(&self, position: u64, message: String) {
        self.bar.set_position(position);
        self.bar.set_message(message);
    }

    /// Time since the progress display started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// `bytes` over the time so far, as a human rate.
    pub fn rate(&self, bytes: u64) -> String {
        let secs = self.elapsed().as_secs_f64().max(0.001);
        format!("{}/s", human_bytes((bytes as f64 / secs) as u64))
    }

    /// Prints a line on stderr above the progress line.
    pub fn println(&self, line: impl fmt::Display) {
        self.bar.suspend(|| eprintln!("{line}"));
    }

    /// Removes the progress line (before the final summary is printed).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// `1234567` → `1.2 MB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The exit rule of every job command: a result short of what was asked (`shortfall` says how)
/// is an error naming it, unless the user passed `--allow-partial` (then a warning).
pub fn verdict(shortfall: Option<String>, allow_partial: bool) -> anyhow::Result<()> {
    match shortfall {
        Some(why) if allow_partial => {
            eprintln!("warning: partial result accepted (--allow-partial): {why}");
            Ok(())
        }
        Some(why) => anyhow::bail!("{why} (--allow-partial accepts a partial result)"),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimensions_must_be_even_and_in_range() {
        assert_eq!(parse_dimension("640"), Ok(640));
        assert!(parse_dimension("0").is_err());
        assert!(parse_dimension("641").is_err());
        assert!(parse_dimension("-2").is_err());
        assert!(parse_dimension("8000").is_err());
    }

    #[test]
    fn control_messages_must_be_objects() {
        assert!(parse_json_object(r#"{"type":"ping"}"#).is_ok());
        assert!(parse_json_object("[1]").unwrap_err().contains("JSON object"));
        assert!(parse_json_object("{").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_234_567), "1.2 MB");
    }

    #[test]
    fn output_dash_is_stdout() {
        assert_eq!("-".parse::<OutputSpec>(), Ok(OutputSpec::Stdout));
        assert_eq!("x.ts".parse::<OutputSpec>(), Ok(OutputSpec::File("x.ts".into())));
    }
}

/// Bytes of a media stream handled between two looks at the pace: 16 KiB is about 60 ms at
/// 2 Mbit/s (a 64 KiB read would be a quarter of a second).
pub const PACED_STEP: usize = 16 * 1024;
/// How far ahead of its pace a stream may run before the pacer sleeps: media goes out in bursts
/// of about this much, so a stream wakes a few times a second rather than once per step.
pub const PACE_SLACK: Duration = Duration::from_millis(100);

/// Holds publishing to the media's own pace: the time since the first timestamp seen, on the
/// wall clock since then.
#[derive(Debug, Default)]
pub struct MediaPacer {
    start: Option<(tokio::time::Instant, i64)>,
}

impl MediaPacer {
    /// Waits until the wall clock has caught up with media time `pts` (90 kHz), when it is
    /// more than [`PACE_SLACK`] behind.
    pub async fn wait(&mut self, pts: Option<i64>) {
        let Some(pts) = pts else { return };
        let (at, first) = *self.start.get_or_insert((tokio::time::Instant::now(), pts));
        let ahead = u64::try_from(pts - first).unwrap_or(0);
        let due = at + Duration::from_micros(ahead * 100 / 9);
        if due > tokio::time::Instant::now() + PACE_SLACK {
            tokio::time::sleep_until(due).await;
        }
    }
}

/// Reads `input` on a thread of its own, `chunk` bytes at a time, into a small queue: cuts by
/// time can fire while a read waits, and a read that never returns (a live source gone quiet)
/// cannot hold the command when it stops early, as a read on tokio's blocking pool would keep
/// the runtime from shutting down. The queue ends after the input's end or its first error.
pub fn read_on_thread(
    mut input: Box<dyn std::io::Read + Send>,
    chunk: usize,
) -> tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    std::thread::spawn(move || loop {
        let mut buf = vec![0u8; chunk];
        let item = match input.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                buf.truncate(n);
                Ok(bytes::Bytes::from(buf))
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
        let failed = item.is_err();
        if tx.blocking_send(item).is_err() || failed {
            return;
        }
    });
    rx
}

/// A request's body options: `--data`, `--data-file` (`-` for stdin), `--content-type`.
#[derive(Debug, Clone, clap::Args)]
pub struct BodyArgs {
    /// Request body.
    #[arg(long, conflicts_with = "data_file")]
    pub data: Option<String>,
    /// Read the request body from this file (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    pub data_file: Option<PathBuf>,
    /// Content-Type of the body (default: application/json when it parses as JSON, else
    /// text/plain).
    #[arg(long, value_name = "TYPE")]
    pub content_type: Option<String>,
}

impl BodyArgs {
    /// The body (empty without one) and its content type.
    pub async fn read(&self) -> anyhow::Result<(bytes::Bytes, String)> {
        let body = request_body(self.data.as_deref(), self.data_file.as_deref()).await?;
        let content_type = self.content_type.clone().unwrap_or_else(|| guess_content_type(&body).to_owned());
        Ok((body, content_type))
    }
}

/// A request body from `--data TEXT` or `--data-file FILE` (`-` for stdin); empty without
/// either.
pub async fn request_body(
    data: Option<&str>,
    file: Option<&std::path::Path>,
) -> anyhow::Result<bytes::Bytes> {
    match (data, file) {
        (Some(text), _) => Ok(bytes::Bytes::from(text.to_owned())),
        (None, Some(path)) if path.as_os_str() == "-" => {
            let mut buf = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut buf).await?;
            Ok(bytes::Bytes::from(buf))
        }
        (None, Some(path)) => tokio::fs::read(path)
            .await
            .map(bytes::Bytes::from)
            .map_err(|e| UsageError(format!("cannot read {}: {e}", path.display())).into()),
        (None, None) => Ok(bytes::Bytes::new()),
    }
}

/// `application/json` for a body that parses as JSON, else plain text.
pub fn guess_content_type(body: &[u8]) -> &'static str {
    if serde_json::from_slice::<serde_json::Value>(body).is_ok() {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    }
}

/// `key=value`, the value parsed as JSON when it is JSON, else kept as a string.
pub fn parse_param(s: &str) -> Result<(String, serde_json::Value), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("{s:?} is not key=value"))?;
    if k.is_empty() {
        return Err(format!("{s:?} has an empty key"));
    }
    let value = serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.to_owned()));
    Ok((k.to_owned(), value))
}

/// `LIVEPEER_LOG_FORMAT=json`: every log line a JSON object, and no human lines on stderr.
pub const LOG_FORMAT_ENV: &str = "LIVEPEER_LOG_FORMAT";

/// Whether logs are JSON ([`LOG_FORMAT_ENV`]).
pub fn json_logs() -> bool {
    std::env::var(LOG_FORMAT_ENV).is_ok_and(|f| f.eq_ignore_ascii_case("json"))
}
