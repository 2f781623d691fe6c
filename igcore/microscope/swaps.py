"""Background swaps: the same animal on every other background (a counterfactual test of the shortcut).

Each test_eval animal is re-rendered by the world (:meth:`World.render_on_background`, which keeps the
animal's pixels and changes only the background) on every background other than its own. A model
that reads the animal keeps its prediction; a model that reads the background flips. Reported per
model: the flip rate (prediction on the swapped image differs from the prediction on the original)
and the accuracy on the swapped images (the label does not change with the background), overall and
per (original background → new background).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from igcore.worlds.base import Split, World

if TYPE_CHECKING:
    from igcore.microscope.counterfactuals import Counterfactuals


@dataclass
class SwapResult:
    """Outcome of :func:`background_swaps`.

    Attributes:
        metrics: {model: {"swap_flip_rate", "swap_acc", "orig_acc", "n_swaps"}}.
        table: one row per (model, from_background, to_background) with flip rate, accuracy and n.
        sample: tensors for the dashboard: ``images`` uint8 (M, H, W, 3) swapped images, ``index``
            (test_eval row), ``label``, ``from_background``, ``to_background``, ``pred_<model>`` on the
            swapped image and ``orig_pred_<model>`` on the original.
    """

    metrics: dict[str, dict[str, Any]]
    table: pd.DataFrame
    sample: dict[str, np.ndarray] = field(default_factory=dict)


def sample_per_group(groups: np.ndarray, per_group: int, seed: int = 0) -> np.ndarray:
    """Sorted indices: up to ``per_group`` rows of every group present in ``groups`` (seeded)."""
    rng = np.random.default_rng(seed)
    picks = []
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        picks.append(rng.choice(rows, size=min(per_group, len(rows)), replace=False))
    return np.sort(np.concatenate(picks)) if picks else np.zeros(0, np.int64)


def background_swaps(
    world: World,
    split: Split,
    predictors: Mapping[str, Any],
    *,
    original_predictions: Mapping[str, np.ndarray] | None = None,
    indices: np.ndarray | None = None,
    keep_per_group: int = 1,
    chunk: int = 512,
    seed: int = 0,
    rendered: Counterfactuals | None = None,
    swapped_predictions: Mapping[str, np.ndarray] | None = None,
) -> SwapResult:
    """Flip rate and accuracy of each model when every animal is moved to every other background.

    Args:
        world: the world that rendered ``split`` (it re-renders the counterfactuals).
        split: test_eval (or any split with latents).
        predictors: {model name: object with ``predict(images) -> labels``}.
        original_predictions: {model: predictions on ``split``} if already known (else computed).
        indices: rows of ``split`` to swap (default: all).
        keep_per_group: swapped images kept per group (on each other background) for the dashboard.
        chunk: images rendered at once (bounds memory).
        seed: sampling of the kept images.
        rendered: the swapped images when the caller already drew them
            (:func:`igcore.microscope.counterfactuals.rerendered` of ``indices``), with ``swapped_predictions``
            ({model: predictions on ``rendered.images``}); then nothing is drawn or predicted again.

    Returns:
        A :class:`SwapResult`.
    """
    n_bg = len(world.backgrounds)
    idx = np.arange(len(split)) if indices is None else np.asarray(indices, dtype=np.int64)
    keep = set(sample_per_group(split.groups[idx], keep_per_group, seed).tolist())  # positions in idx
    orig = {
        m: (np.asarray(original_predictions[m])[idx] if original_predictions and m in original_predictions
            else np.asarray(p.predict(split.images[idx])))
        for m, p in predictors.items()
    }
    labels, from_bg = split.labels[idx], split.background[idx]
    pred_swap: dict[str, list[np.ndarray]] = {m: [] for m in predictors}
    to_bgs, froms, rows, kept_images, kept_pos = [], [], [], [], []
    if rendered is not None and (swapped_predictions is None or not np.array_equal(rendered.index, np.tile(idx, n_bg - 1))):
        raise ValueError("background_swaps was given swapped images of other rows, or without their predictions")
    for offset in range(1, n_bg):
        for start in range(0, len(idx), chunk):
            pos = np.arange(start, min(start + chunk, len(idx)))
            old_bg = split.background[idx[pos]]
            new_bg = (old_bg + offset) % n_bg
            if rendered is None:
                images = world.render_on_background(split.subset(idx[pos]), new_bg).images
                for m, p in predictors.items():
                    pred_swap[m].append(np.asarray(p.predict(images)))
            else:  # rendered is offset-major over idx
                at = (offset - 1) * len(idx) + pos
                images = rendered.images[at]
                for m in predictors:
                    pred_swap[m].append(np.asarray(swapped_predictions[m])[at])  # type: ignore[index]
            to_bgs.append(new_bg)
            froms.append(old_bg)
            rows.append(pos)
            mine = np.array([i for i, q in enumerate(pos) if int(q) in keep], dtype=np.int64)
            if len(mine):
                kept_images.append(images[mine])
                kept_pos.append(np.stack([pos[mine], new_bg[mine]], 1))
    to_bg, from_all, pos_all = np.concatenate(to_bgs), np.concatenate(froms), np.concatenate(rows)
    metrics: dict[str, dict[str, Any]] = {}
    records = []
    sample: dict[str, np.ndarray] = {}
    kp = np.concatenate(kept_pos) if kept_pos else np.zeros((0, 2), np.int64)
    if kept_images:
        sample = {
            "images": np.concatenate(kept_images),
            "index": idx[kp[:, 0]],
            "label": labels[kp[:, 0]],
            "from_background": from_bg[kp[:, 0]],
            "to_background": kp[:, 1].astype(np.int64),
        }
    for m in predictors:
        ps = np.concatenate(pred_swap[m])
        flips = ps != orig[m][pos_all]
        correct = ps == labels[pos_all]
        metrics[m] = {
            "swap_flip_rate": float(flips.mean()) if len(flips) else float("nan"),
            "swap_acc": float(correct.mean()) if len(correct) else float("nan"),
            "orig_acc": float((orig[m] == labels).mean()) if len(labels) else float("nan"),
            "n_swaps": int(len(flips)),
        }
        for a in range(n_bg):
            for b in range(n_bg):
                sel = (from_all == a) & (to_bg == b)
                if sel.any():
                    records.append(
                        {
                            "model": m,
                            "from_background": world.backgrounds[a],
                            "to_background": world.backgrounds[b],
                            "flip_rate": float(flips[sel].mean()),
                            "acc": float(correct[sel].mean()),
                            "n": int(sel.sum()),
                        }
                    )
        if len(kp):
            lookup = {(int(p), int(b)): i for i, (p, b) in enumerate(zip(pos_all, to_bg, strict=True))}
            at = np.array([lookup[(int(p), int(b))] for p, b in kp])
            sample[f"pred_{m}"] = ps[at].astype(np.int64)
            sample[f"orig_pred_{m}"] = orig[m][kp[:, 0]].astype(np.int64)
    return SwapResult(metrics, pd.DataFrame.from_records(records), sample)
