"""Thin, cached bridges from the dashboard to igcore's public functions.

The dashboard never re-implements engine logic: likelihoods come from :mod:`igcore.likelihood`,
hypotheses and their English from :mod:`igcore.hypothesis`, attribution maps from
:mod:`igcore.microscope`, the prior and the re-solve from :mod:`igcore.prior` / :mod:`igcore.ig`.
Results are cached by the run view's key (runs root, run id, stamp). The torch-backed parts
(microscope, prior, re-solve) are imported on first use, so pages that only read stored numbers do
not pay for importing them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboard.run_view import RunView
from igcore.hypothesis import Hypothesis
from igcore.likelihood import predict_proba as likelihood_proba


def to_hypothesis(record: Mapping[str, Any] | Sequence[Mapping[str, Any]], run: RunView) -> Hypothesis:
    """An igcore :class:`Hypothesis` from stored records: ``{clauses, bias}`` or a bare list of clause records."""
    if isinstance(record, Mapping):
        clauses, bias = list(record.get("clauses") or []), dict(record.get("bias") or {})
    else:
        clauses, bias = list(record), {}
    obj = {"clauses": [{k: c[k] for k in ("concept", "class", "weight")} for c in clauses], "bias": bias}
    return Hypothesis.from_json(obj, run.vocabulary, run.classes)


def render_text(record: Mapping[str, Any] | Sequence[Mapping[str, Any]], run: RunView) -> str:
    """The engine's own plain-English field guide of a hypothesis (:meth:`Hypothesis.render`)."""
    return to_hypothesis(record, run).render(run.vocabulary, run.classes)


def predict_proba(run: RunView, record: Mapping[str, Any], split: str = "test_eval") -> np.ndarray:
    """L_M(· | x, z) on a stored split's concept scores (igcore.likelihood), cached per run and hypothesis.

    ``record`` is ``{clauses, bias}`` (a ranked entry, ``hypotheses.z_star_json`` or a re-solved z*).
    """
    return _predict_proba(run, json.dumps(record, sort_keys=True, default=str), split)


@st.cache_data(show_spinner=False, max_entries=256)
def _predict_proba(run: RunView, record_json: str, split: str) -> np.ndarray:
    hypothesis = to_hypothesis(json.loads(record_json), run)
    return likelihood_proba(run.concept_scores(split), hypothesis, run.vocabulary, run.classes)


def attribution_maps(run: RunView, model: str, method: str, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Attribution maps (N, H, W) and the classes they explain for D′_eval ``indices``.

    :func:`igcore.microscope.attribution_maps` reads the run's map cache first and computes (and caches)
    only what is missing.
    """
    return _attribution_maps(run, model, method, tuple(int(i) for i in indices))


@st.cache_data(show_spinner="Computing attribution maps…", max_entries=128)
def _attribution_maps(run: RunView, model: str, method: str, indices: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    from igcore.microscope import attribution_maps as engine_maps

    out = engine_maps(run.run, model, method, list(indices))
    return np.asarray(out.maps, dtype=np.float32), np.asarray(out.targets)


def attribution_methods() -> dict[str, str]:
    """Registered attribution methods and their one-line descriptions."""
    from igcore.microscope import ATTRIBUTIONS

    return {name: spec.description for name, spec in ATTRIBUTIONS.items()}


# ---------------------------------------------------------------------------------------------- prior
def judgments_path(root: str) -> str:
    """The judgments database lives in RUNS_DIR, shared by every run of this dashboard."""
    return str(Path(root) / "judgments.sqlite")


def judgments_store(run: RunView) -> Any:
    """The dashboard's :class:`igcore.prior.JudgmentsStore` for the run's vocabulary and classes."""
    return _judgments_store(judgments_path(run.root), run)


@st.cache_resource(show_spinner=False, max_entries=8)
def _judgments_store(path: str, run: RunView) -> Any:
    from igcore.prior import JudgmentsStore

    return JudgmentsStore(path, run.vocabulary, run.classes)


def prior_table(run: RunView, ratings: pd.DataFrame, pairwise: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Prior_M fitted on ``ratings`` with the run's prior settings: one row per clause, and its summary."""
    key = ratings.to_json() + ("" if pairwise is None else pairwise.to_json())
    return _prior_table(run, key, ratings, pairwise)


@st.cache_data(show_spinner="Fitting the prior…", max_entries=16)
def _prior_table(run: RunView, key: str, _ratings: pd.DataFrame, _pairwise: pd.DataFrame | None) -> tuple[pd.DataFrame, dict[str, Any]]:
    from igcore.prior import prior_from_config

    model = prior_from_config(run.run.config_model().prior).fit(_ratings, run.vocabulary, run.classes, _pairwise)
    return model.table(), model.summary()


def resolve_z_star(run: RunView, ratings: pd.DataFrame, pairwise: pd.DataFrame | None = None, warm: Any = None) -> dict[str, Any]:
    """Re-fit Prior_M on ``ratings`` and re-solve z* for a stored run (:func:`igcore.ig.resolve`: it reuses
    the run's stored concept scores, no image is touched).

    Returns ``{"z_star": clause records, "bias", "text", "proba_test_eval", "ranked", "prior_summary",
    "engine_seconds", "search"}`` (``search`` can be passed back as ``warm`` to start from that solution).
    Raises :class:`~dashboard.run_view.NotComputed` when the run has no stored concept scores.
    """
    from igcore.ig import resolve

    run.concept_scores("train")  # the re-solve reads them; a run without them says which stage writes them
    out = resolve(run.run, ratings, pairwise, warm=warm)
    return {
        "z_star": out.records,
        "bias": dict(out.z_star.bias),
        "text": out.text,
        "proba_test_eval": out.test_eval_proba,
        "ranked": out.ranked,
        "prior_summary": out.prior_summary,
        "engine_seconds": out.seconds,
        "search": out.search,
        "language": out.language,
    }


# ---------------------------------------------------------------------------------------- elicitation
def elicitation(run: RunView, ratings: pd.DataFrame, pairwise: pd.DataFrame | None = None) -> dict[str, Any]:
    """z* re-solved on ``ratings`` (:func:`resolve_z_star`, cold) and the unrated clauses in the order the
    Prior page asks about them (:func:`igcore.prior.elicit.question_order`), cached per set of judgments.

    Returns :func:`resolve_z_star`'s dict without ``search``, plus ``order`` (the question table) and
    ``support`` (z*'s clause set as sorted ``(concept, class)`` pairs).
    """
    key = ratings.to_json() + ("" if pairwise is None else pairwise.to_json())
    return _elicitation(run, key, ratings, pairwise)


@st.cache_data(show_spinner="Re-solving z* and ranking the clauses nobody has rated…", max_entries=16)
def _elicitation(run: RunView, key: str, _ratings: pd.DataFrame, _pairwise: pd.DataFrame | None) -> dict[str, Any]:
    from igcore.prior.elicit import question_order

    out = resolve_z_star(run, _ratings, _pairwise)
    search = out.pop("search")
    scores = out.pop("language").of(run.concept_scores("train"))  # z*'s concepts (annotated and named discovered)
    out["order"] = question_order(search, scores, run.split("train")["label"].to_numpy(), _ratings)
    out["support"] = sorted(search.z_star_.structure)
    return out


# ---------------------------------------------------------------------------------------------- labels
def label_store(run: RunView) -> Any:
    """The :class:`igcore.labels.LabelStore` of the run's D′_eval, in the dashboard's judgments database."""
    return _label_store(judgments_path(run.root), run.run_id, tuple(run.classes), len(run.split("test_eval")))


@st.cache_resource(show_spinner=False, max_entries=8)
def _label_store(path: str, run_id: str, classes: tuple[str, ...], n_images: int) -> Any:
    from igcore.labels import LabelStore

    return LabelStore(path, run_id, classes, n_images)


def z_star_proba(run: RunView) -> np.ndarray:
    """L_M(· | x, z*) on D′_eval for the run's stored z* (``hypotheses.z_star_json``; :func:`predict_proba`)."""
    run.need("hypotheses.z_star_json", "stored z* with its biases")
    return predict_proba(run, run.hypotheses.z_star_json or {})
