//! `trickle publish` and `trickle subscribe` at the edges found with go-livepeer's trickle
//! client and server (issue 13), against a testkit trickle server in this process (so a test
//! can set faults and read the server's totals between two writes to the command's stdin).
//!
//! Every wait for something to happen is bounded by a generous deadline; nothing asserts on
//! how long something took.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{spawn, wait_with};
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
    _rt: tokio::runtime::Runtime,
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
        Server { trickle, base, _handle: handle, _rt: rt }
    }

    /// Creates channel `name`; answers its URL.
    fn channel(&self, name: &str) -> String {
        assert!(self.trickle.create_channel(name, MIME_MPEGTS));
        channel_url(&self.base, name)
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
