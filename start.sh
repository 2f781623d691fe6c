#!/usr/bin/env bash
# One command for a fresh machine: install into .venv, compute the demo run (embedded defaults) if
# none exists, then open the dashboard on http://127.0.0.1:8501 — on this machine only: it has no login
# (README, "The dashboard", says how to serve it to a network knowingly).
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
.venv/bin/pip install -q --disable-pip-version-check --no-deps -e .  # igcore, dashboard, testkit, bench importable from anywhere
RUNS_DIR="${IG_RUNS_DIR:-runs}"
if ! .venv/bin/python -m igcore list --out "$RUNS_DIR" | grep -q " complete "; then
    .venv/bin/python -m igcore run --out "$RUNS_DIR"
fi
IG_RUNS_DIR="$RUNS_DIR" exec .venv/bin/streamlit run dashboard/app.py --server.address 127.0.0.1
