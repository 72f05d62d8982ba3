//! A byte stream published as segments the caller cuts, with the drain and roll rules of the
//! media path: when a segment fails, the rest of its piece of input is drained (counted, never
//! sent) and the next piece rolls into the next sequence number.
//!
//! The input is a sequence of *pieces* (a media segment for a video stream, a
//! `--segment-bytes` or `--segment-ms` cut for `livepeer-gateway trickle publish`). Each piece
//! goes into one trickle segment. A segment that fails mid-piece (stall, dropped connection,
//! error status) must not take the rest of that piece: a segment that starts mid-piece would
//! start without its keyframe, and writing into the failed one loses everything. So the rest is
//! drained, and the next piece opens the next segment.
//!
//! `SegmentLedger` holds those rules and the counts, without I/O; a video stream's plan
//! (in the crate's `stream` module) drives it through its segment writer actor, and
//! [`SegmentedPublisher`] drives it over a [`TricklePublisher`] directly.
//! Every byte is counted where it ends: `bytes_in = bytes_published + bytes_drained +` the
//! bytes of the segment still open.

use bytes::Bytes;
use gateway_core::error::{SegmentFailure, TrickleError};

use super::publisher::{SegmentSink, TricklePublisher};

/// Where the ledger's counted bytes went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerTotals {
    /// Segments the server confirmed.
    pub segments_published: u64,
    /// Segments that failed (their bytes are drained).
    pub segments_failed: u64,
    /// Bytes handed to the ledger (each is published, drained, or in the open segment).
    pub bytes_in: u64,
    /// Bytes of confirmed segments.
    pub bytes_published: u64,
    /// Bytes of failed segments, and of the rest of their pieces.
    pub bytes_drained: u64,
}

/// What to do with a chunk of input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// Write it to the open segment.
    Write,
    /// Drop it: its piece's segment failed, or none could be opened. Already counted.
    Drain,
}

/// The drain and roll rules and the byte counts of a segmented stream (no I/O: the caller
/// opens, writes and finishes the segments and reports each outcome).
#[derive(Debug, Clone, Default)]
pub(crate) struct SegmentLedger {
    open: bool,
    draining: bool,
    in_flight: u64,
    totals: LedgerTotals,
}

impl SegmentLedger {
    /// A ledger with nothing open.
    pub fn new() -> SegmentLedger {
        SegmentLedger::default()
    }

    /// The counts so far.
    pub fn totals(&self) -> LedgerTotals {
        self.totals
    }

    /// Whether a segment is open.
    pub(crate) fn is_open(&self) -> bool {
        self.open
    }

    /// Whether the current piece is being drained.
    #[cfg(test)]
    pub(crate) fn is_draining(&self) -> bool {
        self.draining
    }

    /// Bytes written to the open segment, not yet confirmed.
    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// A piece starts and no segment is open: the caller opens one now (and reports it with
    /// [`began`](Self::began)). A failed piece's drain ends here.
    pub(crate) fn start_piece(&mut self) {
        self.draining = false;
    }

    /// The outcome of opening a segment. A segment that could not be opened drains its piece.
    pub fn began(&mut self, ok: bool) {
        if ok {
            self.open = true;
            self.draining = false;
            self.in_flight = 0;
        } else {
            self.open = false;
            self.draining = true;
        }
    }

    /// Routes a chunk of `len` input bytes (and counts it).
    pub fn route(&mut self, len: u64) -> Route {
        self.totals.bytes_in += len;
        if self.draining || !self.open {
            self.totals.bytes_drained += len;
            Route::Drain
        } else {
            Route::Write
        }
    }

    /// The outcome of writing a routed chunk of `len` bytes. A failed write fails the segment:
    /// its bytes so far and this chunk are drained, and so is the rest of the piece.
    pub fn wrote(&mut self, len: u64, ok: bool) {
        if ok {
            self.in_flight += len;
        } else {
            self.segment_failed(len);
        }
    }

    /// A piece ends. `true` if it was being drained: that drain is over (the next piece rolls
    /// into the next segment) and there is nothing to finish.
    pub(crate) fn end_drain(&mut self) -> bool {
        std::mem::take(&mut self.draining)
    }

    /// Drains the rest of the current piece (an open segment was ended mid-piece, and the rest
    /// must not start a new one).
    pub(crate) fn drain_rest(&mut self) {
        self.draining = true;
    }

    /// Gives up the open segment unconfirmed (its stream moved to another channel): it counts
    /// as failed and its bytes as drained. Nothing happens when no segment is open.
    pub(crate) fn abandon(&mut self) {
        if self.open {
            self.segment_failed(0);
        }
    }

    /// The outcome of finishing the open segment.
    pub fn ended(&mut self, ok: bool) {
        if ok {
            self.totals.segments_published += 1;
            self.totals.bytes_published += self.in_flight;
            self.in_flight = 0;
            self.open = false;
        } else {
            self.segment_failed(0);
            self.draining = false; // the piece is over
        }
    }

    fn segment_failed(&mut self, extra: u64) {
        self.totals.segments_failed += 1;
        self.totals.bytes_drained += self.in_flight + extra;
        self.in_flight = 0;
        self.open = false;
        self.draining = true;
    }
}

/// Publishes a byte stream over a [`TricklePublisher`], one segment per piece the caller cuts,
/// with `SegmentLedger`'s drain and roll rules.
///
/// [`write`](Self::write) and [`cut`](Self::cut) answer `Err` once per failed segment (the
/// publisher goes on with the next piece) and for every call once the publisher has given up
/// ([`TrickleError::is_terminal`]): stop then.
#[derive(Debug)]
pub struct SegmentedPublisher {
    publisher: TricklePublisher,
    ledger: SegmentLedger,
    sink: Option<SegmentSink>,
    in_piece: bool,
    piece_bytes: u64,
}

impl SegmentedPublisher {
    /// Publishes through `publisher`.
    pub fn new(publisher: TricklePublisher) -> SegmentedPublisher {
        SegmentedPublisher {
            publisher,
            ledger: SegmentLedger::new(),
            sink: None,
            in_piece: false,
            piece_bytes: 0,
        }
    }

    /// The publisher (counters, next index, terminal error).
    pub fn publisher(&self) -> &TricklePublisher {
        &self.publisher
    }

    /// Where the bytes went so far.
    pub fn totals(&self) -> LedgerTotals {
        self.ledger.totals()
    }

    /// Bytes of the current piece so far, written or drained (for cuts by size).
    pub fn piece_bytes(&self) -> u64 {
        self.piece_bytes
    }

    /// Whether a piece has started and not been cut yet.
    pub fn in_piece(&self) -> bool {
        self.in_piece
    }

    /// Appends `chunk` to the current piece, starting one (and its segment) if none is open.
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), TrickleError> {
        if chunk.is_empty() {
            return Ok(());
        }
        let mut failure = None;
        if !self.in_piece {
            self.in_piece = true;
            self.piece_bytes = 0;
            if !self.ledger.is_open() {
                self.ledger.start_piece();
                match self.publisher.next_segment() {
                    Ok(sink) => {
                        self.sink = Some(sink);
                        self.ledger.began(true);
                    }
                    Err(e) => {
                        self.ledger.began(false);
                        failure = Some(e);
                    }
                }
            }
        }
        let len = chunk.len() as u64;
        self.piece_bytes += len;
        if self.ledger.route(len) == Route::Write {
            let Some(sink) = self.sink.as_mut() else {
                // Unreachable: the ledger routes to a segment only while one is open.
                self.ledger.wrote(len, false);
                return Err(TrickleError::Segment {
                    seq: -1,
                    reason: "no open segment".into(),
                    failure: SegmentFailure::Other,
                });
            };
            let written = sink.write(chunk).await;
            self.ledger.wrote(len, written.is_ok());
            if let Err(e) = written {
                self.sink = None; // failed: it has released its readers already
                failure = Some(e);
            }
        }
        match failure.or_else(|| self.publisher.terminal_error()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Ends the current piece: finishes its segment, or ends its drain. The next write starts
    /// the next piece in the next segment.
    pub async fn cut(&mut self) -> Result<(), TrickleError> {
        if !std::mem::take(&mut self.in_piece) {
            return Ok(());
        }
        self.piece_bytes = 0;
        if self.ledger.end_drain() || !self.ledger.is_open() {
            return self.publisher.terminal_error().map_or(Ok(()), Err);
        }
        let Some(sink) = self.sink.take() else {
            self.ledger.ended(false);
            return Err(TrickleError::Segment {
                seq: -1,
                reason: "no open segment".into(),
                failure: SegmentFailure::Other,
            });
        };
        let finished = sink.finish().await;
        self.ledger.ended(finished.is_ok());
        finished
    }

    /// Hands the publisher back (to close the channel, or not). A segment still open is
    /// abandoned (its POST aborted and the segment deleted), never completed short: call
    /// [`cut`](Self::cut) first to publish it.
    pub fn into_publisher(self) -> TricklePublisher {
        self.publisher
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs pieces of chunk sizes through a ledger, failing the write of chunk `fail_at`
    /// (piece, chunk) and finishing every other piece; answers the totals.
    fn run(pieces: &[&[u64]], fail_at: Option<(usize, usize)>) -> LedgerTotals {
        let mut ledger = SegmentLedger::new();
        for (p, chunks) in pieces.iter().enumerate() {
            assert!(!ledger.is_open());
            ledger.start_piece();
            ledger.began(true);
            for (c, &len) in chunks.iter().enumerate() {
                if ledger.route(len) == Route::Write {
                    ledger.wrote(len, fail_at != Some((p, c)));
                }
            }
            if !ledger.end_drain() {
                ledger.ended(true);
            }
        }
        ledger.totals()
    }

    #[test]
    fn a_failed_write_drains_the_rest_of_its_piece_only() {
        let t = run(&[&[10, 10], &[10, 10, 10], &[10, 10]], Some((1, 1)));
        assert_eq!(
            t,
            LedgerTotals {
                segments_published: 2,
                segments_failed: 1,
                bytes_in: 70,
                bytes_published: 40,
                bytes_drained: 30,
            }
        );
        let t = run(&[&[5], &[5]], None);
        assert_eq!((t.segments_published, t.bytes_published, t.bytes_drained), (2, 10, 0));
    }

    #[test]
    fn a_segment_that_fails_at_its_end_drains_its_bytes_and_the_next_piece_opens() {
        let mut ledger = SegmentLedger::new();
        ledger.start_piece();
        ledger.began(true);
        assert_eq!(ledger.route(8), Route::Write);
        ledger.wrote(8, true);
        assert!(!ledger.end_drain());
        ledger.ended(false);
        assert!(!ledger.is_open() && !ledger.is_draining());
        let t = ledger.totals();
        assert_eq!((t.segments_failed, t.bytes_drained, t.bytes_published), (1, 8, 0));
    }

    #[test]
    fn a_segment_that_cannot_be_opened_drains_its_piece() {
        let mut ledger = SegmentLedger::new();
        ledger.start_piece();
        ledger.began(false);
        assert_eq!(ledger.route(3), Route::Drain);
        assert!(ledger.end_drain());
        ledger.start_piece();
        ledger.began(true);
        assert_eq!(ledger.route(4), Route::Write);
        let t = ledger.totals();
        assert_eq!((t.bytes_in, t.bytes_drained, t.segments_failed), (7, 3, 0));
    }
}
