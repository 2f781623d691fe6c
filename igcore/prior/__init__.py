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

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from igcore.config import PriorConfig
from igcore.errors import InputError
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
    SHIPPED_PAIRWISE,
    SHIPPED_RATINGS,
    hypothesis_json_list,
    load_judgments_csv,
    load_pairwise_csv,
    validate_pairwise,
    validate_ratings,
    write_ratings_csv,
)
from igcore.prior.model import FEATURES, MODEL_PARAMS, FlatPrior, HypothesisPrior, PriorModel
from igcore.prior.store import JudgmentsStore
from igcore.worlds.base import Vocabulary

__all__ = [
    "ASSETS_DIR",
    "ENCODERS",
    "FEATURES",
    "JUDGMENTS_DIR",
    "PAIRWISE_COLUMNS",
    "RATING_COLUMNS",
    "SHIPPED_PAIRWISE",
    "SHIPPED_RATINGS",
    "CachedEncoder",
    "FlatPrior",
    "HashingTextEncoder",
    "HypothesisPrior",
    "JudgmentsStore",
    "MiniLMTextEncoder",
    "PriorModel",
    "TextEncoder",
    "build_prior",
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

def load_ratings_for_config(
    prior: PriorConfig, vocabulary: Vocabulary, classes: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The ratings and pairwise tables a config asks for: ``prior.database`` (SQLite store) if set, else
    ``prior.judgments`` / ``prior.pairwise`` CSVs if set, else the shipped ones."""
    if prior.database:
        store = JudgmentsStore(prior.database, vocabulary, classes)
        return store.ratings(), store.pairwise()

    def load(loader: Callable[..., pd.DataFrame], path: str | None, shipped: Path) -> pd.DataFrame:
        if path:
            return loader(path, vocabulary, classes)
        try:
            return loader(shipped, vocabulary, classes)
        except InputError as e:  # only the shipped files can mismatch another world's vocabulary
            raise InputError(f"{e} (the shipped judgments are for the snowwolf world; set prior.judgments and "
                             "prior.pairwise to judgments for this vocabulary)") from None

    return load(load_judgments_csv, prior.judgments, SHIPPED_RATINGS), load(load_pairwise_csv, prior.pairwise, SHIPPED_PAIRWISE)


def prior_from_config(prior: PriorConfig) -> PriorModel:
    """An unfitted :class:`PriorModel` with the ``prior`` section's parameters."""
    return PriorModel(**prior.model_dump(include=set(MODEL_PARAMS)))


def build_prior(prior: PriorConfig, vocabulary: Vocabulary, classes: Sequence[str]) -> PriorModel:
    """Fit the prior a run's ``prior`` section describes, on the judgments it names."""
    ratings, pairwise = load_ratings_for_config(prior, vocabulary, classes)
    return prior_from_config(prior).fit(ratings, vocabulary, classes, pairwise)
