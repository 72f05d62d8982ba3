//! gateway-media: raw frames in, network-ready segments out.
//!
//! Published on crates.io as `livepeer-gateway-media` (`cargo add livepeer-gateway-media`,
//! then `use livepeer_gateway_media::…`); inside the livepeer-gateway-rs workspace it is
//! imported as `gateway_media`. Features: `h264` (openh264, built from source), `av1` (rav1e)
//! and `opus`, all on by default; without them it is the containers, segmenter and demuxer.
//!
//! What it is: the pixel side of the gateway. [`FrameQueue`] decides which caller frames get
//! encoded (bounded, drop-oldest, debt skipping, every drop counted); [`H264Encoder`]
//! (openh264, the default) and [`Av1Encoder`] (rav1e, experimental) implement
//! [`VideoEncoder`], and [`H264EncoderPool`] reuses H.264 encoders across streams (openh264's
//! setup is costly in memory); [`TsMuxer`] writes MPEG-TS and [`IvfMuxer`] IVF; [`Segmenter`]
//! cuts at keyframes by media time and yields [`bytes::Bytes`] chunks while a segment is still
//! being encoded. [`TestPattern`], [`y4m`] (YUV4MPEG2 streams, as ffmpeg pipes them) and
//! [`rgb24_to_i420`] feed it frames. On the way back,
//! [`TsDemuxer`] turns MPEG-TS bytes into access units with their timestamps, and [`flv`] turns
//! the FLV video tags of an RTMP publish into H.264 access units. [`audio`]
//! holds the sound side: PCM frames, the Opus encoder and decoder (carried in MPEG-TS by
//! [`ts::opus`]), which the segmenter interleaves with the video by time.
//!
//! What it is not: it does no I/O of its own (the Y4M reader reads the `Read` it is given),
//! spawns no task, reads no clock (except to expire idle pooled
//! encoders) and knows nothing of trickle, HTTP or payments. Everything is synchronous and
//! CPU-bound: run it on its own thread.
//!
//! Where things are: [`h264`] and [`av1`] hold the codecs (each encoder behind its feature),
//! [`ts`] the MPEG-TS muxer, the segmenter and the demuxer, [`muxer`] the contract between the
//! segmenter and a container; the frame side is [`frame`], [`frame_queue`], [`convert`],
//! [`pattern`], [`y4m`] and [`time`], and [`encoder`] is what every encoder implements.
//!
//! The shortest use: three seconds of test pattern encoded to H.264 and cut into MPEG-TS
//! segments.
//!
//! ```no_run
//! use livepeer_gateway_media::*;
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
#![warn(missing_docs)]
// On docs.rs (nightly), items behind a codec feature say which one.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(not(all(feature = "h264", feature = "av1")), allow(dead_code))]

pub mod audio;
pub mod av1;
pub mod convert;
pub mod encoder;
pub mod flv;
pub mod frame;
pub mod frame_queue;
pub mod h264;
pub mod muxer;
pub mod pattern;
pub mod time;
pub mod ts;
pub mod y4m;

// The modules' paths from before they were grouped by codec stay valid.
pub use av1::ivf;
#[cfg(feature = "h264")]
pub use h264::decoder as h264_decoder;
pub use h264::nal;
#[cfg(feature = "h264")]
pub use h264::pool as h264_pool;
pub use ts::demux as ts_demux;
pub use ts::mux as mpegts;
pub use ts::segmenter;

#[cfg(feature = "opus")]
pub use audio::{AudioConverter, AudioUnitDecoder, OpusConfig, OpusDecoder, OpusEncoder};
pub use audio::{AudioError, AudioFrame, Tone};
pub use av1::ivf::IvfMuxer;
#[cfg(feature = "av1")]
pub use av1::{Av1Config, Av1Encoder};
pub use convert::rgb24_to_i420;
pub use encoder::{
    Codec, ConfigError, EncodeError, EncodedPacket, KeyframeClock, VideoEncoder, DEFAULT_KEYFRAME_INTERVAL,
};
pub use frame::{FrameError, VideoFrame};
pub use frame_queue::{DropReason, FrameQueue, FrameQueueError, FrameQueueStats, PushOutcome};
#[cfg(feature = "h264")]
pub use h264::decoder::{DecodeError, H264Decoder};
#[cfg(feature = "h264")]
pub use h264::pool::{H264EncoderPool, PooledH264Encoder};
#[cfg(feature = "h264")]
pub use h264::{H264Complexity, H264Config, H264Encoder};
pub use muxer::{MuxError, SegmentMuxer};
pub use pattern::TestPattern;
pub use time::{Rational, TIME_BASE_90K};
pub use ts::demux::{
    AccessUnit, AudioStream, AudioUnit, DemuxIssue, DemuxStats, MediaUnit, TsDemuxer, VideoStream,
};
pub use ts::mux::{TsConfig, TsMuxer, TsStream};
pub use ts::segmenter::{SegmentError, SegmentEvent, SegmentSummary, Segmenter, SegmenterConfig};
