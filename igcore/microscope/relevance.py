"""Relevance mass accuracy (Arras, Osman & Samek, 2022, "CLEVR-XAI: A benchmark dataset for the ground
truth evaluation of neural network explanations", Information Fusion 81).

For one image with attribution map ``R`` and ground-truth mask ``GT`` (here: the animal), the relevance
mass accuracy is the share of the *positive* relevance that falls inside the mask,
``Σ_{p∈GT} max(R_p, 0) / Σ_p max(R_p, 0)``. A map that ignores the image scores the mask's area share
(reported next to it, so a uniform map is recognisable); 1 means all positive evidence is on the animal,
0 means it is all on the background.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def relevance_mass(maps: np.ndarray, masks: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Share of positive attribution inside the mask, per image.

    Args:
        maps: (N, H, W) attributions.
        masks: (N, H, W) bool (or 0/1), True on the object.
        eps: images with no positive attribution at all get NaN (not 0: there is no evidence either way).

    Returns:
        float64 (N,) in [0, 1] (NaN where a map has no positive mass).
    """
    pos = np.clip(np.asarray(maps, dtype=np.float64), 0.0, None)
    inside = (pos * np.asarray(masks, dtype=bool)).sum(axis=(1, 2))
    total = pos.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > eps, inside / np.maximum(total, eps), np.nan)


def mask_area_share(masks: np.ndarray) -> np.ndarray:
    """Fraction of the image covered by the mask, per image: a uniform map's relevance mass."""
    return np.asarray(masks, dtype=bool).mean(axis=(1, 2))


def relevance_rows(
    model: str,
    method: str,
    indices: np.ndarray,
    maps: np.ndarray,
    masks: np.ndarray,
    groups: np.ndarray,
    group_names: Sequence[str],
    targets: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per-image table: model, method, index, group, target, relevance_mass, mask_area."""
    return pd.DataFrame(
        {
            "model": model,
            "method": method,
            "index": np.asarray(indices, dtype=np.int64),
            "group": [group_names[g] for g in groups],
            "target": -1 if targets is None else np.asarray(targets, dtype=np.int64),
            "relevance_mass": relevance_mass(maps, masks),
            "mask_area": mask_area_share(masks),
        }
    )


def summarise_relevance(per_image: pd.DataFrame) -> pd.DataFrame:
    """Mean relevance mass and mask area per (model, method, group), plus an ``all`` row per (model, method)."""
    if per_image.empty:
        return pd.DataFrame(columns=["model", "method", "group", "relevance_mass", "mask_area", "n"])
    keys = ["model", "method", "group"]
    by_group = per_image.groupby(keys, sort=False).agg(
        relevance_mass=("relevance_mass", "mean"), mask_area=("mask_area", "mean"), n=("index", "size")
    )
    overall = per_image.groupby(["model", "method"], sort=False).agg(
        relevance_mass=("relevance_mass", "mean"), mask_area=("mask_area", "mean"), n=("index", "size")
    )
    overall["group"] = "all"
    overall = overall.reset_index().set_index(keys)
    return pd.concat([by_group, overall]).reset_index()
