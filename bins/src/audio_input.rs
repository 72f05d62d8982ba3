//! `--audio FILE|-`: a WAV track (or headerless PCM, `--audio-raw`) beside the video of
//! `write-frames` and `byoc-write-frames` (`ffmpeg -i in.mp4 -f wav - | livepeer-gateway write-frames --input video.y4m --audio -`).
//! The header is read and checked before any job starts; the samples are read on a thread of
//! their own (a pipe may block) and handed to the stream in step with the video, so each
//! video frame goes out after the audio that plays before it.

use std::io::Read;
use std::path::Path;

use gateway_actors::media::{AudioTrackConfig, MediaError, VideoPublisher};
use gateway_media::audio::wav::{WavError, WavFormat, WavReader};
use gateway_media::AudioFrame;
use tokio::sync::mpsc;

use crate::cli::UsageError;

/// Audio frames of 20 ms, as the Opus encoder takes them.
const FRAMES_PER_SECOND: u32 = 50;

/// An open WAV input.
pub struct AudioInput {
    format: WavFormat,
    frames: mpsc::Receiver<Result<AudioFrame, WavError>>,
    /// Read but not yet due.
    next: Option<AudioFrame>,
    /// Why the input broke off, if it did.
    error: Option<String>,
}

impl AudioInput {
    /// Opens `path` (`-` for stdin) and reads its header, or takes it as headerless PCM of
    /// `raw`; a bad header is a usage error.
    pub fn open(path: &Path, raw: Option<WavFormat>) -> anyhow::Result<AudioInput> {
        let input: Box<dyn Read + Send> = if path.as_os_str() == "-" {
            Box::new(std::io::stdin())
        } else {
            Box::new(
                std::fs::File::open(path)
                    .map_err(|e| UsageError(format!("cannot open --audio {}: {e}", path.display())))?,
            )
        };
        let reader = match raw {
            Some(format) => WavReader::raw(input, format),
            None => WavReader::new(input),
        };
        let mut reader = reader.map_err(|e| UsageError(format!("--audio {}: {e}", path.display())))?;
        let format = reader.format();
        let len = (format.rate / FRAMES_PER_SECOND).max(1) as usize;
        let (tx, frames) = mpsc::channel(16);
        std::thread::spawn(move || loop {
            let item = match reader.next_frame(len) {
                Ok(Some(frame)) => Ok(frame),
                Ok(None) => return,
                Err(e) => Err(e),
            };
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed {
                return;
            }
        });
        Ok(AudioInput { format, frames, next: None, error: None })
    }

    /// The stream's audio track for this input: its channels folded to stereo at most.
    pub fn track(&self) -> AudioTrackConfig {
        AudioTrackConfig::opus(self.format.channels.min(2))
    }

    /// Hands `video` every frame that starts before `until` seconds of media time.
    pub async fn write_until(&mut self, video: &VideoPublisher, until: f64) -> Result<(), MediaError> {
        loop {
            if self.next.is_none() {
                match self.frames.recv().await {
                    Some(Ok(frame)) => self.next = Some(frame),
                    Some(Err(e)) => {
                        self.error = Some(e.to_string());
                        return Ok(());
                    }
                    None => return Ok(()),
                }
            }
            let Some(frame) = self.next.take_if(|f| (f.pts() as f64 / f64::from(f.rate())) < until) else {
                return Ok(());
            };
            video.write_audio(frame)?;
        }
    }

    /// Why the input broke off, if it did (what came before was sent).
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}
