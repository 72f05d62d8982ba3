//! AV1 encoders share one thread pool: the process's threads do not grow with the number of
//! encoders (rav1e would otherwise build a pool per encoder). Alone in its own test binary,
//! so no other test's threads come and go while it counts.

use livepeer_gateway_media::{Av1Config, Av1Encoder, Rational, TestPattern, VideoEncoder};

/// Threads of this process, from /proc.
fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Threads:")).unwrap();
    line["Threads:".len()..].trim().parse().unwrap()
}

#[test]
fn av1_encoders_share_one_pool() {
    let pattern = TestPattern::new(128, 72, Rational::new(30, 1)).unwrap();
    let start = |n: usize| -> Vec<Av1Encoder> {
        (0..n)
            .map(|_| {
                let mut encoder = Av1Encoder::new(Av1Config::new(128, 72)).unwrap();
                // Encoding starts rav1e's parallel work, and with it any pool.
                encoder.encode(&pattern.frame(0)).unwrap();
                encoder
            })
            .collect()
    };
    let one = start(1);
    let with_one = threads();
    let eight = start(8);
    let with_nine = threads();
    assert_eq!(with_nine, with_one, "8 more encoders added {} threads", with_nine as i64 - with_one as i64);
    drop((one, eight));
}
