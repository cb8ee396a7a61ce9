#!/usr/bin/env bash
# Installs what the test suite needs beyond the machine image, idempotently:
# nothing happens when every tool is already there. As a user other than
# root (a GitHub Actions runner), apt runs through sudo.
set -euo pipefail
need=()
command -v pg_isready >/dev/null || need+=(postgresql-client)
command -v redis-cli >/dev/null || need+=(redis-tools)
# The PgBouncer + Redis Cluster leg starts a local pooler and a cluster.
command -v pgbouncer >/dev/null || need+=(pgbouncer)
command -v redis-server >/dev/null || need+=(redis-server)
# The local TTS provider speaks through espeak-ng (tests synthesize real audio).
command -v espeak-ng >/dev/null || need+=(espeak-ng)
# opusdec (reference libopus) checks that our Opus packets decode as sent.
command -v opusdec >/dev/null || need+=(opus-tools)
# The console's browser tests drive Debian's Chromium through WebDriver.
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
# A Chinese font, so that the console's screenshots show its (Chinese) text.
fc-list :lang=zh 2>/dev/null | grep -q . || need+=(fonts-wqy-zenhei)
if [ ${#need[@]} -gt 0 ]; then
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || {
      echo "ci-deps: need root or sudo to install: ${need[*]}" >&2
      exit 1
    }
    sudo=(sudo)
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

# The Python virtualenv of the tests: the official OpenAI SDK (the
# CustomLLM test) and Schemathesis (scripts/schemathesis.sh).
scripts_dir="$(dirname "$0")"
"$scripts_dir/test-venv.sh" >/dev/null
