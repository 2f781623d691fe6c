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


#: The Waterbirds-layout run solved with its own ratings: enough images for its concept model to see the bills,
#: and a prior strength scaled to its small D (the default is set for D of thousands of images).
RATED_WATERBIRDS = ["concepts.epochs=10", "prior.strength=10.0", "microscope.counterfactuals.max_images=8"]


def build_worlds(root: Path, data: Path) -> Path:
    """Into ``root``: ``waterbirds`` (the Waterbirds layout, solved with its own ratings file by a simulated rater,
    ``prior.judgments``) and ``folder`` (a CSV manifest whose concepts nobody rated); their data under ``data``."""
    import pandas as pd

    from igcore.config import load_config
    from igcore.pipeline import run_pipeline
    from igcore.prior import write_ratings_csv
    from igcore.worlds import build_world
    from testkit import byod_fixtures as fx

    birds = fx.make_waterbirds(data / "waterbirds", n=192)
    cache = f"world.cache_dir={data / 'cache'}"
    waterbirds = ["world.name=waterbirds", f"world.root={birds['root']}", f"world.cub_root={birds['cub_root']}", cache]
    world = build_world(load_config(None, [*fx.TINY_SETS, *waterbirds]).world)
    ratings = pd.DataFrame(fx.simulated_ratings(world.vocabulary.ids, list(world.classes)), columns=["rater", "concept", "class", "rating"])
    csv = write_ratings_csv(ratings, data / "waterbirds_ratings.csv")
    folder = ["world.name=folder", f"world.manifest={fx.make_folder(data / 'folder', n=48, with_mask=False)}", cache]
    for run_id, sets in (("waterbirds", [*waterbirds, *RATED_WATERBIRDS, f"prior.judgments={csv}"]), ("folder", folder)):
        run_pipeline(load_config(None, [*fx.TINY_SETS, *sets, f"run_id={run_id}"]), root, progress=False)
    return root


@pytest.fixture(scope="session")
def worlds_dir(runs_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A RUNS_DIR with one complete run of each world: ``tiny`` (Snow and Wolves, the shipped judgments; a copy
    of the session's) and the runs of :func:`build_worlds`. Built once per test session; tests that write
    (ratings) work on a copy.
    """
    root = tmp_path_factory.mktemp("worlds-runs")
    shutil.copytree(runs_dir / "tiny", root / "tiny")
    build_worlds(root, tmp_path_factory.mktemp("worlds-data"))
    os.utime(root / "tiny")  # the default view stays the Snow-and-Wolves run
    return root
