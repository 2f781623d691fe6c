"""Deep Feature Reweighting (Kirichenko et al., 2022): the peer that re-trains ERM's last layer on group-balanced data."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from igcore.baseline import LOGITS_BATCH, ImageClassifier, head_inputs
from igcore.context import RunContext


def penultimate_features(model: ImageClassifier, images: np.ndarray, batch_size: int = LOGITS_BATCH) -> np.ndarray:
    """Inputs of the classification head (the representation DFR re-weights)."""
    return head_inputs(model.module_, images, batch_size, model.device_).cpu().numpy()


class DFR:
    """Deep Feature Reweighting (Kirichenko et al., 2022, "Last Layer Re-Training is Sufficient for
    Robustness to Spurious Correlations"), the DFR^Tr_Val variant.

    Re-trains only the last layer of a trained ERM model — an L1-regularised logistic regression on
    standardised penultimate features — on group-balanced subsets of a small held-out labelled set,
    averaging the weights over ``n_subsets`` random balanced subsets as the paper does.

    Args:
        C: inverse L1 strength (the paper tunes it on half of the balanced set; 1.0 is our fixed choice).
        n_subsets: number of balanced subsets averaged.
        seed: draws the subsets and seeds the solver (same seed, same weights).
    """

    def __init__(self, C: float = 1.0, n_subsets: int = 10, seed: int = 0):
        self.C = C
        self.n_subsets = n_subsets
        self.seed = seed

    def fit(self, features: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> DFR:
        rng = np.random.default_rng(self.seed)
        present = np.unique(groups)
        n_min = min(int((groups == g).sum()) for g in present)
        self.scaler_ = StandardScaler().fit(features)
        x = self.scaler_.transform(features)
        coefs, intercepts = [], []
        for _ in range(self.n_subsets):
            idx = np.concatenate([rng.choice(np.flatnonzero(groups == g), n_min, replace=False) for g in present])
            # liblinear shuffles its coordinates; without random_state it draws from numpy's global generator,
            # seeded from the OS at process start, so two runs of one config would differ
            clf = LogisticRegression(l1_ratio=1.0, C=self.C, solver="liblinear", random_state=self.seed).fit(x[idx], labels[idx])
            coefs.append(clf.coef_)
            intercepts.append(clf.intercept_)
        self.classes_ = clf.classes_
        self.coef_, self.intercept_ = np.mean(coefs, 0), np.mean(intercepts, 0)
        self.n_per_group_, self.groups_used_ = n_min, present.tolist()
        return self

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        z = self.scaler_.transform(features) @ self.coef_.T + self.intercept_
        if z.shape[1] == 1:  # binary: one logit
            p = 1.0 / (1.0 + np.exp(-z[:, 0]))
            return np.stack([1 - p, p], 1)
        z = z - z.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)


def stage_dfr(ctx: RunContext) -> dict[str, Any]:
    """DFR on the ERM model; the balanced set is drawn from ``val`` (D's distribution, group labels)."""
    erm, val = ctx.classifier("erm"), ctx.data.val
    dfr = DFR(C=ctx.config.dfr.C, seed=ctx.config.seed).fit(penultimate_features(erm, val.images), val.labels, val.groups)
    proba = dfr.predict_proba(penultimate_features(erm, ctx.data.test_eval.images))
    names = ctx.world.group_names()
    ctx.evaluate(
        "dfr",
        proba,
        uses=f"group labels of {dfr.n_per_group_} val images per group ({', '.join(names[g] for g in dfr.groups_used_)})",
    )
    return {"per_group": dfr.n_per_group_, "groups": len(dfr.groups_used_)}
