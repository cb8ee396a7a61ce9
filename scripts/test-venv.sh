#!/usr/bin/env bash
# Makes the Python virtualenv the tests use, $LTY_TEST_VENV (default
# ~/.cache/lty-venv), idempotently: the official OpenAI SDK (the CustomLLM
# test in tests/api/chat_turn.rs) and Schemathesis at the version pinned
# here (scripts/schemathesis.sh). Prints the virtualenv's path.
#
# Its interpreter is the first Python ≥ 3.11 found (python3.13, python3.12,
# python3, pyenv's versions, /usr/bin/python3) that does not have CPython
# bug gh-106905: 3.11.0–3.11.7 and 3.12.0–3.12.1 can raise `SystemError:
# AST constructor recursion depth mismatch` from `ast.parse` deep in a call
# stack, which Hypothesis does under Schemathesis while describing a
# strategy, so that a fuzzing run fails at random on the runner's side. A
# virtualenv made on such an interpreter is made again when a better one is
# there; when none is, the best one found is used, with a warning.
set -euo pipefail

schemathesis_version=4.32.5
venv="${LTY_TEST_VENV:-$HOME/.cache/lty-venv}"

# Exit status 0: ≥ 3.11 without gh-106905; 1: usable, but with it;
# 2: not usable (missing, or older than 3.11).
grade() {
  "$1" - <<'PY' 2>/dev/null || return 2
import sys
v = sys.version_info[:3]
if v < (3, 11):
    sys.exit(2)
sys.exit(1 if (3, 11, 0) <= v < (3, 11, 8) or (3, 12, 0) <= v < (3, 12, 2) else 0)
PY
}

pick() {
  local fallback="" c status
  local candidates=(python3.13 python3.12 python3)
  local pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
  if [ -d "$pyenv_root/versions" ]; then
    while IFS= read -r c; do candidates+=("$c"); done < <(
      ls -d "$pyenv_root"/versions/3.*/bin/python3 2>/dev/null | sort -rV
    )
  fi
  candidates+=(/usr/bin/python3)
  for c in "${candidates[@]}"; do
    command -v "$c" >/dev/null 2>&1 || continue
    status=0
    grade "$c" || status=$?
    case "$status" in
      0) echo "$c"; return ;;
      1) [ -n "$fallback" ] || fallback="$c" ;;
    esac
  done
  [ -n "$fallback" ] || { echo "test-venv: no Python 3.11 or later found" >&2; exit 1; }
  echo "test-venv: every Python found has CPython bug gh-106905; using $fallback" >&2
  echo "$fallback"
}

if [ -x "$venv/bin/python" ]; then
  status=0
  grade "$venv/bin/python" || status=$?
  if [ "$status" -eq 2 ]; then
    rm -rf "$venv"
  elif [ "$status" -eq 1 ]; then
    best="$(pick 2>/dev/null)"
    if grade "$best"; then
      echo "test-venv: remaking $venv on $best" >&2
      rm -rf "$venv"
    fi
  fi
fi
if [ ! -x "$venv/bin/python" ]; then
  "$(pick)" -m venv "$venv"
fi

pip=("$venv/bin/pip" install --quiet --disable-pip-version-check)
if ! "$venv/bin/python" -c 'import openai' >/dev/null 2>&1; then
  "${pip[@]}" 'openai==2.*' || "${pip[@]}" openai
fi
if [ "$("$venv/bin/schemathesis" --version 2>/dev/null || true)" != "schemathesis, version $schemathesis_version" ]; then
  "${pip[@]}" "schemathesis==$schemathesis_version"
fi
echo "$venv"
