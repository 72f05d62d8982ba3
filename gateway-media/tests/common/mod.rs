//! Helpers for the decode tests: produce segments with this crate, then hand them to real
//! decoders (ffprobe/ffmpeg from Debian, PyAV through the official Python SDK) and parse what
//! they saw. Missing tools make the tests fail loudly: CI installs them.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use livepeer_gateway_media::{
    Rational, SegmentEvent, SegmentMuxer, SegmentSummary, Segmenter, SegmenterConfig, TestPattern,
    VideoEncoder,
};
use serde_json::Value;

/// A segment as a consumer would have received it: the concatenated chunks plus the summary.
pub struct Segment {
    pub bytes: Vec<u8>,
    pub chunks: usize,
    pub summary: SegmentSummary,
}

/// Encodes `frames` test-pattern frames through `encoder` and `segmenter`, collecting the
/// events into whole segments (checking their order on the way).
pub fn encode_segments<E: VideoEncoder, M: SegmentMuxer>(
    encoder: &mut E,
    mut segmenter: Segmenter<M>,
    pattern: &TestPattern,
    frames: u64,
) -> Vec<Segment> {
    let mut segments: Vec<Segment> = Vec::new();
    let mut open: Option<(u64, Vec<u8>, usize)> = None;
    let mut apply = |e: SegmentEvent, segments: &mut Vec<Segment>| match e {
        SegmentEvent::SegmentStart { index } => {
            assert!(open.is_none(), "segment {index} started before the last one ended");
            assert_eq!(index, segments.len() as u64);
            open = Some((index, Vec::new(), 0));
        }
        SegmentEvent::Chunk(c) => {
            let (_, buf, n) = open.as_mut().expect("chunk outside a segment");
            buf.extend_from_slice(&c);
            *n += 1;
        }
        SegmentEvent::SegmentEnd(summary) => {
            let (index, bytes, chunks) = open.take().expect("end without start");
            assert_eq!(index, summary.index);
            assert_eq!(bytes.len() as u64, summary.bytes);
            segments.push(Segment { bytes, chunks, summary });
        }
    };
    let mut packets = Vec::new();
    for i in 0..frames {
        packets.extend(encoder.encode(&pattern.frame(i)).expect("encode"));
        for p in packets.drain(..) {
            for e in segmenter.push(&p).expect("segment") {
                apply(e, &mut segments);
            }
        }
    }
    for p in encoder.flush().expect("flush") {
        for e in segmenter.push(&p).expect("segment") {
            apply(e, &mut segments);
        }
    }
    for e in segmenter.finish() {
        apply(e, &mut segments);
    }
    segments
}

/// The pattern used by the tests.
pub fn pattern(width: u32, height: u32, fps: u32) -> TestPattern {
    TestPattern::new(width, height, Rational::new(fps, 1)).unwrap()
}

pub fn segmenter_config(target: Duration) -> SegmenterConfig {
    SegmenterConfig { target_duration: target }
}

/// A fresh directory under cargo's per-target temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "gateway-media-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// What ffprobe reports after decoding every frame of the first video stream.
#[derive(Debug)]
pub struct Probe {
    pub codec: String,
    pub width: u64,
    pub height: u64,
    pub pts: Vec<i64>,
    pub keyframes: Vec<bool>,
}

pub fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Vec<u8> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {program}: {e}. Install it (Debian: apt-get install -y ffmpeg; Python venv: scripts/setup.sh)")
        });
    if let Some(input) = stdin {
        let mut w = child.stdin.take().unwrap();
        let input = input.to_vec();
        // Write from a thread so a full stdout pipe cannot deadlock us.
        std::thread::spawn(move || {
            let _ = w.write_all(&input);
        });
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn ffprobe_json(input: &str, format: Option<&str>, stdin: Option<&[u8]>) -> Value {
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-v", "error"]);
    if let Some(f) = format {
        cmd.args(["-f", f]);
    }
    cmd.args([
        "-select_streams",
        "v:0",
        "-show_streams",
        "-show_frames",
        "-show_entries",
        "stream=codec_name,width,height:frame=pts,key_frame,width,height",
        "-of",
        "json",
        input,
    ]);
    serde_json::from_slice(&run(&mut cmd, stdin)).expect("ffprobe JSON")
}

fn parse_probe(v: Value) -> Probe {
    let stream = &v["streams"][0];
    let frames = v["frames"].as_array().expect("frames").clone();
    Probe {
        codec: stream["codec_name"].as_str().unwrap_or("none").to_string(),
        width: stream["width"].as_u64().unwrap_or(0),
        height: stream["height"].as_u64().unwrap_or(0),
        pts: frames.iter().map(|f| f["pts"].as_i64().expect("frame pts")).collect(),
        keyframes: frames.iter().map(|f| f["key_frame"] == 1).collect(),
    }
}

/// ffprobe over a file.
pub fn ffprobe(path: &Path) -> Probe {
    parse_probe(ffprobe_json(path.to_str().unwrap(), None, None))
}

/// ffprobe over a pipe (how a live consumer would feed it).
pub fn ffprobe_stdin(bytes: &[u8], format: &str) -> Probe {
    parse_probe(ffprobe_json("pipe:0", Some(format), Some(bytes)))
}

/// Decodes with ffmpeg to 8-bit grey and reads the burned-in frame counter of every frame.
pub fn ffmpeg_counters(path: &Path, width: usize, height: usize) -> Vec<Option<u64>> {
    let raw = run(
        Command::new("ffmpeg").args([
            "-v",
            "error",
            "-i",
            path.to_str().unwrap(),
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "pipe:1",
        ]),
        None,
    );
    assert_eq!(raw.len() % (width * height), 0);
    raw.chunks_exact(width * height)
        .map(|y| TestPattern::read_counter_luma(y, width, width, height))
        .collect()
}

/// What the official Python SDK's decoder (`livepeer_gateway.media_decode.MpegTsDecoder`,
/// PyAV underneath) saw in one file.
#[derive(Debug)]
pub struct PyDecode {
    pub count: usize,
    pub widths: Vec<u64>,
    pub heights: Vec<u64>,
    pub pts: Vec<i64>,
    pub time_base: String,
    /// Decoded audio frames, their samples per channel in all, rate and layout.
    pub audio_frames: usize,
    pub audio_samples: u64,
    pub audio_rate: u64,
    pub audio_layout: String,
}

const PY_DECODE: &str = r#"
import json, sys
from livepeer_gateway.media_decode import MpegTsDecoder, decoder_error, is_decoder_end

out = []
for path in sys.argv[1:]:
    dec = MpegTsDecoder()
    dec.start()
    data = open(path, "rb").read()
    # Feed in odd-sized pieces, like network chunks.
    for i in range(0, len(data), 7001):
        dec.feed(data[i:i + 7001])
    dec.close()
    frames = []
    audio = []
    while True:
        item = dec.get()
        if is_decoder_end(item):
            break
        err = decoder_error(item)
        if err is not None:
            raise err
        if item.kind == "video":
            frames.append(item)
        elif item.kind == "audio":
            audio.append(item)
    dec.join()
    out.append({
        "count": len(frames),
        "width": [f.width for f in frames],
        "height": [f.height for f in frames],
        "pts": [f.pts for f in frames],
        "time_base": str(frames[0].time_base) if frames else "",
        "audio_frames": len(audio),
        "audio_samples": sum(a.samples for a in audio),
        "audio_rate": audio[0].sample_rate if audio else 0,
        "audio_layout": str(audio[0].layout) if audio else "",
    })
print(json.dumps(out))
"#;

/// The Python interpreter of the SDK venv: `$LPGW_PYTHON` or `<workspace>/.venv/bin/python`.
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("LPGW_PYTHON") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(".venv/bin/python");
    assert!(p.exists(), "Python venv missing at {}: run scripts/setup.sh or set LPGW_PYTHON", p.display());
    p
}

/// Decodes each file with the Python SDK's MpegTsDecoder.
pub fn py_decode(paths: &[PathBuf]) -> Vec<PyDecode> {
    let mut cmd = Command::new(python());
    cmd.arg("-c").arg(PY_DECODE).args(paths);
    let v: Value = serde_json::from_slice(&run(&mut cmd, None)).expect("python JSON");
    v.as_array()
        .expect("list")
        .iter()
        .map(|r| {
            let nums = |k: &str| -> Vec<u64> {
                r[k].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect()
            };
            PyDecode {
                count: r["count"].as_u64().unwrap() as usize,
                widths: nums("width"),
                heights: nums("height"),
                pts: r["pts"].as_array().unwrap().iter().map(|x| x.as_i64().expect("pts")).collect(),
                time_base: r["time_base"].as_str().unwrap().to_string(),
                audio_frames: r["audio_frames"].as_u64().unwrap() as usize,
                audio_samples: r["audio_samples"].as_u64().unwrap(),
                audio_rate: r["audio_rate"].as_u64().unwrap(),
                audio_layout: r["audio_layout"].as_str().unwrap().to_string(),
            }
        })
        .collect()
}
