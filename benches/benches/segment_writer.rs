//! Criterion benchmark of the publisher's chunk path: a `TricklePublisher` writing segments to
//! a local `TrickleServer` over loopback (HTTP/1.1, plaintext), one iteration = one segment of
//! 64 KiB chunks (1 MB) or a single 10 KB chunk, throughput in bytes. The server runs in this
//! process on its own runtime thread, so the figure is client + server on 2 cores; the
//! `throughput` runner measures the client alone against a server in another process.

use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};
use gateway_actors::trickle::{PublisherConfig, TricklePublisher};
use gateway_testkit::serve::serve;
use gateway_testkit::trickle_server::{TrickleConfig, TrickleServer};

const CHUNK: usize = 64 * 1024;

/// A segment of `len` bytes cut into `CHUNK`-sized `Bytes` sharing one buffer (no per-chunk
/// allocation inside the timed loop).
fn chunks(len: usize) -> Vec<Bytes> {
    let buf = Bytes::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    (0..len).step_by(CHUNK).map(|o| buf.slice(o..(o + CHUNK).min(len))).collect()
}

fn segment_writer(c: &mut Criterion) {
    // The server gets its own runtime (and thread) so the client's runtime only runs the client.
    let server_rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (server, url, _handle) = server_rt.block_on(async {
        let server = TrickleServer::new(TrickleConfig::default());
        server.create_channel("bench", "video/mp2t");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let handle = serve(listener, server.router(), None);
        let url = format!("http://{}/ai/trickle/bench", handle.addr);
        (server, url, handle)
    });
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // reqwest is built without a default TLS provider; the library installs ring.
    let _ = gateway_actors::tls::provider();
    let http = reqwest::Client::builder().no_proxy().tcp_nodelay(true).build().unwrap();
    let mut publisher = rt.block_on(TricklePublisher::start(http, &url, PublisherConfig::default()));

    let mut group = c.benchmark_group("segment_writer");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(20);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    for len in [1_000_000usize, 10_000] {
        let segment = chunks(len);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(BenchmarkId::new("loopback_segment", len), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let mut sink = publisher.next_segment().unwrap();
                    for chunk in &segment {
                        sink.write(chunk.clone()).await.unwrap();
                    }
                    sink.finish().await.unwrap();
                })
            })
        });
    }
    group.finish();
    let stats = publisher.stats();
    assert_eq!(stats.segments_failed, 0, "{stats:?}");
    rt.block_on(publisher.close());
    server.shutdown();
}

criterion_group!(benches, segment_writer);
criterion_main!(benches);
