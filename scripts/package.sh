#!/usr/bin/env bash
# What crates.io users get: every published package is packed and built from its packed files
# alone (nothing from outside its folder), then the command is installed as
# `cargo install livepeer-gateway` would and run against its embedded local network.
set -euo pipefail
cd "$(dirname "$0")/.."
# benches is `publish = false`; fuzz is a workspace of its own. --allow-dirty: the suite also
# runs on a checkout with work in progress.
cargo publish --workspace --exclude benches --dry-run --locked --allow-dirty
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
# A debug build is enough to show it works (a release one takes minutes more on 2 cores), in
# the workspace's target directory (cargo install would otherwise build everything again in a
# temporary one).
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}" cargo install --debug --locked --quiet --path bins --root "$root"
# Run from an empty directory: the installed command must need no file of the repository.
(cd "$root" && timeout 120 ./bin/livepeer-gateway demo)
