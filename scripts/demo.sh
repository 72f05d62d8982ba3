#!/usr/bin/env bash
# The main job: a BYOC text-reversal job and a live video job against the embedded local network.
set -euo pipefail
cd "$(dirname "$0")/.."
LPGW_SKIP_PYTHON=1 bash scripts/setup.sh
exec cargo run --release --quiet -p livepeer-gateway --bin livepeer-gateway -- demo "$@"
