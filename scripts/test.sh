#!/usr/bin/env bash
# The whole test suite: prerequisites, every crate's unit, integration and doc tests (the 60 s
# soak among them), the library examples, the packages as crates.io would get them, the
# supply-chain policy, then a short run of every fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo nextest run --workspace --no-fail-fast "$@"
cargo test --workspace --doc --quiet
# Docs build without a warning (broken links, missing docs).
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet --workspace --exclude benches
bash scripts/examples.sh
bash scripts/package.sh
# Licences, banned sources and advisories (fetched database or committed snapshot): deny.toml.
bash scripts/deny.sh
# Every fuzz target for 15 s over its committed corpus (stable toolchain, AddressSanitizer).
bash scripts/fuzz.sh 15
