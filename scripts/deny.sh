#!/usr/bin/env bash
# Supply-chain checks with cargo-deny against deny.toml: licences, bans and sources, then
# security advisories. CI reaches only package registries, not GitHub, so where no RustSec
# database has been fetched (`cargo deny fetch`) the advisories are checked against the
# snapshot committed in scripts/advisory-db/ (see its README for its date and how to refresh).
set -euo pipefail
cd "$(dirname "$0")/.."
SNAPSHOT=scripts/advisory-db/advisory-db-bf5c0d245.tar.xz
SNAPSHOT_DATE=2026-08-21T08:28:40+02:00

command -v cargo-deny >/dev/null 2>&1 || cargo install --locked cargo-deny
# `--offline` below reads every crate of every target platform (windows-sys and the like) from
# the registry cache; a fresh machine has only fetched what its own builds needed.
cargo fetch --locked --quiet
cargo deny --offline check --hide-inclusion-graph licenses bans sources

if compgen -G "${CARGO_HOME:-$HOME/.cargo}/advisory-dbs/advisory-db-*" >/dev/null; then
    echo "deny.sh: advisories against the RustSec database fetched on this machine"
    cargo deny --offline check --hide-inclusion-graph advisories
    exit 0
fi

# Unpack the snapshot as a git repository (cargo-deny reads HEAD's date to judge staleness).
dbs="${CARGO_TARGET_DIR:-target}/advisory-db-snapshot"
db="$dbs/advisory-db-3157b0e258782691" # cargo-deny's directory name for the default URL
if [ ! -d "$db/.git" ] || [ "$SNAPSHOT" -nt "$db/.git" ]; then
    rm -rf "$dbs"
    mkdir -p "$db"
    tar xJf "$SNAPSHOT" -C "$db"
    (
        cd "$db"
        git init -q
        git add -A
        GIT_AUTHOR_DATE="$SNAPSHOT_DATE" GIT_COMMITTER_DATE="$SNAPSHOT_DATE" \
            git -c user.name=snapshot -c user.email=snapshot@localhost -c commit.gpgsign=false \
            commit -q -m "RustSec advisory-db snapshot ($(basename "$SNAPSHOT"))"
    )
fi
config="$dbs/deny.toml"
sed "s|^\[advisories\]$|[advisories]\ndb-path = \"$(cd "$dbs" && pwd)\"|" deny.toml >"$config"
echo "deny.sh: advisories against the committed snapshot of $SNAPSHOT_DATE (no fetched database here)"
cargo deny --offline --config "$config" check --hide-inclusion-graph advisories
