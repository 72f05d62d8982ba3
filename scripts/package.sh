#!/usr/bin/env bash
# What crates.io users get: every published package is packed, the packed files alone (nothing
# from outside each package's folder) are built as a workspace of their own, then the command is
# installed as `cargo install livepeer-gateway` would and run against its embedded local
# network.
set -euo pipefail
cd "$(dirname "$0")/.."
verify="${CARGO_TARGET_DIR:-$PWD/target}/package-verify"
# benches is `publish = false`; fuzz is a workspace of its own. --allow-dirty: the suite also
# runs on a checkout with work in progress. Packing checks the manifests and file lists; the
# build below is the verification (`cargo publish --dry-run` would build each package once per
# package that depends on it: most of this script's time on 2 cores).
rm -rf "$verify/package"
cargo package --workspace --exclude benches --no-verify --locked --allow-dirty --target-dir "$verify"
packed="$verify/unpacked"
rm -rf "$packed"
mkdir -p "$packed"
for crate in "$verify"/package/*.crate; do
    tar -xzf "$crate" -C "$packed"
done
# The packed manifests name each other by version, as on crates.io: patch those names to the
# unpacked copies so nothing comes from the repository.
{
    echo '[workspace]'
    echo 'resolver = "2"'
    echo 'members = ['
    for dir in "$packed"/*/; do echo "    \"$(basename "$dir")\","; done
    echo ']'
    echo
    echo '[patch.crates-io]'
    for dir in "$packed"/livepeer-gateway-*/; do
        name="$(basename "$dir")"
        # The libraries (livepeer-gateway-core-0.1.0 …), not the command (livepeer-gateway-0.1.0).
        [[ "$name" == livepeer-gateway-[0-9]* ]] && continue
        echo "${name%-*} = { path = \"$name\" }"
    done
} > "$packed/Cargo.toml"
# The repository's versions of every dependency (the lock loses only benches and fuzz).
cp Cargo.lock "$packed/"
# No debug info and no incremental state: nobody debugs these builds.
export CARGO_PROFILE_DEV_DEBUG=0 CARGO_INCREMENTAL=0
# The command with everything under it, then each library alone (its own features, as a crate
# depending only on it gets it; built, not checked, so the command's builds of the
# dependencies serve again).
(cd "$packed" && cargo build --quiet -p livepeer-gateway --target-dir "$verify")
for lib in "$packed"/livepeer-gateway-*/; do
    name="$(basename "$lib")"
    [[ "$name" == livepeer-gateway-[0-9]* ]] && continue
    (cd "$packed" && cargo build --quiet -p "${name%-*}" --target-dir "$verify")
done
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
unset CARGO_PROFILE_DEV_DEBUG CARGO_INCREMENTAL
# A debug build is enough to show it works (a release one takes minutes more on 2 cores), in
# the workspace's target directory (cargo install would otherwise build everything again in a
# temporary one).
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}" cargo install --debug --locked --quiet --path bins --root "$root"
# Run from an empty directory: the installed command must need no file of the repository.
(cd "$root" && timeout 120 ./bin/livepeer-gateway demo)
