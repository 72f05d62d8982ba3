#!/usr/bin/env bash
# The whole test suite: prerequisites, then every crate's unit, integration and doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo nextest run --workspace --no-fail-fast "$@"
cargo test --workspace --doc --quiet
# Licences, banned sources and (where the database is present) advisories: deny.toml.
bash scripts/deny.sh
