//! Frames in, network-ready segments out: a Y4M file (or four seconds of test pattern)
//! encoded to H.264 and cut at keyframes into MPEG-TS segments, one file per segment, as a
//! gateway would publish them.
//!
//! `cargo run -p livepeer-gateway-media --example encode_segments -- [IN.y4m [OUT_DIR]]`;
//! the segments go to a temporary directory unless OUT_DIR is given, and each plays in ffplay.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::PathBuf;

use livepeer_gateway_media::y4m::Y4mReader;
use livepeer_gateway_media::{
    H264Config, H264Encoder, Rational, SegmentEvent, Segmenter, SegmenterConfig, TestPattern, VideoEncoder,
    VideoFrame,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Any source of frames will do: a file, a camera, a renderer.
    let (width, height, frames): (u32, u32, Box<dyn Iterator<Item = VideoFrame>>) = match args.first() {
        Some(path) => {
            let mut input = Y4mReader::new(BufReader::new(File::open(path)?))?;
            let header = input.header();
            (
                header.width,
                header.height,
                Box::new(std::iter::from_fn(move || input.next_frame().ok().flatten())),
            )
        }
        None => {
            let mut pattern = TestPattern::new(640, 360, Rational::new(30, 1))?;
            (640, 360, Box::new((0..120).map(move |_| pattern.next_frame())))
        }
    };
    let out_dir = match args.get(1) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::temp_dir().join(format!("segments-example-{}", std::process::id())),
    };
    std::fs::create_dir_all(&out_dir)?;

    let mut encoder = H264Encoder::new(H264Config::new(width, height))?;
    let mut segmenter = Segmenter::mpegts(SegmenterConfig::default());
    let mut file: Option<File> = None;
    let mut events = Vec::new();
    for frame in frames {
        for packet in encoder.encode(&frame)? {
            events.extend(segmenter.push(&packet)?);
        }
        write(&mut events, &mut file, &out_dir)?;
    }
    // The encoder's last frames, then the segmenter's last segment.
    for packet in encoder.flush()? {
        events.extend(segmenter.push(&packet)?);
    }
    events.extend(segmenter.finish());
    write(&mut events, &mut file, &out_dir)?;
    println!("segments in {}", out_dir.display());
    Ok(())
}

/// Writes what the segmenter produced: bytes reach the file as soon as they are encoded, as
/// they would reach a trickle channel.
fn write(
    events: &mut Vec<SegmentEvent>,
    file: &mut Option<File>,
    dir: &std::path::Path,
) -> std::io::Result<()> {
    for event in events.drain(..) {
        match event {
            SegmentEvent::SegmentStart { index } => {
                *file = Some(File::create(dir.join(format!("{index}.ts")))?)
            }
            SegmentEvent::Chunk(bytes) => {
                file.as_mut().expect("a chunk follows its segment's start").write_all(&bytes)?
            }
            SegmentEvent::SegmentEnd(summary) => {
                *file = None;
                println!(
                    "segment {}: {} frames, {:?}, {} bytes",
                    summary.index, summary.frames, summary.duration, summary.bytes
                );
            }
        }
    }
    Ok(())
}
