//! What `write-frames` (LV2V) and `byoc-write-frames` share: the frame options, and the loop
//! that generates the moving test pattern, feeds it to a [`VideoPublisher`](gateway_actors::media::VideoPublisher) at the frame rate
//! (or as fast as the encoder takes frames), reads the job's output stream back (optionally
//! into a file or stdout) and counts everything for the summary.

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use gateway_actors::live::{LiveStream, LiveStreamStatus};
use gateway_actors::media::{MediaStats, VideoPublisherConfig};
use gateway_core::trickle::SeqSpec;
use gateway_media::audio::wav::{WavError, WavFormat};
use gateway_media::encoder::Codec;
use gateway_media::ts::opus::OPUS_RATE;
use gateway_media::y4m::{Y4mError, Y4mHeader, Y4mReader};
use gateway_media::{Rational, TestPattern, VideoFrame};
use tokio::time::MissedTickBehavior;

use crate::audio_input::AudioInput;
use crate::audio_output::{poisoned, AudioOutReport, AudioOutput};
use crate::cli::{human_bytes, parse_dimension, Console, OutputSpec, Progress, UsageError};
use crate::output::{
    read_output, wait_for_output, write_ivf_frame_count, OutCounters, OutputGuard, OutputTarget,
};
use crate::ts_input::{looks_like_ts, TsInput};

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
    /// Number of frames to send (default 90 of the test pattern; with --input, all of it).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Send this Y4M video (a file, or `-` for stdin: `ffmpeg -i in.mp4 -f yuv4mpegpipe - |
    /// livepeer-gateway write-frames --input -`) instead of the test pattern; its size and
    /// frame rate replace --width, --height and --fps.
    #[arg(long, value_name = "FILE|-")]
    pub input: Option<PathBuf>,
    /// Send this WAV audio beside the video, as Opus in the same MPEG-TS (a file, or `-` for
    /// stdin: `ffmpeg -i in.mp4 -f wav - | livepeer-gateway write-frames --audio -`); any rate,
    /// up to 8 channels (folded to stereo). H.264 with frames only, not with MPEG-TS --input.
    #[arg(long, value_name = "FILE|-")]
    pub audio: Option<PathBuf>,
    /// The --audio input is headerless PCM in this format, as ffmpeg names it:
    /// `s16le|s24le|s32le|f32le:RATE:CHANNELS` (`ffmpeg -i in.mp4 -f s16le -ar 48000 -ac 2 - |
    /// livepeer-gateway write-frames --audio - --audio-raw s16le:48000:2`).
    #[arg(long, value_name = "FORMAT", requires = "audio", value_parser = parse_raw_format)]
    pub audio_raw: Option<WavFormat>,
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
    /// With --output: write the output decoded, as Y4M frames (`| ffplay -` or a file), instead
    /// of the stream as it came (H.264 output only).
    #[arg(long, requires = "output")]
    pub decode: bool,
    /// Write the output's audio track decoded, as 16-bit 48 kHz WAV (Opus output only), beside
    /// whatever --output or --output-segments keep: a file, or `-` for stdout (`| ffplay -`;
    /// its header then says "unknown length", as ffmpeg's does on a pipe).
    #[arg(long, value_name = "-|FILE")]
    pub output_audio: Option<OutputSpec>,
    /// Exit 0 even when the job did not do all that was asked (the stream ended early, segments
    /// failed, frames were lost with the stream); the summary still says what was lost.
    #[arg(long)]
    pub allow_partial: bool,
}

impl FrameArgs {
    /// Where status lines go (stderr when the video goes to stdout).
    pub fn console(&self) -> Console {
        let stdout = Some(OutputSpec::Stdout);
        Console { data_on_stdout: self.output == stdout || self.output_audio == stdout }
    }

    /// Opens the audio to send with the frames and the file for the output's audio, each if
    /// asked for; `source` is the video's (an MPEG-TS input carries its own audio). Checked
    /// before any job starts.
    pub fn open_audio(&self, source: &FrameSource, codec: Codec) -> anyhow::Result<AudioIo> {
        let input = self.open_audio_input(source, codec)?;
        let output = match &self.output_audio {
            Some(_) if codec != Codec::H264 => {
                return Err(UsageError(format!(
                    "--output-audio reads audio from MPEG-TS output; {codec} output carries none"
                ))
                .into())
            }
            Some(OutputSpec::Stdout) if self.output == Some(OutputSpec::Stdout) => {
                return Err(
                    UsageError("--output and --output-audio cannot both write to stdout".into()).into()
                )
            }
            Some(spec) => Some(AudioOutput::create(spec)?),
            None => None,
        };
        Ok(AudioIo { input, output })
    }

    fn open_audio_input(&self, source: &FrameSource, codec: Codec) -> anyhow::Result<Option<AudioInput>> {
        let Some(path) = &self.audio else { return Ok(None) };
        if source.is_passthrough() {
            return Err(UsageError(
                "--audio goes with frames; an MPEG-TS --input carries its own audio".into(),
            )
            .into());
        }
        if codec != Codec::H264 {
            return Err(UsageError(format!("--audio travels in MPEG-TS with H.264, not with {codec}")).into());
        }
        AudioInput::open(path, self.audio_raw).map(Some)
    }

    /// Opens the frames to send: the Y4M input (its header read and checked now, before any
    /// job is started or paid for) or the test pattern.
    pub fn open_source(&self) -> anyhow::Result<FrameSource> {
        let dash = |p: &Option<PathBuf>| p.as_ref().is_some_and(|p| p.as_os_str() == "-");
        if dash(&self.input) && dash(&self.audio) {
            return Err(UsageError("--input and --audio cannot both read stdin".into()).into());
        }
        let Some(path) = &self.input else {
            let pattern = TestPattern::new(self.width, self.height, Rational::new(self.fps, 1))?;
            return Ok(FrameSource::Pattern { pattern, remaining: self.count.unwrap_or(DEFAULT_COUNT) });
        };
        let mut input: Box<dyn Read + Send> = if path.as_os_str() == "-" {
            Box::new(std::io::stdin())
        } else {
            Box::new(
                std::fs::File::open(path)
                    .map_err(|e| UsageError(format!("cannot open --input {}: {e}", path.display())))?,
            )
        };
        // Two TS packets' worth tell MPEG-TS (published as it is) from Y4M (encoded).
        let start = read_start(&mut input, 2 * 188)
            .map_err(|e| UsageError(format!("--input {}: {e}", path.display())))?;
        if looks_like_ts(&start) {
            let ts = TsInput::open(start, input, &path.display().to_string())?;
            return Ok(FrameSource::Ts(Box::new(ts)));
        }
        let input = std::io::Cursor::new(start).chain(input);
        let reader =
            Y4mReader::new(input).map_err(|e| UsageError(format!("--input {}: {e}", path.display())))?;
        Ok(FrameSource::y4m(reader, self.count))
    }
}

/// Up to `n` first bytes of `input` (fewer only if it ends first).
fn read_start(input: &mut dyn Read, n: usize) -> std::io::Result<Vec<u8>> {
    let mut start = Vec::with_capacity(n);
    input.take(n as u64).read_to_end(&mut start)?;
    Ok(start)
}

/// `--audio-raw`'s format, or the reason it is not one.
fn parse_raw_format(s: &str) -> Result<WavFormat, String> {
    s.parse().map_err(|e: WavError| e.to_string())
}

/// The audio sent beside the frames (`--audio`) and the audio kept from the output
/// (`--output-audio`), each if asked for.
pub struct AudioIo {
    /// The WAV input.
    pub input: Option<AudioInput>,
    /// The WAV file the output's audio goes to.
    pub output: Option<AudioOutput>,
}

/// Frames of the test pattern when neither --count nor --input says otherwise.
const DEFAULT_COUNT: u64 = 90;

/// Where the frames come from.
pub enum FrameSource {
    /// The moving test pattern, `remaining` more frames.
    Pattern {
        /// The generator.
        pattern: TestPattern,
        /// Frames still to send.
        remaining: u64,
    },
    /// A Y4M stream read on a thread of its own (a pipe may block), frames through a small
    /// queue.
    Y4m {
        /// Size and frame rate from the header.
        header: Y4mHeader,
        /// Frames as they are read; an error ends the input.
        frames: tokio::sync::mpsc::Receiver<Result<VideoFrame, Y4mError>>,
        /// The most to send, if limited.
        limit: Option<u64>,
    },
    /// MPEG-TS published as it is (no encoder; `--count` does not apply).
    Ts(Box<TsInput>),
}

impl FrameSource {
    fn y4m<R: Read + Send + 'static>(mut reader: Y4mReader<R>, limit: Option<u64>) -> FrameSource {
        let header = reader.header();
        let (tx, frames) = tokio::sync::mpsc::channel(8);
        std::thread::spawn(move || loop {
            let item = match reader.next_frame() {
                Ok(Some(frame)) => Ok(frame),
                Ok(None) => return,
                Err(e) => Err(e),
            };
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed {
                return;
            }
        });
        FrameSource::Y4m { header, frames, limit }
    }

    /// Width, height and frame rate of the frames.
    pub fn format(&self) -> (u32, u32, Rational) {
        match self {
            FrameSource::Pattern { pattern, .. } => {
                let frame = pattern.frame(0);
                (frame.width(), frame.height(), frame.time_base().recip())
            }
            FrameSource::Y4m { header, .. } => (header.width, header.height, header.frame_rate),
            // Not read from the stream: the rate only paces decoded Y4M output.
            FrameSource::Ts(_) => (0, 0, Rational::new(30, 1)),
        }
    }

    /// Whether the input is published as it is (MPEG-TS) rather than encoded.
    pub fn is_passthrough(&self) -> bool {
        matches!(self, FrameSource::Ts(_))
    }

    /// How many frames it will give, if known.
    fn expected(&self) -> Option<u64> {
        match self {
            FrameSource::Pattern { remaining, .. } => Some(*remaining),
            FrameSource::Y4m { limit, .. } => *limit,
            FrameSource::Ts(_) => None,
        }
    }

    /// The next frame; `Ok(None)` when the source is done.
    async fn next(&mut self, sent: u64) -> anyhow::Result<Option<VideoFrame>> {
        match self {
            FrameSource::Pattern { pattern, remaining } => {
                Ok((sent < *remaining).then(|| pattern.next_frame()))
            }
            FrameSource::Y4m { frames, limit, .. } => {
                if limit.is_some_and(|l| sent >= l) {
                    return Ok(None);
                }
                match frames.recv().await {
                    Some(frame) => Ok(Some(frame?)),
                    None => Ok(None),
                }
            }
            // Published by `publish_ts`, never frame by frame.
            FrameSource::Ts(_) => Ok(None),
        }
    }

    /// The encoder settings for `codec` at this source's size and rate, with `audio`'s track.
    pub fn publisher_config(&self, codec: Codec, audio: Option<&AudioInput>) -> VideoPublisherConfig {
        if self.is_passthrough() {
            return VideoPublisherConfig::passthrough_ts();
        }
        let (width, height, frame_rate) = self.format();
        let mut config = VideoPublisherConfig::h264(width, height);
        config.codec = codec;
        config.frame_rate = frame_rate;
        config.audio = audio.map(AudioInput::track);
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
    /// Why the input ended before it was all read, if it did (what came before was published).
    pub input_error: Option<String>,
    /// Frames decoded into the Y4M output, with --decode.
    pub decoded_frames: Option<u64>,
    /// What the output's audio track gave, with --output-audio.
    pub audio_out: Option<AudioOutReport>,
}

impl FrameReport {
    /// Prints the summary lines, with the stream's swaps and payments.
    pub fn print(&self, console: Console, status: &LiveStreamStatus) {
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
        if m.audio.frames_in > 0 {
            let a = &m.audio;
            console.line(format!(
                "audio in: {} frames, {} encoded, {} dropped, {} refused; {} Opus packets",
                a.frames_in,
                a.frames_encoded,
                a.frames_dropped_overflow + a.packets_dropped,
                a.frames_refused,
                a.packets_encoded
            ));
        }
        console.line(format!(
            "video out: {} segments / {} received{}{}",
            self.out_segments,
            human_bytes(self.out_bytes),
            self.decoded_frames.map(|n| format!(", {n} frames decoded")).unwrap_or_default(),
            self.out_error.as_ref().map(|e| format!(" (stopped: {e})")).unwrap_or_default()
        ));
        if let Some(a) = &self.audio_out {
            console.line(format!(
                "audio out: {} Opus packets, {} samples ({:.2} s) written{}",
                a.units,
                a.samples,
                a.samples as f64 / f64::from(OPUS_RATE),
                match a.units_failed {
                    0 => String::new(),
                    n => format!(", {n} not decoded"),
                }
            ));
        }
        crate::swaps::print_summary(console, status);
    }
}

impl FrameReport {
    /// Why the run did not do what was asked, in one line; `None` when it did. Frames dropped
    /// to keep up with real time (overflow, debt) are the publisher working as designed.
    pub fn shortfall(&self, status: &LiveStreamStatus) -> Option<String> {
        if let Some(end) = crate::swaps::shortfall(status) {
            return Some(end);
        }
        let m = &self.media;
        if let Some(e) = &self.input_error {
            return Some(format!(
                "the input broke off after {} frames, which were published: {e}",
                m.frames_in
            ));
        }
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
        if let Some(e) = &self.out_error {
            return Some(format!("reading the output stopped early: {e}"));
        }
        match &self.audio_out {
            Some(a) if a.units == 0 => Some("--output-audio: the output carried no audio".into()),
            Some(a) if a.units_failed > 0 => Some(format!(
                "--output-audio: {} of {} audio packets could not be decoded ({})",
                a.units_failed,
                a.units,
                a.first_failure.as_deref().unwrap_or("no reason given")
            )),
            _ => None,
        }
    }

    /// The exit verdict: an error naming the shortfall, unless `allow_partial` (then a warning).
    pub fn verdict(&self, allow_partial: bool, status: &LiveStreamStatus) -> anyhow::Result<()> {
        crate::cli::verdict(self.shortfall(status), allow_partial)
    }
}

/// Publishes `args.count` test-pattern frames through `publisher` and reads `output` until it
/// has caught up (or went quiet); returns the counts.
pub async fn stream_frames(
    stream: &LiveStream,
    args: &FrameArgs,
    source: FrameSource,
    codec: Codec,
    audio: AudioIo,
) -> anyhow::Result<FrameReport> {
    // The output channel is new, so reading from its first segment misses nothing; after a
    // swap the reader goes on from the next orchestrator's first segment.
    let output = stream.output(SeqSpec::At(0));
    let (_, _, frame_rate) = source.format();
    let target = OutputTarget::open(
        args.output.as_ref(),
        args.output_segments.as_deref(),
        args.decode,
        codec,
        frame_rate,
    )
    .await?;
    let counters = Arc::new(OutCounters::default());
    let audio_out = audio.output.map(AudioOutput::shared);
    let reader = tokio::spawn(read_output(output, target, audio_out.clone(), counters.clone()));
    // However this ends (a failed publish, or Ctrl-C dropping this future), the reader stops
    // and the WAV file gets its sizes.
    let _guard = OutputGuard::new(reader.abort_handle(), audio_out.clone());
    let (send_time, media, input_error) = publish(stream, args, source, audio.input, &counters).await?;
    wait_for_output(&counters, media.bytes_published, &reader).await;
    let out_error = if reader.is_finished() {
        match reader.await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("{e:#}")),
            Err(e) => Some(e.to_string()),
        }
    } else {
        reader.abort();
        // Gone once this returns: nothing writes the output files after us.
        let _ = reader.await;
        None
    };
    if let (Some(OutputSpec::File(path)), Codec::Av1) = (&args.output, codec) {
        let frames = counters.ivf_frames.load(Ordering::Relaxed);
        write_ivf_frame_count(path, u32::try_from(frames).unwrap_or(u32::MAX))?;
    }
    // The reader has stopped (or was stopped): the WAV file is ours to finish.
    let audio_out = match audio_out {
        Some(audio) => Some(audio.lock().map_err(|_| poisoned())?.finish()?),
        None => None,
    };
    Ok(FrameReport {
        media,
        send_time,
        out_segments: counters.segments.load(Ordering::Relaxed),
        out_bytes: counters.bytes.load(Ordering::Relaxed),
        out_error,
        input_error,
        decoded_frames: args.decode.then(|| counters.decoded_frames.load(Ordering::Relaxed)),
        audio_out,
    })
}

async fn publish(
    stream: &LiveStream,
    args: &FrameArgs,
    mut source: FrameSource,
    mut audio: Option<AudioInput>,
    out: &OutCounters,
) -> anyhow::Result<(Duration, MediaStats, Option<String>)> {
    let video = stream.video().ok_or_else(|| anyhow::anyhow!("the stream takes no video"))?;
    if let FrameSource::Ts(ts) = source {
        return publish_ts(stream, *ts, !args.no_pace).await;
    }
    let (_, _, frame_rate) = source.format();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / frame_rate.as_f64().max(1e-3)));
    // Like a camera: a late frame is sent late, never in a burst.
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let expected = source.expected();
    let progress = Progress::new(expected);
    let started = Instant::now();
    let (mut sent, mut input_error) = (0u64, None);
    loop {
        if !args.no_pace {
            tick.tick().await;
        }
        // A broken input ends the frames; those accepted so far are still published.
        let frame = match source.next(sent).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => {
                input_error = Some(format!("{e:#}"));
                break;
            }
        };
        // The audio that plays before this frame ends goes first.
        let frame_end = (sent + 1) as f64 / frame_rate.as_f64().max(1e-3);
        let audio_written = match audio.as_mut() {
            Some(a) => a.write_until(video, frame_end).await,
            None => Ok(()),
        };
        let written = match audio_written {
            Err(e) => Err(e),
            Ok(()) if args.no_pace => video.write_frame_when_ready(frame).await,
            Ok(()) => video.write_frame(frame),
        };
        if let Err(e) = written {
            // A stream that ended (no orchestrator left, swapping off) takes no more frames:
            // the summary and the verdict say why.
            if has_ended(stream).await {
                break;
            }
            return Err(e.into());
        }
        sent += 1;
        if sent.is_multiple_of(10) || Some(sent) == expected {
            let Ok(s) = video.stats().await else { continue };
            progress.update(
                sent,
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
    let media = stream.finish_video().await?;
    progress.finish();
    let input_error = input_error.or_else(|| audio.and_then(|a| a.error().map(|e| format!("--audio: {e}"))));
    Ok((started.elapsed(), media, input_error))
}

/// How long a refused write waits for the stream's end to be recorded: the publisher stops
/// taking media the moment the stream's driver ends, its status says so a moment later.
const END_RECORDED_WITHIN: Duration = Duration::from_secs(2);

/// Whether the stream has ended (waiting [`END_RECORDED_WITHIN`] for the status to say so).
async fn has_ended(stream: &LiveStream) -> bool {
    tokio::time::timeout(END_RECORDED_WITHIN, stream.ended()).await.is_ok()
}

/// Publishes a TS input as it is; the counterpart of [`publish`]'s frame loop.
async fn publish_ts(
    stream: &LiveStream,
    ts: TsInput,
    pace: bool,
) -> anyhow::Result<(Duration, MediaStats, Option<String>)> {
    let video = stream.video().ok_or_else(|| anyhow::anyhow!("the stream takes no video"))?;
    let progress = Progress::new(None);
    let started = Instant::now();
    let published = ts.publish(video, pace, |units| progress.update(units, "access units".into())).await;
    let input_error = match published {
        Ok((_, input_error)) => input_error,
        // A stream that ended takes no more media: the summary and the verdict say why.
        Err(_) if has_ended(stream).await => None,
        Err(e) => return Err(e.into()),
    };
    let media = stream.finish_video().await?;
    progress.finish();
    Ok((started.elapsed(), media, input_error))
}
