"""Label with z*: a person reads z*'s field guide and labels D′ images, one at a time; how often L_M(·|x, z*)
gives the same answer (:mod:`igcore.labels`).

Every answer is stored at once in the judgments database (rater, image, time), so the page keeps no state
of its own: a reload, another tab or another server shows the same progress. The person never sees a
model's answer for the image they are labelling.
"""

from __future__ import annotations

import streamlit as st

from dashboard import engine, session
from dashboard.components import images, widgets
from dashboard.components.tables import percent_value
from dashboard.components.text import utc_time
from dashboard.page import open_page
from igcore.errors import InputError
from igcore.labels import EVERYONE, Agreement, agreement, disagreements, to_csv, write_imitation

NAME = "w_label_rater"  # the person's name travels in the URL too (widgets.rater_name), so a reload keeps it
FLASH = "_label_flash"
#: Disagreements shown as images (the table lists them all).
GALLERY = 12

wanted = widgets.wanted_rater()
page = open_page(
    "Label with z*: would a person answer as L_M does?",
    "IG assumes that L_M(y | x, z) labels an image **the way a person who has read z would**. Check it: read z*'s field guide, "
    "then say which class each image shows. Your answers are saved as you give them; the page then compares them with "
    "L_M(· | x, z*), which applies the same field guide to the concept model's scores.",
)
run = page.run
page.require("hypotheses.z_star_text", "z* as a field guide")
page.require("hypotheses.z_star_json", "stored z* with its biases")
classes = run.classes


def _answer(rater: str, image: int, label: str) -> None:
    """Button callback: store the answer for the image that was on screen (before the page runs again)."""
    try:
        stored = engine.label_store(run).add(rater, image, label)
    except InputError as e:
        st.session_state[FLASH] = ("error", f"That answer could not be saved: {e}")
        return
    if not stored:
        st.session_state[FLASH] = ("info", f"Image #{image} already had your answer; the first answer stands.")


def _people(n: int) -> str:
    return f"{n} {'person' if n == 1 else 'people'}"


def _sentence(a: Agreement, who: str, empty: str) -> str:
    if not a.n:
        return empty
    return (
        f"{who} the same answer as L_M(·|x, z*) on **{a.agree} of {a.n}** images: **{100 * a.rate:.1f}%** "
        f"(95% interval {100 * a.ci_low:.1f}–{100 * a.ci_high:.1f}%)."
    )


rater = widgets.rater_name(NAME, wanted, "Your answers are stored under this name; use the same name to continue later.")

flash = st.session_state.pop(FLASH, None)
if flash:
    getattr(st, flash[0])(flash[1])

with session.guard("Labelling"):
    store = engine.label_store(run)
    test = run.test_eval()
    n_images = len(test["images"])
    if rater is None:
        st.info("Type your name to start labelling. Your answers are saved under it as you go.", icon="✍️")
    else:
        mine = store.labels(rater)
        image = store.next_image(rater, int(run.info.seed or 0))
        st.progress(len(mine) / n_images if n_images else 1.0, text=f"{rater}: {len(mine)} of {n_images} images labelled")
        if image is None:
            st.success("You have labelled every D′ image of this run. Thank you!")
        else:
            left, right = st.columns([0.35, 0.65])
            with left:
                side = test["images"][image].shape[0]
                widgets.show_png(images.png_bytes(images.upscale(test["images"][image], max(1, 256 // side))), caption=f"D′ image #{image}", width=256)
            with right:
                st.markdown("**z\\*, the field guide** (read it, then answer):")
                st.markdown(f"> {run.hypothesis_text('z_star')}")
                st.markdown("**Which class is this?**")
                cols = st.columns(len(classes))
                for col, cls in zip(cols, classes, strict=True):
                    col.button(cls, key=f"w_label_{cls}", on_click=_answer, args=(rater, image, cls), width="stretch", type="primary")

st.subheader("Agreement with L_M(·|x, z*)")
with session.guard("Agreement with L_M"):
    store = engine.label_store(run)
    everyone = store.labels()
    proba = engine.z_star_proba(run)
    rows = agreement(everyone, proba, classes)
    by_rater = {a.rater: a for a in rows}
    if rater is not None:
        st.markdown(_sentence(by_rater.get(rater, Agreement(rater, 0, 0, None, None, None)), "You gave", "You have not labelled any image yet."))
    st.markdown(_sentence(by_rater[EVERYONE], f"Everyone together ({_people(len(rows) - 1)}) gave", "Nobody has labelled an image of this run yet."))
    if len(everyone):
        table = [{"who": a.rater, "labels": a.n, "same as L_M": a.agree, "agreement": percent_value(a.rate), "95% low": percent_value(a.ci_low),
                  "95% high": percent_value(a.ci_high)} for a in rows]
        pct = st.column_config.NumberColumn(format="%.1f%%")
        st.dataframe(table, hide_index=True, width="stretch", column_config={"agreement": pct, "95% low": pct, "95% high": pct})
        st.caption("Wilson 95% intervals; “everyone” pools every label (two people labelling one image count twice).")
        differ = disagreements(everyone, proba, classes)
        if rater is not None:
            differ = differ[differ["rater"] == rater]
        who = "you" if rater is not None else "people"
        with st.expander(f"Images where {who} and L_M differ ({len(differ)}); this shows L_M's answers, so open it after labelling"):
            if differ.empty:
                st.caption("None.")
            else:
                shown = differ.head(GALLERY)
                widgets.image_strip(
                    [images.upscale(test["images"][i], 2) for i in shown["image"]],
                    [f"#{i}: {r} said {lab} (L_M gives it {100 * p:.0f}%); L_M says {lm}" for i, r, lab, lm, p in
                     zip(shown["image"], shown["rater"], shown["label"], shown["lm_label"], shown["lm_p_label"], strict=True)],
                    columns=6, width=140,
                )
                st.dataframe(differ, hide_index=True, width="stretch", column_config={
                    "lm_p_label": st.column_config.NumberColumn("L_M's probability of the person's label", format="%.2f")})

        left, right = st.columns(2)
        if left.button("Write the agreement into the run", key="w_label_write", icon=":material/save:"):
            try:
                section = write_imitation(run.run, everyone)
            except InputError as e:
                st.error(f"The agreement could not be written: {e}")
            else:
                o = section["overall"]
                st.session_state[FLASH] = ("success", f"Written into run {run.run_id} (metrics key `imitation`, `labels/`): "
                                           f"{o['agree']} of {o['n']} labels agree with L_M.")
                st.rerun()
        right.download_button("Download the answers (CSV)", data=to_csv(everyone), file_name=f"labels-{run.run_id}.csv",
                              mime="text/csv", key="w_label_csv", icon=":material/download:")
    stored = run.results.imitation
    if stored:
        o = stored.get("overall") or {}
        st.caption(f"Stored in this run ({utc_time(stored.get('written'))}): {o.get('agree')} of {o.get('n')} labels by "
                   f"{_people(int(stored.get('n_raters') or 0))} agree with L_M.")
