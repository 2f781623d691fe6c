"""Prior: the judgments the run's Prior_M learned from and where they came from, plus what people added for its
world; add ratings, rate the clauses nobody rated (most informative first, :mod:`igcore.prior.elicit`), re-fit,
re-solve z* live, reset to the run's own judgments and restore."""

from __future__ import annotations

import time

import streamlit as st

from dashboard import engine, session
from dashboard.components import charts, widgets
from dashboard.components.judgments import (
    accuracy_delta,
    change_summary,
    changes_table,
    count,
    plausibility_figure,
    ratings_table,
    reset_sentence,
    sources_table,
    stop_status,
)
from dashboard.components.style import KIND_LEGEND
from dashboard.page import open_page
from igcore.errors import InputError
from igcore.hypothesis import implausible_sentence
from igcore.prior.elicit import DEFAULT_BATCH, STOP_WINDOW, stopping_signal

wanted_rater = widgets.wanted_rater()
page = open_page(
    "Prior: what the prior learned from, and how it shapes z*",
    "IG's generalisation comes from a **human prior**: Prior_M, a model of ratings of how plausible it is that each concept is "
    "evidence for each class, scores every hypothesis. Below: the judgments this run's Prior_M learned from, and who wrote them. "
    "Change the ratings and watch z* change.",
)
run = page.run
classes, texts, concept_ids = run.classes, run.concept_texts, run.concept_ids
VERSION = f"{run.run_id}_{hash(run.names)}"  # a re-solve belongs to the run and to the names its concepts had
RESULT = f"_prior_resolve_{VERSION}"
FLASH = "_prior_flash"
WARM = f"_prior_search_{VERSION}"
SKIPPED = f"_prior_skipped_{run.run_id}"
SKIP = "skip"


def _forget_results() -> None:
    """Results computed on judgments that are no longer there."""
    for key in (RESULT, WARM, SKIPPED):
        st.session_state.pop(key, None)


flash = st.session_state.pop(FLASH, None)
if flash:
    st.success(flash)

store = engine.judgments_store(run)
try:
    judgments = engine.page_judgments(run)
except InputError as e:  # an older run whose judgment files are gone
    st.info(f"{e} Make the run again to rate and re-solve it here.", icon="🧩")
    st.stop()
ratings, pairwise = judgments.ratings, judgments.pairwise
n_added = judgments.n_added()

# --- the judgments ----------------------------------------------------------------------------------
st.subheader("The judgments")
c1, c2, c3 = st.columns(3)
c1.metric("Ratings", len(ratings))
c2.metric("Raters", ratings["rater"].nunique(), help="Distinct rater names in the ratings; who wrote them is said below.")
c3.metric("Added on the Prior page", n_added, help="Ratings people added on this page for this world that the run's own judgments do not hold, whenever they were added (a run reads the page's ratings only with prior.database); every run of this world shares them.")
st.markdown(judgments.provenance.describe())
with st.expander("Where the judgments came from", expanded=False):
    st.dataframe(sources_table(judgments.provenance), hide_index=True, width="stretch")
    for note in judgments.notes:
        st.caption(note)
with st.expander(f"All {count(len(ratings), 'rating')}", expanded=False):
    st.dataframe(
        ratings_table(ratings, texts),
        hide_index=True,
        width="stretch",
        column_config={"rating": st.column_config.NumberColumn(help="1 = implausible … 5 = very plausible")},
    )
    n_pairwise = 0 if pairwise is None else len(pairwise)
    st.caption(f"Also {count(n_pairwise, 'pairwise preference')} between whole hypotheses (they set the cost of long hypotheses).")

with session.guard("Plausibility per clause"):
    _, summary = engine.prior_table(run, judgments)
    widgets.chart(plausibility_figure(run, judgments), "prior_plausibility",
                  "Fitted on the ratings above; unrated clauses get a value from a text model of the concept (so the prior generalises).",
                  run_id=run.run_id)
    st.caption(f"Text encoder: {str(summary.get('encoder')).split(' (')[0]} · {count(summary['n_ratings'], 'rating')} under "
               f"{count(summary['n_raters'], 'rater name')} · {count(summary['unrated_clauses'], 'clause')} nobody rated.")

# --- add a rating -----------------------------------------------------------------------------------
st.subheader("Add your rating")
with st.form("add_rating", clear_on_submit=False, border=True):
    a, b, c, d = st.columns([1.1, 1.6, 0.8, 0.8])
    rater = widgets.rater_name("w_rater", wanted_rater, "Your ratings are stored under this name, with the time.", where=a)
    concept = b.selectbox("Concept", concept_ids, key="w_concept", format_func=lambda k: texts[k])
    cls = c.selectbox("is evidence for", classes, key="w_class")
    rating = d.number_input("Rating (1–5)", value=3, step=1, key="w_rating", help="1 = implausible … 5 = very plausible")
    submitted = st.form_submit_button("Add rating", type="primary")
if submitted:
    if rating is None or not float(rating).is_integer() or not 1 <= rating <= 5:
        st.error(f"Ratings go from 1 (implausible) to 5 (very plausible); {rating:g} is outside that range. Nothing was saved." if rating is not None else "Please enter a rating from 1 to 5.")
    elif rater is None:  # a name that is there but not valid already says why, under the field
        if not str(st.session_state.get("w_rater") or "").strip():
            st.error("Please tell us your name (any short name), so your ratings can be told apart from others'.")
    else:
        try:
            store.add_rating(rater, concept, cls, int(rating))
        except InputError as e:
            st.error(f"That rating could not be saved: {e}")
        else:
            st.session_state[FLASH] = f"Saved: {rater} rates “{texts[concept]} ⇒ {cls}” as {int(rating)}. Re-solve below to see the effect."
            st.rerun()


def unrated_clauses() -> None:
    """The unrated clauses, most informative first; one form rates a batch, then z* is re-solved and logged."""
    state = engine.elicitation(run, judgments)
    order = state["order"]
    n_total = len(state["language"]) * len(classes)
    n_rated = n_total - len(order)
    st.progress(n_rated / n_total if n_total else 1.0, text=f"{n_rated} of {n_total} clauses rated")
    if unnamed := len(concept_ids) - len(state["language"]):
        st.caption(f"{unnamed} discovered concept(s) are unnamed, so nobody is asked about them: name them on the Discover page.")
    support = frozenset(tuple(pair) for pair in state["support"])
    history = engine.z_star_history(run, judgments, state["support"])
    kind, sentence = stop_status(stopping_signal(history, window=STOP_WINDOW), len(history))
    getattr(st, kind)(sentence)
    if order.empty:
        st.success("Every clause has at least one rating.")
        return
    st.markdown(
        "Nobody has rated these clauses, so Prior_M guesses their plausibility from the words alone, and that guess is weak. "
        "They are listed **most informative first**: by the probability that your answer changes which clauses z* uses, judged "
        "from the solved z* and its alternatives (clauses in z* or close to it, and those the data pull on hardest, whose guessed "
        "plausibility is least certain). Rate a few; z* is re-solved after each batch."
    )
    skipped = st.session_state.setdefault(SKIPPED, set())
    todo = order[[(k, c) not in skipped for k, c in zip(order["concept"], order["class"], strict=True)]]
    if todo.empty:
        todo = order
        skipped.clear()
    batch = todo.head(DEFAULT_BATCH)
    choices: dict[tuple[str, str], object] = {}
    with st.form("elicit", border=True):
        name = widgets.rater_name("w_elicit_rater", wanted_rater, "Your ratings are stored under this name, with the time.", url=False)
        for rec in batch.to_dict("records"):
            choices[(rec["concept"], rec["class"])] = st.radio(
                f"How plausible is it that **{texts[rec['concept']]}** is evidence for **{rec['class']}**?",
                [SKIP, 1, 2, 3, 4, 5],
                horizontal=True,
                key=f"w_elicit|{rec['concept']}|{rec['class']}",
                format_func=lambda v: "skip" if v == SKIP else f"{v}" + {1: " (implausible)", 5: " (very plausible)"}.get(v, ""),
                help=f"Prior_M's guess: {rec['predicted_rating']:.1f} ± {rec['rating_sd']:.1f}; "
                f"chance that an answer changes z*: {100 * rec['flip_probability']:.0f}%.",
            )
        rate_now = st.form_submit_button(f"Save these ratings and update z* ({len(batch)} shown)", type="primary")
    if rate_now:
        answers = [(k, c, v) for (k, c), v in choices.items()]
        given = [(k, c, int(v)) for k, c, v in answers if v != SKIP]
        if name is None:
            st.error("Please tell us your name (any short name), so your ratings can be told apart from others'. Nothing was saved.")
        elif not given:
            skipped.update((k, c) for k, c, _ in answers)
            st.session_state[FLASH] = f"Skipped {count(len(answers), 'clause')}; here are the next ones."
            st.rerun()
        else:
            try:
                store.add_ratings(name, given)
            except InputError as e:
                st.error(f"Those ratings could not be saved: {e}")
            else:
                skipped.update((k, c) for k, c, v in answers if v == SKIP)
                now = engine.page_judgments(run)
                after = engine.elicitation(run, now)
                engine.z_star_history(run, now, after["support"])
                changed = set(map(tuple, after["support"])) != support
                st.session_state[FLASH] = (
                    f"Saved {count(len(given), 'rating')} by {name}. "
                    + ("z* changed: see “What changed” below." if changed else "z* uses the same clauses as before.")
                )
                st.session_state[RESULT] = {k: v for k, v in after.items() if k not in ("order", "support")} | {"seconds": after["engine_seconds"]}
                st.rerun()
    with st.expander(f"All {count(len(order), 'unrated clause')}, in the order they are asked", expanded=False):
        shown = order.assign(
            clause=[f"{texts[k]} ⇒ {c}" for k, c in zip(order["concept"], order["class"], strict=True)],
            changes_if=[", ".join(map(str, a)) or "none" for a in order["flip_answers"]],
        )
        st.dataframe(
            shown[["clause", "in_z_star", "predicted_rating", "rating_sd", "changes_if", "flip_probability", "why"]],
            hide_index=True,
            width="stretch",
            column_config={
                "in_z_star": st.column_config.CheckboxColumn("in z*"),
                "predicted_rating": st.column_config.NumberColumn("Prior_M's guess", format="%.1f"),
                "rating_sd": st.column_config.NumberColumn("± (sd)", format="%.1f"),
                "changes_if": st.column_config.TextColumn("ratings that change z*"),
                "flip_probability": st.column_config.ProgressColumn("P(answer changes z*)", min_value=0.0, max_value=1.0, format="%.2f"),
                "why": st.column_config.TextColumn("what would change"),
            },
        )
        st.caption("The score is defined in `docs/ELICIT.md` (fast, from the solved z*; no re-solve per clause).")


# --- clauses nobody has rated -----------------------------------------------------------------------
st.subheader("Clauses nobody has rated")
needed = ("concept scores", "concepts") if not run.has("tensors/concept_scores.safetensors") else (
    ("z*", "ig") if run.missing("hypotheses.z_star", "z*") else None)
if needed:  # the rest of the page needs only the world and the judgments
    finished = run.info.status == "complete"
    st.caption(
        f"Asking about these clauses in the order that matters most for z* needs the run's {needed[0]}, which its "
        f"`{needed[1]}` stage writes ({'it was not run' if finished else 'it has not finished yet'}). Rate clauses above meanwhile."
    )
else:
    with session.guard("Clauses nobody has rated"):
        unrated_clauses()

# --- re-solve ---------------------------------------------------------------------------------------
st.subheader("Re-fit the prior and re-solve z*")
st.caption("Uses the concept scores stored in this run, so it takes about a second; the run itself is not changed.")
go_resolve = st.button("Re-solve z* with the current ratings", type="primary", icon=":material/refresh:")
if go_resolve:
    with session.guard("Re-solve"):
        started = time.perf_counter()
        result = engine.resolve_z_star(run, judgments, warm=st.session_state.get(WARM))
        st.session_state[WARM] = result.pop("search", None)  # the next re-solve starts from this solution
        result["seconds"] = time.perf_counter() - started
        st.session_state[RESULT] = result

result = st.session_state.get(RESULT)
if result:
    with session.guard("What changed"):
        comparison = result["comparison"]
        st.markdown(f"**Re-solved in {result['seconds']:.2f} s** (prior fit + search: {result['engine_seconds']:.2f} s) with "
                    f"{count(result['n_ratings'], 'rating')}: {change_summary(comparison)}")
        col_before, col_after = st.columns(2)
        col_before.markdown(f"**Before** (as stored in the run): {run.summary(run.clauses('z_star'), 'IG')}")
        col_after.markdown(f"**After** (the current ratings): {run.summary(result['z_star'], 'IG')}")
        col_before.caption("Field guide: " + (run.hypothesis_text("z_star") or ""))
        col_after.caption("Field guide: " + result["text"])
        if warning := implausible_sentence(result.get("implausible", []), texts):
            st.warning(warning)
        st.dataframe(changes_table(comparison, texts), hide_index=True, width="stretch",
                     column_config={"weight before": st.column_config.NumberColumn(format="%.2f"), "weight after": st.column_config.NumberColumn(format="%.2f")})
        widgets.chart(charts.clause_weights(result["z_star"], "The re-solved z*"), "prior_new_zstar",
                      f"Colours: {KIND_LEGEND}; compare with the Compare page's z*.", run_id=run.run_id)
        m1, m2, m3 = st.columns(3)
        m1.metric("D′ answers that changed", f"{comparison.answers_changed} of {comparison.n_images}")
        m2.metric("z* accuracy on D′ before", f"{100 * comparison.accuracy_before:.1f}%")
        delta = accuracy_delta(comparison)
        m3.metric("after" if delta else "after (unchanged)", f"{100 * comparison.accuracy_after:.1f}%", delta)

# --- reset ------------------------------------------------------------------------------------------
st.subheader("Start over")
st.caption("A reset keeps a timestamped backup of every rating and preference it removes; any backup can be restored below.")
with st.popover("Reset to the run's own judgments", icon=":material/restart_alt:"):
    st.markdown(f"{reset_sentence(store.counts(), (n_added, judgments.n_added('pairwise')))} **It keeps a backup** (timestamped, in the "
                "judgments database) of whatever it removes, which you can restore afterwards.")
    if st.button("Yes, reset", key="w_reset", type="primary"):
        backup = store.reset()
        _forget_results()
        st.session_state[FLASH] = f"The judgments are back to the run's own (what was added is kept as backup #{backup})."
        st.rerun()

backups = store.backups()
if len(backups):
    st.markdown(f"**Backups** ({len(backups)}), newest first. Restoring one brings its ratings back; ratings added since stay.")
    for rec in backups.iloc[::-1].to_dict("records"):
        left, right = st.columns([0.8, 0.2], vertical_alignment="center")
        left.markdown(f"Backup #{rec['id']} · {rec['created'].replace('T', ' ').removesuffix('+00:00')} UTC · "
                      f"{count(rec['n_ratings'], 'rating')}, {count(rec['n_pairwise'], 'pairwise preference')}")
        if right.button("Restore", key=f"w_restore_{rec['id']}", icon=":material/history:"):
            try:
                store.restore(int(rec["id"]))
            except InputError as e:
                st.error(f"That backup could not be restored: {e}")
            else:
                _forget_results()
                st.session_state[FLASH] = f"Backup #{rec['id']} is restored."
                st.rerun()
