"""Hypotheses: the ranked alternatives, prior vs likelihood, one hypothesis read as a field guide, and the
clause-deletion test of z* and z_baseline (does each clause do what it says?)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import engine, session, url_state
from dashboard.components import figures, images, tables, text, widgets
from dashboard.components.style import KIND_COLORS, KIND_LABELS
from dashboard.escape import css_color, html_text
from dashboard.page import open_page
from dashboard.run_view import RunView, hypothesis_name
from igcore.discover.names import KIND as DISCOVERED
from igcore.hypothesis import implausible_sentence
from igcore.likelihood import SPECIFIC_ALPHA


def _choose(run: RunView, view: url_state.ViewState, notes: list[str]) -> url_state.ViewState:
    """The hypothesis in the link (numbered from 1, as on the page) if the run has it, else z*."""
    if run.missing("hypotheses.ranked", "ranked list of hypotheses"):
        return replace(view, hyp=None)
    star = run.z_star_rank + 1
    return replace(view, hyp=url_state.choose_index(view.hyp, len(run.ranked), star, "hypothesis number", notes, first=1,
                                                    shown=f"#{star} (z*)"))


page = open_page(
    "Hypotheses: which explanation of D is most believable?",
    "IG scores every candidate field guide *z* twice: **how plausible it is to a person** (the learned prior) "
    "and **how well it explains the labelled images D** (the likelihood). The best total is **z\\***.",
    keys=["hyp"],
    choose=_choose,
)
run = page.run
if note := run.judgments_note():
    st.caption(note)
page.require("hypotheses.ranked", "ranked list of hypotheses")
if warning := implausible_sentence([c.model_dump(by_alias=True) for c in run.hypotheses.z_star_implausible], run.concept_texts):
    st.warning(warning)
ranked = run.ranked
star = run.z_star_rank
selected = (page.view.hyp or star + 1) - 1  # position in ranked, from 0


@st.cache_data(show_spinner=False, max_entries=1024)
def bank_png(run: RunView, index: int) -> bytes:
    """PNG of concept-bank image ``index``, encoded once per run."""
    return images.png_bytes(images.overlay(run.concept_bank()["images"][index], factor=2))


def _select(index: int) -> None:
    """Select ``ranked[index]`` (from 0): the widgets, the URL (from 1) and the session's view."""
    st.session_state["w_hyp"] = index
    session.set_view(hyp=index + 1)


def _on_pick() -> None:
    session.set_view(hyp=int(st.session_state["w_hyp"]) + 1)


def _on_click() -> None:
    """A click on a point of the scatter selects that hypothesis (trace 0 holds them in rank order)."""
    event = st.session_state.get("hyp_scatter")
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    for p in points:
        if p.get("curve_number", 0) != 0:
            continue
        pick = p.get("point_index", p.get("point_number"))
        if isinstance(pick, int) and 0 <= pick < len(ranked):
            _select(pick)
            return


def _on_row() -> None:
    """A click on a row of the ranked table selects that hypothesis (rows are in rank order)."""
    rows = ((st.session_state.get("hyp_table") or {}).get("selection") or {}).get("rows") or []
    if rows and 0 <= int(rows[0]) < len(ranked):
        _select(int(rows[0]))


rows = [
    {
        "#": i + 1,
        "z*": "★" if i == star else "",
        "hypothesis": "; ".join(f"{c.text or c.concept} → {c.cls}" for c in r.clauses) or "(empty)",
        "clauses": len(r.clauses),
        "posterior": r.posterior,
        "log prior": r.log_prior,
        "log likelihood": r.log_likelihood,
        "log posterior": r.log_posterior,
    }
    for i, r in enumerate(ranked)
]

top_left, top_right = st.columns([0.55, 0.45])
with top_left:
    st.subheader("Prior vs likelihood")
    widgets.chart(
        figures.run_figure(run, "posterior", selected),
        "hyp_scatter",
        "Click a point to read that hypothesis below. Up = explains D better; right = more plausible to people.",
        run_id=run.run_id,
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
        format_func=lambda i: text.hypothesis_label(i, ranked[i], i == star),
        on_change=_on_pick,
    )
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        key="hyp_table",
        on_select=_on_row,
        selection_mode="single-row",
        height=min(330, 40 + 35 * len(rows)),
        column_config={
            "posterior": st.column_config.ProgressColumn(format="%.3f", min_value=0.0, max_value=1.0),
            "log prior": st.column_config.NumberColumn(format="%.2f"),
            "log likelihood": st.column_config.NumberColumn(format="%.2f"),
            "log posterior": st.column_config.NumberColumn(format="%.2f"),
            "hypothesis": st.column_config.TextColumn(width="large"),
        },
    )
    st.caption("Click a row (or a point) to read that hypothesis below. Posterior = prior × likelihood, normalised over the "
               "candidates the search kept.")

record = ranked[selected].model_dump(by_alias=True)
clauses = run.ranked_clauses(selected)
st.divider()
badge = " — this is **z\\***" if selected == star else ""
st.subheader(f"Hypothesis #{selected + 1} as a field guide")
st.markdown(f"{run.summary(clauses, 'This hypothesis', verb='says that')}{badge}")
if selected == star and any(c.get("specific") is False for c in clauses):
    st.caption("“not specific”: the clause-deletion test below found that deleting the clause does not change L_M's answers more "
               "often where its concept is present than where it is absent, beyond chance.")
st.caption("In the engine's words: " + engine.render_text(record, run))

with session.guard("Field guide"):
    bank = run.concept_bank()
    vocab_ids = run.concept_ids
    if not clauses:
        st.info("This hypothesis has no clauses: it always predicts by the class biases alone.")
    for c in sorted(clauses, key=lambda c: (c["class"], -c["weight"])):
        with st.container(border=True):
            left, right = st.columns([0.35, 0.65], vertical_alignment="center")
            with left:
                st.markdown(
                    f"<span style='background:{css_color(KIND_COLORS.get(c['kind']))};color:white;border-radius:4px;padding:1px 6px;"
                    f"font-size:0.8em'>{html_text(KIND_LABELS.get(c['kind'], c['kind']))}</span>",
                    unsafe_allow_html=True,
                )
                st.markdown(text.clause_line(c))
            with right:
                if c["kind"] == DISCOVERED:  # nobody annotated images of it
                    shown = widgets.exemplar_pngs(run, c["concept"])[:5]
                    widgets.image_strip([png for _, png, _ in shown], [f"D′ #{i}" for i, _, _ in shown], columns=5, width=110)
                    st.caption("Discovered in a model, not annotated: the D′ images where it is most present, its map over "
                               "them (the Discover page shows more).")
                    continue
                k = vocab_ids.index(c["concept"])
                has = np.flatnonzero(bank["concepts"][:, k] > 0.5)
                if not len(has):
                    st.caption("The concept bank has no image showing this concept.")
                    continue
                pick = np.sort(np.random.default_rng(k).choice(has, size=min(5, len(has)), replace=False))  # varied, stable
                widgets.image_strip([bank_png(run, int(i)) for i in pick], [f"bank #{i}" for i in pick], columns=5, width=110)
    st.caption("Examples of an annotated concept come from the concept bank, the images annotated with the concepts that the "
               "concept model learned them from; those of a discovered concept are the D′ images where it is most present.")

if run.renamed:
    st.divider()
    st.subheader("z* in the names given since this run")
    with session.guard("z* re-solved in the named words"):
        solved = engine.resolve_named(run)
        given = ", ".join(f"“{run.concept_texts[c]}”" for c in run.renamed)
        st.markdown(f"People named {len(run.renamed)} discovered concept(s) on the Discover page since this run was solved ({given}). "
                    "The hypotheses above are the run's, with their concepts in today's names. Re-solved on the run's own judgments "
                    "in the named words (Prior_M reading the names), z* becomes:")
        st.markdown(f"**{run.summary(solved['z_star'], 'This hypothesis', verb='says that')}**")
        for c in sorted(solved["z_star"], key=lambda c: (c["class"], -c["weight"])):
            st.markdown(f"- {text.clause_line(c)}")
        st.caption("In the engine's words: " + solved["text"])
        if warning := implausible_sentence(solved["implausible"], run.concept_texts):
            st.warning(warning)

st.divider()
st.subheader("Where this hypothesis and z* disagree on D′")
with session.guard("Disagreements on D′"):
    pred_sel = engine.predict_proba(run, record).argmax(1)
    pred_star = engine.predict_proba(run, ranked[star].model_dump(by_alias=True)).argmax(1)
    labels = run.split("test_eval")["label"].to_numpy()
    c1, c2, c3 = st.columns(3)
    disagree = np.flatnonzero(pred_sel != pred_star)
    c1.metric("D′ images where they disagree", f"{len(disagree)} of {len(pred_sel)}")
    c2.metric(f"Hypothesis #{selected + 1} accuracy on D′", text.percent((pred_sel == labels).mean()))
    c3.metric("z* accuracy on D′", text.percent((pred_star == labels).mean()))
    if selected == star:
        st.caption("This is z* itself; pick another hypothesis to see the images on which they disagree.")
    elif not len(disagree):
        st.success("They label every D′ image the same way.")
    else:
        show = disagree[:12]
        caps = [f"#{i} · true: {run.classes[labels[i]]} · this: {run.classes[pred_sel[i]]} · z*: {run.classes[pred_star[i]]}" for i in show]
        widgets.image_strip([widgets.test_image_png(run, int(i)) for i in show], caps, columns=6, width=140)
        outline = "; the cyan line outlines the object" if run.has_masks else ""
        st.caption(f"Showing {len(show)} of {len(disagree)}. Predictions are L_M(y | x, z) on the stored concept scores{outline}.")

st.divider()
st.subheader("Does each clause do what it says? (clause deletion)")
st.markdown(
    "Delete one clause and let L_M answer again on D′. A clause that reads its concept should change answers **where the concept is "
    "present** (by the data's own annotations; for a discovered concept, where its estimated presence is at least one half) and leave the rest alone. The engine calls a clause *specific* when the share of "
    "answers that change is larger where its concept is present than where it is absent beyond chance (a one-sided Fisher exact "
    f"test at level {SPECIFIC_ALPHA:g}), and the mean drop in its class's probability is larger there too."
)
left, right = st.columns(2)
for col, key in ((left, "z_star"), (right, "z_baseline")):
    name = hypothesis_name(key)
    with col, session.guard(f"Clause deletion of {name}"):
        records = run.clause_deletion(key)
        if not records:
            st.info(f"{name} has no clauses, so there is nothing to delete.")
            continue
        widgets.chart(
            figures.run_figure(run, "clause_deletion", key),
            f"hyp_deletion_{key}",
            "Answers changed when the clause is deleted, where its concept is present (green) and absent (grey); "
            "the label gives the mean drop in the probability of the clause's class. ✓ = specific.",
            run_id=run.run_id,
        )
        pct = st.column_config.NumberColumn(format="%.1f%%")
        drop = st.column_config.NumberColumn(format="%.3f")
        st.dataframe(
            tables.clause_deletion_table(records),
            hide_index=True,
            width="stretch",
            column_config={
                "weight": st.column_config.NumberColumn(format="%.2f"),
                "answers changed, concept present": pct,
                "answers changed, concept absent": pct,
                "mean drop, present": drop,
                "mean drop, absent": drop,
            },
        )
