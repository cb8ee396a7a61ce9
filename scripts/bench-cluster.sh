#!/usr/bin/env bash
# Several release `lty serve` instances in production mode (PostgreSQL +
# Redis on this machine, one database and one Redis key prefix shared by
# all) behind HAProxy (Debian's `haproxy`; the configuration is generated
# in a temporary directory). Three measurements:
#
#   scripts/bench-cluster.sh rolling     resuming device sockets and pushes
#       through the balancer (crates/lty-server/benches/cluster.rs) while the
#       instances are restarted one after another: SIGTERM, wait for the
#       exit, start again, wait for /readyz. Exits non-zero when an
#       acknowledged push was lost or delivered twice, or a request failed.
#   scripts/bench-cluster.sh steady      the same load, no restarts (push
#       group sizes: CLUSTER_GROUP sockets per family).
#   scripts/bench-cluster.sh hot-paths [run.py options...]
#       shared/bench/run.py's HTTP hot paths against the balancer; the
#       instances run under one parent process, so run.py's server CPU is
#       the sum of all instances (HAProxy is reported as `--aux haproxy`).
#
# Settings (environment):
#   CLUSTER_INSTANCES=3       lty instances
#   CLUSTER_PORT=18100        balancer port; HAProxy's stats on +1, the
#                             instances on +11, +12, ...
#   CLUSTER_USERS=5000        seeded bench users
#   CLUSTER_PAUSE_SECS=5      between the start of the pushes and the first
#                             restart, and between restarts
#   CLUSTER_DIRECT=1          `steady` with one instance and no balancer: the
#                             generator talks to the instance itself (one
#                             instance's push capacity without HAProxy's
#                             share of the cores)
#   BENCH_BIN=path/to/lty     that binary instead of building HEAD
#   CLUSTER_GEN=path          a built benches/cluster.rs executable instead
#                             of `cargo bench --bench cluster`
#   every CLUSTER_* setting of benches/cluster.rs (CLUSTER_FAMILIES,
#   CLUSTER_GROUP, CLUSTER_RATE, CLUSTER_SECS, ...) passes through.
#
# HAProxy: health checks GET /readyz every 250 ms, 3 failures take an
# instance out (a draining instance stops listening at once, so its checks
# fail and it is out within 750 ms; one slow check on a loaded machine
# must not take every instance out at once);
# `retries 3`, `option redispatch 1` and `retry-on conn-failure
# empty-response`: a request that reached a closing instance's listener
# or an idle connection it was closing is sent to another instance. lty
# answers every request it has read before closing a connection (hyper's
# graceful shutdown), so a connection closed with no answer carried a
# request lty never read, and retrying it cannot apply a push twice.
# Responses carry `X-Lty-Backend: ltyN`, the instance that answered.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lty-target}"
what="${1:-rolling}"
shift || true
case "$what" in rolling|steady|hot-paths) ;; *) sed -n '2,32p' "$0" >&2; exit 2 ;; esac
direct="${CLUSTER_DIRECT:-0}"
if [ "$direct" = 1 ]; then
  [ "$what" = steady ] || { echo "CLUSTER_DIRECT=1 applies to steady only" >&2; exit 2; }
  export CLUSTER_INSTANCES=1
fi
instances="${CLUSTER_INSTANCES:-3}"
lb_port="${CLUSTER_PORT:-18100}"
stats_port=$((lb_port + 1))
users="${CLUSTER_USERS:-5000}"
pause="${CLUSTER_PAUSE_SECS:-5}"
harness="$root/../shared/bench/run.py"

command -v haproxy >/dev/null || { apt-get update -qq && apt-get install -y -qq haproxy; }
if [ "$what" = hot-paths ]; then
  command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
  venv="$HOME/.cache/lty-bench-venv"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'websockets>=14' uvloop
  fi
elif [ -n "${CLUSTER_GEN:-}" ]; then
  gen_cmd=("$(realpath "$CLUSTER_GEN")" --bench)
else
  cargo bench -p lty-server --bench cluster --no-run 2>&1 | tail -n 1
  gen_cmd=(cargo bench -q -p lty-server --bench cluster)
fi
if [ -n "${BENCH_BIN:-}" ]; then
  bin="$(realpath "$BENCH_BIN")"
else
  # `cargo bench` above built the binary (with the features the bench
  # build unifies); a plain release build would compile lty-server again.
  if [ "$what" = hot-paths ] || [ -n "${CLUSTER_GEN:-}" ]; then
    cargo build --release -p lty-server 2>&1 | tail -n 1
  fi
  bin="$CARGO_TARGET_DIR/release/lty"
fi

work="$(mktemp -d)"
declare -a pids=()
haproxy_pid=""
parent=""
cleanup() {
  for pid in "${pids[@]}" $haproxy_pid $parent; do
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

ulimit -n "$(ulimit -Hn)"
db=lty_cluster_bench
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" postgres
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $db" postgres
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" REDIS_LOCATION="redis://127.0.0.1:6379/0"
export LTY_REDIS__KEY_PREFIX="bench:cluster:$(date +%s%N):"
export LTY_DATA_DIR="$work/data" LTY_LOG__LEVEL=warn LTY_LOG__FORMAT=json
export LTY_LIMITS__EXEMPT_LOOPBACK=true LTY_DATABASE__MAX_CONNECTIONS=16
export VOLCENGINE_APP_ID="${VOLCENGINE_APP_ID:-0123456789abcdef01234567}"
export VOLCENGINE_APP_KEY="${VOLCENGINE_APP_KEY:-bench-app-key}"
"$bin" migrate >/dev/null
"$bin" seed --users "$users" >/dev/null

port_of() { echo $((lb_port + 10 + $1)); }
ready() { curl -sf -o /dev/null -m 1 "http://127.0.0.1:$(port_of "$1")/readyz"; }
wait_ready() {
  for _ in $(seq 1 300); do ready "$1" && return 0; sleep 0.1; done
  echo "lty$1 did not become ready" >&2
  return 1
}
start_instance() {
  "$bin" serve --bind "127.0.0.1:$(port_of "$1")" >>"$work/lty$1.log" 2>&1 &
  pids[$1]=$!
}

# Two descriptors per proxied connection (client and server side).
maxconn=$(( ($(ulimit -n) - 100) / 2 ))
{
  cat <<EOF
global
  maxconn $maxconn
defaults
  mode http
  timeout connect 2s
  timeout client 120s
  timeout server 30s
  timeout tunnel 1h
  timeout http-keep-alive 30s
  timeout check 2s
  retries 3
  option redispatch 1
  retry-on conn-failure empty-response
listen stats
  bind 127.0.0.1:$stats_port
  stats enable
  stats uri /stats
frontend lty
  bind 127.0.0.1:$lb_port
  maxconn $maxconn
  default_backend lty
backend lty
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  http-response set-header X-Lty-Backend %[srv_name]
  default-server check inter 250ms fall 3 rise 2
EOF
  for i in $(seq 1 "$instances"); do
    echo "  server lty$i 127.0.0.1:$(port_of "$i")"
  done
} >"$work/haproxy.cfg"

if [ "$what" = hot-paths ]; then
  # One parent for all instances: run.py measures a process tree. It
  # stops them when it is stopped.
  (
    trap 'kill -TERM $(jobs -p) 2>/dev/null; wait' TERM
    for i in $(seq 1 "$instances"); do
      "$bin" serve --bind "127.0.0.1:$(port_of "$i")" >>"$work/lty$i.log" 2>&1 &
    done
    wait
  ) &
  parent=$!
else
  for i in $(seq 1 "$instances"); do start_instance "$i"; done
fi
for i in $(seq 1 "$instances"); do wait_ready "$i"; done
stats() { curl -sf "http://127.0.0.1:$stats_port/stats;csv"; }
if [ "$direct" = 1 ]; then
  target="127.0.0.1:$(port_of 1)"
  echo "1 instance on $target, no balancer; commit $(git rev-parse --short HEAD); $(date -u +%FT%TZ)"
else
  haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
  haproxy_pid=$!
  sleep 0.5
  kill -0 "$haproxy_pid" 2>/dev/null || { cat "$work/haproxy.log" >&2; exit 1; }
  for _ in $(seq 1 100); do
    [ "$(stats | awk -F, '$1=="lty" && $2 ~ /^lty/ && $18=="UP"' | wc -l)" = "$instances" ] && break
    sleep 0.1
  done
  target="127.0.0.1:$lb_port"
  echo "$instances instances behind HAProxy on $target; commit $(git rev-parse --short HEAD); $(date -u +%FT%TZ)"
fi

# The balancer's own count, from its CSV statistics (fields by name).
report_stats() {
  stats | python3 -c '
import csv, sys
rows = list(csv.DictReader(line.lstrip("# ") for line in sys.stdin))
for r in rows:
    if r["pxname"] == "lty" and r["svname"] in ("FRONTEND", "BACKEND") or r["svname"].startswith("lty"):
        print("haproxy %s/%s: requests %s, 2xx %s, 4xx %s, 5xx %s, connection errors %s, response errors %s, retries %s, redispatches %s, denied %s" % (
            r["pxname"], r["svname"], r["req_tot"] or r["stot"], r["hrsp_2xx"], r["hrsp_4xx"], r["hrsp_5xx"],
            r["econ"] or "-", r["eresp"] or "-", r["wretr"] or "-", r["wredis"] or "-", r["dreq"] or "-"))
'
}

status=0
case "$what" in
  rolling|steady)
    CLUSTER_ADDR="$target" CLUSTER_STARTED_FILE="$work/started" \
      "${gen_cmd[@]}" &
    gen=$!
    if [ "$what" = rolling ]; then
      until [ -e "$work/started" ]; do
        kill -0 "$gen" 2>/dev/null || break
        sleep 0.2
      done
      for i in $(seq 1 "$instances"); do
        [ -e "$work/started" ] || break
        sleep "$pause"
        t0=$(date +%s.%N)
        kill -TERM "${pids[$i]}"
        wait "${pids[$i]}" || true
        t1=$(date +%s.%N)
        start_instance "$i"
        wait_ready "$i"
        t2=$(date +%s.%N)
        echo "lty$i restarted: drained and exited in $(echo "$t1 - $t0" | bc) s, ready again $(echo "$t2 - $t1" | bc) s later"
      done
    fi
    wait "$gen" || status=$?
    ;;
  hot-paths)
    "$venv/bin/python" "$harness" \
      --base "http://127.0.0.1:$lb_port" --ws "ws://127.0.0.1:$lb_port" \
      --users "$users" --seed-cmd "$bin seed --users {users}" \
      --pid "$parent" --aux "haproxy=$haproxy_pid" \
      --label "lty $(git rev-parse --short HEAD), $instances instances behind HAProxy" \
      --skip websocket,fanout "$@" >"$work/run.json" || status=$?
    mkdir -p bench-results
    out="bench-results/cluster-$(git rev-parse --short HEAD)-${instances}.json"
    cp "$work/run.json" "$out"
    python3 - "$out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = r["summary"]
print("contract", s.get("contract"))
for k in ("mac_login", "profile", "rtc_token"):
    p = s.get(k) or {}
    aux = ((r.get("phases", {}).get(k) or {}).get("resources") or {}).get("aux_cpu_ms_per_op", {})
    print(k, {f: p.get(f) for f in ("ok_rps", "p50_ms", "p99_ms", "non_2xx", "server_cpu_ms_per_req")}, "aux ms/op", aux)
PY
    echo "results: $out"
    ;;
esac
if [ "$direct" != 1 ]; then
  report_stats
  grep -E "is (DOWN|UP)" "$work/haproxy.log" | sed 's/^/haproxy: /' || true
fi
exit "$status"
