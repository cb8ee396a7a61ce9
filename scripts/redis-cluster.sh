#!/usr/bin/env bash
# Starts or stops a local Redis Cluster of three masters (no replicas, no
# persistence) from Debian's redis-server, for the test leg that runs lty
# on a cluster.
#
#   scripts/redis-cluster.sh start   # prints the URL to use as TEST_REDIS_URL
#   scripts/redis-cluster.sh stop
#
# Nodes listen on 127.0.0.1 ports $LTY_REDIS_CLUSTER_PORT (default 7001)
# and the next two; their files live in a temporary directory named in
# $LTY_REDIS_CLUSTER_STATE (default /tmp/lty-redis-cluster.state).
set -euo pipefail

state="${LTY_REDIS_CLUSTER_STATE:-/tmp/lty-redis-cluster.state}"
first="${LTY_REDIS_CLUSTER_PORT:-7001}"
ports=("$first" "$((first + 1))" "$((first + 2))")

stop() {
  [ -f "$state" ] || return 0
  local dir
  dir=$(cat "$state")
  for port in "${ports[@]}"; do
    redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
  done
  for pidfile in "$dir"/*/redis.pid; do
    [ -f "$pidfile" ] || continue
    local pid
    pid=$(cat "$pidfile")
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  rm -rf "$dir" "$state"
}

start() {
  command -v redis-server >/dev/null || { echo "redis-server is not installed" >&2; exit 1; }
  stop
  local dir nodes=()
  dir=$(mktemp -d /tmp/lty-redis-cluster.XXXXXX)
  echo "$dir" >"$state"
  for port in "${ports[@]}"; do
    mkdir -p "$dir/$port"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$port" \
      --dir "$dir/$port" --pidfile "$dir/$port/redis.pid" \
      --logfile "$dir/$port/redis.log" \
      --cluster-enabled yes --cluster-config-file "$dir/$port/nodes.conf" \
      --cluster-node-timeout 2000 --save "" --appendonly no
    nodes+=("127.0.0.1:$port")
  done
  for port in "${ports[@]}"; do
    for _ in $(seq 1 50); do
      redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && break
      sleep 0.1
    done
  done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$dir/create.log"
  # Every node must agree before commands route everywhere.
  for _ in $(seq 1 100); do
    local ok=1
    for port in "${ports[@]}"; do
      redis-cli -h 127.0.0.1 -p "$port" cluster info | grep -q '^cluster_state:ok' || ok=0
    done
    [ "$ok" = 1 ] && break
    sleep 0.1
  done
  [ "$ok" = 1 ] || { echo "the cluster did not become ready" >&2; cat "$dir/create.log" >&2; exit 1; }
  local IFS=,
  echo "redis+cluster://${nodes[*]}"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
