"""How the methods do on D′: accuracy bars, accuracy per group, the benchmark's ρ sweep, and stage times."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.components.style import base_layout, method_color, method_short, order_methods
from dashboard.components.text import percent
from igcore.schema import MethodMetrics, StageRecord


def accuracy_bars(methods: Mapping[str, MethodMetrics]) -> go.Figure:
    """Average (solid) and worst-group (hatched) accuracy on D′ per method, one colour per method."""
    names = order_methods(methods)
    labels = [method_short(n) for n in names]
    colors = [method_color(n) for n in names]
    fig = go.Figure()
    fig.add_bar(
        name="average accuracy",
        x=labels,
        y=[methods[n].avg_acc for n in names],
        marker={"color": colors},
        text=[percent(methods[n].avg_acc) for n in names],
        textposition="outside",
        hovertemplate="%{x}<br>average accuracy %{y:.1%}<extra></extra>",
    )
    fig.add_bar(
        name="worst-group accuracy",
        x=labels,
        y=[methods[n].worst_group_acc for n in names],
        marker={"color": colors, "pattern": {"shape": "/", "fillmode": "overlay", "fgcolor": "white"}, "opacity": 0.75},
        text=[percent(methods[n].worst_group_acc) for n in names],
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


def group_heatmap(methods: Mapping[str, MethodMetrics], groups: Sequence[str], covers: Mapping[str, Sequence[str]] | None = None) -> go.Figure:
    """Methods × groups accuracy heat map (red = wrong most of the time, green = right). ``covers`` (per
    background, the place categories it stands for) is written under each group's name."""
    names = order_methods(methods)
    z = [[methods[n].group_acc.get(g) for g in groups] for n in names]
    text = [[percent(v) for v in row] for row in z]
    ticks = [f"{g}<br><sub>({', '.join(covers[g.split('/', 1)[1]])})</sub>" if covers and "/" in g and covers.get(g.split("/", 1)[1])
             else g for g in groups]
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
            height=110 + 42 * len(names),
            title={"text": "Accuracy per group (class / background) on D′", "font": {"size": 15}},
            yaxis={"autorange": "reversed"},
            xaxis={"side": "bottom", "tickvals": list(groups), "ticktext": ticks},
        )
    )
    return fig


def rho_sweep(results: pd.DataFrame, methods: Sequence[str], run_rho: float | None = None, world: str = "") -> go.Figure:
    """The benchmark's worst-group accuracy against ρ (class–background correlation in D): mean ± std over
    seeds per method (``docs/results_methods.csv``); a dotted line marks this run's ρ. ``world`` names the
    world the benchmark measured, in the title."""
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
    where = f" (benchmark on the {world} world)" if world else " (benchmark)"
    fig.update_layout(
        **base_layout(
            height=380,
            title={"text": f"Worst-group accuracy as the shortcut gets stronger{where}", "font": {"size": 15}},
            xaxis={"title": "ρ (share of D on its class's usual background)"},
            yaxis={"title": "worst-group accuracy on D′", "tickformat": ".0%", "range": [0, 1.05]},
        )
    )
    return fig


def stage_times(stages: Mapping[str, StageRecord]) -> go.Figure:
    """Wall time of each pipeline stage, in run order: when every stage recorded when it started, a timeline (each
    bar from its start to its end, so the stages that ran at once overlap), else one bar per stage."""
    names = list(stages)
    seconds = [stages[n].seconds for n in names]
    schedules = [stages[n].schedule for n in names]
    height = 80 + 22 * len(names)
    if not names or any(s is None for s in schedules):
        fig = go.Figure(go.Bar(x=seconds, y=names, orientation="h", marker={"color": "#8d99ae"}))
        fig.update_layout(**base_layout(height=height, title={"text": "Wall time per pipeline stage (s)", "font": {"size": 14}}, yaxis={"autorange": "reversed"}))
        return fig
    started = [s.started_s for s in schedules if s is not None]
    hover = [
        f"{n}: {t:.1f} s, from {s.started_s:.1f} s to {s.started_s + t:.1f} s; {s.stages_at_once} stage(s) running"
        + ("" if s.others_busy_cpus is None else f"; other processes kept {s.others_busy_cpus:.1f} CPU(s) busy")
        for n, t, s in zip(names, seconds, schedules, strict=True) if s is not None
    ]
    fig = go.Figure(go.Bar(x=seconds, base=started, y=names, orientation="h", marker={"color": "#8d99ae"},
                           hovertext=hover, hoverinfo="text"))
    end = max(b + t for b, t in zip(started, seconds, strict=True))
    fig.update_layout(**base_layout(
        height=height, title={"text": f"When each pipeline stage ran (s since the first started; {end:.0f} s in all)", "font": {"size": 14}},
        yaxis={"autorange": "reversed"}, xaxis={"title": "seconds since the first stage started"},
    ))
    return fig
