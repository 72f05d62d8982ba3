"""The Python side of the throughput runner (benches/src/bin/throughput.rs).

Drives the official Livepeer Python SDK (livepeer_gateway) against the runner's trickle
server, doing what the Rust side does in the same run, and prints one JSON line whose fields
match the Rust result structs:

  publish  scenario 1: back-to-back segments from one TricklePublisher
  streams  scenario 2: N live 1 Mbps streams, each read back by a TrickleSubscriber
  media    scenario 3: MediaPublish (PyAV libx264) fed test frames, fast and live at 30 fps

Every loop is bounded by count and time; only 127.0.0.1 URLs are expected.
"""

import argparse
import asyncio
import json
import logging
import resource
import struct
import sys
import time
from fractions import Fraction

import aiohttp
from livepeer_gateway.trickle_publisher import TricklePublisher
from livepeer_gateway.trickle_subscriber import TrickleSubscriber

WRITES_PER_SEGMENT = 8
WRITE_BYTES = 15_625  # 1 Mbit/s in 8 writes per 1 s segment
CHUNK = 64 * 1024


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def peak_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def quantile(sorted_values, q):
    if not sorted_values:
        return None
    rank = min(max(int(-(-q * len(sorted_values) // 1)), 1), len(sorted_values))
    return sorted_values[rank - 1]


async def publish(args) -> dict:
    payload = bytes(i % 251 for i in range(args.segment_bytes))
    chunks = [payload[o:o + CHUNK] for o in range(0, len(payload), CHUNK)]
    pub = TricklePublisher(args.url, "video/mp2t")
    started = time.monotonic()
    attempts = 0
    while attempts < args.max_segments and time.monotonic() - started < args.seconds:
        attempts += 1
        seg = await pub.next()
        for c in chunks:
            await seg.write(c)
        await seg.close()
    # close() only queues the end of the body: wait (bounded) until the POSTs are answered.
    deadline = time.monotonic() + 10
    while pub.get_stats().segments_completed + pub.get_stats().segments_failed < attempts and time.monotonic() < deadline:
        await asyncio.sleep(0.001)
    seconds = time.monotonic() - started
    stats = pub.get_stats()
    await asyncio.wait_for(pub.close(), 10)
    return {
        "segment_bytes": args.segment_bytes,
        "segments": stats.segments_completed,
        "failed": stats.segments_failed,
        "seconds": seconds,
    }


async def streams(args) -> dict:
    n = args.streams
    prefix = f"py2-{time.monotonic_ns()}"
    urls = [f"{args.base}{prefix}-{i}" for i in range(n)]
    # Channels exist before anyone subscribes (a GET on a missing channel is the end).
    async with aiohttp.ClientSession() as session:
        sem = asyncio.Semaphore(64)

        async def create(url):
            async with sem:
                async with session.post(url, headers={"Expect-Content": "video/mp2t"}) as r:
                    return r.status == 200

        created = sum(await asyncio.gather(*(create(u) for u in urls)))
    if created != n:
        raise RuntimeError(f"created only {created} of {n} channels")

    filler = bytes(i % 251 for i in range(WRITE_BYTES))[16:]
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.2
    t0_mono = time.monotonic_ns() + 200_000_000
    win_lo = t0_mono + int(args.warmup * 1e9)
    win_hi = win_lo + int(args.window * 1e9)
    end = t0 + args.warmup + args.window
    counters = {"sent": 0, "failed": 0, "last_start": 0.0}

    async def sleep_until(t):
        delay = t - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def publisher(i, url):
        stagger = i / n
        await sleep_until(t0 + stagger)
        counters["last_start"] = max(counters["last_start"], loop.time() - t0)
        pub = TricklePublisher(url, "video/mp2t")
        k = 0
        try:
            while True:
                seg_start = t0 + stagger + k
                if seg_start >= end:
                    break
                k += 1
                await sleep_until(seg_start)
                try:
                    seg = await pub.next()
                    for w in range(WRITES_PER_SEGMENT):
                        await sleep_until(seg_start + w / WRITES_PER_SEGMENT)
                        now = time.monotonic_ns()
                        await seg.write(struct.pack("<QQ", now, i) + filler)
                        if win_lo <= now < win_hi:
                            counters["sent"] += 1
                    await seg.close()
                except Exception:
                    counters["failed"] += 1
        finally:
            await asyncio.wait_for(pub.close(), 10)

    error_kinds = {}

    # Shared, so samples of subscribers still running at teardown are kept.
    latencies = []

    async def subscriber(url):
        sub = TrickleSubscriber(url, start_seq=0)
        try:
            while True:
                seg = await sub.next()
                if seg is None:
                    return False
                reader = seg.make_reader()
                offset = 0
                header = bytearray()
                while True:
                    data = await reader.read()
                    if not data:
                        break
                    now = time.monotonic_ns()
                    # Only the first 8 bytes of each write carry the send time.
                    pos = 0
                    while pos < len(data):
                        at = offset % WRITE_BYTES
                        if at < 8:
                            take = min(8 - at, len(data) - pos)
                            header += data[pos:pos + take]
                            if len(header) == 8:
                                sent = struct.unpack("<Q", header)[0]
                                if win_lo <= sent < win_hi:
                                    latencies.append((now - sent) / 1e6)
                                header = bytearray()
                        else:
                            take = min(WRITE_BYTES - at, len(data) - pos)
                        pos += take
                        offset += take
                await seg.close()
        except Exception as e:
            kind = f"{type(e).__name__}: {str(e)[:60]}"
            error_kinds[kind] = error_kinds.get(kind, 0) + 1
            return True
        finally:
            await sub.close()

    subs = [asyncio.ensure_future(subscriber(u)) for u in urls]
    pubs = [asyncio.ensure_future(publisher(i, u)) for i, u in enumerate(urls)]
    await sleep_until(t0 + args.warmup)
    cpu0 = cpu_seconds()
    await sleep_until(end)
    cpu1 = cpu_seconds()
    # Bounded teardown, as on the Rust side.
    done, pending = await asyncio.wait(pubs, timeout=20)
    for p in pending:
        p.cancel()
    done, pending = await asyncio.wait(subs, timeout=5)
    for p in pending:
        p.cancel()
    sub_errors = len(pending)
    if pending:
        error_kinds["still running at teardown"] = len(pending)
    for s in done:
        if s.cancelled() or s.exception() is not None:
            sub_errors += 1
        else:
            sub_errors += int(s.result())
    latencies.sort()
    cpu = cpu1 - cpu0
    return {
        "streams": n,
        "window_s": args.window,
        "cpu_s": cpu,
        "cpu_s_per_stream_minute": cpu / (n * args.window / 60.0),
        "peak_rss_mib": peak_rss_mib(),
        "p50_ms": quantile(latencies, 0.5),
        "p99_ms": quantile(latencies, 0.99),
        "chunks_sent": counters["sent"],
        "chunks_received": len(latencies),
        "segments_failed": counters["failed"],
        "subscriber_errors": sub_errors,
        "ramp_s": counters["last_start"],
        "subscriber_error_kinds": error_kinds,
    }


def load_frames(path, width, height, count):
    """Tightly packed I420 frames (as the Rust runner writes them) as PyAV frames."""
    import av

    cw, ch = (width + 1) // 2, (height + 1) // 2
    size = width * height + 2 * cw * ch
    with open(path, "rb") as f:
        raw = f.read()
    frames = []
    for i in range(min(count, len(raw) // size)):
        frame = av.VideoFrame(width, height, "yuv420p")
        offset = i * size
        for plane, (pw, ph) in zip(frame.planes, ((width, height), (cw, ch), (cw, ch))):
            rows = raw[offset:offset + pw * ph]
            offset += pw * ph
            if plane.line_size != pw:
                # Pad each row to the plane's stride.
                pad = bytes(plane.line_size - pw)
                rows = b"".join(rows[r * pw:(r + 1) * pw] + pad for r in range(ph))
            plane.update(rows)
        frames.append(frame)
    return frames


def nth(frames, n):
    f = frames[n % len(frames)]
    f.pts = n
    f.time_base = Fraction(1, 30)
    return f


def encoder_fps(frames, max_frames, max_seconds) -> float:
    """libx264 alone, with the options MediaPublish gives it."""
    import av

    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height = frames[0].width, frames[0].height
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = Fraction(1, 30)
    ctx.framerate = Fraction(30, 1)
    ctx.options = {"bf": "0", "preset": "superfast", "tune": "zerolatency", "forced-idr": "1"}
    started = time.monotonic()
    n = 0
    while n < max_frames and time.monotonic() - started < max_seconds:
        ctx.encode(nth(frames, n))
        n += 1
    return n / (time.monotonic() - started)


def media_publisher(url, audio=False):
    from livepeer_gateway.media_publish import (
        AudioOutputConfig,
        MediaPublish,
        MediaPublishConfig,
        VideoOutputConfig,
    )

    tracks = [VideoOutputConfig(fps=30)] + ([AudioOutputConfig()] if audio else [])
    return MediaPublish(url, config=MediaPublishConfig(tracks=tracks))


def tone_second():
    """One second of 48 kHz stereo float (440 / 660 Hz), packed: sliced into frames so the
    feeder's own cost stays out of the measurement as much as it can."""
    import math
    from array import array

    pcm = array("f")
    for n in range(48000):
        t = n / 48000.0
        pcm.append(0.4 * math.sin(2 * math.pi * 440.0 * t))
        pcm.append(0.4 * math.sin(2 * math.pi * 660.0 * t))
    return pcm.tobytes()


def audio_frame(second, start, samples):
    """`samples` stereo samples from sample `start` of the repeating tone, as a PyAV frame."""
    import av

    bytes_per = 8
    off = (start % 48000) * bytes_per
    chunk = second[off:off + samples * bytes_per]
    if len(chunk) < samples * bytes_per:
        chunk += second[: samples * bytes_per - len(chunk)]
    a = av.AudioFrame(format="flt", layout="stereo", samples=samples)
    a.planes[0].update(chunk)
    a.sample_rate, a.pts, a.time_base = 48000, start, Fraction(1, 48000)
    return a


def dropped(stats):
    t = stats.track_queue_stats[0] if stats.track_queue_stats else None
    if t is None:
        return 0
    return t.frames_dropped_overflow + t.frames_dropped_debt + t.frames_dropped_non_monotonic_pts


async def e2e_fast(url, frames, max_frames, max_seconds):
    mp = media_publisher(url)
    started = time.monotonic()
    n = 0
    while n < max_frames and time.monotonic() - started < max_seconds:
        # Keep the queue below its size of 8 so nothing is dropped (as the Rust feeder does).
        while True:
            s = mp.get_stats()
            depth = s.track_queue_stats[0].queue_depth if s.track_queue_stats else 0
            if depth < 7:
                break
            await asyncio.sleep(0.0005)
        await mp.write_frame(nth(frames, n))
        n += 1
    await asyncio.wait_for(mp.close(), 120)
    seconds = time.monotonic() - started
    encoded = n - dropped(mp.get_stats())
    return encoded / seconds, encoded


async def live(url, frames, seconds, audio=False):
    mp = media_publisher(url, audio)
    second = tone_second() if audio else b""
    audio_sent = 0
    total = round(seconds * 30)
    loop = asyncio.get_running_loop()
    cpu0 = cpu_seconds()
    start = loop.time()
    for n in range(total):
        delay = start + n / 30 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        # 20 ms of audio at a time, in step with the video (as the Rust feeder does).
        while audio and audio_sent * 30 < (n + 1) * 48000:
            await mp.write_frame(audio_frame(second, audio_sent, 960))
            audio_sent += 960
        await mp.write_frame(nth(frames, n))
    delay = start + total / 30 - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)
    fed = loop.time() - start
    await asyncio.wait_for(mp.close(), 120)
    wall = loop.time() - start
    stats = mp.get_stats()
    tracks = stats.track_queue_stats or []
    audio_track = tracks[1] if audio and len(tracks) > 1 else None
    return {
        "seconds": fed,
        "frames_in": tracks[0].frames_in if tracks else total,
        "frames_dropped": dropped(stats),
        "audio_frames_in": audio_track.frames_in if audio_track else 0,
        "audio_dropped": (audio_track.frames_dropped_overflow + audio_track.frames_dropped_non_monotonic_pts)
        if audio_track
        else 0,
        "bytes": stats.bytes_streamed_to_trickle,
        "segments": stats.publisher.segments_completed,
        "cpu_core_share": (cpu_seconds() - cpu0) / wall,
    }


async def media(args) -> dict:
    frames = load_frames(args.raw, args.width, args.height, args.clip_frames)
    if not frames:
        raise RuntimeError("no frames in " + args.raw)
    enc = encoder_fps(frames, args.max_frames, args.max_seconds)
    fps, encoded = await e2e_fast(args.url + "-fast", frames, args.max_frames, args.max_seconds)
    lv = await live(args.url + "-live", frames, args.live_seconds)
    return {
        "codec": "h264",
        "width": args.width,
        "height": args.height,
        "encoder_fps": enc,
        "e2e_fps": fps,
        "e2e_frames": encoded,
        "live": lv,
    }


async def live_only(args) -> dict:
    frames = load_frames(args.raw, args.width, args.height, args.clip_frames)
    if not frames:
        raise RuntimeError("no frames in " + args.raw)
    return await live(args.url + "-live", frames, args.live_seconds, args.audio)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("publish")
    a.add_argument("--url", required=True)
    a.add_argument("--segment-bytes", type=int, required=True)
    a.add_argument("--seconds", type=float, default=3.0)
    a.add_argument("--max-segments", type=int, default=5000)
    a = sub.add_parser("streams")
    a.add_argument("--base", required=True, help="http://host:port/ai/trickle/")
    a.add_argument("--streams", type=int, required=True)
    a.add_argument("--warmup", type=float, default=3.0)
    a.add_argument("--window", type=float, default=12.0)
    a = sub.add_parser("live", help="the live run of media only, optionally with audio")
    a.add_argument("--url", required=True)
    a.add_argument("--raw", required=True)
    a.add_argument("--width", type=int, required=True)
    a.add_argument("--height", type=int, required=True)
    a.add_argument("--clip-frames", type=int, default=30)
    a.add_argument("--live-seconds", type=float, default=10.0)
    a.add_argument("--audio", action="store_true")
    a = sub.add_parser("media")
    a.add_argument("--url", required=True)
    a.add_argument("--raw", required=True)
    a.add_argument("--width", type=int, required=True)
    a.add_argument("--height", type=int, required=True)
    a.add_argument("--clip-frames", type=int, default=30)
    a.add_argument("--max-frames", type=int, default=300)
    a.add_argument("--max-seconds", type=float, default=10.0)
    a.add_argument("--live-seconds", type=float, default=10.0)
    args = p.parse_args()
    for u in (getattr(args, "url", None), getattr(args, "base", None)):
        if u is not None and not u.startswith("http://127.0.0.1:"):
            print("only http://127.0.0.1 URLs are allowed", file=sys.stderr)
            return 2
    logging.basicConfig(level=logging.ERROR)
    run = {"publish": publish, "streams": streams, "media": media, "live": live_only}[args.cmd]
    result = asyncio.run(run(args))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
