#!/usr/bin/env bash
# lty and the legacy Django peer (shared/bench/legacy-peer/) measured one
# after the other by shared/bench/run.py with the same options, on this
# machine, then compared by legacy-peer/ratios.py: ratios that do not
# depend on the machine. lty runs as scripts/bench.sh runs it (release
# build, production mode); the peer is the `pool` variant (the legacy
# stack at its best).
#
# Usage: scripts/bench-legacy.sh [run.py options...]
#   default options: --skip websocket,fanout (the HTTP hot paths)
#   BENCH_BIN=path/to/lty  measure that binary instead of building HEAD
# Writes bench-results/side-<date>/{lty,peer}.json and ratios.md.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bench="$root/../shared/bench"
peer="$bench/legacy-peer/legacy-peer.sh"
venv="$HOME/.cache/lty-bench-venv"
out="bench-results/side-$(date -u +%F-%H%M)"
mkdir -p "$out"
[ $# -gt 0 ] || set -- --skip websocket,fanout

BENCH_LABEL="$(git rev-parse --short HEAD)-side" scripts/bench.sh "$@"
cp "bench-results/lty-$(git rev-parse --short HEAD)-side-production.json" "$out/lty.json"

ulimit -n "$(ulimit -Hn)"
peer_pid="$("$peer" start --variant pool --port 8001)"
trap '"$peer" stop' EXIT
"$venv/bin/python" "$bench/run.py" --base http://127.0.0.1:8001 --ws ws://127.0.0.1:8001 \
  --users "${BENCH_USERS:-5000}" --seed-cmd "$("$peer" seed-cmd)" --pid "$peer_pid" \
  --label "legacy peer (pool)" --out "$out/peer.json" "$@" >/dev/null
"$venv/bin/python" "$bench/legacy-peer/ratios.py" "$out/lty.json" "$out/peer.json" | tee "$out/ratios.md"
