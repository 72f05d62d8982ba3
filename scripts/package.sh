#!/usr/bin/env bash
# What crates.io users get: every published package is packed and built from its packed files
# alone (nothing from outside its folder), then the command is installed as
# `cargo install livepeer-gateway` would and run against its embedded local network.
set -euo pipefail
cd "$(dirname "$0")/.."
# benches is `publish = false`; fuzz is a workspace of its own. --allow-dirty: the suite also
# runs on a checkout with work in progress.
# cargo unpacks the packed crates into its registry cache (a source named "-<hash>") and reuses
# an unpacked copy of the same version, so a crate changed since the last run would be verified
# against its stale copy: take those copies away first (only ours, only that source's).
for stale in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/livepeer-gateway-*; do
    [ -e "$stale" ] && rm -rf "$stale"
done
# Cargo takes registry crates as immutable, so a build of the same version is reused too: the
# dry run builds in a directory of its own (its dependencies are built apart from the
# workspace's anyway, without its profile settings) and our crates' builds there go first.
verify="${CARGO_TARGET_DIR:-$PWD/target}/package-verify"
rm -rf "$verify"/debug/.fingerprint/livepeer-gateway-* "$verify"/debug/deps/*livepeer_gateway_*
# No debug info and no incremental state there: nobody debugs these builds, and on 2 cores
# they are most of this script's time.
CARGO_PROFILE_DEV_DEBUG=0 CARGO_INCREMENTAL=0 \
    cargo publish --workspace --exclude benches --dry-run --locked --allow-dirty --target-dir "$verify"
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
# A debug build is enough to show it works (a release one takes minutes more on 2 cores), in
# the workspace's target directory (cargo install would otherwise build everything again in a
# temporary one).
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}" cargo install --debug --locked --quiet --path bins --root "$root"
# Run from an empty directory: the installed command must need no file of the repository.
(cd "$root" && timeout 120 ./bin/livepeer-gateway demo)
