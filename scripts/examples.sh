#!/usr/bin/env bash
# Runs every library example as a user would, with no arguments: each starts the in-process
# local network, does its job and exits 0. A hung example fails after 120 s.
set -euo pipefail
cd "$(dirname "$0")/.."
# --workspace: the same feature set as the test build, so only the examples are linked.
cargo build --workspace --examples --locked --quiet
examples="$(realpath "${CARGO_TARGET_DIR:-target}")/debug/examples"
# What the examples leave in the temporary directory (segments, a Y4M file) goes with it.
TMPDIR="$(mktemp -d)"
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT
for example in gateway_token encode_segments axum_service byoc_text lv2v_file tokio_service \
    local_network_test; do
    echo "example $example"
    timeout 120 "$examples/$example"
done
