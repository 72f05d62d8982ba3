//! Criterion micro-benchmarks of gateway-core's hot paths: the trickle response headers parsed
//! on every segment GET and POST, and the capability queries parsed once per job request.
//! Measurement times are short so `cargo bench -p benches --bench core` takes about 15 s.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gateway_core::capabilities::parse_capability_queries;
use gateway_core::trickle::TrickleHeaders;

/// Header sets as a subscriber and a publisher see them (name, value), in arrival order.
const SEGMENT_GET: &[(&str, &str)] = &[
    ("content-type", "video/mp2t"),
    ("lp-trickle-seq", "1234"),
    ("lp-trickle-latest", "1235"),
    ("date", "Thu, 01 Jan 2026 00:00:00 GMT"),
];
const CLOSED_GET: &[(&str, &str)] =
    &[("content-type", "video/mp2t"), ("lp-trickle-closed", "terminated"), ("lp-trickle-latest", "99")];
const NO_TRICKLE_HEADERS: &[(&str, &str)] = &[("content-type", "text/plain"), ("content-length", "0")];

fn lookup<'a>(headers: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
    // Case-insensitive like the http crate's HeaderMap lookups the library does.
    move |name| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
}

fn trickle_headers(c: &mut Criterion) {
    let mut group = c.benchmark_group("trickle_headers_parse");
    group.sample_size(30);
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(1));
    for (name, headers) in [("segment", SEGMENT_GET), ("closed", CLOSED_GET), ("none", NO_TRICKLE_HEADERS)] {
        let get = lookup(headers);
        group.bench_function(name, |b| b.iter(|| TrickleHeaders::parse(black_box(&get))));
    }
    // A real HeaderMap, as reqwest hands it over.
    let mut map = http::HeaderMap::new();
    for (n, v) in SEGMENT_GET {
        map.insert(*n, http::HeaderValue::from_static(v));
    }
    group.bench_function("segment_headermap", |b| {
        b.iter(|| TrickleHeaders::parse(|n| black_box(&map).get(n).and_then(|v| v.to_str().ok())))
    });
    group.finish();
}

fn capability_queries(c: &mut Criterion) {
    let mut group = c.benchmark_group("capability_queries_parse");
    group.sample_size(30);
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(1));
    let one = vec!["live-video-to-video/streamdiffusion".to_owned()];
    let mixed = vec![
        "live-video-to-video/noop,byoc/text-reversal".to_owned(),
        "text-to-image/stabilityai/sd-turbo".to_owned(),
        "byoc/text-reversal".to_owned(), // a duplicate, removed
    ];
    let many: Vec<String> = (0..32).map(|i| format!("byoc/model-{i},live-video-to-video/m{i}")).collect();
    for (name, input) in [("one", &one), ("mixed_dupes", &mixed), ("64_queries", &many)] {
        group.throughput(Throughput::Elements(input.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), input, |b, input| {
            b.iter(|| parse_capability_queries(black_box(input)))
        });
    }
    group.finish();
}

criterion_group!(benches, trickle_headers, capability_queries);
criterion_main!(benches);
