//! The Y4M reader on any bytes: no panic, and every frame it gives has the header's size and
//! came from input bytes (frames x frame size never exceeds the input).
#![no_main]

use gateway_media::y4m::Y4mReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = Y4mReader::new(data) else { return };
    let header = reader.header();
    assert!(header.width % 2 == 0 && header.height % 2 == 0 && header.width > 0 && header.height > 0);
    let mut frames = 0usize;
    while let Ok(Some(frame)) = reader.next_frame() {
        assert_eq!((frame.width(), frame.height()), (header.width, header.height));
        frames += 1;
        assert!(frames * header.frame_len() <= data.len(), "frames from nowhere");
    }
});
