"""Baseline microscope: where the baseline looks (captum maps), how much of it is on the animal, TCAV."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import engine, session
from dashboard import state as codec
from dashboard.components import charts, images, widgets
from dashboard.components.figures import tcav_layers
from dashboard.components.style import method_label
from dashboard.page import open_page
from dashboard.run_view import RunView
from igcore.schema import pred_column

GALLERY = 12


def models_of(run: RunView) -> list[str]:
    """Models the page can put under the microscope: the baseline and the IG student first."""
    names = [m for m in ("erm", "ig_student") if m in run.microscope or m in run.methods]
    return (names + [m for m in run.microscope if m not in names]) or ["erm"]


def methods_of(run: RunView) -> list[str]:
    """Attribution methods the microscope stage computed; without that stage, every registered method
    (maps are then computed on demand)."""
    computed: list[str] = []
    for m in run.microscope.values():
        for key in ("relevance_on_animal", "sanity"):
            computed += [k for k in (m.get(key) or {}) if k not in computed]
    return computed or list(engine.attribution_methods())


def _choose(run: RunView, view: codec.ViewState, notes: list[str]) -> codec.ViewState:
    models, methods = models_of(run), methods_of(run)
    return replace(
        view,
        model=codec.choose(view.model, models, models[0], "model", notes),
        method=codec.choose(view.method, methods, methods[0], "attribution method", notes),
        group=codec.choose(view.group, ["all", *run.groups], "all", "group filter", notes),
        img=codec.choose_index(view.img, run.world.sizes["test_eval"], None, "image number", notes),
    )


page = open_page(
    "Baseline microscope: what does the model actually look at?",
    "Pixel attributions (captum) show which pixels pushed each prediction; the cyan line outlines the animal. "
    "A model that learned the animal puts its relevance **inside** the line; one that learned the background puts it outside.",
    keys=["model", "method", "group", "correct", "img"],
    choose=_choose,
)
run = page.run
view = page.view
models, methods = models_of(run), methods_of(run)
model, method, group, img = view.model, view.method, view.group, view.img
classes, groups = run.classes, run.groups
micro = run.microscope
descriptions = engine.attribution_methods()


def _set(field: str, widget: str) -> None:
    session.set_view(**{field: st.session_state[widget]})


def _inspect(i: int) -> None:
    session.set_view(img=int(i))


c1, c2, c3, c4 = st.columns(4)
session.bind("w_model", model)
c1.selectbox("Model", models, key="w_model", format_func=method_label, on_change=_set, args=("model", "w_model"))
session.bind("w_method", method)
c2.selectbox(
    "Attribution method (gallery)",
    methods,
    key="w_method",
    format_func=lambda m: m.replace("_", " "),
    on_change=_set,
    args=("method", "w_method"),
    help="The map drawn over the gallery images; the detail view below shows every method.",
)
session.bind("w_group", group)
c3.selectbox("Group", ["all", *groups], key="w_group", on_change=_set, args=("group", "w_group"))
session.bind("w_correct", view.correct)
c4.segmented_control("Answer", list(codec.CORRECTNESS), key="w_correct", on_change=_set, args=("correct", "w_correct"), format_func=str.capitalize)

sanity = (micro.get(model) or {}).get("sanity") or {}


def verdict(m: str) -> str:
    """The sanity-check verdict of method ``m`` for the selected model, in words."""
    entry = sanity.get(m)
    if entry is None:
        return "sanity check: not run for this model"
    if entry.get("trustworthy") is None:
        return "sanity check: undefined (the maps did not vary)"
    return "✅ passes the sanity check" if entry["trustworthy"] else "❌ fails the sanity check: do not trust"


# --- gallery -----------------------------------------------------------------------------------------
gallery_idx: np.ndarray = np.zeros(0, dtype=np.int64)
st.subheader("Gallery of D′ images")
with session.guard("Gallery"):
    run.need(f"methods.{model}", f"answers of {method_label(model)}")
    preds, test = run.predictions(), run.test_eval()
    col = pred_column(model)
    rows = preds
    if run.has("microscope/tensors/sample.safetensors"):  # images whose maps the pipeline precomputed come first
        first = {int(i) for i in run.microscope_tensors("sample")["indices"]}
        rows = rows.assign(_pre=[0 if int(i) in first else 1 for i in rows["index"]]).sort_values(["_pre", "index"], kind="stable")
    if group != "all":
        rows = rows[rows["group"] == groups.index(group)]
    if view.correct != "all":
        right = rows[col] == rows["label"]
        rows = rows[right] if view.correct == "correct" else rows[~right]
    gallery_idx = rows["index"].to_numpy()[:GALLERY]
    st.caption(f"{len(rows)} images match; showing {len(gallery_idx)}. ✓/✗ = {method_label(model)} right/wrong. Click **Inspect** for every method's map.")
    maps = engine.attribution_maps(run, model, method, gallery_idx)[0] if len(gallery_idx) else None
    cols = st.columns(6)
    for j, i in enumerate(gallery_idx):
        with cols[j % 6]:
            label, pred = int(preds.at[i, "label"]), int(preds.at[i, col])
            pic = images.overlay(test["images"][i], maps[j], test["masks"][i], factor=2)
            st.image(images.png_bytes(pic), caption=f"{'✓' if label == pred else '✗'} #{i} {groups[int(preds.at[i, 'group'])]} → {classes[pred]}", width="stretch")
            st.button("Inspect", key=f"insp_{i}", on_click=_inspect, args=(i,), type="primary" if i == img else "secondary", width="stretch")
    if not len(gallery_idx):
        st.info("No image matches these filters.")

# --- one image, every method ------------------------------------------------------------------------
st.subheader("One image, every attribution method")
with session.guard("Attribution maps"):
    preds, test = run.predictions(), run.test_eval()
    shown_img = img
    if shown_img is None and len(gallery_idx):
        shown_img = int(gallery_idx[0])
        st.caption("Showing the first image of the gallery; click **Inspect** under another image to choose it.")
    if shown_img is None:
        st.caption("No image matches the filters.")
    else:
        label = int(preds.at[shown_img, "label"])
        said = ", ".join(f"{method_label(m)} says **{classes[int(preds.at[shown_img, pred_column(m)])]}**" for m in models if pred_column(m) in preds)
        st.markdown(f"Image **#{shown_img}** · group **{groups[int(preds.at[shown_img, 'group'])]}** · truly a **{classes[label]}** · {said}.")
        cols = st.columns(len(methods) + 1)
        cols[0].image(images.png_bytes(images.overlay(test["images"][shown_img], None, test["masks"][shown_img], factor=3)), caption="the image", width="stretch")
        for c, m in zip(cols[1:], methods, strict=True):
            with c:
                mp, target = engine.attribution_maps(run, model, m, [shown_img])
                st.image(images.png_bytes(images.overlay(test["images"][shown_img], mp[0], test["masks"][shown_img], factor=3)), caption=f"{m.replace('_', ' ')} (explains “{classes[int(target[0])]}”)", width="stretch")
                st.caption(verdict(m))
                st.caption(descriptions[m])
        st.caption("Bright = pixels that pushed the model towards its answer. The verdict comes from the model-randomisation sanity check (Adebayo et al., 2018).")

# --- relevance on the animal ------------------------------------------------------------------------
st.subheader("How much relevance falls on the animal?")
with session.guard("Relevance on the animal"):
    run.need("microscope", "microscope results (attributions, relevance, TCAV)")
    per_image = run.microscope_table("relevance")
    widgets.chart(
        charts.relevance_distribution(per_image[per_image["method"] == method].rename(columns={"relevance_mass": "share"})),
        "micro_relevance_dist",
        f"Each box is many images of one group ({method}); the baseline's relevance drifts off the animal where the background misleads it.",
        run_id=run.run_id,
    )
    widgets.chart(
        charts.relevance_bars(micro),
        "micro_relevance",
        "Mean share of each model's positive relevance that lies inside the animal's outline; the dotted line is what a blind map would score.",
        run_id=run.run_id,
    )

# --- sanity checks ----------------------------------------------------------------------------------
with session.guard("Sanity checks"):
    rows = [
        {
            "model": method_label(mdl),
            "method": meth,
            "verdict": {True: "trustworthy", False: "NOT trustworthy", None: "undefined"}[entry.get("trustworthy")],
            "rank correlation after full randomisation": entry.get("final_spearman_abs"),
            "threshold": entry.get("threshold"),
        }
        for mdl, m in micro.items()
        for meth, entry in (m.get("sanity") or {}).items()
    ]
    if rows:
        with st.expander("Sanity-check details (model-randomisation test)"):
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
            st.caption("A method whose maps barely change when the model's weights are randomised explains the image, not the model.")

# --- TCAV -------------------------------------------------------------------------------------------
st.subheader("Which concepts does the baseline respond to? (TCAV)")
with session.guard("TCAV"):
    tcav = run.tcav()
    layers = tcav_layers(tcav)
    layer = st.radio("Layer", layers, horizontal=True, key="w_tcav_layer") if len(layers) > 1 else layers[0]
    widgets.chart(
        charts.tcav_bars([t for t in tcav if str(t.get("layer")) == layer], run.concept_kinds, run.concept_texts),
        "micro_tcav",
        "Green = animal features, red = backgrounds; faded bars are not statistically different from random concepts.",
        run_id=run.run_id,
    )
    sig = np.array([bool(t.get("significant")) for t in tcav])
    st.caption(f"{int(sig.sum())} of {len(tcav)} concept/class scores are significant after multiple-testing correction.")
