//! The MPEG-TS demuxer on any bytes, in any chunking. The first input byte seeds the chunk
//! sizes (1 to 400 bytes, as HTTP bodies arrive); the rest is the stream.
//!
//! Checked: no panic; the same stream fed whole and fed in chunks gives the same access units
//! and the same counters (the demuxer's decisions depend on the bytes, never on how they
//! arrive); no access unit is larger than the cap or than the input; timestamps are 33-bit;
//! every input byte is accounted for.
#![no_main]

use gateway_media::ts_demux::{AccessUnit, TsDemuxer, MAX_ACCESS_UNIT_BYTES};
use libfuzzer_sys::fuzz_target;

fn demux(stream: &[u8], mut next_size: impl FnMut() -> usize) -> (Vec<AccessUnit>, TsDemuxer) {
    let mut demuxer = TsDemuxer::new();
    let mut units = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let n = next_size().clamp(1, rest.len());
        units.extend(demuxer.push(&rest[..n]));
        rest = &rest[n..];
    }
    units.extend(demuxer.finish());
    (units, demuxer)
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else { return };
    let (whole, whole_demuxer) = demux(stream, || usize::MAX);
    let mut state = u32::from(seed) | 0x100;
    let (chunked, chunked_demuxer) = demux(stream, || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state % 400) as usize + 1
    });
    assert_eq!(whole, chunked, "access units depend on the chunking");
    let stats = whole_demuxer.stats();
    assert_eq!(stats, chunked_demuxer.stats(), "counters depend on the chunking");

    assert_eq!(stats.bytes_in, stream.len() as u64);
    assert_eq!(stats.access_units, whole.len() as u64);
    assert_eq!(stats.packets * 188 + stats.bytes_skipped, stream.len() as u64, "bytes unaccounted for");
    let total: usize = whole.iter().map(|u| u.data.len()).sum();
    assert!(total <= stream.len());
    for unit in &whole {
        assert!(unit.data.len() <= MAX_ACCESS_UNIT_BYTES);
        for ts in [unit.pts, unit.dts].into_iter().flatten() {
            assert!((0..1i64 << 33).contains(&ts));
        }
    }
});
