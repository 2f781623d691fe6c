"""Surrogate hypotheses: what a trained model does, written in the language of z*.

The IG search (:class:`igcore.search.HypothesisSearch`, a flat prior with the same sparsity cost on every
clause, ``microscope.surrogate_l1``, and the same structure search as for z*) is fitted to a model's OWN predictions on D′_train (``test_train``) from the run's concept scores in
z*'s language (the concept model's scores of the annotated concepts, the calibrated presence of the named
discovered ones). The result, e.g. ``z_baseline``, reads "the baseline behaves as if: snowy ground ⇒ wolf
(strong evidence) …" and sits next to z* in the dashboard. Its fidelity is the agreement of
L_M(z_surrogate) with the model's predictions on D′_eval (held out from the fit); a low fidelity means
the model does something the concept vocabulary cannot express, and the surrogate should be read
with care. (Global surrogates in the spirit of Craven & Shavlik, 1996, "Extracting Tree-Structured
Representations of Trained Networks", with the hypothesis language as the interpretable model class.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from igcore.methods import method_spec
from igcore.worlds.base import Vocabulary


@dataclass
class Surrogate:
    """A fitted surrogate hypothesis.

    Attributes:
        name: ``z_baseline`` / ``z_student`` / ...
        model: the run model it imitates.
        hypothesis: the :class:`~igcore.hypothesis.Hypothesis`.
        records: clause records ``{concept, kind, class, weight, text}``.
        text: English rendering ("The baseline behaves as if: ...").
        fidelity: agreement with the model's predictions on the held-out split (D′_eval).
        fidelity_ci: Wilson 95% interval of ``fidelity`` (scipy.stats.binomtest).
        fidelity_train: agreement on the fitting split (D′_train).
        agreement_with_labels: accuracy of the surrogate's predictions on D′_eval labels (reference).
        disagreements: D′_eval rows where the surrogate and the model give different answers.
        surrogate_predictions: the surrogate's answers on D′_eval.
    """

    name: str
    model: str
    hypothesis: Any
    records: list[dict[str, Any]]
    text: str
    fidelity: float
    fidelity_train: float
    agreement_with_labels: float | None = None
    fidelity_ci: tuple[float, float] = (float("nan"), float("nan"))
    disagreements: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    surrogate_predictions: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "fidelity": self.fidelity,
            "fidelity_ci_low": self.fidelity_ci[0],
            "fidelity_ci_high": self.fidelity_ci[1],
            "n_eval": int(len(self.surrogate_predictions)),
            "n_disagree": int(len(self.disagreements)),
            "fidelity_train": self.fidelity_train,
            "acc_on_labels": self.agreement_with_labels,
            "n_clauses": len(self.records),
            "fit_on": "test_train (model's own predictions)",
            "evaluated_on": "test_eval",
        }


def behaves_as_if(
    hypothesis: Any, vocabulary: Vocabulary, classes: Sequence[str], who: str = "baseline", max_clauses: int = 8
) -> str:
    """``"The baseline behaves as if: snowy ground ⇒ wolf (strong evidence), …"``.

    The ``max_clauses`` heaviest clauses are spelled out (a flat-prior fit may keep many small ones, the more the
    smaller ``microscope.surrogate_l1``; the clause records hold them all), then the core (animal) concepts the
    hypothesis does not use.
    """
    from igcore.hypothesis import strength_word

    clauses = sorted(hypothesis.clauses, key=lambda c: (-c.weight, c.cls, c.concept))
    if not clauses:
        return f"The {who} behaves as if no concept mattered (it predicts from its bias alone)."
    shown = clauses[:max_clauses]
    items = ", ".join(f"{vocabulary[c.concept].text} ⇒ {c.cls} ({strength_word(c.weight)})" for c in shown)
    more = len(clauses) - len(shown)
    if more:
        items += f", and {more} weaker clause{'s' if more > 1 else ''}"
    used = {c.concept for c in clauses}
    ignored = [c.text for c in vocabulary.concepts if c.kind == "core" and c.id not in used]
    tail = f" It ignores {', '.join(ignored)}." if ignored else ""
    return f"The {who} behaves as if: {items}.{tail}"


def fit_surrogate(
    name: str,
    model: str,
    fit_scores: np.ndarray,
    fit_predictions: np.ndarray,
    eval_scores: np.ndarray,
    eval_predictions: np.ndarray,
    vocabulary: Vocabulary,
    classes: Sequence[str],
    *,
    eval_labels: np.ndarray | None = None,
    search_config: Any = None,
    device: str = "auto",
    who: str | None = None,
    l1: float = 0.0,
) -> Surrogate:
    """Fit the IG hypothesis language (flat prior) to a model's predictions and measure fidelity.

    Args:
        name: key in ``metrics.hypotheses`` (``z_baseline``).
        model: run model name (``erm``).
        fit_scores: concept scores (N, K) of D′_train; ``fit_predictions`` the model's classes there.
        eval_scores: concept scores of D′_eval; ``eval_predictions`` the model's classes there.
        vocabulary, classes: the language.
        eval_labels: D′_eval labels (only to report the surrogate's own accuracy).
        search_config: the run's ``search`` settings (the same structure search as z*); None =
            :class:`igcore.search.HypothesisSearch` defaults. The prior is always flat.
        device: where the search runs (``auto`` | ``cpu`` | ``cuda``).
        who: the noun in the English rendering (default: the method registry's noun, ``baseline`` for erm,
            else the model name).
        l1: the same sparsity cost on every clause (:class:`igcore.prior.FlatPrior`), so the description
            stays short enough to read; it prefers no concept over another.
    """
    from scipy.stats import binomtest

    from igcore.prior import FlatPrior
    from igcore.search import HypothesisSearch, search_from_config

    search = search_from_config(search_config, None, device=device) if search_config else HypothesisSearch(device=device)
    search.prior = FlatPrior(search.flat_weight_l2, l1) if l1 > 0 else None
    search.fit(np.asarray(fit_scores), np.asarray(fit_predictions, dtype=np.int64), vocabulary, list(classes))
    z = search.z_star_
    mine = search.predict_proba(np.asarray(eval_scores)).argmax(1)
    agree = mine == np.asarray(eval_predictions)
    fidelity = float(agree.mean())
    ci = binomtest(int(agree.sum()), len(agree)).proportion_ci(confidence_level=0.95, method="wilson") if len(agree) else None
    fidelity_train = float((search.predict_proba(np.asarray(fit_scores)).argmax(1) == np.asarray(fit_predictions)).mean())
    acc = None
    if eval_labels is not None:
        acc = float((search.predict_proba(np.asarray(eval_scores)).argmax(1) == np.asarray(eval_labels)).mean())
    who = who or method_spec(model).noun or model
    return Surrogate(
        name, model, z, z.to_records(vocabulary), behaves_as_if(z, vocabulary, classes, who), fidelity, fidelity_train, acc,
        (float(ci.low), float(ci.high)) if ci is not None else (float("nan"), float("nan")),
        np.flatnonzero(~agree).astype(np.int64), mine.astype(np.int64),
    )
