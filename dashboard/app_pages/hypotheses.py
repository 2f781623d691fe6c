"""Hypotheses: the ranked alternatives, prior vs likelihood, one hypothesis read as a field guide."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import data, engine, session
from dashboard import state as codec
from dashboard.components import charts, images, text, widgets
from dashboard.components.style import KIND_COLORS, KIND_LABELS

ctx = session.context()
if ctx.ref is None:
    widgets.no_run(ctx.root)
ref = ctx.ref
metrics = ctx.metrics
world = metrics.get("world", {})
classes = world.get("classes", [])
hyps = metrics.get("hypotheses", {})
ranked = hyps.get("ranked") or []


def z_star_index(ranked: list[dict], z_star: list[dict] | None) -> int:
    """Position of z* in the ranked list (same clause structure), else the highest posterior."""
    if z_star:
        want = {(c["concept"], c["class"]) for c in z_star}
        for i, r in enumerate(ranked):
            if {(c["concept"], c["class"]) for c in r.get("clauses") or []} == want:
                return i
    posts = [float(r.get("posterior") or 0) for r in ranked]
    return int(np.argmax(posts)) if posts else 0


star = z_star_index(ranked, hyps.get("z_star"))
selected = codec.choose_index(ctx.view.hyp, len(ranked), star, "hypothesis number", ctx.notes) if ranked else 0
ctx.view = replace(ctx.view, hyp=selected)
session.publish(ctx, ["hyp"])


def _on_pick() -> None:
    session.set_view(hyp=int(st.session_state["w_hyp"]))


def _on_click() -> None:
    """A click on a point of the scatter selects that hypothesis (trace 0 holds them in rank order)."""
    event = st.session_state.get("hyp_scatter")
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    for p in points:
        if p.get("curve_number", 0) != 0:
            continue
        pick = p.get("point_index", p.get("point_number"))
        if isinstance(pick, int) and 0 <= pick < len(ranked):
            st.session_state["w_hyp"] = pick
            session.set_view(hyp=pick)
            return


widgets.page_header(
    "Hypotheses: which explanation of D is most believable?",
    "IG scores every candidate field guide *z* twice: **how plausible it is to a person** (the learned prior) "
    "and **how well it explains the labelled images D** (the likelihood). The best total is **z\\***.",
)
session.show_notes(ctx.notes)

if not ranked:
    with session.guard("Ranked hypotheses"):
        raise session.NotComputed("The hypothesis search has not produced a ranked list (`hypotheses.ranked`) for this run.")
    st.stop()

rows = []
for i, r in enumerate(ranked):
    clauses = r.get("clauses") or []
    rows.append(
        {
            "#": i + 1,
            "z*": "★" if i == star else "",
            "hypothesis": "; ".join(f"{c.get('text') or c['concept']} → {c['class']}" for c in clauses) or "(empty)",
            "clauses": len(clauses),
            "posterior": r.get("posterior"),
            "log prior": r.get("log_prior"),
            "log likelihood": r.get("log_likelihood"),
            "log posterior": r.get("log_posterior"),
        }
    )

top_left, top_right = st.columns([0.55, 0.45])
with top_left:
    st.subheader("Prior vs likelihood")
    with session.guard("Prior-vs-likelihood chart"):
        widgets.chart(
            charts.posterior_scatter(ranked, selected),
            "hyp_scatter",
            "Click a point to read that hypothesis below. Up = explains D better; right = more plausible to people.",
            run_id=ref.run_id,
            on_select=_on_click,
            selection_mode="points",
        )
with top_right:
    st.subheader("Ranked list")
    session.bind("w_hyp", selected)
    st.selectbox(
        "Selected hypothesis",
        list(range(len(ranked))),
        key="w_hyp",
        format_func=lambda i: text.hypothesis_label(i, ranked[i]) + (" ★ z*" if i == star and i != 0 else ""),
        on_change=_on_pick,
    )
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        height=min(330, 40 + 35 * len(rows)),
        column_config={
            "posterior": st.column_config.ProgressColumn(format="%.3f", min_value=0.0, max_value=1.0),
            "log prior": st.column_config.NumberColumn(format="%.2f"),
            "log likelihood": st.column_config.NumberColumn(format="%.2f"),
            "log posterior": st.column_config.NumberColumn(format="%.2f"),
            "hypothesis": st.column_config.TextColumn(width="large"),
        },
    )
    st.caption("Posterior = prior × likelihood, normalised over the candidates the search kept.")

record = ranked[selected]
clauses = record.get("clauses") or []
st.divider()
badge = " — this is **z\\***" if selected == star else ""
st.subheader(f"Hypothesis #{selected + 1} as a field guide")
st.markdown(f"{text.summary_sentence(clauses, 'This hypothesis', classes, verb='says that')}{badge}")
with session.guard("The engine's rendering"):
    st.caption("In the engine's words: " + engine.render_text(record, metrics))

with session.guard("Field guide"):
    bank = data.tensors(ref, "concept_bank")
    vocab_ids = [v["id"] for v in world.get("vocabulary", [])]
    if not clauses:
        st.info("This hypothesis has no clauses: it always predicts by the class biases alone.")
    for c in sorted(clauses, key=lambda c: (str(c.get("class")), -float(c.get("weight", 0)))):
        kind = c.get("kind", "core")
        with st.container(border=True):
            left, right = st.columns([0.35, 0.65], vertical_alignment="center")
            with left:
                st.markdown(
                    f"<span style='background:{KIND_COLORS.get(kind, '#888')};color:white;border-radius:4px;padding:1px 6px;font-size:0.8em'>"
                    f"{KIND_LABELS.get(kind, kind)}</span>",
                    unsafe_allow_html=True,
                )
                st.markdown(text.clause_sentence(c))
            with right:
                if bank is None or c["concept"] not in vocab_ids:
                    st.caption("No concept-bank examples stored in this run.")
                    continue
                k = vocab_ids.index(c["concept"])
                has = np.flatnonzero(bank["concepts"][:, k] > 0.5)
                if not len(has):
                    st.caption("The concept bank has no image showing this concept.")
                    continue
                pick = np.sort(np.random.default_rng(k).choice(has, size=min(5, len(has)), replace=False))  # varied, stable
                widgets.image_strip([images.overlay(bank["images"][i], factor=2) for i in pick], [f"bank #{i}" for i in pick], columns=5, width=110)
    st.caption("Examples come from the concept bank: images annotated with each concept, collected independently of the task labels.")

st.divider()
st.subheader("Where this hypothesis and z* disagree on D′")
with session.guard("Disagreements on D′"):
    proba_sel = engine.predict_proba(ref, record)
    proba_star = engine.predict_proba(ref, ranked[star])
    pred_sel, pred_star = proba_sel.argmax(1), proba_star.argmax(1)
    split = data.table(ref, "split_test_eval")
    test = data.tensors(ref, "test_eval")
    labels = split["label"].to_numpy() if split is not None else None
    c1, c2, c3 = st.columns(3)
    disagree = np.flatnonzero(pred_sel != pred_star)
    c1.metric("D′ images where they disagree", f"{len(disagree)} of {len(pred_sel)}")
    if labels is not None:
        c2.metric(f"Hypothesis #{selected + 1} accuracy on D′", f"{100 * (pred_sel == labels).mean():.1f}%")
        c3.metric("z* accuracy on D′", f"{100 * (pred_star == labels).mean():.1f}%")
    if selected == star:
        st.caption("This is z* itself; pick another hypothesis to see the images on which they disagree.")
    elif not len(disagree):
        st.success("They label every D′ image the same way.")
    elif test is not None:
        show = disagree[:12]
        caps = []
        for i in show:
            truth = f"true: {classes[labels[i]]} · " if labels is not None else ""
            caps.append(f"#{i} · {truth}this: {classes[pred_sel[i]]} · z*: {classes[pred_star[i]]}")
        widgets.image_strip([images.overlay(test["images"][i], mask=test["masks"][i], factor=2) for i in show], caps, columns=6, width=140)
        st.caption(f"Showing {len(show)} of {len(disagree)}. Predictions are L_M(y | x, z) on the stored concept scores; the cyan line outlines the animal.")
