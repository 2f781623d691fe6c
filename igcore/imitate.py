"""Imitation: train a fast student on D′ to reproduce L_M(· | x′, z*).

IG never asks a network to extrapolate: the hypothesis z* (learned on D under the human prior) labels
the *unlabelled* D′_train through L_M, and a student with the same architecture and budget as the ERM
baseline learns those soft labels on D′'s own distribution (Barnes, 2021, "Imitative Generalisation
(AKA 'Learning the Prior')"). D′_eval labels are never touched here.

The student keeps its **last epoch** (the one-cycle schedule has annealed by then), trained on all of D′_train.
It is not chosen by accuracy on ``val``, the rule of the models trained on D's labels: ``val`` comes from D,
where the background predicts the class, so it rewards an epoch that has picked the background up from L_M's
imperfect labels — the shortcut z* was chosen to avoid (docs/DISCOVER.md measures the difference on labels-only
data, where L_M reads discovered components that carry some background). Choosing the epoch by agreement with L_M
on a held-out fifth of D′_train was tried too: it did no better on the default run and on labels-only data, cost the
student a fifth of its data, and on small sets its noise picked barely trained epochs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from igcore.baseline import ImageClassifier


def imitate(student: ImageClassifier, unlabelled: np.ndarray, soft_labels: np.ndarray) -> ImageClassifier:
    """Fit ``student`` on the unlabelled D′_train inputs (images, or their frozen features) with targets
    ``soft_labels`` (N, C) from L_M(·|x′, z*), keeping its last epoch. No label of D or D′ is passed here."""
    soft = np.asarray(soft_labels, dtype=np.float32)
    if soft.shape != (len(unlabelled), student.num_labels):
        raise ValueError(f"soft labels of shape {soft.shape} do not match {len(unlabelled)} inputs × {student.num_labels} classes")
    return student.fit(unlabelled, soft)


def pseudo_label_summary(soft_labels: np.ndarray) -> dict[str, Any]:
    """How confident the teacher is on D′ (mean max-probability, share of near-ties)."""
    top = soft_labels.max(1)
    return {"mean_confidence": float(top.mean()), "share_uncertain": float((top < 0.6).mean())}
