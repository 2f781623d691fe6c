"""Online Group DRO (Sagawa et al., 2020): the peer that uses D's group labels during training."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from igcore.baseline import ImageClassifier
from igcore.context import RunContext


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


def stage_groupdro(ctx: RunContext) -> dict[str, Any]:
    """Online Group DRO on D with its group labels."""
    train, val = ctx.data.train, ctx.data.val
    base = ctx.new_classifier("groupdro")
    model = GroupDROClassifier(**vars(base)).set_groups(train.groups)
    model.fit(train.images, train.labels, val=(val.images, val.labels))
    ctx.add_classifier("groupdro", model)
    ctx.evaluate("groupdro", model.predict_proba(ctx.data.test_eval.images), uses="D group labels")
    return {"best_epoch": model.best_epoch_}
