"""A tiny real run: the config every test and bench that trains uses, and the runs built from it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

#: The tiny config: every default stage of the real pipeline, small enough to train inside a test (the tests' run, the benches').
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


#: The test session's run (tests/conftest.py, ``runs_dir``): :data:`TINY` with the counterfactual effects' bootstrap
#: and the integrated gradients of the double swaps cut to the least that still fills every section the dashboard
#: reads, which is most of the microscope's time at TINY; and TCAV of two models at two layers, so that the
#: microscope's choices between them are drawn (and travel in links). The benches keep :data:`TINY`.
TEST_RUN = {
    **TINY,
    "microscope.tcav.models": ["erm", "ig_student"],
    "microscope.tcav.layers": ["penultimate", "middle"],
    "microscope.counterfactuals.n_resamples": 200,
    "microscope.counterfactuals.attribution_per_group": 2,
    "microscope.counterfactuals.n_steps": 8,
}


#: The smallest world sizes a whole run still works with (the CLI, bad-input and first-launch tests: a run in seconds).
SMALL_WORLD = {"world.n_train": 120, "world.n_val": 60, "world.n_test_train": 90, "world.n_test_eval": 90,
               "world.n_concept_bank": 120}


def set_args(config: dict[str, object]) -> list[str]:
    """``config`` as command-line arguments (``--set KEY=VALUE`` for each key)."""
    return [a for s in tiny_sets(config) for a in ("--set", s)]


#: The headline runs (tests/test_headline.py): :data:`TINY` at the story's extreme, ρ = 1 (every wolf of D on snow,
#: every husky on grass), with a concept bank and training long enough for the concept model to see coats and faces
#: (at TINY's bank it perceives little but the backgrounds, and no prior can help then).
HEADLINE = {**TINY, "world.rho": 1.0, "world.n_concept_bank": 1200, "concepts.epochs": 6}
#: The stages the headline needs: the baseline, the concept model, IG and its student.
HEADLINE_STAGES = ("world", "erm", "concepts", "vocabulary", "ig", "student")


def tiny_sets(config: dict[str, object] = TINY) -> list[str]:
    """:data:`TINY` (or another of these configs) as ``--set`` strings."""
    return [f"{key}={json.dumps(value)}" for key, value in config.items()]


def build_tiny_run(root: Path, run_id: str, values: dict[str, object] = TINY) -> Path:
    """The real pipeline with :data:`TINY` (or another of these configs) into ``root/run_id`` (used by the fixture,
    with :data:`TEST_RUN`, and by the dashboard benches)."""
    from igcore.config import load_config
    from igcore.pipeline import run_pipeline

    config = load_config(None, [*tiny_sets(values), f"run_id={run_id}"])
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
