//! `--output-audio`: the output's audio track decoded into 16-bit 48 kHz WAV, in a file or on
//! stdout. A file gets its header's sizes when the run ends, however it ends (see
//! [`crate::output::OutputGuard`]); stdout is a pipe that cannot be rewound, so its header keeps
//! the "unknown length" sizes ffmpeg also writes to a pipe, and readers read it to the end.

use std::io::{BufWriter, Stdout};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use gateway_media::audio::wav::{WavError, WavWriter};
use gateway_media::ts::opus::OPUS_RATE;
use gateway_media::ts_demux::{MediaUnit, TsDemuxer};
use gateway_media::{AudioFrame, AudioUnitDecoder};

use crate::cli::{OutputSpec, UsageError};

/// The error of a lock whose holder panicked (the reader's own bug, never the stream's).
pub(crate) fn poisoned() -> anyhow::Error {
    anyhow::anyhow!("the audio output was left broken by a panic")
}

/// The output's audio track, shared by the reader (which feeds it) and the run (which finishes
/// it after the reader stopped, however it stopped).
pub(crate) type SharedAudioOutput = Arc<Mutex<AudioOutput>>;

/// Where the WAV goes, before the first samples say its layout.
enum Sink {
    File(std::fs::File),
    Stdout,
}

/// The WAV being written.
enum Wav {
    File(WavWriter<BufWriter<std::fs::File>>),
    Stdout(WavWriter<BufWriter<Stdout>>),
}

impl Wav {
    fn start(sink: Sink, channels: u16, rate: u32) -> Result<Wav, WavError> {
        Ok(match sink {
            Sink::File(f) => Wav::File(WavWriter::new(BufWriter::new(f), channels, rate)?),
            Sink::Stdout => Wav::Stdout(WavWriter::new(BufWriter::new(std::io::stdout()), channels, rate)?),
        })
    }

    fn write(&mut self, frame: &AudioFrame) -> Result<(), WavError> {
        match self {
            Wav::File(w) => w.write(frame),
            Wav::Stdout(w) => w.write(frame),
        }
    }

    fn channels(&self) -> u16 {
        match self {
            Wav::File(w) => w.channels(),
            Wav::Stdout(w) => w.channels(),
        }
    }

    fn samples(&self) -> u64 {
        match self {
            Wav::File(w) => w.samples(),
            Wav::Stdout(w) => w.samples(),
        }
    }

    /// A file gets its sizes; stdout is flushed with them unknown.
    fn finish(self) -> Result<(), WavError> {
        match self {
            Wav::File(w) => w.finish().map(drop),
            Wav::Stdout(w) => w.finish_unsized().map(drop),
        }
    }
}

/// The output's audio track decoded into a 16-bit WAV (`--output-audio`). A unit that does
/// not decode is counted and passed over (the stream goes on); output that cannot be written
/// stops the reader.
pub(crate) struct AudioOutput {
    /// `--output-audio FILE` or `--output-audio -`, for messages.
    name: String,
    demuxer: TsDemuxer,
    decoder: AudioUnitDecoder,
    /// Where the WAV goes, until the first samples say its layout and `wav` takes it.
    sink: Option<Sink>,
    wav: Option<Wav>,
    report: AudioOutReport,
}

/// What the audio output holds at the end.
#[derive(Debug, Clone, Default)]
pub(crate) struct AudioOutReport {
    /// Audio units (Opus packets) read from the output.
    pub(crate) units: u64,
    /// Units that could not be decoded, passed over.
    pub(crate) units_failed: u64,
    /// Why the first of them failed.
    pub(crate) first_failure: Option<String>,
    /// Sample instants written to the WAV.
    pub(crate) samples: u64,
}

impl AudioOutput {
    /// Creates the file now (stdout needs nothing), so a bad path is a usage error before any
    /// job is paid for.
    pub(crate) fn create(spec: &OutputSpec) -> anyhow::Result<Self> {
        let (name, sink) = match spec {
            OutputSpec::Stdout => ("--output-audio - (stdout)".to_owned(), Sink::Stdout),
            OutputSpec::File(path) => {
                let name = format!("--output-audio {}", path.display());
                let file = std::fs::File::create(path)
                    .map_err(|e| UsageError(format!("cannot create {name}: {e}")))?;
                (name, Sink::File(file))
            }
        };
        Ok(Self {
            name,
            demuxer: TsDemuxer::with_audio(),
            decoder: AudioUnitDecoder::new(),
            sink: Some(sink),
            wav: None,
            report: AudioOutReport::default(),
        })
    }

    /// Shares it with the reader.
    pub(crate) fn shared(self) -> SharedAudioOutput {
        Arc::new(Mutex::new(self))
    }

    /// Reads one chunk of the output stream.
    pub(crate) fn push(&mut self, chunk: &Bytes) -> anyhow::Result<()> {
        let units = self.demuxer.push_media(chunk);
        self.write(units)
    }

    /// A segment ended on a whole unit: decode its last one now.
    pub(crate) fn end_segment(&mut self) -> anyhow::Result<()> {
        let units = self.demuxer.finish_media();
        self.write(units)
    }

    /// Another orchestrator's stream starts: its tables and encoder start over.
    pub(crate) fn abandon(&mut self) {
        self.demuxer.abandon();
        self.decoder.reset();
    }

    fn write(&mut self, units: Vec<MediaUnit>) -> anyhow::Result<()> {
        for unit in units {
            let MediaUnit::Audio(unit) = unit else { continue };
            self.report.units += 1;
            let frame = match self.decoder.decode(&unit) {
                Ok(Some(frame)) => frame,
                Ok(None) => continue,
                Err(e) => {
                    self.report.units_failed += 1;
                    self.report.first_failure.get_or_insert_with(|| e.to_string());
                    continue;
                }
            };
            let name = &self.name;
            let failed = |e: WavError| anyhow::anyhow!("writing {name}: {e}");
            if let Some(sink) = self.sink.take() {
                self.wav = Some(Wav::start(sink, frame.channels(), frame.rate()).map_err(failed)?);
            }
            let Some(wav) = self.wav.as_mut() else { continue };
            if wav.channels() != frame.channels() {
                anyhow::bail!(
                    "the output audio changed from {} to {} channels, which one WAV file cannot carry",
                    wav.channels(),
                    frame.channels()
                );
            }
            wav.write(&frame).map_err(failed)?;
            self.report.samples = wav.samples();
        }
        Ok(())
    }

    /// Ends the WAV (an output with no audio leaves an empty stereo one); the output takes
    /// nothing more after this, and finishing again does nothing.
    pub(crate) fn finish(&mut self) -> anyhow::Result<AudioOutReport> {
        let name = &self.name;
        let failed = |e: WavError| anyhow::anyhow!("finishing {name}: {e}");
        let wav = match (self.wav.take(), self.sink.take()) {
            (Some(wav), _) => wav,
            (None, Some(sink)) => Wav::start(sink, 2, OPUS_RATE).map_err(failed)?,
            (None, None) => return Ok(self.report.clone()),
        };
        wav.finish().map_err(failed)?;
        Ok(self.report.clone())
    }
}
