"""L_M(y | x, z): how a reader of hypothesis z labels an input, given perceived concept scores.

In Imitative Generalization (Barnes, "Imitative Generalisation (AKA 'Learning the Prior')", AI Alignment
Forum, 2021) the likelihood L_H(y | x, z) is "the probability a human who has read z assigns to label y for
input x"; L_M is a model that imitates it. Our realisation separates perception from reasoning: a concept
model (``igcore.concepts``) perceives concept probabilities ``s(x)`` in [0, 1], and the reader applies the
clauses of z to them:

    logit_c(x) = bias_c + sum_{clauses (k, c, w) in z} w * s_k(x)
    L_M(y | x, z) = softmax(logit(x))_y

This module works on precomputed scores only (no images). :func:`class_logits` and
:func:`log_softmax_nll` are the array-level kernels (NumPy or torch) that :mod:`igcore.search` reuses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import fisher_exact

from igcore.errors import InputError
from igcore.hypothesis import Hypothesis
from igcore.worlds.base import Vocabulary

#: Significance level of the clause-deletion test: a clause is ``specific`` when the answers its deletion changes
#: are more frequent where its concept is present than where it is absent at this level (one-sided Fisher exact test).
SPECIFIC_ALPHA = 0.05


def check_scores(scores: Any, n_concepts: int, name: str = "scores") -> np.ndarray:
    """Validate a concept-score matrix: 2-D (N, K), finite, in [0, 1].

    Returns a NumPy array without copying when the input already is a float32/float64 array (other
    inputs are converted to float64); checks run in the input's precision, so a 1e6 x 300 float32 matrix
    is never up-cast.
    """
    if hasattr(scores, "detach"):
        scores = scores.detach().cpu().numpy()
    try:
        arr = np.asarray(scores)
        if arr.dtype not in (np.float32, np.float64):
            arr = arr.astype(np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a numeric (N, K) array") from None
    if arr.ndim != 2 or arr.shape[1] != n_concepts:
        raise InputError(f"{name} must have shape (N, {n_concepts}) (one column per vocabulary concept), got {arr.shape}")
    if arr.size:
        lo, hi = float(arr.min()), float(arr.max())
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise InputError(f"{name} contains NaN or infinite values")
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise InputError(f"{name} must be concept probabilities in [0, 1], got range [{lo:.3g}, {hi:.3g}]")
    return arr


def check_labels(y: Any, n: int, n_classes: int) -> np.ndarray:
    """Validate labels: 1-D integers in [0, n_classes) of length ``n``. Returns int64."""
    arr = np.asarray(y.detach().cpu() if hasattr(y, "detach") else y)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise InputError(f"labels must be a 1-D array of length {n} (one per row of scores), got shape {arr.shape}")
    if arr.size and (not np.issubdtype(arr.dtype, np.integer)):
        if not np.all(np.mod(arr, 1) == 0):
            raise InputError("labels must be integer class indices")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        raise InputError(f"labels must be class indices in [0, {n_classes - 1}], got range [{arr.min()}, {arr.max()}]")
    return arr


def class_logits(scores: Any, weights: Any, bias: Any) -> Any:
    """``bias + scores @ weights`` for NumPy arrays or torch tensors (shapes (N, K), (K, C), (C,))."""
    return scores @ weights + bias


def log_softmax_nll(logits: np.ndarray, y: np.ndarray) -> float:
    """Summed negative log-likelihood ``-sum_i log softmax(logits_i)[y_i]`` (stable, float64)."""
    logits = np.asarray(logits, dtype=np.float64)
    m = logits.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
    return float((lse - logits[np.arange(len(y)), y]).sum())


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def clause_contributions(scores: Any, hypothesis: Hypothesis, vocabulary: Vocabulary) -> np.ndarray:
    """What each clause adds to its class's logit on each row: ``weight × s_k(x)``.

    These are the terms of L_M's logits (see the module doc): a class's logit is its bias plus the sum of
    its clauses' columns. Used to say which clauses of z carried an answer on one image.

    Returns:
        float64 (N, len(hypothesis.clauses)), columns in the order of ``hypothesis.clauses``.
    """
    s = check_scores(scores, len(vocabulary))
    columns = [vocabulary.index(c.concept) for c in hypothesis.clauses]
    weights = np.array([c.weight for c in hypothesis.clauses], dtype=np.float64)
    return s[:, columns].astype(np.float64) * weights


class ClauseLikelihood:
    """L_M for the clause language: class logits = bias + sum of clause weight x concept score, softmax.

    A replaceable component: anything with ``predict_proba(scores, hypothesis)`` and
    ``log_likelihood(scores, y, hypothesis)`` can stand in (e.g. a model trained to imitate human labels).

    Args:
        vocabulary: the concept vocabulary; column k of ``scores`` is ``vocabulary.concepts[k]``.
        classes: class names; label ``y`` indexes this list.
    """

    def __init__(self, vocabulary: Vocabulary, classes: Sequence[str]) -> None:
        self.vocabulary = vocabulary
        self.classes = list(classes)

    def logits(self, scores: Any, hypothesis: Hypothesis) -> np.ndarray:
        """Class logits (N, C) float64."""
        s = check_scores(scores, len(self.vocabulary)).astype(np.float64, copy=False)
        weights, bias = hypothesis.to_matrix(self.vocabulary, self.classes)
        return class_logits(s, weights, bias)

    def predict_proba(self, scores: Any, hypothesis: Hypothesis) -> np.ndarray:
        """L_M(. | x, z) for every row: (N, C) probabilities."""
        return softmax(self.logits(scores, hypothesis))

    def log_likelihood(self, scores: Any, y: Any, hypothesis: Hypothesis) -> float:
        """``sum_i log L_M(y_i | x_i, z)`` over the data set (a float, <= 0)."""
        logits = self.logits(scores, hypothesis)
        labels = check_labels(y, logits.shape[0], len(self.classes))
        return -log_softmax_nll(logits, labels)


def predict_proba(scores: Any, hypothesis: Hypothesis, vocabulary: Vocabulary, classes: Sequence[str]) -> np.ndarray:
    """Functional form of :meth:`ClauseLikelihood.predict_proba`."""
    return ClauseLikelihood(vocabulary, classes).predict_proba(scores, hypothesis)


def log_likelihood(
    scores: Any, y: Any, hypothesis: Hypothesis, vocabulary: Vocabulary, classes: Sequence[str]
) -> float:
    """Functional form of :meth:`ClauseLikelihood.log_likelihood` (summed over the data)."""
    return ClauseLikelihood(vocabulary, classes).log_likelihood(scores, y, hypothesis)


def clause_deletion(
    hypothesis: Hypothesis,
    scores: Any,
    present: Any,
    vocabulary: Vocabulary,
    classes: Sequence[str],
) -> list[dict[str, Any]]:
    """What each clause of ``hypothesis`` does to L_M's answers: delete it, and compare.

    A faithful reading of a clause "<concept> is evidence for <class>" predicts that deleting it changes
    L_M's answers on the images where the concept is present, and not elsewhere (its contribution is
    ``weight × score``). For every clause this measures, on the images where the concept is annotated
    present and on those where it is absent: how many answers change (``answer_change_rate``) and the mean
    drop in L_M's probability of the clause's class (``mean_drop``). ``specific`` is True when the change is
    larger where the concept is present beyond chance: the answer-change rate there exceeds the rate where it
    is absent by a one-sided Fisher exact test at level :data:`SPECIFIC_ALPHA` (``p_value``), and the mean drop
    is larger there too. A clause whose deletion changes no answer, or changes one in hundreds on both sides,
    is not specific.

    Args:
        hypothesis: z (or a surrogate such as z_baseline).
        scores: concept scores (N, K) of the images.
        present: 0/1 annotations (N, K) of the same images (the world's, not the concept model's).
        vocabulary, classes: the language.

    Returns:
        One record per clause: ``concept``, ``class``, ``weight``, ``text``, ``present`` and ``absent``
        (each ``{"n", "answer_change_rate", "mean_drop"}``), ``p_value`` (the one-sided test of the change rates;
        None without images on both sides) and ``specific`` (None likewise).
    """
    likelihood = ClauseLikelihood(vocabulary, classes)
    present = np.asarray(present).astype(bool)
    full = likelihood.predict_proba(scores, hypothesis)
    answer = full.argmax(1)
    records = []
    for clause in hypothesis.clauses:
        rest = Hypothesis(tuple(c for c in hypothesis.clauses if c is not clause), hypothesis.bias)
        without = likelihood.predict_proba(scores, rest)
        c = list(classes).index(clause.cls)
        changed = without.argmax(1) != answer
        drop = full[:, c] - without[:, c]
        where = present[:, vocabulary.index(clause.concept)]
        parts = {}
        for name, rows in (("present", where), ("absent", ~where)):
            parts[name] = {
                "n": int(rows.sum()),
                "answer_change_rate": float(changed[rows].mean()) if rows.any() else None,
                "mean_drop": float(drop[rows].mean()) if rows.any() else None,
            }
        p, a = parts["present"], parts["absent"]
        p_value = specific = None
        if p["n"] and a["n"]:
            p_value = change_test(int(changed[where].sum()), p["n"], int(changed[~where].sum()), a["n"])
            specific = bool(p_value < SPECIFIC_ALPHA and p["mean_drop"] > a["mean_drop"])
        records.append({
            "concept": clause.concept, "class": clause.cls, "weight": clause.weight,
            "text": vocabulary[clause.concept].text, **parts, "p_value": p_value, "specific": specific,
        })
    return records


def change_test(changed_present: int, n_present: int, changed_absent: int, n_absent: int) -> float:
    """One-sided Fisher exact test (scipy) that answers change more often where a concept is present than where
    it is absent: the p-value of the 2x2 table (changed, unchanged) x (present, absent). 1.0 when nothing changes."""
    table = [[changed_present, n_present - changed_present], [changed_absent, n_absent - changed_absent]]
    return float(fisher_exact(table, alternative="greater").pvalue)
