"""Thin, cached bridges from the dashboard to igcore's public functions.

The dashboard never re-implements engine logic: likelihoods come from :mod:`igcore.likelihood`,
hypotheses and their English from :mod:`igcore.hypothesis`, attribution maps from
:mod:`igcore.microscope`, the prior and the re-solve from :mod:`igcore.prior` / :mod:`igcore.resolve`.
Results are cached by the run view's key (runs root, run id, stamp). The torch-backed parts
(microscope, prior, re-solve) are imported on first use, so pages that only read stored numbers do
not pay for importing them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import run_view
from dashboard.run_view import RunView
from igcore.discover.view import together_table
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


@st.cache_resource(show_spinner=False)
def warm_kernels() -> float:
    """torch's kernels initialised once per server, in one thread, before sessions compute with models at once
    (:func:`igcore.runtime.warm_kernels`: threads that initialise them together sometimes compute other numbers);
    its seconds."""
    from igcore.baseline import resolve_device
    from igcore.runtime import warm_kernels as warm

    return warm(resolve_device("auto"))


@st.cache_data(show_spinner="Computing attribution maps…", max_entries=128)
def _attribution_maps(run: RunView, model: str, method: str, indices: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    from igcore.microscope import attribution_maps as engine_maps

    warm_kernels()
    out = engine_maps(run.run, model, method, list(indices))
    return np.asarray(out.maps, dtype=np.float32), np.asarray(out.targets)


def attribution_methods() -> dict[str, str]:
    """Registered attribution methods and their one-line descriptions."""
    from igcore.microscope import ATTRIBUTIONS

    return {name: spec.description for name, spec in ATTRIBUTIONS.items()}


# ---------------------------------------------------------------------------------------------- prior
def judgments_path(root: str) -> str:
    """The judgments database lives in RUNS_DIR, shared by every run of this dashboard (each world sees its own rows)."""
    return run_view.database_path(root)


def judgments_store(run: RunView) -> Any:
    """The dashboard's :class:`igcore.prior.JudgmentsStore`, opened for the run's world: what people added for
    it, shared by the runs of that world and by no other."""
    from igcore.prior import vocabulary_fingerprint

    return _judgments_store(judgments_path(run.root), vocabulary_fingerprint(run.vocabulary, run.classes), run)


@st.cache_resource(show_spinner=False, max_entries=8)
def _judgments_store(path: str, world: str, _run: RunView) -> Any:
    from igcore.prior import JudgmentsStore

    return JudgmentsStore(path, _run.vocabulary, _run.classes)


def page_judgments(run: RunView) -> Any:
    """The Prior page's judgments: the ones the run was solved with (recorded in it) plus what people added for its
    world since (:meth:`igcore.prior.Judgments.joined`)."""
    return run.judgments.joined(judgments_store(run))


def prior_table(run: RunView, judgments: Any) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Prior_M fitted on ``judgments`` (:func:`igcore.prior.fit_prior`, with the run's prior settings): one row per
    clause, and its summary."""
    return _prior_table(run, judgments.key(), judgments)


@st.cache_data(show_spinner="Fitting the prior…", max_entries=16)
def _prior_table(run: RunView, key: str, _judgments: Any) -> tuple[pd.DataFrame, dict[str, Any]]:
    from igcore.prior import fit_prior

    model = fit_prior(run.run.config_model().prior, _judgments, run.vocabulary, run.classes)
    return model.table(), model.summary()


def resolve_z_star(run: RunView, judgments: Any, warm: Any = None) -> dict[str, Any]:
    """Re-fit Prior_M on ``judgments`` and re-solve z* for a stored run (:func:`igcore.resolve.resolve`: it reuses
    the run's stored concept scores, no image is touched), and what that changed (:func:`igcore.resolve.compare`).
    z* speaks the run's words with the names people gave its discovered concepts (:attr:`RunView.names`), and
    Prior_M's text model reads those names, as on the Discover page.

    Returns ``{"z_star": clause records, "implausible" (its clauses a rater is less likely than not to endorse), "bias", "text", "proba_test_eval", "ranked", "prior_summary",
    "engine_seconds", "n_ratings", "comparison", "search"}`` (``search`` can be passed back as ``warm`` to start
    from that solution). Raises :class:`~dashboard.run_view.NotComputed` when the run has no stored concept scores.
    """
    from igcore.resolve import compare, resolve

    run.concept_scores("train")  # the re-solve reads them; a run without them says which stage writes them
    out = resolve(run.run, judgments, warm=warm, names=run.name_map)
    return {
        "z_star": out.records,
        "implausible": out.implausible,
        "bias": dict(out.z_star.bias),
        "text": out.text,
        "proba_test_eval": out.test_eval_proba,
        "ranked": out.ranked,
        "prior_summary": out.prior_summary,
        "engine_seconds": out.seconds,
        "n_ratings": len(judgments.ratings),
        "comparison": compare(run.run, out),
        "search": out.search,
        "language": out.language,
    }


# ---------------------------------------------------------------------------------------- elicitation
def elicitation(run: RunView, judgments: Any) -> dict[str, Any]:
    """z* re-solved on ``judgments`` (:func:`resolve_z_star`, cold) and the unrated clauses in the order the
    Prior page asks about them (:func:`igcore.prior.elicit.question_order`), cached per set of judgments.

    Returns :func:`resolve_z_star`'s dict without ``search``, plus ``order`` (the question table), ``support``
    (z*'s clause set as sorted ``(concept, class)`` pairs) and ``language`` (the ids of the concepts asked about).
    """
    return _elicitation(run, judgments.key(), judgments)


@st.cache_data(show_spinner="Re-solving z* and ranking the clauses nobody has rated…", max_entries=16)
def _elicitation(run: RunView, key: str, _judgments: Any) -> dict[str, Any]:
    from igcore.prior.elicit import question_order

    out = resolve_z_star(run, _judgments)
    search = out.pop("search")
    language = out.pop("language")  # z*'s concepts: annotated and named discovered ones (unnamed ones cannot be judged)
    scores = language.of(run.concept_scores("train"))
    out["language"] = list(language.vocabulary.ids)
    out["order"] = question_order(search, scores, run.split("train")["label"].to_numpy(), _judgments.ratings)
    out["support"] = sorted(search.z_star_.structure)
    return out


def z_star_history(run: RunView, judgments: Any, support: Sequence[tuple[str, str]]) -> list[tuple[int, frozenset[tuple[str, str]]]]:
    """z*'s clause sets logged for this run since its world's judgments were last reset, oldest first, after
    logging ``support`` (z* re-solved on ``judgments``) if it is new.

    The history starts from the run's own z* (as stored, on its own ratings), so the stopping signal counts the
    changes that ratings added on the Prior page (those the run did not read) made, and never one that did not happen.
    """
    store = judgments_store(run)
    history = store.z_star_log(run.run_id)
    if not history:
        own = run.judgments
        store.log_z_star(run.run_id, len(own.ratings), [(c["concept"], c["class"]) for c in run.clauses("z_star")])
    entry = (len(judgments.ratings), frozenset(tuple(pair) for pair in support))
    if entry not in store.z_star_log(run.run_id):
        store.log_z_star(run.run_id, *entry)
    return store.z_star_log(run.run_id)


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


# ---------------------------------------------------------------------------------------------- discover
def discovery_view(run: RunView) -> Any:
    """The run's discovered concepts read for people (:class:`igcore.discover.DiscoveryView`), one per run."""
    return _discovery_view(run)


@st.cache_resource(show_spinner=False, max_entries=8)
def _discovery_view(run: RunView) -> Any:
    from igcore.discover import DiscoveryView

    return DiscoveryView(run.run)


def name_store(run: RunView) -> Any:
    """The dashboard's :class:`igcore.discover.store.NameStore` of the run's components (in the judgments database,
    so names survive reloads and are shared by every session of this dashboard; :func:`dashboard.run_view.read_names`
    reads the same one)."""
    return run_view.name_store(judgments_path(run.root), run.run)


@dataclass(frozen=True)
class NamedTogether:
    """Names people gave alike on the page after the run, removed together: ``table`` holds the names measured so far
    (:func:`igcore.discover.view.together_table`'s rows, in the order asked), ``unmeasured`` the names not yet."""

    table: pd.DataFrame
    unmeasured: list[str]


def named_together(run: RunView, groups: Mapping[str, Sequence[str]], measure: bool = False) -> NamedTogether:
    """Each name's components removed together from every model the run measured them on (names given alike on the
    page after the run): the measurements the run's database keeps (:meth:`igcore.discover.NameStore.removed_together`)
    and, with ``measure``, the missing ones measured (:func:`igcore.discover.measure_together`) and kept there for every
    session and the next server. The Discover page and the report show the same :class:`NamedTogether`."""
    store = name_store(run)
    kept = store.removed_together()
    found = {text: {"components": list(ids), "effects": kept[tuple(sorted(ids))]}
             for text, ids in groups.items() if tuple(sorted(ids)) in kept}
    missing = tuple((text, tuple(ids)) for text, ids in groups.items() if text not in found)
    if missing and measure:
        measured = _measure_together(run, missing)
        for record in measured.values():
            store.record_together(record["components"], record["effects"])
        found.update(measured)
    return NamedTogether(together_table({"text": t, **found[t]} for t in groups if t in found), [t for t in groups if t not in found])


@st.cache_data(show_spinner="Removing each name's components from every model's layer…", max_entries=16)
def _measure_together(run: RunView, groups: tuple[tuple[str, tuple[str, ...]], ...]) -> dict[str, Any]:
    from igcore.discover import measure_together

    warm_kernels()
    return measure_together(run.run, {text: list(ids) for text, ids in groups})


def resolve_named(run: RunView) -> dict[str, Any]:
    """z* re-solved on the run's own judgments in the language its names give (:func:`igcore.resolve.resolve` with
    ``names``: the annotated concepts and the named discovered ones), cached per run view (its names included)."""
    return _resolve_named(run)


@st.cache_data(show_spinner="Re-solving z* in the named words…", max_entries=16)
def _resolve_named(run: RunView) -> dict[str, Any]:
    from igcore.resolve import resolve

    run.concept_scores("train")  # the re-solve reads them; a run without them says which stage writes them
    out = resolve(run.run, names=run.name_map)
    return {"text": out.text, "z_star": out.records, "implausible": out.implausible, "language": [c.id for c in out.language.vocabulary.concepts],
            "left_out": out.language.left_out, "engine_seconds": out.seconds}
