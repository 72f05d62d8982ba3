//! `trickle publish` and `trickle subscribe` against a `local-network --trickle-autocreate`
//! child: stdin bytes make it through segments and back unchanged.

mod common;

use std::time::Duration;

use common::{run, run_with, LocalNet};

fn payload(len: usize) -> Vec<u8> {
    // Not compressible and not text, so nothing in between can hide a change.
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[test]
fn publish_then_subscribe_round_trips_stdin() {
    let net = LocalNet::start(&["--trickle-autocreate"]);
    let channel = format!("{}/cli-round-trip", net.url("trickle"));
    let data = payload(10_000);
    let published = run_with(
        &["trickle", "publish", &channel, "--segment-bytes", "4096", "--keep-open"],
        Some(&data),
        &[],
        Duration::from_secs(20),
    );
    assert_eq!(published.code, Some(0), "{published:?}");
    assert!(published.stderr.contains("published 3 segment(s)"), "{}", published.stderr);

    let sub = std::process::Command::new(env!("CARGO_BIN_EXE_livepeer-gateway"))
        .args(["trickle", "subscribe", &channel, "--start", "0", "--count", "3"])
        .output()
        .unwrap();
    assert_eq!(sub.status.code(), Some(0), "{}", String::from_utf8_lossy(&sub.stderr));
    assert_eq!(sub.stdout.len(), data.len());
    assert!(sub.stdout == data, "the bytes differ");

    // One file per segment, named by its index.
    let dir = std::env::temp_dir().join(format!("lpg-trickle-{}", std::process::id()));
    let r = run(&[
        "trickle",
        "subscribe",
        &channel,
        "--start",
        "0",
        "--count",
        "3",
        "--output",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let mut joined = Vec::new();
    for seq in 0..3 {
        let part = std::fs::read(dir.join(format!("{seq}.bin"))).expect("segment file");
        assert_eq!(part.len(), if seq < 2 { 4096 } else { 10_000 - 2 * 4096 });
        joined.extend(part);
    }
    assert!(joined == data);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn publish_deletes_the_channel_at_the_end_and_subscribers_see_it() {
    let net = LocalNet::start(&["--trickle-autocreate"]);
    let channel = format!("{}/cli-closed", net.url("trickle"));
    let r = run_with(&["trickle", "publish", &channel], Some(b"bye"), &[], Duration::from_secs(20));
    assert_eq!(r.code, Some(0), "{r:?}");
    let r = run(&["trickle", "subscribe", &channel, "--start", "0"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("not found"), "{}", r.stderr);
}
