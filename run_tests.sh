#!/usr/bin/env bash
# Install what the tests need (pinned) and run them: unit tests, notebooks under nbval.
#   ./run_tests.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup_env.sh test
# The dashboard tests drive Debian's chromium (Playwright cannot download a browser here).
if ! command -v chromium >/dev/null 2>&1; then
  echo "==> installing chromium (Debian) for the dashboard tests"
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
  log="$(mktemp)"
  { $sudo_ apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq chromium; } >"$log" 2>&1 \
    || { tail -20 "$log"
         case "${CI:-}" in
           1|true|TRUE|yes) echo "error: chromium could not be installed; under CI the browser tests must run" >&2; exit 1 ;;
         esac
         echo "warning: chromium could not be installed: the browser tests will skip"; }
fi
# The Spark tests (a local standalone cluster) need a Java runtime, 17 or later.
if ! command -v java >/dev/null 2>&1 && [ -z "${JAVA_HOME:-}" ]; then
  echo "==> installing a Java runtime (Debian) for the Spark tests"
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
  log="$(mktemp)"
  { $sudo_ apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq default-jre-headless; } >"$log" 2>&1 \
    || { tail -20 "$log"
         case "${CI:-}" in
           1|true|TRUE|yes) echo "error: Java could not be installed; under CI the Spark tests must run" >&2; exit 1 ;;
         esac
         echo "warning: Java could not be installed: the Spark tests will skip"; }
fi
# Lint and layout first (settings in pyproject.toml): an unused or undefined name, or a Python file
# not formatted by `ruff format`, fails the run.
.venv/bin/ruff check .
.venv/bin/ruff format --check .
export PLOTLY_RENDERER="plotly_mimetype+notebook"
# nbval (lax mode) runs notebooks/ for errors (no outputs are stored there) and compares the
# cells marked nbval-check-output in the golden notebooks of tests/golden/.
# Notebooks write their databases to a scratch place, not over data/db/ of a real run.
export STUDY_DB_URL="${STUDY_DB_URL:-sqlite:///$(mktemp -d)/application.sqlite}"
.venv/bin/python -m pytest tests notebooks --nbval-lax \
  --nbval-sanitize-with tests/golden/sanitize.cfg -p no:cacheprovider "$@"
