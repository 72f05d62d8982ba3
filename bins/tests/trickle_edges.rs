//! `trickle publish` and `trickle subscribe` at the edges found with go-livepeer's trickle
//! client and server (issue 13), against a testkit trickle server in this process (so a test
//! can set faults and read the server's totals between two writes to the command's stdin).
//!
//! Every wait for something to happen is bounded by a generous deadline; nothing asserts on
//! how long something took.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{run, spawn, wait_with};
use gateway_core::trickle::{channel_url, MIME_MPEGTS};
use gateway_testkit::serve::{serve, ServerHandle};
use gateway_testkit::trickle_server::{TrickleConfig, TrickleFault, TrickleServer};

const GENEROUS: Duration = Duration::from_secs(60);

/// A testkit trickle server on 127.0.0.1, on a runtime of its own.
struct Server {
    trickle: TrickleServer,
    base: String,
    /// Dropping the handle stops the server.
    _handle: ServerHandle,
    rt: tokio::runtime::Runtime,
}

impl Server {
    fn start() -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let (trickle, handle) = rt.block_on(async {
            let trickle = TrickleServer::new(TrickleConfig::default());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let handle = serve(listener, trickle.router(), None);
            (trickle, handle)
        });
        let base = format!("http://{}", handle.addr);
        Server { trickle, base, _handle: handle, rt }
    }

    /// Creates channel `name`; answers its URL.
    fn channel(&self, name: &str) -> String {
        assert!(self.trickle.create_channel(name, MIME_MPEGTS));
        channel_url(&self.base, name)
    }

    /// Publishes `n` small segments to channel `name` in process.
    fn publish(&self, name: &str, n: u8) {
        let mut publisher = self.trickle.local_publisher(name).unwrap();
        self.rt.block_on(async {
            for i in 0..n {
                publisher.write_segment(Bytes::from(vec![i; 10])).await.unwrap();
            }
        });
    }

    /// Waits until the server has sent at least `bytes_out` segment bytes in all and a segment
    /// GET is held open (a reader got what it was sent and waits for its next segment).
    fn wait_reader(&self, bytes_out: u64) {
        let deadline = Instant::now() + GENEROUS;
        while self.trickle.stats().bytes_out < bytes_out || self.trickle.stats().active_gets == 0 {
            assert!(Instant::now() < deadline, "no reader ever waited");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until channel `name` has `n` completed segments.
    fn wait_completed(&self, name: &str, n: u64) {
        let deadline = Instant::now() + GENEROUS;
        while self.trickle.channel_totals(name).segments_completed < n {
            assert!(Instant::now() < deadline, "{name}: segment {n} never completed");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 13.11: a stalled segment fails alone; the rest of the input goes out
// ---------------------------------------------------------------------------------------------

/// 5 x 8 MiB of input with segment 1 stalled: segment 1 fails (within the stall timeout), the
/// rest of its 8 MiB is dropped, and the other four pieces go out whole as segments 0, 2, 3
/// and 4. The summary counts only confirmed bytes and reports the failed ones apart.
#[test]
fn a_stalled_segment_fails_alone_and_the_next_pieces_roll_into_the_next_segments() {
    const PIECE: usize = 8 * 1024 * 1024;
    let server = Server::start();
    let url = server.channel("stalled");
    let args = ["trickle", "publish", url.as_str(), "--segment-bytes", "8388608"];
    let mut child = spawn(&args);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&vec![0u8; PIECE]).unwrap();
    server.wait_completed("stalled", 1);
    // From now on the next segment to get a byte is held until the client deletes it.
    server.trickle.set_fault("stalled", TrickleFault::StallSegments { after_bytes: 0, count: 1 });
    for piece in 1..5u8 {
        stdin.write_all(&vec![piece; PIECE]).unwrap();
    }
    drop(stdin);
    let r = wait_with(child, &args, GENEROUS);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("warning: trickle segment 1 failed: stalled"), "{}", r.stderr);
    assert!(
        r.stderr.contains("published 4 segment(s) / 33.6 MB to")
            && r.stderr.contains("(segments 0..4); 1 failed, 8.4 MB not published"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("error: 1 segment(s) failed"), "{}", r.stderr);
    let totals = server.trickle.channel_totals("stalled");
    assert_eq!((totals.segments_completed, totals.bytes_completed), (4, 4 * PIECE as u64), "{totals:?}");
}

// ---------------------------------------------------------------------------------------------
// 13.12: a publisher that gave up stops reading the input
// ---------------------------------------------------------------------------------------------

/// A live source never ends: once the server closes the channel, the command must stop on its
/// own, with exit code 1 and a message saying why, while its stdin is still open.
#[test]
fn a_closed_channel_stops_the_command_while_a_live_source_keeps_writing() {
    let server = Server::start();
    let url = server.channel("live");
    let args = ["trickle", "publish", url.as_str(), "--segment-bytes", "65536"];
    let mut child = spawn(&args);
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        // Until the command is gone (the pipe breaks), like a camera would.
        while stdin.write_all(&[7u8; 16 * 1024]).is_ok() {
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    server.wait_completed("live", 2);
    assert!(server.trickle.close_channel("live"));
    let r = wait_with(child, &args, GENEROUS);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr.contains(
            "error: the publisher gave up: the server closed the channel; stopped reading the input"
        ) || r.stderr.contains("error: the publisher gave up: the channel is gone (HTTP 404)"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("published "), "{}", r.stderr);
    feeder.join().unwrap();
}

// ---------------------------------------------------------------------------------------------
// 13.14: subscribe out of the window, ahead of the live edge, bad --start
// ---------------------------------------------------------------------------------------------

/// Segments 0..8 are out: `--start 0` has fallen out of the 5-slot window. By default the
/// command warns, skips to the live edge and reports the 8 skipped in its summary (exit 0);
/// with `--strict-window` it fails (exit 1), as go-livepeer's subscriber does.
#[test]
fn subscribe_behind_the_window_warns_and_counts_or_fails_with_strict_window() {
    let server = Server::start();
    let url = server.channel("behind");
    server.publish("behind", 8);

    let r = run(&["trickle", "subscribe", &url, "--start", "0", "--strict-window"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr.contains(
            "error: stopped (--strict-window): trickle segment 0 fell out of the server's window; \
             the live edge is 8"
        ),
        "{}",
        r.stderr
    );

    let args = ["trickle", "subscribe", url.as_str(), "--start", "0", "--count", "1"];
    let child = spawn(&args);
    server.wait_reader(0); // it skipped to 8 and waits for it
    let mut publisher = server.trickle.local_publisher("behind").unwrap();
    server.rt.block_on(publisher.write_segment(Bytes::from_static(b"eight"))).unwrap();
    let r = wait_with(child, &args, GENEROUS);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(r.stdout, "eight");
    assert!(
        r.stderr.contains(
            "warning: segments 0..7 fell out of the server's window (it keeps the last 5): skipped to 8 \
             (--strict-window fails instead)"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("received 1 segment(s) / 5 B from")
            && r.stderr.contains("; skipped 8 segment(s) that fell out of the server's window"),
        "{}",
        r.stderr
    );
}

/// `--start` far ahead of the live edge: the command says that it waits and for how long, then
/// gives up with exit code 1; `--ahead-timeout 0` gives up at once.
#[test]
fn subscribe_ahead_of_the_live_edge_says_so_and_gives_up_after_the_timeout() {
    let server = Server::start();
    let url = server.channel("ahead");
    server.publish("ahead", 3);
    let r = run(&["trickle", "subscribe", &url, "--start", "1000", "--ahead-timeout", "1"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr.contains(
            "segment 1000 is ahead of the live edge (the server is at 3): waiting up to 1 s for it \
             (--ahead-timeout)"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(
            "error: gave up waiting (--ahead-timeout): trickle segment 1000 still ahead of the live edge"
        ),
        "{}",
        r.stderr
    );
    let r = run(&["trickle", "subscribe", &url, "--start", "1000", "--ahead-timeout", "0"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(!r.stderr.contains("waiting up to"), "{}", r.stderr);
    assert!(r.stderr.contains("error: gave up waiting (--ahead-timeout)"), "{}", r.stderr);
}

/// A `--start` that is not -1, -2 or an index is a usage error that says what is allowed.
#[test]
fn a_bad_start_is_a_usage_error_that_says_what_is_allowed() {
    for bad in ["-3", "x", "99999999999999999999"] {
        let r = run(&["trickle", "subscribe", "http://127.0.0.1:1/ai/trickle/x", "--start", bad]);
        assert_eq!(r.code, Some(2), "{r:?}");
        assert!(
            r.stderr.contains(
                "must be -1 (the next segment), -2 (the segment being written now) or a segment index, 0 \
                 or above"
            ),
            "{}",
            r.stderr
        );
        assert!(!r.stderr.contains("header"), "{}", r.stderr);
    }
}

// ---------------------------------------------------------------------------------------------
// Issue 19.2: short of what was asked is exit 1, unless --allow-partial
// ---------------------------------------------------------------------------------------------

/// `--count 5` on a channel closed after its reader got two segments: exit 1 naming the shortfall in the last
/// line; with `--allow-partial`, exit 0 with a warning. Both print the two segments.
#[test]
fn subscribe_ending_short_of_its_count_exits_1_unless_partial_is_allowed() {
    let server = Server::start();
    for (name, extra, code) in [("short", None, 1), ("short-ok", Some("--allow-partial"), 0)] {
        let url = server.channel(name);
        server.publish(name, 2);
        let mut args = vec!["trickle", "subscribe", url.as_str(), "--start", "0", "--count", "5"];
        args.extend(extra);
        let sent_before = server.trickle.stats().bytes_out;
        let child = spawn(&args);
        // It was sent both and waits for the third. A GET held open alone is not enough: it may
        // still be the one reading segment 0, and closing the channel then cuts that read short.
        server.wait_reader(sent_before + 20);
        assert!(server.trickle.close_channel(name));
        let r = wait_with(child, &args, GENEROUS);
        assert_eq!(r.code, Some(code), "{r:?}");
        assert_eq!(r.stdout.len(), 20, "both segments on stdout: {r:?}");
        let last = r.stderr.lines().last().unwrap_or_default();
        let expected = if code == 1 {
            "error: the channel ended after 2 of 5 segment(s) (--allow-partial accepts a partial result)"
        } else {
            "warning: partial result accepted (--allow-partial): the channel ended after 2 of 5 segment(s)"
        };
        assert!(r.stderr.contains(expected), "{}", r.stderr);
        assert!(code == 0 || last.starts_with("error:"), "the reason is the last line: {}", r.stderr);
    }
}

/// A stalled segment fails `trickle publish` (exit 1); `--allow-partial` accepts it with a
/// warning naming what was not published.
#[test]
fn publish_with_a_failed_segment_passes_only_with_allow_partial() {
    const PIECE: usize = 1024 * 1024;
    let server = Server::start();
    let url = server.channel("partial");
    let args = ["trickle", "publish", url.as_str(), "--segment-bytes", "1048576", "--allow-partial"];
    let mut child = spawn(&args);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&vec![0u8; PIECE]).unwrap();
    server.wait_completed("partial", 1);
    server.trickle.set_fault("partial", TrickleFault::StallSegments { after_bytes: 0, count: 1 });
    stdin.write_all(&vec![1u8; PIECE]).unwrap();
    stdin.write_all(&vec![2u8; PIECE]).unwrap();
    drop(stdin);
    let r = wait_with(child, &args, GENEROUS);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(
        r.stderr.contains(
            "warning: partial result accepted (--allow-partial): 1 segment(s) failed: 1.0 MB not published"
        ),
        "{}",
        r.stderr
    );
}
