"""Compare: what IG learned (z*) and what the baseline does (z_baseline), side by side."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import streamlit as st

from dashboard import data, engine, session
from dashboard import state as codec
from dashboard.components import charts, images, text, widgets
from dashboard.components.style import METHOD_COLORS, method_label

ctx = session.context()
if ctx.ref is None:
    widgets.no_run(ctx.root)
ref = ctx.ref
metrics = ctx.metrics
world = metrics.get("world", {})
classes = world.get("classes", [])
groups = world.get("groups", [])
backgrounds = world.get("backgrounds", [])
hyps = metrics.get("hypotheses", {})
micro = metrics.get("microscope", {}) or {}
methods_available: list[str] = []
for m in micro.values():
    methods_available += [k for k in (m.get("relevance_on_animal") or m.get("sanity") or {}) if k not in methods_available]
method = codec.choose(ctx.view.method, methods_available, methods_available[0] if methods_available else None, "attribution method", ctx.notes)
ctx.view = replace(ctx.view, method=method)
session.publish(ctx, ["method"])

widgets.page_header(
    "Compare: what it should have learned vs what it did learn",
    "Both hypotheses are written in the same language of concepts: **z\\*** is what IG learned from the human prior and D; "
    "**z_baseline** is a readable stand-in fitted to the baseline's own answers.",
)
session.show_notes(ctx.notes)

left, right = st.columns(2)
for col, key, title, color, who in (
    (left, "z_star", "z* (Imitative Generalization)", METHOD_COLORS["ig_student"], "IG"),
    (right, "z_baseline", "z_baseline (what the baseline does)", METHOD_COLORS["erm"], "The baseline"),
):
    with col, st.container(border=True):
        st.markdown(f"<h4 style='color:{color};margin-bottom:0'>{title}</h4>", unsafe_allow_html=True)
        with session.guard(title):
            clauses = hyps.get(key)
            if not clauses:
                raise session.NotComputed(f"`hypotheses.{key}` is not in this run's results.")
            st.markdown(f"**{text.summary_sentence(clauses, who, classes)}**")
            stored = hyps.get(f"{key}_text")
            try:
                st.caption("Field guide: " + (stored or engine.render_text(clauses, metrics)))
            except session.NotComputed:
                pass
            widgets.chart(charts.clause_weights(clauses, f"Clauses of {key}"), f"compare_{key}", "Bar length = how much evidence a clause gives its class; green = animal, red = background.", run_id=ref.run_id)

if hyps.get("no_prior"):
    with st.expander("The ablation: the same search without the human prior (likelihood only)"):
        st.markdown(f"**{text.summary_sentence(hyps['no_prior'], 'Without the prior, IG', classes)}**")
        if hyps.get("no_prior_text"):
            st.caption("Field guide: " + hyps["no_prior_text"])
        widgets.chart(charts.clause_weights(hyps["no_prior"], "Clauses of the no-prior hypothesis"), "compare_no_prior", "What the data alone supports: background and distractor clauses creep in without the prior.", run_id=ref.run_id)

surrogate = (metrics.get("surrogates") or {}).get("z_baseline")
if isinstance(surrogate, dict) and surrogate.get("fidelity") is not None:
    st.caption(f"z_baseline reproduces {100 * float(surrogate['fidelity']):.0f}% of the baseline's answers on D′ (its fidelity); read it with that in mind.")

st.subheader("Concept weights vs the baseline's TCAV sensitivity")
with session.guard("Weights vs TCAV"):
    tcav = (micro.get("erm") or {}).get("tcav") or []
    if not tcav:
        raise session.NotComputed("TCAV scores for the baseline are not stored in this run.")
    have = {k: hyps[k] for k in ("z_star", "z_baseline") if hyps.get(k)}
    if not have:
        raise session.NotComputed("Neither z* nor z_baseline is in this run's results.")
    target = classes[-1] if classes else ""
    if len(classes) > 2:
        target = st.selectbox("Class", classes, index=len(classes) - 1, key="w_cmp_class")
    vocab = world.get("vocabulary", [])
    layers = sorted({str(t.get("layer")) for t in tcav}, key=lambda name: (name != "penultimate", name))
    tcav = [t for t in tcav if str(t.get("layer")) == layers[0]]
    widgets.chart(
        charts.weights_vs_tcav(have, tcav, target, classes, {v["id"]: v["text"] for v in vocab}),
        "compare_tcav",
        f"Each concept twice: its weight towards “{target}” in z* (green) and in z_baseline (red), against how strongly the baseline responds to it (TCAV, layer {layers[0]}).",
        run_id=ref.run_id,
    )

st.subheader("Where the baseline and the IG student disagree")
with session.guard("Disagreements"):
    preds = data.table(ref, "predictions")
    test = data.tensors(ref, "test_eval")
    if preds is None or test is None or "pred_erm" not in preds or "pred_ig_student" not in preds:
        raise session.NotComputed("Predictions of both the baseline and the IG student on D′ are needed.")
    if methods_available:
        session.bind("w_cmp_method", method)
        st.selectbox(
            "Attribution method for the maps",
            methods_available,
            key="w_cmp_method",
            format_func=lambda m: m.replace("_", " "),
            on_change=lambda: session.set_view(method=st.session_state["w_cmp_method"]),
        )
    differ = preds[preds["pred_erm"] != preds["pred_ig_student"]]
    st.caption(f"They disagree on {len(differ)} of {len(preds)} D′ images. Each row: the image, then each model's map ({method or 'no method'}) for its own answer, and the hypothesis that reads like it.")
    scores = None
    try:
        scores = engine.concept_scores(ref, "test_eval")
    except session.NotComputed:
        pass
    vocab_ids = [v["id"] for v in world.get("vocabulary", [])]

    def reasons(clauses: list[dict] | None, i: int, cls: str) -> str:
        """The clauses of ``cls`` that fire most on image i (weight × stored concept score)."""
        if not clauses or scores is None:
            return ""
        fired = [(float(c["weight"]) * float(scores[i, vocab_ids.index(c["concept"])]), c) for c in clauses if c["class"] == cls and c["concept"] in vocab_ids]
        top = [c.get("text") or c["concept"] for v, c in sorted(fired, key=lambda t: -t[0])[:2] if v > 0.05]
        return f"because: {text.join_words(top)}" if top else ""

    for i in differ["index"].to_numpy()[:5]:
        truth = classes[int(preds.at[i, "label"])]
        erm_said, ig_said = classes[int(preds.at[i, "pred_erm"])], classes[int(preds.at[i, "pred_ig_student"])]
        with st.container(border=True):
            cols = st.columns([1, 1, 1, 1.3])
            cols[0].image(images.png_bytes(images.overlay(test["images"][i], None, test["masks"][i], factor=3)), caption=f"#{i} · {groups[int(preds.at[i, 'group'])]} · truly a {truth}", width="stretch")
            for c, model, said in ((cols[1], "erm", erm_said), (cols[2], "ig_student", ig_said)):
                with c:
                    try:
                        if method is None:
                            raise session.NotComputed("no method")
                        mp, _ = engine.attribution_maps(ref, model, method, [i])
                        st.image(images.png_bytes(images.overlay(test["images"][i], mp[0], test["masks"][i], factor=3)), width="stretch")
                    except Exception:  # noqa: BLE001  (a missing map leaves the verdict readable)
                        st.caption("(map not available)")
                    mark = "✓" if said == truth else "✗"
                    st.markdown(f"{mark} **{method_label(model)}**: {said}")
            with cols[3]:
                st.markdown(f"**Baseline** (as z_baseline) says *{erm_said}* {reasons(hyps.get('z_baseline'), i, erm_said)}")
                st.markdown(f"**IG** (as z*) says *{ig_said}* {reasons(hyps.get('z_star'), i, ig_said)}")

st.subheader("Background swaps: same animal, other background")
with session.guard("Background swaps"):
    if any(m.get("swap_flip_rate") is not None for m in micro.values()):
        widgets.chart(charts.swap_bars(micro), "compare_swaps", "A model that reads the animal keeps its answer when only the background changes.", run_id=ref.run_id)
    sample = data.tensors(ref, "swaps", "microscope")
    if sample is None:
        if not any(m.get("swap_flip_rate") is not None for m in micro.values()):
            raise session.NotComputed("Background swaps have not been computed for this run.")
        st.caption("No swapped images are stored in this run; only the rates above.")
    else:
        test = data.tensors(ref, "test_eval")
        models = [m for m in ("erm", "ig_student") if f"pred_{m}" in sample]
        n = min(8, len(sample["images"]))
        cols = st.columns(4)
        for j in range(n):
            i = int(sample["index"][j])
            with cols[j % 4], st.container(border=True):
                pair = [test["images"][i], sample["images"][j]] if test is not None else [sample["images"][j]]
                st.image(images.png_bytes(np.concatenate([images.upscale(p, 2) for p in pair], axis=1)), width="stretch")
                fb, tb = int(sample["from_background"][j]), int(sample["to_background"][j])
                lines = [f"a {classes[int(sample['label'][j])]}: {backgrounds[fb]} → {backgrounds[tb]}"]
                for m in models:
                    before, after = classes[int(sample[f"orig_pred_{m}"][j])], classes[int(sample[f"pred_{m}"][j])]
                    flip = " (flips!)" if before != after else ""
                    lines.append(f"{method_label(m)}: {before} → {after}{flip}")
                st.caption("  \n".join(lines))
