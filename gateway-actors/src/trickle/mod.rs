//! Trickle transport: the publisher and subscriber engines the actors drive.
//!
//! These are plain async types (tokio, `Send`), usable without actix; the segment writer
//! actor and the job APIs wrap them. [`segmented`] holds the drain and roll rules of a stream
//! cut into segments, shared by video streams and `livepeer-gateway trickle publish`.

mod chunk_queue;
pub mod follow;
pub mod publisher;
pub mod segmented;
pub mod subscriber;

pub use follow::{ChannelKind, ChannelRoutes, ReaderSignals, StreamChannels};
pub use publisher::{PublisherConfig, PublisherStats, SegmentSink, TricklePublisher};
// The segment GET client is an HTTP client (it lives with the others); named here too.
pub use crate::http::segment_get::{self, SegmentGetClient, SEGMENT_READ_BUFFER_MAX};
pub use segmented::{LedgerTotals, SegmentedPublisher};
pub(crate) use segmented::{Route, SegmentLedger};
pub use subscriber::{
    BehindWindow, EndReason, IncomingSegment, SubscriberConfig, SubscriberNotice, SubscriberStats,
    TrickleSubscriber,
};
