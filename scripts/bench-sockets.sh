#!/usr/bin/env bash
# Device sockets under load (crates/lty-server/benches/sockets.rs): builds
# the release binary, runs it in production mode (PostgreSQL + Redis on
# this machine) and opens SOCKETS_N device sockets from loopback source
# addresses. Every SOCKETS_* setting of the bench passes through, e.g.
#   SOCKETS_N=10000 scripts/bench-sockets.sh
#   SOCKETS_N=19000 SOCKETS_PUSH_RATE=1000 scripts/bench-sockets.sh
#   BENCH_MODE=embedded scripts/bench-sockets.sh
# Each socket is a file descriptor in the server and in the bench: the
# open-files limit (raised here to the hard limit) bounds SOCKETS_N.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lty-target}"
if [ "${BENCH_MODE:-production}" = production ]; then
  export SOCKETS_DATABASE_URL="${SOCKETS_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
  export SOCKETS_REDIS_URL="${SOCKETS_REDIS_URL:-redis://127.0.0.1:6379}"
fi
ulimit -n "$(ulimit -Hn)"
echo "open files limit: $(ulimit -n); commit $(git rev-parse --short HEAD); $(date -u +%FT%TZ)"
exec cargo bench -p lty-server --bench sockets
