"""Compare: what IG learned (z*) and what the baseline does (z_baseline), side by side, with the
counterfactual evidence of whether each model uses the background, and the images where the readings part."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from dashboard import engine, session
from dashboard import state as codec
from dashboard.components import charts, evidence, images, text, widgets
from dashboard.components.figures import tcav_layers
from dashboard.components.style import METHOD_COLORS, method_label, possessive
from dashboard.page import open_page
from dashboard.run_view import RunView
from igcore.hypothesis import join_words, summary_sentence, with_article
from igcore.schema import pred_column

#: Disagreements between the baseline and the IG student shown with their maps.
DISAGREEMENTS = 5
#: D′ images shown where z_baseline and the baseline answer differently.
SURROGATE_MISSES = 6


def methods_of(run: RunView) -> list[str]:
    """Attribution methods the microscope stage computed for any model (relevance or sanity checks); without
    that stage, every registered method (maps are then computed on demand)."""
    out: list[str] = []
    for m in run.microscope.values():
        for key in ("relevance_on_animal", "sanity"):
            out += [k for k in (m.get(key) or {}) if k not in out]
    return out or list(engine.attribution_methods())


def _choose(run: RunView, view: codec.ViewState, notes: list[str]) -> codec.ViewState:
    methods = methods_of(run)
    return replace(view, method=codec.choose(view.method, methods, methods[0], "attribution method", notes))


page = open_page(
    "Compare: what it should have learned vs what it did learn",
    "Both hypotheses are written in the same language of concepts: **z\\*** is what IG learned from the human prior and D; "
    "**z_baseline** is a readable stand-in fitted to the baseline's own answers.",
    keys=["method"],
    choose=_choose,
)
run = page.run
method = page.view.method
classes, groups, backgrounds = run.classes, run.groups, run.backgrounds
micro = run.microscope

left, right = st.columns(2)
for col, key, title, color, who in (
    (left, "z_star", "z* (Imitative Generalization)", METHOD_COLORS["ig_student"], "IG"),
    (right, "z_baseline", "z_baseline (what the baseline does)", METHOD_COLORS["erm"], "The baseline"),
):
    with col, st.container(border=True):
        st.markdown(f"<h4 style='color:{color};margin-bottom:0'>{title}</h4>", unsafe_allow_html=True)
        with session.guard(title):
            clauses = run.clauses(key)
            st.markdown(f"**{summary_sentence(clauses, who, classes)}**")
            st.caption("Field guide: " + (run.hypothesis_text(key) or engine.render_text(clauses, run)))
            widgets.chart(charts.clause_weights(clauses, f"Clauses of {key}"), f"compare_{key}", "Bar length = how much evidence a clause gives its class; green = object feature, red = background.", run_id=run.run_id)

with st.expander("The ablation: the same search without the human prior (likelihood only)"), session.guard("No-prior ablation"):
    no_prior = run.clauses("no_prior")
    st.markdown(f"**{summary_sentence(no_prior, 'Without the prior, IG', classes)}**")
    st.caption("Field guide: " + (run.hypothesis_text("no_prior") or engine.render_text(no_prior, run)))
    widgets.chart(charts.clause_weights(no_prior, "Clauses of the no-prior hypothesis"), "compare_no_prior", "What the data alone supports: background and distractor clauses creep in without the prior.", run_id=run.run_id)

fidelity = text.fidelity_sentence(run.surrogates.get("z_baseline") or {}, "z_baseline", "the baseline's")
if fidelity:
    st.caption(f"{fidelity} That is its fidelity: read z_baseline as a description of the baseline only that far (the images where they part are below).")

st.subheader("Does it use the background?")
evidence.background_evidence(run, "compare")

st.subheader("Concept weights vs the baseline's TCAV sensitivity")
with session.guard("Weights vs TCAV"):
    tcav = run.tcav("erm")
    have = {k: run.clauses(k) for k in ("z_star", "z_baseline")}
    target = classes[-1]
    if len(classes) > 2:
        target = st.selectbox("Class", classes, index=len(classes) - 1, key="w_cmp_class")
    layer = tcav_layers(tcav)[0]
    widgets.chart(
        charts.weights_vs_tcav(have, [t for t in tcav if str(t.get("layer")) == layer], target, classes, run.concept_texts),
        "compare_tcav",
        f"Each concept twice: its weight towards “{target}” in z* (green) and in z_baseline (red), against how strongly the baseline responds to it (TCAV, layer {layer}).",
        run_id=run.run_id,
    )

st.subheader("Where z_baseline and the baseline answer differently")
with session.guard("Surrogate disagreements"):
    run.need("surrogates.z_baseline", "z_baseline")
    summary = run.surrogates["z_baseline"]
    misses = run.surrogate_disagreements("z_baseline")
    st.markdown(text.fidelity_sentence(summary, "z_baseline", "the baseline's") or "")
    if misses.empty:
        st.success("z_baseline gives the baseline's answer on every D′ image it was checked on.")
    else:
        test, masks = run.test_eval(), run.masks()
        show = misses.head(SURROGATE_MISSES)
        caps = [
            f"#{int(r.index)} · {groups[int(r.group)]} · truly {classes[int(r.label)]}: baseline says {classes[int(r.model_pred)]}, "
            f"z_baseline says {classes[int(r.surrogate_pred)]}"
            for r in show.itertuples()
        ]
        pics = [images.overlay(test["images"][int(i)], None, None if masks is None else masks[int(i)], factor=2) for i in show["index"]]
        widgets.image_strip(pics, caps, columns=min(6, len(pics)), width=150)
        st.caption(f"Showing {len(show)} of {len(misses)} D′ images where the readable stand-in and the network part ways: what z_baseline says "
                   "about the baseline does not hold on these.")

st.subheader("Where the baseline and the IG student disagree")
with session.guard("Disagreements"):
    for m in ("erm", "ig_student"):
        run.need(f"methods.{m}", f"answers of {method_label(m)}")
    preds, test, masks = run.predictions(), run.test_eval(), run.masks()
    erm, student = pred_column("erm"), pred_column("ig_student")
    methods = methods_of(run)
    session.bind("w_cmp_method", method if method in methods else methods[0])
    st.selectbox(
        "Attribution method for the maps",
        methods,
        key="w_cmp_method",
        format_func=lambda m: m.replace("_", " "),
        on_change=lambda: session.set_view(method=st.session_state["w_cmp_method"]),
    )
    method = st.session_state["w_cmp_method"]
    differ = preds[preds[erm] != preds[student]]
    st.caption(f"They disagree on {len(differ)} of {len(preds)} D′ images. Each row: the image, then each model's map ({method.replace('_', ' ')}) "
               "for its own answer with that model's own sanity verdict, and the hypothesis that reads like it.")
    scores = run.concept_scores("test_eval")
    vocab_ids = run.concept_ids
    hypotheses = {k: run.clauses(k) for k in ("z_baseline", "z_star")}

    def reasons(clauses: list[dict], i: int, cls: str) -> str:
        """The clauses of ``cls`` that fire most on image i (weight × stored concept score)."""
        fired = [(c["weight"] * float(scores[i, vocab_ids.index(c["concept"])]), c) for c in clauses if c["class"] == cls]
        top = [c["text"] for v, c in sorted(fired, key=lambda t: -t[0])[:2] if v > 0.05]
        return f"because: {join_words(top)}" if top else ""

    for i in differ["index"].to_numpy()[:DISAGREEMENTS]:
        truth = classes[int(preds.at[i, "label"])]
        erm_said, ig_said = classes[int(preds.at[i, erm])], classes[int(preds.at[i, student])]
        mask = None if masks is None else masks[i]
        with st.container(border=True):
            cols = st.columns([1, 1, 1, 1.3])
            cols[0].image(images.png_bytes(images.overlay(test["images"][i], None, mask, factor=3)), caption=f"#{i} · {groups[int(preds.at[i, 'group'])]} · truly {with_article(truth)}", width="stretch")
            for c, model, said in ((cols[1], "erm", erm_said), (cols[2], "ig_student", ig_said)):
                with c:
                    mp, _ = engine.attribution_maps(run, model, method, [i])
                    st.image(images.png_bytes(images.overlay(test["images"][i], mp[0], mask, factor=3)), width="stretch")
                    st.markdown(f"{'✓' if said == truth else '✗'} **{method_label(model)}**: {said}")
                    st.caption(text.sanity_verdict(run.sanity(model, method), possessive(model)))
            with cols[3]:
                st.markdown(f"**Baseline** (as z_baseline) says *{erm_said}* {reasons(hypotheses['z_baseline'], i, erm_said)}")
                st.markdown(f"**IG** (as z*) says *{ig_said}* {reasons(hypotheses['z_star'], i, ig_said)}")
