"""Running the whole microscope on in-memory inputs, one part per function.

:func:`run_microscope` runs the parts (in two lanes side by side when ``MicroscopeInputs.parallel`` > 1) and
writes ``microscope/`` (tables, tensors, the attribution cache) into a directory; the pipeline stage (:mod:`igcore.stages.microscope`) feeds it
from a live run, :func:`igcore.microscope.recompute.recompute` from a stored run.

Layout of ``microscope/``::

    attributions/<model>/<method>-<key>/part-*.safetensors   cached maps (see attribution.py)
    tables/relevance.parquet           per image: model, method, index, group, target, relevance_mass, mask_area
    tables/relevance_summary.parquet   mean per (model, method, group) and over all groups
    tables/tcav.parquet                TCAV records (all TCAV models)
    tables/swaps.parquet               flip rate / accuracy per (model, from, to background)
    tables/effects.parquet             counterfactual effects per (model, swap kind, group): mean, ci_low, ci_high, n
    tables/surrogate_disagreements.parquet  D′_eval images where a surrogate and its model disagree
    tables/sanity.parquet              Spearman per (model, method, cascade stage)
    tensors/sample.safetensors         test_eval indices that have maps
    tensors/swaps.safetensors          a few swapped images + predictions
    tensors/counterfactuals.safetensors  a few examples: original, background, object and double swap
    tensors/sanity_<model>.safetensors maps through the randomisation cascade (float16)
    info.json                          settings, timings (per part; part_timings per model, method and step), what was skipped and why
"""

from __future__ import annotations

import contextvars
import copy
import functools
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import torch

from igcore.architectures import architecture_of
from igcore.baseline import LOGITS_BATCH, BatchLogits
from igcore.executors import Executor, LocalExecutor
from igcore.methods import SURROGATES
from igcore.microscope.attribution import AttributionCache, maps_for
from igcore.microscope.counterfactuals import Counterfactuals, mean_ci
from igcore.microscope.params import MicroscopeConfig
from igcore.microscope.plan import (
    LANES,
    PARTS,
    Budget,
    ModelCost,
    Plan,
    Workload,
    expired,
    half_width,
    make_plan,
    measure_cost,
    stratified_rounds,
)
from igcore.microscope.registry import get_method
from igcore.microscope.relevance import relevance_rows, summarise_relevance
from igcore.microscope.swaps import background_swaps, sample_per_group
from igcore.search.params import SearchConfig
from igcore.store import write_table, write_tensors
from igcore.worlds.base import Split, Vocabulary, World

T = TypeVar("T")


@dataclass
class MicroscopeInputs:
    """Everything the microscope reads (from a live pipeline run or a stored run)."""

    world: World
    test_eval: Split
    concept_bank_images: np.ndarray
    concept_bank_concepts: np.ndarray
    models: dict[str, Any]  # name -> ImageClassifier
    test_train_images: np.ndarray | None = None
    concept_scores: dict[str, np.ndarray] | None = None  # split -> (N, K); test_train and test_eval are read
    predictions: dict[str, np.ndarray] = field(default_factory=dict)  # model -> test_eval predictions
    seed: int = 0
    search: SearchConfig | None = None  # the run's search settings (surrogates use the same search)
    device: str = "auto"
    #: the concepts the surrogates speak when they are not the world's (z*'s language: annotated and named
    #: discovered concepts, igcore.discover); the columns of ``concept_scores`` and of ``test_eval_concepts``
    vocabulary: Vocabulary | None = None
    #: 0/1 (N, K) over ``vocabulary`` of D′_eval (annotations, then discovered presence); None: the world's
    test_eval_concepts: np.ndarray | None = None
    #: ids of ``concept_bank_concepts``' columns (the concepts TCAV tests); None: the world's vocabulary
    tcav_concepts: list[str] | None = None
    #: where the per-image work runs (attribution maps, the log-odds of counterfactual images): the run's executor
    executor: Executor = field(default_factory=lambda: LocalExecutor(progress=False))
    #: the cores' worth of threads the microscope may keep busy (the run's ``runtime.stages``): above 1, its two lanes
    #: (:func:`run_microscope`) and, within a part, every model run side by side (:func:`each_model`); 1: one
    #: thing at a time
    parallel: int = 1

    @property
    def concepts(self) -> Vocabulary:
        return self.vocabulary if self.vocabulary is not None else self.world.vocabulary

    @property
    def present(self) -> np.ndarray:
        return self.test_eval_concepts if self.test_eval_concepts is not None else self.test_eval.concepts

    def predictions_of(self, name: str) -> np.ndarray:
        if name not in self.predictions:
            self.predictions[name] = self.models[name].predict(self.test_eval.images)
        return self.predictions[name]


@dataclass
class MicroscopeResult:
    """What the microscope found, as the metrics keys it owns (``microscope``, ``surrogates``, surrogate hypotheses)."""

    per_model: dict[str, dict[str, Any]]
    hypotheses: dict[str, Any]
    surrogates: dict[str, Any]
    info: dict[str, Any]
    clause_deletion: dict[str, Any] = field(default_factory=dict)

    def metrics_values(self) -> dict[str, Any]:
        """``{metrics key: value}`` for :meth:`igcore.context.RunContext.write_metrics`."""
        values: dict[str, Any] = {"microscope": self.per_model, "surrogates": self.surrogates}
        values.update({f"hypotheses.{k}": v for k, v in self.hypotheses.items()})
        values.update({f"clause_deletion.{k}": v for k, v in self.clause_deletion.items()})
        return values


class _Clock:
    """Wall-clock seconds per part, from its own start to its own end (parts run side by side: :func:`run_microscope`),
    and per section of a part (``parts``: ``attributions/erm/occlusion``, ``effects/oracle/log_odds``, ...)."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.parts: dict[str, float] = {}
        self._lock = threading.Lock()

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Record the block's wall seconds as part ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            with self._lock:
                self.wall[name] = time.perf_counter() - start

    @contextmanager
    def part(self, *name: str) -> Iterator[None]:
        """Add the block's wall seconds to the section ``/``-joined ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            key = "/".join(name)
            with self._lock:
                self.parts[key] = self.parts.get(key, 0.0) + time.perf_counter() - start


def each_model(inputs: MicroscopeInputs, models: list[str], work: Callable[[str], T]) -> list[T]:
    """``work(m)`` for every model, the results in the order of ``models``: all models at once, each in its own
    thread, when ``inputs.parallel`` > 1, else one after the other.

    Each model's work reads only that model and writes only its own entries and files, and draws its randomness
    from its own seeds (the process-wide generators behind :func:`igcore.runtime.global_rng`), so running models
    side by side changes no number; torch's kernels release the GIL, so two models use two cores. Every model gets
    its own thread, even beyond ``inputs.parallel``: with the models split over fewer threads, the last model would
    run alone and leave a core idle at the end of every part. The intra-op threads the microscope may use
    (``inputs.parallel`` × the caller's) are shared among them, at least one each: one-thread workers share a core
    by turns at no cost, while several multi-threaded pools on the same cores wait on each other
    (docs/PERFORMANCE.md, thread policy)."""
    threads = torch.get_num_threads()  # a per-thread setting in torch: the pool's threads take what is given here
    per_model = max(1, threads * inputs.parallel // max(len(models), inputs.parallel)) if inputs.parallel > 1 else threads
    return side_by_side([functools.partial(_with_threads, per_model, work, m) for m in models], inputs.parallel > 1, "microscope")


def _with_threads(threads: int, work: Callable[..., T], *args: Any) -> T:
    torch.set_num_threads(threads)
    return work(*args)


def side_by_side(calls: list[Callable[[], T]], at_once: bool, name: str = "microscope") -> list[T]:
    """Every call, the results in order: with ``at_once`` all at once, each in its own thread with the caller's context
    variables (its count of images; the first exception raised once every call has ended), else one after the other."""
    if not at_once:
        return [call() for call in calls]
    contexts = [contextvars.copy_context() for _ in calls]
    with ThreadPoolExecutor(max_workers=max(1, len(calls)), thread_name_prefix=name) as pool:
        return list(pool.map(lambda context, call: context.run(call), contexts, calls))


def _num(x: Any) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def _out_of_time(per_model: dict[str, dict[str, Any]], model: str, part: str, what: str, settings: MicroscopeConfig) -> None:
    """Record in the model's ``unavailable`` that the time budget ran out before ``what`` of ``part``."""
    per_model[model].setdefault("unavailable", {})[part] = (
        f"the microscope's time budget (microscope.budget_s = {settings.budget_s:g} s) ran out before {what}; "
        "raise microscope.budget_s or set it to null"
    )


def _applicable_methods(settings: MicroscopeConfig, classifier: Any) -> list[str]:
    arch = architecture_of(classifier.module_)
    return [m for m in settings.methods if get_method(m).applies_to(arch)]


# ------------------------------------------------------------------------------------------------ parts


def attributions(
    inputs: MicroscopeInputs, settings: MicroscopeConfig, models: list[str], sample: np.ndarray, out_dir: Path,
    per_model: dict[str, dict[str, Any]], deadline: float | None = None, clock: _Clock | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Attribution maps on a per-group sample and the share of relevance inside the object mask; (model,
    method) pairs left when ``deadline`` has passed are skipped.

    Returns the maps per model and method (reused by the sanity checks).
    """
    test, group_names, clock = inputs.test_eval, inputs.world.group_names(), clock or _Clock()
    cache = AttributionCache(out_dir / "attributions")

    def of_model(m: str) -> tuple[dict[str, np.ndarray], list[pd.DataFrame]]:
        clf = inputs.models[m]
        methods = _applicable_methods(settings, clf)
        found: dict[str, np.ndarray] = {}
        rows = []
        for i, method in enumerate(methods):
            if expired(deadline):
                _out_of_time(per_model, m, "attributions", f"the maps of {', '.join(methods[i:])}", settings)
                break
            with clock.part("attributions", m, method):
                result = maps_for(
                    cache, m, clf, test.images, sample, method, settings.params.get(method, {}),
                    batch_size=settings.batch_size, seed=inputs.seed, executor=inputs.executor,
                )
            found[method] = result.maps
            if test.masks is not None:
                rows.append(relevance_rows(m, method, sample, result.maps, test.masks[sample], test.groups[sample], group_names, result.targets))
        return found, rows

    done = each_model(inputs, models, of_model)
    maps = {m: found for m, (found, _) in zip(models, done, strict=True)}
    rows = [row for _, model_rows in done for row in model_rows]
    if test.masks is None:
        return maps
    empty = relevance_rows("", "", sample[:0], np.zeros((0, 1, 1)), np.zeros((0, 1, 1), bool), sample[:0], group_names)
    per_image = pd.concat(rows, ignore_index=True) if rows else empty
    summary = summarise_relevance(per_image)
    write_table(out_dir, "relevance", per_image)
    write_table(out_dir, "relevance_summary", summary)
    mask_share = float(test.masks[sample].mean()) if len(sample) else float("nan")
    for m in models:
        mine = summary[summary["model"] == m]
        overall = mine[mine["group"] == "all"]
        per_model[m]["relevance_on_animal"] = {r.method: _num(r.relevance_mass) for r in overall.itertuples()}
        per_model[m]["relevance_on_animal_by_group"] = {
            method: {r.group: _num(r.relevance_mass) for r in g.itertuples() if r.group != "all"}
            for method, g in mine.groupby("method", sort=False)
        }
        per_model[m]["mask_area_share"] = mask_share
    return maps


def logits_on_executor(inputs: MicroscopeInputs, clf: Any) -> Callable[[Any, np.ndarray | None], np.ndarray]:
    """``fn(images, rows)``: the classifier's logits of ``images[rows]``, batch by batch on the run's executor."""
    work = functools.partial(BatchLogits, clf)
    return lambda images, rows: inputs.executor.map_batches(work, images, LOGITS_BATCH, desc="log-odds", rows=rows, loading=False)


@dataclass
class SharedSwaps:
    """Every D′ image re-rendered on every other background, and each model's logits of them: the background
    swaps and the counterfactual effects ask for the same images when both take all of D′, so they are drawn
    and read once (:func:`shared_swaps`)."""

    background: Counterfactuals  # counterfactuals.rerendered of every D′ row
    logits: dict[str, np.ndarray]


def shares_swaps(inputs: MicroscopeInputs, settings: MicroscopeConfig, plan: Plan, skipped: dict[str, str]) -> bool:
    """Whether the background swaps and the effects ask for the same re-rendered images (both take every D′
    image of a world that draws them, and every model answers with the argmax of its logits)."""
    n = len(inputs.test_eval)
    return (inputs.world.can_render and "swaps" not in skipped and "effects" not in skipped and plan.all_effects
            and all(k is None or k >= n for k in (settings.swaps.max_images, settings.counterfactuals.max_images))
            and not any(getattr(inputs.models[m], "multi_label", False) for m in settings.models))


def shared_swaps(inputs: MicroscopeInputs, models: list[str]) -> SharedSwaps:
    """Draw the :class:`SharedSwaps` of ``inputs`` (all of D′) and read them with every model."""
    from igcore.microscope.counterfactuals import rerendered

    test = inputs.test_eval
    background = rerendered(inputs.world, test, np.arange(len(test)))
    logits = each_model(inputs, models, lambda m: logits_on_executor(inputs, inputs.models[m])(background.images, None))
    return SharedSwaps(background, dict(zip(models, logits, strict=True)))


def swaps(
    inputs: MicroscopeInputs, settings: MicroscopeConfig, models: list[str], out_dir: Path, per_model: dict[str, dict[str, Any]],
    shared: SharedSwaps | None = None,
) -> None:
    """Background swaps: flip rate and accuracy when every object is moved to every other background
    (``shared``: the swapped images and logits, when the effects read the same ones)."""
    test, n_groups = inputs.test_eval, len(inputs.world.group_names())
    max_images = settings.swaps.max_images
    indices = None
    if max_images is not None and max_images < len(test):
        indices = sample_per_group(test.groups, max(1, max_images // max(1, n_groups)), inputs.seed + 1)
    result = background_swaps(
        inputs.world, test, {m: inputs.models[m] for m in models},
        original_predictions={m: inputs.predictions_of(m) for m in models},
        indices=indices, keep_per_group=settings.swaps.keep_per_group, seed=inputs.seed,
        rendered=None if shared is None else shared.background,
        # the classifier's answer from its logits, as ImageClassifier.predict gives it
        swapped_predictions=None if shared is None else {m: inputs.models[m].proba(shared.logits[m]).argmax(1) for m in models},
    )
    write_table(out_dir, "swaps", result.table)
    if result.sample:
        write_tensors(out_dir, "swaps", result.sample)
    for m in models:
        per_model[m].update({k: result.metrics[m][k] for k in ("swap_flip_rate", "swap_acc")})
        per_model[m]["swap_n"] = result.metrics[m]["n_swaps"]


def sanity(
    inputs: MicroscopeInputs, settings: MicroscopeConfig, models: list[str], sample: np.ndarray,
    trained_maps: dict[str, dict[str, np.ndarray]], out_dir: Path, per_model: dict[str, dict[str, Any]],
    deadline: float | None = None, clock: _Clock | None = None,
) -> None:
    """Cascading-randomisation sanity checks (Adebayo et al., 2018) of every method's maps, per model and method
    ((model, method) pairs left when ``deadline`` has passed are skipped; the cascade re-draws the same weights
    for every method, so checking methods one by one changes nothing)."""
    from igcore.microscope.sanity import sanity_check

    test, n_groups, clock = inputs.test_eval, len(inputs.world.group_names()), clock or _Clock()

    def of_model(m: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        clf = inputs.models[m]
        methods = _applicable_methods(settings, clf)
        n = settings.sanity.n_images
        # a subset of the attribution sample (spread over the groups), so the trained maps are reused
        pos = sample_per_group(test.groups[sample], max(1, -(-n // n_groups)), inputs.seed + 2)[:n]
        pick = sample[pos]
        targets = clf.predict(test.images[pick])
        results, maps = {}, {}
        for i, method in enumerate(methods):
            if expired(deadline):
                _out_of_time(per_model, m, "sanity", f"the sanity check of {', '.join(methods[i:])}", settings)
                break
            with clock.part("sanity", m, method):
                found, series = sanity_check(
                    clf.module_, test.images[pick], targets, {method: settings.params.get(method, {})},
                    threshold=settings.sanity.threshold, batch_size=settings.batch_size, device=clf.device_, seed=inputs.seed,
                    trained_maps={k: v[pos] for k, v in trained_maps[m].items() if k == method},
                )
            results.update(found)
            maps.update(series)
        if not results:
            return rows
        per_model[m]["sanity"] = results
        for method, r in results.items():
            for stage_name, rho, rho_raw in zip(r["stages"], r["spearman_abs"], r["spearman"], strict=True):
                rows.append({"model": m, "method": method, "stage": stage_name, "spearman_abs": rho, "spearman": rho_raw,
                             "trustworthy": r["trustworthy"]})
        write_tensors(
            out_dir, f"sanity_{m}",
            {"indices": pick.astype(np.int64), "targets": targets.astype(np.int64),
             **{f"maps_{k}": v.astype(np.float16) for k, v in maps.items()}},
        )
        return rows

    checked = [m for m in (settings.sanity.models or models) if m in models]
    rows = [row for model_rows in each_model(inputs, checked, of_model) for row in model_rows]
    columns = ["model", "method", "stage", "spearman_abs", "spearman", "trustworthy"]
    write_table(out_dir, "sanity", pd.DataFrame.from_records(rows, columns=columns))


def tcav_inputs(images: np.ndarray, labels: np.ndarray, classes: list[str], n_inputs: int, seed: int) -> dict[str, np.ndarray]:
    """The test_eval images per class whose predictions TCAV tests (``n_inputs`` per class, drawn with ``seed + 3``)."""
    rng = np.random.default_rng(seed + 3)
    by_class = {}
    for c, name in enumerate(classes):
        rows_c = np.flatnonzero(labels == c)
        by_class[name] = images[np.sort(rng.choice(rows_c, size=min(n_inputs, len(rows_c)), replace=False))]
    return by_class


def tcav(
    inputs: MicroscopeInputs, settings: MicroscopeConfig, models: list[str], out_dir: Path, per_model: dict[str, dict[str, Any]],
    deadline: float | None = None, clock: _Clock | None = None,
) -> None:
    """TCAV (Kim et al., 2018) of every concept of the concept bank (``inputs.tcav_concepts``: the annotated ones,
    and the discovered ones with ``discover.tcav``), per class and layer, with significance (models left when
    ``deadline`` has passed are skipped)."""
    from igcore.microscope.tcav import tcav_repeated

    t, classes, clock = settings.tcav, list(inputs.world.classes), clock or _Clock()
    rows = []
    by_class = tcav_inputs(inputs.test_eval.images, inputs.test_eval.labels, classes, t.n_inputs, inputs.seed)
    for m in [m for m in t.models if m in models]:
        if expired(deadline):
            _out_of_time(per_model, m, "tcav", "this model's TCAV", settings)
            continue
        clf = inputs.models[m]
        with clock.part("tcav", m):
            records, controls = tcav_repeated(
                clf.module_, inputs.concept_bank_images, inputs.concept_bank_concepts,
                inputs.tcav_concepts or inputs.world.vocabulary.ids, by_class,
                t.layers, classes=classes, n_random=t.n_random, n_concept_images=t.n_concept_images,
                alpha=t.alpha, correction=t.correction, seed=inputs.seed, device=clf.device_,
                n_controls=t.n_controls, repeats=t.repeats,
            )
        per_model[m]["tcav"] = records
        per_model[m]["tcav_controls"] = controls
        rows += [{"model": m, **r} for r in records]
    write_table(out_dir, "tcav", pd.DataFrame.from_records(rows))


def counterfactual_effects(
    inputs: MicroscopeInputs, settings: MicroscopeConfig, models: list[str], out_dir: Path, per_model: dict[str, dict[str, Any]],
    all_images: bool = True, deadline: float | None = None, shared: SharedSwaps | None = None, clock: _Clock | None = None,
) -> None:
    """Background and object swaps: each model's change in the log-odds of its answer, with bootstrap CIs,
    and the integrated-gradients attribution of a double swap (:mod:`igcore.microscope.counterfactuals`).

    With ``all_images`` every D′ image asked for is swapped at once; otherwise in stratified rounds
    (:func:`~igcore.microscope.plan.stratified_rounds`) until every effect's 95% half-width is below
    ``counterfactuals.half_width`` or ``deadline`` passes. Each model's ``precision`` records what was reached.
    ``shared``: the background swaps of every D′ image and their logits, already drawn and read (:func:`shared_swaps`).
    """
    from igcore.microscope.counterfactuals import (
        Changes,
        SwapIntegratedGradients,
        log_odds_changes,
        make_counterfactuals,
        summarise_changes,
        swap_attribution,
        swap_pairs,
    )

    def logits_of(m: str) -> Callable[[Any, np.ndarray | None], np.ndarray]:
        """The model's logits of ``images[rows]`` on the run's executor (the shared swaps' are read already)."""
        compute = logits_on_executor(inputs, inputs.models[m])
        if shared is None:
            return compute
        return lambda images, rows: shared.logits[m] if images is shared.background.images and rows is None else compute(images, rows)

    c, test, names, clock = settings.counterfactuals, inputs.test_eval, inputs.world.group_names(), clock or _Clock()
    rows = np.arange(len(test))
    if c.max_images is not None and c.max_images < len(test):
        rows = sample_per_group(test.groups, max(1, c.max_images // len(names)), inputs.seed + 4)
    rounds = [rows] if all_images else stratified_rounds(test.groups, rows, seed=inputs.seed + 4)
    found: dict[str, dict[str, list[Changes]]] = {m: {} for m in models}
    first: dict[str, Any] = {}
    per_row = 0.0  # seconds one D′ row took in the last round (swaps, inpainting and every model's passes)
    for r, chunk in enumerate(rounds):
        if r and deadline is not None and time.perf_counter() + per_row * len(chunk) > deadline:
            break  # the next round would not end in time
        started = time.perf_counter()
        with clock.part("effects", "counterfactual_images"):
            cfs = make_counterfactuals(inputs.world, test, chunk, seed=inputs.seed + 4 + r,
                                       background=shared.background if shared is not None and all_images else None)
        first = first or cfs

        def changes_of(m: str, chunk: np.ndarray = chunk, cfs: dict[str, Counterfactuals] = cfs) -> dict[str, Changes]:
            logits = logits_of(m)
            original = None
            with clock.part("effects", m, "log_odds"):
                if not all_images:  # the logits of this round's rows only
                    original = np.zeros((len(test), len(inputs.world.classes)))
                    original[chunk] = logits(test.images, chunk)
                return log_odds_changes(inputs.models[m], test, cfs, original, logits)

        for m, changes in zip(models, each_model(inputs, models, changes_of), strict=True):
            for kind, ch in changes.items():
                found[m].setdefault(kind, []).append(ch)
        per_row = (time.perf_counter() - started) / max(1, len(chunk))
        if all_images or expired(deadline):
            break
        widths = [half_width(mean_ci(Changes.concat(parts).change, inputs.seed, c.n_resamples)) for m in models for parts in found[m].values()]
        if max(widths, default=0.0) < c.half_width:
            break
    attributed = np.zeros(0, dtype=np.int64)
    if "double" in first and c.attribution_per_group:
        attributed = sample_per_group(test.groups[first["double"].index], c.attribution_per_group, inputs.seed + 5)

    def summarise(m: str) -> list[dict[str, Any]]:
        records = []
        clf = inputs.models[m]
        with clock.part("effects", m, "bootstrap"):
            summary = summarise_changes({kind: Changes.concat(parts) for kind, parts in found[m].items()}, test, names, seed=inputs.seed,
                                        n_resamples=c.n_resamples)
        per_model[m]["effects"] = summary
        for kind, e in summary.items():
            for group, stat in [("all", e["overall"]), *e["by_group"].items()]:
                records.append({"model": m, "kind": kind, "group": group, **stat})
        if len(attributed):
            with clock.part("effects", m, "swap_attribution"):
                work = functools.partial(SwapIntegratedGradients, clf, c.n_steps, settings.batch_size)
                maps = inputs.executor.map_batches(work, swap_pairs(test, first["double"], attributed), settings.batch_size,
                                                   desc="swap attribution", loading=False)
                per_model[m]["swap_attribution"] = swap_attribution(
                    clf, test, first["double"], attributed, n_steps=c.n_steps, seed=inputs.seed, group_names=names, attributed=maps,
                    n_resamples=c.n_resamples,
                )
        parts = {k: v for k, v in (per_model[m].get("swap_attribution") or {}).items() if k in ("background_log_odds", "object_log_odds")}
        per_model[m]["precision"] = {
            "effects_half_width": {kind: _num(half_width(e["overall"])) for kind, e in summary.items()},
            "effects_images": max((e["overall"]["n"] for e in summary.values()), default=0),
            "effects_all_images": all_images,
            "target_half_width": None if all_images else c.half_width,
            "rounds": r + 1 if rounds else 0,
            "swap_attribution_steps": c.n_steps if len(attributed) else None,
            "swap_attribution_half_width": {k: _num(half_width(v)) for k, v in parts.items()},
        }
        return records

    records = [record for model_records in each_model(inputs, models, summarise) for record in model_records]
    write_table(out_dir, "effects", pd.DataFrame.from_records(records, columns=["model", "kind", "group", "mean", "ci_low", "ci_high", "n"]))
    if c.examples_per_group and "double" in first:  # a strip of examples: original, background, object, double swap
        double = first["double"]
        keep = sample_per_group(test.groups[double.index], c.examples_per_group, inputs.seed + 6)
        strip = {"index": double.index[keep], "original": test.images[double.index[keep]], "double": double.images[keep]}
        for kind in ("background", "object"):
            cf = first.get(kind)
            if cf is not None:
                index = {int(i): j for j, i in reversed(list(enumerate(cf.index)))}
                strip[kind] = cf.images[[index[int(i)] for i in double.index[keep]]]
        write_tensors(out_dir, "counterfactuals", strip)


def surrogates(
    inputs: MicroscopeInputs, settings: MicroscopeConfig, models: list[str], out_dir: Path, clock: _Clock | None = None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Surrogate hypotheses (``z_baseline``, ``z_student``) fitted to each model's own answers on D′, their
    fidelity with a Wilson interval, the D′ images where surrogate and model disagree
    (``tables/surrogate_disagreements``) and the clause-deletion test of each surrogate."""
    from igcore.likelihood import clause_deletion
    from igcore.microscope.surrogate import fit_surrogate

    scores, clock = inputs.concept_scores, clock or _Clock()
    if scores is None or inputs.test_train_images is None:
        raise ValueError("surrogates need the concept scores and the test_train images")
    fit_rows = np.arange(len(inputs.test_train_images))
    if settings.surrogate_max_images is not None and settings.surrogate_max_images < len(fit_rows):
        fit_rows = np.sort(np.random.default_rng(inputs.seed + 7).choice(fit_rows, settings.surrogate_max_images, replace=False))

    def of_model(m: str) -> tuple[Any, dict[str, Any]]:
        with clock.part("surrogates", m, "predict_test_train"):
            answers = inputs.models[m].predict(inputs.test_train_images[fit_rows])
        with clock.part("surrogates", m, "fit"):
            s = fit_surrogate(
                SURROGATES[m], m, scores["test_train"][fit_rows], answers,
                scores["test_eval"], inputs.predictions_of(m), inputs.concepts, list(inputs.world.classes),
                eval_labels=inputs.test_eval.labels, search_config=inputs.search, device=inputs.device, l1=settings.surrogate_l1,
            )
        with clock.part("surrogates", m, "clause_deletion"):
            deletion = clause_deletion(s.hypothesis, scores["test_eval"], inputs.present, inputs.concepts, list(inputs.world.classes))
        return s, deletion

    hypotheses: dict[str, Any] = {}
    summaries: dict[str, Any] = {}
    deletion: dict[str, Any] = {}
    rows = []
    fitted = [m for m in SURROGATES if m in models]
    for m, (s, deleted) in zip(fitted, each_model(inputs, fitted, of_model), strict=True):
        key = SURROGATES[m]
        hypotheses[key] = s.records
        hypotheses[f"{key}_text"] = s.text
        summaries[key] = s.summary()
        deletion[key] = deleted
        model_pred = inputs.predictions_of(m)
        rows += [{"surrogate": key, "model": m, "index": int(i), "label": int(inputs.test_eval.labels[i]),
                  "model_pred": int(model_pred[i]), "surrogate_pred": int(s.surrogate_predictions[i]),
                  "group": int(inputs.test_eval.groups[i])} for i in s.disagreements]
    columns = ["surrogate", "model", "index", "label", "model_pred", "surrogate_pred", "group"]
    write_table(out_dir, "surrogate_disagreements", pd.DataFrame.from_records(rows, columns=columns))
    return hypotheses, summaries, deletion


# --------------------------------------------------------------------------------------------- the run


def unavailable_parts(inputs: MicroscopeInputs) -> dict[str, str]:
    """Parts of the microscope this data cannot support, each with the reason shown to people."""
    skipped: dict[str, str] = {}
    if inputs.test_eval.masks is None:
        skipped["relevance_on_animal"] = (
            "this data set has no object masks, so relevance inside the object cannot be measured "
            "(give masks: CUB segmentations for waterbirds, a mask column for folder)"
        )
    if not inputs.world.can_render:
        skipped["swaps"] = (
            "swaps onto every background need a world that re-draws its objects; for photographs the "
            "counterfactual effects paste the object onto inpainted images instead"
        )
    if inputs.test_eval.masks is None and not inputs.world.can_render:
        skipped["effects"] = (
            "counterfactual swaps need object masks (to cut the object out and inpaint the background) or a "
            "world that re-draws its objects; this data set has neither"
        )
    return skipped


def check_layers(inputs: MicroscopeInputs, settings: MicroscopeConfig) -> None:
    """Fail fast on a TCAV layer name that does not exist in a model."""
    from igcore.microscope.tcav import resolve_layer

    for m in [m for m in settings.tcav.models if m in inputs.models]:
        for layer in settings.tcav.layers:
            resolve_layer(inputs.models[m].module_, layer)


def workload(inputs: MicroscopeInputs, settings: MicroscopeConfig) -> Workload:
    """The :class:`~igcore.microscope.plan.Workload` of ``inputs`` for ``settings``."""
    from igcore.microscope.sanity import cascade_blocks

    test, world = inputs.test_eval, inputs.world
    models = {m: inputs.models[m].module_ for m in settings.models}
    return Workload(
        side=int(test.images.shape[1]),
        n_groups=len(world.group_names()),
        n_test=len(test),
        n_test_train=len(inputs.test_train_images) if inputs.test_train_images is not None else 0,
        n_bank=len(inputs.concept_bank_images),
        n_concepts=len(world.vocabulary.ids),
        n_classes=len(world.classes),
        n_backgrounds=len(world.backgrounds) if world.can_render else 0,
        has_masks=test.masks is not None,
        architectures={m: architecture_of(module) for m, module in models.items()},
        cascade_steps={m: len(cascade_blocks(module)) for m, module in models.items()},
    )


def plan_microscope(inputs: MicroscopeInputs, settings: MicroscopeConfig) -> Plan:
    """The :class:`~igcore.microscope.plan.Plan` of this run: the models' costs are measured only when there is a budget."""
    work = workload(inputs, settings)
    costs: dict[str, ModelCost] = {}
    if settings.budget_s is not None:
        measured: dict[tuple[Any, ...], ModelCost] = {}  # models of one shape (heads on one backbone) cost the same
        for m in settings.models:
            module = inputs.models[m].module_
            shape = (type(module.model).__name__, str(inputs.models[m].device_),
                     tuple((name, tuple(p.shape)) for name, p in module.named_parameters()))
            if shape not in measured:
                measured[shape] = measure_cost(module, work.side, inputs.models[m].device_)
            costs[m] = measured[shape]
    return make_plan(settings, work, costs)


def run_microscope(inputs: MicroscopeInputs, settings: MicroscopeConfig, out_dir: str | Path) -> MicroscopeResult:
    """Run every microscope part on ``settings.models`` and write ``out_dir`` (the run's ``microscope/``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    missing = [m for m in settings.models if m not in inputs.models]
    if missing:
        raise ValueError(f"the microscope was given no model {', '.join(missing)}")
    models = list(settings.models)
    check_layers(inputs, settings)
    clock = _Clock()
    per_model: dict[str, dict[str, Any]] = {m: {} for m in models}
    skipped = unavailable_parts(inputs)
    start = time.perf_counter()
    with clock.timed("plan"):
        plan = plan_microscope(inputs, settings)
    at_once = inputs.parallel > 1
    settings, budget = plan.settings, Budget(plan, LANES if at_once else (PARTS,), start=start)

    def first_lane() -> None:
        """Swaps, TCAV, then the counterfactual effects."""
        with clock.timed("swaps"):
            budget.deadline("swaps")
            shared = None
            if shares_swaps(inputs, settings, plan, skipped):
                with clock.part("swaps", "rerender_and_logits"):  # read again by the effects
                    shared = shared_swaps(inputs, models)
            if "swaps" not in skipped:
                swaps(inputs, settings, models, out_dir, per_model, shared)
        with clock.timed("tcav"):
            tcav(inputs, settings, models, out_dir, per_model, budget.deadline("tcav"), clock)
        with clock.timed("effects"):
            deadline = budget.deadline("effects")
            if "effects" not in skipped:
                counterfactual_effects(inputs, settings, models, out_dir, per_model, plan.all_effects, deadline, shared, clock)

    # The second lane's own copy of each model (captum's hooks and a module's state are the module's, and the first
    # lane hooks the same models at the same time, as RunContext.classifier gives each stage its own), made before
    # either lane starts: a copy taken while the other lane's hooks are on a module would carry them along. One lane
    # after the other need no copies.
    own = replace(inputs, models={m: copy.deepcopy(inputs.models[m]) for m in models}) if at_once else inputs

    def second_lane() -> tuple[np.ndarray, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
        """The surrogates, the attribution maps and their sanity checks, on the lane's own copies of the models."""
        with clock.timed("surrogates"):
            budget.deadline("surrogates")
            analyses = surrogates(own, settings, models, out_dir, clock) if settings.surrogates else ({}, {}, {})
        sample = sample_per_group(inputs.test_eval.groups, settings.per_group, inputs.seed)
        write_tensors(out_dir, "sample", {"indices": sample.astype(np.int64)})
        with clock.timed("attributions"):
            trained_maps = attributions(own, settings, models, sample, out_dir, per_model, budget.deadline("attributions"), clock)
        with clock.timed("sanity"):
            sanity(own, settings, models, sample, trained_maps, out_dir, per_model, budget.deadline("sanity"), clock)
        return sample, analyses

    # The lanes of plan.LANES side by side, each drawing its own seeded randomness, so running them at once changes
    # no number: the counterfactual images' drawing, one model's TCAV and the last model of a part no longer leave
    # a core idle. In each lane the parts that cannot stop half-way run first, so the ones that can (effects,
    # attribution and sanity pairs) absorb what the estimates got wrong.
    threads = torch.get_num_threads()
    _, (sample, (hypotheses, summaries, deletion)) = side_by_side(
        [functools.partial(_with_threads, threads, first_lane), functools.partial(_with_threads, threads, second_lane)],
        at_once, "microscope-lane")

    info = {
        "settings": settings.model_dump(mode="json"),
        "seed": inputs.seed,
        "sample_size": int(len(sample)),
        "models": models,
        "timings": {k: round(clock.wall[k], 3) for k in ("plan", *PARTS) if k in clock.wall},  # not in finishing order
        "part_timings": {k: round(v, 3) for k, v in clock.parts.items()},
        "skipped": skipped,
        "budget": {**plan.report(), "spent_s": round(budget.spent(), 3)},
    }
    for m in models:
        per_model[m]["unavailable"] = {**skipped, **per_model[m].get("unavailable", {})}
        per_model[m] = dict(sorted(per_model[m].items()))  # the lanes add their keys in whichever order they finish
    (out_dir / "info.json").write_text(json.dumps(info, indent=2))
    return MicroscopeResult(per_model, hypotheses, summaries, info, deletion)
