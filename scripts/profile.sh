#!/usr/bin/env bash
# Where lty's CPU goes on one hot path: runs scripts/bench.sh for that phase
# alone (release build, production mode, the harness's wrk settings),
# samples the server with perf while the phase is measured, and renders the
# samples as a flamegraph (inferno).
#
# Usage: scripts/profile.sh [profile|mac_login|rtc_token]   (default: profile)
#   BENCH_BIN=path/to/lty  profile that binary instead of building HEAD
#   PROFILE_SECS=10        seconds sampled
#   PROFILE_FREQ=499       samples per second per thread
# Needs perf (Debian: linux-perf); installs inferno with cargo if missing.
# Writes bench-results/flame-<phase>-<commit>.{svg,folded,txt}: the
# flamegraph, the folded stacks it is drawn from, and perf's flat report.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
phase="${1:-profile}"
case "$phase" in
  profile | mac_login | rtc_token) ;;
  *) echo "usage: $0 [profile|mac_login|rtc_token]" >&2; exit 2 ;;
esac
secs="${PROFILE_SECS:-10}"
freq="${PROFILE_FREQ:-499}"
port="${BENCH_PORT:-18080}"
commit="$(git rev-parse --short HEAD)"
command -v perf >/dev/null || { echo "perf is missing (apt-get install linux-perf)" >&2; exit 1; }
if ! command -v inferno-flamegraph >/dev/null; then
  cargo install --locked inferno
fi
skip="websocket,fanout"
for p in mac_login profile rtc_token; do
  [ "$p" = "$phase" ] || skip="$skip,$p"
done

mkdir -p bench-results
out="bench-results/flame-$phase-$commit"
log="$(mktemp)"
data="$(mktemp)"
trap 'rm -f "$log" "$data"' EXIT
BENCH_PORT="$port" BENCH_LABEL="$commit-flame" scripts/bench.sh --skip "$skip" \
  --duration "$((secs + 4))" --warmup 2 >"$log" 2>&1 &
bench=$!
# Sample once the measured run has started (after seeding and warmup).
for _ in $(seq 1 600); do
  grep -q "$phase: measuring" "$log" && break
  kill -0 "$bench" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.5
done
pid="$(pgrep -f "serve --bind 127.0.0.1:$port" | head -n 1)"
[ -n "$pid" ] || { echo "the server is not running" >&2; exit 1; }
perf record -q -F "$freq" --call-graph dwarf,16384 -p "$pid" -o "$data" -- sleep "$secs"
wait "$bench"
grep "$phase:" "$log" | tail -n 1

perf report -i "$data" --no-children -g none --sort dso,sym --stdio >"$out.txt" 2>/dev/null
perf script -i "$data" 2>/dev/null | inferno-collapse-perf >"$out.folded"
inferno-flamegraph --title "lty $commit: $phase under the harness's wrk load" \
  --subtitle "perf -F $freq, $secs s, production mode" <"$out.folded" >"$out.svg"
echo "flamegraph: $out.svg"
