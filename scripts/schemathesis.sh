#!/usr/bin/env bash
# Runs Schemathesis (every check) over every operation of lty's OpenAPI
# document against a freshly started `lty serve` on 127.0.0.1: embedded
# mode by default, PostgreSQL + Redis when TEST_DATABASE_URL and
# TEST_REDIS_URL are set (a fresh database is created for the run).
#
#   scripts/schemathesis.sh [LTY_BINARY] [-- extra schemathesis options]
#
# Examples per operation: $SCHEMATHESIS_MAX_EXAMPLES (default 5); concurrent
# workers: $SCHEMATHESIS_WORKERS (default 2).
# The exceptions lty accepts are named, with their reasons, in
# scripts/schemathesis_hooks.py (and scripts/schemathesis.toml): a 503 must
# be `provider_not_configured` (counted and printed), and a few operations
# may refuse a valid request with one named 400. Any other failure — a
# server error, a response or status the document does not describe, a
# valid request refused, an invalid one accepted — makes the script exit
# non-zero.
#
# Schemathesis comes from scripts/test-venv.sh (the virtualenv
# $LTY_TEST_VENV, default ~/.cache/lty-venv, at the version pinned there).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

bin="${1:-${CARGO_TARGET_DIR:-target}/debug/lty}"
shift || true
[ "${1:-}" = "--" ] && shift
st="$(scripts/test-venv.sh)/bin/schemathesis"
[ -x "$bin" ] || { echo "schemathesis: no lty binary at $bin (cargo build first)" >&2; exit 1; }

work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
report="${SCHEMATHESIS_REPORT:-target/schemathesis.txt}"
mkdir -p "$(dirname "$report")"

export LTY_DATA_DIR="$work/data"
# xiaozhi devices are given this channel URL (without one, OTA checks
# answer 503 `xiaozhi_not_configured`, as documented).
export LTY_XIAOZHI__WEBSOCKET_URL="ws://127.0.0.1:$port/xiaozhi/v1/"
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
# The committed settings, the named exceptions of the hooks, then this
# run's credentials.
{
  cat scripts/schemathesis.toml
  python3 scripts/schemathesis_hooks.py
  printf '\n[auth.openapi.bearer]\nbearer = "%s"\n' "$user_token"
  printf '\n[auth.openapi.admin_bearer]\nbearer = "%s"\n' "$admin_token"
} >"$work/schemathesis.toml"
export SCHEMATHESIS_HOOKS="$root/scripts/schemathesis_hooks.py"
export LTY_ST_503_REPORT="$work/accepted-503.json"

echo "schemathesis: $mode, $base, report in $report"
status=0
(cd "$work" && "$st" --config-file "$work/schemathesis.toml" run "$base/openapi.json" \
  --checks all --workers "${SCHEMATHESIS_WORKERS:-2}" --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-5}" \
  --exclude-path-regex 'logout' "$@") >"$report" 2>&1 || status=$?
# On a failure, what failed (the ERRORS and FAILURES sections, with the
# reproducing requests) comes first, so that a CI log shows it.
if [ "$status" -ne 0 ]; then
  sed -n '/^=* \(ERRORS\|FAILURES\) =*$/,/= SUMMARY =/{/= SUMMARY =/!p}' "$report"
fi
sed -n '/= SUMMARY =/,$p' "$report"
if [ -s "$LTY_ST_503_REPORT" ]; then
  python3 - "$LTY_ST_503_REPORT" <<'PY' | tee -a "$report"
import json, sys
r = json.load(open(sys.argv[1]))
print(f"accepted 503 provider_not_configured: {r['total']} (no vendor is configured)")
for op, n in sorted(r["operations"].items()):
    print(f"  {n:4d}  {op}")
PY
else
  echo "accepted 503 provider_not_configured: 0" | tee -a "$report"
fi
if [ "$status" -ne 0 ]; then
  echo "schemathesis: FAILED ($mode, exit $status); see $report" >&2
fi
exit "$status"
