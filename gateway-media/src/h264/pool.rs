//! Reuse of openh264 encoders across streams, so a service that starts and ends jobs all day
//! keeps a flat memory footprint.
//!
//! Why: openh264 sets up, per encoder and at any frame size, a pair of 1920x1088 downsampling
//! buffers (~6 MiB) that it zeroes with `malloc` + `memset`, which compilers turn into `calloc`.
//! On fresh pages from the kernel that costs nothing resident, but once encoders have come and
//! gone the allocator (glibc and jemalloc alike) hands out recycled memory, and `calloc` must
//! then really zero it: each new encoder becomes ~6 MiB resident instead of ~1 MiB. A soak with
//! stream churn saw RSS climb ~9 MiB/min at 20 streams for that reason alone. Recycling the
//! encoder (forced IDR, media time restarted; see [`H264Encoder`]) skips the setup entirely,
//! and also makes a stream's start cheaper.
//!
//! The pool is bounded ([`H264EncoderPool::with_limits`]) and drops encoders idle for longer
//! than its time to live, checked whenever it is used; [`H264EncoderPool::clear`] lets them all
//! go at once.
//!
//! ```
//! use livepeer_gateway_media::{H264Config, H264EncoderPool, TestPattern, Rational, VideoEncoder};
//!
//! let pool = H264EncoderPool::new();
//! let pattern = TestPattern::new(160, 96, Rational::new(30, 1))?;
//! for _stream in 0..2 {
//!     let mut encoder = pool.encoder(H264Config::new(160, 96))?;
//!     let first = encoder.encode(&pattern.frame(0))?;
//!     assert!(first[0].keyframe, "every stream starts on an IDR");
//! } // dropped: back in the pool
//! assert_eq!((pool.stats().created, pool.stats().reused), (1, 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::encoder::{H264Config, H264Encoder};
use crate::encoder::{Codec, EncodeError, EncodedPacket, VideoEncoder};
use crate::frame::VideoFrame;

/// Idle encoders a pool keeps by default (each holds ~6 MiB of openh264 buffers).
pub const DEFAULT_MAX_IDLE: usize = 16;
/// How long an idle encoder is kept by default.
pub const DEFAULT_IDLE_TTL: Duration = Duration::from_secs(60);

/// A bounded set of idle [`H264Encoder`]s, shared by cloning (see the module docs for why).
#[derive(Clone)]
pub struct H264EncoderPool {
    inner: Arc<Mutex<PoolState>>,
}

struct PoolState {
    idle: Vec<(Instant, H264Encoder)>,
    max_idle: usize,
    ttl: Duration,
    stats: PoolStats,
}

/// What a pool has done since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Encoders built because no idle one matched.
    pub created: u64,
    /// Encoders handed out again.
    pub reused: u64,
    /// Encoders returned to the pool and kept.
    pub returned: u64,
    /// Encoders let go: pool full, idle too long, or broken by a backend error.
    pub dropped: u64,
    /// Encoders idle now.
    pub idle: usize,
}

impl std::fmt::Debug for H264EncoderPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264EncoderPool").field("stats", &self.stats()).finish_non_exhaustive()
    }
}

impl Default for H264EncoderPool {
    fn default() -> Self {
        Self::new()
    }
}

impl H264EncoderPool {
    /// A pool with [`DEFAULT_MAX_IDLE`] and [`DEFAULT_IDLE_TTL`].
    pub fn new() -> Self {
        Self::with_limits(DEFAULT_MAX_IDLE, DEFAULT_IDLE_TTL)
    }

    /// A pool keeping at most `max_idle` idle encoders, each for at most `ttl`
    /// (`max_idle` 0 keeps none: every encoder is built fresh).
    pub fn with_limits(max_idle: usize, ttl: Duration) -> Self {
        let state = PoolState { idle: Vec::new(), max_idle, ttl, stats: PoolStats::default() };
        Self { inner: Arc::new(Mutex::new(state)) }
    }

    /// The process-wide pool the SDK's video publishers use unless told otherwise.
    pub fn shared() -> &'static H264EncoderPool {
        static SHARED: OnceLock<H264EncoderPool> = OnceLock::new();
        SHARED.get_or_init(H264EncoderPool::new)
    }

    /// An encoder for `config`: an idle one with exactly that configuration, recycled, or a new
    /// one. It goes back to the pool when dropped.
    pub fn encoder(&self, config: H264Config) -> Result<PooledH264Encoder, EncodeError> {
        config.validate()?;
        let found = {
            let mut state = self.lock();
            state.prune(Instant::now());
            let found = state.idle.iter().rposition(|(_, e)| *e.config() == config);
            let found = found.map(|i| state.idle.swap_remove(i).1);
            match found {
                Some(_) => state.stats.reused += 1,
                None => state.stats.created += 1,
            }
            found
        };
        // Build outside the lock: openh264's setup is the slow part.
        let encoder = match found {
            Some(e) => e,
            None => H264Encoder::new(config)?,
        };
        Ok(PooledH264Encoder { encoder: Some(encoder), pool: self.clone(), broken: false })
    }

    /// Lets every idle encoder go now (idle ones are otherwise only dropped when the pool is
    /// next used and their time is up): for a service going quiet for a long time.
    pub fn clear(&self) {
        let idle = {
            let mut state = self.lock();
            state.stats.dropped += state.idle.len() as u64;
            std::mem::take(&mut state.idle)
        };
        drop(idle);
    }

    /// Counters and the idle count.
    pub fn stats(&self) -> PoolStats {
        let state = self.lock();
        PoolStats { idle: state.idle.len(), ..state.stats }
    }

    fn give_back(&self, mut encoder: H264Encoder) {
        encoder.recycle();
        let rejected = {
            let mut state = self.lock();
            let now = Instant::now();
            state.prune(now);
            if state.idle.len() < state.max_idle {
                state.idle.push((now, encoder));
                state.stats.returned += 1;
                None
            } else {
                state.stats.dropped += 1;
                Some(encoder)
            }
        };
        drop(rejected);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        // The state stays consistent at every await-free step, so a poisoned lock is usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl PoolState {
    fn prune(&mut self, now: Instant) {
        let ttl = self.ttl;
        let before = self.idle.len();
        self.idle.retain(|(since, _)| now.saturating_duration_since(*since) < ttl);
        self.stats.dropped += (before - self.idle.len()) as u64;
    }
}

/// An [`H264Encoder`] on loan from an [`H264EncoderPool`]; returns itself when dropped, unless
/// openh264 failed while encoding (then it is let go, as its state is unknown).
pub struct PooledH264Encoder {
    encoder: Option<H264Encoder>,
    pool: H264EncoderPool,
    broken: bool,
}

impl std::fmt::Debug for PooledH264Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledH264Encoder").field("encoder", &self.encoder).finish_non_exhaustive()
    }
}

impl PooledH264Encoder {
    fn inner(&mut self) -> &mut H264Encoder {
        self.encoder.as_mut().expect("the encoder is only taken out on drop")
    }

    fn track<T>(&mut self, r: Result<T, EncodeError>) -> Result<T, EncodeError> {
        if matches!(r, Err(EncodeError::Backend { .. })) {
            self.broken = true;
        }
        r
    }
}

impl VideoEncoder for PooledH264Encoder {
    fn codec(&self) -> Codec {
        Codec::H264
    }

    fn dimensions(&self) -> (u32, u32) {
        self.encoder.as_ref().map_or((0, 0), |e| e.dimensions())
    }

    fn encode(&mut self, frame: &VideoFrame) -> Result<Vec<EncodedPacket>, EncodeError> {
        let r = self.inner().encode(frame);
        self.track(r)
    }

    fn request_keyframe(&mut self) {
        self.inner().request_keyframe();
    }

    fn flush(&mut self) -> Result<Vec<EncodedPacket>, EncodeError> {
        let r = self.inner().flush();
        self.track(r)
    }
}

impl Drop for PooledH264Encoder {
    fn drop(&mut self) {
        if let Some(encoder) = self.encoder.take() {
            if self.broken {
                self.pool.lock().stats.dropped += 1;
            } else {
                self.pool.give_back(encoder);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::decoder::H264Decoder;
    use crate::h264::nal::{nal_unit_types, NAL_IDR, NAL_PPS, NAL_SPS};
    use crate::pattern::TestPattern;
    use crate::time::Rational;

    /// Encodes `frames` frames of a fresh stream and decodes them back with openh264's decoder.
    fn stream(enc: &mut PooledH264Encoder, frames: u64) -> Vec<EncodedPacket> {
        let pattern = TestPattern::new(160, 96, Rational::new(30, 1)).unwrap();
        let mut out = Vec::new();
        for i in 0..frames {
            out.extend(enc.encode(&pattern.frame(i)).unwrap());
        }
        out.extend(enc.flush().unwrap());
        out
    }

    fn decodes_alone(packets: &[EncodedPacket]) -> usize {
        let mut decoder = H264Decoder::new().unwrap();
        packets.iter().filter(|p| decoder.decode(&p.data, p.pts).unwrap().is_some()).count()
    }

    #[test]
    fn a_recycled_encoder_starts_an_independent_stream() {
        let pool = H264EncoderPool::new();
        let first = stream(&mut pool.encoder(H264Config::new(160, 96)).unwrap(), 20);
        assert_eq!(pool.stats().idle, 1);
        let mut enc = pool.encoder(H264Config::new(160, 96)).unwrap();
        let second = stream(&mut enc, 20);
        let stats = pool.stats();
        assert_eq!((stats.created, stats.reused, stats.idle), (1, 1, 0));
        assert_eq!((first.len(), second.len()), (20, 20));
        // Media time restarts, and the stream opens on an IDR with its parameter sets, so a
        // decoder that never saw the first stream decodes every frame of the second.
        assert_eq!(second[0].pts, 0);
        assert!(second[0].keyframe);
        let types = nal_unit_types(&second[0].data);
        assert!(types.contains(&NAL_SPS) && types.contains(&NAL_PPS) && types.contains(&NAL_IDR));
        assert!(second[1..].iter().all(|p| !p.keyframe), "keyframes follow media time again");
        assert_eq!(decodes_alone(&second), 20);

        // Lent out and returned unused, it still owes the next stream an IDR.
        drop(enc);
        drop(pool.encoder(H264Config::new(160, 96)).unwrap());
        let third = stream(&mut pool.encoder(H264Config::new(160, 96)).unwrap(), 3);
        assert!(third[0].keyframe);
        assert_eq!(pool.stats().reused, 3);
    }

    #[test]
    fn only_an_identical_configuration_is_reused() {
        let pool = H264EncoderPool::new();
        drop(pool.encoder(H264Config::new(160, 96)).unwrap());
        let mut other = H264Config::new(160, 96);
        other.bitrate_bps = 300_000;
        let other = pool.encoder(other).unwrap();
        let stats = pool.stats();
        assert_eq!((stats.created, stats.reused, stats.idle), (2, 0, 1));
        drop(other);
        assert_eq!(pool.stats().idle, 2);
    }

    #[test]
    fn limits_bound_what_is_kept() {
        let pool = H264EncoderPool::with_limits(1, DEFAULT_IDLE_TTL);
        let (a, b) =
            (pool.encoder(H264Config::new(160, 96)).unwrap(), pool.encoder(H264Config::new(160, 96)));
        drop(a);
        drop(b);
        let stats = pool.stats();
        assert_eq!((stats.created, stats.returned, stats.dropped, stats.idle), (2, 1, 1, 1));

        let expiring = H264EncoderPool::with_limits(4, Duration::ZERO);
        drop(expiring.encoder(H264Config::new(160, 96)).unwrap());
        drop(expiring.encoder(H264Config::new(160, 96)).unwrap());
        let stats = expiring.stats();
        assert_eq!((stats.created, stats.reused), (2, 0), "an idle encoder past its time is not reused");

        let cleared = H264EncoderPool::new();
        drop(cleared.encoder(H264Config::new(160, 96)).unwrap());
        cleared.clear();
        assert_eq!((cleared.stats().idle, cleared.stats().dropped), (0, 1));

        let none = H264EncoderPool::with_limits(0, DEFAULT_IDLE_TTL);
        drop(none.encoder(H264Config::new(160, 96)).unwrap());
        assert_eq!((none.stats().idle, none.stats().dropped), (0, 1));
    }

    #[test]
    fn bad_input_is_refused_and_nothing_is_lost() {
        let pool = H264EncoderPool::new();
        assert!(matches!(pool.encoder(H264Config::new(161, 96)), Err(EncodeError::Config(_))));
        let mut enc = pool.encoder(H264Config::new(160, 96)).unwrap();
        let wrong = TestPattern::new(320, 180, Rational::new(30, 1)).unwrap();
        assert!(matches!(enc.encode(&wrong.frame(0)), Err(EncodeError::SizeMismatch { .. })));
        drop(enc);
        // A refused frame is not a broken encoder: it goes back.
        assert_eq!(pool.stats().idle, 1);
    }
}
