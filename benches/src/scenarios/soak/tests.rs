//! Tests of the soak's pure parts: the seeded schedule, the session accounting, the memory
//! verdict and the summary.

use gateway_actors::media::{FrameDrops, MediaStats};
use gateway_actors::trickle::PublisherStats;

use super::schedule::FAULTS_FROM;
use super::*;

#[test]
fn the_same_seed_gives_the_same_schedule() {
    let a = schedule(42, 100, 60.0);
    assert_eq!(a, schedule(42, 100, 60.0));
    assert_ne!(fingerprint(&a), fingerprint(&schedule(43, 100, 60.0)));
    // About one fault per stream every 20 s, between 3 s and the quiet tail.
    assert!((200..400).contains(&a.len()), "{}", a.len());
    assert!(a.iter().all(|f| f.at >= FAULTS_FROM && f.at.as_secs_f64() < 56.0 && f.slot < 100));
    let kinds = count_by_kind(&a);
    assert_eq!(kinds.len(), FaultKind::ALL.len(), "every kind appears: {kinds:?}");
    assert!(a.iter().filter(|f| f.kind.for_readers()).all(|f| has_subscriber(f.slot)));
}

#[test]
fn accounting_names_the_session_and_the_broken_equation() {
    let media = MediaStats {
        frames_in: 10,
        frames_encoded: 9,
        frames_dropped: 1,
        drops: FrameDrops { overflow: 1, ..Default::default() },
        bytes_encoded: 100,
        bytes_published: 70,
        bytes_drained: 30,
        ..Default::default()
    };
    let mut rec = SessionRecord {
        channel: "c".into(),
        frames_submitted: 10,
        media: Some(media.clone()),
        server: ChannelTotals { bytes_completed: 70, bytes_received: 80, ..Default::default() },
        ..Default::default()
    };
    assert_eq!(rec.problems(), Vec::<String>::new());
    rec.server.bytes_completed = 69;
    rec.media = Some(MediaStats { bytes_drained: 29, ..media });
    let problems = rec.problems();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems.iter().all(|p| p.starts_with("c: ")));

    let seg = SessionRecord {
        channel: "s".into(),
        segment_stream: true,
        bytes_written: 10,
        bytes_delivered: 6,
        bytes_failed: 4,
        publisher: Some(PublisherStats { bytes_sent: 8, bytes_failed: 2, ..Default::default() }),
        server: ChannelTotals { bytes_completed: 6, bytes_received: 9, ..Default::default() },
        subscriber: Some(SubscriberRecord { bytes: 10, ..Default::default() }),
        ..Default::default()
    };
    assert_eq!(seg.problems().len(), 1, "the subscriber read more than the server received");
}

#[test]
fn memory_is_judged_on_windows_after_warm_up() {
    let flat: Vec<ProcSample> = (0..60)
        .map(|t| ProcSample {
            t: t as f64,
            rss_kib: if t < 10 { 1024 } else { 40 * 1024 },
            ..Default::default()
        })
        .collect();
    let v = memory_verdict(&flat, 60.0, RSS_TOLERANCE_MIB);
    assert!(v.flat() && v.first_mib == 40.0 && v.slope_mib_per_min.abs() < 1e-9, "{v:?}");
    let growing: Vec<ProcSample> = (0..60)
        .map(|t| ProcSample { t: t as f64, rss_kib: 40 * 1024 + t * 1024, ..Default::default() })
        .collect();
    let v = memory_verdict(&growing, 60.0, RSS_TOLERANCE_MIB);
    assert!(!v.flat(), "{v:?}");
    assert!((v.slope_mib_per_min - 60.0).abs() < 1.0, "{v:?}");
}
