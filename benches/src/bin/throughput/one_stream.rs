//! Scenarios 1 and 3: one stream's trickle publish, and encoding then publishing the test
//! pattern, each beside the Python SDK.

use std::time::Duration;

use benches::python::{clip_args, PythonSide};
use benches::report::{ratio, table};
use benches::scenarios::media::{self, codec_name, MediaResult};
use benches::scenarios::publish::{self, cpu_per_gb_note, median_by, percent_cell, PublishResult, PublishTo};
use benches::servers::{ServerAddrs, ServerProcess};
use gateway_media::Codec;

use super::budget;

pub(crate) async fn scenario_publish(
    server: &ServerProcess,
    python: Option<&PythonSide>,
    quick: bool,
    rounds: u32,
) -> anyhow::Result<String> {
    let (addrs, pid) = (&server.addrs, server.pid());
    let mut rows = Vec::new();
    let mut cpu_notes = Vec::new();
    for size in [1_000_000usize, 10_000] {
        let b = budget(quick, if size > 100_000 { 5_000 } else { 50_000 }, 3.0);
        // Alternate the two so drift on a shared box hits both alike.
        let (mut raws, mut rusts, mut drained) = (Vec::new(), Vec::new(), Vec::new());
        let (mut percents, mut drained_percents) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let raw = publish::raw_loopback(addrs, pid, size, b).await?;
            let rust = publish::trickle_publish(addrs, PublishTo::TrickleServer, pid, size, b).await?;
            let to_drain = publish::trickle_publish(addrs, PublishTo::DrainServer, pid, size, b).await?;
            percents.push(100.0 * rust.mb_per_s() / raw.mb_per_s().max(1e-9));
            drained_percents.push(100.0 * to_drain.mb_per_s() / raw.mb_per_s().max(1e-9));
            raws.push(raw);
            rusts.push(rust);
            drained.push(to_drain);
        }
        let (raw, rust) =
            (median_by(&raws, PublishResult::mb_per_s), median_by(&rusts, PublishResult::mb_per_s));
        let to_drain = median_by(&drained, PublishResult::mb_per_s);
        let (percent, drained_percent) =
            (percent_cell(percents, rounds), percent_cell(drained_percents, rounds));
        let py: Option<PublishResult> = match python {
            Some(p) => {
                let args = [
                    "publish".to_owned(),
                    "--url".into(),
                    addrs.channel_url(&format!("py1-{size}-{}", std::process::id())),
                    "--segment-bytes".into(),
                    size.to_string(),
                    "--seconds".into(),
                    b.max_time.as_secs_f64().to_string(),
                    "--max-segments".into(),
                    b.max_count.to_string(),
                ];
                p.run(&args, Duration::from_secs(60)).map_err(|e| eprintln!("python publish: {e:#}")).ok()
            }
            None => None,
        };
        let label = if size >= 1_000_000 { "1 MB (64 KiB chunks)" } else { "10 KB (1 chunk)" };
        cpu_notes.push(cpu_per_gb_note(label, &raws, &rusts, &drained));
        rows.push(vec![
            label.to_owned(),
            format!("{:.0} MB/s, {:.0} seg/s", raw.mb_per_s(), raw.segments_per_s()),
            format!("{:.0} MB/s, {drained_percent}", to_drain.mb_per_s()),
            format!("{:.0} MB/s, {:.0} seg/s", rust.mb_per_s(), rust.segments_per_s()),
            percent,
            py.as_ref()
                .map(|p| format!("{:.0} MB/s, {:.0} seg/s", p.mb_per_s(), p.segments_per_s()))
                .unwrap_or("n/a".into()),
            ratio(Some(rust.segments_per_s()), py.as_ref().map(|p| p.segments_per_s())),
            format!(
                "{} / {}",
                rust.failed,
                py.as_ref().map(|p| p.failed.to_string()).unwrap_or("n/a".into())
            ),
        ]);
    }
    Ok(format!(
        "## Scenario 1: single-stream trickle publish\n\n{}\n{}",
        table(
            &[
                "segment",
                "loopback limit (bare reqwest -> bare hyper)",
                "Rust TricklePublisher -> bare hyper, % of limit",
                "Rust TricklePublisher -> trickle server",
                "Rust % of limit",
                "Python TricklePublisher",
                "Rust/Python seg/s",
                "failed Rust / Python"
            ],
            &rows
        ),
        cpu_notes.join("")
    ))
}

/// The Python SDK's `MediaPublish` live at 30 fps with a 48 kHz stereo audio track, on the
/// same frames.
fn python_live_audio(
    p: &PythonSide,
    addrs: &ServerAddrs,
    frames: &[gateway_media::VideoFrame],
    w: u32,
    h: u32,
    live_secs: f64,
) -> anyhow::Result<Option<media::LiveResult>> {
    let raw = std::env::temp_dir().join(format!("lpgw-bench-av-{}-{w}x{h}.yuv", std::process::id()));
    media::write_i420(&raw, frames)?;
    let mut a = clip_args(
        &["live", "--audio"],
        &addrs.channel_url(&format!("py3av-{w}x{h}-{}", std::process::id())),
        &raw,
        w,
        h,
        frames.len() as u64,
    );
    a.extend(["--live-seconds".into(), live_secs.to_string()]);
    let r = p.run(&a, Duration::from_secs(180)).map_err(|e| eprintln!("python live audio: {e:#}")).ok();
    let _ = std::fs::remove_file(&raw);
    Ok(r)
}

pub(crate) async fn scenario_media(
    addrs: &ServerAddrs,
    python: Option<&PythonSide>,
    quick: bool,
) -> anyhow::Result<String> {
    let cases: &[(Codec, u32, u32)] = if quick {
        &[(Codec::H264, 640, 360)]
    } else {
        &[(Codec::H264, 640, 360), (Codec::H264, 1280, 720), (Codec::Av1, 640, 360)]
    };
    let live_secs = if quick { 1.0 } else { 10.0 };
    let clip_len = 30;
    let (mut fast_rows, mut live_rows) = (Vec::new(), Vec::new());
    for &(codec, w, h) in cases {
        let frames = media::clip(w, h, clip_len)?;
        let b = if codec == Codec::Av1 { budget(quick, 90, 15.0) } else { budget(quick, 600, 10.0) };
        let encoder_fps = media::encoder_fps(codec, &frames, b)?;
        let (e2e_fps, e2e_frames) = media::e2e_fast(addrs, codec, &frames, b).await?;
        let live = media::live(addrs, codec, &frames, Duration::from_secs_f64(live_secs), false).await?;
        let rust = MediaResult {
            codec: codec_name(codec).into(),
            width: w,
            height: h,
            encoder_fps,
            e2e_fps,
            e2e_frames,
            live,
        };
        // Python publishes H.264 only (MediaPublish's libx264); same frames, via a raw file.
        let py: Option<MediaResult> = match python {
            Some(p) if codec == Codec::H264 => {
                let raw = std::env::temp_dir().join(format!("lpgw-bench-{}-{w}x{h}.yuv", std::process::id()));
                media::write_i420(&raw, &frames)?;
                let mut a = clip_args(
                    &["media"],
                    &addrs.channel_url(&format!("py3-{w}x{h}-{}", std::process::id())),
                    &raw,
                    w,
                    h,
                    clip_len,
                );
                a.extend([
                    "--max-frames".into(),
                    b.max_count.to_string(),
                    "--max-seconds".into(),
                    b.max_time.as_secs_f64().to_string(),
                    "--live-seconds".into(),
                    live_secs.to_string(),
                ]);
                let r =
                    p.run(&a, Duration::from_secs(180)).map_err(|e| eprintln!("python media: {e:#}")).ok();
                let _ = std::fs::remove_file(&raw);
                r
            }
            _ => None,
        };
        let label = format!("{} {w}x{h}", rust.codec);
        let overhead =
            |m: &MediaResult| format!("{:.0} %", 100.0 * (1.0 - m.e2e_fps / m.encoder_fps.max(1e-9)));
        fast_rows.push(vec![
            label.clone(),
            format!("{:.0}", rust.encoder_fps),
            format!("{:.0} ({} frames)", rust.e2e_fps, rust.e2e_frames),
            overhead(&rust),
            py.as_ref().map(|p| format!("{:.0}", p.encoder_fps)).unwrap_or("n/a".into()),
            py.as_ref()
                .map(|p| format!("{:.0} ({} frames)", p.e2e_fps, p.e2e_frames))
                .unwrap_or("n/a".into()),
            py.as_ref().map(overhead).unwrap_or("n/a".into()),
            ratio(Some(rust.e2e_fps), py.as_ref().map(|p| p.e2e_fps)),
        ]);
        let lv = |m: &MediaResult| {
            format!(
                "{:.2} core, {:.0} kB in {} seg, {}/{} dropped",
                m.live.cpu_core_share,
                m.live.bytes as f64 / 1e3,
                m.live.segments,
                m.live.frames_dropped,
                m.live.frames_in
            )
        };
        live_rows.push(vec![
            label.clone(),
            lv(&rust),
            py.as_ref().map(lv).unwrap_or("n/a".into()),
            ratio(Some(rust.live.cpu_core_share), py.as_ref().map(|p| p.live.cpu_core_share)),
        ]);
        // The largest H.264 case again with a 48 kHz stereo track (Opus on both sides).
        let widest = cases.iter().filter(|c| c.0 == Codec::H264).map(|c| c.1).max();
        if codec == Codec::H264 && Some(w) == widest {
            let secs = Duration::from_secs_f64(live_secs);
            let rust_av = media::live(addrs, codec, &frames, secs, true).await?;
            let py_av = match python {
                Some(p) => python_live_audio(p, addrs, &frames, w, h, live_secs)?,
                None => None,
            };
            let lva = |l: &media::LiveResult| {
                format!(
                    "{:.2} core, {:.0} kB in {} seg, video {}/{} dropped, audio {}/{} dropped",
                    l.cpu_core_share,
                    l.bytes as f64 / 1e3,
                    l.segments,
                    l.frames_dropped,
                    l.frames_in,
                    l.audio_dropped,
                    l.audio_frames_in
                )
            };
            live_rows.push(vec![
                format!("{label} + 48 kHz stereo Opus"),
                lva(&rust_av),
                py_av.as_ref().map(lva).unwrap_or("n/a".into()),
                ratio(Some(rust_av.cpu_core_share), py_av.as_ref().map(|p| p.cpu_core_share)),
            ]);
        }
    }
    Ok(format!(
        "## Scenario 3: encode and publish the test pattern\n\nAs fast as possible (frames/s):\n\n{}\nLive at 30 fps for {live_secs:.0} s:\n\n{}",
        table(
            &["codec", "Rust encoder only", "Rust end to end", "Rust pipeline overhead", "Python encoder only (libx264)", "Python end to end", "Python pipeline overhead", "Rust/Python e2e fps"],
            &fast_rows
        ),
        table(&["codec", "Rust", "Python", "Rust/Python CPU"], &live_rows)
    ))
}
