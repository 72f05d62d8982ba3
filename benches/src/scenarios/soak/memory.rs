//! Memory and leak checks: process samples (RSS, threads, descriptors) and the verdict on
//! whether memory stayed flat.

use super::RSS_TOLERANCE_PCT;
use crate::sys::rss_kib;

/// One sample of the client process.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    /// Seconds from the start of the run.
    pub t: f64,
    /// Resident set size, KiB.
    pub rss_kib: u64,
    /// OS threads.
    pub threads: u64,
    /// Open file descriptors.
    pub fds: u64,
}

/// The process as it is now.
pub fn proc_sample(t: f64) -> ProcSample {
    let threads = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Threads:")).and_then(|l| l[8..].trim().parse().ok()))
        .unwrap_or(0);
    let fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count() as u64).unwrap_or(0);
    ProcSample { t, rss_kib: rss_kib().unwrap_or(0), threads, fds }
}

/// The memory verdict: medians of the first and last window after warm-up.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryVerdict {
    /// Warm-up excluded, seconds.
    pub warmup_s: f64,
    /// Window length, seconds.
    pub window_s: f64,
    /// Median RSS of the first window, MiB.
    pub first_mib: f64,
    /// Median RSS of the last window, MiB.
    pub last_mib: f64,
    /// Most RSS seen, MiB.
    pub max_mib: f64,
    /// Least-squares slope after warm-up, MiB per minute.
    pub slope_mib_per_min: f64,
    /// Allowed growth, MiB.
    pub allowed_mib: f64,
}

impl MemoryVerdict {
    /// Whether the last window stayed within the allowed growth of the first.
    pub fn flat(&self) -> bool {
        self.last_mib - self.first_mib <= self.allowed_mib
    }
}

/// Judges `samples` of a run of `seconds`.
pub fn memory_verdict(samples: &[ProcSample], seconds: f64, tolerance_mib: f64) -> MemoryVerdict {
    let warmup_s = (seconds * 0.25).clamp(10.0, 60.0);
    let window_s = (seconds * 0.15).clamp(8.0, 60.0);
    let mib = |k: u64| k as f64 / 1024.0;
    let median = |lo: f64, hi: f64| {
        let mut v: Vec<f64> =
            samples.iter().filter(|s| s.t >= lo && s.t < hi).map(|s| mib(s.rss_kib)).collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let first_mib = median(warmup_s, warmup_s + window_s);
    let last_mib = median(seconds - window_s, seconds + 1.0);
    let after: Vec<(f64, f64)> =
        samples.iter().filter(|s| s.t >= warmup_s).map(|s| (s.t, mib(s.rss_kib))).collect();
    let slope = if after.len() >= 2 {
        let n = after.len() as f64;
        let (mt, mr) =
            (after.iter().map(|p| p.0).sum::<f64>() / n, after.iter().map(|p| p.1).sum::<f64>() / n);
        let cov: f64 = after.iter().map(|p| (p.0 - mt) * (p.1 - mr)).sum();
        let var: f64 = after.iter().map(|p| (p.0 - mt).powi(2)).sum();
        if var > 0.0 {
            cov / var * 60.0
        } else {
            0.0
        }
    } else {
        0.0
    };
    MemoryVerdict {
        warmup_s,
        window_s,
        first_mib,
        last_mib,
        max_mib: samples.iter().map(|s| mib(s.rss_kib)).fold(0.0, f64::max),
        slope_mib_per_min: slope,
        allowed_mib: (first_mib * RSS_TOLERANCE_PCT / 100.0).max(tolerance_mib),
    }
}
