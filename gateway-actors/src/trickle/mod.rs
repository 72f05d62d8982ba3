//! Trickle transport: the publisher and subscriber engines the actors drive.
//!
//! These are plain async types (tokio, `Send`), usable without actix; the [`crate::writer`]
//! actor and the job APIs wrap them.

pub mod publisher;
pub mod subscriber;

pub use publisher::{PublisherConfig, PublisherStats, SegmentSink, TricklePublisher};
pub use subscriber::{EndReason, IncomingSegment, SubscriberConfig, SubscriberStats, TrickleSubscriber};
