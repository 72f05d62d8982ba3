//! H.264, the default codec for live video: the bitstream facts ([`nal`], which the TS demuxer
//! needs too and so builds without a codec library) and, with the `h264` feature, openh264's
//! encoder ([`H264Encoder`]), decoder ([`decoder::H264Decoder`]) and an encoder pool
//! ([`pool::H264EncoderPool`]) that reuses encoders across streams.

#[cfg(feature = "h264")]
pub mod decoder;
#[cfg(feature = "h264")]
mod encoder;
pub mod nal;
#[cfg(feature = "h264")]
mod openh264_log;
#[cfg(feature = "h264")]
pub mod pool;

#[cfg(feature = "h264")]
pub use encoder::{H264Complexity, H264Config, H264Encoder};
#[cfg(feature = "h264")]
pub use nal::{nal_type, nal_unit_types, NAL_AUD, NAL_IDR, NAL_PPS, NAL_SPS};
