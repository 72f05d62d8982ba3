//! AV1 encoding with rav1e (pure Rust plus nasm assembly), for orchestrators that want AV1.
//!
//! Experimental and slow on small machines. Measured on 2 vCPUs at speed 10 with asm and 2
//! tiles: about 50 fps at 640x360 on easy content and under 20 fps at 1280x720 (this crate's
//! bench, on a machine shared with other builds: 36-40 fps at 360p and 15.5-17.5 fps at 720p on
//! the test pattern, 5-6 fps at 360p with per-pixel noise), so live 30 fps is only realistic at 360p or
//! below on simple content. rav1e's one-pass bitrate mode also overshoots its target by 2-7x on
//! short runs.
//!
//! Settings: `low_latency` (no frame reordering, so packets come out in input order; pts ==
//! dts), keyframes forced by media time like H.264, rav1e's own scene-cut keyframes off,
//! 2 tiles so both cores work on every frame (rav1e has no frame parallelism in low-latency
//! mode). Every AV1 encoder of the process encodes on one rayon pool of a thread per core
//! (rav1e would build a pool per encoder): a hundred AV1 streams cost no more threads than one.
//! The pool is our own, not rayon's global one: rav1e runs each whole encode call inside it,
//! as it did in its per-encoder pools, and a service's own rayon work does not queue behind
//! video. Live CPU measured the same as with per-encoder pools (BENCHMARKS.md, scenario 3). rav1e writes the
//! sequence header OBU into every key frame's temporal unit, so every keyframe is a random
//! access point.
//!
//! AV1 cannot go into our MPEG-TS (Debian's ffmpeg 5.1 does not demux AV1 from TS), so packets
//! go into IVF: see [`crate::ivf`].

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use rav1e::prelude::{
    Config, Context, EncoderConfig, EncoderStatus, FrameParameters, FrameType, FrameTypeOverride, Opaque,
    SceneDetectionSpeed, SpeedSettings,
};

use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::encoder::{
    check_frame, validate_common, Codec, ConfigError, EncodeError, EncodedPacket, KeyframeClock,
    VideoEncoder, DEFAULT_KEYFRAME_INTERVAL,
};
use crate::frame::VideoFrame;
use crate::time::Rational;

/// rav1e's fastest preset, the only one near real time on 2 cores.
pub const DEFAULT_AV1_SPEED: u8 = 10;

/// Settings for [`Av1Encoder`].
#[derive(Clone, Debug, PartialEq)]
pub struct Av1Config {
    /// Frame width in pixels (even).
    pub width: u32,
    /// Frame height in pixels (even).
    pub height: u32,
    /// Nominal frames per second (rav1e's time base and rate control).
    pub frame_rate: Rational,
    /// Target bitrate in bits per second (one-pass; expect overshoot, see module docs).
    pub bitrate_bps: u32,
    /// Media time between forced keyframes.
    pub keyframe_interval: Duration,
    /// rav1e speed preset 0 (slowest) ..= 10 (fastest).
    pub speed: u8,
    /// Tiles per frame, encoded in parallel on the pool every AV1 encoder of the process
    /// shares.
    pub tiles: usize,
}

impl Av1Config {
    /// Defaults for a `width x height` stream: 30 fps, 800 kbit/s, keyframe every 2 s,
    /// speed 10, 2 tiles.
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            frame_rate: Rational::new(30, 1),
            bitrate_bps: 800_000,
            keyframe_interval: DEFAULT_KEYFRAME_INTERVAL,
            speed: DEFAULT_AV1_SPEED,
            tiles: 2,
        }
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_common(self.width, self.height, self.frame_rate, self.keyframe_interval)?;
        if self.bitrate_bps == 0 {
            return Err(ConfigError::ZeroBitrate);
        }
        if i32::try_from(self.bitrate_bps).is_err() {
            return Err(ConfigError::Invalid(format!(
                "AV1 bitrate {} bit/s is above rav1e's limit of {} bit/s",
                self.bitrate_bps,
                i32::MAX
            )));
        }
        if self.speed > 10 {
            return Err(ConfigError::Invalid(format!(
                "AV1 speed {} is out of range; rav1e presets are 0 (slowest) to 10 (fastest)",
                self.speed
            )));
        }
        if self.tiles == 0 {
            return Err(ConfigError::Invalid("AV1 tiles is 0; give at least 1".into()));
        }
        Ok(())
    }
}

/// AV1 encoder over rav1e; see the module docs for how it is tuned.
pub struct Av1Encoder {
    config: Av1Config,
    ctx: Context<u8>,
    clock: KeyframeClock,
    last_pts: Option<i64>,
    flushed: bool,
}

impl std::fmt::Debug for Av1Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Av1Encoder")
            .field("config", &self.config)
            .field("last_pts", &self.last_pts)
            .finish_non_exhaustive()
    }
}

/// The one rayon pool of every AV1 encoder, a thread per core, made with the first encoder.
fn shared_pool() -> Result<Arc<ThreadPool>, EncodeError> {
    static POOL: OnceLock<Result<Arc<ThreadPool>, String>> = OnceLock::new();
    POOL.get_or_init(|| {
        ThreadPoolBuilder::new()
            .thread_name(|i| format!("av1-encoder-{i}"))
            .build()
            .map(Arc::new)
            .map_err(|e| e.to_string())
    })
    .clone()
    .map_err(|e| backend(format!("cannot start the AV1 thread pool: {e}")))
}

fn backend(message: impl ToString) -> EncodeError {
    EncodeError::Backend { codec: Codec::Av1, message: message.to_string() }
}

impl Av1Encoder {
    /// Creates an encoder; fails on an invalid configuration.
    pub fn new(config: Av1Config) -> Result<Self, EncodeError> {
        config.validate()?;
        let mut enc = EncoderConfig::with_speed_preset(config.speed);
        enc.width = config.width as usize;
        enc.height = config.height as usize;
        enc.time_base =
            rav1e::prelude::Rational::new(u64::from(config.frame_rate.den), u64::from(config.frame_rate.num));
        enc.low_latency = true;
        enc.bitrate = config.bitrate_bps as i32;
        // 0 = no automatic keyframe interval: the media-time clock forces them.
        enc.set_key_frame_interval(0, 0);
        enc.tiles = config.tiles;
        let mut speed = SpeedSettings::from_preset(config.speed);
        speed.scene_detection_mode = SceneDetectionSpeed::None;
        enc.speed_settings = speed;
        let ctx = Config::new()
            .with_encoder_config(enc)
            .with_thread_pool(shared_pool()?)
            .new_context::<u8>()
            .map_err(|e| EncodeError::Config(ConfigError::Invalid(format!("rav1e: {e}"))))?;
        Ok(Self {
            clock: KeyframeClock::new(config.keyframe_interval),
            config,
            ctx,
            last_pts: None,
            flushed: false,
        })
    }

    /// The configuration this encoder was built with.
    pub fn config(&self) -> &Av1Config {
        &self.config
    }

    /// The `av1C` payload (4 bytes + sequence header OBU) for containers that need it
    /// out of band, such as MP4.
    pub fn container_sequence_header(&self) -> Vec<u8> {
        self.ctx.container_sequence_header()
    }

    /// Pulls every packet rav1e has ready.
    fn drain(&mut self, out: &mut Vec<EncodedPacket>) -> Result<(), EncodeError> {
        loop {
            match self.ctx.receive_packet() {
                Ok(packet) => {
                    let pts = packet
                        .opaque
                        .and_then(|o| o.downcast::<i64>().ok())
                        .map(|b| *b)
                        .ok_or_else(|| backend("packet lost its timestamp"))?;
                    // The clock was advanced when the key frame was forced (scene cuts are
                    // off), so packets arriving late must not move it back.
                    let keyframe = packet.frame_type == FrameType::KEY;
                    out.push(EncodedPacket {
                        codec: Codec::Av1,
                        data: Bytes::from(packet.data),
                        pts,
                        dts: pts,
                        keyframe,
                    });
                }
                Err(EncoderStatus::Encoded) => continue,
                Err(EncoderStatus::NeedMoreData | EncoderStatus::LimitReached) => return Ok(()),
                Err(e) => return Err(backend(e)),
            }
        }
    }
}

impl VideoEncoder for Av1Encoder {
    fn codec(&self) -> Codec {
        Codec::Av1
    }

    fn dimensions(&self) -> (u32, u32) {
        (self.config.width, self.config.height)
    }

    fn encode(&mut self, frame: &VideoFrame) -> Result<Vec<EncodedPacket>, EncodeError> {
        if self.flushed {
            return Err(EncodeError::Flushed);
        }
        let pts = check_frame(frame, self.config.width, self.config.height, self.last_pts)?;
        let mut input = self.ctx.new_frame();
        for (i, plane) in input.planes.iter_mut().enumerate() {
            plane.copy_from_raw_u8(frame.plane(i), frame.stride(i), 1);
        }
        let force = self.clock.is_due(pts);
        // rav1e may emit this frame a few calls later; the clock must not ask again meanwhile.
        if force {
            self.clock.keyframe_at(pts);
        }
        let params = FrameParameters {
            frame_type_override: if force { FrameTypeOverride::Key } else { FrameTypeOverride::No },
            opaque: Some(Opaque::new(pts)),
            ..Default::default()
        };
        self.ctx.send_frame((input, params)).map_err(backend)?;
        self.last_pts = Some(pts);
        let mut out = Vec::new();
        self.drain(&mut out)?;
        Ok(out)
    }

    fn request_keyframe(&mut self) {
        self.clock.request();
    }

    fn flush(&mut self) -> Result<Vec<EncodedPacket>, EncodeError> {
        if self.flushed {
            return Ok(Vec::new());
        }
        self.flushed = true;
        self.ctx.flush();
        let mut out = Vec::new();
        self.drain(&mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::TestPattern;

    #[test]
    fn every_frame_comes_out_in_order_with_forced_keyframes() {
        let mut cfg = Av1Config::new(64, 48);
        cfg.keyframe_interval = Duration::from_millis(200);
        let mut enc = Av1Encoder::new(cfg).unwrap();
        let pattern = TestPattern::new(64, 48, Rational::new(30, 1)).unwrap();
        let mut pkts = Vec::new();
        for i in 0..14 {
            pkts.extend(enc.encode(&pattern.frame(i)).unwrap());
        }
        pkts.extend(enc.flush().unwrap());
        let pts: Vec<i64> = pkts.iter().map(|p| p.pts).collect();
        assert_eq!(pts, (0..14).map(|i| i * 3000).collect::<Vec<_>>());
        let keys: Vec<usize> = (0..14).filter(|&i| pkts[i].keyframe).collect();
        // 200 ms at 30 fps = every 6 frames.
        assert_eq!(keys, vec![0, 6, 12]);
        assert!(pkts.iter().all(|p| p.codec == Codec::Av1 && !p.data.is_empty()));
        assert_eq!(enc.encode(&pattern.frame(20)).unwrap_err(), EncodeError::Flushed);
    }

    #[test]
    fn rejects_bad_config() {
        let mut c = Av1Config::new(64, 48);
        c.speed = 11;
        assert!(matches!(Av1Encoder::new(c), Err(EncodeError::Config(ConfigError::Invalid(_)))));
        assert!(matches!(
            Av1Encoder::new(Av1Config::new(63, 48)),
            Err(EncodeError::Config(ConfigError::Size(_)))
        ));
        let mut c = Av1Config::new(64, 48);
        c.frame_rate = Rational::new(30, 0);
        assert!(matches!(Av1Encoder::new(c), Err(EncodeError::Config(ConfigError::ZeroFrameRate { .. }))));
    }
}
