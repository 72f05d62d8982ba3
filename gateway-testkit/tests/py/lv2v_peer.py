"""Drives the local network with the official Python SDK (livepeer-gateway 1.0.0).

Usage: lv2v_peer.py ORCH_URL SIGNER_URL
Prints one JSON object: what get_orch_info returned, the LV2V job start, and the sha256 of a
segment published to the job's input and read back from its output (the passthrough worker).
"""
import asyncio
import hashlib
import json
import os
import sys

from livepeer_gateway.lv2v import StartJobRequest, start_lv2v
from livepeer_gateway.orch_info import get_orch_info
from livepeer_gateway.trickle_publisher import TricklePublisher
from livepeer_gateway.trickle_subscriber import TrickleSubscriber


async def roundtrip(publish_url: str, subscribe_url: str, payload: bytes) -> str:
    sub = TrickleSubscriber(subscribe_url, start_seq=-1)
    pub = TricklePublisher(publish_url, "video/mp2t")
    reader_task = asyncio.create_task(sub.next())
    await asyncio.sleep(0.2)
    seg = await pub.next()
    for i in range(0, len(payload), 4096):
        await seg.write(payload[i : i + 4096])
    await seg.close()
    reader = await asyncio.wait_for(reader_task, 10)
    cursor = reader.make_reader()
    out = bytearray()
    while True:
        chunk = await cursor.read()
        if not chunk:
            break
        out.extend(chunk)
    await reader.close()
    await sub.close()
    await pub.close()
    return hashlib.sha256(bytes(out)).hexdigest()


def main() -> None:
    orch_url, signer_url = sys.argv[1], sys.argv[2]
    info = get_orch_info(orch_url, signer_url=signer_url)
    result = {
        "transcoder": info.transcoder,
        "has_price": info.HasField("price_info"),
        "has_ticket_params": info.HasField("ticket_params"),
        "auth_session": info.auth_token.session_id,
        "caps": sorted(info.capabilities.constraints.PerCapability.keys()),
    }
    job = start_lv2v([orch_url], StartJobRequest(model_id="noop"), signer_url=signer_url, start_payments=False)
    result["manifest_id"] = job.manifest_id
    result["publish_url"] = job.publish_url
    payload = os.urandom(50_000)
    result["sent_sha256"] = hashlib.sha256(payload).hexdigest()
    result["received_sha256"] = asyncio.run(roundtrip(job.publish_url, job.subscribe_url, payload))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
