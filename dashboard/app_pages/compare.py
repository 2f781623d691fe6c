"""Compare: what IG learned (z*) and what the baseline does (z_baseline), side by side, with the
counterfactual evidence of whether each model uses the background, and the images where the readings part."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from dashboard import engine, session, url_state
from dashboard.components import evidence, figures, text, widgets
from dashboard.components.figures import CLAUSES_CAPTION
from dashboard.components.style import KIND_LABELS, attribution_label, method_color, method_label, possessive
from dashboard.explanations import explain
from dashboard.page import open_page
from dashboard.run_view import RunView
from igcore.hypothesis import CONTEXT_KINDS, with_article
from igcore.schema import pred_column

#: Disagreements between the baseline and the IG student shown with their maps.
DISAGREEMENTS = 5
#: D′ images shown where z_baseline and the baseline answer differently.
SURROGATE_MISSES = 6


def _choose(run: RunView, view: url_state.ViewState, notes: list[str]) -> url_state.ViewState:
    methods = run.attribution_methods
    return replace(
        view,
        method=url_state.choose(view.method, methods, methods[0], "attribution method", notes),
        cls=url_state.choose(view.cls, run.classes, None, "class", notes, shown=f"the last class ({url_state.shorten_code(run.classes[-1])})"),
    )


page = open_page(
    "Compare: what it should have learned vs what it did learn",
    "Both hypotheses are written in the same language of concepts: **z\\*** is what IG learned from the human prior and D; "
    "**z_baseline** is a readable stand-in fitted to the baseline's own answers.",
    keys=["method", "cls"],
    choose=_choose,
)
run = page.run
method = page.view.method
classes, groups = run.classes, run.groups

left, right = st.columns(2)
for col, key, title, color, who in (
    (left, "z_star", "z* (Imitative Generalization)", method_color("ig_student"), "IG"),
    (right, "z_baseline", "z_baseline (what the baseline does)", method_color("erm"), "The baseline"),
):
    with col, st.container(border=True):
        st.markdown(f"<h4 style='color:{color};margin-bottom:0'>{title}</h4>", unsafe_allow_html=True)
        with session.guard(title):
            clauses = run.clauses(key)
            st.markdown(f"**{run.summary(clauses, who)}**")
            st.caption("Field guide: " + (run.hypothesis_text(key) or engine.render_text(clauses, run)))
            widgets.chart(figures.run_figure(run, "clauses", key), f"compare_{key}", CLAUSES_CAPTION, run_id=run.run_id)

with st.expander("The ablation: the same search without the human prior (likelihood only)"), session.guard("No-prior ablation"):
    no_prior = run.clauses("no_prior")
    st.markdown(f"**{run.summary(no_prior, 'Without the prior, IG')}**")
    st.caption("Field guide: " + (run.hypothesis_text("no_prior") or engine.render_text(no_prior, run)))
    crept = sorted({KIND_LABELS[r["kind"]] for r in no_prior if r.get("kind") in CONTEXT_KINDS} - {KIND_LABELS[r["kind"]] for r in run.clauses("z_star") if r.get("kind") in CONTEXT_KINDS})
    widgets.chart(figures.run_figure(run, "clauses", "no_prior"), "compare_no_prior",
                  "What the data alone supports" + (f": {' and '.join(k + ' clauses' for k in crept)} creep in without the prior." if crept else "."),
                  run_id=run.run_id)

fidelity = text.fidelity_sentence(run.surrogate("z_baseline"), "z_baseline", "the baseline's")
if fidelity:
    st.caption(f"{fidelity} That is its fidelity: read z_baseline as a description of the baseline only that far (the images where they part are below).")

st.subheader("Does it use the background?")
evidence.background_evidence(run, "compare")

st.subheader("Concept weights vs the baseline's TCAV sensitivity")
with session.guard("Weights vs TCAV"):
    layer = run.tcav_layers("erm")[0]  # first: without the baseline's TCAV the section says so, with no class to choose
    target = page.view.cls or classes[-1]
    session.bind("w_cmp_class", target)
    st.selectbox("Class", classes, key="w_cmp_class", on_change=lambda: session.set_view(cls=st.session_state["w_cmp_class"]),
                 help="The class the weights count towards and whose TCAV scores are drawn. With two classes, the weights towards "
                 "the other are the same with their signs turned; its TCAV scores are its own.")
    widgets.chart(
        figures.run_figure(run, "weights_tcav", target, layer),
        "compare_tcav",
        f"Each concept twice: its weight towards “{target}” in z* (green) and in z_baseline (red), against how strongly the baseline "
        f"responds to it (TCAV, layer {layer}). The concepts with the largest weights are named; hover for the rest.",
        run_id=run.run_id,
    )

st.subheader("Where z_baseline and the baseline answer differently")
with session.guard("Surrogate disagreements"):
    run.need("surrogates.z_baseline", "z_baseline")
    misses = run.surrogate_disagreements("z_baseline")
    st.markdown(text.fidelity_sentence(run.surrogate("z_baseline"), "z_baseline", "the baseline's") or "")
    if misses.empty:
        st.success("z_baseline gives the baseline's answer on every D′ image it was checked on.")
    else:
        show = misses.head(SURROGATE_MISSES)
        caps = [
            f"#{int(r.index)} · {groups[int(r.group)]} · truly {classes[int(r.label)]}: baseline says {classes[int(r.model_pred)]}, "
            f"z_baseline says {classes[int(r.surrogate_pred)]}"
            for r in show.itertuples()
        ]
        pics = [widgets.test_image_png(run, int(i)) for i in show["index"]]
        widgets.image_strip(pics, caps, columns=min(6, len(pics)), width=150)
        st.caption(f"Showing {len(show)} of {len(misses)} D′ images where the readable stand-in and the network part ways: what z_baseline says "
                   "about the baseline does not hold on these.")

st.subheader("Where the baseline and the IG student disagree")
with session.guard("Disagreements"):
    for m in ("erm", "ig_student"):
        run.need(f"methods.{m}", f"answers of {method_label(m)}")
    preds = run.predictions()
    erm, student = pred_column("erm"), pred_column("ig_student")
    methods = run.attribution_methods
    session.bind("w_cmp_method", method if method in methods else methods[0])
    st.selectbox(
        "Attribution method for the maps",
        methods,
        key="w_cmp_method",
        format_func=attribution_label,
        on_change=lambda: session.set_view(method=st.session_state["w_cmp_method"]),
    )
    method = st.session_state["w_cmp_method"]
    differ = preds[preds[erm] != preds[student]]
    st.caption(f"They disagree on {len(differ)} of {len(preds)} D′ images. Each row: the image, then each model's map ({attribution_label(method)}) "
               "for its own answer with that model's own sanity verdict, and each answer read through the hypothesis that describes "
               "that model: z_baseline for the baseline, z* (which the IG student was trained to imitate) for the IG student. The "
               "readings of the concepts (the concept model's, or a discovered concept's calibrated presence) are probabilities, not facts about the image.")
    fidelity_of = {"erm": run.surrogate("z_baseline"), "ig_student": None}

    for i in differ["index"].to_numpy()[:DISAGREEMENTS]:
        truth = classes[int(preds.at[i, "label"])]
        with st.container(border=True):
            cols = st.columns([1, 1, 1, 1.3])
            widgets.show_png(widgets.test_image_png(run, int(i), factor=3), where=cols[0], caption=f"#{i} · {groups[int(preds.at[i, 'group'])]} · truly {with_article(truth)}", width="stretch")
            for c, model in ((cols[1], "erm"), (cols[2], "ig_student")):
                said = classes[int(preds.at[i, pred_column(model)])]
                with c:
                    widgets.show_png(widgets.test_image_png(run, int(i), model, method, factor=3), width="stretch")
                    st.markdown(f"{'✓' if said == truth else '✗'} **{method_label(model)}**: {said}")
                    st.caption(text.sanity_verdict(run.sanity(model, method), possessive(model)))
            with cols[3]:
                for model in ("erm", "ig_student"):
                    st.markdown(text.explanation_sentence(explain(run, model, int(i)), fidelity_of[model]))
