"""The official Livepeer Python SDK as a trickle peer, for gateway-testkit's peer tests.

Run by tests/trickle_python_peer.rs against the Rust trickle server. One line per event on
stdout:
  SEG <seq> <len> <sha256>                      the subscriber read a whole segment
  PUBLISHED <count>                             the publisher wrote every segment
  PUBSTATS <completed> <failed> <empty>         publisher stats after close
  EOS                                           the subscriber saw the end of the stream

Modes:
  pubsub <channel_url> <dir> <count>
      Publish <dir>/<i>.bin (i < count) with TricklePublisher (start_seq -1: /next, then
      Lp-Trickle-Reset) in several chunks each, while a TrickleSubscriber (start_seq 0) reads
      them back. After PUBLISHED, wait for a line on stdin, close the publisher (DELETE of the
      channel) and check the subscriber then sees the end of the stream.
  subscribe <channel_url> <start_seq> <count>
      Read <count> segments, then expect the end of the stream.
"""

import asyncio
import hashlib
import os
import sys

from livepeer_gateway.trickle_publisher import TricklePublisher
from livepeer_gateway.trickle_subscriber import TrickleSubscriber


def emit(*parts):
    print(*parts, flush=True)


async def read_segment(segment):
    """Reads a whole segment through SegmentReader's cursor API."""
    reader = segment.make_reader()
    data = bytearray()
    while True:
        chunk = await reader.read()
        if chunk is None:
            break
        data.extend(chunk)
    await segment.close()
    return bytes(data)


async def subscribe_n(sub, count, delivered=None):
    for _ in range(count):
        segment = await sub.next()
        if segment is None:
            raise SystemExit("subscriber ended early")
        seq = segment.seq()
        data = await read_segment(segment)
        emit("SEG", seq, len(data), hashlib.sha256(data).hexdigest())
        if delivered is not None:
            delivered.release()


async def expect_eos(sub):
    segment = await sub.next()
    if segment is not None:
        raise SystemExit(f"expected end of stream, got segment {segment.seq()}")
    emit("EOS")


def chunks_of(data, index):
    """Several chunks of varying size (at least one)."""
    if len(data) <= 1:
        return [data]
    size = max(1, len(data) // (3 + index))
    return [data[i : i + size] for i in range(0, len(data), size)]


async def pubsub(url, directory, count):
    sub = TrickleSubscriber(url, start_seq=0)
    # The publisher stays at most one segment ahead of this subscriber, so the five-slot ring
    # never evicts a segment before it was read.
    delivered = asyncio.Semaphore(0)
    sub_task = asyncio.create_task(subscribe_n(sub, count, delivered))
    pub = TricklePublisher(url, "video/mp2t")
    for i in range(count):
        if i > 0:
            await delivered.acquire()
        with open(os.path.join(directory, f"{i}.bin"), "rb") as f:
            data = f.read()
        async with await pub.next() as segment:
            for chunk in chunks_of(data, i):
                await segment.write(chunk)
    await sub_task
    emit("PUBLISHED", count)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await pub.close()
    stats = pub.get_stats()
    emit("PUBSTATS", stats.segments_completed, stats.segments_failed, stats.empty_segments_completed)
    await expect_eos(sub)
    await sub.close()


async def subscribe(url, start_seq, count):
    sub = TrickleSubscriber(url, start_seq=start_seq)
    await subscribe_n(sub, count)
    await expect_eos(sub)
    await sub.close()


def main():
    mode = sys.argv[1]
    if mode == "pubsub":
        asyncio.run(pubsub(sys.argv[2], sys.argv[3], int(sys.argv[4])))
    elif mode == "subscribe":
        asyncio.run(subscribe(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
