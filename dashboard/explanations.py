"""One explanation per model and image: the model's own answer, read through the hypothesis that describes it.

A sentence about why a model answered as it did must not pair one model's answer with another's reasons.
So for each model the Compare page explains, :func:`explain` takes

- the model's own answer on the D′ image (``tables/predictions``);
- the hypothesis that describes that model — z_baseline (fitted to the baseline's answers) for the
  baseline, z* (the field guide the IG student was trained to imitate) for the IG student — and that
  hypothesis's own answer on the image, read by L_M (:meth:`dashboard.run_view.RunView.hypothesis_answers`);
- when the two agree, the clauses of the answered class that carried it on this image: their
  contributions to the class's logit (:func:`igcore.likelihood.clause_contributions`), each with the
  concept model's reading of its concept (a probability, not a fact about the image), its strength and
  the clause-deletion test's verdict.

When the hypothesis answers differently, the explanation says so instead of offering reasons.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from dashboard.run_view import RunView, hypothesis_name
from igcore.discover.names import KIND as DISCOVERED
from igcore.hypothesis import Hypothesis, clause_qualifiers
from igcore.likelihood import clause_contributions
from igcore.schema import pred_column

#: The hypothesis that describes each model the Compare page explains, and how it relates to the model.
DESCRIBED_BY: dict[str, tuple[str, str]] = {
    "erm": ("z_baseline", "fitted to its answers"),
    "ig_student": ("z_star", "the field guide it was trained to imitate"),
}
#: A clause is cited as a reason when it adds at least this much to its class's logit on the image.
MIN_CONTRIBUTION = 0.05
#: At most this many reasons per answer.
MAX_REASONS = 3


@dataclass(frozen=True)
class Reason:
    """A clause of the describing hypothesis that carried the answer on one image."""

    text: str  # the concept's text
    reading: float  # the concept model's probability of the concept on the image (a discovered one's: its calibrated presence)
    weight: float
    contribution: float  # weight × reading, added to the class's logit
    qualifiers: str  # "moderate, not specific"
    discovered: bool = False  # a concept discovered in a model: read from its presence, not by the concept model


@dataclass(frozen=True)
class Explanation:
    """Why one model gave its answer on one D′ image, as far as the hypothesis that describes it can say."""

    model: str
    image: int
    answer: str  # the model's answer
    hypothesis: str  # key of the describing hypothesis (``z_baseline``)
    relation: str  # how the hypothesis relates to the model
    hypothesis_answer: str  # the hypothesis's own answer on the image (L_M)
    reasons: tuple[Reason, ...]
    other_classes: tuple[str, ...]

    @property
    def agrees(self) -> bool:
        return self.answer == self.hypothesis_answer

    @property
    def hypothesis_name(self) -> str:
        return hypothesis_name(self.hypothesis)


@st.cache_data(show_spinner=False, max_entries=1024)
def explain(run: RunView, model: str, image: int) -> Explanation:
    """The explanation of ``model``'s answer on D′_eval image ``image`` (``model`` in :data:`DESCRIBED_BY`), worked out
    once per run view, model and image and shared by every rerun and session."""
    key, relation = DESCRIBED_BY[model]
    classes = run.classes
    answer = classes[int(run.predictions().at[image, pred_column(model)])]
    said = classes[int(run.hypothesis_answers(key)[image])]
    reasons: list[Reason] = []
    if said == answer:
        records = [r for r in run.clauses(key) if r["class"] == answer]
        contributions = _contributions(run, key)[image]
        scores = run.concept_scores("test_eval")[image]
        ids = run.concept_ids
        by_clause = {(c["concept"], c["class"]): float(v) for c, v in zip(run.clauses(key), contributions, strict=True)}
        fired = sorted(((by_clause[(r["concept"], r["class"])], r) for r in records), key=lambda t: -t[0])
        reasons = [Reason(str(r["text"]), float(scores[ids.index(r["concept"])]), float(r["weight"]), v, clause_qualifiers(r),
                          r.get("kind") == DISCOVERED)
                   for v, r in fired[:MAX_REASONS] if v >= MIN_CONTRIBUTION]
    return Explanation(model, image, answer, key, relation, said, tuple(reasons), tuple(c for c in classes if c != answer))


@st.cache_data(show_spinner=False, max_entries=16)
def _contributions(run: RunView, key: str) -> np.ndarray:
    """(N, clauses) contributions of hypothesis ``key``'s clauses on D′_eval, in :meth:`RunView.clauses` order."""
    records = run.clauses(key)
    hypothesis = Hypothesis.from_json([{k: c[k] for k in ("concept", "class", "weight")} for c in records], run.vocabulary, run.classes)
    order = [hypothesis.clauses.index(next(h for h in hypothesis.clauses if (h.concept, h.cls) == (c["concept"], c["class"]))) for c in records]
    return clause_contributions(run.concept_scores("test_eval"), hypothesis, run.vocabulary)[:, order]
