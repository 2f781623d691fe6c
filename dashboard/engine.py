"""Thin, cached bridges from the dashboard to igcore's public functions.

The dashboard never re-implements engine logic: likelihoods come from :mod:`igcore.likelihood`,
hypotheses from :mod:`igcore.hypothesis`, attribution maps from :mod:`igcore.microscope`, the prior and
the re-solve from :mod:`igcore.prior` / :mod:`igcore.ig`. Engine parts that are still being written are
imported lazily; when one is missing the caller gets :class:`~dashboard.session.NotComputed`, which the
page shows as "not computed in this run" instead of crashing.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import streamlit as st

from dashboard import data
from dashboard.session import NotComputed


def engine_module(name: str) -> Any:
    """``igcore.<name>``, or :class:`NotComputed` when that engine part does not exist (yet)."""
    try:
        return importlib.import_module(f"igcore.{name}")
    except ModuleNotFoundError as e:
        if e.name and (e.name == f"igcore.{name}" or e.name.startswith(f"igcore.{name}.")):
            raise NotComputed(f"The engine part `igcore/{name.replace('.', '/')}` is not available in this installation.") from None
        raise


def vocabulary(metrics: Mapping[str, Any]) -> Any:
    from igcore.worlds.base import Concept, Vocabulary

    vocab = metrics.get("world", {}).get("vocabulary") or []
    return Vocabulary(tuple(Concept(v["id"], v["text"], v["kind"]) for v in vocab))


def to_hypothesis(record: Mapping[str, Any] | Sequence[Mapping[str, Any]], metrics: Mapping[str, Any]) -> Any:
    """An igcore ``Hypothesis`` from a stored record (a ranked entry, or a bare list of clause records)."""
    hyp = engine_module("hypothesis")
    if isinstance(record, Mapping):
        obj = {"clauses": list(record.get("clauses") or []), "bias": dict(record.get("bias") or {})}
    else:
        obj = {"clauses": list(record), "bias": {}}
    obj["clauses"] = [{k: c[k] for k in ("concept", "class", "weight")} for c in obj["clauses"]]
    return hyp.Hypothesis.from_json(obj, vocabulary(metrics), metrics.get("world", {}).get("classes", []))


def render_text(record: Mapping[str, Any] | Sequence[Mapping[str, Any]], metrics: Mapping[str, Any]) -> str:
    """The engine's own plain-English field guide of a hypothesis (``Hypothesis.render``)."""
    return str(to_hypothesis(record, metrics).render(vocabulary(metrics), metrics.get("world", {}).get("classes", [])))


def _key(record: Any) -> str:
    return json.dumps(record, sort_keys=True, default=str)


def concept_scores(ref: data.RunRef, split: str = "test_eval") -> np.ndarray:
    arrays = data.tensors(ref, "concept_scores")
    if arrays is None or split not in arrays:
        raise NotComputed("The concept model's scores (`tensors/concept_scores`) are not stored in this run.")
    return arrays[split]


def predict_proba(ref: data.RunRef, record: Any, split: str = "test_eval") -> np.ndarray:
    """L_M(· | x, z) on a stored split's concept scores (igcore.likelihood), cached per run and hypothesis."""
    return _predict_proba(ref.root, ref.run_id, ref.stamp, _key(record), split)


@st.cache_data(show_spinner=False, max_entries=256)
def _predict_proba(root: str, run_id: str, stamp: float, record_json: str, split: str) -> np.ndarray:
    ref = data.RunRef(root, run_id, stamp)
    likelihood = engine_module("likelihood")
    metrics = ref.metrics
    scores = concept_scores(ref, split)
    hypothesis = to_hypothesis(json.loads(record_json), metrics)
    return likelihood.predict_proba(scores, hypothesis, vocabulary(metrics), metrics["world"]["classes"])


def attribution_maps(ref: data.RunRef, model: str, method: str, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Attribution maps (N, H, W) and explained classes for test_eval ``indices`` (engine cache first)."""
    return _attribution_maps(ref.root, ref.run_id, ref.stamp, model, method, tuple(int(i) for i in indices))


@st.cache_data(show_spinner="Computing attribution maps…", max_entries=128)
def _attribution_maps(root: str, run_id: str, stamp: float, model: str, method: str, indices: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    ref = data.RunRef(root, run_id, stamp)
    mod = engine_module("microscope")
    fn = getattr(mod, "attribution_maps", None)
    if fn is None:
        fn = engine_module("microscope.attribution").attribution_maps
    out = fn(ref.run(), model, method, list(indices))
    return np.asarray(out.maps, dtype=np.float32), np.asarray(out.targets)


def attribution_methods() -> dict[str, str]:
    """Registered attribution methods and their one-line descriptions (importing the package registers them)."""
    try:
        engine_module("microscope")
        reg = engine_module("microscope.registry")
    except NotComputed:
        return {}
    return {n: m.description for n, m in reg.ATTRIBUTIONS.items()}


# ---------------------------------------------------------------------------------------------- prior
def judgments_path(root: str) -> str:
    """The judgments database lives in RUNS_DIR, shared by every run of this dashboard."""
    from pathlib import Path

    return str(Path(root) / "judgments.sqlite")


def judgments_store(root: str, metrics: Mapping[str, Any]) -> Any:
    vocab = metrics.get("world", {}).get("vocabulary") or []
    classes = tuple(metrics.get("world", {}).get("classes", []))
    return _judgments_store(judgments_path(root), json.dumps(vocab, sort_keys=True), classes)


@st.cache_resource(show_spinner=False, max_entries=8)
def _judgments_store(path: str, vocab_json: str, classes: tuple[str, ...]) -> Any:
    prior = engine_module("prior")
    return prior.JudgmentsStore(path, vocabulary({"world": {"vocabulary": json.loads(vocab_json)}}), list(classes))


def prior_table(ref: data.RunRef, ratings: Any, pairwise: Any = None) -> Any:
    """Prior_M fitted on ``ratings`` with the run's prior settings: one row per clause (PriorModel.table)."""
    key = ratings.to_json() + ("" if pairwise is None else pairwise.to_json())
    return _prior_table(ref.root, ref.run_id, ref.stamp, key, ratings, pairwise)


@st.cache_data(show_spinner="Fitting the prior…", max_entries=16)
def _prior_table(root: str, run_id: str, stamp: float, key: str, _ratings: Any, _pairwise: Any) -> Any:
    prior = engine_module("prior")
    ref = data.RunRef(root, run_id, stamp)
    metrics = ref.metrics
    section = dict(ref.manifest.get("config", {}).get("prior") or {})
    model = prior.prior_from_config(section).fit(_ratings, vocabulary(metrics), metrics["world"]["classes"], _pairwise)
    return model.table(), model.summary()


def resolve_z_star(ref: data.RunRef, ratings: Any, pairwise: Any = None, warm: Any = None) -> dict[str, Any]:
    """Re-fit Prior_M on ``ratings`` and re-solve z* for a stored run (``igcore.ig.resolve``: it reuses the
    run's stored concept scores, no image is touched).

    Returns ``{"z_star": clause records, "bias", "text", "proba_test_eval", "ranked", "prior_summary",
    "engine_seconds", "search"}`` (``search`` can be passed back as ``warm`` to start from that solution).
    """
    ig = engine_module("ig")
    if not ref.has("tensors/concept_scores.safetensors"):
        raise NotComputed("This run has no stored concept scores, so z* cannot be re-solved for it.")
    out = ig.resolve(ref.run(), ratings, pairwise, warm=warm)
    return {
        "z_star": out.records,
        "bias": dict(out.z_star.bias),
        "text": out.text,
        "proba_test_eval": out.test_eval_proba,
        "ranked": out.ranked,
        "prior_summary": out.prior_summary,
        "engine_seconds": out.seconds,
        "search": out.search,
    }
