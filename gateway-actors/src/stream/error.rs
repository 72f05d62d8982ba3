//! The one error a stream gives its caller. It lives with the stream, below the user-facing
//! [`VideoPublisher`](crate::media::VideoPublisher) that re-exports it, so the stream's actor
//! need not reach up into `media`.

use gateway_media::encoder::EncodeError;

/// Errors of the video publisher.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The encoder could not be set up or failed.
    #[error("encoder: {0}")]
    Encoder(#[from] EncodeError),
    /// The publisher has stopped.
    #[error("video publisher stopped: {0}")]
    Stopped(String),
}
