#!/usr/bin/env bash
# Installs what the test suite needs beyond the machine image, idempotently.
set -euo pipefail
need=()
command -v pg_isready >/dev/null || need+=(postgresql-client)
command -v redis-cli >/dev/null || need+=(redis-tools)
# The local TTS provider speaks through espeak-ng (tests synthesize real audio).
command -v espeak-ng >/dev/null || need+=(espeak-ng)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}"
fi
