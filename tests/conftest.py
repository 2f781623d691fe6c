"""Shared fixtures: real runs of the real pipeline on tiny configs, each built once per test session: the
Snow-and-Wolves run (``runs_dir``) and two runs on users' data layouts (``byod_runs``)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: The tiny config used by dashboard tests and the dashboard bench.
TINY = {
    "world.rho": 0.95,  # the default 0.99 leaves a group of D empty at these sizes (every group needs examples)
    "world.n_train": 400,
    "world.n_val": 200,
    "world.n_test_train": 300,
    "world.n_test_eval": 300,
    "world.n_concept_bank": 400,
    "baseline.epochs": 2,  # 1 epoch of a tiny set trips OneCycleLR (total_steps * pct_start < 2)
    "microscope.per_group": 2,
    "microscope.methods": ["integrated_gradients", "saliency", "grad_cam"],
    "microscope.params.integrated_gradients.n_steps": 8,
    "microscope.tcav.n_random": 2,
    "microscope.tcav.n_concept_images": 8,
    "microscope.tcav.n_inputs": 8,
    "microscope.tcav.layers": ["penultimate"],
    "microscope.swaps.max_images": 60,
    "microscope.sanity.n_images": 2,
    "search.beam_width": 4,
    "search.n_ranked": 8,
    "concepts.epochs": 2,
}


def tiny_sets() -> list[str]:
    """:data:`TINY` as ``--set`` strings."""
    return [f"{key}={json.dumps(value)}" for key, value in TINY.items()]


def build_tiny_run(root: Path, run_id: str) -> Path:
    """The real pipeline with :data:`TINY` into ``root/run_id`` (used by the fixture and the dashboard bench)."""
    from igcore.config import load_config
    from igcore.pipeline import run_pipeline

    config = load_config(None, [*tiny_sets(), f"run_id={run_id}"])
    return run_pipeline(config, root, progress=False)


def write_incomplete_run(complete: Path, out: Path) -> None:
    """What a run looks like while its pipeline is still running, just after the world stage: the world's
    files and metrics, status ``running``, every default stage selected but only ``world`` recorded."""
    out.mkdir()
    manifest = json.loads((complete / "manifest.json").read_text())
    manifest.update(run_id=out.name, status="running", stages={"world": manifest["stages"]["world"]})
    manifest.pop("total_seconds", None)
    (out / "manifest.json").write_text(json.dumps(manifest))
    metrics = json.loads((complete / "metrics.json").read_text())
    (out / "metrics.json").write_text(json.dumps({"world": metrics["world"]}))
    shutil.copy(complete / "contact_sheet.png", out / "contact_sheet.png")
    for name in ("tables/split_train.parquet", "tables/split_val.parquet", "tables/split_test_train.parquet",
                 "tables/split_test_eval.parquet", "tables/split_concept_bank.parquet",
                 "tensors/test_eval.safetensors", "tensors/concept_bank.safetensors"):
        (out / name).parent.mkdir(exist_ok=True)
        shutil.copy(complete / name, out / name)


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


#: Runs on users' data, as small as the pipeline allows (the settings of tests/test_byod_runs.py).
BYOD_SETS = [
    "world.image_size=32", "baseline.epochs=2", "baseline.batch_size=16", "concepts.epochs=2",
    "microscope.per_group=1", 'microscope.methods=["saliency","grad_cam"]', "microscope.tcav.n_random=2",
    "microscope.tcav.n_concept_images=4", "microscope.tcav.n_inputs=3", 'microscope.tcav.layers=["penultimate"]',
    "microscope.sanity.n_images=2", "search.n_ranked=4", "search.max_depth=3",
]
#: The runs of :func:`byod_runs`.
BYOD_RUNS = ("waterbirds", "folder")


@pytest.fixture(scope="session")
def byod_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A RUNS_DIR with two complete runs on users' data: ``waterbirds`` (the Waterbirds layout with CUB
    attributes and segmentations; ``place_names`` left at land/water while the photographs' places are
    Places365 categories) and ``folder`` (a CSV manifest without masks)."""
    import byod_fixtures as fx

    from igcore.config import load_config
    from igcore.pipeline import run_pipeline

    root, data = tmp_path_factory.mktemp("byod-runs"), tmp_path_factory.mktemp("byod-data")
    birds = fx.make_waterbirds(data / "waterbirds", n=64)
    manifest = fx.make_folder(data / "folder", n=48, with_mask=False)
    worlds = {
        "waterbirds": ["world.name=waterbirds", f"world.root={birds['root']}", f"world.cub_root={birds['cub_root']}"],
        "folder": ["world.name=folder", f"world.manifest={manifest}"],
    }
    for run_id, world in worlds.items():
        config = load_config(None, [*BYOD_SETS, *world, f"run_id={run_id}", f"world.cache_dir={data / 'cache'}"])
        run_pipeline(config, root, progress=False)
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
