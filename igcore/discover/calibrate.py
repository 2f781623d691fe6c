"""From a component's presence score to the probability that it is present: what L_M reads.

L_M (:mod:`igcore.likelihood`) reads every concept as a probability in [0, 1]. A discovered component
has no annotations to calibrate against, so "present" is defined by the scores themselves: over the
images of D and D′_train, a component's (log) presence scores form two populations — images where the
component's pattern is there and images where it is not — and **"present" means belonging to the upper
one**. Each component's scores ``t = log(score + eps)`` are fitted by a two-Gaussian mixture with one
shared variance (scikit-learn :class:`~sklearn.mixture.GaussianMixture`, ``covariance_type="tied"``);
P(present | t) is the posterior of the component with the larger mean. With a shared variance that
posterior is exactly logistic in ``t``, ``sigmoid(a t + b)`` with ``a > 0``: monotone in the score, 0.5
where the two populations are equally likely, and it never rises again in the lower tail (which a
mixture with two free variances can do). ``eps`` is a small fraction of the component's median positive
score, so an image where the component is absent (score 0) sits in the lower tail.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: eps of t = log(score + eps), as a fraction of the component's median positive score.
EPS_FRACTION = 0.05


class PresenceCalibration:
    """Estimator: per component, ``P(present | score) = sigmoid(slope * log(score + eps) + intercept)``.

    Args:
        seed: the mixture's seed.

    Attributes:
        slope_, intercept_, eps_: (K,) the logistic map of each component.
        means_: (K, 2) the two populations' means of ``log(score + eps)`` (lower, upper).
        upper_share_: (K,) the mixture weight of the upper population ("present" on the fitted images).
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, scores: np.ndarray) -> PresenceCalibration:
        """Fit on presence scores ``(N, K)`` of the fitting images. Returns self."""
        from sklearn.mixture import GaussianMixture

        scores = np.asarray(scores, dtype=np.float64)
        k = scores.shape[1]
        self.slope_, self.intercept_, self.eps_ = np.zeros(k), np.zeros(k), np.zeros(k)
        self.means_, self.upper_share_ = np.zeros((k, 2)), np.zeros(k)
        for j in range(k):
            s = scores[:, j]
            positive = s[s > 0]
            eps = EPS_FRACTION * float(np.median(positive)) if len(positive) else 1.0
            t = np.log(s + eps)[:, None]
            self.eps_[j] = eps
            if np.ptp(t) < 1e-9:  # a constant score separates nothing: never present
                self.slope_[j], self.intercept_[j] = 1.0, -1e3
                self.means_[j] = (float(t[0, 0]), float(t[0, 0]))
                continue
            gm = GaussianMixture(2, covariance_type="tied", random_state=self.seed, n_init=1).fit(t)
            lo, hi = np.argsort(gm.means_[:, 0])
            var = float(gm.covariances_.reshape(-1)[0])
            m0, m1 = float(gm.means_[lo, 0]), float(gm.means_[hi, 0])
            w0, w1 = float(gm.weights_[lo]), float(gm.weights_[hi])
            # log posterior odds of two Gaussians with one variance: linear in t
            self.slope_[j] = (m1 - m0) / var
            self.intercept_[j] = (m0**2 - m1**2) / (2 * var) + np.log(w1 / w0)
            self.means_[j] = (m0, m1)
            self.upper_share_[j] = w1
        return self

    def predict_proba(self, scores: np.ndarray) -> np.ndarray:
        """P(present) ``(N, K)`` float32 of presence scores ``(N, K)``."""
        from scipy.special import expit

        t = np.log(np.asarray(scores, dtype=np.float64) + self.eps_)
        return expit(self.slope_ * t + self.intercept_).astype(np.float32)

    def threshold(self) -> np.ndarray:
        """(K,) the score at which P(present) = 0.5 (inf for a component that is never present)."""
        with np.errstate(over="ignore"):
            return np.exp(-self.intercept_ / self.slope_) - self.eps_

    def to_dict(self) -> list[dict[str, Any]]:
        """One JSON-able record per component."""
        return [
            {"slope": float(a), "intercept": float(b), "eps": float(e), "threshold": float(t), "upper_share": float(w),
             "log_means": [float(m) for m in means]}
            for a, b, e, t, w, means in zip(self.slope_, self.intercept_, self.eps_, self.threshold(), self.upper_share_,
                                            self.means_, strict=True)
        ]
