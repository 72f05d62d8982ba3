#!/usr/bin/env bash
# Supply-chain checks with cargo-deny against deny.toml: licences, bans and sources always;
# security advisories when a copy of the RustSec database is on this machine (CI reaches only
# package registries, not GitHub, so it cannot fetch one; `cargo deny fetch` does where it can).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deny >/dev/null 2>&1 || cargo install --locked cargo-deny
cargo deny --offline check --hide-inclusion-graph licenses bans sources
if compgen -G "${CARGO_HOME:-$HOME/.cargo}/advisory-dbs/advisory-db-*" >/dev/null; then
    cargo deny --offline check --hide-inclusion-graph advisories
else
    echo "deny.sh: no RustSec advisory database here; advisories not checked (run 'cargo deny fetch')"
fi
