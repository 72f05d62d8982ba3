//! MPEG transport stream, the container of H.264 segments: the muxer ([`mux::TsMuxer`]), the
//! [`segmenter::Segmenter`] that cuts an encoded stream into segments (of MPEG-TS or, with
//! another muxer, IVF) and the demuxer ([`demux::TsDemuxer`]) for the way back.

pub mod demux;
pub mod mux;
pub mod segmenter;
