#!/usr/bin/env bash
# Install what the tests need (pinned) and run them: unit tests, notebooks under nbval.
#   ./run_tests.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup_env.sh test
export PLOTLY_RENDERER="plotly_mimetype+notebook"
# nbval (lax mode) runs notebooks/ for errors (no outputs are stored there) and compares the
# cells marked nbval-check-output in the golden notebooks of tests/golden/.
.venv/bin/python -m pytest tests notebooks --nbval-lax \
  --nbval-sanitize-with tests/golden/sanitize.cfg -p no:cacheprovider "$@"
