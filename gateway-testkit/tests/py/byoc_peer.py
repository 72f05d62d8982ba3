"""Submits a BYOC request to the local network with the official Python SDK (livepeer-gateway
1.0.0), `submit_byoc_job`, exactly as an application would.

Usage: byoc_peer.py ORCH_URL TEXT [SIGNER_URL]
Without SIGNER_URL the SDK runs offchain: no signature, no payment. With it, the SDK signs the
job through /sign-byoc-job, asks the orchestrator for its info over gRPC on port 8935 of the
orchestrator's host (TLS), mints a payment through /generate-live-payment and sends it along.

Prints one JSON object: the SDK's result (status, data, Livepeer-Balance) or its error, and every
HTTP request the SDK made (method, URL, headers, body; the `Livepeer` header decoded), so the
test can hold what the SDK sends against what go accepts.
"""
import base64
import json
import logging
import sys

import livepeer_gateway.byoc as byoc
from livepeer_gateway.byoc import ByocJobRequest, submit_byoc_job

SENT = []
_urlopen = byoc.urlopen


def recording_urlopen(req, *args, **kwargs):
    """Records what the SDK sends, then sends it."""
    headers = dict(req.header_items())
    entry = {
        "method": req.get_method(),
        "url": req.full_url,
        "headers": headers,
        "body": (req.data or b"").decode("utf-8", errors="replace"),
    }
    job = headers.get("Livepeer")
    if job:
        entry["job"] = json.loads(base64.b64decode(job))
    SENT.append(entry)
    return _urlopen(req, *args, **kwargs)


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    orch_url, text = sys.argv[1], sys.argv[2]
    signer_url = sys.argv[3] if len(sys.argv) > 3 else None
    byoc.urlopen = recording_urlopen
    try:
        result = submit_byoc_job(
            ByocJobRequest(capability="text-reversal", payload={"text": text}, timeout_seconds=30),
            orch_url=orch_url,
            signer_url=signer_url,
        )
    except Exception as e:  # the SDK's own error, reported for the test to read
        print(json.dumps({"error": f"{type(e).__name__}: {e}", "sent": SENT}))
        return
    print(
        json.dumps(
            {
                "status": result.status_code,
                "data": result.data if isinstance(result.data, (dict, list, str)) else repr(result.data),
                "balance": result.balance,
                "orchestrator_url": result.orchestrator_url,
                "sent": SENT,
            }
        )
    )


if __name__ == "__main__":
    main()
