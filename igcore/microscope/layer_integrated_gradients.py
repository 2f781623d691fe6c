"""Layer Integrated Gradients on the ViT patch embeddings (Sundararajan et al., 2017, applied to a layer).

Integrated gradients where the path runs between the patch embeddings of a baseline image and of the
input: one attribution per patch token (summed over the hidden dimension), placed on the patch grid and
upsampled to the image size. This is the token-level attribution that suits a ViT (its pixels enter
only through the patch projection). ViT only.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from igcore.microscope._baselines import baseline_like
from igcore.microscope.integrated_gradients import PATH_BATCH
from igcore.microscope.registry import patch_embedding, register_attribution


@register_attribution(
    "layer_integrated_gradients",
    architectures=("vit",),
    defaults={"n_steps": 32, "internal_batch_size": None, "baseline": "black", "interpolate_mode": "nearest"},
    description="Layer Integrated Gradients on the ViT patch embeddings, one value per patch",
    passes=lambda params, _side: (0.0, float(params["n_steps"])),
    scaled=PATH_BATCH,
)
def layer_integrated_gradients(
    module: nn.Module,
    inputs: torch.Tensor,
    target: torch.Tensor,
    *,
    n_steps: int = 32,
    internal_batch_size: int | None = None,
    baseline: str = "black",
    interpolate_mode: str = "nearest",
) -> torch.Tensor:
    """Patch-level integrated gradients at image resolution.

    Args:
        module: a ViT :class:`~igcore.baseline.PixelClassifier`.
        inputs: float images (N, 3, H, W).
        target: class per image (N,).
        n_steps: points of the path integral.
        internal_batch_size: images × steps per forward/backward pass (None: ``PATH_BATCH`` of the image side).
        baseline: reference image (``black``, ``gray`` or ``white``).
        interpolate_mode: upsampling of the patch grid (``nearest`` keeps patch borders visible).

    Returns:
        (N, H, W) signed maps.
    """
    from captum.attr import LayerAttribution, LayerIntegratedGradients

    attr = LayerIntegratedGradients(module, patch_embedding(module)).attribute(
        inputs,
        baselines=baseline_like(baseline, inputs),
        target=target,
        n_steps=n_steps,
        internal_batch_size=internal_batch_size or PATH_BATCH(int(inputs.shape[-1]))["internal_batch_size"],
    )  # (N, n_patches, hidden)
    per_patch = attr.sum(-1)
    side = math.isqrt(per_patch.shape[1])
    grid = per_patch.reshape(len(inputs), 1, side, side)
    return LayerAttribution.interpolate(grid, tuple(inputs.shape[-2:]), interpolate_mode).squeeze(1)
