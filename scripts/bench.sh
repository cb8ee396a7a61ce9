#!/usr/bin/env bash
# Builds lty in release mode, runs it in production mode (PostgreSQL +
# Redis on this machine) and measures it with shared/bench/run.py, the
# harness the legacy numbers in shared/bench/BASELINE.md come from.
#
# Usage: scripts/bench.sh [extra run.py options...]
#   BENCH_USERS=5000 (default)   BENCH_PORT=18080 (default)
#   BENCH_MODE=production|embedded (default production)
#   BENCH_BIN=path/to/lty  measure that binary instead of building HEAD
#   BENCH_LABEL=name       names the results (default: HEAD's short commit)
# Writes bench-results/lty-<label>-<mode>.json (git-ignored).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lty-target}"
harness="$root/../shared/bench/run.py"
users="${BENCH_USERS:-5000}"
port="${BENCH_PORT:-18080}"
mode="${BENCH_MODE:-production}"
commit="${BENCH_LABEL:-$(git rev-parse --short HEAD)}"
out="bench-results/lty-${commit}-${mode}.json"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
venv="$HOME/.cache/lty-bench-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'websockets>=14' uvloop
fi

if [ -n "${BENCH_BIN:-}" ]; then
  bin="$(realpath "$BENCH_BIN")"
else
  cargo build --release -p lty-server
  bin="$CARGO_TARGET_DIR/release/lty"
fi
mkdir -p bench-results
workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT

# The harness drives thousands of requests a second from loopback: per-IP
# limits would refuse it within the first tenth of a second.
export LTY_DATA_DIR="$workdir/data" LTY_LOG__LEVEL=warn LTY_LOG__FORMAT=json LTY_LIMITS__EXEMPT_LOOPBACK=true
if [ "$mode" = production ]; then
  db="lty_bench"
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" postgres
  psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $db" postgres
  redis-cli -h 127.0.0.1 -p 6379 --scan --pattern 'token:*' | xargs -r -n 1000 redis-cli -h 127.0.0.1 -p 6379 DEL >/dev/null
  export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" REDIS_LOCATION="redis://127.0.0.1:6379/0"
fi
export VOLCENGINE_APP_ID="${VOLCENGINE_APP_ID:-0123456789abcdef01234567}"
export VOLCENGINE_APP_KEY="${VOLCENGINE_APP_KEY:-bench-app-key}"

ulimit -n "$(ulimit -Hn)"
"$bin" migrate >/dev/null
"$bin" serve --bind "127.0.0.1:$port" > "$workdir/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done

"$venv/bin/python" "$harness" \
  --base "http://127.0.0.1:$port" --ws "ws://127.0.0.1:$port" \
  --users "$users" --seed-cmd "$bin seed --users {users}" \
  --pid "$pid" --label "lty $commit ($mode)" --out "$out" "$@" > /dev/null || status=$?
kill -TERM "$pid"; wait "$pid" || true
echo "results: $out"
python3 - "$out" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["summary"]
print(json.dumps(s, indent=1))
PY
exit "${status:-0}"
