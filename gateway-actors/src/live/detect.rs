//! When a live stream's orchestrator has failed it, read from what the stream already reports:
//! the publish channel's health and the payments' stop. Plain functions, no I/O; each failure
//! becomes a typed [`SwapReason`].

use gateway_core::error::TrickleError;
use gateway_core::swap::SwapReason;

use crate::media::{ChannelHealth, SegmentFailure};
use crate::payments::PaymentStop;

/// Segments failing in a row on the publish channel before the stream leaves its orchestrator.
pub const DEFAULT_FAILED_SEGMENTS: u32 = 3;

/// Why the publish channel of generation `generation` says the orchestrator failed, if it does:
/// the channel is gone (the orchestrator closed the stream), a connection was refused (nothing
/// listens there any more: no point waiting), or `failed_segments` segments failed in a row
/// (stalls, error statuses, resets: any one of those may pass).
pub(crate) fn publish_failure(
    health: &ChannelHealth,
    generation: u32,
    failed_segments: u32,
) -> Option<SwapReason> {
    if health.generation != generation {
        return None;
    }
    let connection = |f: &Option<SegmentFailure>| match f {
        Some(SegmentFailure::Connect) => Some("connection refused or unreachable"),
        Some(SegmentFailure::Reset) => Some("connection reset"),
        _ => None,
    };
    if let Some(lost) = &health.lost {
        return Some(match lost {
            TrickleError::ChannelNotFound { .. } | TrickleError::EndOfStream => SwapReason::StreamClosed,
            _ => match connection(&health.last_failure) {
                Some(detail) => SwapReason::PublishConnection { detail: detail.to_owned() },
                None => SwapReason::SegmentsFailed { consecutive: health.consecutive_failed.max(1) },
            },
        });
    }
    match health.last_failure {
        Some(SegmentFailure::ChannelGone) if health.consecutive_failed > 0 => {
            return Some(SwapReason::StreamClosed)
        }
        Some(SegmentFailure::Connect) if health.consecutive_failed > 0 => {
            return Some(SwapReason::PublishConnection { detail: "connection refused or unreachable".into() })
        }
        _ => {}
    }
    if health.consecutive_failed >= failed_segments.max(1) {
        return Some(match connection(&health.last_failure) {
            Some(detail) => SwapReason::PublishConnection { detail: detail.to_owned() },
            None => SwapReason::SegmentsFailed { consecutive: health.consecutive_failed },
        });
    }
    None
}

/// Why stopped payments say the orchestrator failed, if they do. A stop the stream asked for,
/// or a job that never paid, says nothing.
pub(crate) fn payment_failure(stop: &PaymentStop) -> Option<SwapReason> {
    match stop {
        PaymentStop::Refused(detail) => Some(SwapReason::PaymentRefused { detail: detail.clone() }),
        PaymentStop::TooManyFailures { .. } | PaymentStop::Released => {
            Some(SwapReason::PaymentRefused { detail: stop.to_string() })
        }
        PaymentStop::JobEnded
        | PaymentStop::Shutdown
        | PaymentStop::NotPaying
        | PaymentStop::FreeOrchestrator
        | PaymentStop::FixedPrice => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(generation: u32) -> ChannelHealth {
        ChannelHealth { generation, ..Default::default() }
    }

    #[test]
    fn failures_in_a_row_swap_at_the_threshold_and_say_how() {
        let mut h = health(0);
        h.consecutive_failed = 2;
        h.last_failure = Some(SegmentFailure::Stalled);
        assert_eq!(publish_failure(&h, 0, 3), None);
        h.consecutive_failed = 3;
        assert_eq!(publish_failure(&h, 0, 3), Some(SwapReason::SegmentsFailed { consecutive: 3 }));
        h.last_failure = Some(SegmentFailure::Reset);
        assert!(matches!(publish_failure(&h, 0, 3), Some(SwapReason::PublishConnection { .. })));
        // A refused connection needs no second try; a reset does.
        h.consecutive_failed = 1;
        assert_eq!(publish_failure(&h, 0, 3), None);
        h.last_failure = Some(SegmentFailure::Connect);
        assert!(matches!(publish_failure(&h, 0, 3), Some(SwapReason::PublishConnection { .. })));
        // A confirmed segment since (the count is back to 0) clears it.
        h.consecutive_failed = 0;
        assert_eq!(publish_failure(&h, 0, 3), None);
        // An older channel's health says nothing about the current one.
        assert_eq!(publish_failure(&h, 1, 3), None);
    }

    #[test]
    fn a_lost_channel_is_a_closed_stream_or_a_dead_connection() {
        let mut h = health(1);
        h.lost = Some(TrickleError::ChannelNotFound { url: "u".into() });
        assert_eq!(publish_failure(&h, 1, 3), Some(SwapReason::StreamClosed));
        h.lost = Some(TrickleError::Terminal { consecutive_failures: 5 });
        h.last_failure = Some(SegmentFailure::Reset);
        assert!(matches!(publish_failure(&h, 1, 3), Some(SwapReason::PublishConnection { .. })));
        h.last_failure = Some(SegmentFailure::Status(500));
        h.consecutive_failed = 5;
        assert_eq!(publish_failure(&h, 1, 3), Some(SwapReason::SegmentsFailed { consecutive: 5 }));
    }

    #[test]
    fn only_refused_or_failing_payments_swap() {
        assert!(matches!(
            payment_failure(&PaymentStop::Refused("HTTP 400".into())),
            Some(SwapReason::PaymentRefused { .. })
        ));
        let failing = PaymentStop::TooManyFailures { failures: 3, last_error: "refused".into() };
        assert!(matches!(payment_failure(&failing), Some(SwapReason::PaymentRefused { .. })));
        assert_eq!(payment_failure(&PaymentStop::JobEnded), None);
        assert_eq!(payment_failure(&PaymentStop::NotPaying), None);
    }
}
