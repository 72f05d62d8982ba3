//! H.264 encoding with openh264 (Cisco's BSD-licensed encoder, built from bundled source with
//! its assembly when nasm is present): the default codec for live video.
//!
//! Tuned for live segments: no B-frames (openh264 never emits them, so pts == dts), a keyframe
//! forced by media time (every 2 s by default, see [`KeyframeClock`]), openh264's own periodic
//! and scene-change IDRs off so keyframes land only where segments are cut, SPS/PPS in-band in
//! front of every IDR (re-inserted from a cache should openh264 ever omit them), bitrate rate
//! control, and frame skipping disabled so every input frame yields exactly one access unit.
//!
//! With skipping off, openh264 logs "bitrate can't be controlled ... without enabling skip
//! frame" once per encoder (through `tracing`, see `openh264_log`). It still adapts QP: a test holds noisy 320x180 at a
//! 400 kbit/s target within 15% (measured 402 kbit/s); easy content undershoots. Dropping
//! frames is the [`crate::FrameQueue`]'s job, where it is counted.
//!
//! Speed (release, 2 vCPUs shared with other builds, asm on; `benches/benches/media.rs`):
//! 1000-1400 fps at 640x360 and 200-250 fps at 1280x720 on the test pattern, 230-390 / 65-85
//! fps with per-pixel temporal noise. An unloaded machine measured 1420 / 423 fps on ffmpeg's
//! testsrc2. Either way, 10x headroom over live 30 fps at 720p.

use std::time::Duration;

use bytes::Bytes;
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, RateControlMode,
    SpsPpsStrategy, UsageType,
};
use openh264::formats::YUVSource;
use openh264::{OpenH264API, Timestamp};

use crate::encoder::{
    check_frame, validate_common, Codec, ConfigError, EncodeError, EncodedPacket, KeyframeClock,
    VideoEncoder, DEFAULT_KEYFRAME_INTERVAL,
};
use crate::frame::VideoFrame;
use crate::time::Rational;

use super::nal::{nal_type, NAL_IDR, NAL_PPS, NAL_SPS};

/// Settings for [`H264Encoder`].
#[derive(Clone, Debug, PartialEq)]
pub struct H264Config {
    /// Frame width in pixels (even).
    pub width: u32,
    /// Frame height in pixels (even).
    pub height: u32,
    /// Nominal frames per second; rate control spends the bitrate over this many frames.
    pub frame_rate: Rational,
    /// Target bitrate in bits per second.
    pub bitrate_bps: u32,
    /// Media time between forced keyframes (IDR).
    pub keyframe_interval: Duration,
    /// openh264 worker threads; 1 by default because 2 measured no faster up to 720p.
    pub threads: u16,
    /// How hard openh264 searches for a good encoding; [`H264Complexity::Low`] by default.
    pub complexity: H264Complexity,
}

/// openh264's encoding effort (its `iComplexityMode`): how many modes and motion candidates
/// it tries per macroblock.
///
/// `Low` is the default: on five 720p sources with the live settings its median CPU per frame
/// was 4-28 % below `Medium`'s back to back and 7-18 % below at live pace, at the same bitrate
/// and within 0.1 dB PSNR (`benches` binary `h264_tuning`, figures in BENCHMARKS.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum H264Complexity {
    /// Fewest modes tried: fastest.
    #[default]
    Low,
    /// openh264's own default.
    Medium,
    /// Most modes tried: slowest.
    High,
}

impl H264Complexity {
    fn to_openh264(self) -> Complexity {
        match self {
            H264Complexity::Low => Complexity::Low,
            H264Complexity::Medium => Complexity::Medium,
            H264Complexity::High => Complexity::High,
        }
    }
}

impl H264Config {
    /// Defaults for a `width x height` stream: 30 fps, 1 Mbit/s, keyframe every 2 s, 1 thread,
    /// low complexity.
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            frame_rate: Rational::new(30, 1),
            bitrate_bps: 1_000_000,
            keyframe_interval: DEFAULT_KEYFRAME_INTERVAL,
            threads: 1,
            complexity: H264Complexity::default(),
        }
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_common(self.width, self.height, self.frame_rate, self.keyframe_interval)?;
        if self.bitrate_bps == 0 {
            return Err(ConfigError::ZeroBitrate);
        }
        // openh264 rejects anything above level 5.2 (3840x2160 either way round).
        if self.width.max(self.height) > 3840 || self.width.min(self.height) > 2160 {
            return Err(ConfigError::Invalid(format!(
                "H.264 size {}x{} exceeds openh264's 3840x2160 limit",
                self.width, self.height
            )));
        }
        Ok(())
    }
}

/// H.264 encoder over openh264; see the module docs for how it is tuned.
pub struct H264Encoder {
    config: H264Config,
    encoder: Encoder,
    clock: KeyframeClock,
    last_pts: Option<i64>,
    /// SPS+PPS NAL units (with start codes) of the last IDR that carried them, to re-insert
    /// should openh264 ever emit an IDR without them.
    parameter_sets: Vec<u8>,
    skipped: u64,
    flushed: bool,
    /// Added to every timestamp handed to openh264, so a recycled encoder (see
    /// [`crate::H264EncoderPool`]) never sees its clock run backwards.
    timestamp_base_ms: u64,
    /// The last timestamp handed to openh264.
    last_timestamp_ms: u64,
    /// Recycled and not yet fed: the next frame must be an IDR (openh264 would not start one).
    restart_pending: bool,
}

impl std::fmt::Debug for H264Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Encoder")
            .field("config", &self.config)
            .field("last_pts", &self.last_pts)
            .field("skipped", &self.skipped)
            .finish_non_exhaustive()
    }
}

impl H264Encoder {
    /// Creates an encoder; fails on an invalid configuration.
    pub fn new(config: H264Config) -> Result<Self, EncodeError> {
        config.validate()?;
        let api = OpenH264API::from_source();
        let oh_config = EncoderConfig::new()
            .usage_type(UsageType::CameraVideoRealTime)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(config.bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(config.frame_rate.as_f64() as f32))
            // Every frame must come out: the frame queue, not the encoder, decides what to drop.
            .skip_frames(false)
            // Keyframes only where we force them, so segment boundaries are predictable.
            .intra_frame_period(IntraFramePeriod::from_num_frames(0))
            .scene_change_detect(false)
            .sps_pps_strategy(SpsPpsStrategy::ConstantId)
            .complexity(config.complexity.to_openh264())
            .num_threads(config.threads);
        let mut encoder = Encoder::with_api_config(api, oh_config).map_err(backend)?;
        if let Err(status) = super::openh264_log::route_to_tracing(&mut encoder) {
            // Logging is not worth refusing to encode: the lines fall back to stderr.
            tracing::debug!(status, "openh264 refused the trace callback");
        }
        Ok(Self {
            clock: KeyframeClock::new(config.keyframe_interval),
            config,
            encoder,
            last_pts: None,
            parameter_sets: Vec::new(),
            skipped: 0,
            flushed: false,
            timestamp_base_ms: 0,
            last_timestamp_ms: 0,
            restart_pending: false,
        })
    }

    /// Makes a used encoder ready for a new, independent stream with the same configuration:
    /// media time restarts, the next frame is an IDR with its parameter sets, and openh264's
    /// clock keeps running forward. Skips openh264's setup, whose buffers (a fixed
    /// 1920x1088 downsampling pair, ~6 MiB at any frame size) are the costly part.
    pub(crate) fn recycle(&mut self) {
        self.clock = KeyframeClock::new(self.config.keyframe_interval);
        self.timestamp_base_ms = self.last_timestamp_ms.saturating_add(self.frame_interval_ms());
        self.restart_pending |= self.last_pts.is_some();
        self.last_pts = None;
        self.skipped = 0;
        self.flushed = false;
    }

    fn frame_interval_ms(&self) -> u64 {
        let rate = self.config.frame_rate.as_f64();
        if rate > 0.0 {
            (1000.0 / rate).ceil() as u64
        } else {
            1
        }
    }

    /// The configuration this encoder was built with.
    pub fn config(&self) -> &H264Config {
        &self.config
    }

    /// Frames openh264 dropped despite frame skipping being off (expected to stay 0).
    pub fn skipped_frames(&self) -> u64 {
        self.skipped
    }
}

fn backend(e: openh264::Error) -> EncodeError {
    EncodeError::Backend { codec: Codec::H264, message: e.to_string() }
}

/// Borrows a [`VideoFrame`] as openh264's input type without copying pixels.
struct I420Source<'a>(&'a VideoFrame);

impl YUVSource for I420Source<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.0.width() as usize, self.0.height() as usize)
    }

    fn strides(&self) -> (usize, usize, usize) {
        (self.0.stride(0), self.0.stride(1), self.0.stride(2))
    }

    fn y(&self) -> &[u8] {
        self.0.y()
    }

    fn u(&self) -> &[u8] {
        self.0.u()
    }

    fn v(&self) -> &[u8] {
        self.0.v()
    }
}

impl VideoEncoder for H264Encoder {
    fn codec(&self) -> Codec {
        Codec::H264
    }

    fn dimensions(&self) -> (u32, u32) {
        (self.config.width, self.config.height)
    }

    fn encode(&mut self, frame: &VideoFrame) -> Result<Vec<EncodedPacket>, EncodeError> {
        if self.flushed {
            return Err(EncodeError::Flushed);
        }
        let pts = check_frame(frame, self.config.width, self.config.height, self.last_pts)?;
        // The very first frame is an IDR anyway, and openh264 is only initialised by its
        // first encode call, so forcing is only meaningful afterwards.
        if self.restart_pending || (self.last_pts.is_some() && self.clock.is_due(pts)) {
            self.encoder.force_intra_frame();
        }
        let millis = self.timestamp_base_ms.saturating_add(u64::try_from(pts.max(0) / 90).unwrap_or(0));
        let bitstream =
            self.encoder.encode_at(&I420Source(frame), Timestamp::from_millis(millis)).map_err(backend)?;
        self.last_pts = Some(pts);
        self.last_timestamp_ms = millis;
        self.restart_pending = false;

        let frame_type = bitstream.frame_type();
        if matches!(frame_type, FrameType::Skip | FrameType::Invalid) {
            self.skipped += 1;
            return Ok(Vec::new());
        }

        // Gather NAL units; note whether the parameter sets came with this IDR.
        let mut nals = Vec::with_capacity(4096);
        let mut sets = Vec::new();
        let mut idr = false;
        for l in 0..bitstream.num_layers() {
            let Some(layer) = bitstream.layer(l) else {
                continue;
            };
            for n in 0..layer.nal_count() {
                let Some(nal) = layer.nal_unit(n) else {
                    continue;
                };
                match nal_type(nal) {
                    Some(NAL_SPS) | Some(NAL_PPS) => sets.extend_from_slice(nal),
                    Some(NAL_IDR) => idr = true,
                    _ => {}
                }
                nals.extend_from_slice(nal);
            }
        }
        let keyframe = idr || frame_type == FrameType::IDR;
        let data = if keyframe {
            self.clock.keyframe_at(pts);
            if sets.is_empty() && !self.parameter_sets.is_empty() {
                // In-band parameter sets before every IDR: each segment must decode alone.
                let mut with_sets = self.parameter_sets.clone();
                with_sets.extend_from_slice(&nals);
                with_sets
            } else {
                if !sets.is_empty() {
                    self.parameter_sets = sets;
                }
                nals
            }
        } else {
            nals
        };
        Ok(vec![EncodedPacket { codec: Codec::H264, data: Bytes::from(data), pts, dts: pts, keyframe }])
    }

    fn request_keyframe(&mut self) {
        self.clock.request();
    }

    fn flush(&mut self) -> Result<Vec<EncodedPacket>, EncodeError> {
        // openh264 has no lookahead or reordering: nothing is ever buffered.
        self.flushed = true;
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::nal::nal_unit_types;
    use crate::pattern::TestPattern;

    #[test]
    fn keyframes_by_media_time_with_parameter_sets() {
        let mut cfg = H264Config::new(160, 96);
        cfg.keyframe_interval = Duration::from_millis(500);
        let mut enc = H264Encoder::new(cfg).unwrap();
        let pattern = TestPattern::new(160, 96, Rational::new(30, 1)).unwrap();
        let mut keys = Vec::new();
        for i in 0..40 {
            let pkts = enc.encode(&pattern.frame(i)).unwrap();
            assert_eq!(pkts.len(), 1, "one access unit per frame");
            let p = &pkts[0];
            assert_eq!(p.pts, i as i64 * 3000);
            assert_eq!(p.dts, p.pts);
            let types = nal_unit_types(&p.data);
            if p.keyframe {
                keys.push(i);
                let idr = types.iter().position(|&t| t == NAL_IDR).unwrap();
                assert!(types[..idr].contains(&NAL_SPS) && types[..idr].contains(&NAL_PPS));
            } else {
                assert!(!types.contains(&NAL_IDR), "frame {i}: {types:?}");
            }
        }
        // 0.5 s at 30 fps = every 15 frames.
        assert_eq!(keys, vec![0, 15, 30]);
        enc.request_keyframe();
        assert!(enc.encode(&pattern.frame(40)).unwrap()[0].keyframe);
        assert_eq!(enc.skipped_frames(), 0);
    }

    /// Adds per-pixel temporal noise (+-12) to luma: hard content that makes rate control work.
    fn noisy(frame: &VideoFrame, seed: &mut u64) -> VideoFrame {
        let mut data = frame.y().to_vec();
        for px in data.iter_mut() {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *px = (i16::from(*px) + (*seed % 25) as i16 - 12).clamp(16, 235) as u8;
        }
        data.extend_from_slice(frame.u());
        data.extend_from_slice(frame.v());
        VideoFrame::from_i420(frame.width(), frame.height(), frame.pts(), frame.time_base(), data).unwrap()
    }

    #[test]
    fn bitrate_mode_tracks_the_target_on_hard_content() {
        let mut cfg = H264Config::new(320, 180);
        cfg.bitrate_bps = 400_000;
        let mut enc = H264Encoder::new(cfg).unwrap();
        let pattern = TestPattern::new(320, 180, Rational::new(30, 1)).unwrap();
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut bytes = 0usize;
        let mut frames = 0;
        for i in 0..90 {
            let out = enc.encode(&noisy(&pattern.frame(i), &mut seed)).unwrap();
            frames += out.len();
            bytes += out.iter().map(|p| p.data.len()).sum::<usize>();
        }
        assert_eq!(frames, 90, "no frame skipped");
        let kbps = bytes as f64 * 8.0 / 3.0 / 1000.0;
        eprintln!("noisy 320x180 at a 400 kbit/s target: {kbps:.0} kbit/s");
        assert!((340.0..480.0).contains(&kbps), "{kbps:.0} kbit/s");
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            H264Encoder::new(H264Config::new(161, 96)),
            Err(EncodeError::Config(ConfigError::Size(_)))
        ));
        let mut zero = H264Config::new(160, 96);
        zero.frame_rate = Rational::new(0, 1);
        assert!(matches!(
            H264Encoder::new(zero),
            Err(EncodeError::Config(ConfigError::ZeroFrameRate { .. }))
        ));
        let mut zero = H264Config::new(160, 96);
        zero.bitrate_bps = 0;
        assert!(matches!(H264Encoder::new(zero), Err(EncodeError::Config(ConfigError::ZeroBitrate))));
        let mut enc = H264Encoder::new(H264Config::new(160, 96)).unwrap();
        let other = TestPattern::new(320, 180, Rational::new(30, 1)).unwrap();
        assert!(matches!(enc.encode(&other.frame(0)), Err(EncodeError::SizeMismatch { .. })));
        let p = TestPattern::new(160, 96, Rational::new(30, 1)).unwrap();
        enc.encode(&p.frame(3)).unwrap();
        assert_eq!(enc.encode(&p.frame(3)), Err(EncodeError::NonMonotonicPts { pts: 9000, previous: 9000 }));
        assert!(enc.flush().unwrap().is_empty());
        assert_eq!(enc.encode(&p.frame(4)), Err(EncodeError::Flushed));
    }
}
