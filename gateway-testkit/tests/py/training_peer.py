"""The official Python SDK's BYOC training calls against the local network's orchestrator:
submit_training_job, get_training_status while it runs, wait_for_training to the end, and
refresh_training_payment's refusal once it is over. Prints one JSON line with what it saw.

usage: training_peer.py ORCH_URL CAPABILITY
"""
import json
import sys

from livepeer_gateway import byoc
from livepeer_gateway.errors import LivepeerGatewayError

orch, capability = sys.argv[1], sys.argv[2]
req = byoc.ByocTrainingRequest(capability=capability, model_id="flux-dev", params={"steps": 10})
submitted = byoc.submit_training_job(req, orch_url=orch, timeout=10)
running = byoc.get_training_status(submitted.job_id, submitted.orchestrator_url)
final = byoc.wait_for_training(submitted.job_id, submitted.orchestrator_url, poll_interval=0.1, timeout=30)
out = {
    "job_id": submitted.job_id,
    "submit_status": submitted.status,
    "status_url": submitted.status_url,
    "running": {"status": running.status, "progress": running.progress, "model_id": running.model_id},
    "final": {
        "status": final.status,
        "progress": final.progress,
        "done": final.is_done,
        "lora_url": final.lora_url,
        "config_url": final.config_url,
        "created_at": final.created_at,
    },
}
try:
    byoc.get_training_status("00000000", submitted.orchestrator_url)
    out["unknown"] = "found"
except LivepeerGatewayError as e:
    out["unknown"] = str(e)
print(json.dumps(out))
