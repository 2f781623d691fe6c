"""A run's exports: the self-contained HTML report and the zip of key-figure PNGs (Share page, tests, bench).

Both are built from :func:`dashboard.components.figures.key_figures`, the same figures the Overview
page shows, and the sentences come from the engine (:func:`igcore.hypothesis.summary_sentence`, through
:meth:`dashboard.run_view.RunView.summary`).
"""

from __future__ import annotations

import contextlib
import io
import zipfile

import pandas as pd
import streamlit as st

from dashboard import engine
from dashboard.components import charts, images, report, tables, text, widgets
from dashboard.components.figures import key_figures
from dashboard.components.style import method_label
from dashboard.components.widgets import figure_png
from dashboard.run_view import NotComputed, RunView
from igcore.errors import InputError
from igcore.prior.sources import ADDED
from igcore.schema import pred_column

#: How many images on which the baseline and the IG student disagree the report shows.
REPORT_DISAGREEMENTS = 6
#: How many of the discovered components each model relies on most the report shows with their exemplars.
REPORT_COMPONENTS = 3


def report_html(run: RunView, link: str | None = None) -> str:
    """The self-contained HTML report of ``run`` (``link``: the dashboard view it was exported from), with
    where its judgments came from and the ratings people added for its world after it was made. Its sentences are
    the pages' own (the same clause records, strengths and clause-deletion marks)."""
    inp = report.ReportInput(run_id=run.run_id, link=link, figures=key_figures(run))
    for key, subject in (("z_star", "IG"), ("z_baseline", "The baseline")):
        try:
            clauses = run.clauses(key)
        except NotComputed as e:
            setattr(inp, f"{key}_missing", str(e))
            continue
        setattr(inp, f"{key}_sentence", run.summary(clauses, subject))
        setattr(inp, f"{key}_text", run.hypothesis_text(key))
        if key == "z_star":
            inp.z_star_clauses = clauses
    inp.findings = findings(run)
    if note := run.judgments_note():
        inp.notes.append(note)
    if run.methods:
        inp.table_html = tables.accuracy_table(run.methods).to_html(index=False, float_format=lambda v: f"{v:.1f}%", na_rep="–", escape=True)
    try:
        inp.contact_sheet = run.contact_sheet()
        inp.images += disagreements(run)
    except NotComputed as e:
        inp.notes.append(str(e))
    inp.discovered_missing = run.missing("discover", "discovered concepts")
    if inp.discovered_missing is None:
        inp.discovered, inp.namings = discovered_sections(run), namings(run)
        try:
            inp.named_z_star = named_z_star(run)
        except (InputError, NotComputed) as e:
            inp.notes.append(f"z* could not be re-solved in the names people gave: {e}")
    if run.results.prior is not None:  # what people added for this world after the run (never another world's)
        with contextlib.suppress(InputError):  # an older run whose judgment files are gone: the note above says so
            ratings = engine.page_judgments(run).ratings
            added = ratings[ratings["source"] == ADDED]
            inp.user_ratings = added.assign(concept=added["concept"].map(run.concept_texts)).to_dict("records")
    return report.build_report(inp)


def discovered_sections(run: RunView) -> list[report.DiscoveredSection]:
    """Each model's discovered concepts as the Discover page shows them: every component with its name, best annotated
    match and effect per model; the components named alike removed together (by the run's names, and by people's where
    the dashboard's database keeps the measurement); the exemplars of the components the model relies on most."""
    view = engine.discovery_view(run)
    names = run.name_map
    out = []
    for source in view.sources:
        table = view.components(source, names)
        models = tables.effect_models(table)
        if models:  # the components the model relies on most first
            table = table.sort_values(f"rank_{models[0]}", kind="stable")
        section = report.DiscoveredSection(
            source=source,
            lead=f"{len(table)} components of {source}'s layer {view.info(source).get('layer', '?')}, found by factorising its "
                 "activations (not annotated by anyone). Effect: the mean change in the log-odds of the model's own answer on "
                 "D′_eval when the component is removed from that model's layer (negative = the model relies on it), with "
                 "bootstrap 95% intervals; rank 1 = the component it relies on most"
                 + (f"; listed from the one {models[0]} relies on most." if models else "."),
            table_html=_html(tables.discovered_table(table, run.concept_texts)),
            most_relied=text.most_relied_sentence(table, models, bold=False),
        )
        if not (together := view.alike(source)).empty:
            section.together.append(("Named alike by the run's names (discover.names), removed together:",
                                     _html(tables.removed_together_table(together, models))))
        if unmeasured := view.alike_unmeasured(source, names):
            people = engine.named_together(run, unmeasured)
            if not people.table.empty:
                section.together.append(("Named alike by people on the dashboard, removed together:",
                                         _html(tables.removed_together_table(people.table, models))))
            if people.unmeasured:
                section.notes.append(f"Named alike on the dashboard but not measured together yet: "
                                     f"{', '.join(f'“{t}”' for t in people.unmeasured)} (the Discover page measures them).")
        if models:
            for _, row in table.head(REPORT_COMPONENTS).iterrows():
                label = f"{row['id']} · {row['text']} · rank {row['rank_' + models[0]]} for {models[0]}"
                pictures = [(png, f"#{i}: {what}") for i, overlay_png, crop_png in widgets.exemplar_pngs(run, row["id"])
                            for png, what in ((overlay_png, "its map"), (crop_png, "its strongest place"))]
                section.exemplars.append((label, pictures))
        out.append(section)
    return out


def namings(run: RunView) -> list[dict]:
    """The names people gave the run's discovered concepts on the dashboard that are in effect: component, name,
    who gave it and when (the latest naming of each component that is not taken back)."""
    history = engine.name_store(run).history()
    latest = history.groupby("component", sort=False).tail(1)
    return [{"component": r["component"], "text": r["text"], "rater": r["rater"], "when": text.utc_time(r["created"])}
            for _, r in latest.iterrows() if r["text"]]


def named_z_star(run: RunView) -> str | None:
    """z* re-solved in the words people gave the discovered concepts after the run (None when no name changed)."""
    return engine.resolve_named(run)["text"] if run.renamed else None


def _html(table: pd.DataFrame) -> str:
    return table.to_html(index=False, na_rep="–", escape=True)


def findings(run: RunView) -> list[str]:
    """The run's computed sentences, as the pages state them: what the prior added, what swapping the
    background or the object does to each model, how faithful z_baseline is."""
    out = [text.prior_sentence(run.methods)]
    try:
        effects = run.evidence("effects", "counterfactual effects")
        out += [text.effects_sentence(effects, kind) for kind in charts.SWAP_NAMES]
        out.append(text.swap_parts_sentence(run.evidence("swap_attribution", "attribution of the double swap", part="effects")))
    except NotComputed:
        pass  # the effects key figure of the report says why
    out.append(text.fidelity_sentence(run.surrogate("z_baseline"), "z_baseline", "the baseline's"))
    return [s for s in out if s]


def disagreements(run: RunView) -> list[tuple[bytes, str]]:
    """D′ images on which the baseline and the IG student disagree (PNG, caption), the first few."""
    for method in ("erm", "ig_student"):
        run.need(f"methods.{method}", f"answers of {method_label(method)}")
    preds, test, masks, classes, groups = run.predictions(), run.test_eval(), run.masks(), run.classes, run.groups
    erm, student = pred_column("erm"), pred_column("ig_student")
    out = []
    for i in preds.loc[preds[erm] != preds[student], "index"].to_numpy()[:REPORT_DISAGREEMENTS]:
        cap = f"#{i} {groups[int(preds.at[i, 'group'])]}: baseline says {classes[int(preds.at[i, erm])]}, IG student says {classes[int(preds.at[i, student])]}"
        out.append((images.png_bytes(images.overlay(test["images"][i], None, None if masks is None else masks[i], factor=3)), cap))
    return out


@st.cache_data(show_spinner="Drawing the figures…", max_entries=8)
def figures_zip(run: RunView) -> bytes:
    """The run's key figures as PNGs (``<key>.png``), zipped; drawn once per run (kaleido takes seconds)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for fig in key_figures(run):
            if fig.figure is not None:
                z.writestr(f"{fig.key}.png", figure_png(fig.figure))
    return buf.getvalue()
