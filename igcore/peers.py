"""Peer methods against spurious correlations, run on the same data, architecture and budget as ERM.

Every method trains :class:`~igcore.baseline.ImageClassifier` with the run's ``baseline`` budget
(architecture, epochs, batch size, learning rate) and the same model-selection rule as ERM: the epoch
with the best *average* accuracy on ``val`` (D's distribution; never D′). Who uses which labels:

==========  ==========================================================================
method      extra information beyond D's class labels
==========  ==========================================================================
groupdro    D's group labels (class × background) during training
jtt         none (its error set comes from an ERM identification model)
dfr         group labels of a small group-balanced subset of ``val`` (D's distribution)
==========  ==========================================================================

Enable them with ``--set peers='["groupdro","jtt","dfr"]'`` (the benchmark does).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from igcore.baseline import ImageClassifier, to_pixels

PEERS = ("groupdro", "jtt", "dfr")


class GroupDROClassifier(ImageClassifier):
    """Online Group DRO (Sagawa et al., 2020, "Distributionally Robust Neural Networks for Group Shifts").

    Minimises the worst expected loss over groups: keeps adversarial group weights ``q`` updated by
    exponentiated gradient ascent ``q_g ← q_g · exp(η · loss_g)`` and optimises ``Σ_g q_g loss_g``.
    Group adjustments and strong weight decay of the paper are left at 0 / the run's weight decay so
    the budget matches ERM's; ``eta`` is the paper's step size 0.01.

    Args:
        groups: group id of every training example (required in ``fit`` through ``set_groups``).
        eta: step size of the group-weight update.
    """

    def __init__(self, *args: Any, eta: float = 0.01, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.eta = eta

    def set_groups(self, groups: np.ndarray) -> GroupDROClassifier:
        self._train_groups = np.asarray(groups)
        return self

    def batch_loss(self, logits: torch.Tensor, targets: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        if not hasattr(self, "q_"):
            n_groups = int(self._train_groups.max()) + 1
            self.q_ = torch.full((n_groups,), 1.0 / n_groups, device=logits.device)
            self.groups_t_ = torch.as_tensor(self._train_groups, device=logits.device)
        losses = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
        g = self.groups_t_[index]
        n_groups = len(self.q_)
        counts = torch.bincount(g, minlength=n_groups).float()
        group_loss = torch.zeros(n_groups, device=logits.device).index_add_(0, g, losses) / counts.clamp(min=1)
        with torch.no_grad():
            self.q_ *= torch.exp(self.eta * group_loss.detach() * (counts > 0))
            self.q_ /= self.q_.sum()
        return (self.q_ * group_loss).sum()


def penultimate_features(model: ImageClassifier, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Inputs of the classification head (the representation DFR re-weights)."""
    head = model.module_.model.classifier
    captured: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda _m, inp, _out: captured.append(inp[0].flatten(1).detach().cpu()))
    try:
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                model.module_(to_pixels(images[start : start + batch_size], model.device_))
    finally:
        hook.remove()
    return torch.cat(captured).numpy()


class DFR:
    """Deep Feature Reweighting (Kirichenko et al., 2022, "Last Layer Re-Training is Sufficient for
    Robustness to Spurious Correlations"), the DFR^Tr_Val variant.

    Re-trains only the last layer of a trained ERM model — an L1-regularised logistic regression on
    standardised penultimate features — on group-balanced subsets of a small held-out labelled set,
    averaging the weights over ``n_subsets`` random balanced subsets as the paper does.

    Args:
        C: inverse L1 strength (the paper tunes it on half of the balanced set; 1.0 is our fixed choice).
        n_subsets: number of balanced subsets averaged.
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
            clf = LogisticRegression(l1_ratio=1.0, C=self.C, solver="liblinear").fit(x[idx], labels[idx])
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
