//! MPEG-TS as `--input` of `write-frames` and `byoc-write-frames`: published as it is, cut on
//! its keyframes by `TsCutter`, through a passthrough `VideoPublisher` (no re-encoding), paced
//! by its timestamps unless `--no-pace`.
//!
//! The input is checked before any job is started: it must be TS and name a video stream within
//! its first [`VIDEO_SEARCH_LIMIT`] bytes; what was read for that is kept and published first.

use std::io::Read;

use bytes::Bytes;
use gateway_actors::media::VideoPublisher;
use gateway_media::ts::cutter::{TsCutter, TsCutterConfig, VIDEO_SEARCH_LIMIT};
use gateway_media::SegmentEvent;

use crate::cli::{MediaPacer, UsageError, PACED_STEP};

/// Bytes read from the input at a time.
const READ_CHUNK: usize = 64 * 1024;

/// Whether `start` (the input's first bytes) is MPEG-TS: a sync byte, and another a packet
/// later when there is that much.
pub fn looks_like_ts(start: &[u8]) -> bool {
    start.first() == Some(&0x47) && (start.len() <= 188 || start[188] == 0x47)
}

/// A TS input checked and ready to publish.
pub struct TsInput {
    cutter: TsCutter,
    /// Cut while checking the input, not published yet: events and their access units.
    ready: Vec<SegmentEvent>,
    ready_units: u64,
    /// The rest of the input, read on a thread of its own (a pipe may block).
    rest: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
}

impl TsInput {
    /// Reads `input` (whose first bytes, `start`, were read already) until its video stream is
    /// known; refuses it, with what is wrong, when it is not TS or has no video.
    pub fn open(start: Vec<u8>, mut input: Box<dyn Read + Send>, name: &str) -> Result<TsInput, UsageError> {
        let refuse = |e: gateway_media::ts::cutter::CutError| UsageError(format!("--input {name}: {e}"));
        let mut cutter = TsCutter::new(TsCutterConfig::default());
        let mut ready = cutter.push(&start).map_err(refuse)?;
        // Small reads: what is cut while checking goes out unpaced, so keep it short.
        let mut buf = vec![0u8; PACED_STEP];
        let mut ended = false;
        while cutter.video_stream().is_none() && cutter.stats().bytes_in < VIDEO_SEARCH_LIMIT {
            let n = match input.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(UsageError(format!("--input {name}: {e}"))),
            };
            if n == 0 {
                ended = true;
                break;
            }
            ready.extend(cutter.push(&buf[..n]).map_err(refuse)?);
        }
        if ended {
            ready.extend(cutter.finish().map_err(refuse)?);
        }
        if cutter.video_stream().is_none() {
            let bytes = cutter.stats().bytes_in;
            return Err(refuse(gateway_media::ts::cutter::CutError::NoVideo { bytes }));
        }
        let ready_units = cutter.stats().access_units;
        let rest = match ended {
            // Nothing left: an empty queue, closed.
            true => tokio::sync::mpsc::channel(1).1,
            false => crate::cli::read_on_thread(input, READ_CHUNK),
        };
        Ok(TsInput { cutter, ready, ready_units, rest })
    }

    /// Publishes the whole input through `video`, at the input's pace when `pace`. Answers the
    /// access units handed in and why the input broke off, if it did (what came before is
    /// published). An error is the stream refusing media (it has ended).
    pub async fn publish(
        mut self,
        video: &VideoPublisher,
        pace: bool,
        mut progress: impl FnMut(u64),
    ) -> Result<(u64, Option<String>), gateway_actors::media::MediaError> {
        let mut pacer = MediaPacer::default();
        video.write_cut(std::mem::take(&mut self.ready), self.ready_units).await?;
        let mut input_error = None;
        let piece = if pace { PACED_STEP } else { READ_CHUNK };
        'input: loop {
            let chunk = match self.rest.recv().await {
                Some(Ok(chunk)) => chunk,
                Some(Err(e)) => {
                    input_error = Some(format!("reading the input: {e}"));
                    break;
                }
                None => break,
            };
            for part in chunk.chunks(piece) {
                let before = self.cutter.stats().access_units;
                let events = match self.cutter.push(part) {
                    Ok(events) => events,
                    Err(e) => {
                        input_error = Some(e.to_string());
                        break 'input;
                    }
                };
                video.write_cut(events, self.cutter.stats().access_units - before).await?;
                progress(self.cutter.stats().access_units);
                if pace {
                    pacer.wait(self.cutter.clock()).await;
                }
            }
        }
        // The input ended, or broke off: what was whole goes out.
        let before = self.cutter.stats().access_units;
        match self.cutter.finish() {
            Ok(events) => video.write_cut(events, self.cutter.stats().access_units - before).await?,
            Err(e) => {
                input_error.get_or_insert(e.to_string());
            }
        }
        Ok((self.cutter.stats().access_units, input_error))
    }
}
