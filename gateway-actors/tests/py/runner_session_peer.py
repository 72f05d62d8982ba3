"""The official Python SDK reserving a paid live-runner session on the local network: an SDK
runner registers and records the O2R reserved/released events it hears; the SDK gateway side
(reserve_session with a signer) answers the 402 challenge through the signer, pays, funds the
session for a while, and stops it. One JSON line.

usage: runner_session_peer.py ORCH_URL SECRET SIGNER_URL
"""
import asyncio
import json
import sys

from livepeer_gateway import live_runner, selection


async def main() -> None:
    orch, secret, signer = sys.argv[1], sys.argv[2], sys.argv[3]
    events = []
    reg = await live_runner.register_runner(
        orch, secret=secret, runner_url="http://127.0.0.1:9/app", app="py-session", price=0.036,
        unit="hour", capacity=1, auto_detect_gpu=False, heartbeat_interval_s=0.2,
        on_session_reserve=lambda e: events.append([e.event, e.session_id, bool(e.timestamp)]),
        on_session_release=lambda e: events.append([e.event, e.session_id, bool(e.timestamp)]),
    )
    session = await selection.reserve_session(signer_url=signer, orchestrators=[orch], app="py-session")
    await asyncio.sleep(float(sys.argv[4]) if len(sys.argv) > 4 else 4.0)  # recurring payments
    released_before_stop = session.released
    await live_runner.stop_runner_session(session)
    await asyncio.sleep(0.8)  # the released event arrives
    await reg.close()
    print(json.dumps({
        "runner_id": reg.runner_id,
        "session_id": session.session_id,
        "app_url": session.app_url,
        "control_url": session.control_url,
        "released_before_stop": released_before_stop,
        "events": events,
    }), flush=True)


asyncio.run(main())
