"""Group-robustness metrics as the spurious-correlation literature reports them.

Average accuracy, accuracy per group (class × background), worst-group accuracy, and the average
weighted by the *training* groups' proportions — the "adjusted average accuracy" of Waterbirds
(Sagawa et al., 2020, "Distributionally Robust Neural Networks for Group Shifts"), which estimates the
accuracy one would see on test data distributed like the training data.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def group_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    groups: np.ndarray,
    group_names: list[str],
    train_groups: np.ndarray | None = None,
) -> dict[str, Any]:
    """Metrics of predictions ``y_pred`` (labels, or (N, C) probabilities) on one split.

    Args:
        y_true: int labels (N,).
        y_pred: int labels (N,) or class probabilities (N, C).
        groups: group ids (N,) indexing ``group_names``.
        group_names: names of all groups; groups absent from ``groups`` are left out of the result.
        train_groups: group ids of the training set, for the training-proportion-weighted average.

    Returns:
        ``{"avg_acc", "worst_group_acc", "worst_group", "group_acc": {name: acc}, "group_n": {name: n},
        "train_weighted_acc"}`` with accuracies as fractions in [0, 1].
    """
    y_pred = np.asarray(y_pred)
    if y_pred.ndim == 2:
        y_pred = y_pred.argmax(1)
    correct = np.asarray(y_true) == y_pred
    group_acc: dict[str, float] = {}
    group_n: dict[str, int] = {}
    for g, name in enumerate(group_names):
        in_group = groups == g
        if in_group.any():
            group_acc[name] = float(correct[in_group].mean())
            group_n[name] = int(in_group.sum())
    worst = min(group_acc, key=group_acc.__getitem__)
    result: dict[str, Any] = {
        "avg_acc": float(correct.mean()),
        "worst_group_acc": group_acc[worst],
        "worst_group": worst,
        "group_acc": group_acc,
        "group_n": group_n,
    }
    if train_groups is not None:
        counts = np.bincount(train_groups, minlength=len(group_names)).astype(float)
        weights = {name: counts[g] for g, name in enumerate(group_names) if name in group_acc}
        total = sum(weights.values())
        result["train_weighted_acc"] = (
            float(sum(group_acc[n] * w for n, w in weights.items()) / total) if total else None
        )
    return result
