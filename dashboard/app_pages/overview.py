"""Overview: what IG learned vs what the baseline learned, and how each method does on D′."""

from __future__ import annotations

import streamlit as st

from dashboard import session
from dashboard.components import charts, widgets
from dashboard.components.figures import key_figures
from dashboard.components.style import METHOD_HELP, method_color, method_short
from dashboard.page import open_page
from igcore.hypothesis import summary_sentence

#: Methods whose worst-group accuracy heads the page.
HEADLINE = ("erm", "ig_student", "ig_direct", "no_prior")

page = open_page(
    "What should it have learned, and what did it learn?",
    lambda run: f"Run `{run.run_id}` · {run.world.name} · classes: {', '.join(run.classes)}. "
    "D is the labelled training set (animals mostly on their *usual* background); "
    "D′ is where we need the model to work (backgrounds reversed or mixed).",
)
run = page.run
figures = {f.key: f for f in key_figures(run, keys=("accuracy", "groups"))}

left, right = st.columns(2)
with left, st.container(border=True):
    st.markdown(f"#### <span style='color:{method_color('ig_student')}'>■</span> What IG learned (z*)", unsafe_allow_html=True)
    with session.guard("What IG learned"):
        st.markdown(f"**{summary_sentence(run.clauses('z_star'), 'IG', run.classes)}**")
        st.caption("The most probable hypothesis given the learned human prior and the labelled data (z*). " + (run.hypothesis_text("z_star") or ""))
with right, st.container(border=True):
    st.markdown(f"#### <span style='color:{method_color('erm')}'>■</span> What the baseline learned", unsafe_allow_html=True)
    with session.guard("What the baseline learned"):
        st.markdown(f"**{summary_sentence(run.clauses('z_baseline'), 'The baseline', run.classes)}**")
        fidelity = (run.surrogates.get("z_baseline") or {}).get("fidelity")
        agree = f" It reproduces {100 * float(fidelity):.0f}% of the baseline's answers on D′." if fidelity is not None else ""
        st.caption(f"A hypothesis in the same language fitted to the baseline's own predictions (z_baseline).{agree}")

with session.guard("Headline numbers"):
    run.need("methods.erm", "baseline accuracy")
    methods = run.methods
    shown = [m for m in HEADLINE if m in methods]
    st.markdown("**Worst-group accuracy on D′**: how each method does on the group it finds hardest.")
    erm_wga = methods["erm"].worst_group_acc
    for col, m in zip(st.columns(len(shown)), shown, strict=True):
        wga = methods[m].worst_group_acc
        delta = None if m == "erm" else f"{100 * (wga - erm_wga):+.1f} pts vs baseline"
        col.metric(method_short(m), f"{100 * wga:.1f}%", delta, help=METHOD_HELP.get(m))

st.subheader("Accuracy on D′")
with session.guard("Accuracy per method"):
    widgets.key_figure(figures["accuracy"], "overview", run.run_id)
    pct = st.column_config.NumberColumn(format="%.1f%%")
    st.dataframe(
        charts.accuracy_table(run.methods),
        hide_index=True,
        width="stretch",
        column_config={
            "average accuracy": pct,
            "worst-group accuracy": pct,
            "accuracy at training proportions": st.column_config.NumberColumn(format="%.1f%%", help="accuracy re-weighted to D's group mix"),
        },
    )

with session.guard("Accuracy per group"):
    widgets.key_figure(figures["groups"], "overview", run.run_id)
    counts = run.world.train_group_counts
    st.caption("Training images per group in D: " + ", ".join(f"{g} {n}" for g, n in counts.items()) + ".")

st.subheader("The world at a glance")
with session.guard("Contact sheet"):
    st.image(run.contact_sheet(), caption="Example images of every split, drawn by the world generator.", width="stretch")

with st.expander("Run details"):
    info = run.info
    widgets.chart(charts.stage_times(info.stages), "overview_stages", "Where the pipeline spent its time.", run_id=run.run_id)
    st.json(info.model_dump(include={"run_id", "created", "status", "device", "total_seconds", "config"}), expanded=False)
