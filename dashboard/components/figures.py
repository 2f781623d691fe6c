"""The run's key figures, built by one function for every place that shows them: the Overview page (the
two accuracy figures and the counterfactual effects), the Microscope and Compare pages (the effects), the
Share page's PNG zip and the HTML report (all of them). Each entry carries its
title and caption, so the three read alike; a figure whose section the run lacks carries instead the
sentence saying which stage would have produced it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from dashboard.benchmark import Benchmark
from dashboard.components import charts
from dashboard.components.style import KIND_LEGEND
from dashboard.run_view import NotComputed, RunView, hypothesis_name


@dataclass(frozen=True)
class KeyFigure:
    """One key figure of a run.

    Attributes:
        key: a stable name (file name in the PNG zip, widget key on the Overview page).
        title: a heading for it.
        figure: the plotly figure, or None when the run lacks what it shows.
        caption: one sentence on how to read it.
        missing: when ``figure`` is None, why (which stage would have produced its inputs).
    """

    key: str
    title: str
    figure: go.Figure | None
    caption: str
    missing: str | None = None


def key_figures(run: RunView, keys: Collection[str] | None = None) -> list[KeyFigure]:
    """Accuracy per method and per group, the counterfactual effects (does each model use the background?),
    the clauses of z* and z_baseline, the baseline's TCAV and how it lines up with both hypotheses' weights,
    and relevance on the object. Built once per run and set of keys (the figures are shared read-only
    between sessions and reruns).

    Args:
        run: the run.
        keys: build only these figures (a page that shows a few need not pay for the rest).
    """
    return _key_figures(run, None if keys is None else tuple(keys))


@st.cache_resource(show_spinner=False, max_entries=32)
def _key_figures(run: RunView, keys: tuple[str, ...] | None) -> list[KeyFigure]:
    out: list[KeyFigure] = []

    def add(key: str, title: str, caption: str, build: Callable[[], go.Figure]) -> None:
        if keys is not None and key not in keys:
            return
        try:
            out.append(KeyFigure(key, title, build(), caption))
        except NotComputed as e:  # Unavailable too: the message carries the engine's reason
            out.append(KeyFigure(key, title, None, caption, str(e)))

    def methods() -> dict[str, Any]:
        if not run.methods:
            raise NotComputed(run.explain("methods.erm", "evaluated method"))
        return run.methods

    tcav_missing = run.missing("microscope.erm.tcav", "TCAV scores for the baseline")
    layer = "" if tcav_missing else run.tcav_layers()[0]

    backgrounds = run.has_backgrounds
    add("accuracy", "Accuracy per method",
        "Each method's accuracy on the test distribution D′: the worst group shows who relies on the background." if backgrounds else
        "Each method's accuracy on the test distribution D′ and on its worst group (here a class: the data names no backgrounds).",
        lambda: charts.accuracy_bars(methods()))
    add("groups", "Accuracy per group",
        f"Rows are methods, columns are {'class/background groups' if backgrounds else 'the groups (here the classes)'}; red cells are where a method fails.",
        lambda: charts.group_heatmap(methods(), run.groups, run.place_categories()))
    add("effects", "Does it use the background?", effects_caption(run),
        lambda: charts.effects_chart(run.evidence("effects", "counterfactual effects"), run.groups))
    for key in ("z_star", "z_baseline"):
        add(f"clauses_{key}", f"Clauses of {hypothesis_name(key)}", CLAUSES_CAPTION, lambda key=key: run_figure(run, "clauses", key))
    add("tcav", "TCAV of the baseline",
        f"Which concepts push the baseline towards each class (layer {layer}); ★ = significant in every repeat, "
        "hatched = in some repeats only (unstable), faded = in none; whiskers span the repeats.",
        lambda: run_figure(run, "tcav", "erm", layer))
    target = run.classes[-1]
    add("weights_tcav", "Concept weights vs TCAV",
        f"Each concept's weight towards “{target}” in z* and in z_baseline, against how strongly the baseline responds to it (TCAV, layer {layer}).",
        lambda: run_figure(run, "weights_tcav", target, layer))
    add("relevance", "Where the gradients are (relevance on the object)",
        "Mean share of each model's positive relevance inside the object's mask; the dotted line is what a blind map would score. "
        "It shows where gradients are, not which evidence wins: the counterfactual effects answer that.",
        lambda: run_figure(run, "relevance"))
    return out


#: How the clause-weight charts are read (the Compare page and the key figures).
CLAUSES_CAPTION = (f"Bar length = how much evidence a clause gives its class; {KIND_LEGEND}; "
                   "✗ = the clause-deletion test found the clause not specific (deleting it does not change answers more often where its "
                   "concept is present than where it is absent, beyond chance).")
#: How the weights-vs-TCAV scatter names the hypotheses.
WEIGHTS_TCAV_NAMES = {"z_star": "z* (IG)", "z_baseline": "z_baseline (what the baseline does)", "no_prior": "no-prior ablation"}


def _clause_deletion(run: RunView, key: str) -> go.Figure:
    records = run.clause_deletion(key)
    title = f"{hypothesis_name(key)}: {sum(bool(r.specific) for r in records)} of {len(records)} clauses specific"
    return charts.clause_deletion_bars(records, title)


def _relevance_distribution(run: RunView, method: str) -> go.Figure:
    per_image = run.microscope_table("relevance")
    return charts.relevance_distribution(per_image[per_image["method"] == method].rename(columns={"relevance_mass": "share"}), run.groups)


#: The figures pages draw from a run, each built by ``build(run, *params)`` from the run's typed sections.
RUN_FIGURES: dict[str, Callable[..., go.Figure]] = {
    "clauses": lambda run, key: charts.clause_weights(run.clauses(key), f"Clauses of {hypothesis_name(key)}"),
    "clause_deletion": _clause_deletion,
    "posterior": lambda run, selected: charts.posterior_scatter(run.ranked, selected),
    "tcav": lambda run, model, layer: charts.tcav_bars([t for t in run.tcav(model) if t.layer == layer], run.concept_kinds, run.concept_texts),
    "weights_tcav": lambda run, target, layer: charts.weights_vs_tcav(
        {"z_star": run.clauses("z_star"), "z_baseline": run.clauses("z_baseline")},
        [t for t in run.tcav("erm") if t.layer == layer], target, run.classes, run.concept_texts, WEIGHTS_TCAV_NAMES),
    "relevance": lambda run: charts.relevance_bars({m: run.microscope[m] for m in run.evidence("relevance_on_animal", "relevance on the object")}),
    "relevance_distribution": _relevance_distribution,
    "swap_parts": lambda run: charts.swap_parts_chart(run.evidence("swap_attribution", "attribution of the double swap", part="effects"), run.groups),
    "stage_times": lambda run: charts.stage_times(run.info.stages),
}


def run_figure(run: RunView, name: str, *params: Hashable) -> go.Figure:
    """Figure ``name`` of :data:`RUN_FIGURES` for ``run``: built once per run and parameters, then shared
    read-only by every rerun and session (a page's rerun only sends it). Raises what its inputs raise
    (:class:`~dashboard.run_view.NotComputed` with the reason when the run lacks them)."""
    return _run_figure(run, name, params)


@st.cache_resource(show_spinner=False, max_entries=256)
def _run_figure(run: RunView, name: str, params: tuple[Hashable, ...]) -> go.Figure:
    return RUN_FIGURES[name](run, *params)


@st.cache_resource(show_spinner=False, max_entries=8)
def sweep_figure(bench: Benchmark, methods: tuple[str, ...], run_rho: float | None) -> go.Figure:
    """The benchmark's ρ sweep of ``methods`` with this run's ρ marked, built once per benchmark file and ρ."""
    return charts.rho_sweep(bench.results, methods, run_rho, bench.world)


def swap_hows(run: RunView) -> str:
    """How each swap was made, in the engine's words (``microscope.<model>.effects.<kind>.how``): "background
    swap: re-rendered on every other background; object swap: …" (empty when the run has no effects)."""
    hows: dict[str, str] = {}
    for section in run.microscope.values():
        for kind, e in section.effects.items():
            if e.how:
                hows.setdefault(kind, e.how)
    return "; ".join(f"{kind} swap: {how}" for kind, how in hows.items())


def effects_caption(run: RunView) -> str:
    """How to read the effects chart, and how the swaps were made."""
    made = swap_hows(run)
    precision = [s.precision for s in run.microscope.values() if s.precision is not None and s.precision.effects_images]
    n = max((p.effects_images for p in precision), default=0)
    over = f"over {n} D′ images" if n else "over the D′ images swapped"
    if any(not p.effects_all_images for p in precision):
        over += " (added in rounds stratified by group until every interval was narrow enough or the time budget was spent)"
    return (
        "Mean change in the log-odds of each model's own answer when only the background or only the object of a D′ image "
        f"is swapped, with 95% bootstrap confidence intervals, {over} and per group. A model that reads the "
        "background loses confidence when the background changes; one that reads the object, when the object changes."
        + (f" How the swaps were made: {made}." if made else "")
    )
