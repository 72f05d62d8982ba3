//! The runner's scenarios. Each bounds its loops by count and by time, talks only to
//! 127.0.0.1, and returns plain result structs (serde, so the Python side can produce the
//! same shapes and workers can hand them back as JSON).

pub mod clients;
pub mod lagging;
pub mod media;
pub mod publish;
pub mod relay;
pub mod select;
pub mod soak;
pub mod streams;

use std::time::Duration;

use bytes::Bytes;

/// How long and how many times a loop may run; whichever ends first.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Most iterations.
    pub max_count: u64,
    /// Most wall-clock time.
    pub max_time: Duration,
}

/// Chunk size of the 1 MB segments (the Python SDK's MediaPublish forwards 64 KiB reads).
pub const CHUNK: usize = 64 * 1024;

/// `len` bytes cut into `chunk`-sized `Bytes` sharing one buffer, so the timed loops do not
/// allocate per chunk.
pub fn segment_chunks(len: usize, chunk: usize) -> Vec<Bytes> {
    let buf = Bytes::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    (0..len).step_by(chunk.max(1)).map(|o| buf.slice(o..(o + chunk).min(len))).collect()
}

/// A URL-safe channel name unique to this process and call.
pub fn unique_channel(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_segment_exactly() {
        let c = segment_chunks(1_000_000, CHUNK);
        assert_eq!(c.len(), 16);
        assert_eq!(c.iter().map(|b| b.len()).sum::<usize>(), 1_000_000);
        assert_eq!(c.last().map(|b| b.len()), Some(1_000_000 - 15 * CHUNK));
        assert_eq!(segment_chunks(10_000, CHUNK).len(), 1);
        assert_ne!(unique_channel("a"), unique_channel("a"));
    }
}
