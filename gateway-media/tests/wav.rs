//! WAV from Debian's ffmpeg, as files and as a pipe: 16- and 24-bit integer and 32-bit float,
//! stereo and 5.1 (`WAVE_FORMAT_EXTENSIBLE`), every sample read with its value; bad input is a
//! typed error. What `WavWriter` writes ffprobe reads with its length, and our reader reads
//! back sample for sample, finished or not.

mod common;

use std::process::Command;

use common::run;
use livepeer_gateway_media::audio::wav::{WavEncoding, WavError, WavReader, WavWriter};
use livepeer_gateway_media::audio::Tone;

/// 1 s of a 440 Hz sine at `rate` in `channels`, as ffmpeg writes it with `output` (its codec
/// and format options) to a pipe.
fn sine(channels: u32, rate: u32, output: &[&str]) -> Vec<u8> {
    let input = format!("sine=frequency=440:sample_rate={rate}:duration=1");
    let channels = channels.to_string();
    let mut args = vec!["-v", "error", "-f", "lavfi", "-i", &input, "-ac", &channels];
    args.extend_from_slice(output);
    args.push("pipe:1");
    run(Command::new("ffmpeg").args(args), None)
}

/// 1 s of a 440 Hz sine from ffmpeg as WAV: `codec` (pcm_s16le, ...), `channels`, to a pipe.
fn wav(codec: &str, channels: u32, rate: u32) -> Vec<u8> {
    sine(channels, rate, &["-c:a", codec, "-f", "wav"])
}

fn read_all(bytes: &[u8]) -> (livepeer_gateway_media::audio::wav::WavFormat, Vec<f32>, u64) {
    let mut r = WavReader::new(bytes).unwrap();
    let format = r.format();
    let (mut samples, mut frames) = (Vec::new(), 0u64);
    while let Some(f) = r.next_frame(1000).unwrap() {
        assert_eq!(f.pts() as u64, frames, "pts counts samples");
        frames += f.len() as u64;
        samples.extend_from_slice(f.samples());
    }
    (format, samples, frames)
}

#[test]
fn ffmpegs_wav_reads_whole_in_every_encoding() {
    for (codec, encoding) in [
        ("pcm_s16le", WavEncoding::Int(16)),
        ("pcm_s24le", WavEncoding::Int(24)),
        ("pcm_f32le", WavEncoding::Float32),
    ] {
        let (format, samples, frames) = read_all(&wav(codec, 2, 44_100));
        assert_eq!((format.rate, format.channels, format.encoding), (44_100, 2, encoding), "{codec}");
        assert_eq!(frames, 44_100, "{codec}: one second");
        // ffmpeg's sine source has amplitude 1/8; its mono-to-stereo upmix takes 3 dB off.
        let peak = samples.iter().fold(0f32, |m, s| m.max(s.abs()));
        assert!((peak - 0.125 * std::f32::consts::FRAC_1_SQRT_2).abs() < 0.002, "{codec}: peak {peak}");
        let left: Vec<f32> = samples.iter().step_by(2).copied().collect();
        let hz = left.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
        assert!(hz.abs_diff(440) <= 1, "{codec}: {hz} Hz");
    }
}

#[test]
fn five_one_extensible_reads_with_six_channels() {
    let (format, samples, frames) = read_all(&wav("pcm_s16le", 6, 48_000));
    assert_eq!((format.channels, frames), (6, 48_000));
    assert_eq!(samples.len(), 6 * 48_000);
}

#[test]
fn bad_input_is_a_typed_error() {
    assert!(matches!(WavReader::new(&b"hello world, not audio"[..]), Err(WavError::NotWav)));
    assert!(matches!(WavReader::new(&b"RIFF"[..]), Err(WavError::NotWav)));
    let good = wav("pcm_s16le", 1, 8_000);
    assert!(matches!(WavReader::new(&good[..20]), Err(WavError::Truncated(_))));
    assert!(matches!(
        WavReader::new(&wav("pcm_u8", 1, 8_000)[..]),
        Err(WavError::Unsupported { format_tag: 1, bits: 8 })
    ));
    // A data chunk cut short ends the frames without a panic.
    let mut r = WavReader::new(&good[..good.len() - 1001]).unwrap();
    let mut n = 0;
    while let Some(f) = r.next_frame(512).unwrap() {
        n += f.len();
    }
    assert_eq!(n, 8_000 - 501, "every whole sample before the cut");
}

/// ffprobe's codec, channels, rate and sample count of the WAV file at `path`.
fn probe(path: &std::path::Path) -> String {
    let out = run(
        Command::new("ffprobe")
            .args(["-v", "error", "-show_entries", "stream=codec_name,channels,sample_rate,duration_ts"])
            .args(["-of", "csv=p=0"])
            .arg(path),
        None,
    );
    String::from_utf8(out).unwrap().trim().to_owned()
}

#[test]
fn what_wav_writer_writes_ffprobe_and_our_reader_read_whole() {
    let dir = std::env::temp_dir().join(format!("lpgw-wav-writer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tone.wav");
    let mut tone = Tone::new(2, 48_000, 960).unwrap();
    let frames: Vec<_> = (0..50).map(|_| tone.next_frame()).collect();
    let mut w = WavWriter::new(std::fs::File::create(&path).unwrap(), 2, 48_000).unwrap();
    for f in &frames {
        w.write(f).unwrap();
    }
    assert_eq!(w.samples(), 48_000);
    // A frame of another layout is refused and nothing of it is written.
    let mono = Tone::new(1, 48_000, 960).unwrap().next_frame();
    assert!(matches!(w.write(&mono), Err(WavError::Layout { channels: 1, rate: 48_000 })));
    w.finish().unwrap();
    assert_eq!(probe(&path), "pcm_s16le,48000,2,48000");

    let bytes = std::fs::read(&path).unwrap();
    let (format, samples, n) = read_all(&bytes);
    assert_eq!((format.rate, format.channels, format.encoding, n), (48_000, 2, WavEncoding::Int(16), 48_000));
    let sent: Vec<f32> = frames.iter().flat_map(|f| f.samples().iter().copied()).collect();
    let worst = sent.iter().zip(&samples).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst <= 1.0 / 32_767.0, "off by {worst}");

    // Never finished (the process died): the header says "unknown length", read to the end.
    let path = dir.join("cut.wav");
    let mut w = WavWriter::new(std::fs::File::create(&path).unwrap(), 2, 48_000).unwrap();
    w.write(&frames[0]).unwrap();
    drop(w);
    let (_, _, n) = read_all(&std::fs::read(&path).unwrap());
    assert_eq!(n, 960);

    // To a pipe (here a Vec, which cannot seek): the sizes stay unknown, and both ffprobe and
    // our reader read every sample to the end.
    let mut w = WavWriter::new(Vec::new(), 2, 48_000).unwrap();
    for f in &frames {
        w.write(f).unwrap();
    }
    let piped = w.finish_unsized().unwrap();
    assert_eq!(&piped[4..8], &u32::MAX.to_le_bytes(), "RIFF size unknown");
    assert_eq!(read_all(&piped).2, 48_000);
    let path = dir.join("piped.wav");
    std::fs::write(&path, &piped).unwrap();
    assert_eq!(probe(&path).split(',').take(3).collect::<Vec<_>>(), ["pcm_s16le", "48000", "2"]);
    assert!(matches!(
        WavWriter::new(std::io::Cursor::new(Vec::new()), 0, 48_000),
        Err(WavError::Layout { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Headerless PCM from ffmpeg (`-f s16le`, `-f f32le`) reads with the format named as ffmpeg
/// names it, every sample as the WAV of the same tone gives it; formats that do not parse or
/// cannot be carried are typed errors.
#[test]
fn raw_pcm_reads_like_the_wav_of_the_same_tone() {
    for (name, codec) in [("s16le", "pcm_s16le"), ("s24le", "pcm_s24le"), ("f32le", "pcm_f32le")] {
        let raw = sine(2, 44_100, &["-f", name]);
        let format: livepeer_gateway_media::audio::wav::WavFormat =
            format!("{name}:44100:2").parse().unwrap();
        let mut r = WavReader::raw(&raw[..], format).unwrap();
        let mut samples = Vec::new();
        while let Some(f) = r.next_frame(1000).unwrap() {
            samples.extend_from_slice(f.samples());
        }
        let (wav_format, from_wav, _) = read_all(&wav(codec, 2, 44_100));
        assert_eq!(wav_format, format, "{name}");
        assert_eq!(samples, from_wav, "{name}");
    }
    for bad in ["s16le", "s16le:48000", "u8:48000:2", "s16le:x:2", "s16le:48000:2:1", ""] {
        let e = bad.parse::<livepeer_gateway_media::audio::wav::WavFormat>().unwrap_err();
        assert!(matches!(e, WavError::RawFormat(_)), "{bad}: {e}");
    }
    for bad in ["s16le:48000:9", "s16le:0:2", "f32le:48000:0"] {
        let e = bad.parse::<livepeer_gateway_media::audio::wav::WavFormat>().unwrap_err();
        assert!(matches!(e, WavError::Layout { .. }), "{bad}: {e}");
    }
}
