"""Overview: what IG learned vs what the baseline learned, and how each method does on D′."""

from __future__ import annotations

import streamlit as st

from dashboard import data, session
from dashboard.components import charts, text, widgets
from dashboard.components.style import METHOD_HELP, method_color, method_short

ctx = session.context()
session.publish(ctx, [])
if ctx.ref is None:
    widgets.no_run(ctx.root)
ref = ctx.ref
metrics = ctx.metrics
world = metrics.get("world", {})
classes = world.get("classes", [])
methods = metrics.get("methods", {})
hyps = metrics.get("hypotheses", {})

widgets.page_header(
    "What should it have learned, and what did it learn?",
    f"Run `{ref.run_id}` · {world.get('name', 'world')} · classes: {', '.join(classes) or '?'}. "
    "D is the labelled training set (animals mostly on their *usual* background); "
    "D′ is where we need the model to work (backgrounds reversed or mixed).",
)
session.show_notes(ctx.notes)

left, right = st.columns(2)
with left, st.container(border=True):
    st.markdown(f"#### <span style='color:{method_color('ig_student')}'>■</span> What IG learned (z*)", unsafe_allow_html=True)
    with session.guard("What IG learned"):
        if not hyps.get("z_star"):
            raise session.NotComputed("The hypothesis search (z*) has not run yet for this run.")
        st.markdown(f"**{text.summary_sentence(hyps['z_star'], 'IG', classes)}**")
        st.caption("The most probable hypothesis given the learned human prior and the labelled data (z*). " + (hyps.get("z_star_text") or ""))
with right, st.container(border=True):
    st.markdown(f"#### <span style='color:{method_color('erm')}'>■</span> What the baseline learned", unsafe_allow_html=True)
    with session.guard("What the baseline learned"):
        if not hyps.get("z_baseline"):
            raise session.NotComputed("The baseline's readable surrogate (z_baseline) has not been fitted for this run.")
        st.markdown(f"**{text.summary_sentence(hyps['z_baseline'], 'The baseline', classes)}**")
        fidelity = (metrics.get("surrogates") or {}).get("z_baseline", {}).get("fidelity")
        agree = f" It reproduces {100 * float(fidelity):.0f}% of the baseline's answers on D′." if fidelity is not None else ""
        st.caption(f"A hypothesis in the same language fitted to the baseline's own predictions (z_baseline).{agree}")

with session.guard("Headline numbers"):
    if not methods:
        raise session.NotComputed("No method has been evaluated yet.")
    shown = [m for m in ("erm", "ig_student", "ig_direct", "no_prior") if m in methods]
    st.markdown("**Worst-group accuracy on D′**: how each method does on the group it finds hardest.")
    cols = st.columns(max(len(shown), 1))
    erm_wga = methods.get("erm", {}).get("worst_group_acc")
    for col, m in zip(cols, shown, strict=False):
        wga = methods[m].get("worst_group_acc")
        delta = None if m == "erm" or erm_wga is None or wga is None else f"{100 * (wga - erm_wga):+.1f} pts vs baseline"
        col.metric(method_short(m), f"{100 * wga:.1f}%" if wga is not None else "–", delta, help=METHOD_HELP.get(m))

st.subheader("Accuracy on D′")
with session.guard("Accuracy per method"):
    if not methods:
        raise session.NotComputed("No method has been evaluated yet.")
    widgets.chart(
        charts.accuracy_bars(methods),
        "overview_accuracy",
        "Each method's accuracy on the test distribution D′: the worst group shows who relies on the background.",
        run_id=ref.run_id,
    )
    table = charts.accuracy_table(methods)
    pct = st.column_config.NumberColumn(format="%.1f%%")
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "average accuracy": pct,
            "worst-group accuracy": pct,
            "accuracy at training proportions": st.column_config.NumberColumn(format="%.1f%%", help="accuracy re-weighted to D's group mix"),
        },
    )

with session.guard("Accuracy per group"):
    if not methods:
        raise session.NotComputed("No method has been evaluated yet.")
    widgets.chart(
        charts.group_heatmap(methods, world.get("groups")),
        "overview_groups",
        "Rows are methods, columns are animal/background groups; red cells are where a method fails.",
        run_id=ref.run_id,
    )
    counts = world.get("train_group_counts")
    if counts:
        st.caption("Training images per group in D: " + ", ".join(f"{g} {n}" for g, n in counts.items()) + ".")

st.subheader("The world at a glance")
with session.guard("Contact sheet"):
    png = data.file_bytes(ref, "contact_sheet.png")
    if png is None:
        raise session.NotComputed("This run has no contact sheet (`contact_sheet.png`).")
    st.image(png, caption="Example images of every split, drawn by the world generator.", width="stretch")

with st.expander("Run details"):
    manifest = ref.manifest
    stages = manifest.get("stages", {})
    if stages:
        widgets.chart(charts.stage_times(stages), "overview_stages", "Where the pipeline spent its time.", run_id=ref.run_id)
    st.json({k: manifest.get(k) for k in ("run_id", "created", "status", "device", "total_seconds", "config")}, expanded=False)
