//! What a container muxer offers the [`Segmenter`](crate::Segmenter): the [`SegmentMuxer`]
//! trait, which the MPEG-TS muxer ([`crate::TsMuxer`]) and the IVF muxer ([`crate::IvfMuxer`])
//! implement, and the [`MuxError`] they refuse packets with.

use thiserror::Error;

use crate::encoder::{Codec, EncodedPacket};

/// Why a muxer refused a packet or a configuration.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MuxError {
    /// The packet's codec is not what this muxer (or stream) carries.
    #[error("muxer carries {expected} but got a {got} packet")]
    CodecMismatch {
        /// Codec the muxer carries.
        expected: Codec,
        /// Codec of the packet.
        got: Codec,
    },
    /// A stream index beyond the configured streams.
    #[error("stream {0} is not configured in this muxer")]
    UnknownStream(usize),
    /// A non-video PES larger than PES_packet_length can express.
    #[error("PES of {0} bytes is too large for a non-video stream")]
    PesTooLarge(usize),
    /// Invalid muxer configuration.
    #[error("invalid muxer configuration: {0}")]
    InvalidConfig(String),
    /// Something the container cannot represent.
    #[error("{0}")]
    Unsupported(String),
}

/// A container the [`Segmenter`](crate::Segmenter) can write segments in.
pub trait SegmentMuxer {
    /// The codec it carries.
    fn codec(&self) -> Codec;
    /// Appends what must open every segment (tables, file header).
    fn begin_segment(&mut self, out: &mut Vec<u8>);
    /// Appends one packet.
    fn write_packet(&mut self, packet: &EncodedPacket, out: &mut Vec<u8>) -> Result<(), MuxError>;
    /// The audio codec it carries, if any (beside [`Self::codec`], or alone when that is
    /// the same).
    fn audio_codec(&self) -> Option<Codec> {
        None
    }
    /// Appends audio packets as one unit (one PES in MPEG-TS).
    fn write_audio(&mut self, packets: &[EncodedPacket], out: &mut Vec<u8>) -> Result<(), MuxError> {
        let _ = (packets, out);
        Err(MuxError::Unsupported(format!("{} segments carry no audio", self.codec())))
    }
}
