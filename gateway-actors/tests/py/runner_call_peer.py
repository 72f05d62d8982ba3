"""The official Python SDK calling single-shot live runners on the local network: it registers
a metered runner and a fixed-price runner in front of APP_URL (the testkit's echo app), then,
through its own discovery, calls each with a signer: once whole (runner_selector's call) and
once streaming server-sent events (call_runner(stream=True)) long enough for a recurring
payment. One JSON line.

usage: runner_call_peer.py ORCH_URL SECRET SIGNER_URL APP_URL
"""
import asyncio
import json
import sys

from livepeer_gateway import live_runner, selection


async def main() -> None:
    orch, secret, signer, app_url = sys.argv[1:5]
    metered = await live_runner.register_runner(
        orch, secret=secret, runner_url=app_url, app="py-call", price=0.036, unit="hour",
        mode="single-shot", capacity=1, auto_detect_gpu=False, heartbeat_interval_s=0.2,
    )
    fixed = await live_runner.register_runner(
        orch, secret=secret, runner_url=app_url, app="py-fixed", price=0.0001, unit="fixed",
        mode="single-shot", capacity=1, auto_detect_gpu=False, heartbeat_interval_s=0.2,
    )
    out = {}
    cursor = await selection.runner_selector(
        orchestrators=[orch], signer_url=signer, app="py-call", body={"prompt": "hi"},
    )
    whole = await cursor.next()
    out["whole"] = {
        "data": whole.data,
        "session_id": whole.session_id,
        "paid": whole.payment_session is not None,
    }
    runner = whole.runner
    stream = await live_runner.call_runner(
        runner_url=runner.url + "/events?count=4&interval_ms=1200", runner=runner,
        signer_url=signer, method="GET", stream=True,
    )
    async with stream:
        lines = [line async for line in stream.aiter_lines()]
        out["stream"] = {
            "status": stream.status,
            "content_type": stream.content_type,
            "data": [json.loads(l[len("data: "):]) for l in lines if l.startswith("data: ")],
            "released": stream.released,
        }
    fixed_cursor = await selection.runner_selector(
        orchestrators=[orch], signer_url=signer, app="py-fixed", body={"n": 1},
    )
    fixed_result = await fixed_cursor.next()
    out["fixed"] = {
        "data": fixed_result.data,
        "session_id": fixed_result.session_id,
        "paid": fixed_result.payment_session is not None,
    }
    out["runner_ids"] = [metered.runner_id, fixed.runner_id]
    await metered.close()
    await fixed.close()
    print(json.dumps(out), flush=True)


asyncio.run(main())
