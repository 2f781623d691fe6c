"""Prior_M(z): a model of human plausibility judgments, trained on what people said, not a hand-set table.

Imitative Generalization (Barnes, "Imitative Generalisation (AKA 'Learning the Prior')", AI Alignment
Forum, 2021) replaces the human prior Prior_H(z) by a model Prior_M trained on human judgments of
hypotheses, so the search can query it millions of times. The generalisation to the test distribution
comes from this prior, so it must be *learned from judgments* and must change when they change.

Pieces (each replaceable):

* Judgments: per-clause plausibility ratings ``rater,concept,class,rating`` (1-5: "how plausible is it
  that <concept> is evidence for <class>?") and pairwise preferences between whole hypotheses
  ``rater,hypothesis_a,hypothesis_b,preferred``. The project ships its own in ``assets/judgments/``
  (see the README there); :class:`JudgmentsStore` keeps them in SQLite so the dashboard can add more.
* Text encoder: clause and concept texts are embedded by a pretrained sentence encoder
  (all-MiniLM-L6-v2 through ``transformers``, loaded from local files; :class:`MiniLMTextEncoder`), with a
  character n-gram hashing fallback (:class:`HashingTextEncoder`). This is how the prior generalises to
  clauses nobody rated.
* :class:`PriorModel`: ridge regression from text features to the mean rating, empirical-Bayes shrinkage
  of the rated clauses' means toward it, a logistic calibration "P(a rater endorses the clause, i.e. rates
  it >= endorse_threshold) given the predicted rating" and a Bradley-Terry fit of the description-length
  and weight-size coefficients on the pairwise preferences (Bradley & Terry, Biometrika 1952).

The log prior of a hypothesis z with clauses (k, c, w_kc) is::

    log Prior_M(z) = strength * [ sum_{(k,c) in z} w_kc * log p_kc  -  coef_weight * sum w_kc^2
                                  -  coef_length * |z|  -  coef_class_length * sum_c n_c^2
                                  -  coef_empty_class * #(classes without a clause) ]

where ``p_kc`` is the calibrated plausibility of clause (k, c). A clause's log plausibility is counted in
proportion to how strongly z asserts it (its weight), which makes the prior a per-clause *weighted L1*
penalty ``strength * (-log p_kc) * w_kc`` on the non-negative weights: convex, and it sets implausible
clauses exactly to zero in the MAP (:mod:`igcore.search`). ``coef_length`` is a description-length cost per
clause, ``coef_class_length`` a cost growing with the square of each class's entry length ``n_c`` (long
entries tire readers; it also favours describing every class), ``coef_empty_class`` the cost of a field
guide that says nothing about some class (all three L0 terms, handled by the structure search), and
``coef_weight`` a Gaussian weight-size term. Bradley-Terry choices identify the *ratios* of the terms (human choice noise hides their absolute
scale), so ``strength`` - how many nats of evidence one unit of the bracket is worth against the summed
data log-likelihood - is a config key. :class:`FlatPrior` is the likelihood-only ablation.

Modules (one job each): :mod:`~igcore.prior.judgments` (CSV reading and validation),
:mod:`~igcore.prior.store` (the SQLite store), :mod:`~igcore.prior.encoders` (text encoders) and
:mod:`~igcore.prior.model` (the priors). This package re-exports their public names and builds the prior a
run config describes.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from igcore.config import PriorConfig
from igcore.errors import InputError
from igcore.hypothesis import Hypothesis
from igcore.prior.encoders import (
    ENCODERS,
    CachedEncoder,
    HashingTextEncoder,
    MiniLMTextEncoder,
    TextEncoder,
    make_encoder,
    minilm_model_dir,
)
from igcore.prior.judgments import (
    ASSETS_DIR,
    JUDGMENTS_DIR,
    PAIRWISE_COLUMNS,
    RATING_COLUMNS,
    SHIPPED_CLASSES,
    SHIPPED_PAIRWISE,
    SHIPPED_RATINGS,
    SHIPPED_VOCABULARY,
    hypothesis_json_list,
    load_judgments_csv,
    load_pairwise_csv,
    validate_pairwise,
    validate_ratings,
    write_ratings_csv,
)
from igcore.prior.model import FEATURES, MODEL_PARAMS, FlatPrior, HypothesisPrior, PriorModel
from igcore.prior.store import JudgmentsStore
from igcore.worlds.base import Concept, Vocabulary

__all__ = [
    "ASSETS_DIR",
    "ENCODERS",
    "FEATURES",
    "JUDGMENTS_DIR",
    "PAIRWISE_COLUMNS",
    "RATING_COLUMNS",
    "SHIPPED_CLASSES",
    "SHIPPED_PAIRWISE",
    "SHIPPED_RATINGS",
    "SHIPPED_VOCABULARY",
    "CachedEncoder",
    "FlatPrior",
    "HashingTextEncoder",
    "HypothesisPrior",
    "JudgmentsStore",
    "MiniLMTextEncoder",
    "PriorModel",
    "TextEncoder",
    "Judgments",
    "build_prior",
    "carried_structure",
    "fit_prior",
    "load_judgments",
    "hypothesis_json_list",
    "load_judgments_csv",
    "load_pairwise_csv",
    "load_ratings_for_config",
    "make_encoder",
    "minilm_model_dir",
    "prior_from_config",
    "validate_pairwise",
    "validate_ratings",
    "write_ratings_csv",
]


@dataclass
class Judgments:
    """The judgments a run's prior is fitted on, and what people should know about where they came from.

    ``pairwise`` is None when no pairwise file speaks about this world's vocabulary; the prior then takes
    its hypothesis-shape terms (length, weight size, class balance) from the shipped pairwise file, which
    judges hypotheses of the Snow-and-Wolves world (:func:`carried_structure`).
    """

    ratings: pd.DataFrame
    pairwise: pd.DataFrame | None
    source: str
    notes: list[str] = field(default_factory=list)


def load_judgments(
    prior: PriorConfig, vocabulary: Vocabulary, classes: Sequence[str], drop: Collection[str] = ()
) -> Judgments:
    """The ratings and pairwise preferences a config asks for: ``prior.database`` (the SQLite store) if
    set, else ``prior.judgments`` / ``prior.pairwise`` CSVs if set, else the shipped ones when they speak
    about this world's concepts and classes.

    Files a person named must fit the world (a concept or class it does not have is an
    :class:`InputError`). The shipped files are for the Snow-and-Wolves vocabulary: for another world
    they are left out, with a note; a world with no ratings at all gets a prior that rates every clause
    alike, and the note says so plainly. Judgments about a concept in ``drop`` — one withheld from the
    engine (``world.hide_concepts``), or a discovered concept nobody has named — are left out: ratings of
    it, and pairwise preferences between hypotheses that mention it.
    """
    drop = frozenset(drop)
    if drop:
        known = Vocabulary(vocabulary.concepts + tuple(Concept(c, c, "core") for c in sorted(drop) if c not in vocabulary.ids))
        return _without(load_judgments(prior, known, classes), drop, known, classes)
    if prior.database:
        store = JudgmentsStore(prior.database, vocabulary, classes)
        return Judgments(store.ratings(), store.pairwise(), f"database {Path(prior.database).name}")
    notes: list[str] = []
    if prior.judgments:
        ratings, source = load_judgments_csv(prior.judgments, vocabulary, classes), f"ratings {Path(prior.judgments).name}"
    else:
        try:
            ratings, source = load_judgments_csv(SHIPPED_RATINGS, vocabulary, classes), "shipped ratings"
        except InputError:
            ratings, source = empty_ratings(), "no ratings"
            notes.append(
                "No ratings for this world's concepts: the prior knows nothing about them and rates every clause "
                "alike, so z* rests on the data alone. Rate clauses on the dashboard's Prior page or give "
                "prior.judgments (a CSV rater,concept,class,rating)."
            )
    if prior.pairwise:
        return Judgments(ratings, load_pairwise_csv(prior.pairwise, vocabulary, classes), source, notes)
    try:
        return Judgments(ratings, load_pairwise_csv(SHIPPED_PAIRWISE, vocabulary, classes), source, notes)
    except InputError:
        return Judgments(ratings, None, source, notes)


def _without(judgments: Judgments, drop: frozenset[str], vocabulary: Vocabulary, classes: Sequence[str]) -> Judgments:
    """``judgments`` without the ratings of concepts in ``drop`` and the preferences that mention one."""
    ratings = judgments.ratings[~judgments.ratings["concept"].isin(drop)].reset_index(drop=True)
    pairwise = judgments.pairwise
    if pairwise is not None:
        def clean(text: str) -> bool:
            return not Hypothesis.from_json(text, vocabulary, classes).concepts_used() & drop

        keep = [clean(a) and clean(b) for a, b in zip(pairwise["hypothesis_a"], pairwise["hypothesis_b"], strict=True)]
        pairwise = pairwise[keep].reset_index(drop=True) if any(keep) else None
    notes = list(judgments.notes)
    if left_out := len(judgments.ratings) - len(ratings):
        notes.append(f"{left_out} rating(s) about concepts withheld from the engine or not yet named were left out")
    return Judgments(ratings, pairwise, judgments.source, notes)


def load_ratings_for_config(
    prior: PriorConfig, vocabulary: Vocabulary, classes: Sequence[str], drop: Collection[str] = ()
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """``(ratings, pairwise)`` of :func:`load_judgments` (validates the files a config names)."""
    judgments = load_judgments(prior, vocabulary, classes, drop)
    return judgments.ratings, judgments.pairwise


def empty_ratings() -> pd.DataFrame:
    return pd.DataFrame({"rater": pd.Series(dtype=str), "concept": pd.Series(dtype=str), "class": pd.Series(dtype=str),
                         "rating": pd.Series(dtype=np.int64)})


def prior_from_config(prior: PriorConfig) -> PriorModel:
    """An unfitted :class:`PriorModel` with the ``prior`` section's parameters."""
    return PriorModel(**prior.model_dump(include=set(MODEL_PARAMS)))


def carried_structure(prior: PriorConfig) -> PriorModel:
    """Prior_M fitted on the shipped judgments of the Snow-and-Wolves world, for its hypothesis-shape terms.

    People's preferences about the *shape* of a field guide (how long, how strong its claims, whether it
    speaks about every class) do not depend on the concepts in it, so the Bradley-Terry fit on the
    shipped pairwise file carries over to a world whose vocabulary nobody compared hypotheses in.
    """
    vocabulary, classes = Vocabulary.from_csv(SHIPPED_VOCABULARY), list(SHIPPED_CLASSES)
    ratings = load_judgments_csv(SHIPPED_RATINGS, vocabulary, classes)
    pairwise = load_pairwise_csv(SHIPPED_PAIRWISE, vocabulary, classes)
    return prior_from_config(prior).fit(ratings, vocabulary, classes, pairwise)


def build_prior(prior: PriorConfig, vocabulary: Vocabulary, classes: Sequence[str], drop: Collection[str] = ()) -> PriorModel:
    """Fit the prior a run's ``prior`` section describes, on the judgments it names (:func:`load_judgments`)."""
    judgments = load_judgments(prior, vocabulary, classes, drop)
    return fit_prior(prior, judgments, vocabulary, classes)


def fit_prior(prior: PriorConfig, judgments: Judgments, vocabulary: Vocabulary, classes: Sequence[str]) -> PriorModel:
    """Prior_M on ``judgments``; without a pairwise file for this world, with the shipped structure terms."""
    model = prior_from_config(prior)
    notes = list(judgments.notes)
    if judgments.pairwise is None and prior.fit_pairwise:
        shipped = carried_structure(prior)
        model.fit_pairwise = False
        model.coef_length, model.coef_weight = shipped.coef_length_, shipped.coef_weight_
        model.coef_class_length, model.coef_empty_class = shipped.coef_class_length_, shipped.coef_empty_class_
        notes.append(
            "No pairwise judgments compare hypotheses of this world: the preferences about a field guide's shape "
            "(length, strength of claims, every class described) carry over from the shipped Snow-and-Wolves "
            "pairwise file, fitted there by Bradley-Terry."
        )
    model.fit(judgments.ratings, vocabulary, classes, judgments.pairwise)
    model.judgments_source_, model.notes_ = judgments.source, notes
    return model
