"""The ``microscope`` pipeline stage, and recomputing it for an existing run.

:func:`run_microscope` does the work on in-memory inputs and writes ``microscope/`` (tables, tensors,
the attribution cache) into a directory; :func:`stage_microscope` feeds it from the pipeline's
:class:`~igcore.pipeline.RunContext`; :func:`recompute` feeds it from a stored run (the world is
regenerated from the run's config and checked against the stored test_eval images) and writes
through :func:`igcore.store.add_files`, then updates the run's ``metrics.json`` atomically.

Layout of ``microscope/``::

    attributions/<model>/<method>-<key>/part-*.safetensors   cached maps (see attribution.py)
    tables/relevance.parquet           per image: model, method, index, group, relevance_mass, mask_area
    tables/relevance_summary.parquet   mean per (model, method, group) and over all groups
    tables/tcav.parquet                TCAV records (all TCAV models)
    tables/swaps.parquet               flip rate / accuracy per (model, from, to background)
    tables/sanity.parquet              Spearman per (model, method, cascade stage)
    tensors/sample.safetensors         test_eval indices that have maps
    tensors/swaps.safetensors          a few swapped images + predictions
    tensors/sanity_<model>.safetensors maps through the randomisation cascade (float16)
    info.json                          settings, timings, what was skipped and why
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from safetensors.numpy import save_file

from igcore.errors import InputError
from igcore.microscope.attribution import AttributionCache, maps_for
from igcore.microscope.registry import architecture_of, get_method
from igcore.microscope.relevance import relevance_rows, summarise_relevance
from igcore.microscope.swaps import background_swaps, sample_per_group
from igcore.pipeline import RunContext, register_stage
from igcore.store import write_table
from igcore.worlds.base import Split, World

SURROGATE_NAMES = {"erm": "z_baseline", "ig_student": "z_student"}


@dataclass
class MicroscopeInputs:
    """Everything the microscope reads (from a live pipeline run or a stored run)."""

    world: World
    test_eval: Split
    concept_bank_images: np.ndarray
    concept_bank_concepts: np.ndarray
    models: dict[str, Any]  # name -> ImageClassifier
    test_train_images: np.ndarray | None = None
    concept_scores: dict[str, np.ndarray] | None = None  # {"test_train", "test_eval"} (N, K)
    predictions: dict[str, np.ndarray] = field(default_factory=dict)  # model -> test_eval predictions
    seed: int = 0
    search_config: dict[str, Any] | None = None  # the run's ``search`` section (surrogates use the same search)
    device: str = "auto"


def _predictions(inputs: MicroscopeInputs, name: str) -> np.ndarray:
    if name not in inputs.predictions:
        inputs.predictions[name] = inputs.models[name].predict(inputs.test_eval.images)
    return inputs.predictions[name]


def _write_tensors(out_dir: Path, name: str, arrays: Mapping[str, np.ndarray]) -> None:
    path = out_dir / "tensors" / f"{name}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(path))


def run_microscope(inputs: MicroscopeInputs, settings: Mapping[str, Any], out_dir: str | Path) -> dict[str, Any]:
    """Run every microscope part and write ``out_dir`` (the run's ``microscope/`` directory).

    Returns:
        ``{"microscope": {model: {...}}, "hypotheses": {...}, "surrogates": {...}, "info": {...}}`` —
        the metrics to merge into ``metrics.json`` plus ``info`` (timings, skipped parts).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    world, test = inputs.world, inputs.test_eval
    group_names = world.group_names()
    classes = list(world.classes)
    models = [m for m in settings["models"] if m in inputs.models]
    timings: dict[str, float] = {}
    cpu_timings: dict[str, float] = {}
    clock = {"wall": time.perf_counter(), "cpu": time.process_time()}

    def lap(name: str) -> None:
        """Record the wall-clock and process-CPU seconds since the previous lap (CPU: robust on shared machines)."""
        now, cpu = time.perf_counter(), time.process_time()
        timings[name], cpu_timings[name] = now - clock["wall"], cpu - clock["cpu"]
        clock.update(wall=now, cpu=cpu)

    skipped: list[str] = [f"model {m}: not in the run" for m in settings["models"] if m not in inputs.models]
    metrics: dict[str, dict[str, Any]] = {m: {} for m in models}
    cache = AttributionCache(out_dir / "attributions")
    batch_size = int(settings["batch_size"])

    from igcore.microscope.tcav import resolve_layer

    for m in [m for m in settings["tcav"]["models"] if m in inputs.models]:  # fail fast on a bad layer name
        for layer in settings["tcav"]["layers"]:
            resolve_layer(inputs.models[m].module_, layer)

    # 1-2. attributions on a per-group sample, relevance mass inside the animal mask.
    sample = sample_per_group(test.groups, int(settings["per_group"]), inputs.seed)
    _write_tensors(out_dir, "sample", {"indices": sample.astype(np.int64)})
    rows = []
    trained_maps: dict[str, dict[str, np.ndarray]] = {m: {} for m in models}
    for m in models:
        clf = inputs.models[m]
        arch = architecture_of(clf.module_)
        for method in settings["methods"]:
            spec = get_method(method)
            if not spec.applies_to(arch):
                continue
            result = maps_for(
                cache, m, clf, test.images, sample, method, settings["params"].get(method, {}),
                batch_size=batch_size, seed=inputs.seed,
            )
            trained_maps[m][method] = result.maps
            rows.append(
                relevance_rows(m, method, sample, result.maps, test.masks[sample], test.groups[sample], group_names, result.targets)
            )
    empty = relevance_rows("", "", sample[:0], np.zeros((0, 1, 1)), np.zeros((0, 1, 1), bool), sample[:0], group_names)
    per_image = pd.concat(rows, ignore_index=True) if rows else empty
    summary = summarise_relevance(per_image)
    write_table(out_dir, "relevance", per_image)
    write_table(out_dir, "relevance_summary", summary)
    mask_share = float(test.masks[sample].mean()) if len(sample) else float("nan")
    for m in models:
        mine = summary[(summary["model"] == m)]
        overall = mine[mine["group"] == "all"]
        metrics[m]["relevance_on_animal"] = {r.method: _num(r.relevance_mass) for r in overall.itertuples()}
        metrics[m]["relevance_on_animal_by_group"] = {
            method: {r.group: _num(r.relevance_mass) for r in g.itertuples() if r.group != "all"}
            for method, g in mine.groupby("method", sort=False)
        }
        metrics[m]["mask_area_share"] = mask_share
    lap("attributions")

    # 5. background swaps.
    max_images = settings["swaps"]["max_images"]
    swap_idx = None
    if max_images is not None and max_images < len(test):
        swap_idx = sample_per_group(test.groups, max(1, max_images // max(1, len(group_names))), inputs.seed + 1)
    swaps = background_swaps(
        world, test, {m: inputs.models[m] for m in models},
        original_predictions={m: _predictions(inputs, m) for m in models},
        indices=swap_idx, keep_per_group=int(settings["swaps"]["keep_per_group"]), seed=inputs.seed,
    )
    write_table(out_dir, "swaps", swaps.table)
    if swaps.sample:
        _write_tensors(out_dir, "swaps", swaps.sample)
    for m in models:
        metrics[m].update({k: swaps.metrics[m][k] for k in ("swap_flip_rate", "swap_acc")})
        metrics[m]["swap_n"] = swaps.metrics[m]["n_swaps"]
    lap("swaps")

    # 6. sanity checks (cascading randomisation).
    from igcore.microscope.sanity import sanity_check

    sanity_rows = []
    for m in [m for m in settings["sanity"]["models"] if m in models]:
        clf = inputs.models[m]
        arch = architecture_of(clf.module_)
        methods = {k: settings["params"].get(k, {}) for k in settings["methods"] if get_method(k).applies_to(arch)}
        n = int(settings["sanity"]["n_images"])
        # a subset of the attribution sample (spread over the groups), so the trained maps are reused
        pos = sample_per_group(test.groups[sample], max(1, -(-n // len(group_names))), inputs.seed + 2)[:n]
        pick = sample[pos]
        targets = clf.predict(test.images[pick])
        results, maps = sanity_check(
            clf.module_, test.images[pick], targets, methods, threshold=float(settings["sanity"]["threshold"]),
            batch_size=batch_size, device=clf.device_, seed=inputs.seed,
            trained_maps={k: v[pos] for k, v in trained_maps[m].items()},
        )
        metrics[m]["sanity"] = results
        for method, r in results.items():
            for stage_name, rho, rho_raw in zip(r["stages"], r["spearman_abs"], r["spearman"], strict=True):
                sanity_rows.append(
                    {"model": m, "method": method, "stage": stage_name, "spearman_abs": rho, "spearman": rho_raw,
                     "trustworthy": r["trustworthy"]}
                )
        _write_tensors(
            out_dir, f"sanity_{m}",
            {"indices": pick.astype(np.int64), "targets": targets.astype(np.int64),
             **{f"maps_{k}": v.astype(np.float16) for k, v in maps.items()}},
        )
    write_table(out_dir, "sanity", pd.DataFrame.from_records(sanity_rows, columns=["model", "method", "stage", "spearman_abs", "spearman", "trustworthy"]))
    lap("sanity")

    # 3. TCAV over the concept vocabulary.
    from igcore.microscope.tcav import tcav_scores

    t = settings["tcav"]
    tcav_rows = []
    for m in [m for m in t["models"] if m in models]:
        clf = inputs.models[m]
        rng = np.random.default_rng(inputs.seed + 3)
        by_class = {}
        for c, name in enumerate(classes):
            rows_c = np.flatnonzero(test.labels == c)
            by_class[name] = test.images[np.sort(rng.choice(rows_c, size=min(int(t["n_inputs"]), len(rows_c)), replace=False))]
        records = tcav_scores(
            clf.module_, inputs.concept_bank_images, inputs.concept_bank_concepts, world.vocabulary.ids, by_class,
            t["layers"], classes=classes, n_random=int(t["n_random"]), n_concept_images=int(t["n_concept_images"]),
            alpha=float(t["alpha"]), correction=t["correction"], seed=inputs.seed, device=clf.device_, model_id=m,
        )
        metrics[m]["tcav"] = records
        tcav_rows += [{"model": m, **r} for r in records]
    write_table(out_dir, "tcav", pd.DataFrame.from_records(tcav_rows))
    lap("tcav")

    # 4. surrogate hypotheses in the language of z*.
    hypotheses: dict[str, Any] = {}
    surrogates: dict[str, Any] = {}
    if settings["surrogates"]:
        why = _surrogates_unavailable(inputs)
        if why:
            skipped.append(f"surrogates: {why}")
        else:
            from igcore.microscope.surrogate import fit_surrogate

            scores = inputs.concept_scores or {}
            for m, key in SURROGATE_NAMES.items():
                if m not in models:
                    continue
                s = fit_surrogate(
                    key, m, scores["test_train"], inputs.models[m].predict(inputs.test_train_images),
                    scores["test_eval"], _predictions(inputs, m), world.vocabulary, classes, eval_labels=test.labels,
                    search_config=inputs.search_config, device=inputs.device, l1=settings["surrogate_l1"],
                )
                hypotheses[key] = s.records
                hypotheses[f"{key}_text"] = s.text
                surrogates[key] = s.summary()
    lap("surrogates")

    info = {
        "settings": json.loads(json.dumps(settings, default=str)),
        "seed": inputs.seed,
        "sample_size": int(len(sample)),
        "models": models,
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "cpu_timings": {k: round(v, 3) for k, v in cpu_timings.items()},
        "skipped": skipped,
    }
    (out_dir / "info.json").write_text(json.dumps(info, indent=2))
    return {"microscope": metrics, "hypotheses": hypotheses, "surrogates": surrogates, "info": info}


def _num(x: Any) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def _surrogates_unavailable(inputs: MicroscopeInputs) -> str | None:
    import importlib.util

    if importlib.util.find_spec("igcore.search") is None:
        return "igcore.search is not available"
    s = inputs.concept_scores
    if not s or "test_train" not in s or "test_eval" not in s:
        return "the run has no concept scores for test_train and test_eval"
    if inputs.test_train_images is None:
        return "test_train images are not available"
    return None


def merge_metrics(metrics: dict[str, Any], result: Mapping[str, Any]) -> None:
    """Put a :func:`run_microscope` result into a ``metrics.json`` dict (in place)."""
    metrics["microscope"] = result["microscope"]
    if result["hypotheses"]:
        metrics.setdefault("hypotheses", {}).update(result["hypotheses"])
    if result["surrogates"]:
        metrics.setdefault("surrogates", {}).update(result["surrogates"])


def _concept_scores_from(ctx: RunContext) -> dict[str, np.ndarray] | None:
    scores = ctx.artifacts.get("concept_scores")
    if isinstance(scores, Mapping) and scores:
        return {k: np.asarray(v) for k, v in scores.items()}
    path = ctx.writer.path / "tensors" / "concept_scores.safetensors"
    if path.is_file():
        from safetensors.numpy import load_file

        return load_file(str(path))
    return None


@register_stage("microscope")
def stage_microscope(ctx: RunContext) -> dict[str, Any]:
    """Attributions, relevance mass, TCAV, surrogates, background swaps and sanity checks of the run's models."""
    settings = ctx.config["microscope"]
    bank = ctx.splits["concept_bank"]
    test_train = ctx.splits.get("test_train")
    inputs = MicroscopeInputs(
        world=ctx.world,
        test_eval=ctx.splits["test_eval"],
        concept_bank_images=bank.images,
        concept_bank_concepts=bank.concepts,
        models=dict(ctx.models),
        test_train_images=None if test_train is None else test_train.images,
        concept_scores=_concept_scores_from(ctx),
        predictions={k: np.asarray(v) for k, v in ctx.artifacts.get("predictions", {}).items() if k in ctx.models},
        seed=int(ctx.config["seed"]),
        search_config=ctx.config.get("search"),
        device=str(ctx.device),
    )
    result = run_microscope(inputs, settings, ctx.writer.subdir("microscope"))
    merge_metrics(ctx.metrics, result)
    return {"timings": result["info"]["timings"], "skipped": result["info"]["skipped"]}


# -- recompute for an existing run --------------------------------------------------------------


def microscope_settings(run_config: Mapping[str, Any], overrides: Sequence[str] | Mapping[str, Any] = ()) -> dict[str, Any]:
    """The run's ``microscope`` section (defaults for keys it lacks) with ``microscope.key=value`` overrides."""
    from igcore.config import DEFAULTS, _merge, _parse_value
    from igcore.microscope.options import validate_microscope

    section = copy.deepcopy(DEFAULTS["microscope"])
    stored = run_config.get("microscope") or {}
    if stored:
        _merge(section, copy.deepcopy(dict(stored)), "microscope.")
    if isinstance(overrides, Mapping):
        _merge(section, copy.deepcopy(dict(overrides)), "microscope.")
    else:
        for item in overrides:
            key, sep, raw = item.partition("=")
            key = key.strip()
            if not sep or not key:
                raise InputError(f"--set expects key=value, got {item!r}")
            if not key.startswith("microscope."):
                raise InputError(f"only microscope.* keys can be set when recomputing the microscope, got {key!r}")
            nested: dict[str, Any] = {}
            node = nested
            parts = key.split(".")[1:]
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = _parse_value(raw.strip())
            _merge(section, nested, "microscope.")
    validate_microscope(section)
    return section


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default))
    os.replace(tmp, path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def recompute(run_dir: str | Path, overrides: Sequence[str] | Mapping[str, Any] = (), device: str | None = None) -> Path:
    """Recompute the microscope of a finished run with new settings; returns the new ``microscope/``.

    The previous ``microscope/`` is kept as ``microscope.v<N>``; cached attribution maps are carried over
    (hard links) so only new (model, method, parameters, image) combinations are computed. The run's
    ``metrics.json`` keys ``microscope``, ``hypotheses.z_baseline*`` / ``z_student*`` and ``surrogates``
    are replaced atomically.

    Raises:
        InputError: not a run directory, an incomplete run, missing models or tensors, bad overrides,
            or a world that no longer reproduces the run's test_eval images.
    """
    from igcore.baseline import ImageClassifier
    from igcore.pipeline import make_world_from_config
    from igcore.store import add_files, load_run_dir

    run = load_run_dir(run_dir)
    if not run.complete:
        raise InputError(f"run {run.run_id!r} is not complete (status {run.manifest.get('status')!r}); only finished runs can be recomputed")
    config = run.config
    settings = microscope_settings(config, overrides)
    for needed in ("tensors/test_eval.safetensors", "tensors/concept_bank.safetensors", "models/erm/estimator.json"):
        if not run.has(needed):
            raise InputError(f"run {run.run_id!r} is incomplete: it has no {needed}")
    dev = device or config.get("device", "auto")
    with _quiet_transformers():
        models = {
            p.name: ImageClassifier.load(p, device=dev)
            for p in sorted((run.path / "models").iterdir())
            if (p / "estimator.json").is_file() and p.name in set(settings["models"])
        }
    world = make_world_from_config(config)
    test = world.split("test_eval")
    stored = run.tensors("test_eval")
    if stored["images"].shape != test.images.shape or not np.array_equal(stored["images"], test.images):
        raise InputError(
            f"the world no longer reproduces run {run.run_id!r}'s test_eval images (world code or config changed); "
            "recompute with the code version that made the run"
        )
    bank = run.tensors("concept_bank")
    scores = run.tensors("concept_scores") if run.has("tensors/concept_scores.safetensors") else None
    predictions = {}
    if run.has("tables/predictions.parquet"):
        table = run.table("predictions")
        predictions = {m: table[f"pred_{m}"].to_numpy() for m in models if f"pred_{m}" in table}
    inputs = MicroscopeInputs(
        world=world,
        test_eval=test,
        concept_bank_images=bank["images"],
        concept_bank_concepts=bank["concepts"],
        models=models,
        test_train_images=world.split("test_train").images if settings["surrogates"] and scores is not None else None,
        concept_scores=scores,
        predictions=predictions,
        seed=int(config.get("seed", 0)),
        search_config=config.get("search"),
        device=str(dev),
    )
    with add_files(run, "microscope") as tmp:
        old = run.path / "microscope" / "attributions"
        if old.is_dir():
            shutil.copytree(old, tmp / "attributions", copy_function=_link_or_copy)
        start = time.perf_counter()
        result = run_microscope(inputs, settings, tmp)
        result["info"]["recomputed"] = {"seconds": round(time.perf_counter() - start, 3), "overrides": list(overrides) if not isinstance(overrides, Mapping) else dict(overrides)}
        (tmp / "info.json").write_text(json.dumps(result["info"], indent=2))
    metrics = run.metrics
    for key in [k for k in metrics.get("hypotheses", {}) if k.startswith(tuple(SURROGATE_NAMES.values()))]:
        del metrics["hypotheses"][key]
    metrics.pop("surrogates", None)
    merge_metrics(metrics, result)
    _write_json_atomic(run.path / "metrics.json", metrics)
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
