//! What `write-frames` (LV2V) and `byoc-write-frames` share: the frame options, and the loop
//! that generates the moving test pattern, feeds it to a [`VideoPublisher`] at the frame rate
//! (or as fast as the encoder takes frames), reads the job's output stream back (optionally
//! into a file or stdout) and counts everything for the summary.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use gateway_actors::media::{MediaStats, VideoPublisher, VideoPublisherConfig};
use gateway_actors::payments::PaymentStats;
use gateway_actors::trickle::{TricklePublisher, TrickleSubscriber};
use gateway_media::encoder::Codec;
use gateway_media::ivf::{IvfJoin, IVF_FRAME_COUNT_OFFSET};
use gateway_media::{Rational, TestPattern};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::MissedTickBehavior;

use crate::cli::{human_bytes, parse_dimension, Console, OutputSpec, Progress};

/// After the last frame, how long the output may stay silent before we stop waiting for it.
const OUTPUT_IDLE: Duration = Duration::from_secs(3);
/// After the last frame, the longest wait for the output to catch up.
const OUTPUT_MAX_WAIT: Duration = Duration::from_secs(15);

/// Options of the generated video.
#[derive(Debug, Clone, Args)]
pub struct FrameArgs {
    /// Frame width (even, 16 to 7680).
    #[arg(long, default_value_t = 640, value_parser = parse_dimension)]
    pub width: u32,
    /// Frame height (even, 16 to 7680).
    #[arg(long, default_value_t = 360, value_parser = parse_dimension)]
    pub height: u32,
    /// Frames per second (1 to 240).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=240))]
    pub fps: u32,
    /// Number of frames to send.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: u64,
    /// Send frames as fast as the encoder takes them instead of at the frame rate.
    #[arg(long)]
    pub no_pace: bool,
    /// Write the job's output stream here: `-` for stdout (pipe into `ffplay -`), or a file.
    #[arg(long, value_name = "-|FILE", conflicts_with = "output_segments")]
    pub output: Option<OutputSpec>,
    /// Write each output segment as a file of its own in this folder (`000000.ts`,
    /// `000001.ts`, ... or `.ivf` for AV1), each one a complete file, instead of one joined file.
    #[arg(long, value_name = "DIR")]
    pub output_segments: Option<PathBuf>,
    /// Exit 0 even when the job did not do all that was asked (the stream ended early, segments
    /// failed, frames were lost with the stream); the summary still says what was lost.
    #[arg(long)]
    pub allow_partial: bool,
}

impl FrameArgs {
    /// Where status lines go (stderr when the video goes to stdout).
    pub fn console(&self) -> Console {
        Console { data_on_stdout: self.output == Some(OutputSpec::Stdout) }
    }

    /// The encoder settings for `codec`.
    pub fn publisher_config(&self, codec: Codec) -> VideoPublisherConfig {
        let mut config = VideoPublisherConfig::h264(self.width, self.height);
        config.codec = codec;
        config.frame_rate = Rational::new(self.fps, 1);
        config
    }
}

/// What happened to the video.
#[derive(Debug, Clone)]
pub struct FrameReport {
    /// The publisher's totals.
    pub media: MediaStats,
    /// Time from the first frame to the last segment published.
    pub send_time: Duration,
    /// Output segments received.
    pub out_segments: u64,
    /// Output bytes received.
    pub out_bytes: u64,
    /// Why reading the output stopped early, if it did.
    pub out_error: Option<String>,
}

impl FrameReport {
    /// Prints the summary lines.
    pub fn print(&self, console: Console, payments: &PaymentStats) {
        let m = &self.media;
        let secs = self.send_time.as_secs_f64().max(0.001);
        console.line(format!(
            "video in: {} frames, {} encoded, {} dropped; {} segments / {} published, {} failed, {} drained; {:.1} s ({:.1} fps)",
            m.frames_in,
            m.frames_encoded,
            m.frames_dropped,
            m.segments_published,
            human_bytes(m.bytes_published),
            m.segments_failed,
            human_bytes(m.bytes_drained),
            secs,
            m.frames_encoded as f64 / secs
        ));
        console.line(format!(
            "video out: {} segments / {} received{}",
            self.out_segments,
            human_bytes(self.out_bytes),
            self.out_error.as_ref().map(|e| format!(" (stopped: {e})")).unwrap_or_default()
        ));
        console.line(format!(
            "payments: {} sent, {} skipped, {} failed{}",
            payments.payments_sent,
            payments.cycles_skipped,
            payments.failures,
            payments.stopped.as_ref().map(|s| format!(" (stopped: {s})")).unwrap_or_default()
        ));
    }
}

impl FrameReport {
    /// Why the run did not do what was asked, in one line; `None` when it did. Frames dropped
    /// to keep up with real time (overflow, debt) are the publisher working as designed.
    pub fn shortfall(&self) -> Option<String> {
        let m = &self.media;
        if let Some(e) = &m.terminal_error {
            return Some(format!(
                "the stream ended early ({e}): {} of {} frames never encoded",
                m.drops.stream_ended, m.frames_in
            ));
        }
        if m.segments_failed > 0 {
            return Some(format!(
                "{} segment(s) failed: {} not published",
                m.segments_failed,
                human_bytes(m.bytes_drained)
            ));
        }
        if m.segments_published == 0 {
            return Some("no segment was published".into());
        }
        self.out_error.as_ref().map(|e| format!("reading the output stopped early: {e}"))
    }

    /// The exit verdict: an error naming the shortfall, unless `allow_partial` (then a warning).
    pub fn verdict(&self, allow_partial: bool) -> anyhow::Result<()> {
        crate::cli::verdict(self.shortfall(), allow_partial)
    }
}

#[derive(Debug, Default)]
struct OutCounters {
    segments: AtomicU64,
    bytes: AtomicU64,
    /// Frames in the joined IVF output (AV1).
    ivf_frames: AtomicU64,
}

/// Gives an IVF file's header its frame count (unknown, 0, while it streamed).
fn write_ivf_frame_count(path: &std::path::Path, frames: u32) -> anyhow::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| anyhow::anyhow!("finishing {}: {e}", path.display()))?;
    if file.metadata()?.len() >= gateway_media::ivf::IVF_HEADER_LEN as u64 {
        file.seek(SeekFrom::Start(IVF_FRAME_COUNT_OFFSET as u64))?;
        file.write_all(&frames.to_le_bytes())?;
    }
    Ok(())
}

/// Publishes `args.count` test-pattern frames through `publisher` and reads `output` until it
/// has caught up (or went quiet); returns the counts.
pub async fn stream_frames(
    publisher: TricklePublisher,
    output: TrickleSubscriber,
    args: &FrameArgs,
    codec: Codec,
) -> anyhow::Result<FrameReport> {
    let target = match (&args.output, &args.output_segments) {
        (Some(spec), _) => OutputTarget::Joined {
            sink: spec.open().await?,
            // AV1 output is IVF, one file header per segment: joined into one stream a player reads.
            ivf: (codec == Codec::Av1).then(IvfJoin::new),
        },
        (None, Some(dir)) => {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
            OutputTarget::PerSegment { dir: dir.clone(), extension: segment_extension(codec) }
        }
        (None, None) => OutputTarget::Counted,
    };
    let counters = Arc::new(OutCounters::default());
    let reader = tokio::spawn(read_output(output, target, counters.clone()));
    let result = publish(publisher, args, codec, &counters).await;
    let media = match result {
        Ok(m) => m,
        Err(e) => {
            reader.abort();
            return Err(e);
        }
    };
    let (send_time, media) = media;
    wait_for_output(&counters, media.bytes_published, &reader).await;
    let out_error = if reader.is_finished() {
        match reader.await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("{e:#}")),
            Err(e) => Some(e.to_string()),
        }
    } else {
        reader.abort();
        None
    };
    if let (Some(OutputSpec::File(path)), Codec::Av1) = (&args.output, codec) {
        let frames = counters.ivf_frames.load(Ordering::Relaxed);
        write_ivf_frame_count(path, u32::try_from(frames).unwrap_or(u32::MAX))?;
    }
    Ok(FrameReport {
        media,
        send_time,
        out_segments: counters.segments.load(Ordering::Relaxed),
        out_bytes: counters.bytes.load(Ordering::Relaxed),
        out_error,
    })
}

async fn publish(
    publisher: TricklePublisher,
    args: &FrameArgs,
    codec: Codec,
    out: &OutCounters,
) -> anyhow::Result<(Duration, MediaStats)> {
    let config = args.publisher_config(codec);
    let video = VideoPublisher::start(publisher, config)?;
    let mut pattern = TestPattern::new(args.width, args.height, Rational::new(args.fps, 1))?;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.fps as f64));
    // Like a camera: a late frame is sent late, never in a burst.
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let progress = Progress::new(Some(args.count));
    let started = Instant::now();
    for i in 0..args.count {
        if args.no_pace {
            video.write_frame_when_ready(pattern.next_frame()).await?;
        } else {
            tick.tick().await;
            video.write_frame(pattern.next_frame())?;
        }
        if i % 10 == 9 || i + 1 == args.count {
            let s = video.stats().await?;
            progress.update(
                i + 1,
                format!(
                    "frames, {} segments / {} out ({}), {} back",
                    s.segments_published,
                    human_bytes(s.bytes_published),
                    progress.rate(s.bytes_published),
                    human_bytes(out.bytes.load(Ordering::Relaxed))
                ),
            );
        }
    }
    let media = video.finish().await?;
    progress.finish();
    Ok((started.elapsed(), media))
}

/// Waits until the output carried as many bytes as were published (a passthrough is done),
/// stayed quiet for [`OUTPUT_IDLE`] (a transforming pipeline is done), or [`OUTPUT_MAX_WAIT`].
async fn wait_for_output(
    out: &OutCounters,
    published: u64,
    reader: &tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let started = Instant::now();
    let (mut last_bytes, mut last_change) = (out.bytes.load(Ordering::Relaxed), Instant::now());
    while started.elapsed() < OUTPUT_MAX_WAIT && !reader.is_finished() {
        let bytes = out.bytes.load(Ordering::Relaxed);
        if bytes >= published {
            return;
        }
        if bytes != last_bytes {
            (last_bytes, last_change) = (bytes, Instant::now());
        } else if last_change.elapsed() > OUTPUT_IDLE {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Where the output stream goes.
enum OutputTarget {
    /// Only counted.
    Counted,
    /// Into one stream (a file or stdout); IVF segments joined into one file.
    Joined { sink: Box<dyn AsyncWrite + Unpin + Send>, ivf: Option<IvfJoin> },
    /// One complete file per segment, named by its index.
    PerSegment { dir: PathBuf, extension: &'static str },
}

/// The file name extension of `codec`'s segments.
fn segment_extension(codec: Codec) -> &'static str {
    match codec {
        Codec::Av1 => "ivf",
        _ => "ts",
    }
}

/// Creates the file of segment `seq` in `dir`.
async fn segment_file(
    dir: &Path,
    seq: i64,
    extension: &str,
) -> anyhow::Result<Box<dyn AsyncWrite + Unpin + Send>> {
    let path = dir.join(format!("{seq:06}.{extension}"));
    let file = tokio::fs::File::create(&path)
        .await
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    Ok(Box::new(file))
}

/// Reads the output channel chunk by chunk (so a player sees video as soon as it arrives).
async fn read_output(
    mut output: TrickleSubscriber,
    mut target: OutputTarget,
    counters: Arc<OutCounters>,
) -> anyhow::Result<()> {
    let write_err = |e: std::io::Error| anyhow::anyhow!("writing the output: {e}");
    while let Some(mut segment) = output.next_segment().await? {
        let mut file = match &mut target {
            OutputTarget::PerSegment { dir, extension } => {
                Some(segment_file(dir, segment.seq(), extension).await?)
            }
            OutputTarget::Joined { ivf: Some(join), .. } => {
                join.begin_segment();
                None
            }
            _ => None,
        };
        while let Some(chunk) = segment.chunk().await? {
            match (&mut target, file.as_mut()) {
                (_, Some(file)) => file.write_all(&chunk).await.map_err(write_err)?,
                (OutputTarget::Joined { sink, ivf: Some(join) }, None) => {
                    let joined = join.push(&chunk);
                    counters.ivf_frames.store(u64::from(join.frames()), Ordering::Relaxed);
                    sink.write_all(&joined).await.map_err(write_err)?;
                }
                (OutputTarget::Joined { sink, ivf: None }, None) => {
                    sink.write_all(&chunk).await.map_err(write_err)?
                }
                _ => {}
            }
            counters.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        match (&mut target, file.as_mut()) {
            (_, Some(file)) => file.flush().await.map_err(write_err)?,
            (OutputTarget::Joined { sink, .. }, None) => sink.flush().await.map_err(write_err)?,
            _ => {}
        }
        counters.segments.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}
