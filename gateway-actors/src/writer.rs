//! The `SegmentWriter` actor: owns a channel's [`TricklePublisher`] and the segment being
//! written, under a `Supervisor`.
//!
//! Messages are small and handled one at a time (`AtomicResponse`), so chunks reach the
//! network in order. When a segment fails (stall timeout, error status) the writer answers the
//! error and then stops itself; the supervisor restarts it on the same address with the
//! segment state cleared and the publisher kept, so the stream goes on with the next sequence
//! number. (actix restarts only actors that stop themselves; a panic would not be restarted,
//! which is why no handler here can panic.)
//!
//! A stream that moves to another channel starts a new writer for it and sends this one
//! [`Retire`]: the open segment is abandoned and the channel closed in the background.

use actix::prelude::*;
use bytes::Bytes;
use gateway_core::error::{SegmentFailure, TrickleError};

use crate::http::JSON_CALL_TIMEOUT;
use crate::trickle::{SegmentSink, TricklePublisher};

/// How long a retired channel's close may take: a dead server must not keep its task for long.
const RETIRE_CLOSE_WITHIN: std::time::Duration = JSON_CALL_TIMEOUT;

/// The writer actor.
pub(crate) struct SegmentWriter {
    publisher: Option<TricklePublisher>,
    sink: Option<SegmentSink>,
    restarts: u32,
}

impl SegmentWriter {
    /// A writer publishing through `publisher`.
    pub(crate) fn new(publisher: TricklePublisher) -> SegmentWriter {
        SegmentWriter { publisher: Some(publisher), sink: None, restarts: 0 }
    }
}

impl Actor for SegmentWriter {
    type Context = Context<Self>;
}

impl Supervised for SegmentWriter {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // Dropping an unfinished sink aborts its POST and deletes the segment.
        self.sink = None;
        self.restarts += 1;
        if let Some(p) = self.publisher.as_mut() {
            p.restart();
        }
    }
}

/// Open the next segment; answers its sequence number.
#[derive(Debug, Message)]
#[rtype(result = "Result<u64, TrickleError>")]
pub(crate) struct BeginSegment;

/// Append a chunk to the open segment.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), TrickleError>")]
pub(crate) struct WriteChunk(pub(crate) Bytes);

/// Complete the open segment and wait for the server's answer.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), TrickleError>")]
pub(crate) struct EndSegment;

/// Wait until the DELETEs of failed segments have been sent (before the stream's runtime
/// stops, which would cancel them).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Settle;

/// Ask how many times the writer was restarted after a failed segment.
#[derive(Debug, Message)]
#[rtype(result = "u32")]
pub(crate) struct WriterRestarts;

/// Give the channel up (the stream moved to another one): the open segment is abandoned (its
/// POST aborted, the segment deleted) and the channel closed in the background. Answers how many
/// times the writer was restarted. The writer stops once its last address is dropped.
#[derive(Debug, Message)]
#[rtype(result = "u32")]
pub(crate) struct Retire;

impl Handler<BeginSegment> for SegmentWriter {
    type Result = Result<u64, TrickleError>;
    fn handle(&mut self, _: BeginSegment, _: &mut Context<Self>) -> Self::Result {
        let publisher = self.publisher.as_mut().ok_or(TrickleError::EndOfStream)?;
        self.sink = None;
        let sink = publisher.next_segment()?;
        let seq = sink.seq();
        self.sink = Some(sink);
        Ok(seq)
    }
}

impl Handler<WriteChunk> for SegmentWriter {
    type Result = AtomicResponse<Self, Result<(), TrickleError>>;
    fn handle(&mut self, msg: WriteChunk, _: &mut Context<Self>) -> Self::Result {
        let Some(mut sink) = self.sink.take() else {
            return AtomicResponse::new(Box::pin(fut::ready(Err(TrickleError::Segment {
                seq: -1,
                reason: "no open segment".into(),
                failure: SegmentFailure::Other,
            }))));
        };
        let fut = async move {
            let r = sink.write(msg.0).await;
            (r, sink)
        };
        AtomicResponse::new(Box::pin(fut.into_actor(self).map(|(r, sink), act, ctx| {
            match &r {
                Ok(()) => act.sink = Some(sink),
                Err(_) => ctx.stop(), // failed segment: the supervisor restarts us clean
            }
            r
        })))
    }
}

impl Handler<EndSegment> for SegmentWriter {
    type Result = AtomicResponse<Self, Result<(), TrickleError>>;
    fn handle(&mut self, _: EndSegment, _: &mut Context<Self>) -> Self::Result {
        let Some(sink) = self.sink.take() else {
            return AtomicResponse::new(Box::pin(fut::ready(Err(TrickleError::Segment {
                seq: -1,
                reason: "no open segment".into(),
                failure: SegmentFailure::Other,
            }))));
        };
        AtomicResponse::new(Box::pin(sink.finish().into_actor(self).map(|r, _, ctx| {
            if r.is_err() {
                ctx.stop();
            }
            r
        })))
    }
}

impl Handler<Settle> for SegmentWriter {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: Settle, _: &mut Context<Self>) -> Self::Result {
        match &self.publisher {
            Some(p) => Box::pin(p.settled()),
            None => Box::pin(async {}),
        }
    }
}

impl Handler<WriterRestarts> for SegmentWriter {
    type Result = u32;
    fn handle(&mut self, _: WriterRestarts, _: &mut Context<Self>) -> u32 {
        self.restarts
    }
}

impl Handler<Retire> for SegmentWriter {
    type Result = u32;
    fn handle(&mut self, _: Retire, _: &mut Context<Self>) -> u32 {
        self.sink = None;
        if let Some(publisher) = self.publisher.take() {
            publisher.close_in_background(RETIRE_CLOSE_WITHIN);
        }
        self.restarts
    }
}
