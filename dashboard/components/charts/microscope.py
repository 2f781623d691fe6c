"""The microscope as figures: counterfactual effects, where integrated gradients put a swap's evidence,
relevance on the object, and TCAV with its repeats."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.components.style import (
    KIND_COLORS,
    KIND_LABELS,
    attribution_label,
    base_layout,
    method_color,
    method_label,
)
from dashboard.components.text import percent
from igcore.schema import Effect, Interval, MicroscopeSection, SwapAttribution, TCAVRecord

#: How the engine's two single swaps are named in charts and sentences.
SWAP_NAMES: dict[str, str] = {"background": "background swapped", "object": "object swapped"}


def relevance_bars(microscope: Mapping[str, MicroscopeSection]) -> go.Figure:
    """Mean share of positive attribution inside the object's mask, per attribution method and model."""
    fig = go.Figure()
    for model, section in microscope.items():
        rel = {method: share for method, share in section.relevance_on_animal.items() if share is not None}
        if not rel:
            continue
        methods = sorted(rel)
        fig.add_bar(
            name=method_label(model),
            x=[attribution_label(m) for m in methods],
            y=[rel[m] for m in methods],
            marker={"color": method_color(model)},
            text=[percent(rel[m]) for m in methods],
            textposition="outside",
            hovertemplate=f"{method_label(model)}<br>%{{x}}: %{{y:.1%}} of relevance on the object<extra></extra>",
        )
    area = next((s.mask_area_share for s in microscope.values() if s.mask_area_share is not None), None)
    values = [v for s in microscope.values() for v in s.relevance_on_animal.values() if v is not None]
    top = min(1.1, 1.3 * max([*values, area or 0.0, 0.1]))
    if area is not None:
        fig.add_hline(y=area, line_dash="dot", line_color="#555")
        fig.add_scatter(x=[None], y=[None], mode="lines", line={"dash": "dot", "color": "#555"}, name=f"a blind map: the object's share of the image ({percent(area)})")
    fig.update_layout(
        **base_layout(
            barmode="group",
            height=360,
            title={"text": "Where the gradients are: share of each model's relevance on the object", "font": {"size": 15}},
            yaxis={"title": "share of positive relevance inside the object", "tickformat": ".0%", "range": [0, top]},
        )
    )
    return fig


def relevance_distribution(df: pd.DataFrame, groups: Sequence[str]) -> go.Figure:
    """Per-image share of relevance on the object as box plots: x = group (in the world's order), colour =
    model (one attribution method)."""
    fig = go.Figure()
    for model in dict.fromkeys(df["model"]):
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
            xaxis={"categoryorder": "array", "categoryarray": list(groups)},
            yaxis={"title": "share inside the object", "tickformat": ".0%", "range": [0, min(1.05, 1.2 * float(df["share"].max() if len(df) else 1.0) + 0.02)]},
        )
    )
    return fig


def _ci_bars(fig: go.Figure, stats: Sequence[Interval | None], x: Sequence[str], model: str, **kwargs: Any) -> None:
    """One bar trace of means (log-odds) with asymmetric 95% CI error bars, one per x."""
    mean = [None if s is None else s.mean for s in stats]
    up = [0.0 if s is None or s.ci_high is None or s.mean is None else s.ci_high - s.mean for s in stats]
    down = [0.0 if s is None or s.ci_low is None or s.mean is None else s.mean - s.ci_low for s in stats]
    custom = [[np.nan, np.nan, 0] if s is None else [s.ci_low, s.ci_high, s.n] for s in stats]
    fig.add_bar(
        x=list(x),
        y=mean,
        name=method_label(model),
        legendgroup=model,
        marker={"color": method_color(model)},
        error_y={"type": "data", "symmetric": False, "array": up, "arrayminus": down, "color": "#333", "thickness": 1.2, "width": 3},
        customdata=custom,
        hovertemplate=f"{method_label(model)}<br>%{{x}}: %{{y:+.2f}} log-odds (95% CI %{{customdata[0]:+.2f}} to %{{customdata[1]:+.2f}}, n = %{{customdata[2]}})<extra></extra>",
        **kwargs,
    )


def _interval_panels(panels: Mapping[str, Mapping[str, Sequence[Interval | None]]], x: Sequence[str], y_title: str,
                     title: str, height: int) -> go.Figure:
    """Panels side by side (one per title of ``panels``), each with one bar per model and x of a mean in
    log-odds and its 95% CI, and a line at 0."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(panels), shared_yaxes=True, horizontal_spacing=0.04, subplot_titles=list(panels))
    for j, per_model in enumerate(panels.values(), start=1):
        for model, stats in per_model.items():
            _ci_bars(fig, stats, x, model, showlegend=j == 1, row=1, col=j)
        fig.add_hline(y=0, line_color="#555", line_width=1, row=1, col=j)
    fig.update_yaxes(title_text=y_title, row=1, col=1)
    fig.update_layout(
        **base_layout(
            barmode="group",
            height=height,
            title={"text": title, "font": {"size": 15}},
            legend={"orientation": "h", "yanchor": "top", "y": -0.2, "xanchor": "left", "x": 0},
            margin={"l": 10, "r": 10, "t": 70, "b": 10},
        )
    )
    return fig


def effects_chart(effects: Mapping[str, Mapping[str, Effect]], groups: Sequence[str]) -> go.Figure:
    """Does the model use the background? Per model, the mean change in the log-odds of its own answer when
    only the background (left) or only the object (right) is swapped, with 95% bootstrap CIs, over all
    D′ images and per group (``microscope.<model>.effects``)."""
    kinds = [k for k in SWAP_NAMES if any(k in e for e in effects.values())]
    panels = {
        f"only the {kind} swapped": {m: [e[kind].overall, *(e[kind].by_group.get(g) for g in groups)] for m, e in effects.items() if kind in e}
        for kind in kinds
    }
    return _interval_panels(panels, ["all groups", *groups], "change in log-odds of the model's own answer",
                            "Does it use the background? Change in confidence when one thing is swapped (below 0 = weaker)", 460)


#: The two parts of a swap's attribution: field of :class:`SwapAttribution` -> panel title.
SWAP_PARTS: dict[str, str] = {"background_log_odds": "on background pixels", "object_log_odds": "on the objects' pixels"}


def swap_parts_chart(attribution: Mapping[str, SwapAttribution], groups: Sequence[str]) -> go.Figure:
    """Where integrated gradients put each model's change in log-odds between a double swap and the
    original: the part on background pixels (left) and on the objects' pixels (right), in log-odds, with
    95% CIs, over all images and per group where the run has them (``microscope.<model>.swap_attribution``)."""
    shown = list(groups) if any(getattr(a, f"{part}_by_group") for a in attribution.values() for part in SWAP_PARTS) else []
    panels = {
        name: {m: [getattr(a, part), *(getattr(a, f"{part}_by_group").get(g) for g in shown)] for m, a in attribution.items()}
        for part, name in SWAP_PARTS.items()
    }
    return _interval_panels(panels, ["all groups", *shown], "log-odds of the model's answer (original − double swap)",
                            "Where the evidence sits: the swap's change in log-odds, split by where the pixels are", 420)


#: TCAV verdicts over the engine's repeats: (label, bar opacity, bar pattern, mark after the bar).
TCAV_STATUS: dict[str, tuple[str, float, str, str]] = {
    "significant": ("significant in every repeat", 1.0, "", "★"),
    "unstable": ("significant in some repeats only (unstable)", 0.65, "/", "◐"),
    "not significant": ("not significant", 0.25, "", ""),
}


def tcav_bars(tcav: Sequence[TCAVRecord], kinds: Mapping[str, str], texts: Mapping[str, str]) -> go.Figure:
    """TCAV score per concept, one panel per class: the bar is the mean over the engine's repeats, the
    whisker its lowest-to-highest range. Solid ★ = significant in every repeat, hatched ◐ = in some
    (unstable), faded = in none. Colour = concept kind (object feature / background / distractor)."""
    from plotly.subplots import make_subplots

    if not tcav:
        return go.Figure()
    df = pd.DataFrame({
        "concept": [t.concept for t in tcav],
        "class": [t.cls for t in tcav],
        "score": [t.score for t in tcav],
        "score_min": [t.score if t.score_min is None else t.score_min for t in tcav],
        "score_max": [t.score if t.score_max is None else t.score_max for t in tcav],
        "status": [t.status for t in tcav],
    })
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
    for kind in (k for k in KIND_LABELS if k in set(df["kind"])):  # a legend for the colours present and for the verdicts
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
