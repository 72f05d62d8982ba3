//! gateway-media: raw frames in, network-ready segments out.
//!
//! What it is: the pixel side of the gateway. [`FrameQueue`] decides which caller frames get
//! encoded (bounded, drop-oldest, debt skipping, every drop counted); [`H264Encoder`]
//! (openh264, the default) and [`Av1Encoder`] (rav1e, experimental) implement
//! [`VideoEncoder`], and [`H264EncoderPool`] reuses H.264 encoders across streams (openh264's
//! setup is costly in memory); [`TsMuxer`] writes MPEG-TS and [`IvfMuxer`] IVF; [`Segmenter`]
//! cuts at keyframes by media time and yields [`bytes::Bytes`] chunks while a segment is still
//! being encoded. [`TestPattern`] and [`rgb24_to_i420`] feed it frames. On the way back,
//! [`TsDemuxer`] turns MPEG-TS bytes into access units with their timestamps.
//!
//! What it is not: it does no I/O, spawns no task, reads no clock (except to expire idle pooled
//! encoders) and knows nothing of trickle, HTTP or payments. Everything is synchronous and
//! CPU-bound: run it on its own thread.
//!
//! ```no_run
//! use gateway_media::*;
//! let mut pattern = TestPattern::new(640, 360, Rational::new(30, 1))?;
//! let mut encoder = H264Encoder::new(H264Config::new(640, 360))?;
//! let mut segmenter = Segmenter::mpegts(SegmenterConfig::default());
//! for _ in 0..90 {
//!     for packet in encoder.encode(&pattern.next_frame())? {
//!         for event in segmenter.push(&packet)? {
//!             match event {
//!                 SegmentEvent::SegmentStart { index } => println!("segment {index}"),
//!                 SegmentEvent::Chunk(bytes) => { /* send bytes */ let _ = bytes; }
//!                 SegmentEvent::SegmentEnd(summary) => println!("{summary:?}"),
//!             }
//!         }
//!     }
//! }
//! let _last = segmenter.finish();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// Without a codec (the fuzz targets build only the containers) the shared encoder helpers
// are unused.
#![cfg_attr(not(all(feature = "h264", feature = "av1")), allow(dead_code))]

#[cfg(feature = "av1")]
pub mod av1;
pub mod convert;
pub mod encoder;
pub mod frame;
pub mod frame_queue;
#[cfg(feature = "h264")]
pub mod h264;
#[cfg(feature = "h264")]
pub mod h264_decoder;
#[cfg(feature = "h264")]
pub mod h264_pool;
pub mod ivf;
pub mod mpegts;
pub mod nal;
#[cfg(feature = "h264")]
mod openh264_log;
pub mod pattern;
pub mod segmenter;
pub mod time;
pub mod ts_demux;
pub mod ts_discontinuity;

#[cfg(feature = "av1")]
pub use av1::{Av1Config, Av1Encoder};
pub use convert::rgb24_to_i420;
pub use encoder::{
    Codec, ConfigError, EncodeError, EncodedPacket, KeyframeClock, VideoEncoder, DEFAULT_KEYFRAME_INTERVAL,
};
pub use frame::{FrameError, VideoFrame};
pub use frame_queue::{DropReason, FrameQueue, FrameQueueError, FrameQueueStats, PushOutcome};
#[cfg(feature = "h264")]
pub use h264::{H264Config, H264Encoder};
#[cfg(feature = "h264")]
pub use h264_decoder::{DecodeError, H264Decoder};
#[cfg(feature = "h264")]
pub use h264_pool::{H264EncoderPool, PooledH264Encoder};
pub use ivf::IvfMuxer;
pub use mpegts::{TsConfig, TsMuxer, TsStream};
pub use pattern::TestPattern;
pub use segmenter::{
    MuxError, SegmentError, SegmentEvent, SegmentMuxer, SegmentSummary, Segmenter, SegmenterConfig,
};
pub use time::{Rational, TIME_BASE_90K};
pub use ts_demux::{AccessUnit, DemuxIssue, DemuxStats, TsDemuxer, VideoStream};
