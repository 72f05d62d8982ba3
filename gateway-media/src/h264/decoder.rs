//! H.264 decoding with openh264 (the same library the encoder uses, so it costs no extra build):
//! access units in, I420 [`VideoFrame`]s out. It is how a caller looks at the pixels a job sent
//! back; the gateway itself never needs to decode.
//!
//! openh264 decodes without delay (no B-frames in what our encoder and the passthrough worker
//! send), so normally each access unit gives one frame. Frames keep the PTS of the access unit
//! that completed them. openh264 is C code: feed it what [`crate::TsDemuxer`] reassembled, and
//! expect typed errors, not pictures, from a corrupt bitstream.

use bytes::Bytes;
use openh264::decoder::{DecodedYUV, Decoder, DecoderConfig};
use openh264::formats::YUVSource;
use openh264::OpenH264API;
use thiserror::Error;

use crate::frame::{FrameError, VideoFrame};
use crate::time::TIME_BASE_90K;

/// Why an access unit could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// openh264 could not start.
    #[error("cannot start the H.264 decoder: {0}")]
    Init(String),
    /// openh264 refused the bitstream (corrupt, or a reference picture is missing).
    #[error("H.264 decoder refused the access unit: {0}")]
    Bitstream(String),
    /// The decoded picture has a size a [`VideoFrame`] cannot hold.
    #[error("decoded picture unusable: {0}")]
    Frame(#[from] FrameError),
}

/// An H.264 decoder.
pub struct H264Decoder {
    decoder: Decoder,
    frames: u64,
}

impl std::fmt::Debug for H264Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Decoder").field("frames", &self.frames).finish_non_exhaustive()
    }
}

impl H264Decoder {
    /// A decoder waiting for SPS/PPS and an IDR.
    pub fn new() -> Result<H264Decoder, DecodeError> {
        let decoder = Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new())
            .map_err(|e| DecodeError::Init(e.to_string()))?;
        Ok(H264Decoder { decoder, frames: 0 })
    }

    /// Frames decoded so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Decodes one Annex B access unit; `pts` (90 kHz) is given to the frame it completes.
    /// `Ok(None)` when no picture is ready yet (parameter sets only, or waiting for an IDR).
    pub fn decode(&mut self, access_unit: &[u8], pts: i64) -> Result<Option<VideoFrame>, DecodeError> {
        let picture = self.decoder.decode(access_unit).map_err(|e| DecodeError::Bitstream(e.to_string()))?;
        let Some(picture) = picture else { return Ok(None) };
        let frame = to_frame(&picture, pts)?;
        self.frames += 1;
        Ok(Some(frame))
    }
}

/// Copies openh264's picture (its buffers are reused by the next call) into a [`VideoFrame`].
fn to_frame(picture: &DecodedYUV<'_>, pts: i64) -> Result<VideoFrame, DecodeError> {
    let (width, height) = picture.dimensions();
    let (cw, ch) = picture.dimensions_uv();
    let (sy, su, sv) = picture.strides();
    let plane = |data: &[u8], stride: usize, w: usize, h: usize| -> Bytes {
        let mut out = Vec::with_capacity(w * h);
        for row in data.chunks(stride.max(1)).take(h) {
            out.extend_from_slice(&row[..w.min(row.len())]);
        }
        Bytes::from(out)
    };
    let planes = [
        plane(picture.y(), sy, width, height),
        plane(picture.u(), su, cw, ch),
        plane(picture.v(), sv, cw, ch),
    ];
    let frame = VideoFrame::new(
        u32::try_from(width).unwrap_or(u32::MAX),
        u32::try_from(height).unwrap_or(u32::MAX),
        pts,
        TIME_BASE_90K,
        planes,
        [width, cw, cw],
    )?;
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{H264Config, H264Encoder, Rational, TestPattern, VideoEncoder};

    #[test]
    fn decodes_what_the_encoder_wrote() {
        let mut pattern = TestPattern::new(320, 180, Rational::new(30, 1)).unwrap();
        let mut encoder = H264Encoder::new(H264Config::new(320, 180)).unwrap();
        let mut decoder = H264Decoder::new().unwrap();
        let mut decoded = 0;
        for i in 0..10u64 {
            let frame = pattern.next_frame();
            for p in encoder.encode(&frame).unwrap() {
                let out = decoder.decode(&p.data, p.pts).unwrap().expect("one frame per access unit");
                assert_eq!((out.width(), out.height(), out.pts()), (320, 180, p.pts));
                // The pattern carries its frame counter in the picture; it survives the codec.
                assert_eq!(TestPattern::read_counter(&out), Some(i));
                decoded += 1;
            }
        }
        assert_eq!((decoded, decoder.frames()), (10, 10));
    }

    #[test]
    fn garbage_is_an_error_or_nothing() {
        let mut decoder = H264Decoder::new().unwrap();
        for junk in [&[][..], &[0, 0, 0, 1, 0x65, 0xff, 0x00, 0x12][..], &[0xAB; 300][..]] {
            assert!(matches!(decoder.decode(junk, 0), Ok(None) | Err(DecodeError::Bitstream(_))));
        }
    }
}
