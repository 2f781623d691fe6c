"""Prior: the human judgments behind Prior_M; add ratings, re-fit, re-solve z* live, reset."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import engine, session
from dashboard.components import charts, widgets
from dashboard.components.style import base_layout
from dashboard.page import open_page
from igcore.errors import InputError
from igcore.hypothesis import summary_sentence

page = open_page(
    "Prior: what people find plausible, and how it shapes z*",
    "IG's generalisation comes from a **human prior**: people rated how plausible it is that each concept is evidence for each class. "
    "A model of those ratings (Prior_M) scores every hypothesis. Change the ratings and watch z* change.",
)
run = page.run
classes, texts, concept_ids = run.classes, run.concept_texts, run.concept_ids
RESULT = f"_prior_resolve_{run.run_id}"
FLASH = "_prior_flash"
WARM = f"_prior_search_{run.run_id}"

flash = st.session_state.pop(FLASH, None)
if flash:
    st.success(flash)

store = engine.judgments_store(run)
ratings = store.ratings()
pairwise = store.pairwise()

# --- the judgments ----------------------------------------------------------------------------------
st.subheader("The judgments")
c1, c2, c3 = st.columns(3)
c1.metric("Ratings", len(ratings))
c2.metric("Raters", ratings["rater"].nunique())
c3.metric("Added here", int((ratings["source"] == "user").sum()))
shown = ratings.assign(clause=[f"{texts[c]} ⇒ {k}" for c, k in zip(ratings["concept"], ratings["class"], strict=True)])
with st.expander(f"All {len(ratings)} ratings", expanded=False):
    st.dataframe(
        shown[["rater", "clause", "rating", "source", "concept", "class"]].iloc[::-1],
        hide_index=True,
        width="stretch",
        column_config={"rating": st.column_config.NumberColumn(help="1 = implausible … 5 = very plausible")},
    )
    st.caption(f"Also {len(pairwise)} pairwise preferences between whole hypotheses (they set the cost of long hypotheses).")

with session.guard("Plausibility per clause"):
    table, summary = engine.prior_table(run, ratings, pairwise)
    pivot = table.pivot(index="concept", columns="class", values="plausibility").reindex(concept_ids)
    fig = go.Figure(
        go.Heatmap(
            z=pivot.to_numpy(),
            x=[f"→ {c}" for c in pivot.columns],
            y=[texts[c] for c in pivot.index],
            colorscale="RdYlGn",
            zmin=0,
            zmax=1,
            text=[[f"{v:.2f}" for v in row] for row in pivot.to_numpy()],
            texttemplate="%{text}",
            colorbar={"title": "P(endorsed)"},
            hovertemplate="%{y} %{x}<br>plausibility %{z:.2f}<extra></extra>",
        )
    )
    fig.update_layout(**base_layout(height=120 + 24 * len(pivot), title={"text": "Prior_M: how plausible is “concept ⇒ class”?", "font": {"size": 15}}, yaxis={"autorange": "reversed"}))
    widgets.chart(fig, "prior_plausibility", "Fitted on the current ratings; unrated clauses get a value from a text model of the concept (so the prior generalises).", run_id=run.run_id)
    st.caption(f"Text encoder: {str(summary.get('encoder')).split(' (')[0]} · {summary.get('n_ratings')} ratings by {summary.get('n_raters')} raters · {summary.get('unrated_clauses')} clauses nobody rated.")

# --- add a rating -----------------------------------------------------------------------------------
st.subheader("Add your rating")
with st.form("add_rating", clear_on_submit=False, border=True):
    a, b, c, d = st.columns([1.1, 1.6, 0.8, 0.8])
    rater = a.text_input("Your name", key="w_rater", max_chars=60, placeholder="e.g. ana")
    concept = b.selectbox("Concept", concept_ids, key="w_concept", format_func=lambda k: texts[k])
    cls = c.selectbox("is evidence for", classes, key="w_class")
    rating = d.number_input("Rating (1–5)", value=3, step=1, key="w_rating", help="1 = implausible … 5 = very plausible")
    submitted = st.form_submit_button("Add rating", type="primary")
if submitted:
    if rating is None or not float(rating).is_integer() or not 1 <= rating <= 5:
        st.error(f"Ratings go from 1 (implausible) to 5 (very plausible); {rating:g} is outside that range. Nothing was saved." if rating is not None else "Please enter a rating from 1 to 5.")
    elif not str(rater).strip():
        st.error("Please tell us your name (any short name), so your ratings can be told apart from others'.")
    else:
        try:
            store.add_rating(str(rater).strip(), concept, cls, int(rating))
        except InputError as e:
            st.error(f"That rating could not be saved: {e}")
        else:
            st.session_state[FLASH] = f"Saved: {rater.strip()} rates “{texts[concept]} ⇒ {cls}” as {int(rating)}. Re-solve below to see the effect."
            st.rerun()

# --- re-solve ---------------------------------------------------------------------------------------
st.subheader("Re-fit the prior and re-solve z*")
st.caption("Uses the concept scores stored in this run, so it takes about a second; the run itself is not changed.")
go_resolve = st.button("Re-solve z* with the current ratings", type="primary", icon=":material/refresh:")
if go_resolve:
    with session.guard("Re-solve"):
        started = time.perf_counter()
        result = engine.resolve_z_star(run, ratings, pairwise, warm=st.session_state.get(WARM))
        st.session_state[WARM] = result.pop("search", None)  # the next re-solve starts from this solution
        result["seconds"] = time.perf_counter() - started
        result["n_ratings"] = len(ratings)
        st.session_state[RESULT] = result

result = st.session_state.get(RESULT)
if result:
    with session.guard("What changed"):
        old, new = run.clauses("z_star"), result["z_star"]
        st.markdown(f"**Re-solved in {result['seconds']:.2f} s** (prior fit + search: {result['engine_seconds']:.2f} s) with {result['n_ratings']} ratings.")
        col_before, col_after = st.columns(2)
        col_before.markdown(f"**Before** (as stored in the run): {summary_sentence(old, 'IG', classes)}")
        col_after.markdown(f"**After** (your ratings): {summary_sentence(new, 'IG', classes)}")
        col_before.caption("Field guide: " + (run.hypothesis_text("z_star") or ""))
        col_after.caption("Field guide: " + result["text"])
        before = {(c["concept"], c["class"]): float(c["weight"]) for c in old}
        after = {(c["concept"], c["class"]): float(c["weight"]) for c in new}
        rows = []
        for key in sorted(set(before) | set(after), key=lambda k: (k[1], k[0])):
            w0, w1 = before.get(key, 0.0), after.get(key, 0.0)
            change = "added" if key not in before else "removed" if key not in after else "stronger" if w1 > w0 + 1e-6 else "weaker" if w1 < w0 - 1e-6 else "same"
            rows.append({"clause": f"{texts[key[0]]} ⇒ {key[1]}", "weight before": w0, "weight after": w1, "change": change})
        diff = pd.DataFrame(rows)
        st.dataframe(diff, hide_index=True, width="stretch", column_config={"weight before": st.column_config.NumberColumn(format="%.2f"), "weight after": st.column_config.NumberColumn(format="%.2f")})
        widgets.chart(charts.clause_weights(new, "The re-solved z*"), "prior_new_zstar", "Green = animal features, red = background; compare with the Compare page's z*.", run_id=run.run_id)
        run.need("hypotheses.z_star_json", "stored z* with its biases")
        proba_old = engine.predict_proba(run, run.hypotheses.z_star_json)
        proba_new = np.asarray(result["proba_test_eval"])
        changed = int((proba_old.argmax(1) != proba_new.argmax(1)).sum())
        y = run.split("test_eval")["label"].to_numpy()
        acc0, acc1 = (proba_old.argmax(1) == y).mean(), (proba_new.argmax(1) == y).mean()
        m1, m2, m3 = st.columns(3)
        m1.metric("D′ predictions that changed", f"{changed} of {len(proba_new)}")
        m2.metric("z* accuracy on D′ before", f"{100 * acc0:.1f}%")
        m3.metric("after", f"{100 * acc1:.1f}%", f"{100 * (acc1 - acc0):+.1f} pts")

# --- reset ------------------------------------------------------------------------------------------
st.subheader("Start over")
with st.popover("Reset to the shipped judgments", icon=":material/restart_alt:"):
    st.markdown(f"This sets aside the {int((ratings['source'] == 'user').sum())} ratings added here (as a backup in the judgments database) and reloads the shipped ones.")
    if st.button("Yes, reset", key="w_reset", type="primary"):
        backup = store.reset()
        st.session_state.pop(RESULT, None)
        st.session_state.pop(WARM, None)
        st.session_state[FLASH] = f"The judgments are back to the shipped set (the previous ones are kept as backup #{backup})."
        st.rerun()
