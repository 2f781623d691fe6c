"""Shared fixtures: real runs of the real pipeline on tiny configs, each built once per test session (once for all of
pytest-xdist's workers, :func:`built_once`): the Snow-and-Wolves run (``runs_dir``), two runs on users' data layouts
(``byod_runs``) and the runs of three worlds (``worlds_dir``)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock

from testkit.runs import TEST_RUN, build_tiny_run, write_incomplete_run


def pytest_configure(config: pytest.Config) -> None:
    """Let Python cache the bytecode it compiles, in this process and every one the suite starts (xdist's workers,
    CLI calls, dashboard servers, Ray workers): where ``PYTHONDONTWRITEBYTECODE`` is set, as on CI machines, each of
    them compiled torch, transformers and streamlit from source again (importing them took 9.0 s against 3.5 s).
    The caches go to .venv and the ignored ``__pycache__`` folders."""
    import sys

    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.dont_write_bytecode = False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files that start a local Ray first (the longest), then those with ``slow`` tests, then the rest (stable
    otherwise): pytest-xdist hands out whole files in this order (``--dist loadfile --no-loadscope-reorder``, which
    keeps it), so the long ones start at once instead of leaving one worker busy at the end."""
    ray_files = {item.path for item in items if item.get_closest_marker("ray")}
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: (item.path not in ray_files, item.path not in slow_files))


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]) -> Path:
    """The folder ``name`` that ``build(folder)`` fills, built once per test session: under pytest-xdist the first
    worker to ask builds it in the session's shared temporary folder while the others wait on a file lock, then all
    read it (the runs train once, not once per worker). Read-only for tests: a fixture that hands it to tests that
    may write copies it first."""
    if "PYTEST_XDIST_WORKER" not in os.environ:  # one process
        folder = tmp_path_factory.mktemp(name)
        build(folder)
        return folder
    folder = tmp_path_factory.getbasetemp().parent / name  # above every worker's basetemp: this session's
    built = folder.with_name(f"{name}.built")
    with FileLock(f"{folder}.lock"):
        if not built.exists():
            shutil.rmtree(folder, ignore_errors=True)  # what a worker that failed to build it left
            folder.mkdir()
            build(folder)
            built.touch()
    return folder


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
        shutil.copytree(built_once(tmp_path_factory, "test-run", lambda f: build_tiny_run(f, "tiny", TEST_RUN)) / "tiny", root / "tiny")
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


#: The runs of :func:`byod_runs`.
BYOD_RUNS = ("waterbirds", "folder")


@pytest.fixture(scope="session")
def byod_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str] | Path]:
    """The users' data of :func:`byod_runs`: each layout's ``world.*`` settings (``waterbirds``, ``folder``) and the
    decoded-image cache they share (``cache``; a run on the same data with it finds its images there)."""
    from testkit import byod_fixtures as fx

    def write(data: Path) -> None:
        birds = fx.make_waterbirds(data / "waterbirds", n=64)
        manifest = fx.make_folder(data / "folder", n=48, with_mask=False)
        (data / "paths.json").write_text(json.dumps({**{k: str(v) for k, v in birds.items()}, "manifest": str(manifest)}))

    data = built_once(tmp_path_factory, "byod-data", write)
    birds = json.loads((data / "paths.json").read_text())
    manifest = birds["manifest"]
    return {
        "waterbirds": ["world.name=waterbirds", f"world.root={birds['root']}", f"world.cub_root={birds['cub_root']}"],
        "folder": ["world.name=folder", f"world.manifest={manifest}"],
        "cache": data / "cache",
    }


@pytest.fixture(scope="session")
def byod_runs(byod_data: dict[str, list[str] | Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A RUNS_DIR with two complete runs on users' data (:data:`testkit.byod_fixtures.TINY_SETS`): ``waterbirds``
    (the Waterbirds layout with CUB attributes and segmentations; ``place_names`` left at land/water while the
    photographs' places are Places365 categories; nobody rated its concepts) and ``folder`` (a CSV manifest
    without masks). Each is the first run on its data (its images decoded, not found in the cache)."""
    from igcore.config import load_config
    from igcore.pipeline import run_pipeline
    from testkit import byod_fixtures as fx

    def build(runs: Path) -> None:
        for run_id in BYOD_RUNS:
            config = load_config(None, [*fx.TINY_SETS, *byod_data[run_id], f"run_id={run_id}", f"world.cache_dir={byod_data['cache']}"])
            run_pipeline(config, runs, progress=False)

    root = tmp_path_factory.mktemp("byod-runs")
    built = built_once(tmp_path_factory, "byod-runs", build)
    for run_id in BYOD_RUNS:
        shutil.copytree(built / run_id, root / run_id)
    return root


@pytest.fixture
def byod_runs_dir(byod_runs: Path, runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """:func:`byod_runs`, with ``IG_RUNS_DIR`` pointing at it for one test."""
    monkeypatch.setenv("IG_RUNS_DIR", str(byod_runs))
    return byod_runs


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


def build_rated_waterbirds(root: Path, data: Path) -> Path:
    """Into ``root``: ``waterbirds``, the Waterbirds layout solved with its own ratings file by a simulated rater
    (``prior.judgments``); its data under ``data``."""
    import pandas as pd

    from igcore.config import load_config
    from igcore.pipeline import run_pipeline
    from igcore.prior import write_ratings_csv
    from igcore.worlds import build_world
    from testkit import byod_fixtures as fx

    birds = fx.make_waterbirds(data / "waterbirds", n=192)
    waterbirds = ["world.name=waterbirds", f"world.root={birds['root']}", f"world.cub_root={birds['cub_root']}",
                  f"world.cache_dir={data / 'cache'}"]
    world = build_world(load_config(None, [*fx.TINY_SETS, *waterbirds]).world)
    ratings = pd.DataFrame(fx.simulated_ratings(world.vocabulary.ids, list(world.classes)), columns=["rater", "concept", "class", "rating"])
    csv = write_ratings_csv(ratings, data / "waterbirds_ratings.csv")
    sets = [*fx.TINY_SETS, *waterbirds, *RATED_WATERBIRDS, f"prior.judgments={csv}", "run_id=waterbirds"]
    run_pipeline(load_config(None, sets), root, progress=False)
    return root


@pytest.fixture(scope="session")
def worlds_dir(runs_dir: Path, byod_runs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A RUNS_DIR with one complete run of each world: ``tiny`` (Snow and Wolves, the shipped judgments; a copy
    of the session's), ``waterbirds`` (:func:`build_rated_waterbirds`) and ``folder`` (a copy of :func:`byod_runs`'
    run, whose concepts nobody rated). Built once per test session; tests that write (ratings) work on a copy.
    """
    root = tmp_path_factory.mktemp("worlds-runs")
    shutil.copytree(runs_dir / "tiny", root / "tiny")
    shutil.copytree(byod_runs / "folder", root / "folder")
    rated = built_once(tmp_path_factory, "rated-waterbirds", lambda f: build_rated_waterbirds(f / "runs", f / "data"))
    shutil.copytree(rated / "runs" / "waterbirds", root / "waterbirds")
    os.utime(root / "tiny")  # the default view stays the Snow-and-Wolves run
    return root
