#!/usr/bin/env bash
# Runs Schemathesis (every check) over every operation of lty's OpenAPI
# document against a freshly started `lty serve` on 127.0.0.1: embedded
# mode by default, PostgreSQL + Redis when TEST_DATABASE_URL and
# TEST_REDIS_URL are set (a fresh database is created for the run).
#
#   scripts/schemathesis.sh [LTY_BINARY] [-- extra schemathesis options]
#
# Schemathesis is installed from PyPI into $LTY_TEST_VENV (default
# ~/.cache/lty-venv) when it is not there yet.
# The report goes to $SCHEMATHESIS_REPORT (default target/schemathesis.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${1:-${CARGO_TARGET_DIR:-target}/debug/lty}"
shift || true
[ "${1:-}" = "--" ] && shift
venv="${LTY_TEST_VENV:-$HOME/.cache/lty-venv}"
st="$venv/bin/schemathesis"
if [ ! -x "$st" ]; then
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'schemathesis==4.*'
fi
[ -x "$bin" ] || { echo "schemathesis: no lty binary at $bin (cargo build first)" >&2; exit 1; }

work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
report="${SCHEMATHESIS_REPORT:-target/schemathesis.txt}"
mkdir -p "$(dirname "$report")"

export LTY_DATA_DIR="$work/data"
# Fuzzing sends thousands of requests from one address.
export LTY_LIMITS__EXEMPT_LOOPBACK=true
unset LTY_CONFIG
if [ -n "${TEST_DATABASE_URL:-}" ] && [ -n "${TEST_REDIS_URL:-}" ]; then
  db="lty_st_$(date +%s)_$$"
  psql "$TEST_DATABASE_URL" -qc "CREATE DATABASE $db" >/dev/null
  export DATABASE_URL="${TEST_DATABASE_URL%/*}/$db"
  export REDIS_LOCATION="$TEST_REDIS_URL"
  export LTY_REDIS__KEY_PREFIX="st$$:"
  mode="PostgreSQL + Redis"
else
  mode="embedded"
fi

"$bin" migrate >/dev/null
"$bin" seed --users 3 >/dev/null
printf 'st-password-0001\nst-password-0001\n' | "$bin" admin create --username st_root --role superadmin --password-stdin >/dev/null
"$bin" serve --bind "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  if [ -n "${db:-}" ]; then psql "$TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 1 100); do curl -fs "$base/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

json_field() { python3 -c "import sys, json; print(json.load(sys.stdin)['$1'])"; }
user_token="$(curl -fs -X POST "$base/api/user/mac-login/" -H 'content-type: application/json' \
  -d '{"mac_address":"02:00:00:00:00:02"}' | json_field token)"
admin_token="$(curl -fs -X POST "$base/api/v1/admin/login/" -H 'content-type: application/json' \
  -d '{"username":"st_root","password":"st-password-0001"}' | json_field token)"
cat >"$work/schemathesis.toml" <<TOML
[auth.openapi.bearer]
bearer = "$user_token"
[auth.openapi.admin_bearer]
bearer = "$admin_token"
TOML

echo "schemathesis: $mode, $base, report in $report"
status=0
(cd "$work" && "$st" run "$base/openapi.json" --checks all --workers 2 \
  --exclude-path-regex 'logout' "$@") >"$report" 2>&1 || status=$?
sed -n '/= SUMMARY =/,$p' "$report"
exit "$status"
