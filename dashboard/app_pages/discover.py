"""Discover: the concepts the models use that nobody annotated (:mod:`igcore.discover`), for people to name.

Each component of a model's layer (NMF, ACE / CRAFT) is shown by the D′ images where it is most present, its
map over them and the crop around its strongest place; what it resembles (presence AUC against every
annotated concept, background and group); and what removing it from each examined model's layer does to the
model's answers, with 95% intervals ("erm relies on component 3; ig_student does not"). A form stores a
person's name for it in the dashboard's database (:class:`igcore.discover.store.NameStore`: rater, time,
history kept), and z* is re-solved in the named words (:func:`igcore.resolve.resolve` with ``names``).

The selected component and the person's name travel in the URL (``comp``, a view key of
:class:`dashboard.url_state.ViewState`, and ``rater``), so a reload or a shared link shows the same component;
names live in the database, so every session sees them, and every page shows the concept by its name (the run
view reads the names when it opens: :attr:`dashboard.run_view.RunView.vocabulary`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import engine, session, url_state
from dashboard.components import tables, widgets
from dashboard.components.text import most_relied_sentence, reliance_sentence, utc_time
from dashboard.page import open_page
from dashboard.run_view import RunView
from igcore.discover.names import MAX_NAME_LENGTH, is_named, parse_id
from igcore.errors import InputError
from igcore.hypothesis import implausible_sentence
from igcore.schema import Interval

RATER = "w_discover_rater"
COMPONENT = "w_discover_comp"
FLASH = "_discover_flash"
MEASURE = "_discover_measure"  # (run id, names) whose components a person asked to measure together


def _choose(run: RunView, view: url_state.ViewState, notes: list[str]) -> url_state.ViewState:
    """The link's component if the run discovered it, else the first one (None when the run discovered none)."""
    try:
        ids = engine.discovery_view(run).component_ids()
    except InputError:
        return replace(view, comp=None)
    return replace(view, comp=url_state.choose(view.comp, ids, ids[0], "discovered concept", notes))


def _on_pick() -> None:
    session.set_view(comp=st.session_state[COMPONENT])


wanted_rater = widgets.wanted_rater()
page = open_page(
    "Discover: concepts nobody annotated",
    "The concepts below were **found in the models themselves**: a non-negative factorisation of a layer's activations "
    "(ACE, CRAFT), not annotated by anyone. Each is shown by the D′ images where it is most present, what it resembles "
    "among the annotated concepts, and what removing it from each model does to that model's answers. Name the ones you "
    "recognise: a named concept becomes a word z* can use, and z* is re-solved in it below.",
    keys=["comp"],
    choose=_choose,
)
run = page.run
page.require("discover", "discovered concepts and their effects")


def show_together(together: pd.DataFrame, models: list[str]) -> None:
    """A table of components removed together (:func:`igcore.discover.view.together_table`): name, components, effects."""
    st.dataframe(tables.removed_together_table(together, models), hide_index=True, width="stretch")


def _name(store: object, rater: str, component: str, text: str) -> None:
    """Form callback: store the name before the page runs again."""
    try:
        store.name(rater, component, text)  # type: ignore[attr-defined]
    except InputError as e:
        st.session_state[FLASH] = ("error", f"That name could not be saved: {e}")
        return
    st.session_state[FLASH] = ("success", f"{component} is now named “{text.strip()}”.")


def _measure(run_id: str, texts: tuple[str, ...]) -> None:
    """Button callback: this session asks for these names of this run to be measured together."""
    st.session_state[MEASURE] = (run_id, texts)


def _unname(store: object, rater: str, component: str) -> None:
    try:
        store.unname(rater, component)  # type: ignore[attr-defined]
    except InputError as e:
        st.session_state[FLASH] = ("error", f"The name could not be taken back: {e}")
        return
    st.session_state[FLASH] = ("info", f"{component} is unnamed again (its old names stay in the history).")


with session.guard("Discovered concepts"):
    view = engine.discovery_view(run)
    store = engine.name_store(run)
    names = run.name_map  # read when the page opened, as every page reads them
    ids = view.component_ids()
    component = page.view.comp or ids[0]
    source, k = parse_id(component)  # type: ignore[misc]
    table = view.components(source, names)
    models = tables.effect_models(table)

    st.subheader("Every discovered concept")
    info = view.info(source)
    st.markdown(
        f"{len(table)} components of **{source}**'s layer `{info.get('layer', '?')}`. Effect: the mean change in the log-odds of "
        "the model's own answer on D′_eval when the component is removed from that model's layer (negative = the model "
        "relies on it), with bootstrap 95% intervals; rank 1 = the component it relies on most."
    )
    st.dataframe(tables.discovered_table(table, run.concept_texts), hide_index=True, width="stretch")
    if sentence := most_relied_sentence(table, models):
        st.markdown(sentence)
    together = view.alike(source)
    if not together.empty:
        st.markdown("**Named alike, removed together**: the components the run's names (`discover.names`) gave one name, "
                    "removed from each model's layer at once — the model's reliance on the concept, not on one of its parts.")
        show_together(together, models)
    if unmeasured := view.alike_unmeasured(source, names):
        people = engine.named_together(run, unmeasured, measure=st.session_state.get(MEASURE) == (run.run_id, tuple(unmeasured)))
        if not people.table.empty:
            st.markdown("**Named alike here, removed together**: the components people gave one name on this page, removed "
                        "from each model's layer at once on the run's D′_eval, as the run removes those its names share.")
            show_together(people.table, models)
        if people.unmeasured:
            st.caption(f"Named alike here but not measured together yet: {', '.join(f'“{t}”' for t in people.unmeasured)}. "
                       "Measuring removes each name's components from every model's layer on D′_eval (the run's models, "
                       "seconds per model); the dashboard's database keeps the answer for every session.")
            st.button("Measure them together", key="w_discover_measure", on_click=_measure, args=(run.run_id, tuple(unmeasured)))

    texts = run.concept_texts
    session.bind(COMPONENT, component)
    st.selectbox("Component", ids, key=COMPONENT, format_func=lambda c: f"{c} · {texts.get(c, c)}", on_change=_on_pick)
    row = table[table["id"] == component].iloc[0]
    st.subheader(f"{component}: {row['text']}")

with session.guard("Exemplars and maps"):
    st.markdown("**Where it is most present in D′** (the map of the component over each image; below, the crop around its strongest place)")
    shown_exemplars = widgets.exemplar_pngs(run, component)
    cols = st.columns(max(1, len(shown_exemplars)))
    for col, (i, overlay_png, crop_png) in zip(cols, shown_exemplars, strict=False):
        widgets.show_png(overlay_png, where=col, caption=f"#{i}")
        widgets.show_png(crop_png, where=col)

with session.guard("What it resembles"):
    st.markdown("**What it resembles**: the ROC AUC of its presence on D′_eval against every annotated concept, background "
                "and group (1 = present exactly where the other is; 0.5 = unrelated).")
    resemblance = view.resemblance(component)
    if resemblance.empty:
        st.caption("Nothing annotated to compare it with.")
    else:
        concept_texts = run.concept_texts  # annotated concepts in their words, backgrounds and groups by name
        st.dataframe(resemblance.head(12).assign(
            auc=lambda d: d["auc"].round(3),
            name=lambda d: [concept_texts.get(n, n) if kind == "concept" else n for kind, n in zip(d["kind"], d["name"], strict=True)],
        ), hide_index=True, width="stretch")

with session.guard("Its effect on each model"):
    effects_table = view.effects(source)
    mine = effects_table[effects_table["component"] == component]
    overall = mine[mine["group"] == "all"]
    st.markdown("**Its causal effect**: removing it from each model's layer changes the log-odds of the model's own answer by")
    effects = {r["model"]: Interval(mean=r["mean"], ci_low=r["ci_low"], ci_high=r["ci_high"], n=int(r["n"])) for _, r in overall.iterrows()}
    st.markdown(reliance_sentence(f"component {k}", effects))
    st.dataframe(mine.pivot_table(index="group", columns="model", values="mean").round(3), width="stretch")

st.subheader("Name it")
flash = st.session_state.pop(FLASH, None)
if flash:
    getattr(st, flash[0])(flash[1])
with session.guard("Naming"):
    rater = widgets.rater_name(RATER, wanted_rater, "Names are stored under your name, with the time; the history is kept.")
    row = table.set_index("id").loc[component]
    current = row["text"] if row["named"] else None  # the run's own name (discover.names) or a person's, whichever is latest
    st.markdown(f"Current name of {component}: **{current}**" if current else f"{component} is **unnamed**.")
    with st.form("w_discover_name_form", clear_on_submit=True):
        text = st.text_input("What does this concept show?", max_chars=MAX_NAME_LENGTH, key="w_discover_text",
                             placeholder="e.g. a ruler at the edge")
        submitted = st.form_submit_button("Save the name", type="primary", disabled=rater is None)
    if submitted and rater is not None:
        _name(store, rater, component, text)
        st.rerun()
    if current and rater is not None:
        st.button("Take the name back", on_click=_unname, args=(store, rater, component), key="w_discover_unname")
    if rater is None:
        st.info("Type your name to name a concept.", icon="✍️")
    history = store.history(component)
    if len(history):
        st.dataframe(history.assign(created=history["created"].map(utc_time), text=history["text"].replace("", "(unnamed)")),
                     hide_index=True, width="stretch")

st.subheader("z* in the named words")
with session.guard("z* re-solved with the names"):
    named = {c.id: c.text for c in run.vocabulary.concepts if is_named(c)}  # the run's names with people's on top
    if not named:
        st.caption("No discovered concept is named yet: z* speaks only the annotated concepts (a clause about an unnamed "
                   "concept is nothing a person can judge).")
    else:
        solved = engine.resolve_named(run)
        used = sorted({c["concept"] for c in solved["z_star"]} & set(named))
        st.markdown(f"Re-solved on the run's own judgments with {len(named)} named concept(s) "
                    f"({', '.join(f'“{named[c]}”' for c in sorted(named))}); z* now reads:")
        st.markdown(f"> {solved['text']}")
        if warning := implausible_sentence(solved["implausible"], run.concept_texts):
            st.warning(warning)
        st.caption(f"Named concepts z* uses: {', '.join(named[c] for c in used) if used else 'none'}. "
                   f"{solved['left_out']} discovered concept(s) are still unnamed and left out of z*'s language. "
                   f"Solved in {np.round(solved['engine_seconds'], 2)} s.")
