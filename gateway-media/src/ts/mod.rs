//! MPEG transport stream, the container of H.264 segments: the muxer ([`mux::TsMuxer`]), the
//! [`segmenter::Segmenter`] that cuts an encoded stream into segments (of MPEG-TS or, with
//! another muxer, IVF), the demuxer ([`demux::TsDemuxer`]) for the way back, and the mark of
//! a break in a stream ([`discontinuity::mark_discontinuity`]), and the [`cutter::TsCutter`]
//! that cuts an existing TS stream on its keyframes without re-encoding it; [`opus`] is how
//! Opus audio travels in TS.

pub mod cutter;
pub mod demux;
pub mod discontinuity;
pub mod mux;
pub mod opus;
pub mod segmenter;
