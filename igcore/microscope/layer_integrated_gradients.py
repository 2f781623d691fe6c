"""Layer Integrated Gradients on the ViT patch embeddings (Sundararajan et al., 2017, applied to a layer).

Integrated gradients where the path runs between the patch embeddings of a baseline image and of the
input: one attribution per patch token (summed over the hidden dimension), placed on the patch grid and
upsampled to the image size. This is the token-level attribution that suits a ViT (its pixels enter
only through the patch projection). ViT only.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pydantic import Field

from igcore.architectures import patch_embedding
from igcore.microscope._baselines import baseline_like
from igcore.microscope.integrated_gradients import IntegratedGradientsParams
from igcore.microscope.registry import InterpolateMode, register_attribution

if TYPE_CHECKING:
    import torch
    from torch import nn


class LayerIntegratedGradientsParams(IntegratedGradientsParams):
    interpolate_mode: InterpolateMode = Field("nearest", description="upsampling of the patch grid (nearest keeps patch borders visible)")


@register_attribution(
    "layer_integrated_gradients",
    params=LayerIntegratedGradientsParams,
    architectures=("vit",),
    description="Layer Integrated Gradients on the ViT patch embeddings, one value per patch",
    cost=lambda p, side: p.n_steps,
)
def layer_integrated_gradients(
    module: nn.Module,
    inputs: torch.Tensor,
    target: torch.Tensor,
    *,
    n_steps: int,
    internal_batch_size: int,
    baseline: str,
    interpolate_mode: str,
) -> torch.Tensor:
    """Patch-level integrated gradients at image resolution.

    Args:
        module: a ViT :class:`~igcore.baseline.PixelClassifier`.
        inputs: float images (N, 3, H, W).
        target: class per image (N,).
        n_steps, internal_batch_size, baseline, interpolate_mode: :class:`LayerIntegratedGradientsParams`.

    Returns:
        (N, H, W) signed maps.
    """
    from captum.attr import LayerAttribution, LayerIntegratedGradients

    attr = LayerIntegratedGradients(module, patch_embedding(module)).attribute(
        inputs,
        baselines=baseline_like(baseline, inputs),
        target=target,
        n_steps=n_steps,
        internal_batch_size=max(internal_batch_size, 1),
    )  # (N, n_patches, hidden)
    per_patch = attr.sum(-1)
    side = math.isqrt(per_patch.shape[1])
    grid = per_patch.reshape(len(inputs), 1, side, side)
    return LayerAttribution.interpolate(grid, tuple(inputs.shape[-2:]), interpolate_mode).squeeze(1)
