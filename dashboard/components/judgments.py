"""What the Prior page shows about judgments, as pure functions of engine results: where the judgments came
from, the ratings as a table, Prior_M's plausibility heat map (built once per run and set of judgments,
:func:`plausibility_figure`), the stopping signal and what a re-solve changed, in sentences that say only
what happened."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import engine
from dashboard.components.style import base_layout
from dashboard.run_view import RunView
from igcore.prior.sources import ADDED, DATABASE, PAIRWISE_FILE, RATINGS_FILE, SHIPPED, Judgments, Provenance

if TYPE_CHECKING:  # the re-solve's modules load torch; this one only reads their results
    from igcore.prior.elicit import StopSignal
    from igcore.resolve import Comparison

#: What the ``source`` of a row means, in the page's words.
SOURCE_LABELS = {
    SHIPPED: "shipped example (developers)",
    RATINGS_FILE: "the run's ratings file",
    PAIRWISE_FILE: "the run's pairwise file",
    DATABASE: "added before the run",
    ADDED: "added on the Prior page",
}


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``"1 rating"``, ``"2 ratings"``."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def reset_sentence(stored: tuple[int, int], added: tuple[int, int]) -> str:
    """What a reset of the Prior page removes: every rating and pairwise preference stored for the world (``stored``),
    of which the page counts as added only those the run did not read when it was made (``added``, from
    :meth:`igcore.prior.sources.Judgments.n_added`); the run keeps what it read in its own judgments."""
    if not any(stored):
        return "Nobody has added ratings for this world on this page: the page already shows the judgments this run was solved with."
    nouns = ("rating", "pairwise preference")
    stored_text = " and ".join(count(n, noun) for n, noun in zip(stored, nouns, strict=True) if n)
    read = [s - a for s, a in zip(stored, added, strict=True)]
    read_text = " and ".join(count(n, noun) for n, noun in zip(read, nouns, strict=True) if n > 0)
    kept = (f" This run read {read_text} of them when it was made (`prior.database`) and keeps those in its own judgments; "
            "runs of this world that did not read them lose them." if read_text else "")
    return (f"This sets aside the {stored_text} stored for this world on this page (every run of this world shares them) and goes "
            f"back to the judgments this run was solved with.{kept}")


def sources_table(provenance: Provenance) -> pd.DataFrame:
    """One row per file or store the judgments came from: what, where, how many rows, raters, who wrote them."""
    rows = [
        {
            "judgments": f"{s.kind} · {SOURCE_LABELS.get(s.key, s.key)}",
            "file": s.where,
            "rows": s.rows,
            "raters": ", ".join(s.raters),
            "written by": s.written_by,
        }
        for s in provenance.sources
    ]
    if provenance.carried is not None:
        c = provenance.carried
        rows.append({"judgments": "field-guide shape costs · carried over", "file": c.where, "rows": c.rows, "raters": "",
                     "written by": "fitted by Bradley-Terry on the shipped pairwise preferences of the demo world"})
    return pd.DataFrame(rows, columns=["judgments", "file", "rows", "raters", "written by"])


def ratings_table(ratings: pd.DataFrame, texts: Mapping[str, str]) -> pd.DataFrame:
    """The ratings newest first, each clause in words and its source in the page's words."""
    return pd.DataFrame({
        "rater": ratings["rater"],
        "clause": [f"{texts[c]} ⇒ {k}" for c, k in zip(ratings["concept"], ratings["class"], strict=True)],
        "rating": ratings["rating"],
        "source": ratings["source"].map(lambda s: SOURCE_LABELS.get(s, s)),
    }).iloc[::-1]


def plausibility_heatmap(table: pd.DataFrame, concept_ids: Sequence[str], texts: Mapping[str, str]) -> go.Figure:
    """Prior_M's plausibility of every clause (``PriorModel.table()``), concepts down, classes across."""
    pivot = table.pivot(index="concept", columns="class", values="plausibility").reindex(list(concept_ids))
    values = pivot.to_numpy()
    fig = go.Figure(
        go.Heatmap(
            z=values,
            x=[f"→ {c}" for c in pivot.columns],
            y=[texts[c] for c in pivot.index],
            colorscale="RdYlGn",
            zmin=0,
            zmax=1,
            text=[[f"{v:.2f}" for v in row] for row in values],
            texttemplate="%{text}",
            colorbar={"title": "P(endorsed)"},
            hovertemplate="%{y} %{x}<br>plausibility %{z:.2f}<extra></extra>",
        )
    )
    fig.update_layout(**base_layout(height=120 + 24 * len(pivot), title={"text": "Prior_M: how plausible is “concept ⇒ class”?", "font": {"size": 15}},
                                    yaxis={"autorange": "reversed"}))
    return fig


def plausibility_figure(run: RunView, judgments: Judgments) -> go.Figure:
    """:func:`plausibility_heatmap` of Prior_M fitted on ``judgments`` (:func:`dashboard.engine.prior_table`), built
    once per run and set of judgments and shared read-only by every session that shows them."""
    return _plausibility_figure(run, judgments.key(), judgments)


@st.cache_resource(show_spinner=False, max_entries=16)
def _plausibility_figure(run: RunView, key: str, _judgments: Judgments) -> go.Figure:
    table, _ = engine.prior_table(run, _judgments)
    return plausibility_heatmap(table, run.concept_ids, run.concept_texts)


def stop_status(signal: StopSignal, n_logged: int) -> tuple[str, str]:
    """``(kind, sentence)`` of the stopping signal, ``kind`` one of ``caption | info | success``.

    The history starts from the run's own z* (``n_logged`` entries), so ``changes`` counts changes of z*'s
    clauses that ratings added on the Prior page (those the run did not read) made; a history without a change never reads as if it had one.
    """
    settled = f"the page calls z* settled after {count(signal.window, 'rating')} in a row that leave its clauses as they are"
    if n_logged <= 1:
        return "caption", f"z* is logged after each set of ratings; {settled}."
    since = count(signal.answers_since_change, "rating")
    if signal.changes == 0:
        what = f"The {since} added on the Prior page left z*'s clauses as they were"
        if signal.stable:
            return "success", f"**Further ratings have stopped changing z*:** {what[0].lower() + what[1:]}. More ratings can still sharpen the weights."
        return "info", f"{what}; {settled}."
    changed = f"z*'s clauses changed {count(signal.changes, 'time')} since the run's own judgments"
    if signal.stable:
        return "success", (f"**Further ratings have stopped changing z*:** the last {since} left its clauses as they were ({changed}). "
                           "More ratings can still sharpen the weights.")
    if signal.answers_since_change == 0:
        return "info", f"The latest ratings changed z*'s clauses ({changed}); {settled}."
    return "info", f"The last {since} left z*'s clauses as they were ({changed}); {settled}."


def changes_table(comparison: Comparison, texts: Mapping[str, str]) -> pd.DataFrame:
    """The clauses of z* before and after a re-solve, in words."""
    c = comparison.clauses
    return pd.DataFrame({
        "clause": [f"{texts[k]} ⇒ {cls}" for k, cls in zip(c["concept"], c["class"], strict=True)],
        "weight before": c["weight_before"],
        "weight after": c["weight_after"],
        "change": c["change"],
    })


def change_summary(comparison: Comparison) -> str:
    """One sentence: which clauses and how many D′ answers a re-solve changed."""
    clauses = comparison.clauses["change"]
    moved = {k: int((clauses == k).sum()) for k in ("added", "removed")}
    if comparison.same_clauses:
        what = "z* uses the same clauses as the run's"
    else:
        what = "z* " + " and ".join(f"{'gained' if k == 'added' else 'lost'} {count(n, 'clause')}" for k, n in moved.items() if n)
    answers = "gives the same answer on every D′ image" if comparison.answers_changed == 0 else (
        f"changes its answer on {comparison.answers_changed} of {comparison.n_images} D′ images")
    return f"{what}, and L_M reading it {answers}."


def accuracy_delta(comparison: Comparison) -> str | None:
    """The change of z*'s accuracy on D′ in points, or None when it is the same (no arrow for no change)."""
    if comparison.right_after == comparison.right_before:
        return None
    points = 100 * (comparison.right_after - comparison.right_before) / comparison.n_images
    return f"{points:+.1f} pts" if abs(points) >= 0.05 else f"{points:+.2f} pts"
