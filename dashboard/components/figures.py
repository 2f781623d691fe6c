"""The run's key figures, built by one function for every place that shows them: the Overview page (the
two accuracy figures and the counterfactual effects), the Microscope and Compare pages (the effects), the
Share page's PNG zip and the HTML report (all of them). Each entry carries its
title and caption, so the three read alike; a figure whose section the run lacks carries instead the
sentence saying which stage would have produced it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from dashboard.components import charts
from dashboard.run_view import NotComputed, RunView


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


def tcav_layers(tcav: list[dict[str, Any]]) -> list[str]:
    """The layers of a run's TCAV scores, the one to show first (the penultimate layer) first."""
    return sorted({str(t.get("layer")) for t in tcav}, key=lambda name: (name != "penultimate", name))


def key_figures(run: RunView, keys: Collection[str] | None = None) -> list[KeyFigure]:
    """Accuracy per method and per group, the counterfactual effects (does each model use the background?),
    the clauses of z* and z_baseline, the baseline's TCAV and how it lines up with both hypotheses' weights,
    and relevance on the object.

    Args:
        run: the run.
        keys: build only these figures (a page that shows a few need not pay for the rest).
    """
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
    layer = "" if tcav_missing else tcav_layers(run.tcav())[0]

    def tcav() -> list[dict[str, Any]]:
        if tcav_missing:
            raise NotComputed(tcav_missing)
        return [t for t in run.tcav() if str(t.get("layer")) == layer]

    def microscope(field: str, what: str) -> dict[str, dict[str, Any]]:
        run.evidence(field, what)  # raises with the reason when no model has it
        return run.microscope

    add("accuracy", "Accuracy per method",
        "Each method's accuracy on the test distribution D′: the worst group shows who relies on the background.",
        lambda: charts.accuracy_bars(methods()))
    add("groups", "Accuracy per group",
        "Rows are methods, columns are class/background groups; red cells are where a method fails.",
        lambda: charts.group_heatmap(methods(), run.groups))
    add("effects", "Does it use the background?", effects_caption(run),
        lambda: charts.effects_chart(run.evidence("effects", "counterfactual effects"), run.groups))
    for key, label in (("z_star", "z*"), ("z_baseline", "z_baseline")):
        add(f"clauses_{key}", f"Clauses of {label}",
            "Bar length = how much evidence a clause gives its class; green = object feature, red = background.",
            lambda key=key, label=label: charts.clause_weights(run.clauses(key), f"Clauses of {label}"))
    add("tcav", "TCAV of the baseline",
        f"Which concepts push the baseline towards each class (layer {layer}); ★ = significant in every repeat, "
        "hatched = in some repeats only (unstable), faded = in none; whiskers span the repeats.",
        lambda: charts.tcav_bars(tcav(), run.concept_kinds, run.concept_texts))
    target = run.classes[-1]
    add("weights_tcav", "Concept weights vs TCAV",
        f"Each concept's weight towards “{target}” in z* and in z_baseline, against how strongly the baseline responds to it (TCAV, layer {layer}).",
        lambda: charts.weights_vs_tcav(
            {"z_star": run.clauses("z_star"), "z_baseline": run.clauses("z_baseline")},
            tcav(), target, run.classes, run.concept_texts))
    add("relevance", "Where the gradients are (relevance on the object)",
        "Mean share of each model's positive relevance inside the object's mask; the dotted line is what a blind map would score. "
        "It shows where gradients are, not which evidence wins: the counterfactual effects answer that.",
        lambda: charts.relevance_bars(microscope("relevance_on_animal", "relevance on the object")))
    return out


def swap_hows(run: RunView) -> str:
    """How each swap was made, in the engine's words (``microscope.<model>.effects.<kind>.how``): "background
    swap: re-rendered on every other background; object swap: …" (empty when the run has no effects)."""
    hows: dict[str, str] = {}
    for m in run.examined:
        for kind, e in (run.microscope[m].get("effects") or {}).items():
            if isinstance(e, dict) and e.get("how"):
                hows.setdefault(kind, str(e["how"]))
    return "; ".join(f"{kind} swap: {how}" for kind, how in hows.items())


def effects_caption(run: RunView) -> str:
    """How to read the effects chart, and how the swaps were made."""
    made = swap_hows(run)
    return (
        "Mean change in the log-odds of each model's own answer when only the background or only the object of a D′ image "
        "is swapped, with 95% bootstrap confidence intervals, over all images and per group. A model that reads the "
        "background loses confidence when the background changes; one that reads the object, when the object changes."
        + (f" How the swaps were made: {made}." if made else "")
    )
