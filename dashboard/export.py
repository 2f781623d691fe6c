"""A run's exports: the self-contained HTML report and the zip of key-figure PNGs (Share page, tests, bench).

Both are built from :func:`dashboard.components.figures.key_figures`, the same figures the Overview
page shows, and the sentences come from the engine (:func:`igcore.hypothesis.summary_sentence`).
"""

from __future__ import annotations

import contextlib
import io
import zipfile

import streamlit as st

from dashboard import engine
from dashboard.components import charts, images, report, tables, text
from dashboard.components.figures import key_figures
from dashboard.components.style import method_label
from dashboard.components.widgets import figure_png
from dashboard.run_view import NotComputed, RunView
from igcore.errors import InputError
from igcore.hypothesis import summary_sentence
from igcore.prior.sources import ADDED
from igcore.schema import pred_column

#: How many images on which the baseline and the IG student disagree the report shows.
REPORT_DISAGREEMENTS = 6


def report_html(run: RunView, link: str | None = None) -> str:
    """The self-contained HTML report of ``run`` (``link``: the dashboard view it was exported from), with
    where its judgments came from and the ratings people added for its world after it was made. Its sentences are
    the pages' own (the same clause records, strengths and clause-deletion marks)."""
    inp = report.ReportInput(run_id=run.run_id, link=link, figures=key_figures(run))
    classes = run.classes
    for key, subject in (("z_star", "IG"), ("z_baseline", "The baseline")):
        try:
            clauses = run.clauses(key)
        except NotComputed as e:
            setattr(inp, f"{key}_missing", str(e))
            continue
        setattr(inp, f"{key}_sentence", summary_sentence(clauses, subject, classes))
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
    if run.results.prior is not None:  # what people added for this world after the run (never another world's)
        with contextlib.suppress(InputError):  # an older run whose judgment files are gone: the note above says so
            ratings = engine.page_judgments(run).ratings
            added = ratings[ratings["source"] == ADDED]
            inp.user_ratings = added.assign(concept=added["concept"].map(run.concept_texts)).to_dict("records")
    return report.build_report(inp)


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
