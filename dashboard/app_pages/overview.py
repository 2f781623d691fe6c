"""Overview: what IG learned vs what the baseline learned, what the human prior added on this run (and on
the benchmark's ρ sweep), whether the baseline uses the background, and how each method does on D′."""

from __future__ import annotations

import streamlit as st

from dashboard import session
from dashboard.benchmark import Benchmark, benchmark
from dashboard.components import figures, tables, text, widgets
from dashboard.components.style import method_color, method_help, method_short
from dashboard.page import open_page
from dashboard.run_view import NotComputed

#: Methods whose worst-group accuracy heads the page.
HEADLINE = ("erm", "ig_student", "ig_direct", "no_prior")
#: Methods drawn on the benchmark's ρ sweep: the baseline, the ablation without the prior, IG.
SWEEP = ("erm", "no_prior", "ig_student")

page = open_page(
    "What should it have learned, and what did it learn?",
    lambda run: f"Run `{run.run_id}` · {run.world.name} · classes: {', '.join(run.classes)}. "
    + ("D is the labelled training set (each class mostly on its *usual* background); "
       "D′ is where we need the model to work (backgrounds reversed or mixed)." if run.has_backgrounds else
       "D is the labelled training set; D′ is where we need the model to work (the data names no backgrounds: its groups "
       "are its classes)."),
)
run = page.run


def benchmark_caption(bench: Benchmark) -> str:
    """Where the sweep comes from: the benchmark's file, command and machine (not this run)."""
    df = bench.results
    rhos = ", ".join(f"{r:g}" for r in sorted(df["rho"].unique()))
    seeds = df["seed"].nunique()
    command = f"`{bench.command}`" if bench.command else "`python -m bench.bench_methods`"
    machine = f" on {bench.machine}" if bench.machine else ""
    machine += f" ({bench.date})" if bench.date else ""
    return (
        f"The benchmark's numbers, not this run's: `docs/{bench.source}`, measured on the {bench.world} world by {command}{machine}; "
        f"ρ ∈ {{{rhos}}} × {seeds} seeds, each one run of the default config (plus the command's settings) without the microscope. "
        "Points are the mean over seeds of worst-group accuracy on D′, whiskers ± one standard deviation."
    )


key = {f.key: f for f in figures.key_figures(run, keys=("accuracy", "groups", "effects"))}
judgments = run.judgments_note()
if run.info.notes:
    with st.expander(f"Notes from the engine about this run ({len(run.info.notes)})", expanded=True):
        st.markdown("\n".join(f"- {n.note} *({n.stage})*" for n in run.info.notes))

left, right = st.columns(2)
with left, st.container(border=True):
    st.markdown(f"#### <span style='color:{method_color('ig_student')}'>■</span> What IG learned (z*)", unsafe_allow_html=True)
    with session.guard("What IG learned"):
        st.markdown(f"**{run.summary(run.clauses('z_star'), 'IG')}**")
        st.caption("The most probable hypothesis given the learned human prior and the labelled data (z*). " + (run.hypothesis_text("z_star") or ""))
        if run.renamed:
            st.caption(f"People named {len(run.renamed)} discovered concept(s) since this run was solved; the Hypotheses page shows "
                       "z* re-solved in those words.")
with right, st.container(border=True):
    st.markdown(f"#### <span style='color:{method_color('erm')}'>■</span> What the baseline learned", unsafe_allow_html=True)
    with session.guard("What the baseline learned"):
        st.markdown(f"**{run.summary(run.clauses('z_baseline'), 'The baseline')}**")
        fidelity = text.fidelity_sentence(run.surrogate("z_baseline"), "It", "the baseline's")
        st.caption("A hypothesis in the same language fitted to the baseline's own predictions (z_baseline)." + (f" {fidelity}" if fidelity else ""))

with session.guard("Headline numbers"):
    run.need("methods.erm", "baseline accuracy")
    methods = run.methods
    shown = [m for m in HEADLINE if m in methods]
    st.markdown("**Worst-group accuracy on D′**: how each method does on the group it finds hardest.")
    erm_wga = methods["erm"].worst_group_acc
    for col, m in zip(st.columns(len(shown)), shown, strict=True):
        wga = methods[m].worst_group_acc
        delta = None if m == "erm" else f"{100 * (wga - erm_wga):+.1f} pts vs baseline"
        col.metric(method_short(m), text.percent(wga), delta, help=method_help(m))

st.subheader("What did the human prior add?")
left, right = st.columns([0.45, 0.55])
with left, session.guard("The prior's contribution on this run"):
    run.need("methods.no_prior", "likelihood-only ablation (no_prior)")
    run.need("methods.ig_student", "IG student")
    st.markdown(f"**{text.prior_sentence(run.methods)}**")
    direct = run.methods.get("ig_direct")
    same = (f" IG direct, which reads z* with L_M the same way the ablation reads its own hypothesis, gets its worst group right "
            f"{100 * direct.worst_group_acc:.0f}% of the time.") if direct else ""
    st.caption(
        "On this run: the IG student (trained on D′ images labelled by z*) against `no_prior`, the same concept model and search "
        f"with a flat prior instead of the learned one (its hypothesis read by L_M).{same}"
    )
    if judgments:
        st.caption(judgments)
with right, session.guard("The benchmark's ρ sweep"):
    bench = benchmark()
    if bench.world != run.world.name:  # another world's benchmark says nothing about this one
        raise NotComputed(f"The benchmark's ρ sweep (`docs/{bench.source}`) was measured on another world than this run's "
                          f"({run.world.name}), so it is not shown beside it; the numbers on this page are this run's.")
    rho = (run.info.config.get("world") or {}).get("rho")
    widgets.chart(figures.sweep_figure(bench, SWEEP, rho if isinstance(rho, (int, float)) else None), "overview_rho_sweep",
                  benchmark_caption(bench), run_id=run.run_id)

st.subheader("Does the baseline use the background?")
with session.guard("Counterfactual effects"):
    effects = run.evidence("effects", "counterfactual effects")
    sentence = text.effects_sentence(effects, "background")
    if sentence:
        st.markdown(f"**{sentence}**")
    widgets.key_figure(key["effects"], "overview", run.run_id)
    st.caption("The Microscope and Compare pages show where that evidence sits and the swapped images themselves.")

st.subheader("Accuracy on D′")
with session.guard("Accuracy per method"):
    widgets.key_figure(key["accuracy"], "overview", run.run_id)
    pct = st.column_config.NumberColumn(format="%.1f%%")
    st.dataframe(
        tables.accuracy_table(run.methods),
        hide_index=True,
        width="stretch",
        column_config={
            "average accuracy": pct,
            "worst-group accuracy": pct,
            "accuracy at training proportions": st.column_config.NumberColumn(format="%.1f%%", help="accuracy re-weighted to D's group mix"),
        },
    )

with session.guard("Accuracy per group"):
    widgets.key_figure(key["groups"], "overview", run.run_id)
    counts = run.world.train_group_counts
    st.caption("Training images per group in D: " + ", ".join(f"{g} {n}" for g, n in counts.items()) + ".")
    if legend := text.place_legend(run.place_categories()):
        st.caption(legend)

st.subheader("The world at a glance")
with session.guard("Contact sheet"):
    widgets.show_png(run.contact_sheet(), caption=f"Example images of every split and group of this run's world ({run.world.name}).", width="stretch")

with st.expander("Run details"):
    info = run.info
    widgets.chart(figures.run_figure(run, "stage_times"), "overview_stages", "Where the pipeline spent its time; stages whose bars overlap ran at once.", run_id=run.run_id)
    st.json(info.model_dump(include={"run_id", "created", "status", "device", "total_seconds", "config"}), expanded=False)
