"""The stages of concept discovery (:mod:`igcore.discover`).

``discover``          after the models it explains, before ``vocabulary``: the components of each model in
                      ``discover.models`` become vocabulary (``discovered::<model>/<k>``), scored on every
                      split; files under ``discover/<model>/``
``discover_effects``  after the student, before the microscope: each component's ablation effect on every
                      model under the microscope, ranked, with how well each model reads it; writes the
                      ``discover`` section of ``metrics.json`` (what each component resembles, its
                      calibration, its effects)

Discovery must precede ``ig`` (discovered concepts are words z* can use once named) while the effects
on the IG student can only follow ``student``, hence two stages.
"""

from __future__ import annotations

import functools
import json
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from igcore.config import Config
from igcore.discover.names import alike, is_named, parse_id, read_names_csv
from igcore.discover.params import DISCOVER_MODELS, FOLDER
from igcore.errors import InputError
from igcore.store import write_tensors
from igcore.worlds.base import World

if TYPE_CHECKING:  # the stage functions import the torch-side modules when they run
    from igcore.context import RunContext
    from igcore.discover.discovery import SourceDiscovery


def check_names(config: Config, world: World) -> None:
    """``discover.names`` must be a readable CSV of known component ids and valid names, before any work."""
    d = config.discover
    if d.names:
        read_names_csv(d.names, tuple(d.models), d.max_k())


def check_vocabulary(config: Config, world: World) -> None:
    """A data set without annotated concepts needs discovery: its discovered concepts are the only vocabulary."""
    if not len(world.vocabulary) and not discovers(config):
        raise InputError("this data set annotates no concept and discovery is off, so there is no concept vocabulary; "
                         "add 0/1 concept columns, or keep discover.models (e.g. [\"erm\"]) without features.backbone")


def discovers(config: Config) -> bool:
    """Discovery runs when ``discover.models`` names a model and the run trains image models (a linear head on
    frozen backbone features has no spatial layer of its own to factorise)."""
    return bool(config.discover.models) and not config.features.backbone


def stage_discover(ctx: RunContext) -> dict[str, Any]:
    """Factorise each model of ``discover.models``; its components become vocabulary (see :mod:`igcore.discover`)."""
    from igcore.discover.discovery import SCORED, discover, grid_splits

    cpu = time.thread_time()  # this stage's own thread: other stages may run beside it (runtime.stages)
    params = ctx.config.discover
    names = read_names_csv(params.names, tuple(params.models), params.max_k()) if params.names else {}
    splits = dict(ctx.data.items())
    scored = (*SCORED, "concept_bank") if params.tcav else SCORED
    found: dict[str, SourceDiscovery] = {}
    info: dict[str, Any] = {}
    for model in params.models:
        read = time.perf_counter()
        grids = {s: activations(ctx, model, splits[s].images, f"{model} {s}") for s in grid_splits(scored)}
        read = time.perf_counter() - read
        d = discover(
            ctx.classifier(model), model, splits, params, vocabulary=ctx.world.vocabulary, backgrounds=ctx.world.backgrounds,
            group_names=ctx.world.group_names(), names=names, seed=ctx.config.seed, scored=scored, grids=grids,
        )
        found[model] = d
        save(d, ctx)
        selection = d.factorization.selection_
        info[model] = {"k": d.k, "layer": d.site.path, "chosen_by": "discover.k" if selection is None else selection.rule,
                       "reconstruction_error": round(d.factorization.reconstruction_error_, 4),
                       "seconds": {"activations": round(read, 3), **{k: round(v, 3) for k, v in d.seconds.items()}}}
        named = [c for c in d.concepts if is_named(c)]
        ctx.note(
            f"discovered {d.k} concepts in {model}'s layer {d.site.path} (discovered::{model}/0-{d.k - 1}); "
            + (f"named: {', '.join(f'{parse_id(c.id)[1]} = {c.text!r}' for c in named)}; " if named else "")  # type: ignore[index]
            + (f"{d.k - len(named)} unnamed (z* uses only named concepts: name them with discover.names or on the Discover page)"
               if len(named) < d.k else "all named")
        )
    stray = sorted(c for c in names if c not in {x.id for d in found.values() for x in d.concepts})
    if stray:
        ctx.note(f"discover.names names component(s) that were not discovered (fewer components): {', '.join(stray)}")
    ctx.discovered = found
    return {**info, "cpu_seconds": round(time.thread_time() - cpu, 3)}  # CPU time of the stage's thread


def activations(ctx: RunContext, model: str, images: Any, desc: str, rows: np.ndarray | None = None) -> np.ndarray:
    """The grid (N, h, w, C) of ``model``'s ``discover.layer`` for ``images[rows]``, read on the run's executor."""
    from igcore.discover.layers import CAPTURE_BATCH, LayerActivations

    work = functools.partial(LayerActivations, ctx.classifier(model), ctx.config.discover.layer)
    return ctx.executor.map_batches(work, images, CAPTURE_BATCH, desc=f"activations {desc}", rows=rows, loading=False)


def save(d: SourceDiscovery, ctx: RunContext) -> None:
    """``discover/<model>/``: ``components`` (basis), ``scores`` (raw and calibrated, per split), ``maps``
    (D′_eval coefficient maps, float16) and ``info.json``."""
    folder = ctx.writer.subdir(f"{FOLDER}/{d.model}")
    write_tensors(folder, "components", {"components": d.factorization.components_})
    write_tensors(folder, "scores", {**{f"score_{s}": v for s, v in d.scores.items()},
                                     **{f"p_{s}": v for s, v in d.probability.items()}})
    write_tensors(folder, "maps", {"test_eval": d.maps.astype(np.float16)})
    (folder / "info.json").write_text(json.dumps(d.info(), indent=2))


def effects_models(config: Config) -> tuple[str, ...]:
    return tuple(config.microscope.models)


def stage_discover_effects(ctx: RunContext) -> dict[str, Any]:
    """Each component's ablation effect on every model under the microscope (:mod:`igcore.discover.importance`)."""
    from igcore.discover.importance import ablation_effects, fit_patterns, resample_maps
    from igcore.discover.layers import resolve_site

    cpu = time.thread_time()  # this stage's own thread: other stages may run beside it (runtime.stages)
    found = ctx.need(ctx.discovered, "discovered")
    test, names = ctx.data.test_eval, ctx.world.group_names()
    n_resamples = ctx.config.microscope.counterfactuals.n_resamples
    section: dict[str, Any] = {}
    rows = []
    info: dict[str, Any] = {}
    for source, d in found.items():
        fit_maps = d.fit_maps[len(d.fit_images["train"]):]  # D′_train's part (see importance: patterns)
        named_alike = alike(d.concepts)  # components given one name are also removed together
        per_model: dict[str, Any] = {}
        seconds: dict[str, dict[str, float]] = {}
        for model in effects_models(ctx.config):
            started = time.perf_counter()
            clf = ctx.classifier(model)
            site = resolve_site(clf.module_, ctx.config.discover.layer)
            if model == source:  # its activations were read by discovery
                fit_grids = d.grids["fit"][len(d.fit_images["train"]):]
            else:  # its D′_eval activations are read by the ablation's own forward pass
                fit_grids = activations(ctx, model, ctx.data.test_train.images, f"{model} test_train", d.fit_images["test_train"])
            read = time.perf_counter()
            patterns = fit_patterns(fit_grids, fit_maps)
            fitted = time.perf_counter()
            ablations = ablation_effects(
                clf, site, patterns, resample_maps(d.maps, fit_grids.shape[1:3]), test.images, test.groups, names,
                seed=ctx.config.seed, n_resamples=n_resamples, together=list(named_alike.values()),
            )
            found_effects = ablations.components
            quality = patterns.fit_quality(ablations.grids, d.maps)
            seconds[model] = {"activations": round(read - started, 3), "patterns": round(fitted - read, 3),
                              "ablation": round(time.perf_counter() - fitted, 3)}
            per_model[model] = {"layer": site.path, "r2": quality["r2"], "share": quality["share"], "effects": found_effects,
                                "together": ablations.together}
            write_tensors(ctx.writer.subdir(f"{FOLDER}/{source}"), f"patterns_{model}",
                          {"patterns": patterns.patterns, "intercept": patterns.intercept, "map_mean": patterns.map_mean})
            for k, e in enumerate(found_effects):
                for group, stat in [("all", e["overall"]), *e["by_group"].items()]:
                    rows.append({"source": source, "component": d.concepts[k].id, "model": model, "group": group, **stat})
        section[source] = components_record(d, per_model, named_alike)
        info[source] = {m: {"r2": round(v["r2"], 3), "top": section[source]["ranking"][m][0], "seconds": seconds[m]}
                        for m, v in per_model.items()}
    columns = ["source", "component", "model", "group", "mean", "ci_low", "ci_high", "n"]
    ctx.writer.table("discover_effects", pd.DataFrame.from_records(rows, columns=columns))
    ctx.write_metrics({"discover": section})
    return {**info, "cpu_seconds": round(time.thread_time() - cpu, 3)}  # CPU time of the stage's thread


def components_record(d: SourceDiscovery, per_model: dict[str, Any], named_alike: dict[str, list[int]]) -> dict[str, Any]:
    """``metrics.json`` ``discover.<source>``: the layer, K, and per component its text, what it resembles,
    its calibration and, for every model, its ablation effect, flip rate, rank and how well the model reads it;
    ``named_alike``: per name that several components share, their ids and, for every model, the effect of removing
    them together."""
    ranking = {m: [d.concepts[k].id for k in np.argsort([e["overall"]["mean"] for e in v["effects"]], kind="stable")]
               for m, v in per_model.items()}
    calibration = d.calibration.to_dict()
    components = []
    for k, concept in enumerate(d.concepts):
        r = d.resemblance[k]
        components.append({
            "id": concept.id, "k": k, "text": concept.text, "named": is_named(concept),
            "present_share": {s: float(d.present(s)[:, k].mean()) for s in d.probability},
            "threshold": calibration[k]["threshold"],
            "resembles": {"concepts": r["concepts"], "backgrounds": r["backgrounds"], "groups": r["groups"],
                          "best_concept": r["best_concept"], "best_background": r["best_background"], "best_group": r["best_group"]},
            "effects": {m: {**v["effects"][k], "rank": ranking[m].index(concept.id) + 1, "share": v["share"][k]}
                        for m, v in per_model.items()},
        })
    selection = d.factorization.selection_
    return {
        "layer": d.site.path, "k": d.k,
        "k_selection": None if selection is None else selection.to_dict(),
        "reconstruction_error": d.factorization.reconstruction_error_,
        "transfer_r2": {m: v["r2"] for m, v in per_model.items()},
        "effect": "mean change in the log-odds of the model's answer on D′_eval when the component is removed from its layer",
        "ranking": ranking,
        "components": components,
        "named_alike": [{"text": text, "components": [d.concepts[k].id for k in members],
                         "effects": {m: v["together"][i] for m, v in per_model.items()}}
                        for i, (text, members) in enumerate(named_alike.items())],
    }


__all__ = ["DISCOVER_MODELS", "FOLDER", "check_names", "check_vocabulary", "discovers", "effects_models", "stage_discover", "stage_discover_effects"]
