#!/usr/bin/env bash
# One command for a fresh machine: install into .venv, then open the dashboard on http://127.0.0.1:8501 —
# on this machine only: it has no login (README, "The dashboard", says how to serve it to a network
# knowingly). With no run in RUNS_DIR, the dashboard computes the demo run (embedded defaults) when the
# page is first opened, shows the Overview as soon as its stages exist and says what is still being
# computed while the microscope finishes behind it (dashboard/first_launch.py).
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
# uv installs what pip would, several times faster; it reads no pip configuration, so it is handed pip's find-links
# (the folders where a machine keeps wheels of its own, such as torch's CPU build)
.venv/bin/pip install -q --disable-pip-version-check uv
FIND_LINKS=$(.venv/bin/pip config list 2>/dev/null | sed -n "s/^[^=]*\.find-links='\(.*\)'$/\1/p" | tr ' ' '\n' | sort -u | sed 's/^/--find-links=/')
# shellcheck disable=SC2086  # one --find-links=PATH word per folder
.venv/bin/uv pip install -q --python .venv $FIND_LINKS -r requirements.txt
.venv/bin/uv pip install -q --python .venv --no-deps -e .  # igcore, dashboard, testkit, bench importable from anywhere
RUNS_DIR="${IG_RUNS_DIR:-runs}"
echo "Open http://127.0.0.1:8501 (with no run in $RUNS_DIR yet, the page computes the demo run and shows it as it fills in)."
IG_RUNS_DIR="$RUNS_DIR" exec .venv/bin/streamlit run dashboard/app.py --server.address 127.0.0.1
