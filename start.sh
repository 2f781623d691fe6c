#!/usr/bin/env bash
# One command for a fresh machine: install into .venv, then open the dashboard on http://127.0.0.1:8501 —
# on this machine only: it has no login (README, "The dashboard", says how to serve it to a network
# knowingly). With no run in RUNS_DIR, the dashboard computes the demo run (embedded defaults) when the
# page is first opened, shows the Overview as soon as its stages exist and says what is still being
# computed while the microscope finishes behind it (dashboard/first_launch.py).
set -euo pipefail
cd "$(dirname "$0")"
bash .ci/install  # requirements.txt and this project into .venv (uv, or pip where uv cannot)
RUNS_DIR="${IG_RUNS_DIR:-runs}"
echo "Open http://127.0.0.1:8501 (with no run in $RUNS_DIR yet, the page computes the demo run and shows it as it fills in)."
IG_RUNS_DIR="$RUNS_DIR" exec .venv/bin/streamlit run dashboard/app.py --server.address 127.0.0.1
