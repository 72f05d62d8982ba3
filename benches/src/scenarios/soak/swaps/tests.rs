//! Tests of the swap soak's pure parts: the death schedule (deterministic, at least two
//! orchestrators serving, every revive before the next death and before the end), the session
//! plan, and the checks that name a session whose accounting is off.

use std::time::{Duration, Instant};

use gateway_actors::live::{LiveStreamStatus, StreamEnd, SwapRecord};
use gateway_actors::media::{FrameDrops, MediaStats};
use gateway_actors::payments::PaymentStats;
use gateway_core::swap::SwapReason;
use gateway_testkit::orchestrator::{LedgerLine, PaymentRoute};

use super::deaths::{DEATHS_FROM, DOWNTIME_MAX, DOWNTIME_MIN, MIN_DEATH_GAP, QUIET_TAIL};
use super::*;

#[test]
fn the_same_seed_gives_the_same_deaths() {
    let a = deaths(42, 4, 120.0, 8);
    assert_eq!(a, deaths(42, 4, 120.0, 8));
    assert_ne!(a, deaths(43, 4, 120.0, 8));
    assert_eq!(a.len(), 8, "{a:?}");
    // Every orchestrator is not always the same one.
    assert!(a.iter().any(|d| d.orchestrator != a[0].orchestrator), "{a:?}");
}

#[test]
fn at_least_two_serve_and_each_death_ends_before_the_next_and_the_end() {
    for seed in 0..200 {
        for orchestrators in [3, 4, 6] {
            for seconds in [20.0, 60.0, 120.0, 300.0] {
                let s = deaths(seed, orchestrators, seconds, 100);
                assert_eq!(
                    s.len(),
                    room_for(orchestrators, seconds),
                    "seed {seed} {orchestrators} {seconds}"
                );
                assert!(fewest_serving(&s, orchestrators) >= MIN_SERVING, "seed {seed}: {s:?}");
                let end = Duration::from_secs_f64(seconds) - QUIET_TAIL;
                for (k, d) in s.iter().enumerate() {
                    assert!(d.orchestrator < orchestrators);
                    assert!(d.at >= DEATHS_FROM && d.revive_at() <= end, "seed {seed}: {d:?}");
                    assert!((DOWNTIME_MIN..=DOWNTIME_MAX).contains(&d.downtime), "{d:?}");
                    if let Some(next) = s.get(k + 1) {
                        // The runner kills and revives in sequence: each revive comes first.
                        assert!(next.at >= d.at + MIN_DEATH_GAP && next.at > d.revive_at(), "{s:?}");
                    }
                }
            }
        }
    }
}

#[test]
fn the_death_hits_the_busiest_orchestrator_and_ties_keep_the_seeded_one() {
    assert_eq!(victim(0, &[0, 3, 1]), 1, "the one running most dies");
    assert_eq!(victim(2, &[3, 0, 3]), 2, "a tie keeps the seeded one");
    assert_eq!(victim(1, &[3, 0, 3]), 0, "else the lowest busiest index");
    assert_eq!(victim(1, &[0, 0, 0]), 1, "nothing runs: the seeded one");
    assert_eq!(victim(1, &[]), 1);
}

#[test]
fn no_deaths_without_room_or_a_third_orchestrator() {
    assert!(deaths(1, 2, 300.0, 10).is_empty(), "two must always serve");
    assert!(deaths(1, 4, 15.0, 10).is_empty(), "15 s has no room");
    assert_eq!(deaths(1, 4, 20.0, 10).len(), 1, "20 s has room for one");
    assert!(deaths(1, 4, 300.0, 0).is_empty());
}

#[test]
fn fewest_serving_counts_overlapping_deaths() {
    let d = |at: u64, orchestrator: usize, down: u64| Death {
        at: Duration::from_secs(at),
        orchestrator,
        downtime: Duration::from_secs(down),
    };
    assert_eq!(fewest_serving(&[d(5, 0, 10), d(8, 1, 10)], 4), 2);
    assert_eq!(fewest_serving(&[d(5, 0, 2), d(8, 1, 10)], 4), 3);
    assert_eq!(fewest_serving(&[], 4), 4);
}

#[test]
fn sessions_mix_lv2v_and_byoc_and_are_seeded() {
    let plans: Vec<_> = (0..10).map(|n| session_plan(42, 3, n)).collect();
    assert_eq!(plans, (0..10).map(|n| session_plan(42, 3, n)).collect::<Vec<_>>());
    assert!(plans.iter().any(|p| p.0 == JobKind::Lv2v) && plans.iter().any(|p| p.0 == JobKind::Byoc));
    assert!(plans.iter().all(|p| (SESSION_MIN..=SESSION_MAX).contains(&p.1)));
    assert_ne!(plans, (0..10).map(|n| session_plan(43, 3, n)).collect::<Vec<_>>());
}

fn swap(from: &str, to: &str) -> SwapRecord {
    SwapRecord {
        reason: SwapReason::PublishConnection { detail: "refused".into() },
        from: from.into(),
        to: to.into(),
        detected_at: Instant::now(),
        restarted_after: Duration::from_millis(100),
        first_bytes_after: None,
        first_segment_after: None,
        first_output_after: None,
        frames_dropped: 2,
        bytes_drained: 100,
    }
}

fn paid(n: u64) -> PaymentStats {
    PaymentStats { payments_sent: n, ..Default::default() }
}

fn good_session() -> SwapSession {
    SwapSession {
        id: "3/1 lv2v".into(),
        kind: JobKind::Lv2v,
        frames_submitted: 100,
        refused: None,
        output_units: 90,
        discontinuities: 1,
        status: Some(LiveStreamStatus {
            job_id: "j".into(),
            orchestrator: "b".into(),
            generation: 1,
            swaps: vec![swap("a", "b")],
            payments: vec![("a".into(), paid(2)), ("b".into(), paid(3))],
            ended: Some(StreamEnd::Stopped),
        }),
        media: Some(MediaStats {
            frames_in: 100,
            frames_encoded: 97,
            frames_dropped: 3,
            drops: FrameDrops { overflow: 3, ..Default::default() },
            bytes_encoded: 1000,
            bytes_published: 800,
            bytes_drained: 200,
            channel_swaps: 1,
            ..Default::default()
        }),
        errors: Vec::new(),
    }
}

#[test]
fn a_session_whose_accounting_breaks_is_named() {
    let s = good_session();
    assert_eq!(s.problems(), Vec::<String>::new());
    assert_eq!(s.orchestrators(), vec!["a".to_owned(), "b".to_owned()]);

    let mut lost = good_session();
    if let Some(m) = lost.media.as_mut() {
        m.bytes_drained = 150;
        m.frames_encoded = 96;
    }
    let p = lost.problems();
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p.iter().all(|p| p.starts_with("3/1 lv2v: ")), "{p:?}");

    let mut ended = good_session();
    if let Some(st) = ended.status.as_mut() {
        st.ended = Some(StreamEnd::Exhausted { failures: Vec::new() });
        st.payments.pop();
    }
    let p = ended.problems();
    assert!(p.iter().any(|p| p.contains("ended by itself")), "{p:?}");
    assert!(p.iter().any(|p| p.contains("payment records")), "{p:?}");

    let mut back = good_session();
    if let Some(st) = back.status.as_mut() {
        st.swaps.push(swap("c", "c"));
        st.generation = 2;
    }
    let p = back.problems();
    assert!(p.iter().any(|p| p.contains("went back")) && p.iter().any(|p| p.contains("left c")), "{p:?}");
}

#[test]
fn books_compare_the_gateway_with_the_ledger() {
    let sessions = vec![good_session(), good_session()];
    let side = gateway_side(&sessions);
    assert_eq!(side["a"].recurring, 4);
    assert_eq!(side["a"].starts, 2);
    assert_eq!(side["b"].recurring, 6);
    let line = |payments| LedgerLine { payments, tickets: payments, ev_wei: 1.0 };
    let mut books = Books {
        url: "a".into(),
        gateway_recurring: 4,
        gateway_starts: 2,
        ledger: [(PaymentRoute::Lv2vStart, line(2)), (PaymentRoute::Lv2vPayment, line(4))].into(),
        sessions: side["a"].sessions.clone(),
        serving_after: true,
        ..Default::default()
    };
    assert_eq!(books.problems(), Vec::<String>::new());
    books.ledger.insert(PaymentRoute::ByocPayment, line(1));
    books.ledger.insert(PaymentRoute::ByocStop, line(1));
    books.running_after.sessions = 1;
    let p = books.problems();
    assert_eq!(p.len(), 3, "{p:?}");
    assert!(p[1].contains("stops carrying a last payment"), "{p:?}");
    assert!(p[0].contains("recurring") && p[0].contains("3/1 lv2v: 2"), "{p:?}");
}
