//! Opus audio in MPEG-TS next to H.264, checked by Debian's ffmpeg: both tracks with the right
//! codecs, layout and rate in every segment alone and in the whole stream, the audio starting
//! within a video frame of the video, every sample decoded, and the tone's pitch intact; and
//! our demuxer and decoder read ffmpeg's Opus and our own back, packet for packet; the official
//! Python SDK's decoder (PyAV) reads our audio and video.

mod common;

use std::process::Command;

use common::*;
use livepeer_gateway_media::audio::{AudioUnitDecoder, OpusConfig, OpusEncoder, Tone};
use livepeer_gateway_media::{
    Codec, EncodedPacket, H264Config, H264Encoder, MediaUnit, SegmentEvent, Segmenter, TsConfig, TsDemuxer,
    TsMuxer, VideoEncoder,
};

const SECONDS: u32 = 5;
const FPS: u32 = 30;

/// Segments of `SECONDS` of 320x180 video and 48 kHz stereo tone, pushed in time order.
fn av_segments() -> (Vec<Vec<u8>>, u64) {
    let mut video = H264Encoder::new(H264Config::new(320, 180)).unwrap();
    let mut pattern = pattern(320, 180, FPS);
    let mut audio = OpusEncoder::new(OpusConfig::new(2)).unwrap();
    let mut tone = Tone::new(2, 48_000, 1024).unwrap();
    let muxer = TsMuxer::new(TsConfig::with_opus(2, audio.pre_skip())).unwrap();
    let mut segmenter = Segmenter::with_muxer(muxer, segmenter_config(std::time::Duration::from_secs(2)));
    let mut events = Vec::new();
    let mut audio_packets = 0u64;
    let mut push =
        |p: &EncodedPacket, events: &mut Vec<SegmentEvent>| events.extend(segmenter.push(p).unwrap());
    let (mut v, mut a) = (0u32, 0u64);
    while v < SECONDS * FPS {
        // Whichever source is behind in media time goes next.
        if a * 1024 * u64::from(FPS) < u64::from(v) * 48_000 {
            for p in audio.encode(&tone.next_frame()).unwrap() {
                audio_packets += 1;
                push(&p, &mut events);
            }
            a += 1;
        } else {
            for p in video.encode(&pattern.next_frame()).unwrap() {
                push(&p, &mut events);
            }
            v += 1;
        }
    }
    for p in video.flush().unwrap() {
        push(&p, &mut events);
    }
    for p in audio.flush().unwrap() {
        audio_packets += 1;
        push(&p, &mut events);
    }
    events.extend(segmenter.finish());
    assert_eq!(segmenter.audio_dropped(), 0);
    let mut segments: Vec<Vec<u8>> = Vec::new();
    let mut written = 0;
    for e in events {
        match e {
            SegmentEvent::SegmentStart { .. } => segments.push(Vec::new()),
            SegmentEvent::Chunk(c) => segments.last_mut().unwrap().extend_from_slice(&c),
            SegmentEvent::SegmentEnd(s) => written += s.audio_packets,
        }
    }
    assert_eq!(written, audio_packets, "every audio packet is in a segment");
    (segments, audio_packets)
}

fn streams(path: &std::path::Path) -> Vec<serde_json::Value> {
    let out = run(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,codec_type,channels,sample_rate,start_time",
            "-of",
            "json",
            path.to_str().unwrap(),
        ]),
        None,
    );
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    v["streams"].as_array().unwrap().clone()
}

#[test]
fn ffmpeg_reads_both_tracks_in_sync_and_decodes_every_sample() {
    let (segments, audio_packets) = av_segments();
    assert_eq!(segments.len(), 3);
    let dir = temp_dir("audio_ts");
    for (i, s) in segments.iter().enumerate() {
        let st = streams(&write(&dir, &format!("{i}.ts"), s));
        let kinds: Vec<(&str, &str)> = st
            .iter()
            .map(|s| (s["codec_type"].as_str().unwrap(), s["codec_name"].as_str().unwrap()))
            .collect();
        assert_eq!(kinds, [("video", "h264"), ("audio", "opus")], "segment {i}");
    }
    let whole = write(&dir, "whole.ts", &segments.concat());
    let st = streams(&whole);
    assert_eq!(st[1]["channels"], 2);
    assert_eq!(st[1]["sample_rate"], "48000");
    let start = |s: &serde_json::Value| s["start_time"].as_str().unwrap().parse::<f64>().unwrap();
    let offset = (start(&st[1]) - start(&st[0])).abs();
    assert!(offset < 1.0 / f64::from(FPS), "audio starts {offset} s from the video");

    // Every sample decodes, without a warning, and the pre-skip is dropped.
    let out = Command::new("ffmpeg")
        .args([
            "-v",
            "warning",
            "-i",
            whole.to_str().unwrap(),
            "-map",
            "0:a",
            "-f",
            "f32le",
            "-ac",
            "2",
            "pipe:1",
        ])
        .output()
        .unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let samples: Vec<f32> =
        out.stdout.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let decoded = samples.len() as u64 / 2;
    let encoded = audio_packets * 960;
    assert!(decoded <= encoded && decoded + 312 + 960 >= encoded, "decoded {decoded} of {encoded} samples");
    // The tone ran up to the last video frame (4.97 s); the pre-skip is the first 312 samples.
    let sent = u64::from(SECONDS * FPS - 1) * 48_000 / u64::from(FPS);
    assert!(decoded + 312 >= sent, "decoded {decoded} samples for {sent} sent");
    // The left channel is 440 Hz, the right 660 Hz: count rising zero crossings over 4 s.
    for (c, pitch) in [(0usize, Tone::pitch(0)), (1, Tone::pitch(1))] {
        let ch: Vec<f32> = samples.iter().skip(c).step_by(2).skip(4_800).take(4 * 48_000).copied().collect();
        let rising = ch.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count() as f32 / 4.0;
        assert!((rising - pitch).abs() < 3.0, "channel {c}: {rising} Hz, expected {pitch}");
    }
}

/// Our demuxer and decoder over `ts`: video units, audio pts, decoded interleaved samples.
fn read_back(ts: &[u8], chunk: usize) -> (usize, Vec<i64>, Vec<f32>, TsDemuxer) {
    let mut demux = TsDemuxer::with_audio();
    let mut units = Vec::new();
    for c in ts.chunks(chunk) {
        units.extend(demux.push_media(c));
    }
    units.extend(demux.finish_media());
    let mut decoder = AudioUnitDecoder::new();
    let (mut video, mut pts, mut pcm) = (0, Vec::new(), Vec::new());
    for u in units {
        match u {
            MediaUnit::Video(_) => video += 1,
            MediaUnit::Audio(a) => {
                assert_eq!((a.stream.codec, a.stream.channels), (Some(Codec::Opus), Some(2)));
                if let Some(frame) = decoder.decode(&a).unwrap() {
                    assert_eq!(
                        (frame.rate(), frame.channels(), frame.pts_90k()),
                        (48_000, 2, a.pts.unwrap())
                    );
                    pcm.extend_from_slice(frame.samples());
                }
                pts.push(a.pts.unwrap());
            }
        }
    }
    assert_eq!(decoder.samples() as usize, pcm.len() / 2);
    (video, pts, pcm, demux)
}

fn pitch(pcm: &[f32], channel: usize, channels: usize) -> f32 {
    let ch: Vec<f32> = pcm.iter().skip(channel).step_by(channels).skip(4_800).take(48_000).copied().collect();
    ch.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count() as f32
}

#[test]
fn our_demuxer_and_decoder_read_what_ffmpeg_writes() {
    // Debian's ffmpeg with libopus: H.264 plus stereo Opus at 48 kHz, 3 s.
    let ts = run(
        Command::new("ffmpeg").args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x96:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-ac",
            "2",
            "-t",
            "3",
            "-c:v",
            "libx264",
            "-c:a",
            "libopus",
            "-f",
            "mpegts",
            "pipe:1",
        ]),
        None,
    );
    let (video, pts, pcm, demux) = read_back(&ts, 1000);
    assert_eq!(demux.stats().issues(), 0, "{:?}", demux.last_issue());
    assert_eq!(video, 90);
    assert!(pts.windows(2).all(|w| w[1] - w[0] == 1800), "20 ms apart, split from PES of several packets");
    // 3 s less the pre-skip ffmpeg's first control header declared, within a packet.
    let samples = pcm.len() / 2;
    assert!((samples as i64 - (144_000 - 312)).abs() <= 960, "{samples} samples");
    assert!((pitch(&pcm, 0, 2) - 440.0).abs() < 3.0);
}

#[test]
fn our_demuxer_and_decoder_read_what_we_write() {
    let (segments, audio_packets) = av_segments();
    let (video, pts, pcm, demux) = read_back(&segments.concat(), 4096);
    assert_eq!(demux.stats().issues(), 0, "{:?}", demux.last_issue());
    assert_eq!(video as u32, SECONDS * FPS);
    assert_eq!(pts.len() as u64, audio_packets, "every packet comes back");
    assert!(pts.windows(2).all(|w| w[1] - w[0] == 1800));
    assert_eq!(pcm.len() as u64 / 2, audio_packets * 960 - 312, "all but the pre-skip");
    assert!((pitch(&pcm, 0, 2) - Tone::pitch(0)).abs() < 3.0);
    assert!((pitch(&pcm, 1, 2) - Tone::pitch(1)).abs() < 3.0);
    // A video-only demuxer ignores the audio.
    let mut plain = TsDemuxer::new();
    assert_eq!(plain.push(&segments.concat()).len() + plain.finish().len(), video);
    assert_eq!(plain.stats().audio_units, 0);
}

#[test]
fn the_python_sdk_decodes_our_audio_and_video() {
    let (segments, audio_packets) = av_segments();
    let dir = temp_dir("audio_ts_py");
    let whole = write(&dir, "whole.ts", &segments.concat());
    let first = write(&dir, "0.ts", &segments[0]);
    let seen = py_decode(&[whole, first]);
    let whole = &seen[0];
    assert_eq!(whole.count as u32, SECONDS * FPS, "every video frame");
    assert_eq!((whole.audio_rate, whole.audio_layout.as_str()), (48_000, "stereo"), "{whole:?}");
    let encoded = audio_packets * 960;
    assert!(
        whole.audio_samples <= encoded && whole.audio_samples + 312 + 960 >= encoded,
        "PyAV decoded {} of {encoded} samples",
        whole.audio_samples
    );
    // A segment alone decodes with its audio too.
    assert!(seen[1].count > 0 && seen[1].audio_frames > 0, "{:?}", seen[1]);
}
