"""Recomputing the microscope of a stored run with new settings (``python -m igcore microscope RUN_DIR``).

The world is regenerated from the run's config and checked against the stored test_eval images; the
new ``microscope/`` is published through :func:`igcore.store.recompute_output` (the previous one is kept as
``microscope.v<N>``), and the metrics keys the microscope owns are replaced atomically.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from igcore.config.sets import deep_merge, parse_sets
from igcore.errors import InputError
from igcore.microscope.params import MicroscopeConfig
from igcore.microscope.runner import MicroscopeInputs, run_microscope
from igcore.runtime import Concurrency
from igcore.schema import pred_column
from igcore.settings import validated


def microscope_settings(run_config: Mapping[str, Any], overrides: Sequence[str] | Mapping[str, Any] = ()) -> MicroscopeConfig:
    """The run's ``microscope`` section (defaults for keys it lacks) with ``microscope.key=value`` overrides."""
    section = MicroscopeConfig().model_dump()
    section = deep_merge(section, dict(run_config.get("microscope") or {}), "microscope.")
    extra = dict(overrides) if isinstance(overrides, Mapping) else parse_sets(list(overrides), only_prefix="microscope").get("microscope", {})
    return validated(MicroscopeConfig, deep_merge(section, extra, "microscope."), "microscope")


def recompute(run_dir: str | Path, overrides: Sequence[str] | Mapping[str, Any] = (), device: str | None = None) -> Path:
    """Recompute the microscope of a finished run with new settings; returns the new ``microscope/``.

    Cached attribution maps are carried over (hard links) so only new (model, method, parameters,
    image) combinations are computed.

    Raises:
        InputError: not a run directory, an incomplete run, missing models or tensors, bad overrides,
            or a world that no longer reproduces the run's test_eval images.
    """
    from igcore.discover.names import hypothesis_language
    from igcore.stages import check_models, stage_named
    from igcore.store import load_run_dir, recompute_output
    from igcore.worlds import build_world

    run = load_run_dir(run_dir)
    if not run.complete:
        raise InputError(f"run {run.run_id!r} is not complete (status {run.status!r}); only finished runs can be recomputed")
    config = run.config_model()
    settings = microscope_settings(run.config, overrides)
    check_models(settings)
    missing = [m for m in settings.models if m not in run.model_names()]
    if missing:
        raise InputError(f"run {run.run_id!r} has no model {', '.join(missing)}; set microscope.models to some of: {', '.join(run.model_names())}")
    needed = ["tensors/test_eval.safetensors", "tensors/concept_bank.safetensors"]
    if settings.surrogates:
        needed.append("tensors/concept_scores.safetensors")
    for path in needed:
        if not run.has(path):
            raise InputError(f"run {run.run_id!r} is incomplete: it has no {path}")
    dev = device or config.device
    with _quiet_transformers():
        models = {name: run.load_model(name, device=dev) for name in settings.models}
    world = build_world(config.world, config.seed)
    test = world.split("test_eval")
    stored = run.tensors("test_eval")
    if stored["images"].shape != test.images.shape or not np.array_equal(stored["images"], test.images):
        raise InputError(
            f"the world no longer reproduces run {run.run_id!r}'s test_eval images (world code or config changed); "
            "recompute with the code version that made the run"
        )
    bank = run.tensors("concept_bank")
    table = run.table("predictions")
    vocabulary, _ = run.vocabulary()
    present, bank_concepts, tcav_concepts = test.concepts, bank["concepts"], None
    if len(vocabulary) > present.shape[1]:  # discovered concepts follow the annotated ones (igcore.discover)
        from igcore.discover.view import stored_present

        present = np.concatenate([present, stored_present(run, "test_eval")], axis=1)
        if config.discover.tcav:
            bank_concepts = np.concatenate([bank_concepts, stored_present(run, "concept_bank")], axis=1)
            tcav_concepts = vocabulary.ids
    language = hypothesis_language(vocabulary)  # the surrogates speak z*'s language
    scores = {k: language.of(v) for k, v in run.tensors("concept_scores").items()} if settings.surrogates else None
    inputs = MicroscopeInputs(
        world=world,
        test_eval=test,
        concept_bank_images=bank["images"],
        concept_bank_concepts=bank_concepts,
        models=models,
        test_train_images=world.split("test_train").images if settings.surrogates else None,
        concept_scores=scores,
        predictions={m: table[pred_column(m)].to_numpy() for m in models if pred_column(m) in table},
        seed=config.seed,
        search=config.search,
        device=str(dev),
        vocabulary=language.vocabulary,
        test_eval_concepts=language.of(present),
        tcav_concepts=tcav_concepts,
        parallel=Concurrency(config.runtime).at_once(),  # lanes side by side where the CPUs hold them
    )
    with recompute_output(run, "microscope", stage_named("microscope").writes) as output:
        old = run.path / "microscope" / "attributions"
        if old.is_dir():
            shutil.copytree(old, output.path / "attributions", copy_function=_link_or_copy)
        start = time.perf_counter()
        try:
            result = run_microscope(inputs, settings, output.path)
        except ValueError as e:
            raise InputError(str(e)) from None
        shown = dict(overrides) if isinstance(overrides, Mapping) else list(overrides)
        result.info["recomputed"] = {"seconds": round(time.perf_counter() - start, 3), "overrides": shown}
        (output.path / "info.json").write_text(json.dumps(result.info, indent=2))
        output.metrics.update(result.metrics_values())
    return run.path / "microscope"


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No "Loading weights" progress bars while loading the run's models (restores the previous setting)."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def _link_or_copy(src: str, dst: str) -> str:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst
