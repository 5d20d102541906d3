#!/usr/bin/env bash
# Create (once) and update the project's virtual environment from the pinned locks.
# Usage: scripts/setup_env.sh run|test     (sourced by run_all.sh and run_tests.sh)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kind="${1:-run}"
venv="${STUDY_VENV:-$here/.venv}"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null 2>&1 || python=python3
if [ ! -x "$venv/bin/python" ]; then
  echo "==> creating $venv with $("$python" --version)"
  "$python" -m venv "$venv"
fi
lock="$here/requirements/$kind.txt"
stamp="$venv/.installed-$kind"
# Reinstall only when the lock or the package metadata changed (keeps re-runs fast).
digest="$(cat "$here/requirements/"*.txt "$here/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
  echo "==> installing pinned packages from requirements/$kind.txt"
  # (this machine's pip config lists local mirrors that may be absent: drop only those notices)
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$lock" 2>&1 \
    | { grep -v "^WARNING: Location 'file:" || true; }
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$here" 2>&1 \
    | { grep -v "^WARNING: Location 'file:" || true; }
  echo "$digest" > "$stamp"
fi
