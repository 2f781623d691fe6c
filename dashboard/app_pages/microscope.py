"""Baseline microscope: where the baseline looks (captum maps), how much of it is on the animal, TCAV."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import data, engine, session
from dashboard import state as codec
from dashboard.components import charts, images, widgets
from dashboard.components.style import method_label

GALLERY = 12

ctx = session.context()
if ctx.ref is None:
    widgets.no_run(ctx.root)
ref = ctx.ref
metrics = ctx.metrics
world = metrics.get("world", {})
classes = world.get("classes", [])
groups = world.get("groups", [])
micro = metrics.get("microscope", {}) or {}
preds = data.table(ref, "predictions")

# --- what this run offers ---------------------------------------------------------------------------
models = [m for m in ("erm", "ig_student") if m in micro or (preds is not None and f"pred_{m}" in preds)]
models += [m for m in micro if m not in models]
if not models:
    models = ["erm"]
computed_methods: list[str] = []
for m in micro.values():
    for key in ("relevance_on_animal", "sanity"):
        computed_methods += [k for k in (m.get(key) or {}) if k not in computed_methods]
methods = list(computed_methods)
try:
    registry = engine.attribution_methods()
except Exception:  # noqa: BLE001  (the registry is optional here: only descriptions come from it)
    registry = {}
if not methods:
    methods = list(registry)

view = ctx.view
model = codec.choose(view.model, models, models[0], "model", ctx.notes)
method = codec.choose(view.method, methods, methods[0] if methods else None, "attribution method", ctx.notes)
group = codec.choose(view.group, ["all", *groups], "all", "group filter", ctx.notes)
n_test = len(preds) if preds is not None else 0
img = codec.choose_index(view.img, n_test, None, "image number", ctx.notes)
ctx.view = replace(view, model=model, method=method, group=group, img=img)
session.publish(ctx, ["model", "method", "group", "correct", "img"])

widgets.page_header(
    "Baseline microscope: what does the model actually look at?",
    "Pixel attributions (captum) show which pixels pushed each prediction; the cyan line outlines the animal. "
    "A model that learned the animal puts its relevance **inside** the line; one that learned the background puts it outside.",
)
session.show_notes(ctx.notes)


def _set(field: str, widget: str) -> None:
    session.set_view(**{field: st.session_state[widget]})


def _inspect(i: int) -> None:
    session.set_view(img=int(i))


c1, c2, c3, c4 = st.columns(4)
session.bind("w_model", model)
c1.selectbox("Model", models, key="w_model", format_func=method_label, on_change=_set, args=("model", "w_model"))
if methods:
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
session.bind("w_correct", ctx.view.correct)
c4.segmented_control("Answer", list(codec.CORRECTNESS), key="w_correct", on_change=_set, args=("correct", "w_correct"), format_func=str.capitalize)

sanity = (micro.get(model) or {}).get("sanity") or {}


def verdict(m: str) -> str:
    entry = sanity.get(m)
    if not isinstance(entry, dict) or "trustworthy" not in entry:
        return "sanity check: not run"
    return "✅ passes the sanity check" if entry["trustworthy"] else "❌ fails the sanity check: do not trust"


# --- gallery -----------------------------------------------------------------------------------------
gallery_idx: np.ndarray = np.zeros(0, dtype=np.int64)
st.subheader("Gallery of D′ images")
with session.guard("Gallery"):
    test = data.tensors(ref, "test_eval")
    if preds is None or test is None:
        raise session.NotComputed("The D′ images or predictions are not stored in this run.")
    col = f"pred_{model}"
    if col not in preds:
        raise session.NotComputed(f"No predictions of {method_label(model)} are stored in this run.")
    sampled = data.tensors(ref, "sample", "microscope")
    rows = preds
    if sampled is not None:  # images whose maps the pipeline precomputed come first (instant maps)
        first = set(int(i) for i in sampled["indices"])
        rows = rows.assign(_pre=[0 if int(i) in first else 1 for i in rows["index"]]).sort_values(["_pre", "index"], kind="stable")
    if group != "all":
        rows = rows[rows["group"] == groups.index(group)]
    if ctx.view.correct != "all":
        right = rows[col] == rows["label"]
        rows = rows[right] if ctx.view.correct == "correct" else rows[~right]
    idx = rows["index"].to_numpy()[:GALLERY]
    gallery_idx = idx
    st.caption(f"{len(rows)} images match; showing {len(idx)}. ✓/✗ = {method_label(model)} right/wrong. Click **Inspect** for every method's map.")
    maps = None
    if method and len(idx):
        try:
            maps, _ = engine.attribution_maps(ref, model, method, idx)
        except session.NotComputed:
            raise
        except Exception as e:  # noqa: BLE001  (maps are optional in the gallery; the images still help)
            st.caption(f"Maps unavailable for the gallery ({type(e).__name__}: {e}).")
    cols = st.columns(6)
    for j, i in enumerate(idx):
        with cols[j % 6]:
            label, pred = int(preds.at[i, "label"]), int(preds.at[i, col])
            pic = images.overlay(test["images"][i], None if maps is None else maps[j], test["masks"][i], factor=2)
            st.image(images.png_bytes(pic), caption=f"{'✓' if label == pred else '✗'} #{i} {groups[int(preds.at[i, 'group'])] if groups else ''} → {classes[pred] if classes else pred}", width="stretch")
            st.button("Inspect", key=f"insp_{i}", on_click=_inspect, args=(i,), type="primary" if i == img else "secondary", width="stretch")
    if not len(idx):
        st.info("No image matches these filters.")

# --- one image, every method ------------------------------------------------------------------------
st.subheader("One image, every attribution method")
with session.guard("Attribution maps"):
    test = data.tensors(ref, "test_eval")
    if test is None or preds is None:
        raise session.NotComputed("The D′ images are not stored in this run.")
    shown_img = img
    if shown_img is None and len(gallery_idx):
        shown_img = int(gallery_idx[0])
        st.caption("Showing the first image of the gallery; click **Inspect** under another image to choose it.")
    if shown_img is None:
        st.caption("No image matches the filters.")
    else:
        label = int(preds.at[shown_img, "label"])
        pred_cols = {m: int(preds.at[shown_img, f"pred_{m}"]) for m in models if f"pred_{m}" in preds}
        said = ", ".join(f"{method_label(m)} says **{classes[p]}**" for m, p in pred_cols.items())
        st.markdown(f"Image **#{shown_img}** · group **{groups[int(preds.at[shown_img, 'group'])]}** · truly a **{classes[label]}** · {said}.")
        if not methods:
            raise session.NotComputed("No attribution method is registered or computed for this run.")
        cols = st.columns(len(methods) + 1)
        cols[0].image(images.png_bytes(images.overlay(test["images"][shown_img], None, test["masks"][shown_img], factor=3)), caption="the image", width="stretch")
        for c, m in zip(cols[1:], methods, strict=False):
            with c:
                try:
                    mp, target = engine.attribution_maps(ref, model, m, [shown_img])
                    st.image(images.png_bytes(images.overlay(test["images"][shown_img], mp[0], test["masks"][shown_img], factor=3)), caption=f"{m.replace('_', ' ')} (explains “{classes[int(target[0])]}”)", width="stretch")
                except session.NotComputed:
                    raise
                except Exception as e:  # noqa: BLE001
                    st.caption(f"{m}: unavailable ({type(e).__name__})")
                st.caption(verdict(m))
                if registry.get(m):
                    st.caption(registry[m])
        st.caption("Bright = pixels that pushed the model towards its answer. The verdict comes from the model-randomisation sanity check (Adebayo et al., 2018).")

# --- relevance on the animal ------------------------------------------------------------------------
st.subheader("How much relevance falls on the animal?")
with session.guard("Relevance on the animal"):
    per_image = data.table(ref, "relevance", "microscope")
    if per_image is not None and {"model", "group", "relevance_mass"} <= set(per_image.columns):
        sub = per_image if method is None or "method" not in per_image else per_image[per_image["method"] == method]
        widgets.chart(
            charts.relevance_distribution(sub.rename(columns={"relevance_mass": "share"})),
            "micro_relevance_dist",
            f"Each box is many images of one group ({method}); the baseline's relevance drifts off the animal where the background misleads it.",
            run_id=ref.run_id,
        )
    if not any(m.get("relevance_on_animal") for m in micro.values()):
        raise session.NotComputed("The microscope stage (attributions, relevance, TCAV) has not run for this run.")
    widgets.chart(
        charts.relevance_bars(micro),
        "micro_relevance",
        "Mean share of each model's positive relevance that lies inside the animal's outline; the dotted line is what a blind map would score.",
        run_id=ref.run_id,
    )

# --- sanity checks ----------------------------------------------------------------------------------
with session.guard("Sanity checks"):
    rows = []
    for mdl, m in micro.items():
        for meth, entry in (m.get("sanity") or {}).items():
            if isinstance(entry, dict):
                extra = {k: v for k, v in entry.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
                final = (entry.get("spearman_abs") or [None])[-1]
                rows.append({
                    "model": method_label(mdl),
                    "method": meth,
                    "verdict": "trustworthy" if entry.get("trustworthy") else "NOT trustworthy",
                    "rank correlation after full randomisation": final,
                    **extra,
                })
    if rows:
        with st.expander("Sanity-check details (model-randomisation test)"):
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
            st.caption("A method whose maps barely change when the model's weights are randomised explains the image, not the model.")

# --- TCAV -------------------------------------------------------------------------------------------
st.subheader("Which concepts does the baseline respond to? (TCAV)")
with session.guard("TCAV"):
    tcav = (micro.get("erm") or {}).get("tcav") or []
    if not tcav:
        raise session.NotComputed("TCAV scores for the baseline are not stored in this run.")
    vocab = world.get("vocabulary", [])
    kinds = {v["id"]: v["kind"] for v in vocab}
    texts = {v["id"]: v["text"] for v in vocab}
    layers = sorted({str(t.get("layer")) for t in tcav}, key=lambda name: (name != "penultimate", name))
    layer = layers[0]
    if len(layers) > 1:
        layer = st.radio("Layer", layers, horizontal=True, key="w_tcav_layer")
    widgets.chart(
        charts.tcav_bars([t for t in tcav if str(t.get("layer")) == layer], kinds, texts),
        "micro_tcav",
        "Green = animal features, red = backgrounds; faded bars are not statistically different from random concepts.",
        run_id=ref.run_id,
    )
    sig = np.array([bool(t.get("significant")) for t in tcav])
    st.caption(f"{int(sig.sum())} of {len(tcav)} concept/class scores are significant after multiple-testing correction.")
