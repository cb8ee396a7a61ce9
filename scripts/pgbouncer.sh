#!/usr/bin/env bash
# Starts or stops a local PgBouncer in front of the PostgreSQL server at
# 127.0.0.1:5432 (trust authentication), for the test leg that runs lty
# through a pooler.
#
#   scripts/pgbouncer.sh start   # prints the admin URL to use as TEST_DATABASE_URL
#   scripts/pgbouncer.sh stop
#
# Configuration, log and pid file live in a temporary directory named in
# $LTY_PGBOUNCER_STATE (default /tmp/lty-pgbouncer.state). The port is a
# free one unless LTY_PGBOUNCER_PORT names it. Every database of the server
# is reachable (`* =`), so the tests' fresh databases need no
# reconfiguration. PgBouncer refuses to run as root: as root it runs as the
# `postgres` user.
#
# Pooling mode ($LTY_PGBOUNCER_POOL_MODE): transaction pooling needs
# PgBouncer 1.21 or later, which tracks the driver's named prepared
# statements (max_prepared_statements); an older PgBouncer runs in session
# mode, with a warning (docs/deploy.md §4.1 explains why).
set -euo pipefail

state="${LTY_PGBOUNCER_STATE:-/tmp/lty-pgbouncer.state}"
upstream_host="${LTY_PGBOUNCER_UPSTREAM_HOST:-127.0.0.1}"
upstream_port="${LTY_PGBOUNCER_UPSTREAM_PORT:-5432}"

# 1 when the installed PgBouncer is 1.21 or later.
tracks_prepared_statements() {
  local version
  version=$(pgbouncer --version | sed -n 's/^PgBouncer \([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
  set -- $version
  [ "${1:-0}" -gt 1 ] || { [ "${1:-0}" -eq 1 ] && [ "${2:-0}" -ge 21 ]; }
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

stop() {
  [ -f "$state" ] || return 0
  local dir
  dir=$(cat "$state")
  if [ -f "$dir/pgbouncer.pid" ]; then
    local pid
    pid=$(cat "$dir/pgbouncer.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$dir" "$state"
}

start() {
  command -v pgbouncer >/dev/null || { echo "pgbouncer is not installed (scripts/ci-deps.sh)" >&2; exit 1; }
  stop
  local dir port run_as=() mode pool_size prepared=""
  mode="${LTY_PGBOUNCER_POOL_MODE:-}"
  if [ -z "$mode" ]; then
    if tracks_prepared_statements; then
      mode=transaction
    else
      mode=session
      echo "pgbouncer.sh: $(pgbouncer --version | head -n1) does not track prepared" \
        "statements (1.21+ does): session pooling" >&2
    fi
  fi
  if [ "$mode" = transaction ]; then
    # Fewer server connections per database than lty's pool holds, so
    # that clients really share them, as they would in production.
    pool_size="${LTY_PGBOUNCER_POOL_SIZE:-2}"
    tracks_prepared_statements && prepared="max_prepared_statements = 200"
  else
    # A session holds its server connection: one per client connection.
    pool_size="${LTY_PGBOUNCER_POOL_SIZE:-20}"
  fi
  dir=$(mktemp -d /tmp/lty-pgbouncer.XXXXXX)
  port="${LTY_PGBOUNCER_PORT:-$(free_port)}"
  cat >"$dir/pgbouncer.ini" <<EOF
[databases]
* = host=$upstream_host port=$upstream_port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
admin_users = postgres
pool_mode = $mode
default_pool_size = $pool_size
$prepared
max_client_conn = 2000
; sqlx sends this startup parameter; PgBouncer does not track it.
ignore_startup_parameters = extra_float_digits
; Test databases come and go: do not keep their server connections.
server_idle_timeout = 5
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOF
  echo '"postgres" ""' >"$dir/userlist.txt"
  if [ "$(id -u)" -eq 0 ]; then
    chown -R postgres "$dir"
    run_as=(-u postgres)
  fi
  echo "$dir" >"$state"
  pgbouncer -d "${run_as[@]}" "$dir/pgbouncer.ini"
  for _ in $(seq 1 50); do
    pg_isready -q -h 127.0.0.1 -p "$port" && break
    sleep 0.1
  done
  pg_isready -q -h 127.0.0.1 -p "$port" || {
    echo "pgbouncer did not start; its log:" >&2
    cat "$dir/pgbouncer.log" >&2 || true
    exit 1
  }
  echo "postgres://postgres@127.0.0.1:$port/postgres"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
