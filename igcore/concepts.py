"""The perception half of L_M: a multi-label model that scores every vocabulary concept on an image.

It is trained on the ``concept_bank`` split only — images annotated with concepts, collected
independently of the task labels and decorrelated from class and background (the TCAV-style concept
sets of Kim et al., 2018, or CUB's per-image attributes, Koh et al., 2020 "Concept Bottleneck
Models"). It never sees a task label, so it cannot smuggle the training shortcut into z's likelihood.
Every concept is scored — core, context and distractor alike — so that any hypothesis, a wrong one
included, can be evaluated.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from igcore.baseline import ImageClassifier
from igcore.worlds.base import Split, Vocabulary


def per_concept_auc(annotations: np.ndarray, scores: np.ndarray, vocabulary: Vocabulary) -> dict[str, float | None]:
    """ROC AUC per concept (None where a concept is constant in ``annotations``)."""
    out: dict[str, float | None] = {}
    for k, cid in enumerate(vocabulary.ids):
        column = annotations[:, k]
        out[cid] = float(roc_auc_score(column, scores[:, k])) if 0 < column.sum() < len(column) else None
    return out


class ConceptModel:
    """Estimator: ``fit(concept_bank)`` trains on 80 % of the bank, measures AUC on the other 20 %.

    Args:
        vocabulary: the concepts to score (columns of the output).
        holdout: fraction of the concept bank held out for model selection and AUC.
        **train: passed to :class:`~igcore.baseline.ImageClassifier` (arch, epochs, device, ...).

    Attributes:
        classifier_: the trained multi-label :class:`ImageClassifier`.
        heldout_auc_: per-concept ROC AUC on the held-out concept-bank images.
    """

    def __init__(
        self,
        vocabulary: Vocabulary,
        *,
        holdout: float = 0.2,
        seed: int = 0,
        estimator: type[ImageClassifier] = ImageClassifier,
        **train: Any,
    ):
        self.vocabulary = vocabulary
        self.holdout = holdout
        self.seed = seed
        self.estimator = estimator
        self.train = train

    def fit(self, bank: Split, inputs: np.ndarray | None = None) -> ConceptModel:
        """Fit on the concept bank; ``inputs`` are the bank's images (default) or their cached features."""
        inputs = bank.images if inputs is None else inputs
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(bank))
        n_hold = max(1, int(round(self.holdout * len(bank))))
        held, fit_idx = order[:n_hold], order[n_hold:]
        # No flip augmentation: "the animal stands on the left/right" is itself a concept.
        self.classifier_ = self.estimator(
            num_labels=len(self.vocabulary), multi_label=True, augment=False, seed=self.seed, name="concepts", **self.train
        ).fit(
            inputs[fit_idx],
            bank.concepts[fit_idx],
            val=(inputs[held], bank.concepts[held]),
        )
        self.heldout_auc_ = per_concept_auc(bank.concepts[held], self.scores(inputs[held]), self.vocabulary)
        return self

    def scores(self, inputs: np.ndarray) -> np.ndarray:
        """Concept probabilities, float32 (N, K) in vocabulary order, of images (or their features)."""
        return self.classifier_.predict_proba(inputs).astype(np.float32)

    def auc(self, split: Split, scores: np.ndarray | None = None) -> dict[str, float | None]:
        """Per-concept ROC AUC on any annotated split (D′ included: annotations need no class label)."""
        return per_concept_auc(split.concepts, self.scores(split.images) if scores is None else scores, self.vocabulary)
