//! Where the output of `write-frames` and `byoc-write-frames` goes: read chunk by chunk from
//! the job's output channel into one joined stream (a file or stdout), a file per segment,
//! decoded Y4M frames, or only counted; and, with `--output-audio`, its audio track decoded
//! into a WAV file beside whichever of those was chosen.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_actors::trickle::TrickleSubscriber;
use gateway_media::encoder::Codec;
use gateway_media::h264_decoder::H264Decoder;
use gateway_media::ivf::{IvfJoin, IVF_FRAME_COUNT_OFFSET};
use gateway_media::ts::discontinuity::mark_discontinuity;
use gateway_media::ts_demux::{AccessUnit, TsDemuxer};
use gateway_media::y4m::{self, Y4mHeader};
use gateway_media::Rational;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::audio_output::{poisoned, SharedAudioOutput};
use crate::cli::OutputSpec;

/// After the last frame, how long the output may stay silent before we stop waiting for it.
const OUTPUT_IDLE: Duration = Duration::from_secs(3);
/// After the last frame, the longest wait for the output to catch up.
const OUTPUT_MAX_WAIT: Duration = Duration::from_secs(15);

/// What the output reader has done so far, read while it runs.
#[derive(Debug, Default)]
pub(crate) struct OutCounters {
    /// Segments read to their end.
    pub(crate) segments: AtomicU64,
    /// Bytes of those segments.
    pub(crate) bytes: AtomicU64,
    /// Frames in the joined IVF output (AV1).
    pub(crate) ivf_frames: AtomicU64,
    /// Frames decoded into Y4M output (--decode).
    pub(crate) decoded_frames: AtomicU64,
}

/// Gives an IVF file's header its frame count (unknown, 0, while it streamed).
pub(crate) fn write_ivf_frame_count(path: &std::path::Path, frames: u32) -> anyhow::Result<()> {
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

/// Waits until the output carried as many bytes as were published (a passthrough is done),
/// stayed quiet for [`OUTPUT_IDLE`] (a transforming pipeline is done), or [`OUTPUT_MAX_WAIT`].
pub(crate) async fn wait_for_output(
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

/// The output read and only counted, for runs that report it but keep nothing (`demo`).
pub(crate) struct CountedOutput {
    counters: Arc<OutCounters>,
    reader: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl CountedOutput {
    /// Starts reading `output`.
    pub(crate) fn start(output: TrickleSubscriber) -> Self {
        let counters = Arc::new(OutCounters::default());
        let reader = tokio::spawn(read_output(output, OutputTarget::Counted, None, counters.clone()));
        Self { counters, reader }
    }

    /// Waits as [`wait_for_output`] does for the output to catch up with `published` bytes,
    /// then stops reading: (segments, bytes) received.
    pub(crate) async fn settle(self, published: u64) -> (u64, u64) {
        wait_for_output(&self.counters, published, &self.reader).await;
        self.reader.abort();
        (self.counters.segments.load(Ordering::Relaxed), self.counters.bytes.load(Ordering::Relaxed))
    }
}

/// Where the output stream goes.
pub(crate) enum OutputTarget {
    /// Only counted.
    Counted,
    /// Into one stream (a file or stdout); IVF segments joined into one file.
    Joined { sink: Box<dyn AsyncWrite + Unpin + Send>, ivf: Option<IvfJoin> },
    /// One complete file per segment, named by its index.
    PerSegment { dir: PathBuf, extension: &'static str },
    /// Decoded, as Y4M frames.
    Decoded(Box<Y4mOutput>),
}

impl OutputTarget {
    /// Opens where the output of `codec` goes: `output` (`--output`, decoded to Y4M with
    /// `decode`), else one file per segment in `segments` (`--output-segments`), else nowhere.
    /// Files are created now; `frame_rate` goes in a Y4M header.
    pub(crate) async fn open(
        output: Option<&OutputSpec>,
        segments: Option<&Path>,
        decode: bool,
        codec: Codec,
        frame_rate: Rational,
    ) -> anyhow::Result<Self> {
        Ok(match (output, segments) {
            (Some(spec), _) if decode => OutputTarget::Decoded(Box::new(Y4mOutput {
                sink: spec.open().await?,
                demuxer: TsDemuxer::new(),
                decoder: H264Decoder::new()?,
                frame_rate,
                size: None,
            })),
            (Some(spec), _) => OutputTarget::Joined {
                sink: spec.open().await?,
                // AV1 output is IVF, one file header per segment: joined into one stream a player reads.
                ivf: (codec == Codec::Av1).then(IvfJoin::new),
            },
            (None, Some(dir)) => {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
                OutputTarget::PerSegment { dir: dir.to_owned(), extension: segment_extension(codec) }
            }
            (None, None) => OutputTarget::Counted,
        })
    }
}

/// The output decoded and written as Y4M.
pub(crate) struct Y4mOutput {
    sink: Box<dyn AsyncWrite + Unpin + Send>,
    demuxer: TsDemuxer,
    decoder: H264Decoder,
    /// The input's rate (MPEG-TS carries none the header could use).
    frame_rate: Rational,
    /// The size in the header, once the first frame set it.
    size: Option<(u32, u32)>,
}

impl Y4mOutput {
    /// Decodes `units` and writes their frames.
    async fn write(&mut self, units: Vec<AccessUnit>, counters: &OutCounters) -> anyhow::Result<()> {
        let mut out = Vec::new();
        for unit in units {
            let Some(frame) = self.decoder.decode(&unit.data, unit.pts.unwrap_or(0))? else { continue };
            let size = (frame.width(), frame.height());
            match self.size {
                None => {
                    let header = Y4mHeader { width: size.0, height: size.1, frame_rate: self.frame_rate };
                    y4m::write_header(&header, &mut out);
                    self.size = Some(size);
                }
                Some(first) if first != size => anyhow::bail!(
                    "the output changed size from {}x{} to {}x{}, which Y4M cannot carry",
                    first.0,
                    first.1,
                    size.0,
                    size.1
                ),
                Some(_) => {}
            }
            y4m::write_frame(&frame, &mut out);
            counters.decoded_frames.fetch_add(1, Ordering::Relaxed);
        }
        self.sink.write_all(&out).await.map_err(|e| anyhow::anyhow!("writing the output: {e}"))
    }
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

/// Reads the output channel chunk by chunk (so a player sees video as soon as it arrives),
/// feeding `audio` every chunk too.
pub(crate) async fn read_output(
    mut output: TrickleSubscriber,
    mut target: OutputTarget,
    audio: Option<SharedAudioOutput>,
    counters: Arc<OutCounters>,
) -> anyhow::Result<()> {
    let write_err = |e: std::io::Error| anyhow::anyhow!("writing the output: {e}");
    while let Some(mut segment) = output.next_segment().await? {
        if let OutputTarget::Joined { ivf: Some(join), .. } = &mut target {
            join.begin_segment();
        }
        // A segment's file is made with its first byte: an empty segment leaves none.
        let mut file = None;
        let mut segment_bytes = 0u64;
        // The first segment from another orchestrator after a swap: its MPEG-TS continuity
        // counters start over, which the joined stream marks as a discontinuity.
        let mut swapped = segment.discontinuity();
        if let (true, OutputTarget::Decoded(y4m)) = (swapped, &mut target) {
            y4m.demuxer.abandon();
        }
        if let (true, Some(audio)) = (swapped, &audio) {
            audio.lock().map_err(|_| poisoned())?.abandon();
        }
        while let Some(chunk) = segment.chunk().await? {
            if let Some(audio) = &audio {
                audio.lock().map_err(|_| poisoned())?.push(&chunk)?;
            }
            if let (OutputTarget::PerSegment { dir, extension }, None) = (&target, &file) {
                file = Some(segment_file(dir, segment.seq(), extension).await?);
            }
            match (&mut target, file.as_mut()) {
                (_, Some(file)) => file.write_all(&chunk).await.map_err(write_err)?,
                (OutputTarget::Joined { sink, ivf: Some(join) }, None) => {
                    let joined = join.push(&chunk);
                    counters.ivf_frames.store(u64::from(join.frames()), Ordering::Relaxed);
                    sink.write_all(&joined).await.map_err(write_err)?;
                }
                (OutputTarget::Joined { sink, ivf: None }, None) => {
                    let marked = std::mem::take(&mut swapped).then(|| mark_discontinuity(&chunk)).flatten();
                    sink.write_all(marked.as_deref().unwrap_or(&chunk)).await.map_err(write_err)?
                }
                (OutputTarget::Decoded(y4m), None) => {
                    let units = y4m.demuxer.push(&chunk);
                    y4m.write(units, &counters).await?;
                }
                _ => {}
            }
            segment_bytes += chunk.len() as u64;
        }
        match (&mut target, file.as_mut()) {
            (_, Some(file)) => file.flush().await.map_err(write_err)?,
            (OutputTarget::Joined { sink, .. }, None) => sink.flush().await.map_err(write_err)?,
            (OutputTarget::Decoded(y4m), None) => {
                // A segment ends on a whole access unit: decode the last one now, not when the
                // next segment (which may never come) starts.
                let units = y4m.demuxer.finish();
                y4m.write(units, &counters).await?;
                y4m.sink.flush().await.map_err(write_err)?;
            }
            _ => {}
        }
        if let Some(audio) = &audio {
            audio.lock().map_err(|_| poisoned())?.end_segment()?;
        }
        // Counted once written out (decoded, flushed): waiting for the output to catch up then
        // never cuts a segment's file or frames short.
        counters.bytes.fetch_add(segment_bytes, Ordering::Relaxed);
        counters.segments.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Stops the output reader and finishes the `--output-audio` file when dropped, so a run that
/// ends early (a failed publish, or Ctrl-C dropping its future) still leaves a WAV whose header
/// gives its length. Finishing twice is harmless: a normal run finishes first, for its report.
pub(crate) struct OutputGuard {
    reader: tokio::task::AbortHandle,
    audio: Option<SharedAudioOutput>,
}

impl OutputGuard {
    /// Guards the reader task and the audio output it feeds.
    pub(crate) fn new(reader: tokio::task::AbortHandle, audio: Option<SharedAudioOutput>) -> Self {
        Self { reader, audio }
    }
}

impl Drop for OutputGuard {
    fn drop(&mut self) {
        self.reader.abort();
        // The reader may still hold the lock for one chunk; after `finish` it writes nothing.
        let Some(audio) = &self.audio else { return };
        let finished = audio.lock().map_err(|_| poisoned()).and_then(|mut a| a.finish());
        if let Err(e) = finished {
            eprintln!("warning: {e:#}");
        }
    }
}
