//! Channels that move: where a live stream's trickle channels are now, published by the
//! stream's swap driver and followed by its readers.
//!
//! When a stream moves to another orchestrator it gets new channel URLs. The driver sends them
//! as a new [`ChannelRoutes`] generation on a `watch`; a subscriber made with
//! `TrickleSubscriber::following` leaves the old channel
//! for the new one (from its first segment) and marks the first segment it reads there as a
//! discontinuity, so the caller's reader object stays the same across swaps.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{watch, Notify};

/// The channel URLs of a job on one orchestrator (`None`: the job has no such channel).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamChannels {
    /// Media in (gateway -> orchestrator).
    pub publish: Option<String>,
    /// Media out (orchestrator -> gateway).
    pub output: Option<String>,
    /// Control messages (gateway -> worker).
    pub control: Option<String>,
    /// Events (worker -> gateway).
    pub events: Option<String>,
    /// Data, JSON lines (worker -> gateway).
    pub data: Option<String>,
}

/// One of a job's channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// Media in.
    Publish,
    /// Media out.
    Output,
    /// Control.
    Control,
    /// Events.
    Events,
    /// Data.
    Data,
}

impl StreamChannels {
    /// The URL of `kind`, if the job has that channel.
    pub fn url(&self, kind: ChannelKind) -> Option<&str> {
        match kind {
            ChannelKind::Publish => self.publish.as_deref(),
            ChannelKind::Output => self.output.as_deref(),
            ChannelKind::Control => self.control.as_deref(),
            ChannelKind::Events => self.events.as_deref(),
            ChannelKind::Data => self.data.as_deref(),
        }
    }
}

/// Where a live stream's channels are now.
#[derive(Debug, Clone, Default)]
pub struct ChannelRoutes {
    /// 0 for the first orchestrator, +1 per swap.
    pub generation: u32,
    /// The channels on the current orchestrator.
    pub channels: StreamChannels,
    /// The stream is over: no other generation will come.
    pub ended: bool,
    /// The client for the current orchestrator's channels (its TLS trust).
    pub(crate) http: Option<reqwest::Client>,
}

/// What a live stream's readers tell its swap driver: output arriving (for go's output
/// watchdog and a swap's time to first output) and a channel the orchestrator closed (the
/// stream was ended there), so the driver needs no reader of its own.
#[derive(Debug, Default)]
pub struct ReaderSignals {
    state: Mutex<SeenState>,
    closed: Notify,
}

#[derive(Debug, Default, Clone, Copy)]
struct SeenState {
    readers: u32,
    segments: u64,
    last_at: Option<Instant>,
    /// The newest generation an output segment came from, and when its first one came.
    generation: u32,
    first_at: Option<Instant>,
    /// The newest generation whose channel a reader found closed.
    closed: Option<u32>,
}

impl ReaderSignals {
    fn state(&self) -> std::sync::MutexGuard<'_, SeenState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An output reader was made: the watchdog may now expect output.
    pub(crate) fn reader_added(&self) {
        self.state().readers += 1;
    }

    /// One output segment of `generation` arrived now.
    pub(crate) fn record(&self, generation: u32) {
        let now = Instant::now();
        let mut s = self.state();
        s.segments += 1;
        s.last_at = Some(now);
        if generation > s.generation || s.first_at.is_none() {
            s.generation = generation;
            s.first_at = Some(now);
        }
    }

    /// A reader found the channel of `generation` closed or gone.
    pub(crate) fn channel_closed(&self, generation: u32) {
        let mut s = self.state();
        if s.closed.is_none_or(|g| g < generation) {
            s.closed = Some(generation);
            // One waiter (the driver); a stored permit covers a report made while it is busy.
            self.closed.notify_one();
        }
    }

    /// Resolves once a reader has found the channel of `generation` closed.
    pub(crate) async fn closed(&self, generation: u32) {
        loop {
            if self.state().closed.is_some_and(|g| g >= generation) {
                return;
            }
            self.closed.notified().await;
        }
    }

    /// Whether any output reader was made.
    pub fn has_readers(&self) -> bool {
        self.state().readers > 0
    }

    /// Output segments received so far, over every reader.
    pub fn segments(&self) -> u64 {
        self.state().segments
    }

    /// When the last output segment arrived.
    pub fn last_at(&self) -> Option<Instant> {
        self.state().last_at
    }

    /// When the first output segment of `generation` arrived, if one has.
    pub fn first_at(&self, generation: u32) -> Option<Instant> {
        let s = self.state();
        (s.generation == generation).then_some(s.first_at).flatten()
    }
}

/// What a following subscriber watches.
#[derive(Debug, Clone)]
pub(crate) struct Follow {
    pub(crate) routes: watch::Receiver<ChannelRoutes>,
    pub(crate) kind: ChannelKind,
    /// The generation being read.
    pub(crate) generation: u32,
    /// The next segment delivered is the first from a new channel.
    pub(crate) discontinuity: bool,
    /// Where the reader reports output and closed channels.
    pub(crate) signals: Option<Arc<ReaderSignals>>,
}

impl Follow {
    /// The routes now if they name a generation other than the one being read. Marks the
    /// routes seen, so waiting on a clone of `routes` wakes only for later news.
    pub(crate) fn newer(&mut self) -> Option<ChannelRoutes> {
        let routes = self.routes.borrow_and_update();
        (routes.generation != self.generation).then(|| routes.clone())
    }

    /// Whether the stream is over.
    pub(crate) fn ended(&self) -> bool {
        self.routes.borrow().ended
    }
}
