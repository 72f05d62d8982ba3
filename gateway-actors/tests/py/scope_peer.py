"""The official Python SDK's start_scope against the local network: it discovers a
live-video-to-video/scope runner through the orchestrator (a serverless worker's /scope, or a
persistent runner app reserved in a session), pays with the signer when asked, and reads the
job's first status event and, with --control, a control round trip. One JSON line.

usage: scope_peer.py ORCH_URL [SIGNER_URL] [--control]
"""
import asyncio
import json
import sys

from livepeer_gateway.lv2v import StartJobRequest
from livepeer_gateway.scope import start_scope


async def first(events, kind, start_seq=0):
    async for event in events(start_seq=start_seq):
        if event.get("type") == kind:
            return event
    return None


async def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--control"]
    orch = args[0]
    signer = args[1] if len(args) > 1 else None
    job = await start_scope([orch], StartJobRequest(params={"prompt": "a cat"}), signer_url=signer)
    status = await asyncio.wait_for(first(job.events, "status"), 10)
    out = {
        "manifest_id": job.manifest_id,
        "control_url": job.control_url,
        "events_url": job.events_url,
        "status": status,
        "paid": job._payment_session is not None,
    }
    if "--control" in sys.argv and job.control is not None:
        # Listen from the next event on, then update the parameters.
        waiter = asyncio.create_task(first(job.events, "params_updated", start_seq=-1))
        await asyncio.sleep(0.5)
        await job.control.write({"prompt": "a dog"})
        out["updated"] = await asyncio.wait_for(waiter, 10)
    await job.close()
    print(json.dumps(out), flush=True)


asyncio.run(main())
