"""Imitation: train a fast student on D′ to reproduce L_M(· | x′, z*).

IG never asks a network to extrapolate: the hypothesis z* (learned on D under the human prior) labels
the *unlabelled* D′_train through L_M, and a student with the same architecture and budget as the ERM
baseline learns those soft labels on D′'s own distribution (Barnes, 2021, "Imitative Generalisation
(AKA 'Learning the Prior')"). D′_eval labels are never touched here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from igcore.baseline import ImageClassifier


def imitate(
    student: ImageClassifier,
    unlabelled: np.ndarray,
    soft_labels: np.ndarray,
    val: tuple[np.ndarray, np.ndarray] | None = None,
) -> ImageClassifier:
    """Fit ``student`` on the unlabelled D′_train inputs (images, or their frozen features) with targets
    ``soft_labels`` (N, C) from L_M(·|x′, z*).

    No label of D′ is passed here. ``val`` (labelled D-distribution data) selects the epoch, exactly as for ERM.
    """
    soft = np.asarray(soft_labels, dtype=np.float32)
    if soft.shape != (len(unlabelled), student.num_labels):
        raise ValueError(f"soft labels of shape {soft.shape} do not match {len(unlabelled)} inputs × {student.num_labels} classes")
    return student.fit(unlabelled, soft, val=val)


def pseudo_label_summary(soft_labels: np.ndarray) -> dict[str, Any]:
    """How confident the teacher is on D′ (mean max-probability, share of near-ties)."""
    top = soft_labels.max(1)
    return {"mean_confidence": float(top.mean()), "share_uncertain": float((top < 0.6).mean())}
