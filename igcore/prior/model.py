"""Prior_M itself: :class:`PriorModel` (learned from judgments), :class:`FlatPrior` (the ablation) and the
:class:`HypothesisPrior` contract the z* search relies on. The formula is in :mod:`igcore.prior`."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Protocol

import numpy as np
import pandas as pd

from igcore.errors import InputError
from igcore.hypothesis import Clause, Hypothesis, clause_sentence
from igcore.prior.encoders import TextEncoder, make_encoder
from igcore.prior.judgments import validate_pairwise, validate_ratings
from igcore.prior.params import PriorConfig
from igcore.settings import validated
from igcore.worlds.base import Vocabulary

#: ``prior`` config keys that are :class:`PriorModel` parameters (the rest name the judgments to read).
MODEL_PARAMS = ("encoder", "features", "ridge_alpha", "shrinkage", "endorse_threshold", "strength", "coef_length",
                "coef_weight", "coef_class_length", "coef_empty_class", "fit_pairwise", "min_plausibility", "bt_l2")


class HypothesisPrior(Protocol):
    """What :class:`igcore.search.HypothesisSearch` needs from a prior."""

    def clause_penalties(self, vocabulary: Vocabulary, classes: Sequence[str]) -> tuple[np.ndarray, float]:
        """The convex part ``(l1 (K, C) >= 0, l2 >= 0)``: ``sum l1 * w + l2 * sum w^2`` is minus the log prior's
        weight-dependent terms."""
        ...

    def structure_log_prior(self, active: np.ndarray) -> float:
        """The log prior's terms that depend only on which clauses are used (``active``: (K, C) bool)."""
        ...

    def log_prior(self, hypothesis: Hypothesis) -> float: ...


class FlatPrior:
    """The likelihood-only ablation (``no_prior``): every clause equally plausible, no length cost.

    A vanishing Gaussian weight term ``-weight_l2 * sum w^2`` remains so the MAP exists when D is
    separable (rho = 1); it is reported as this prior's log prior. ``l1`` adds the same sparsity cost
    ``-l1 * sum w`` to *every* clause: still indifferent between concepts (no human knowledge), but it
    keeps a surrogate description short enough to read (used for ``z_baseline``).
    """

    def __init__(self, weight_l2: float = 1e-2, l1: float = 0.0) -> None:
        self.weight_l2 = float(weight_l2)
        self.l1 = float(l1)

    def clause_penalties(self, vocabulary: Vocabulary, classes: Sequence[str]) -> tuple[np.ndarray, float]:
        return np.full((len(vocabulary), len(classes)), self.l1), self.weight_l2

    def structure_log_prior(self, active: np.ndarray) -> float:
        return 0.0

    def log_prior(self, hypothesis: Hypothesis) -> float:
        return -float(sum(self.l1 * c.weight + self.weight_l2 * c.weight**2 for c in hypothesis.clauses))


#: A hypothesis as the pairwise terms read it: its clauses ``(weight, concept index, class index)`` in order, and
#: ``(|z|, sum w^2, sum_c n_c^2, classes without a clause)``, which no rating changes.
_Shape = tuple[tuple[tuple[float, int, int], ...], tuple[float, float, float, float]]


def _clause_shape(h: Hypothesis, vocabulary: Vocabulary, classes: tuple[str, ...]) -> _Shape:
    ids = {cid: i for i, cid in enumerate(vocabulary.ids)}
    cols = {cl: i for i, cl in enumerate(classes)}
    per_class = np.array([sum(1 for c in h.clauses if c.cls == cl) for cl in classes], dtype=np.float64)
    w2 = float(sum(c.weight**2 for c in h.clauses))
    clauses = tuple((c.weight, ids[c.concept], cols[c.cls]) for c in h.clauses)
    return clauses, (float(len(h)), w2, float((per_class**2).sum()), float((per_class == 0).sum()))


@lru_cache(maxsize=4096)
def _parsed_shape(text: str, vocabulary: Vocabulary, classes: tuple[str, ...]) -> _Shape:
    """:func:`_clause_shape` of a pairwise file's hypothesis, parsed once: refitting Prior_M after one new rating
    (live prior editing) reads the same preferences again."""
    return _clause_shape(Hypothesis.from_json(text, vocabulary, list(classes)), vocabulary, classes)


class PriorModel:
    """Prior_M trained on human judgments (see the module docstring for the formula).

    Fitting:

    1. mean rating per rated clause (concept, class), ``n`` ratings each;
    2. ridge regression (L2 ``ridge_alpha``) from text features of the clause to its mean rating;
       ``features``: ``"concept"`` (embedding of the concept phrase), ``"clause"`` (embedding of the
       sentence "<concept> is evidence for a <class>"), or both concatenated;
    3. predicted rating = ``(n * mean + shrinkage * text_prediction) / (n + shrinkage)`` - the rated
       clauses keep their raters' verdict, unrated ones get the text model's;
    4. plausibility ``p = P(rating >= endorse_threshold | predicted rating)`` by logistic regression on the
       individual ratings, clipped to ``[min_plausibility, 1 - min_plausibility]``;
    5. with pairwise preferences and ``fit_pairwise``: Bradley-Terry,
       ``P(a preferred to b) = sigmoid(u(a) - u(b))``,
       ``u = t0 * P - t1 * |z| - t2 * W2 - t3 * Q - t4 * E`` with ``P = sum w log p``, ``W2 = sum w^2``,
       ``Q = sum_c n_c^2``, ``E`` = classes without a clause, ``t >= 0`` (small L2 ``bt_l2``); then
       ``coef_length_ = t1 / t0``, ``coef_weight_ = t2 / t0``, ``coef_class_length_ = t3 / t0``,
       ``coef_empty_class_ = t4 / t0``. Without pairwise data (or if ``t0`` ~ 0) the config values are used.

    :func:`igcore.prior.fit_prior` (the way the pipeline, the re-solve and the dashboard build Prior_M) also sets
    ``judgments_``: the judgments it was fitted on, with their provenance.

    ``loco_error_`` is the leave-one-concept-out error of step 2 (both classes of a concept held out, so
    exactly the situation of an unrated concept), next to a predict-the-mean baseline.

    Args:
        encoder: ``"minilm"`` | ``"hashing"`` or an object with ``name`` and ``encode(texts)``.
        features: ``"concept"`` | ``"clause"`` | ``"concept+clause"``.
        ridge_alpha: ridge penalty of the text regression.
        shrinkage: pseudo-count of the text model when combining with rated means.
        endorse_threshold: a rating >= this counts as endorsing the clause (calibration target).
        strength: scale of the log prior against the summed data log-likelihood (nats per unit).
        coef_length: description-length cost per clause (used if not fitted from pairwise).
        coef_weight: weight-size cost per unit ``w^2`` (used if not fitted from pairwise).
        coef_class_length: cost per unit of ``sum_c n_c^2`` (used if not fitted).
        coef_empty_class: cost per class the hypothesis says nothing about (used if not fitted).
        fit_pairwise: fit ``coef_length``/``coef_weight`` by Bradley-Terry when pairwise data is given.
        min_plausibility: clip of ``p`` away from 0 and 1.
        bt_l2: L2 on the Bradley-Terry parameters.
    """

    def __init__(
        self,
        encoder: str | TextEncoder = "minilm",
        features: str = "concept",
        ridge_alpha: float = 0.1,
        shrinkage: float = 1.0,
        endorse_threshold: int = 4,
        strength: float = 100.0,
        coef_length: float = 0.4,
        coef_weight: float = 0.025,
        coef_class_length: float = 0.0,
        coef_empty_class: float = 7.0,
        fit_pairwise: bool = True,
        min_plausibility: float = 1e-3,
        bt_l2: float = 0.1,
    ) -> None:
        self.encoder = encoder
        self.features = features
        self.ridge_alpha = ridge_alpha
        self.shrinkage = shrinkage
        self.endorse_threshold = endorse_threshold
        self.strength = strength
        self.coef_length = coef_length
        self.coef_weight = coef_weight
        self.coef_class_length = coef_class_length
        self.coef_empty_class = coef_empty_class
        self.fit_pairwise = fit_pairwise
        self.min_plausibility = min_plausibility
        self.bt_l2 = bt_l2

    # ------------------------------------------------------------------ fitting
    def _check_params(self) -> None:
        """The parameters against the config's ``prior`` schema (one set of bounds for both)."""
        params = {k: getattr(self, k) for k in MODEL_PARAMS if k != "encoder" or isinstance(self.encoder, str)}
        validated(PriorConfig, params, "prior")

    def _encoder(self) -> TextEncoder:
        if isinstance(self.encoder, str):
            return make_encoder(self.encoder)
        return self.encoder

    def _features(self, vocabulary: Vocabulary, classes: Sequence[str]) -> np.ndarray:
        """Text features of every clause, shape (K, C, D)."""
        enc = self._encoder()
        k, c = len(vocabulary), len(classes)
        if k == 0:  # a vocabulary with no concept (labels-only data before anything is named): nothing to embed
            return np.zeros((0, c, 1))
        blocks = []
        if self.features in ("concept", "concept+clause"):
            e = enc.encode([con.text for con in vocabulary.concepts])
            blocks.append(np.broadcast_to(e[:, None, :], (k, c, e.shape[1])))
        if self.features in ("clause", "concept+clause"):
            texts = [clause_sentence(con.text, cl) for con in vocabulary.concepts for cl in classes]
            blocks.append(enc.encode(texts).reshape(k, c, -1))
        return np.concatenate(blocks, axis=-1)

    def fit(
        self,
        ratings: pd.DataFrame,
        vocabulary: Vocabulary,
        classes: Sequence[str],
        pairwise: pd.DataFrame | None = None,
    ) -> PriorModel:
        """Fit on ratings ``rater,concept,class,rating`` (and optional pairwise preferences). Returns self.

        Small linear algebra, on one BLAS thread (:func:`igcore.runtime.one_blas_thread`): live prior editing
        re-solves z* right after each refit."""
        import sklearn.linear_model  # noqa: F401  (loads scipy's BLAS pool before it is limited)

        from igcore.runtime import one_blas_thread

        with one_blas_thread():
            return self._fit(ratings, vocabulary, classes, pairwise)

    def _fit(self, ratings: pd.DataFrame, vocabulary: Vocabulary, classes: Sequence[str], pairwise: pd.DataFrame | None) -> PriorModel:
        from sklearn.linear_model import LogisticRegression, Ridge

        self._check_params()
        classes = list(classes)
        ratings = validate_ratings(ratings, vocabulary, classes, allow_empty=True)
        k_n, c_n = len(vocabulary), len(classes)
        enc = self._encoder()
        self.encoder_name_ = enc.name
        self.vocabulary_, self.classes_ = vocabulary, classes

        ki = ratings["concept"].map({cid: i for i, cid in enumerate(vocabulary.ids)}).to_numpy(dtype=np.int64)
        ci = ratings["class"].map({cl: i for i, cl in enumerate(classes)}).to_numpy(dtype=np.int64)
        r = ratings["rating"].to_numpy(dtype=np.float64)
        sums, counts = np.zeros((k_n, c_n)), np.zeros((k_n, c_n))
        np.add.at(sums, (ki, ci), r)
        np.add.at(counts, (ki, ci), 1.0)
        rated = counts > 0
        mean = np.where(rated, sums / np.maximum(counts, 1), np.nan)
        self.n_ratings_ = int(len(ratings))
        self.n_raters_ = int(ratings["rater"].nunique())
        self.n_per_clause_ = counts
        self.rated_ = rated
        self.mean_ratings_ = mean

        feats = self._features(vocabulary, classes)  # (K, C, D)
        kk, cc = np.nonzero(rated)
        x_train, t_train = feats[kk, cc], mean[kk, cc]

        def ridge_fit(x: np.ndarray, t: np.ndarray) -> Ridge | None:
            if len(t) == 0:
                return None
            return Ridge(alpha=max(self.ridge_alpha, 1e-8)).fit(x, t)

        model = ridge_fit(x_train, t_train)
        flat = feats.reshape(k_n * c_n, feats.shape[-1])
        text_pred = model.predict(flat).reshape(k_n, c_n) if model is not None else np.full((k_n, c_n), 3.0)
        if len(np.unique(kk)) == 1 or len(t_train) < 2:
            text_pred = np.full((k_n, c_n), float(np.mean(t_train)) if len(t_train) else 3.0)
        self.text_ratings_ = np.clip(text_pred, 1.0, 5.0)
        kappa = self.shrinkage
        shrunk = (counts * np.nan_to_num(mean) + kappa * self.text_ratings_) / np.maximum(counts + kappa, 1e-12)
        combined = np.where(rated, shrunk, self.text_ratings_)
        self.predicted_ratings_ = np.clip(combined, 1.0, 5.0)
        self.loco_error_ = self._loco(feats, mean, rated, vocabulary)

        # calibration: P(endorse | predicted rating), one sample per individual rating
        endorse = (r >= self.endorse_threshold).astype(int)
        xr = self.predicted_ratings_[ki, ci][:, None]
        if 0 < endorse.sum() < len(endorse):
            lr = LogisticRegression(C=1.0).fit(xr - 3.0, endorse)
            slope, intercept = float(lr.coef_[0, 0]), float(lr.intercept_[0])
        else:
            slope, intercept = 0.0, 0.0
        if slope <= 0:  # degenerate judgments: fall back to a fixed monotone map of the rating scale
            slope, intercept = 1.5, 0.0
            self.calibration_ = {"slope": slope, "intercept": intercept, "fitted": False}
        else:
            self.calibration_ = {"slope": slope, "intercept": intercept, "fitted": True}
        p = 1.0 / (1.0 + np.exp(-(slope * (self.predicted_ratings_ - 3.0) + intercept)))
        self.plausibility_ = np.clip(p, self.min_plausibility, 1.0 - self.min_plausibility)

        self.coef_length_, self.coef_weight_ = float(self.coef_length), float(self.coef_weight)
        self.coef_class_length_ = float(self.coef_class_length)
        self.coef_empty_class_ = float(self.coef_empty_class)
        self.pairwise_fit_: dict[str, Any] = {"used": False, "n": 0}
        if pairwise is not None and len(pairwise) and self.fit_pairwise:
            self._fit_pairwise(validate_pairwise(pairwise, vocabulary, classes), vocabulary, classes)
        return self

    def _loco(self, feats: np.ndarray, mean: np.ndarray, rated: np.ndarray, vocabulary: Vocabulary) -> dict[str, Any]:
        from sklearn.linear_model import Ridge

        concepts = np.nonzero(rated.any(axis=1))[0]
        errs, base, per = [], [], {}
        if len(concepts) < 3:
            return {"mae": float("nan"), "rmse": float("nan"), "baseline_mae": float("nan"),
                    "baseline_rmse": float("nan"), "n_concepts": int(len(concepts)), "per_concept": {}}
        for k in concepts:
            train = rated.copy()
            train[k] = False
            kk, cc = np.nonzero(train)
            pred = Ridge(alpha=max(self.ridge_alpha, 1e-8)).fit(feats[kk, cc], mean[kk, cc]).predict(feats[k])
            pred = np.clip(pred, 1.0, 5.0)
            cols = np.nonzero(rated[k])[0]
            e = np.abs(pred[cols] - mean[k, cols])
            errs.extend(e.tolist())
            base.extend(np.abs(mean[kk, cc].mean() - mean[k, cols]).tolist())
            per[vocabulary.ids[k]] = float(e.mean())
        errs_a, base_a = np.asarray(errs), np.asarray(base)
        return {
            "mae": float(errs_a.mean()),
            "rmse": float(np.sqrt((errs_a**2).mean())),
            "baseline_mae": float(base_a.mean()),
            "baseline_rmse": float(np.sqrt((base_a**2).mean())),
            "n_concepts": int(len(concepts)),
            "per_concept": per,
        }

    def _hypothesis_terms(self, h: Hypothesis) -> np.ndarray:
        """``[sum w log p, |z|, sum w^2, sum_c n_c^2, classes without a clause]`` for a hypothesis."""
        return self._terms(_clause_shape(h, self.vocabulary_, tuple(self.classes_)))

    def _terms(self, shape: _Shape) -> np.ndarray:
        """:meth:`_hypothesis_terms` of a parsed hypothesis: only the plausibility sum depends on the fit."""
        logp = self.clause_log_plausibility()
        clauses, structure = shape
        plaus = sum(w * logp[k, c] for w, k, c in clauses)
        return np.array([plaus, *structure])

    def _fit_pairwise(self, pairwise: pd.DataFrame, vocabulary: Vocabulary, classes: Sequence[str]) -> None:
        from scipy.optimize import minimize

        diffs, signs = [], []
        for row in pairwise.itertuples(index=False):
            fa = self._terms(_parsed_shape(row.hypothesis_a, vocabulary, tuple(classes)))
            fb = self._terms(_parsed_shape(row.hypothesis_b, vocabulary, tuple(classes)))
            diffs.append((fa - fb) * np.array([1.0, -1.0, -1.0, -1.0, -1.0]))  # u = t0*P - t1*|z| - t2*W2 - t3*Q - t4*E
            signs.append(1.0 if row.preferred == "a" else -1.0)
        d = np.asarray(diffs) * np.asarray(signs)[:, None]  # margin of the preferred one

        def objective(t: np.ndarray) -> tuple[float, np.ndarray]:
            m = d @ t
            loss = np.logaddexp(0.0, -m).sum() + 0.5 * self.bt_l2 * float(t @ t)
            grad = -(d * (1.0 / (1.0 + np.exp(m)))[:, None]).sum(0) + self.bt_l2 * t
            return float(loss), grad

        start = np.array([1.0, 0.1, 0.01, 0.01, 0.1])
        res = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=[(0, None)] * len(start))
        t = res.x
        m = d @ t
        fit = {
            "used": False,
            "n": int(len(d)),
            "theta": [float(v) for v in t],
            "accuracy": float((m > 0).mean()),
            "log_loss": float(np.logaddexp(0.0, -m).mean()),
        }
        if t[0] > 1e-3:
            self.coef_length_, self.coef_weight_ = float(t[1] / t[0]), float(t[2] / t[0])
            self.coef_class_length_ = float(t[3] / t[0])
            self.coef_empty_class_ = float(t[4] / t[0])
            fit["used"] = True
        else:
            fit["reason"] = "preferences do not depend on plausibility; config coefficients kept"
        self.pairwise_fit_ = fit

    # ------------------------------------------------------------------ queries
    def _check_fitted(self) -> None:
        if not hasattr(self, "plausibility_"):
            raise RuntimeError("PriorModel is not fitted; call fit(ratings, vocabulary, classes) first")

    def clause_log_plausibility(self) -> np.ndarray:
        """``log p`` of every clause, (K, C): log of the calibrated probability that a rater endorses it."""
        self._check_fitted()
        return np.log(self.plausibility_)

    def clause_penalties(self, vocabulary: Vocabulary, classes: Sequence[str]) -> tuple[np.ndarray, float]:
        """The convex part in objective units: ``(strength * -log p (K, C), strength * coef_weight)``."""
        self._check_fitted()
        if vocabulary.ids != self.vocabulary_.ids or list(classes) != self.classes_:
            raise InputError("the prior was fitted for another vocabulary or class list; refit it for this world")
        s = float(self.strength)
        return s * -self.clause_log_plausibility(), s * self.coef_weight_

    def structure_log_prior(self, active: np.ndarray) -> float:
        """``-strength * (coef_length |z| + coef_class_length sum_c n_c^2 + coef_empty_class E)`` for the
        clause pattern ``active`` (K, C) bool."""
        self._check_fitted()
        per_class = np.asarray(active, dtype=bool).sum(axis=0).astype(np.float64)
        cost = (
            self.coef_length_ * per_class.sum()
            + self.coef_class_length_ * float((per_class**2).sum())
            + self.coef_empty_class_ * float((per_class == 0).sum())
        )
        return -float(self.strength) * cost

    def log_prior(self, hypothesis: Hypothesis) -> float:
        """``strength * (sum w log p - coef_weight W2 - coef_length |z| - coef_class_length Q - coef_empty_class E)``
        (unnormalised; see the module docstring)."""
        self._check_fitted()
        hypothesis.validate(self.vocabulary_, self.classes_)
        plaus, size, w2, q, empty = self._hypothesis_terms(hypothesis)
        cost = self.coef_weight_ * w2 + self.coef_length_ * size + self.coef_class_length_ * q + self.coef_empty_class_ * empty
        return float(self.strength * (plaus - cost))

    def implausible_clauses(self, hypothesis: Hypothesis) -> list[tuple[Clause, float]]:
        """The clauses of ``hypothesis`` a rater is less likely than not to endorse (plausibility below one half),
        each with its plausibility, least plausible first.

        The posterior can still choose such a clause when the data outweigh the prior, typically when no plausible
        concept explains D (a labels-only run whose named concepts are all backgrounds): that is IG working as its
        objective says, and exactly what a person reading z* must be told."""
        self._check_fitted()
        hypothesis.validate(self.vocabulary_, self.classes_)
        found = [(c, float(self.plausibility_[self.vocabulary_.index(c.concept), self.classes_.index(c.cls)]))
                 for c in hypothesis.clauses]
        return sorted(((c, p) for c, p in found if p < 0.5), key=lambda cp: cp[1])

    def implausible_records(self, hypothesis: Hypothesis) -> list[dict[str, Any]]:
        """:meth:`implausible_clauses` as ``metrics.json`` records ``{concept, class, plausibility}``."""
        return [{"concept": c.concept, "class": c.cls, "plausibility": round(p, 4)} for c, p in self.implausible_clauses(hypothesis)]

    def predicted_rating(self, concept: str, cls: str) -> float:
        self._check_fitted()
        return float(self.predicted_ratings_[self.vocabulary_.index(concept), self.classes_.index(cls)])

    def table(self) -> pd.DataFrame:
        """One row per clause: concept, kind, class, n ratings, mean rating, text-model rating, predicted
        rating, plausibility, log plausibility (for the dashboard's prior page)."""
        self._check_fitted()
        rows = []
        for k, con in enumerate(self.vocabulary_.concepts):
            for c, cl in enumerate(self.classes_):
                rows.append({
                    "concept": con.id, "kind": con.kind, "class": cl, "text": clause_sentence(con.text, cl),
                    "n_ratings": int(self.n_per_clause_[k, c]),
                    "mean_rating": None if not self.rated_[k, c] else float(self.mean_ratings_[k, c]),
                    "text_rating": float(self.text_ratings_[k, c]),
                    "predicted_rating": float(self.predicted_ratings_[k, c]),
                    "plausibility": float(self.plausibility_[k, c]),
                    "log_plausibility": float(np.log(self.plausibility_[k, c])),
                })
        return pd.DataFrame(rows)

    def summary(self) -> dict[str, Any]:
        """JSON-able facts about the fitted prior (for manifests/metrics)."""
        self._check_fitted()
        return {
            "encoder": self.encoder_name_,
            "features": self.features,
            "n_ratings": self.n_ratings_,
            "n_raters": self.n_raters_,
            "unrated_clauses": int((~self.rated_).sum()),
            "loco_error": {k: v for k, v in self.loco_error_.items() if k != "per_concept"},
            "calibration": self.calibration_,
            "strength": float(self.strength),
            "coef_length": self.coef_length_,
            "coef_weight": self.coef_weight_,
            "coef_class_length": self.coef_class_length_,
            "coef_empty_class": self.coef_empty_class_,
            "pairwise_fit": self.pairwise_fit_,
        }
