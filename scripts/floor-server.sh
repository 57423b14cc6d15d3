#!/usr/bin/env bash
# floor-server.sh OUT: builds, into OUT, the server of figure (i)'s floor
# (docs/BENCHMARKS.md): this checkout's HEAD with
# bench/testdata/create-floor.patch applied, whose Redis-mode create writes
# the record alone in one HSET (no lease, channel slot, listing or events).
# A measuring instrument only: the sessions it makes are not whole.
set -euo pipefail
out=${1:?usage: scripts/floor-server.sh OUT}
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
root=$(git rev-parse --show-toplevel)
tree=$(mktemp -d)
cleanup() { git -C "$root" worktree remove --force "$tree" 2>/dev/null || rm -rf "$tree"; }
trap cleanup EXIT
git -C "$root" worktree add --quiet --detach "$tree" HEAD
git -C "$tree" apply "$root/bench/testdata/create-floor.patch"
(cd "$tree" && go build -o "$out" ./cmd/server)
echo "floor-server: $out (HEAD $(git -C "$root" rev-parse --short HEAD) with create-floor.patch)" >&2
