#!/usr/bin/env bash
# Run the whole study end to end: environment, data (real files or the twin), every notebook in
# order through Papermill, HTML reports in reports/ with reports/index.html.
#   ./run_all.sh            default scale (about 100 k labelled users)
#   ./run_all.sh --quick    small scale (seconds to minutes)
#   ./run_all.sh --full     KKBOX v2 size (about 970 k labelled users, 18.4 M March log rows)
#   ./run_all.sh --force    rerun every step (by default a step whose notebook, parameters, package
#                           code and inputs are unchanged since its last run is "up to date")
set -euo pipefail
cd "$(dirname "$0")"
scale=default
force=()
for arg in "$@"; do
  case "$arg" in
    --quick) scale=quick ;;
    --full) scale=full ;;
    --default) scale=default ;;
    --force) force=(--force) ;;
    *) echo "usage: ./run_all.sh [--quick|--default|--full] [--force]" >&2; exit 2 ;;
  esac
done
bash scripts/setup_env.sh run
export PLOTLY_RENDERER="plotly_mimetype+notebook"
# two steps at once when neither waits for the other (the doors beside the churn chain), each
# kernel with one of the two cores: measured faster than one step at a time with two threads
.venv/bin/study run --scale "$scale" --jobs 2 "${force[@]}"
echo "Open reports/index.html (scale: $scale)."
