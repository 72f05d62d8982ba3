//! Process measurements shared by the runner and its workers: CPU seconds (CLOCK_PROCESS_CPUTIME_ID), peak
//! RSS (VmHWM), the file-descriptor limit, and a clock that Python can read too.
//!
//! Latency samples cross from a writer to a reader, sometimes in different processes (the
//! arrival server of scenario 5), so timestamps are CLOCK_MONOTONIC nanoseconds: Python's
//! `time.monotonic_ns()` reads the same clock on Linux.
//!
//! System calls go through rustix, so the benches, like the library, have no unsafe code.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use rustix::time::{clock_gettime, ClockId};

/// CLOCK_MONOTONIC in nanoseconds.
pub fn mono_ns() -> u64 {
    let ts = clock_gettime(ClockId::Monotonic);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// User + system CPU seconds of this process so far (all threads).
pub fn cpu_seconds() -> f64 {
    let ts = clock_gettime(ClockId::ProcessCPUTime);
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Peak resident set size of this process in KiB (`VmHWM`), if /proc is readable.
pub fn peak_rss_kib() -> Option<u64> {
    status_field("VmHWM:")
}

/// Current resident set size in KiB (`VmRSS`).
pub fn rss_kib() -> Option<u64> {
    status_field("VmRSS:")
}

fn status_field(name: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// Raises the soft open-file limit to the hard limit (thousands of streams each hold several
/// sockets); returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    // `None` is unlimited.
    let lim = getrlimit(Resource::Nofile);
    let raised = Rlimit { current: lim.maximum, maximum: lim.maximum };
    if lim.current != lim.maximum && setrlimit(Resource::Nofile, raised).is_ok() {
        return lim.maximum.unwrap_or(u64::MAX);
    }
    lim.current.unwrap_or(u64::MAX)
}

/// The `q` quantile (0..=1) of `sorted` (nearest rank); `None` when empty.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Sorts samples for [`quantile`] (NaNs, which cannot occur from clock differences, last).
pub fn sort_samples(samples: &mut [f64]) {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Greater));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        sort_samples(&mut v);
        assert_eq!(quantile(&v, 0.5), Some(50.0));
        assert_eq!(quantile(&v, 0.99), Some(99.0));
        assert_eq!(quantile(&v, 1.0), Some(100.0));
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[7.0], 0.01), Some(7.0));
    }

    #[test]
    fn process_counters_are_readable() {
        let before = cpu_seconds();
        // Burn a little CPU so the counter must move forward.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_seconds() > before);
        assert!(peak_rss_kib().is_some_and(|k| k > 0));
        assert!(rss_kib().is_some_and(|k| k > 0));
        let (a, b) = (mono_ns(), mono_ns());
        assert!(b >= a);
    }
}
