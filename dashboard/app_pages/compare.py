"""Compare: what IG learned (z*) and what the baseline does (z_baseline), side by side."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import streamlit as st

from dashboard import engine, session
from dashboard import state as codec
from dashboard.components import charts, images, widgets
from dashboard.components.figures import tcav_layers
from dashboard.components.style import METHOD_COLORS, method_label
from dashboard.page import open_page
from dashboard.run_view import RunView
from igcore.hypothesis import join_words, summary_sentence
from igcore.schema import pred_column

#: Disagreements between the baseline and the IG student shown with their maps.
DISAGREEMENTS = 5
#: Swapped images shown.
SWAPS = 8


def methods_of(run: RunView) -> list[str]:
    """Attribution methods the microscope stage computed for any model."""
    out: list[str] = []
    for m in run.microscope.values():
        out += [k for k in (m.get("relevance_on_animal") or {}) if k not in out]
    return out


def _choose(run: RunView, view: codec.ViewState, notes: list[str]) -> codec.ViewState:
    methods = methods_of(run)
    return replace(view, method=codec.choose(view.method, methods, methods[0] if methods else None, "attribution method", notes))


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
            widgets.chart(charts.clause_weights(clauses, f"Clauses of {key}"), f"compare_{key}", "Bar length = how much evidence a clause gives its class; green = animal, red = background.", run_id=run.run_id)

with st.expander("The ablation: the same search without the human prior (likelihood only)"), session.guard("No-prior ablation"):
    no_prior = run.clauses("no_prior")
    st.markdown(f"**{summary_sentence(no_prior, 'Without the prior, IG', classes)}**")
    st.caption("Field guide: " + (run.hypothesis_text("no_prior") or engine.render_text(no_prior, run)))
    widgets.chart(charts.clause_weights(no_prior, "Clauses of the no-prior hypothesis"), "compare_no_prior", "What the data alone supports: background and distractor clauses creep in without the prior.", run_id=run.run_id)

fidelity = (run.surrogates.get("z_baseline") or {}).get("fidelity")
if fidelity is not None:
    st.caption(f"z_baseline reproduces {100 * float(fidelity):.0f}% of the baseline's answers on D′ (its fidelity); read it with that in mind.")

st.subheader("Concept weights vs the baseline's TCAV sensitivity")
with session.guard("Weights vs TCAV"):
    tcav = run.tcav()
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

st.subheader("Where the baseline and the IG student disagree")
with session.guard("Disagreements"):
    for m in ("erm", "ig_student"):
        run.need(f"methods.{m}", f"answers of {method_label(m)}")
    run.need("microscope", "attribution maps of the microscope")
    preds, test = run.predictions(), run.test_eval()
    erm, student = pred_column("erm"), pred_column("ig_student")
    session.bind("w_cmp_method", method)
    st.selectbox(
        "Attribution method for the maps",
        methods_of(run),
        key="w_cmp_method",
        format_func=lambda m: m.replace("_", " "),
        on_change=lambda: session.set_view(method=st.session_state["w_cmp_method"]),
    )
    differ = preds[preds[erm] != preds[student]]
    st.caption(f"They disagree on {len(differ)} of {len(preds)} D′ images. Each row: the image, then each model's map ({method}) for its own answer, and the hypothesis that reads like it.")
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
        with st.container(border=True):
            cols = st.columns([1, 1, 1, 1.3])
            cols[0].image(images.png_bytes(images.overlay(test["images"][i], None, test["masks"][i], factor=3)), caption=f"#{i} · {groups[int(preds.at[i, 'group'])]} · truly a {truth}", width="stretch")
            for c, model, said in ((cols[1], "erm", erm_said), (cols[2], "ig_student", ig_said)):
                with c:
                    mp, _ = engine.attribution_maps(run, model, method, [i])
                    st.image(images.png_bytes(images.overlay(test["images"][i], mp[0], test["masks"][i], factor=3)), width="stretch")
                    st.markdown(f"{'✓' if said == truth else '✗'} **{method_label(model)}**: {said}")
            with cols[3]:
                st.markdown(f"**Baseline** (as z_baseline) says *{erm_said}* {reasons(hypotheses['z_baseline'], i, erm_said)}")
                st.markdown(f"**IG** (as z*) says *{ig_said}* {reasons(hypotheses['z_star'], i, ig_said)}")

st.subheader("Background swaps: same animal, other background")
with session.guard("Background swaps"):
    run.need("microscope.erm.swap_flip_rate", "background swaps")
    widgets.chart(charts.swap_bars(micro), "compare_swaps", "A model that reads the animal keeps its answer when only the background changes.", run_id=run.run_id)
    sample, test = run.microscope_tensors("swaps"), run.test_eval()
    models = [m for m in ("erm", "ig_student") if f"pred_{m}" in sample]
    cols = st.columns(4)
    for j in range(min(SWAPS, len(sample["images"]))):
        i = int(sample["index"][j])
        with cols[j % 4], st.container(border=True):
            pair = [test["images"][i], sample["images"][j]]
            st.image(images.png_bytes(np.concatenate([images.upscale(p, 2) for p in pair], axis=1)), width="stretch")
            fb, tb = int(sample["from_background"][j]), int(sample["to_background"][j])
            lines = [f"a {classes[int(sample['label'][j])]}: {backgrounds[fb]} → {backgrounds[tb]}"]
            for m in models:
                before, after = classes[int(sample[f"orig_pred_{m}"][j])], classes[int(sample[f"pred_{m}"][j])]
                lines.append(f"{method_label(m)}: {before} → {after}{' (flips!)' if before != after else ''}")
            st.caption("  \n".join(lines))
