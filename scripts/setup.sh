#!/usr/bin/env bash
# Installs what builds and tests need on a fresh Debian machine, and nothing twice:
#   - nasm: assembly for rav1e (its `asm` feature fails without it) and openh264 (3x faster)
#   - ffmpeg: ffprobe/ffmpeg decode what gateway-media produces in tests
#   - xz-utils: unpacks the committed RustSec advisory snapshot (scripts/deny.sh)
#   - a Python venv with the official Livepeer Python SDK, used as a real peer in tests
# Safe to run repeatedly. Set LPGW_SKIP_PYTHON=1 to skip the venv.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v nasm >/dev/null 2>&1 || need_apt+=(nasm)
command -v ffprobe >/dev/null 2>&1 || need_apt+=(ffmpeg)
command -v xz >/dev/null 2>&1 || need_apt+=(xz-utils)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ "${LPGW_SKIP_PYTHON:-0}" != "1" ]; then
  venv=".venv"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import livepeer_gateway, av" 2>/dev/null; then
    echo "setup: creating $venv with livepeer-gateway==1.0.0" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check --ignore-requires-python \
      --only-binary av "av<16" livepeer-gateway==1.0.0
  fi
fi
