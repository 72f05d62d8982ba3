//! Reading a job's output video: MPEG-TS segments from a trickle channel in, demuxed access
//! units (and, on request, decoded frames) out.
//!
//! The [`VideoSubscriber`] drives a [`TrickleSubscriber`] and feeds every chunk to a
//! [`TsDemuxer`] as it arrives, so an access unit is handed out as soon as its last packet is
//! in, not when its segment ends. Each segment is demuxed on its own (each starts with its own
//! PAT/PMT); a segment that breaks off mid-way loses only its unfinished access unit. What the
//! demuxer skipped in hostile or damaged input is counted in [`VideoOutputStats::demux`].

use std::collections::VecDeque;

use bytes::Bytes;
use gateway_core::error::TrickleError;
use gateway_media::ts_demux::{AccessUnit, DemuxStats, TsDemuxer, VideoStream};
use gateway_media::{Codec, DecodeError, H264Decoder, VideoFrame};
use thiserror::Error;

use crate::trickle::{IncomingSegment, TrickleSubscriber};

/// Why the output video could not be read.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum VideoOutputError {
    /// The trickle channel failed (see [`TrickleError::is_terminal`]).
    #[error(transparent)]
    Trickle(#[from] TrickleError),
    /// Frames were asked for but the stream's codec cannot be decoded here.
    #[error("cannot decode the output video: stream type {stream_type:#04x} is not H.264")]
    UnsupportedCodec {
        /// The PMT stream type of the video stream.
        stream_type: u8,
    },
    /// One access unit could not be decoded; the next call goes on with the next one.
    #[error("output access unit of segment {seq} could not be decoded: {source}")]
    Decode {
        /// The segment it came from.
        seq: i64,
        /// The decoder's reason.
        source: DecodeError,
    },
}

/// One access unit of the output video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputAccessUnit {
    /// Index of the trickle segment it arrived in.
    pub seq: i64,
    /// Presentation time, 90 kHz (33 bits, as written).
    pub pts: Option<i64>,
    /// Decode time, 90 kHz, when written apart from the PTS.
    pub dts: Option<i64>,
    /// A random access point (decoding can start here).
    pub keyframe: bool,
    /// The video stream as the PMT declared it (PID, stream type, codec).
    pub stream: VideoStream,
    /// The elementary stream bytes (H.264: Annex B NAL units).
    pub data: Bytes,
    /// The first unit after a live stream moved to another orchestrator: timestamps start
    /// over here.
    pub discontinuity: bool,
}

/// One decoded picture of the output video.
#[derive(Debug, Clone)]
pub struct OutputFrame {
    /// Index of the trickle segment its access unit arrived in.
    pub seq: i64,
    /// Whether its access unit was a keyframe.
    pub keyframe: bool,
    /// The picture (I420, PTS on the 90 kHz clock).
    pub frame: VideoFrame,
}

/// Counters of one [`VideoSubscriber`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VideoOutputStats {
    /// Segments started.
    pub segments: u64,
    /// Segments that broke off before their end.
    pub segments_cut_short: u64,
    /// Access units handed out.
    pub access_units: u64,
    /// Frames decoded (by [`VideoSubscriber::next_frame`]).
    pub frames_decoded: u64,
    /// Times the stream moved to another orchestrator's channel (a swap).
    pub discontinuities: u64,
    /// What the demuxer read and skipped, over all segments.
    pub demux: DemuxStats,
}

/// Access units (or frames) of an MPEG-TS trickle channel.
pub struct VideoSubscriber {
    subscriber: TrickleSubscriber,
    demuxer: TsDemuxer,
    segment: Option<IncomingSegment>,
    ready: VecDeque<OutputAccessUnit>,
    decoder: Option<H264Decoder>,
    stats: VideoOutputStats,
    /// The next unit queued is the first after a swap.
    discontinuity: bool,
}

impl std::fmt::Debug for VideoSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoSubscriber").field("stats", &self.stats()).finish_non_exhaustive()
    }
}

impl VideoSubscriber {
    /// Reads the MPEG-TS channel of `subscriber`.
    pub fn new(subscriber: TrickleSubscriber) -> VideoSubscriber {
        VideoSubscriber {
            subscriber,
            demuxer: TsDemuxer::new(),
            segment: None,
            ready: VecDeque::new(),
            decoder: None,
            stats: VideoOutputStats::default(),
            discontinuity: false,
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> VideoOutputStats {
        VideoOutputStats { demux: self.demuxer.stats(), ..self.stats }
    }

    /// The next access unit; `Ok(None)` at the end of the stream.
    pub async fn next_access_unit(&mut self) -> Result<Option<OutputAccessUnit>, VideoOutputError> {
        loop {
            if let Some(unit) = self.ready.pop_front() {
                self.stats.access_units += 1;
                return Ok(Some(unit));
            }
            let Some(segment) = self.segment.as_mut() else {
                match self.subscriber.next_segment().await? {
                    Some(segment) => {
                        self.stats.segments += 1;
                        if segment.discontinuity() {
                            // Another orchestrator's stream: its tables and counters start over.
                            self.stats.discontinuities += 1;
                            self.demuxer.abandon();
                            self.discontinuity = true;
                        }
                        self.segment = Some(segment);
                        continue;
                    }
                    None => return Ok(None),
                }
            };
            let seq = segment.seq();
            match segment.chunk().await {
                Ok(Some(chunk)) => {
                    let units = self.demuxer.push(&chunk);
                    self.queue(seq, units);
                }
                Ok(None) => {
                    self.segment = None;
                    let units = self.demuxer.finish();
                    self.queue(seq, units);
                }
                Err(e) => {
                    // Only this segment is lost; the next one is read as usual.
                    tracing::debug!(error = %e, seq, "output segment cut short");
                    self.segment = None;
                    self.stats.segments_cut_short += 1;
                    self.demuxer.abandon();
                }
            }
        }
    }

    /// The next decoded picture; `Ok(None)` at the end of the stream. Decoding (openh264, a
    /// few milliseconds per 720p frame) runs on the calling task. Only H.264 is decoded.
    pub async fn next_frame(&mut self) -> Result<Option<OutputFrame>, VideoOutputError> {
        loop {
            let Some(unit) = self.next_access_unit().await? else { return Ok(None) };
            if unit.stream.codec != Some(Codec::H264) {
                return Err(VideoOutputError::UnsupportedCodec { stream_type: unit.stream.stream_type });
            }
            let decoder = match self.decoder.as_mut() {
                Some(d) => d,
                None => self.decoder.insert(
                    H264Decoder::new()
                        .map_err(|source| VideoOutputError::Decode { seq: unit.seq, source })?,
                ),
            };
            let pts = unit.pts.or(unit.dts).unwrap_or(0);
            match decoder.decode(&unit.data, pts) {
                Ok(Some(frame)) => {
                    self.stats.frames_decoded += 1;
                    return Ok(Some(OutputFrame { seq: unit.seq, keyframe: unit.keyframe, frame }));
                }
                Ok(None) => continue,
                Err(source) => return Err(VideoOutputError::Decode { seq: unit.seq, source }),
            }
        }
    }

    /// Stops reading (cancels the preconnected GET); later calls return `Ok(None)` once what
    /// was already demuxed has been handed out.
    pub fn close(&mut self) {
        self.segment = None;
        self.subscriber.close();
    }

    fn queue(&mut self, seq: i64, units: Vec<AccessUnit>) {
        for u in units {
            let discontinuity = std::mem::take(&mut self.discontinuity);
            self.ready.push_back(OutputAccessUnit {
                seq,
                pts: u.pts,
                dts: u.dts,
                keyframe: u.keyframe,
                stream: u.stream,
                data: u.data,
                discontinuity,
            });
        }
    }
}
