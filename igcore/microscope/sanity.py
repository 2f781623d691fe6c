"""Sanity checks for saliency maps (Adebayo et al., 2018, "Sanity Checks for Saliency Maps", NeurIPS).

Cascading model-parameter randomisation: re-initialise the model's blocks one at a time from the
logits down to the stem (ResNet: classifier, stage 4, …, stage 1, stem; ViT: classifier, final
layernorm, encoder layers top-down, embeddings), keeping earlier randomisations, and after each step
recompute every method's maps for the same images and the same target classes. An explanation that
reflects what the model learned must change as the model is destroyed; one that stays the same is
explaining the input (an edge detector), not the model.

Similarity is the Spearman rank correlation between the trained and the randomised map of each image,
on absolute values (Adebayo et al. report both; the absolute version is the stricter one: a sign flip
does not count as a change), averaged over images. A method whose mean correlation at full
randomisation is above ``threshold`` (default 0.5) is flagged ``trustworthy: false``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from igcore.architectures import architecture_of, vit_layers
from igcore.microscope.attribution import compute_maps
from igcore.runtime import global_rng

#: Default Spearman threshold at full randomisation above which a method is not trustworthy.
DEFAULT_THRESHOLD = 0.5


def cascade_blocks(module: nn.Module) -> list[tuple[str, list[nn.Module]]]:
    """(name, modules) to re-initialise, from the logits down to the stem."""
    model = module.model
    if architecture_of(module) == "resnet":
        stages = list(model.resnet.encoder.stages)
        return (
            [("classifier", [model.classifier])]
            + [(f"stage{i + 1}", [stages[i]]) for i in reversed(range(len(stages)))]
            + [("stem", [model.resnet.embedder])]
        )
    layers = list(vit_layers(module))
    return (
        [("classifier", [model.classifier]), ("layernorm", [model.vit.layernorm])]
        + [(f"layer{i + 1}", [layers[i]]) for i in reversed(range(len(layers)))]
        + [("embeddings", [model.vit.embeddings])]
    )


@torch.no_grad()
def reinitialise_(module: nn.Module, blocks: list[nn.Module], seed: int) -> None:
    """Re-draw the parameters (and reset the statistics) of ``blocks`` from the model's own init."""
    model = module.model
    with global_rng(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for block in blocks:
            for sub in block.modules():
                if hasattr(sub, "reset_parameters"):
                    sub.reset_parameters()
                if hasattr(model, "_init_weights"):
                    model._init_weights(sub)


def centred_ranks(maps: np.ndarray, absolute: bool = True) -> np.ndarray:
    """Each map's ranks (of its absolute values when ``absolute``) minus their mean: (N, ...) -> (N, pixels).

    Maps are ranked one by one (rows of ``rankdata(axis=1)``), so ranking many at once changes nothing."""
    from scipy.stats import rankdata

    maps = np.asarray(maps, dtype=np.float64).reshape(len(maps), -1)
    ranks = rankdata(np.abs(maps) if absolute else maps, axis=1)
    ranks -= ranks.mean(1, keepdims=True)
    return ranks


def ranks_correlation(ra: np.ndarray, rb: np.ndarray) -> np.ndarray:
    """Pearson correlation of rows of :func:`centred_ranks` (Spearman of the maps); NaN where a map is constant."""
    denom = np.sqrt((ra**2).sum(1) * (rb**2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (ra * rb).sum(1) / np.where(denom > 0, denom, 1.0), np.nan)


def rank_correlation(a: np.ndarray, b: np.ndarray, absolute: bool = True) -> np.ndarray:
    """Spearman correlation between map ``a[i]`` and ``b[i]`` per image (NaN where a map is constant)."""
    return ranks_correlation(centred_ranks(a, absolute), centred_ranks(b, absolute))


def verdict(correlations: list[float | None], threshold: float = DEFAULT_THRESHOLD) -> bool:
    """Trustworthy when the correlation at full randomisation (last entry) is at most ``threshold``."""
    final = correlations[-1] if correlations else None
    return bool(final is not None and np.isfinite(final) and final <= threshold)


def _mean(values: np.ndarray) -> float | None:
    """Mean over images with a defined correlation; None when there is none (JSON-friendly)."""
    finite = np.asarray(values)[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else None


def sanity_check(
    module: nn.Module,
    images: np.ndarray,
    targets: np.ndarray,
    methods: Mapping[str, Mapping[str, Any]],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    seed: int = 0,
    trained_maps: Mapping[str, np.ndarray] | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray]]:
    """Cascading randomisation test of each method on ``module`` (which is not modified).

    Args:
        module: a trained :class:`~igcore.baseline.PixelClassifier`.
        images: uint8 (N, H, W, 3), a small sample.
        targets: class per image (N,), kept fixed through the cascade (the trained model's predictions).
        methods: {method name: parameters} of applicable registered methods.
        threshold: Spearman (absolute maps) at full randomisation above which a method is flagged.
        batch_size, device, seed: as in :func:`~igcore.microscope.attribution.compute_maps`.
        trained_maps: maps of the trained model for these images, if already computed.

    Returns:
        ``(results, maps)``: results[method] = ``{"stages": [...], "spearman_abs": [...],
        "spearman": [...], "final_spearman_abs": x, "threshold": t, "trustworthy": bool | None}`` (one entry
        per cascade step, step k = blocks 1..k randomised; a correlation is None where every map of the
        step is constant, and ``trustworthy`` is None when the final one is); maps[method] = float32 (S + 1, N, H, W), the
        trained maps followed by each step's maps (for the dashboard).
    """
    blocks = cascade_blocks(module)
    trained = {
        m: (np.asarray(trained_maps[m]) if trained_maps and m in trained_maps else
            compute_maps(module, images, targets, m, p, batch_size=batch_size, device=device, seed=seed))
        for m, p in methods.items()
    }
    randomised = copy.deepcopy(module).eval()
    series: dict[str, list[np.ndarray]] = {m: [trained[m]] for m in methods}
    copy_blocks = cascade_blocks(randomised)  # the same blocks, in the copy
    for step in range(len(blocks)):
        reinitialise_(randomised, copy_blocks[step][1], seed=seed * 1000 + step + 1)
        for m, p in methods.items():
            series[m].append(compute_maps(randomised, images, targets, m, p, batch_size=batch_size, device=device, seed=seed))
    stage_names = [n for n, _ in blocks]
    results: dict[str, dict[str, Any]] = {}
    for m in methods:
        # the trained maps are ranked once, every step's maps in one call (identical to a pair of maps at a time)
        corr: dict[bool, list[float | None]] = {}
        for absolute in (True, False):
            steps = series[m][1:]
            trained_ranks = centred_ranks(trained[m], absolute)
            ranked = centred_ranks(np.concatenate(steps), absolute) if steps else trained_ranks[:0]
            corr[absolute] = [_mean(ranks_correlation(trained_ranks, ranked[i * len(trained_ranks) : (i + 1) * len(trained_ranks)]))
                              for i in range(len(steps))]
        abs_corr, raw_corr = corr[True], corr[False]
        final = abs_corr[-1] if abs_corr else None
        results[m] = {
            "stages": stage_names,
            "spearman_abs": abs_corr,
            "spearman": raw_corr,
            "final_spearman_abs": final,
            "threshold": threshold,
            # None: undecidable (the trained or randomised maps are constant, e.g. an all-zero Grad-CAM)
            "trustworthy": None if final is None else verdict(abs_corr, threshold),
        }
    return results, {m: np.stack(series[m]).astype(np.float32) for m in methods}
