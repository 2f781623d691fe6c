"""Hypotheses as figures: the ranked alternatives (prior against likelihood), a hypothesis's clauses, the
clause-deletion test, and clause weights against the baseline's TCAV scores."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from dashboard.components.style import HYPOTHESIS_COLORS, KIND_COLORS, KIND_LABELS, base_layout
from dashboard.components.text import clause_name, percent
from igcore.schema import ClauseDeletion, RankedRecord, TCAVRecord


def posterior_scatter(ranked: Sequence[RankedRecord], selected: int | None = None) -> go.Figure:
    """Each alternative hypothesis as a point: log prior (x) vs log likelihood (y); bigger = more posterior.

    ``selected`` and ``customdata[0]`` are positions in ``ranked`` (from 0); the hypotheses are named by
    their number from 1 ("#1"), as everywhere else. A click on a point selects that hypothesis.
    """
    x = [r.log_prior for r in ranked]
    y = [r.log_likelihood for r in ranked]
    post = np.array([r.posterior for r in ranked])
    size = 10 + 30 * np.sqrt(post / post.max()) if len(post) and post.max() > 0 else np.full(len(ranked), 12.0)
    n_clauses = [len(r.clauses) for r in ranked]
    fig = go.Figure()
    fig.add_scatter(
        x=x,
        y=y,
        mode="markers",
        name="hypotheses",
        customdata=[[i, n_clauses[i], float(post[i]), i + 1] for i in range(len(ranked))],
        marker={
            "size": size,
            "color": np.log10(np.clip(post, 1e-12, None)) if len(post) else None,
            "colorscale": "Viridis",
            "colorbar": {"title": {"text": "log₁₀<br>posterior", "side": "top"}, "thickness": 12},
            "line": {"width": 1, "color": "white"},
        },
        hovertemplate="hypothesis #%{customdata[3]:.0f}<br>%{customdata[1]:.0f} clauses<br>log prior %{x:.2f}<br>log likelihood %{y:.2f}<br>posterior %{customdata[2]:.3g}<extra></extra>",
    )
    if selected is not None and 0 <= selected < len(ranked):
        fig.add_scatter(
            x=[x[selected]],
            y=[y[selected]],
            mode="markers",
            name=f"selected (#{selected + 1})",
            marker={"size": float(size[selected]) + 12, "color": "rgba(0,0,0,0)", "line": {"width": 3, "color": "#d1495b"}},
            hoverinfo="skip",
        )
    fig.update_layout(
        **base_layout(
            height=420,
            title={"text": "Candidate hypotheses: plausibility vs fit", "font": {"size": 15}},
            showlegend=False,
            xaxis={"title": "log prior  (human plausibility, learned) →"},
            yaxis={"title": "log likelihood  (fit to labelled data D) →"},
        )
    )
    return fig


def clause_weights(clauses: Sequence[Mapping[str, Any]], title: str) -> go.Figure:
    """Horizontal bars: each clause's weight, coloured by concept kind (object feature / background /
    distractor / discovered in a model); a clause the deletion test found not specific is marked ✗ in its label."""
    rows = sorted(clauses, key=lambda c: abs(float(c.get("weight", 0))))
    labels = {id(c): clause_name(c) for c in rows}
    fig = go.Figure()
    for kind in KIND_LABELS:
        sub = [c for c in rows if c.get("kind") == kind]
        if not sub:
            continue
        fig.add_bar(
            orientation="h",
            name=KIND_LABELS[kind],
            x=[float(c.get("weight", 0)) for c in sub],
            y=[labels[id(c)] for c in sub],
            marker={"color": KIND_COLORS[kind]},
            hovertemplate="%{y}<br>weight %{x:+.2f}<extra></extra>",
        )
    fig.update_layout(**base_layout(height=max(200, 60 + 26 * len(rows)), title={"text": title, "font": {"size": 14}}, xaxis={"title": "weight (evidence for the class)", "zeroline": True}, barmode="relative"))
    fig.update_yaxes(categoryorder="array", categoryarray=[labels[id(c)] for c in rows])
    return fig


def clause_deletion_bars(records: Sequence[ClauseDeletion], title: str) -> go.Figure:
    """Per clause, how often deleting it changes L_M's answer where its concept is present vs absent
    (``clause_deletion.<hypothesis>``); a clause that does what it says changes answers only where present."""
    label = [f"{'✓' if r.specific else '✗'} {r.text or r.concept} → {r.cls}" for r in records]
    fig = go.Figure()
    for where, color in (("present", "#2e7d5b"), ("absent", "#8d99ae")):
        parts = [getattr(r, where) for r in records]
        fig.add_bar(
            orientation="h",
            name=f"concept {where}",
            y=label,
            x=[p.answer_change_rate for p in parts],
            marker={"color": color},
            text=["no images" if p.answer_change_rate is None else f"{percent(p.answer_change_rate)} · drop {float(p.mean_drop or 0):.3f}"
                  for p in parts],
            textposition="outside",
            customdata=[[p.n, p.mean_drop] for p in parts],
            hovertemplate=f"%{{y}}<br>concept {where} (n = %{{customdata[0]}}): answers changed %{{x:.1%}}, "
            "mean drop in the class's probability %{customdata[1]:.3f}<extra></extra>",
        )
    fig.update_layout(
        **base_layout(
            barmode="group",
            height=max(200, 90 + 48 * len(records)),
            title={"text": title, "font": {"size": 14}},
            xaxis={"title": "answers changed when the clause is deleted", "tickformat": ".0%", "range": [0, 1.35]},
            yaxis={"autorange": "reversed"},
        )
    )
    return fig


def _signed_weights(clauses: Sequence[Mapping[str, Any]], target: str, classes: Sequence[str]) -> dict[str, float]:
    """Per concept, the clause weight as evidence for ``target`` (weights for the other class count negatively
    when there are exactly two classes)."""
    out: dict[str, float] = {}
    for c in clauses:
        w = float(c.get("weight", 0.0))
        cls = str(c.get("class"))
        if cls == target:
            out[c["concept"]] = out.get(c["concept"], 0.0) + w
        elif len(classes) == 2:
            out[c["concept"]] = out.get(c["concept"], 0.0) - w
    return out


#: Where the labels of neighbouring points go, in turn, so that they do not sit on top of each other.
LABEL_POSITIONS = ("top center", "bottom center", "middle right", "middle left", "top right", "bottom left")
#: How many concepts the scatter names on the chart (the rest are named on hover).
LABELLED = 6


def weights_vs_tcav(
    hypotheses: Mapping[str, Sequence[Mapping[str, Any]]],
    tcav: Sequence[TCAVRecord],
    target: str,
    classes: Sequence[str],
    texts: Mapping[str, str],
    names: Mapping[str, str],
) -> go.Figure:
    """For each concept: its weight towards ``target`` in each hypothesis (x) vs the baseline's TCAV score (y).

    Only the :data:`LABELLED` concepts with the largest weights are named on the chart, each once (on the
    hypothesis where it weighs most), with their labels placed around their points in turn.
    """
    scores: dict[str, float] = {}
    for t in tcav:
        if t.cls == target:
            scores.setdefault(t.concept, t.score)
    weights = {key: _signed_weights(clauses, target, classes) for key, clauses in hypotheses.items()}
    strongest = {c: max(((abs(w.get(c, 0.0)), key) for key, w in weights.items()), default=(0.0, "")) for c in scores}
    named = sorted((c for c in scores if strongest[c][0] > 0), key=lambda c: -strongest[c][0])[:LABELLED]
    position = {c: LABEL_POSITIONS[i % len(LABEL_POSITIONS)] for i, c in enumerate(sorted(named, key=lambda c: scores[c]))}
    fig = go.Figure()
    for key, w in weights.items():
        concepts = list(scores)
        own = [c for c in concepts if c in position and strongest[c][1] == key]
        fig.add_scatter(
            x=[w.get(c, 0.0) for c in concepts],
            y=[scores[c] for c in concepts],
            mode="markers+text",
            name=names.get(key, key),
            text=[texts.get(c, c) if c in own else "" for c in concepts],
            textposition=[position.get(c, "top center") for c in concepts],
            textfont={"size": 10, "color": HYPOTHESIS_COLORS.get(key, "#555")},
            marker={"size": 11, "color": HYPOTHESIS_COLORS.get(key, "#555"), "symbol": "diamond" if key == "z_baseline" else "circle", "opacity": 0.85},
            customdata=[texts.get(c, c) for c in concepts],
            hovertemplate="%{customdata}<br>weight → " + target + " %{x:+.2f}<br>baseline TCAV %{y:.2f}<extra>" + names.get(key, key) + "</extra>",
        )
    fig.add_hline(y=0.5, line_dash="dot", line_color="#999")
    fig.add_vline(x=0.0, line_dash="dot", line_color="#999")
    fig.update_layout(
        **base_layout(
            height=460,
            title={"text": f"Concept weights (towards “{target}”) vs the baseline's TCAV sensitivity", "font": {"size": 15}},
            xaxis={"title": f"weight in the hypothesis (evidence for {target}) →"},
            yaxis={"title": f"baseline's TCAV score for {target}", "range": [-0.05, 1.12]},
        )
    )
    return fig
