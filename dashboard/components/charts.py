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
            title={"text": "Accuracy per group (class / background) on D′", "font": {"size": 15}},
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
    """Horizontal bars: each clause's weight, coloured by concept kind (object feature / background / distractor)."""
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
    """Mean share of positive attribution inside the object's mask, per attribution method and model."""
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
            hovertemplate=f"{method_label(model)}<br>%{{x}}: %{{y:.1%}} of relevance on the object<extra></extra>",
        )
    area = next((_scalar(m.get("mask_area_share")) for m in microscope.values() if m.get("mask_area_share") is not None), None)
    values = [v for m in microscope.values() for v in map(_scalar, (m.get("relevance_on_animal") or {}).values()) if v is not None]
    top = min(1.1, 1.3 * max([*values, area or 0.0, 0.1]))
    if area is not None:
        fig.add_hline(y=area, line_dash="dot", line_color="#555")
        fig.add_scatter(x=[None], y=[None], mode="lines", line={"dash": "dot", "color": "#555"}, name=f"a blind map: the object's share of the image ({_pct(area)})")
    fig.update_layout(
        **base_layout(
            barmode="group",
            height=360,
            title={"text": "Where the gradients are: share of each model's relevance on the object", "font": {"size": 15}},
            yaxis={"title": "share of positive relevance inside the object", "tickformat": ".0%", "range": [0, top]},
        )
    )
    return fig


def relevance_distribution(df: pd.DataFrame) -> go.Figure:
    """Per-image share of relevance on the object as box plots: x = group, colour = model (one method)."""
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
            title={"text": "Share of relevance on the object, image by image, per group", "font": {"size": 15}},
            yaxis={"title": "share inside the object", "tickformat": ".0%", "range": [0, min(1.05, 1.2 * float(df["share"].max() if len(df) else 1.0) + 0.02)]},
        )
    )
    return fig


#: How the engine's two single swaps are named in charts and sentences.
SWAP_NAMES: dict[str, str] = {"background": "background swapped", "object": "object swapped"}


def _ci_bars(fig: go.Figure, stats: Sequence[Mapping[str, Any] | None], x: Sequence[str], model: str, **kwargs: Any) -> None:
    """One bar trace of means with asymmetric 95% CI error bars (``{mean, ci_low, ci_high, n}`` per x)."""
    mean = [None if s is None else _scalar(s.get("mean")) for s in stats]
    up = [0.0 if s is None or s.get("ci_high") is None else float(s["ci_high"]) - float(s["mean"]) for s in stats]
    down = [0.0 if s is None or s.get("ci_low") is None else float(s["mean"]) - float(s["ci_low"]) for s in stats]
    custom = [[np.nan, np.nan, 0] if s is None else [s.get("ci_low", np.nan), s.get("ci_high", np.nan), s.get("n", 0)] for s in stats]
    fig.add_bar(
        x=list(x),
        y=mean,
        name=method_label(model),
        legendgroup=model,
        marker={"color": method_color(model)},
        error_y={"type": "data", "symmetric": False, "array": up, "arrayminus": down, "color": "#333", "thickness": 1.2, "width": 3},
        customdata=custom,
        hovertemplate=f"{method_label(model)}<br>%{{x}}: %{{y:+.2f}} (95% CI %{{customdata[0]:+.2f}} to %{{customdata[1]:+.2f}}, n = %{{customdata[2]}})<extra></extra>",
        **kwargs,
    )


def effects_chart(effects: Mapping[str, Mapping[str, Any]], groups: Sequence[str]) -> go.Figure:
    """Does the model use the background? Per model, the mean change in the log-odds of its own answer when
    only the background (left) or only the object (right) is swapped, with 95% bootstrap CIs, over all
    D′ images and per group (``microscope.<model>.effects``)."""
    from plotly.subplots import make_subplots

    kinds = [k for k in SWAP_NAMES if any(k in e for e in effects.values())]
    fig = make_subplots(rows=1, cols=len(kinds), shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=[f"only the {k} swapped" for k in kinds])
    x = ["all groups", *groups]
    for j, kind in enumerate(kinds, start=1):
        for model in effects:
            e = effects[model].get(kind)
            if not e:
                continue
            stats = [e.get("overall"), *((e.get("by_group") or {}).get(g) for g in groups)]
            _ci_bars(fig, stats, x, model, showlegend=j == 1, row=1, col=j)
        fig.add_hline(y=0, line_color="#555", line_width=1, row=1, col=j)
    fig.update_yaxes(title_text="change in log-odds of the model's own answer", row=1, col=1)
    fig.update_layout(
        **base_layout(
            barmode="group",
            height=460,
            title={"text": "Does it use the background? Change in confidence when one thing is swapped (below 0 = weaker)", "font": {"size": 15}},
            legend={"orientation": "h", "yanchor": "top", "y": -0.2, "xanchor": "left", "x": 0},
            margin={"l": 10, "r": 10, "t": 70, "b": 10},
        )
    )
    return fig


def swap_attribution_bars(attribution: Mapping[str, Mapping[str, Any]], groups: Sequence[str]) -> go.Figure:
    """Share of the log-odds change between a double swap and the original that integrated gradients put on
    background pixels, per model, overall and per group, with 95% CIs (``microscope.<model>.swap_attribution``)."""
    fig = go.Figure()
    x = ["all groups", *groups]
    lows, highs = [0.0], [1.0]
    for model, a in attribution.items():
        by_group = a.get("background_share_by_group") or {}
        stats = [a.get("background_share"), *(by_group.get(g) for g in groups)]
        _ci_bars(fig, stats, x, model)
        lows += [float(s["ci_low"]) for s in stats if s and s.get("ci_low") is not None]
        highs += [float(s["ci_high"]) for s in stats if s and s.get("ci_high") is not None]
    for y in (0.0, 1.0):
        fig.add_hline(y=y, line_dash="dot", line_color="#555")
    fig.update_layout(
        **base_layout(
            barmode="group",
            height=380,
            title={"text": "Where the evidence sits: share of the swap's log-odds change on background pixels", "font": {"size": 15}},
            yaxis={"title": "share on the background (1 = all, 0 = none)", "tickformat": ".0%",
                   "range": [max(-1.0, min(lows) - 0.1), min(2.0, max(highs) + 0.1)]},
        )
    )
    return fig


#: TCAV verdicts over the engine's repeats: (label, bar opacity, bar pattern, mark after the bar).
TCAV_STATUS: dict[str, tuple[str, float, str, str]] = {
    "significant": ("significant in every repeat", 1.0, "", "★"),
    "unstable": ("significant in some repeats only (unstable)", 0.65, "/", "◐"),
    "not significant": ("not significant", 0.25, "", ""),
}


def tcav_status(record: Mapping[str, Any]) -> str:
    """``significant`` (in every repeat), ``unstable`` (in some) or ``not significant`` (in none)."""
    if record.get("significant"):
        return "significant"
    return "unstable" if record.get("unstable") else "not significant"


def tcav_table(tcav: Sequence[Mapping[str, Any]], texts: Mapping[str, str]) -> pd.DataFrame:
    """One row per concept and class: mean score, its range over repeats and the verdict."""
    rows = [
        {
            "concept": texts.get(t["concept"], t["concept"]),
            "towards": t.get("class", ""),
            "layer": t.get("layer", ""),
            "score (mean)": t.get("score"),
            "lowest": t.get("score_min", t.get("score")),
            "highest": t.get("score_max", t.get("score")),
            "significant in": f"{t.get('significant_repeats', int(bool(t.get('significant'))))} of {t.get('repeats', 1)} repeats",
            "verdict": TCAV_STATUS[tcav_status(t)][0],
        }
        for t in tcav
    ]
    return pd.DataFrame(rows)


def tcav_bars(tcav: Sequence[Mapping[str, Any]], kinds: Mapping[str, str], texts: Mapping[str, str]) -> go.Figure:
    """TCAV score per concept, one panel per class: the bar is the mean over the engine's repeats, the
    whisker its lowest-to-highest range. Solid ★ = significant in every repeat, hatched ◐ = in some
    (unstable), faded = in none. Colour = concept kind (object feature / background / distractor)."""
    from plotly.subplots import make_subplots

    df = pd.DataFrame(list(tcav))
    if df.empty:
        return go.Figure()
    for column, default in (("significant", False), ("unstable", False), ("p_value", np.nan), ("class", "")):
        if column not in df:
            df[column] = default
    df["score_min"] = df["score_min"] if "score_min" in df else df["score"]
    df["score_max"] = df["score_max"] if "score_max" in df else df["score"]
    df["status"] = [tcav_status(r) for r in df.to_dict("records")]
    df["text"] = df["concept"].map(lambda c: texts.get(c, c))
    df["kind"] = df["concept"].map(lambda c: kinds.get(c, "core"))
    classes = list(dict.fromkeys(df["class"].astype(str)))
    order = df.groupby("text")["score"].max().sort_values().index.tolist()
    fig = make_subplots(rows=1, cols=len(classes), shared_yaxes=True, horizontal_spacing=0.03,
                        subplot_titles=[f"towards “{c}”" if c else "" for c in classes])
    for j, cls in enumerate(classes, start=1):
        sub = df[df["class"].astype(str) == cls]
        fig.add_bar(
            orientation="h",
            row=1,
            col=j,
            showlegend=False,
            x=sub["score"],
            y=sub["text"],
            marker={
                "color": [KIND_COLORS.get(k, "#888") for k in sub["kind"]],
                "opacity": [TCAV_STATUS[s][1] for s in sub["status"]],
                "pattern": {"shape": [TCAV_STATUS[s][2] for s in sub["status"]], "fgcolor": "white"},
            },
            error_x={"type": "data", "symmetric": False, "array": (sub["score_max"] - sub["score"]).clip(lower=0),
                     "arrayminus": (sub["score"] - sub["score_min"]).clip(lower=0), "color": "#333", "thickness": 1.2, "width": 3},
            text=[TCAV_STATUS[s][3] for s in sub["status"]],
            textposition="outside",
            customdata=np.stack([sub["score_min"].to_numpy(dtype=float), sub["score_max"].to_numpy(dtype=float),
                                 sub["status"].map(lambda s: TCAV_STATUS[s][0]).to_numpy(), sub["kind"].map(KIND_LABELS).to_numpy()], axis=1),
            hovertemplate="%{y}<br>TCAV score %{x:.2f} (repeats: %{customdata[0]:.2f} to %{customdata[1]:.2f})<br>%{customdata[2]}<br>%{customdata[3]}<extra></extra>",
        )
        fig.add_vline(x=0.5, line_dash="dot", line_color="#555", row=1, col=j)
        fig.update_xaxes(range=[0, 1.15], title_text="TCAV score", row=1, col=j)
    for kind in ("core", "context", "distractor"):  # a legend for the colours and for the verdicts
        fig.add_bar(x=[None], y=[None], name=KIND_LABELS[kind], marker={"color": KIND_COLORS[kind]}, showlegend=True)
    for label, opacity, pattern, mark in TCAV_STATUS.values():
        fig.add_bar(x=[None], y=[None], name=f"{mark} {label}".strip(), opacity=opacity, marker={"color": "#666", "pattern": {"shape": pattern}}, showlegend=True)
    fig.update_yaxes(categoryorder="array", categoryarray=order)
    fig.update_layout(
        **base_layout(
            height=max(320, 130 + 22 * len(order)),
            title={"text": "TCAV: which concepts push the model towards each class (whiskers: range over repeats)", "font": {"size": 15}},
            barmode="overlay",
            legend={"orientation": "h", "yanchor": "top", "y": -0.12, "xanchor": "left", "x": 0},
            margin={"l": 10, "r": 10, "t": 70, "b": 10},
        )
    )
    return fig


def clause_deletion_bars(records: Sequence[Mapping[str, Any]], title: str) -> go.Figure:
    """Per clause, how often deleting it changes L_M's answer where its concept is present vs absent
    (``clause_deletion.<hypothesis>``); a clause that does what it says changes answers only where present."""
    label = [f"{'✓' if r.get('specific') else '✗'} {r.get('text') or r['concept']} → {r['class']}" for r in records]
    fig = go.Figure()
    for where, color in (("present", "#2e7d5b"), ("absent", "#8d99ae")):
        stats = [r.get(where) or {} for r in records]
        fig.add_bar(
            orientation="h",
            name=f"concept {where}",
            y=label,
            x=[s.get("answer_change_rate") for s in stats],
            marker={"color": color},
            text=["no images" if s.get("answer_change_rate") is None else f"{_pct(s['answer_change_rate'])} · drop {float(s.get('mean_drop') or 0):.3f}"
                  for s in stats],
            textposition="outside",
            customdata=[[s.get("n", 0), s.get("mean_drop")] for s in stats],
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


def clause_deletion_table(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The clause-deletion test as a table (rates in %)."""
    rows = []
    for r in records:
        present, absent = r.get("present") or {}, r.get("absent") or {}
        rows.append(
            {
                "clause": f"{r.get('text') or r['concept']} → {r['class']}",
                "weight": r.get("weight"),
                "answers changed, concept present": _pct100(present.get("answer_change_rate")),
                "mean drop, present": present.get("mean_drop"),
                "answers changed, concept absent": _pct100(absent.get("answer_change_rate")),
                "mean drop, absent": absent.get("mean_drop"),
                "images present / absent": f"{present.get('n', 0)} / {absent.get('n', 0)}",
                "specific": "yes" if r.get("specific") else "no",
            }
        )
    return pd.DataFrame(rows)


def rho_sweep(results: pd.DataFrame, methods: Sequence[str], run_rho: float | None = None) -> go.Figure:
    """The benchmark's worst-group accuracy against ρ (class–background correlation in D): mean ± std over
    seeds per method (``docs/results_methods.csv``); a dotted line marks this run's ρ."""
    fig = go.Figure()
    agg = results.groupby(["method", "rho"])["worst_group_acc"].agg(["mean", "std", "count"]).reset_index()
    for m in methods:
        sub = agg[agg["method"] == m].sort_values("rho")
        if sub.empty:
            continue
        fig.add_scatter(
            x=sub["rho"],
            y=sub["mean"],
            mode="lines+markers",
            name=method_short(m),
            line={"color": method_color(m)},
            error_y={"type": "data", "array": sub["std"].fillna(0.0), "thickness": 1.2, "width": 4},
            customdata=np.stack([sub["std"].fillna(0.0).to_numpy(), sub["count"].to_numpy()], axis=1),
            hovertemplate=f"{method_short(m)}<br>ρ = %{{x}}: %{{y:.1%}} ± %{{customdata[0]:.1%}} over %{{customdata[1]}} seeds<extra></extra>",
        )
    if run_rho is not None:
        fig.add_vline(x=run_rho, line_dash="dot", line_color="#555", annotation_text="this run's ρ", annotation_position="top left")
    fig.update_layout(
        **base_layout(
            height=380,
            title={"text": "Benchmark: worst-group accuracy as the shortcut gets stronger", "font": {"size": 15}},
            xaxis={"title": "ρ (share of D on its class's usual background)"},
            yaxis={"title": "worst-group accuracy on D′", "tickformat": ".0%", "range": [0, 1.05]},
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
