//! One video stream, from the caller's frames to published trickle segments.
//!
//! ```text
//! caller -> FrameInbox -> (CPU pool) StreamEncoder -> StreamDriver -> SegmentWriter -> network
//!                                                        |
//!                                                    StreamPlan (rules and counts, no I/O)
//! ```
//! - [`plan`]: the stream's rules as a state machine driven by events and `now`.
//! - [`driver`]: the thin actor that carries the plan's commands out.
//! - [`encoder`]: codec, container and segmenter, lent to the CPU pool a frame at a time.
//! - [`inbox`]: the bounded frame queue between the caller and the encoder, with wake-ups.
//! - [`runtime`]: the process-wide arbiters and CPU pool every stream shares.
//! - [`stats`]: what a stream reports; [`error`]: what it fails with.
//!
//! The user-facing handle is [`VideoPublisher`](crate::media::VideoPublisher).

pub(crate) mod driver;
pub(crate) mod encoder;
pub mod error;
pub(crate) mod inbox;
pub(crate) mod plan;
pub(crate) mod runtime;
pub mod stats;
