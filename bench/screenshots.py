"""The dashboard's screenshots in README.md (``docs/screenshots/``), taken from the default run by the browser test.

    python -m bench.screenshots --runs RUNS [--set KEY=VALUE ...]

Makes (or finds) the default run under ``RUNS`` (:func:`bench.common.default_run`), then runs
``tests/test_browser_dashboard.py`` on a copy of it (``IG_TEST_RUN``) with ``IG_SCREENSHOTS`` pointing at
``docs/screenshots/``: the real ``streamlit run`` server in headless Debian chromium, every page of the registry
visited and checked, so a screenshot is only kept when the page it shows passed the test.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from bench.common import ROOT, Report, default_run

FOLDER = "docs/screenshots"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", required=True, help="where the default run is made (or found)")
    ap.add_argument("--set", action="append", default=[], help="config overrides of the run (the quick settings)")
    args = ap.parse_args(argv)
    report = Report("screenshots", argv)
    run = default_run(Path(args.runs), args.set)
    shots = report.root / FOLDER
    shots.mkdir(parents=True, exist_ok=True)
    for old in shots.glob("*.png"):  # a page that no longer exists leaves no screenshot behind
        old.unlink()
    env = {**os.environ, "IG_TEST_RUN": str(run), "IG_SCREENSHOTS": str(shots)}
    done = subprocess.run([sys.executable, "-m", "pytest", "tests/test_browser_dashboard.py", "-x", "-q", "-p", "no:cacheprovider"],
                          cwd=ROOT, env=env)
    if done.returncode:
        print("the browser test failed: no screenshots published", file=sys.stderr)
        return done.returncode
    for png in sorted(shots.glob("*.png")):
        report.path(f"{FOLDER}/{png.name}")
    report.publish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
