"""The official Python SDK's live-runner registration and discovery against the local network:
register_runner (bootstrap and heartbeats), discover_orchestrator_runners with app and GPU
filters, then, once stdin says so, close (unregister). One JSON line after discovery, one after
closing.

usage: runner_peer.py ORCH_URL SECRET RUNNER_URL
"""
import asyncio
import json
import sys

from livepeer_gateway import discovery, live_runner


async def main() -> None:
    orch, secret, runner_url = sys.argv[1], sys.argv[2], sys.argv[3]
    gpu = live_runner.LiveRunnerGPU(id="GPU-0", name="NVIDIA L40S", vram_mb=46068)
    reg = await live_runner.register_runner(
        orch, secret=secret, runner_url=runner_url, app="py-echo", price=3.6, unit="hour",
        capacity=2, gpu=gpu, auto_detect_gpu=False, version="1.2.3", heartbeat_interval_s=0.2,
    )
    await asyncio.sleep(0.7)  # a few heartbeats
    found = await discovery.discover_orchestrator_runners([orch], app="py-echo", gpu="NVIDIA L40S")
    other_gpu = await discovery.discover_orchestrator_runners([orch], app="py-echo", gpu="H100")
    print(json.dumps({
        "runner_id": reg.runner_id,
        "o2r": reg.o2r_channel["url"] if reg.o2r_channel else None,
        "found": found,
        "other_gpu": other_gpu,
    }), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await reg.close()
    after = await discovery.discover_orchestrator_runners([orch], app="py-echo")
    print(json.dumps({"after_close": after}), flush=True)


asyncio.run(main())
