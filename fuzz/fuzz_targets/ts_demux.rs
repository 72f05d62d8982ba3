//! The MPEG-TS demuxer, following video and audio, on any bytes, in any chunking. The first input byte seeds the chunk
//! sizes (1 to 400 bytes, as HTTP bodies arrive); the rest is the stream.
//!
//! Checked: no panic; the same stream fed whole and fed in chunks gives the same access units
//! and audio units and the same counters (the demuxer's decisions depend on the bytes, never
//! on how they arrive); no unit is larger than the cap or than the input; timestamps are 33-bit;
//! every input byte is accounted for.
#![no_main]

use gateway_media::ts_demux::{MediaUnit, TsDemuxer, MAX_ACCESS_UNIT_BYTES};
use libfuzzer_sys::fuzz_target;

fn demux(stream: &[u8], mut next_size: impl FnMut() -> usize) -> (Vec<MediaUnit>, TsDemuxer) {
    let mut demuxer = TsDemuxer::with_audio();
    let mut units = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let n = next_size().clamp(1, rest.len());
        units.extend(demuxer.push_media(&rest[..n]));
        rest = &rest[n..];
    }
    units.extend(demuxer.finish_media());
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
    let video = whole.iter().filter(|u| matches!(u, MediaUnit::Video(_))).count();
    assert_eq!(stats.access_units, video as u64);
    assert_eq!(stats.audio_units, (whole.len() - video) as u64);
    assert_eq!(stats.packets * 188 + stats.bytes_skipped, stream.len() as u64, "bytes unaccounted for");
    let (mut total, mut stamps) = (0usize, Vec::new());
    for unit in &whole {
        let len = match unit {
            MediaUnit::Video(v) => {
                stamps.extend([v.pts, v.dts].into_iter().flatten());
                v.data.len()
            }
            MediaUnit::Audio(a) => {
                stamps.extend(a.pts);
                a.data.len()
            }
        };
        assert!(len <= MAX_ACCESS_UNIT_BYTES);
        total += len;
    }
    assert!(total <= stream.len());
    assert!(stamps.iter().all(|ts| (0..1i64 << 33).contains(ts)));
});
