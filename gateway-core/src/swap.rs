//! When a live stream leaves its orchestrator for another, and when it gives up: go-livepeer's
//! rules as state machines with no clock reads (every call takes `now`).
//!
//! - [`SwapReason`]: why a stream left an orchestrator, typed.
//! - [`SwapBudget`]: how many swaps go's gateways allow. LV2V (`server/ai_live_video.go`
//!   `orchestratorSwapper.checkSwap`): a stop counts as recent when it comes within 3 minutes
//!   of the last swap (or of the stream's start), otherwise the count starts over at 1; more
//!   than 2 recent swaps end the stream. BYOC (`byoc/stream_gateway.go` `runStream`): the first
//!   stop is free; later ones count, and once more than 2 have counted, a stop within a minute of
//!   the last counted one ends the stream.
//! - [`OutputWatchdog`]: go's output watchdog (`server/ai_live_video.go` `startTrickleSubscribe`):
//!   a ticker of the segment timeout (30 s by default), reset by each output segment; at a tick,
//!   input sent within half the timeout means the orchestrator stopped working.
//!
//! The driver that watches a stream feeds these and performs the swap; see CONFORMANCE.md.

use std::fmt;
use std::time::{Duration, Instant};

/// LV2V: stops this close to the last swap count as recent (`recentSwapInterval`).
pub const LV2V_RECENT_SWAP_INTERVAL: Duration = Duration::from_secs(180);
/// LV2V: more recent swaps than this end the stream (`maxRecentSwapsCount`).
pub const LV2V_MAX_RECENT_SWAPS: u32 = 2;
/// BYOC: a stop this close to the last counted swap is too fast, once the budget is spent.
pub const BYOC_FAST_SWAP_WINDOW: Duration = Duration::from_secs(60);
/// BYOC: counted swaps allowed before fast ones end the stream (`swapCnt > 2`).
pub const BYOC_MAX_SWAPS: u32 = 2;
/// go's default live output segment timeout (`liveOutSegmentTimeout` 0 means 30 s).
pub const OUTPUT_SEGMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a stream left an orchestrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwapReason {
    /// The publish channel's connection was refused or reset.
    PublishConnection {
        /// What the transport said.
        detail: String,
    },
    /// This many segments in a row failed (stalled or refused).
    SegmentsFailed {
        /// Consecutive failures.
        consecutive: u32,
    },
    /// No output segment for this long while input was being sent.
    NoOutput {
        /// How long the output was silent.
        silent_for: Duration,
    },
    /// The orchestrator refused payment for good.
    PaymentRefused {
        /// Its answer.
        detail: String,
    },
    /// The orchestrator closed or removed the stream's channels.
    StreamClosed,
}

impl fmt::Display for SwapReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SwapReason::PublishConnection { detail } => write!(f, "publish connection failed: {detail}"),
            SwapReason::SegmentsFailed { consecutive } => write!(f, "{consecutive} segments failed in a row"),
            SwapReason::NoOutput { silent_for } => {
                write!(f, "no output for {:.0} s while input was sent", silent_for.as_secs_f64())
            }
            SwapReason::PaymentRefused { detail } => write!(f, "payment refused: {detail}"),
            SwapReason::StreamClosed => f.write_str("the orchestrator closed the stream"),
        }
    }
}

/// The stream must end: it swapped too often too fast.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("too many orchestrator swaps: {swaps} within {within:?}")]
pub struct TooManySwaps {
    /// Swaps counted when the budget ran out.
    pub swaps: u32,
    /// The window they fell in.
    pub within: Duration,
}

/// Which of go's two swap rules applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwapRule {
    /// Live video-to-video (`orchestratorSwapper`).
    Lv2v,
    /// BYOC streams (`runStream`).
    Byoc,
}

/// How many swaps a stream has left; see the module docs for go's two rules.
#[derive(Debug, Clone)]
pub struct SwapBudget {
    rule: SwapRule,
    last_swap: Instant,
    /// LV2V: recent swaps; BYOC: counted swaps.
    count: u32,
    /// BYOC: the first stop has happened (it is not counted).
    first_stop_seen: bool,
}

impl SwapBudget {
    /// A budget for a stream started at `started`.
    pub fn new(rule: SwapRule, started: Instant) -> SwapBudget {
        SwapBudget { rule, last_swap: started, count: 0, first_stop_seen: false }
    }

    /// The stream left its orchestrator at `now`: `Ok` to swap, or the stream ends.
    pub fn on_stop(&mut self, now: Instant) -> Result<(), TooManySwaps> {
        let since = now.saturating_duration_since(self.last_swap);
        match self.rule {
            SwapRule::Lv2v => {
                self.count = if since < LV2V_RECENT_SWAP_INTERVAL { self.count + 1 } else { 1 };
                if self.count > LV2V_MAX_RECENT_SWAPS {
                    return Err(TooManySwaps { swaps: self.count, within: LV2V_RECENT_SWAP_INTERVAL });
                }
                self.last_swap = now;
            }
            SwapRule::Byoc => {
                if self.first_stop_seen && self.count > BYOC_MAX_SWAPS && since < BYOC_FAST_SWAP_WINDOW {
                    return Err(TooManySwaps { swaps: self.count, within: BYOC_FAST_SWAP_WINDOW });
                }
                if self.first_stop_seen {
                    self.last_swap = now;
                    self.count += 1;
                } else {
                    self.first_stop_seen = true;
                }
            }
        }
        Ok(())
    }
}

/// Whether an orchestrator still produces output, from when input went out and output came
/// back.
#[derive(Debug, Clone)]
pub struct OutputWatchdog {
    timeout: Duration,
    last_output: Instant,
    last_input: Option<Instant>,
}

impl OutputWatchdog {
    /// A watchdog armed at `now` (the orchestrator's session start) with go's segment timeout.
    pub fn new(timeout: Duration, now: Instant) -> OutputWatchdog {
        OutputWatchdog { timeout, last_output: now, last_input: None }
    }

    /// Input went out at `now`.
    pub fn input_sent(&mut self, now: Instant) {
        self.last_input = Some(now);
    }

    /// An output segment arrived at `now`.
    pub fn output_received(&mut self, now: Instant) {
        self.last_output = now;
    }

    /// When to [`check`](Self::check) next after `now`: go's ticker fires every timeout after
    /// the last output segment.
    pub fn next_deadline(&self, now: Instant) -> Instant {
        let ticks =
            now.saturating_duration_since(self.last_output).as_nanos() / self.timeout.as_nanos().max(1);
        let ticks = u32::try_from(ticks.saturating_add(1)).unwrap_or(u32::MAX);
        self.last_output + self.timeout.saturating_mul(ticks)
    }

    /// At `now`: the output has been silent for the timeout while input went out within half of
    /// it (no input means no output, which is not the orchestrator's fault).
    pub fn check(&self, now: Instant) -> Option<SwapReason> {
        let silent_for = now.saturating_duration_since(self.last_output);
        let recent_input =
            self.last_input.is_some_and(|at| now.saturating_duration_since(at) < self.timeout / 2);
        (silent_for >= self.timeout && recent_input).then_some(SwapReason::NoOutput { silent_for })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// go's `checkSwap`: the first two stops within 3 minutes swap, the third ends the stream;
    /// a stop after a quiet 3 minutes starts the count over.
    #[test]
    fn lv2v_allows_two_recent_swaps_and_starts_over_after_a_quiet_interval() {
        let t0 = Instant::now();
        let mut budget = SwapBudget::new(SwapRule::Lv2v, t0);
        assert_eq!(budget.on_stop(t0 + 10 * S), Ok(()));
        assert_eq!(budget.on_stop(t0 + 100 * S), Ok(()));
        let err = budget.on_stop(t0 + 200 * S).unwrap_err();
        assert_eq!(err, TooManySwaps { swaps: 3, within: LV2V_RECENT_SWAP_INTERVAL });

        let mut budget = SwapBudget::new(SwapRule::Lv2v, t0);
        assert_eq!(budget.on_stop(t0 + 10 * S), Ok(()));
        assert_eq!(budget.on_stop(t0 + 100 * S), Ok(()));
        // 180 s after the last swap: not recent, the count is 1 again.
        assert_eq!(budget.on_stop(t0 + 280 * S), Ok(()));
        assert_eq!(budget.on_stop(t0 + 290 * S), Ok(()));
        assert!(budget.on_stop(t0 + 300 * S).is_err());
    }

    /// go's `runStream`: the first stop is free, three more swap however fast, the fifth ends
    /// the stream if it comes within a minute of the fourth; slower ones go on.
    #[test]
    fn byoc_ends_a_stream_only_when_swaps_beyond_two_come_within_a_minute() {
        let t0 = Instant::now();
        let mut budget = SwapBudget::new(SwapRule::Byoc, t0);
        for i in 1..=4 {
            assert_eq!(budget.on_stop(t0 + i * S), Ok(()), "stop {i}");
        }
        assert_eq!(budget.on_stop(t0 + 5 * S), Err(TooManySwaps { swaps: 3, within: BYOC_FAST_SWAP_WINDOW }));

        let mut slow = SwapBudget::new(SwapRule::Byoc, t0);
        for i in 1..=10u32 {
            assert_eq!(slow.on_stop(t0 + i * 61 * S), Ok(()), "stop {i}, a minute apart");
        }
    }

    #[test]
    fn the_watchdog_fires_on_silent_output_only_while_input_goes_out() {
        let t0 = Instant::now();
        let mut dog = OutputWatchdog::new(OUTPUT_SEGMENT_TIMEOUT, t0);
        assert_eq!(dog.next_deadline(t0), t0 + 30 * S);
        assert_eq!(dog.next_deadline(t0 + 30 * S), t0 + 60 * S, "the next tick");
        // Silent but no input: not the orchestrator's fault.
        assert_eq!(dog.check(t0 + 40 * S), None);
        dog.input_sent(t0 + 20 * S);
        assert_eq!(dog.check(t0 + 29 * S), None, "not silent for long enough");
        assert_eq!(dog.check(t0 + 30 * S), Some(SwapReason::NoOutput { silent_for: 30 * S }));
        // Input older than half the timeout: the source stopped, not the orchestrator.
        assert_eq!(dog.check(t0 + 36 * S), None);
        dog.output_received(t0 + 37 * S);
        dog.input_sent(t0 + 60 * S);
        assert_eq!(dog.next_deadline(t0 + 60 * S), t0 + 67 * S);
        assert_eq!(dog.check(t0 + 66 * S), None);
        assert!(dog.check(t0 + 67 * S).is_some());
    }

    #[test]
    fn reasons_read_as_sentences() {
        assert_eq!(SwapReason::SegmentsFailed { consecutive: 3 }.to_string(), "3 segments failed in a row");
        assert_eq!(
            SwapReason::NoOutput { silent_for: 30 * S }.to_string(),
            "no output for 30 s while input was sent"
        );
        assert_eq!(
            TooManySwaps { swaps: 3, within: LV2V_RECENT_SWAP_INTERVAL }.to_string(),
            "too many orchestrator swaps: 3 within 180s"
        );
    }
}
