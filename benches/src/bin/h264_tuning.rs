//! What openh264's complexity setting costs and buys: each source is encoded at each
//! [`H264Complexity`] with the SDK's live settings (bitrate rate control, no frame skipping,
//! an IDR every 2 s), then decoded again, and the table gives CPU per frame, the bitrate
//! reached and PSNR against the source. This is the evidence behind the encoder's default.
//!
//! ```sh
//! ffmpeg -f lavfi -i testsrc2=size=1280x720:rate=30 -t 10 -pix_fmt yuv420p testsrc2.y4m
//! cargo run --release -p benches --bin h264_tuning -- pattern testsrc2.y4m
//! ```
//!
//! `pattern` is the SDK's test pattern at 1280x720 (what scenario 3 encodes). CPU is this
//! process's CPU time over the encode calls only (openh264 runs on the calling thread with one
//! worker thread), so run it on an idle machine.

use std::fs::File;
use std::io::BufReader;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use benches::sys::cpu_seconds;
use clap::Parser;
use gateway_media::y4m::Y4mReader;
use gateway_media::{
    H264Complexity, H264Config, H264Decoder, H264Encoder, Rational, TestPattern, VideoEncoder, VideoFrame,
};

#[derive(Debug, Parser)]
struct Args {
    /// Sources: `pattern`, or Y4M files (4:2:0).
    #[arg(required = true)]
    sources: Vec<String>,
    /// Target bitrate, bits per second.
    #[arg(long, default_value_t = 1_000_000)]
    bitrate: u32,
    /// Frames of the test pattern.
    #[arg(long, default_value_t = 300)]
    frames: u64,
    /// Hand frames over at their frame rate, as a camera does, instead of back to back (an
    /// encoder that waits between frames starts each one with colder caches).
    #[arg(long)]
    live: bool,
}

/// One source at one complexity.
struct Row {
    cpu_ms_per_frame: f64,
    kbps: f64,
    psnr_y: f64,
    psnr_uv: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!("| source | complexity | CPU ms/frame | kbit/s | PSNR Y dB | PSNR UV dB |");
    println!("|---|---|---|---|---|---|");
    for source in &args.sources {
        let frames = load(source, args.frames)?;
        for complexity in [H264Complexity::Low, H264Complexity::Medium, H264Complexity::High] {
            let row = measure(&frames, complexity, args.bitrate, args.live)?;
            println!(
                "| {source} | {complexity:?} | {:.2} | {:.0} | {:.2} | {:.2} |",
                row.cpu_ms_per_frame, row.kbps, row.psnr_y, row.psnr_uv
            );
        }
    }
    Ok(())
}

fn load(source: &str, count: u64) -> anyhow::Result<Vec<VideoFrame>> {
    if source == "pattern" {
        let pattern = TestPattern::new(1280, 720, Rational::new(30, 1))?;
        return Ok((0..count).map(|i| pattern.frame(i)).collect());
    }
    let file = File::open(source).with_context(|| format!("opening {source}"))?;
    let mut reader = Y4mReader::new(BufReader::new(file)).with_context(|| format!("reading {source}"))?;
    let mut frames = Vec::new();
    while let Some(frame) = reader.next_frame()? {
        frames.push(frame);
    }
    if frames.is_empty() {
        bail!("{source} holds no frames");
    }
    Ok(frames)
}

fn measure(
    frames: &[VideoFrame],
    complexity: H264Complexity,
    bitrate: u32,
    live: bool,
) -> anyhow::Result<Row> {
    let (width, height) = (frames[0].width(), frames[0].height());
    let mut config = H264Config::new(width, height);
    config.bitrate_bps = bitrate;
    config.complexity = complexity;
    let frame_rate = config.frame_rate;
    let mut encoder = H264Encoder::new(config)?;
    let mut units = Vec::with_capacity(frames.len());
    let mut cpu = 0.0;
    let started = Instant::now();
    for (n, source) in frames.iter().enumerate() {
        if live {
            std::thread::sleep(
                (started + Duration::from_secs_f64(n as f64 / frame_rate.as_f64()))
                    .saturating_duration_since(Instant::now()),
            );
        }
        let mut frame = source.clone();
        frame.set_pts(n as i64, Rational::new(frame_rate.den, frame_rate.num))?;
        let before = cpu_seconds();
        let packets = encoder.encode(&frame)?;
        cpu += cpu_seconds() - before;
        units.push(packets.into_iter().map(|p| p.data).collect::<Vec<_>>());
    }
    let bytes: usize = units.iter().flatten().map(|d| d.len()).sum();
    let mut decoder = H264Decoder::new()?;
    let (mut mse_y, mut mse_uv, mut decoded) = (0.0, 0.0, 0usize);
    for (n, unit) in units.iter().enumerate() {
        for data in unit {
            if let Some(picture) = decoder.decode(data, n as i64)? {
                mse_y += plane_mse(&frames[n], &picture, 0);
                mse_uv += (plane_mse(&frames[n], &picture, 1) + plane_mse(&frames[n], &picture, 2)) / 2.0;
                decoded += 1;
            }
        }
    }
    if decoded != frames.len() {
        bail!("decoded {decoded} of {} frames", frames.len());
    }
    let seconds = frames.len() as f64 / frame_rate.as_f64();
    Ok(Row {
        cpu_ms_per_frame: cpu * 1000.0 / frames.len() as f64,
        kbps: bytes as f64 * 8.0 / seconds / 1000.0,
        psnr_y: psnr(mse_y / decoded as f64),
        psnr_uv: psnr(mse_uv / decoded as f64),
    })
}

/// Mean squared error of plane `i` (0 = Y) between two frames of the same size.
fn plane_mse(a: &VideoFrame, b: &VideoFrame, i: usize) -> f64 {
    let (w, h) = if i == 0 {
        (a.width() as usize, a.height() as usize)
    } else {
        (a.width().div_ceil(2) as usize, a.height().div_ceil(2) as usize)
    };
    let (pa, pb) = (a.plane(i), b.plane(i));
    let (sa, sb) = (a.stride(i), b.stride(i));
    let mut sum = 0u64;
    for row in 0..h {
        let ra = &pa[row * sa..row * sa + w];
        let rb = &pb[row * sb..row * sb + w];
        sum += ra.iter().zip(rb).map(|(&x, &y)| (i64::from(x) - i64::from(y)).pow(2) as u64).sum::<u64>();
    }
    sum as f64 / (w * h) as f64
}

/// PSNR in dB of an 8-bit mean squared error (over the average MSE, so one perfect frame does
/// not make the mean infinite).
fn psnr(mse: f64) -> f64 {
    10.0 * (255.0f64 * 255.0 / mse.max(1e-9)).log10()
}
