"""Prior_M(z): a model of human plausibility judgments, trained on what people said, not a hand-set table.

Imitative Generalization (Barnes, "Imitative Generalisation (AKA 'Learning the Prior')", AI Alignment
Forum, 2021) replaces the human prior Prior_H(z) by a model Prior_M trained on human judgments of
hypotheses, so the search can query it millions of times. The generalisation to the test distribution
comes from this prior, so it must be *learned from judgments* and must change when they change.

Pieces (each replaceable):

* Judgments: per-clause plausibility ratings ``rater,concept,class,rating`` (1-5: "how plausible is it
  that <concept> is evidence for <class>?") and pairwise preferences between whole hypotheses
  ``rater,hypothesis_a,hypothesis_b,preferred``. The project ships a worked example in ``assets/judgments/``
  (written by its developers; see the README there); a run records the judgments it was solved with
  (:class:`Judgments`, with their :class:`Provenance`), and :class:`JudgmentsStore` keeps what people add in
  the dashboard, per world.
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
:mod:`~igcore.prior.store` (the SQLite store of what people add, per world), :mod:`~igcore.prior.sources`
(the judgments a run is solved with and where they came from, recorded in the run), :mod:`~igcore.prior.encoders`
(text encoders) and :mod:`~igcore.prior.model` (the priors). This package re-exports their public names.

The one path to a prior::

    judgments = load_judgments(config.prior, vocabulary, classes)   # or run.judgments()[.joined(store)]
    prior = fit_prior(config.prior, judgments, vocabulary, classes)
"""

from __future__ import annotations

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
    load_judgments_csv,
    load_pairwise_csv,
    validate_pairwise,
    validate_ratings,
    vocabulary_fingerprint,
    write_ratings_csv,
)
from igcore.prior.model import MODEL_PARAMS, FlatPrior, HypothesisPrior, PriorModel
from igcore.prior.params import FEATURES, PriorConfig
from igcore.prior.sources import CarriedStructure, Judgments, Provenance, Source, fit_prior, load_judgments
from igcore.prior.store import JudgmentsStore

__all__ = [
    "ASSETS_DIR",
    "ENCODERS",
    "FEATURES",
    "JUDGMENTS_DIR",
    "MODEL_PARAMS",
    "PAIRWISE_COLUMNS",
    "RATING_COLUMNS",
    "SHIPPED_CLASSES",
    "SHIPPED_PAIRWISE",
    "SHIPPED_RATINGS",
    "SHIPPED_VOCABULARY",
    "CachedEncoder",
    "CarriedStructure",
    "FlatPrior",
    "HashingTextEncoder",
    "HypothesisPrior",
    "Judgments",
    "JudgmentsStore",
    "MiniLMTextEncoder",
    "PriorConfig",
    "PriorModel",
    "Provenance",
    "Source",
    "TextEncoder",
    "fit_prior",
    "load_judgments",
    "load_judgments_csv",
    "load_pairwise_csv",
    "make_encoder",
    "minilm_model_dir",
    "validate_pairwise",
    "validate_ratings",
    "vocabulary_fingerprint",
    "write_ratings_csv",
]
