//! MPEG-TS units into FLV tags, as an RTMP publisher sends them: the sans-IO half of RTMP
//! egress. It owns what a stream of tags must get right and an I/O loop should not care about:
//! video starts on a keyframe behind its sequence header, audio waits for video and sends its
//! own header once, and every tag is stamped in milliseconds from the first unit sent.

use crate::ts::demux::MediaUnit;

use super::{adts_frames, build, TICKS_PER_MS};

/// Which RTMP message a tag goes out as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlvTagKind {
    /// A video message (`VIDEODATA`).
    Video,
    /// An audio message (`AUDIODATA`).
    Audio,
}

/// One FLV tag body with the time it is sent at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvTag {
    /// Video or audio.
    pub kind: FlvTagKind,
    /// Milliseconds since the first unit of the stream.
    pub timestamp_ms: u32,
    /// A sequence header (configuration), not media.
    pub sequence_header: bool,
    /// The tag body.
    pub body: Vec<u8>,
}

/// Turns demuxed H.264 access units and AAC (ADTS) units into FLV tags, in order.
///
/// ```
/// use bytes::Bytes;
/// use livepeer_gateway_media::flv::{FlvRemuxer, FlvTagKind};
/// use livepeer_gateway_media::{AccessUnit, MediaUnit, VideoStream};
///
/// // An H.264 keyframe: SPS, PPS and an IDR slice, Annex B.
/// let data = Bytes::from_static(&[
///     0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x1E, 0, 0, 0, 1, 0x68, 0xCE, 0, 0, 0, 1, 0x65, 0x88,
/// ]);
/// let stream = VideoStream { pid: 256, stream_type: 0x1B, codec: None };
/// let key = AccessUnit { stream, pts: Some(90_000), dts: None, keyframe: true, data };
///
/// let mut remux = FlvRemuxer::new();
/// let mut tags = Vec::new();
/// remux.push(&MediaUnit::Video(key), &mut tags);
/// // The sequence header, then the frame, both at the stream's time 0.
/// assert_eq!(tags.len(), 2);
/// assert!(tags[0].sequence_header && !tags[1].sequence_header);
/// assert!(tags.iter().all(|t| t.kind == FlvTagKind::Video && t.timestamp_ms == 0));
/// ```
#[derive(Debug, Default)]
pub struct FlvRemuxer {
    /// The 90 kHz time of the first unit sent; tags are stamped from it.
    origin: Option<i64>,
    /// The video sequence header has gone out (and so media may follow).
    video_started: bool,
    /// The audio sequence header has gone out.
    audio_started: bool,
}

impl FlvRemuxer {
    /// A remuxer waiting for its first keyframe.
    pub fn new() -> FlvRemuxer {
        FlvRemuxer::default()
    }

    /// Whether video has started (a keyframe with its parameter sets came).
    pub fn started(&self) -> bool {
        self.video_started
    }

    /// Appends the tags for `unit` to `out`. Video before the first keyframe with an SPS and
    /// PPS is skipped, as is audio before video starts and audio without a time.
    pub fn push(&mut self, unit: &MediaUnit, out: &mut Vec<FlvTag>) {
        match unit {
            MediaUnit::Video(au) => {
                let dts = au.dts.or(au.pts).unwrap_or(0);
                if !self.video_started {
                    let Some(header) = au.keyframe.then(|| build::sequence_header(&au.data)).flatten() else {
                        return;
                    };
                    let at = self.ms(dts);
                    out.push(FlvTag {
                        kind: FlvTagKind::Video,
                        timestamp_ms: at,
                        sequence_header: true,
                        body: header,
                    });
                    self.video_started = true;
                }
                let composition = ((au.pts.unwrap_or(dts) - dts) / TICKS_PER_MS) as i32;
                out.push(FlvTag {
                    kind: FlvTagKind::Video,
                    timestamp_ms: self.ms(dts),
                    sequence_header: false,
                    body: build::nalu_tag(&au.data, au.keyframe, composition),
                });
            }
            MediaUnit::Audio(unit) => {
                let (Some(pts), true) = (unit.pts, self.video_started) else { return };
                let mut at = pts;
                for frame in adts_frames(&unit.data) {
                    if !self.audio_started {
                        out.push(FlvTag {
                            kind: FlvTagKind::Audio,
                            timestamp_ms: self.ms(pts),
                            sequence_header: true,
                            body: build::aac_sequence_header(frame.config),
                        });
                        self.audio_started = true;
                    }
                    out.push(FlvTag {
                        kind: FlvTagKind::Audio,
                        timestamp_ms: self.ms(at),
                        sequence_header: false,
                        body: build::aac_tag(frame.raw),
                    });
                    at += frame.duration_ticks();
                }
            }
        }
    }

    /// Milliseconds of `ticks` after the origin (set by the first call); earlier times are 0.
    fn ms(&mut self, ticks: i64) -> u32 {
        let origin = *self.origin.get_or_insert(ticks);
        ((ticks - origin).max(0) / TICKS_PER_MS) as u32
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::ts::demux::{AccessUnit, AudioStream, AudioUnit, VideoStream};

    const SPS_PPS_IDR: &[u8] =
        &[0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x1E, 0, 0, 0, 1, 0x68, 0xCE, 0, 0, 0, 1, 0x65, 0x88];
    const SLICE: &[u8] = &[0, 0, 0, 1, 0x41, 0x9A];

    fn video(pts: i64, dts: Option<i64>, keyframe: bool, data: &'static [u8]) -> MediaUnit {
        let stream = VideoStream { pid: 256, stream_type: 0x1B, codec: None };
        MediaUnit::Video(AccessUnit { stream, pts: Some(pts), dts, keyframe, data: Bytes::from_static(data) })
    }

    /// `frames` ADTS frames (AAC LC, 48 kHz, stereo) of 2 bytes each in one PES at `pts`.
    fn audio(pts: Option<i64>, frames: usize) -> MediaUnit {
        let mut data = Vec::new();
        for n in 0..frames {
            let length = 9u16;
            data.extend_from_slice(&[0xFF, 0xF1, (1 << 6) | (3 << 2), (2 << 6), (length >> 3) as u8]);
            data.extend_from_slice(&[(((length & 7) as u8) << 5) | 0x1F, 0xFC, n as u8, 0xAA]);
        }
        let stream = AudioStream { pid: 257, stream_type: 0x0F, codec: None, channels: None };
        MediaUnit::Audio(AudioUnit { stream, pts, trim: Default::default(), data: Bytes::from(data) })
    }

    fn pushed(remux: &mut FlvRemuxer, unit: MediaUnit) -> Vec<FlvTag> {
        let mut out = Vec::new();
        remux.push(&unit, &mut out);
        out
    }

    #[test]
    fn video_starts_on_a_keyframe_behind_its_sequence_header() {
        let mut remux = FlvRemuxer::new();
        assert!(pushed(&mut remux, video(0, None, false, SLICE)).is_empty(), "no keyframe yet");
        assert!(pushed(&mut remux, video(0, None, true, SLICE)).is_empty(), "a keyframe without an SPS");
        assert!(pushed(&mut remux, audio(Some(0), 1)).is_empty(), "audio waits for video");
        let tags = pushed(&mut remux, video(9000, None, true, SPS_PPS_IDR));
        assert_eq!(tags.len(), 2);
        assert_eq!(tags[0].body, build::sequence_header(SPS_PPS_IDR).unwrap());
        assert_eq!(tags[1].body, build::nalu_tag(SPS_PPS_IDR, true, 0));
        assert!(remux.started());
        // Later units: one tag each, stamped from the first; composition time from PTS - DTS.
        let tags = pushed(&mut remux, video(9000 + 3 * 3000, Some(9000 + 3000), false, SLICE));
        assert_eq!(tags.len(), 1);
        assert_eq!((tags[0].timestamp_ms, tags[0].sequence_header), (33, false));
        assert_eq!(tags[0].body, build::nalu_tag(SLICE, false, 66));
        // A time before the origin is sent at 0, not wrapped.
        assert_eq!(pushed(&mut remux, video(0, None, false, SLICE))[0].timestamp_ms, 0);
    }

    #[test]
    fn audio_sends_its_header_once_and_spaces_frames_by_their_length() {
        let mut remux = FlvRemuxer::new();
        pushed(&mut remux, video(90_000, None, true, SPS_PPS_IDR));
        assert!(pushed(&mut remux, audio(None, 1)).is_empty(), "audio without a time");
        let tags = pushed(&mut remux, audio(Some(90_000 + 900), 3));
        assert_eq!(tags.len(), 4);
        assert!(tags.iter().all(|t| t.kind == FlvTagKind::Audio));
        assert_eq!(tags[0].body, build::aac_sequence_header((1, 3, 2)));
        assert!(tags[0].sequence_header);
        // 1024 samples at 48 kHz is 1920 ticks, 21.3 ms.
        let times: Vec<u32> = tags[1..].iter().map(|t| t.timestamp_ms).collect();
        assert_eq!(times, [10, (900 + 1920) / 90, (900 + 3840) / 90]);
        assert_eq!(tags[1].body, build::aac_tag(&[0, 0xAA]));
        let again = pushed(&mut remux, audio(Some(90_000 + 9000), 1));
        assert_eq!(again.len(), 1, "no second header");
        assert!(pushed(&mut remux, audio(Some(0), 0)).is_empty(), "a PES without whole frames");
    }
}
