"""Plotly figures as pure functions of engine results (the run schema's typed records, clause records,
microscope dicts and DataFrames from a run).

Nothing here reads files or computes engine quantities; each function turns stored numbers into a
figure with consistent colours (:mod:`dashboard.components.style`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.components.style import (
    HYPOTHESIS_COLORS,
    KIND_COLORS,
    KIND_LABELS,
    base_layout,
    method_color,
    method_label,
    method_short,
    order_methods,
)
from igcore.schema import MethodMetrics, RankedRecord, StageRecord


def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * float(v):.1f}%"


def _pct100(v: Any) -> float | None:
    return None if v is None else 100.0 * float(v)


def accuracy_table(methods: Mapping[str, MethodMetrics]) -> pd.DataFrame:
    """One row per method: average and worst-group accuracy (in %) and which group is worst."""
    rows = []
    for name in order_methods(list(methods)):
        m = methods[name]
        rows.append(
            {
                "method": method_label(name),
                "average accuracy": _pct100(m.avg_acc),
                "worst-group accuracy": _pct100(m.worst_group_acc),
                "worst group": m.worst_group,
                "accuracy at training proportions": _pct100(m.train_weighted_acc),
            }
        )
    return pd.DataFrame(rows)


def accuracy_bars(methods: Mapping[str, MethodMetrics]) -> go.Figure:
    """Average (solid) and worst-group (hatched) accuracy on D′ per method, one colour per method."""
    names = order_methods(list(methods))
    labels = [method_short(n) for n in names]
    colors = [method_color(n) for n in names]
    fig = go.Figure()
    fig.add_bar(
        name="average accuracy",
        x=labels,
        y=[methods[n].avg_acc for n in names],
        marker={"color": colors},
        text=[_pct(methods[n].avg_acc) for n in names],
        textposition="outside",
        hovertemplate="%{x}<br>average accuracy %{y:.1%}<extra></extra>",
    )
    fig.add_bar(
        name="worst-group accuracy",
        x=labels,
        y=[methods[n].worst_group_acc for n in names],
        marker={"color": colors, "pattern": {"shape": "/", "fillmode": "overlay", "fgcolor": "white"}, "opacity": 0.75},
        text=[_pct(methods[n].worst_group_acc) for n in names],
        textposition="outside",
        customdata=[methods[n].worst_group for n in names],
        hovertemplate="%{x}<br>worst group %{customdata}: %{y:.1%}<extra></extra>",
    )
    fig.update_layout(
        **base_layout(
            barmode="group",
            height=380,
            yaxis={"title": "accuracy on D′ (test distribution)", "tickformat": ".0%", "range": [0, 1.12]},
            title={"text": "Accuracy per method: solid = average, hatched = worst group", "font": {"size": 15}},
        )
    )
    return fig


def group_heatmap(methods: Mapping[str, MethodMetrics], groups: Sequence[str]) -> go.Figure:
    """Methods × groups accuracy heat map (red = wrong most of the time, green = right)."""
    names = order_methods(list(methods))
    z = [[methods[n].group_acc.get(g) for g in groups] for n in names]
    text = [[_pct(v) for v in row] for row in z]
    fig = go.Figure(
        go.Heatmap(
            z=[[np.nan if v is None else v for v in row] for row in z],
            x=list(groups),
            y=[method_short(n) for n in names],
            text=text,
            texttemplate="%{text}",
            colorscale="RdYlGn",
            zmin=0,
            zmax=1,
            colorbar={"title": "accuracy", "tickformat": ".0%"},
            hovertemplate="%{y}<br>group %{x}: %{z:.1%}<extra></extra>",
        )
    )
    fig.update_layout(
        **base_layout(
            height=90 + 42 * len(names),
            title={"text": "Accuracy per group (animal / background) on D′", "font": {"size": 15}},
            yaxis={"autorange": "reversed"},
            xaxis={"side": "bottom"},
        )
    )
    return fig


def posterior_scatter(ranked: Sequence[RankedRecord], selected: int | None = None) -> go.Figure:
    """Each alternative hypothesis as a point: log prior (x) vs log likelihood (y); bigger = more posterior.

    ``customdata`` holds the rank index so a click on a point selects that hypothesis.
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
    """Horizontal bars: each clause's weight, coloured by concept kind (animal / background / distractor)."""
    rows = sorted(clauses, key=lambda c: abs(float(c.get("weight", 0))))
    fig = go.Figure()
    for kind in ("core", "context", "distractor"):
        sub = [c for c in rows if c.get("kind") == kind]
        if not sub:
            continue
        fig.add_bar(
            orientation="h",
            name=KIND_LABELS[kind],
            x=[float(c.get("weight", 0)) for c in sub],
            y=[f"{c.get('text') or c.get('concept')} → {c.get('class')}" for c in sub],
            marker={"color": KIND_COLORS[kind]},
            hovertemplate="%{y}<br>weight %{x:+.2f}<extra></extra>",
        )
    fig.update_layout(**base_layout(height=max(200, 60 + 26 * len(rows)), title={"text": title, "font": {"size": 14}}, xaxis={"title": "weight (evidence for the class)", "zeroline": True}, barmode="relative"))
    fig.update_yaxes(categoryorder="array", categoryarray=[f"{c.get('text') or c.get('concept')} → {c.get('class')}" for c in rows])
    return fig


def relevance_bars(microscope: Mapping[str, Mapping[str, Any]]) -> go.Figure:
    """Mean share of positive attribution inside the animal, per attribution method and model."""
    fig = go.Figure()
    for model in order_methods(list(microscope)):
        rel = microscope[model].get("relevance_on_animal") or {}
        if not isinstance(rel, Mapping) or not rel:
            continue
        methods = sorted(rel)
        fig.add_bar(
            name=method_label(model),
            x=methods,
            y=[_scalar(rel[m]) for m in methods],
            marker={"color": method_color(model)},
            text=[_pct(_scalar(rel[m])) for m in methods],
            textposition="outside",
            hovertemplate=f"{method_label(model)}<br>%{{x}}: %{{y:.1%}} of relevance on the animal<extra></extra>",
        )
    area = next((_scalar(m.get("mask_area_share")) for m in microscope.values() if m.get("mask_area_share") is not None), None)
    values = [v for m in microscope.values() for v in map(_scalar, (m.get("relevance_on_animal") or {}).values()) if v is not None]
    top = min(1.1, 1.3 * max([*values, area or 0.0, 0.1]))
    if area is not None:
        fig.add_hline(y=area, line_dash="dot", line_color="#555")
        fig.add_scatter(x=[None], y=[None], mode="lines", line={"dash": "dot", "color": "#555"}, name=f"a blind map: the animal's share of the image ({_pct(area)})")
    fig.update_layout(
        **base_layout(
            barmode="group",
            height=360,
            title={"text": "How much of each model's attention falls on the animal (higher = better)", "font": {"size": 15}},
            yaxis={"title": "share of positive relevance inside the animal", "tickformat": ".0%", "range": [0, top]},
        )
    )
    return fig


def relevance_distribution(df: pd.DataFrame) -> go.Figure:
    """Per-image relevance-on-animal share as box plots: x = group, colour = model (one method)."""
    fig = go.Figure()
    for model in order_methods(sorted(df["model"].unique())):
        sub = df[df["model"] == model]
        fig.add_box(
            x=sub["group"],
            y=sub["share"],
            name=method_label(model),
            marker={"color": method_color(model)},
            boxmean=True,
            hovertemplate="%{x}: %{y:.1%}<extra></extra>",
        )
    fig.update_layout(
        **base_layout(
            boxmode="group",
            height=380,
            title={"text": "Share of relevance on the animal, image by image, per group", "font": {"size": 15}},
            yaxis={"title": "share inside the animal", "tickformat": ".0%", "range": [0, min(1.05, 1.2 * float(df["share"].max() if len(df) else 1.0) + 0.02)]},
        )
    )
    return fig


def tcav_bars(tcav: Sequence[Mapping[str, Any]], kinds: Mapping[str, str], texts: Mapping[str, str]) -> go.Figure:
    """TCAV score per concept, one panel per class: solid = significant, faded = not distinguishable
    from random concepts. Colour = concept kind (animal feature / background / distractor)."""
    from plotly.subplots import make_subplots

    df = pd.DataFrame(list(tcav))
    if df.empty:
        return go.Figure()
    if "significant" not in df:
        df["significant"] = df["p_value"] < 0.05 if "p_value" in df else False
    if "p_value" not in df:
        df["p_value"] = np.nan
    if "class" not in df:
        df["class"] = ""
    df["text"] = df["concept"].map(lambda c: texts.get(c, c))
    df["kind"] = df["concept"].map(lambda c: kinds.get(c, "core"))
    classes = list(dict.fromkeys(df["class"].astype(str)))
    order = df.groupby("text")["score"].max().sort_values().index.tolist()
    fig = make_subplots(rows=1, cols=len(classes), shared_yaxes=True, horizontal_spacing=0.03,
                        subplot_titles=[f"towards “{c}”" if c else "" for c in classes])
    for j, cls in enumerate(classes, start=1):
        sub = df[df["class"].astype(str) == cls]
        sub = sub.groupby(["concept", "text", "kind"], as_index=False).agg(
            score=("score", "mean"), p_value=("p_value", "min"), significant=("significant", "max"))
        fig.add_bar(
            orientation="h",
            row=1,
            col=j,
            showlegend=False,
            x=sub["score"],
            y=sub["text"],
            marker={
                "color": [KIND_COLORS.get(k, "#888") for k in sub["kind"]],
                "opacity": [1.0 if s else 0.3 for s in sub["significant"]],
            },
            text=["★" if s else "" for s in sub["significant"]],
            textposition="outside",
            customdata=np.stack([sub["p_value"].to_numpy(dtype=float), sub["kind"].map(KIND_LABELS).to_numpy()], axis=1),
            hovertemplate="%{y}<br>TCAV score %{x:.2f}<br>p = %{customdata[0]:.3g}<br>%{customdata[1]}<extra></extra>",
        )
        fig.add_vline(x=0.5, line_dash="dot", line_color="#555", row=1, col=j)
        fig.update_xaxes(range=[0, 1.1], title_text="TCAV score", row=1, col=j)
    for kind in ("core", "context", "distractor"):  # a legend for the colours
        fig.add_bar(x=[None], y=[None], name=KIND_LABELS[kind], marker={"color": KIND_COLORS[kind]}, showlegend=True)
    fig.update_yaxes(categoryorder="array", categoryarray=order)
    fig.update_layout(
        **base_layout(
            height=max(300, 110 + 22 * len(order)),
            title={"text": "TCAV: which concepts push the baseline towards each class (★ significant, faded = not)", "font": {"size": 15}},
            barmode="overlay",
            legend={"orientation": "h", "yanchor": "top", "y": -0.12, "xanchor": "left", "x": 0},
            margin={"l": 10, "r": 10, "t": 70, "b": 10},
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


def weights_vs_tcav(
    hypotheses: Mapping[str, Sequence[Mapping[str, Any]]],
    tcav: Sequence[Mapping[str, Any]],
    target: str,
    classes: Sequence[str],
    texts: Mapping[str, str],
) -> go.Figure:
    """For each concept: its weight towards ``target`` in each hypothesis (x) vs the baseline's TCAV score (y)."""
    scores: dict[str, float] = {}
    for t in tcav:
        if str(t.get("class")) == target:
            scores.setdefault(t["concept"], float(t["score"]))
    fig = go.Figure()
    names = {"z_star": "z* (IG)", "z_baseline": "z_baseline (what ERM does)", "no_prior": "no-prior ablation"}
    for key, clauses in hypotheses.items():
        w = _signed_weights(clauses, target, classes)
        concepts = [c for c in scores]
        labelled = set(sorted((c for c in concepts if abs(w.get(c, 0.0)) > 0), key=lambda c: -abs(w[c]))[:5])
        fig.add_scatter(
            x=[w.get(c, 0.0) for c in concepts],
            y=[scores[c] for c in concepts],
            mode="markers+text",
            name=names.get(key, key),
            text=[texts.get(c, c) if c in labelled else "" for c in concepts],
            textposition="top center",
            textfont={"size": 10, "color": HYPOTHESIS_COLORS.get(key, "#555")},
            marker={"size": 11, "color": HYPOTHESIS_COLORS.get(key, "#555"), "symbol": "diamond" if key == "z_baseline" else "circle", "opacity": 0.85},
            customdata=[texts.get(c, c) for c in concepts],
            hovertemplate="%{customdata}<br>weight → " + target + " %{x:+.2f}<br>baseline TCAV %{y:.2f}<extra>" + names.get(key, key) + "</extra>",
        )
    fig.add_hline(y=0.5, line_dash="dot", line_color="#999")
    fig.add_vline(x=0.0, line_dash="dot", line_color="#999")
    fig.update_layout(
        **base_layout(
            height=440,
            title={"text": f"Concept weights (towards “{target}”) vs the baseline's TCAV sensitivity", "font": {"size": 15}},
            xaxis={"title": f"weight in the hypothesis (evidence for {target}) →"},
            yaxis={"title": f"baseline's TCAV score for {target}", "range": [-0.05, 1.1]},
        )
    )
    return fig


def swap_bars(microscope: Mapping[str, Mapping[str, Any]]) -> go.Figure:
    """How often each model changes its answer when only the background is swapped."""
    models = [m for m in order_methods(list(microscope)) if microscope[m].get("swap_flip_rate") is not None]
    fig = go.Figure(
        go.Bar(
            x=[method_short(m) for m in models],
            y=[_scalar(microscope[m]["swap_flip_rate"]) for m in models],
            marker={"color": [method_color(m) for m in models]},
            text=[_pct(_scalar(microscope[m]["swap_flip_rate"])) for m in models],
            textposition="outside",
            hovertemplate="%{x}: flips %{y:.1%} of answers<extra></extra>",
        )
    )
    fig.update_layout(
        **base_layout(
            height=300,
            title={"text": "Same animal, other background: how often the answer flips (lower = better)", "font": {"size": 15}},
            yaxis={"title": "answers flipped", "tickformat": ".0%", "range": [0, 1.1]},
        )
    )
    return fig


def stage_times(stages: Mapping[str, StageRecord]) -> go.Figure:
    """Wall time of each pipeline stage, in run order."""
    names = list(stages)
    fig = go.Figure(go.Bar(x=[stages[n].seconds for n in names], y=names, orientation="h", marker={"color": "#8d99ae"}))
    fig.update_layout(**base_layout(height=80 + 22 * len(names), title={"text": "Wall time per pipeline stage (s)", "font": {"size": 14}}, yaxis={"autorange": "reversed"}))
    return fig


def _scalar(v: Any) -> float | None:
    """A stored summary may be a number or a dict with a ``mean``."""
    if v is None:
        return None
    if isinstance(v, Mapping):
        v = v.get("mean", v.get("value"))
    try:
        return float(v)
    except (TypeError, ValueError):
        return None
