"""Microscope: does each model use the background? Counterfactual effects first (the decisive evidence),
then captum maps with each model's own sanity verdict, relevance on the object, and TCAV with its controls."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import engine, session, url_state
from dashboard.components import evidence, figures, tables, text, widgets
from dashboard.components.style import KIND_LEGEND, attribution_label, method_label, possessive
from dashboard.page import open_page
from dashboard.run_view import RunView
from igcore.methods import order_methods
from igcore.schema import pred_column

GALLERY = 12


def models_of(run: RunView) -> list[str]:
    """Models the page can put under the microscope: those the microscope examined, else the baseline."""
    return run.examined or order_methods([m for m in ("erm", "ig_student") if m in run.methods]) or ["erm"]


def tcav_model_of(view: url_state.ViewState, with_tcav: list[str]) -> str:
    """The TCAV section's model: the link's, else the model under the microscope when it has scores, else the first."""
    return view.tcav or (view.model if view.model in with_tcav else with_tcav[0])


def _choose(run: RunView, view: url_state.ViewState, notes: list[str]) -> url_state.ViewState:
    models, methods = models_of(run), run.attribution_methods
    view = replace(
        view,
        model=url_state.choose(view.model, models, models[0], "model", notes),
        method=url_state.choose(view.method, methods, methods[0], "attribution method", notes),
        group=url_state.choose(view.group, ["all", *run.groups], "all", "group filter", notes),
        img=url_state.choose_index(view.img, run.world.sizes["test_eval"], None, "image number", notes, shown="the first image of the gallery"),
    )
    with_tcav = run.with_evidence("tcav")
    if not with_tcav:  # the TCAV section says why; a link's choices there have nothing to select
        return replace(view, tcav=None, layer=None)
    view = replace(view, tcav=url_state.choose(view.tcav, with_tcav, None, "TCAV model", notes, why="has no TCAV scores in this run",
                                               shown="the TCAV scores of the model under the microscope"))
    shown = tcav_model_of(view, with_tcav)
    layers = run.tcav_layers(shown)
    return replace(view, layer=url_state.choose(view.layer, layers, None, "TCAV layer", notes, why=f"is not a TCAV layer of {shown}",
                                                shown=f"its first ({url_state.shorten_code(layers[0])})"))


def _lead(run: RunView) -> str:
    outline = " (the cyan line outlines the object)" if run.has_masks else ""
    return (
        "Three kinds of evidence, the most decisive first: **counterfactual swaps** change only the background or only the "
        "object of an image and measure how the model's confidence moves; **attribution maps** (captum) show where the "
        f"gradients are{outline}, each with its own model's sanity verdict; **TCAV** asks which concepts a layer responds to, "
        "against random image sets."
    )


page = open_page(
    "Microscope: does the model use the background?",
    _lead,
    keys=["model", "method", "group", "correct", "img", "tcav", "layer"],
    choose=_choose,
)
run = page.run
view = page.view
models, methods = models_of(run), run.attribution_methods
model, method, group, img = view.model, view.method, view.group, view.img
classes, groups = run.classes, run.groups
micro = run.microscope
descriptions = engine.attribution_methods()

# --- the headline: counterfactual evidence --------------------------------------------------------
st.subheader("Does it use the background?")
evidence.background_evidence(run, "micro")

st.divider()
st.subheader("Attribution maps: where the gradients are")


def _set(field: str, widget: str) -> None:
    session.set_view(**{field: st.session_state[widget]})


def _inspect(i: int) -> None:
    session.set_view(img=int(i))


def _keep_layer(changed: url_state.ViewState) -> str | None:
    """The selected TCAV layer when the TCAV section's model in view ``changed`` has it, else None (its first): the
    page's own choice (:func:`_choose`), without a note, since the user's click, not a link, changed the model."""
    return _choose(session.context().run, changed, []).layer


def _set_model() -> None:
    """The model under the microscope changes, and with it the TCAV section's model unless a link or a click chose one."""
    changed = replace(session.context().view, model=st.session_state["w_model"])
    session.set_view(model=changed.model, layer=_keep_layer(changed))


def _set_tcav_model() -> None:
    """The TCAV section's model changes; its layer stays selected when the new model has it."""
    changed = replace(session.context().view, tcav=st.session_state["w_tcav_model"])
    session.set_view(tcav=changed.tcav, layer=_keep_layer(changed))


c1, c2, c3, c4 = st.columns(4)
session.bind("w_model", model)
c1.selectbox("Model", models, key="w_model", format_func=method_label, on_change=_set_model)
session.bind("w_method", method)
c2.selectbox(
    "Attribution method (gallery)",
    methods,
    key="w_method",
    format_func=attribution_label,
    on_change=_set,
    args=("method", "w_method"),
    help="The map drawn over the gallery images; the detail view below shows every method.",
)
session.bind("w_group", group)
c3.selectbox("Group", ["all", *groups], key="w_group", on_change=_set, args=("group", "w_group"), help=text.place_legend(run.place_categories()))
session.bind("w_correct", view.correct)
c4.segmented_control("Answer", list(url_state.CORRECTNESS), key="w_correct", on_change=_set, args=("correct", "w_correct"), format_func=str.capitalize)

def verdict(m: str) -> str:
    """The sanity-check verdict of the selected model's maps of method ``m``, in words."""
    return text.sanity_verdict(run.sanity(model, m), possessive(model))


# --- gallery -----------------------------------------------------------------------------------------
gallery_idx: np.ndarray = np.zeros(0, dtype=np.int64)
st.markdown("#### Gallery of D′ images")
with session.guard("Gallery"):
    run.need(f"methods.{model}", f"answers of {method_label(model)}")
    preds = run.predictions()
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
    st.markdown(f"Maps: **{attribution_label(method)}** of {method_label(model)} · {verdict(method)}")
    if len(gallery_idx):
        engine.attribution_maps(run, model, method, gallery_idx)  # one batch for the maps the run has not cached yet
    cols = st.columns(6)
    for j, i in enumerate(gallery_idx):
        with cols[j % 6]:
            label, pred = int(preds.at[i, "label"]), int(preds.at[i, col])
            widgets.show_png(widgets.test_image_png(run, int(i), model, method), caption=f"{'✓' if label == pred else '✗'} #{i} {groups[int(preds.at[i, 'group'])]} → {classes[pred]}", width="stretch")
            st.button("Inspect", key=f"insp_{i}", on_click=_inspect, args=(i,), type="primary" if i == img else "secondary", width="stretch")
    if not len(gallery_idx):
        st.info("No image matches these filters.")

# --- one image, every method ------------------------------------------------------------------------
st.markdown("#### One image, every attribution method")
with session.guard("Attribution maps"):
    preds = run.predictions()
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
        widgets.show_png(widgets.test_image_png(run, shown_img, factor=3), where=cols[0], caption="the image", width="stretch")
        for c, m in zip(cols[1:], methods, strict=True):
            with c:
                _, target = engine.attribution_maps(run, model, m, [shown_img])
                widgets.show_png(widgets.test_image_png(run, shown_img, model, m, factor=3), caption=f"{attribution_label(m)} (explains “{classes[int(target[0])]}”)", width="stretch")
                st.caption(verdict(m))
                st.caption(descriptions.get(m, ""))
        st.caption(
            f"Maps of {method_label(model)}. Bright = pixels that pushed the model towards its answer. Each verdict is this model's own "
            "model-randomisation sanity check of that method (Adebayo et al., 2018): maps that barely change when the weights are "
            "randomised explain the image, not the model."
        )

# --- relevance on the object ------------------------------------------------------------------------
st.markdown("#### How much relevance falls on the object?")
st.caption(
    "This shows **where the gradients are, not which evidence wins**: a model can put most of its relevance on the object and still "
    "change its mind when only the background changes. The counterfactual effects above answer that question; read this as a secondary view."
)
with session.guard("Relevance on the object"):
    run.evidence("relevance_on_animal", "relevance on the object")  # engine key (the object's mask): says why when absent
    widgets.chart(
        figures.run_figure(run, "relevance_distribution", method),
        "micro_relevance_dist",
        f"Each box is many images of one group ({attribution_label(method)}): the share of each image's positive relevance inside the object's mask.",
        run_id=run.run_id,
    )
    widgets.chart(
        figures.run_figure(run, "relevance"),
        "micro_relevance",
        "Mean share of each model's positive relevance inside the object's mask; the dotted line is what a blind map would score.",
        run_id=run.run_id,
    )

# --- sanity checks ----------------------------------------------------------------------------------
with session.guard("Sanity checks"):
    rows = [
        {
            "model": method_label(mdl),
            "method": attribution_label(meth),
            "verdict": {True: "trustworthy", False: "NOT trustworthy", None: "undefined"}[entry.trustworthy],
            "rank correlation after full randomisation": entry.final_spearman_abs,
            "threshold": entry.threshold,
        }
        for mdl, m in micro.items()
        for meth, entry in m.sanity.items()
    ]
    if rows:
        with st.expander("Sanity-check details, every model and method (model-randomisation test)"):
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
            st.caption("A method whose maps barely change when the model's weights are randomised explains the image, not the model.")

# --- TCAV -------------------------------------------------------------------------------------------
st.divider()
st.subheader("Which concepts does it respond to? (TCAV)")
with session.guard("TCAV"):
    with_tcav = list(run.evidence("tcav", "TCAV scores"))
    tcav_model = tcav_model_of(view, with_tcav)
    if len(with_tcav) > 1:
        session.bind("w_tcav_model", tcav_model)
        st.radio("Model", with_tcav, horizontal=True, format_func=method_label, key="w_tcav_model", on_change=_set_tcav_model)
    tcav = run.tcav(tcav_model)
    layers = run.tcav_layers(tcav_model)
    layer = view.layer or layers[0]
    if len(layers) > 1:
        session.bind("w_tcav_layer", layer)
        st.radio("Layer", layers, horizontal=True, key="w_tcav_layer", on_change=_set, args=("layer", "w_tcav_layer"))
    shown = [t for t in tcav if t.layer == layer]
    widgets.chart(
        figures.run_figure(run, "tcav", tcav_model, layer),
        "micro_tcav",
        f"{method_label(tcav_model)}, layer {layer}. Colours: {KIND_LEGEND}. Bars are the mean over repeats, whiskers the "
        "lowest to highest score; ★ solid = significant in every repeat, ◐ hatched = in some repeats only (unstable), faded = in none.",
        run_id=run.run_id,
    )
    status = [t.status for t in shown]
    repeats = max((t.repeats for t in shown), default=1)
    corrected = run.run.config_model().microscope.tcav.correction != "none"
    st.markdown(
        f"**{status.count('significant')}** of {len(shown)} concept/class scores are significant in every one of {repeats} repeats, "
        f"**{status.count('unstable')}** only in some (unstable), {status.count('not significant')} in none"
        f"{' (after multiple-testing correction)' if corrected else ' (p-values not corrected for multiple tests: microscope.tcav.correction is none)'}."
    )
    controls = run.tcav_controls(tcav_model)
    st.markdown(text.tcav_controls_sentence(controls))
    with st.expander("TCAV scores, concept by concept"):
        st.dataframe(tables.tcav_table(shown, run.concept_texts), hide_index=True, width="stretch",
                     column_config={c: st.column_config.NumberColumn(format="%.2f") for c in ("score (mean)", "lowest", "highest")})
