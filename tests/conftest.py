"""Shared fixtures: one tiny real run (the real pipeline, :data:`testkit.runs.TINY`), built once per test session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from testkit.runs import build_tiny_run, write_incomplete_run


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A RUNS_DIR holding one complete tiny run (every default stage), one incomplete run and one junk folder.

    ``IG_RUNS_DIR`` points at it for the whole session (the dashboard reads it at each script run).
    With ``IG_TEST_RUN=/path/to/a/run`` a copy of that finished run stands in for the tiny one (id ``tiny``).
    """
    root = tmp_path_factory.mktemp("runs")
    existing = os.environ.get("IG_TEST_RUN")
    if existing:  # e.g. the default demo run, to take the documentation screenshots from it
        shutil.copytree(existing, root / "tiny")
    else:
        build_tiny_run(root, "tiny")
    write_incomplete_run(root / "tiny", root / "tiny-incomplete")
    (root / "junk").mkdir()  # a folder that is not a run
    # the complete run must stay the newest one (the default view)
    os.utime(root / "tiny")
    previous = os.environ.get("IG_RUNS_DIR")
    os.environ["IG_RUNS_DIR"] = str(root)
    yield root
    if previous is None:
        os.environ.pop("IG_RUNS_DIR", None)
    else:
        os.environ["IG_RUNS_DIR"] = previous


@pytest.fixture
def fresh_runs_dir(runs_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the session RUNS_DIR (for tests that write, e.g. ratings)."""
    dst = tmp_path / "runs"
    shutil.copytree(runs_dir, dst)
    os.environ["IG_RUNS_DIR"] = str(dst)
    yield dst
    os.environ["IG_RUNS_DIR"] = str(runs_dir)
