//! AV1 and its container: with the `av1` feature, rav1e's encoder ([`Av1Encoder`]); always,
//! the IVF muxer ([`ivf::IvfMuxer`]) AV1 segments travel in and [`ivf::IvfJoin`], which joins
//! IVF segments into one file.

#[cfg(feature = "av1")]
mod encoder;
pub mod ivf;

#[cfg(feature = "av1")]
pub use encoder::{Av1Config, Av1Encoder, DEFAULT_AV1_SPEED};
