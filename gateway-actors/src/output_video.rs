//! Reading a job's output video: MPEG-TS segments from a trickle channel in, demuxed access
//! units (and, on request, decoded frames) out; with [`VideoSubscriber::with_audio`], the audio
//! track's units (and decoded PCM) too, in the order they arrived.
//!
//! The [`VideoSubscriber`] drives a [`TrickleSubscriber`] and feeds every chunk to a
//! [`TsDemuxer`] as it arrives, so an access unit is handed out as soon as its last packet is
//! in, not when its segment ends. Each segment is demuxed on its own (each starts with its own
//! PAT/PMT); a segment that breaks off mid-way loses only its unfinished access unit. What the
//! demuxer skipped in hostile or damaged input is counted in [`VideoOutputStats::demux`].

use std::collections::VecDeque;

use bytes::Bytes;
use gateway_core::error::TrickleError;
use gateway_media::ts::opus::Trim;
use gateway_media::ts_demux::{AudioStream, AudioUnit, DemuxStats, MediaUnit, TsDemuxer, VideoStream};
use gateway_media::{AudioError, AudioFrame, AudioUnitDecoder, Codec, DecodeError, H264Decoder, VideoFrame};
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
    /// One audio unit could not be decoded (or its codec is not Opus); the next call goes on
    /// with the next one.
    #[error("output audio of segment {seq} could not be decoded: {source}")]
    AudioDecode {
        /// The segment it came from.
        seq: i64,
        /// The decoder's reason.
        source: AudioError,
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

/// One audio unit of the output (an Opus packet, or one PES of another codec).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputAudioUnit {
    /// Index of the trickle segment it arrived in.
    pub seq: i64,
    /// Presentation time, 90 kHz (33 bits, as written).
    pub pts: Option<i64>,
    /// Samples to drop at its start and end (Opus).
    pub trim: Trim,
    /// The audio stream as the PMT declared it (PID, stream type, codec, channels).
    pub stream: AudioStream,
    /// The packet.
    pub data: Bytes,
    /// The first unit after a live stream moved to another orchestrator.
    pub discontinuity: bool,
}

/// A unit of the output, video or audio, as [`VideoSubscriber::next_unit`] hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputUnit {
    /// A video access unit.
    Video(OutputAccessUnit),
    /// An audio unit (only from a subscriber made [`VideoSubscriber::with_audio`]).
    Audio(OutputAudioUnit),
}

/// Decoded audio of the output.
#[derive(Debug, Clone)]
pub struct OutputAudio {
    /// Index of the trickle segment its unit arrived in.
    pub seq: i64,
    /// The samples: 48 kHz, interleaved, PTS on the 90 kHz clock.
    pub frame: AudioFrame,
}

/// Decoded output, video or audio, as [`VideoSubscriber::next_media`] hands it out.
#[derive(Debug, Clone)]
pub enum OutputMedia {
    /// A picture.
    Video(OutputFrame),
    /// A block of samples.
    Audio(OutputAudio),
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
    /// Frames decoded (by [`VideoSubscriber::next_frame`] or [`VideoSubscriber::next_media`]).
    pub frames_decoded: u64,
    /// Audio units handed out (or decoded), with [`VideoSubscriber::with_audio`].
    pub audio_units: u64,
    /// Audio sample instants decoded (by [`VideoSubscriber::next_media`]), after trimming.
    pub audio_samples_decoded: u64,
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
    ready: VecDeque<OutputUnit>,
    decoder: Option<H264Decoder>,
    audio_decoder: AudioUnitDecoder,
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
    /// Reads the video of the MPEG-TS channel of `subscriber` (its audio is skipped).
    pub fn new(subscriber: TrickleSubscriber) -> VideoSubscriber {
        Self::with_demuxer(subscriber, TsDemuxer::new())
    }

    /// Reads the video and the audio track of the MPEG-TS channel of `subscriber`: use
    /// [`Self::next_unit`] or [`Self::next_media`] to get both.
    pub fn with_audio(subscriber: TrickleSubscriber) -> VideoSubscriber {
        Self::with_demuxer(subscriber, TsDemuxer::with_audio())
    }

    fn with_demuxer(subscriber: TrickleSubscriber, demuxer: TsDemuxer) -> VideoSubscriber {
        VideoSubscriber {
            subscriber,
            demuxer,
            segment: None,
            ready: VecDeque::new(),
            decoder: None,
            audio_decoder: AudioUnitDecoder::new(),
            stats: VideoOutputStats::default(),
            discontinuity: false,
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> VideoOutputStats {
        VideoOutputStats { demux: self.demuxer.stats(), ..self.stats }
    }

    /// The next video access unit; `Ok(None)` at the end of the stream. Audio units on the way
    /// are passed over (counted in [`VideoOutputStats::audio_units`]).
    pub async fn next_access_unit(&mut self) -> Result<Option<OutputAccessUnit>, VideoOutputError> {
        loop {
            match self.next_unit().await? {
                Some(OutputUnit::Video(unit)) => return Ok(Some(unit)),
                Some(OutputUnit::Audio(_)) => continue,
                None => return Ok(None),
            }
        }
    }

    /// The next unit, video or audio, in the order they arrived; `Ok(None)` at the end of the
    /// stream.
    pub async fn next_unit(&mut self) -> Result<Option<OutputUnit>, VideoOutputError> {
        loop {
            if let Some(unit) = self.ready.pop_front() {
                match &unit {
                    OutputUnit::Video(_) => self.stats.access_units += 1,
                    OutputUnit::Audio(_) => self.stats.audio_units += 1,
                }
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
                            self.audio_decoder.reset();
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
                    let units = self.demuxer.push_media(&chunk);
                    self.queue(seq, units);
                }
                Ok(None) => {
                    self.segment = None;
                    let units = self.demuxer.finish_media();
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
            if let Some(frame) = self.decode_video(unit)? {
                return Ok(Some(frame));
            }
        }
    }

    /// The next decoded picture or block of samples, in the order they arrived; `Ok(None)` at
    /// the end of the stream. Decoding runs on the calling task; only H.264 and Opus are
    /// decoded.
    pub async fn next_media(&mut self) -> Result<Option<OutputMedia>, VideoOutputError> {
        loop {
            match self.next_unit().await? {
                None => return Ok(None),
                Some(OutputUnit::Video(unit)) => {
                    if let Some(frame) = self.decode_video(unit)? {
                        return Ok(Some(OutputMedia::Video(frame)));
                    }
                }
                Some(OutputUnit::Audio(unit)) => {
                    if let Some(audio) = self.decode_audio(unit)? {
                        return Ok(Some(OutputMedia::Audio(audio)));
                    }
                }
            }
        }
    }

    /// Decodes one audio unit; `None` while the trim leaves nothing.
    fn decode_audio(&mut self, unit: OutputAudioUnit) -> Result<Option<OutputAudio>, VideoOutputError> {
        let seq = unit.seq;
        let demuxed = AudioUnit { stream: unit.stream, pts: unit.pts, trim: unit.trim, data: unit.data };
        let frame = self
            .audio_decoder
            .decode(&demuxed)
            .map_err(|source| VideoOutputError::AudioDecode { seq, source })?;
        self.stats.audio_samples_decoded = self.audio_decoder.samples();
        Ok(frame.map(|frame| OutputAudio { seq, frame }))
    }

    /// Decodes one video access unit; `None` while the decoder holds it back.
    fn decode_video(&mut self, unit: OutputAccessUnit) -> Result<Option<OutputFrame>, VideoOutputError> {
        if unit.stream.codec != Some(Codec::H264) {
            return Err(VideoOutputError::UnsupportedCodec { stream_type: unit.stream.stream_type });
        }
        let decoder = match self.decoder.as_mut() {
            Some(d) => d,
            None => self.decoder.insert(
                H264Decoder::new().map_err(|source| VideoOutputError::Decode { seq: unit.seq, source })?,
            ),
        };
        let pts = unit.pts.or(unit.dts).unwrap_or(0);
        match decoder.decode(&unit.data, pts) {
            Ok(Some(frame)) => {
                self.stats.frames_decoded += 1;
                Ok(Some(OutputFrame { seq: unit.seq, keyframe: unit.keyframe, frame }))
            }
            Ok(None) => Ok(None),
            Err(source) => Err(VideoOutputError::Decode { seq: unit.seq, source }),
        }
    }

    /// Stops reading (cancels the preconnected GET); later calls return `Ok(None)` once what
    /// was already demuxed has been handed out.
    pub fn close(&mut self) {
        self.segment = None;
        self.subscriber.close();
    }

    fn queue(&mut self, seq: i64, units: Vec<MediaUnit>) {
        for u in units {
            let discontinuity = std::mem::take(&mut self.discontinuity);
            self.ready.push_back(match u {
                MediaUnit::Video(u) => OutputUnit::Video(OutputAccessUnit {
                    seq,
                    pts: u.pts,
                    dts: u.dts,
                    keyframe: u.keyframe,
                    stream: u.stream,
                    data: u.data,
                    discontinuity,
                }),
                MediaUnit::Audio(u) => OutputUnit::Audio(OutputAudioUnit {
                    seq,
                    pts: u.pts,
                    trim: u.trim,
                    stream: u.stream,
                    data: u.data,
                    discontinuity,
                }),
            });
        }
    }
}
