"""Occlusion (Zeiler & Fergus, 2014, "Visualizing and Understanding Convolutional Networks").

Slide a ``window``×``window`` patch of the baseline colour over the image with step ``stride`` and
record how much the target logit drops; each pixel gets the mean drop of the patches covering it.
Model-agnostic (forward passes only) and signed; its resolution is the stride.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from igcore.microscope._baselines import BASELINES, BaselineName
from igcore.microscope.registry import register_attribution
from igcore.settings import Settings

if TYPE_CHECKING:
    import torch
    from torch import nn


class OcclusionParams(Settings):
    window: int = Field(16, ge=1, description="side of the square occluding patch in pixels")
    stride: int = Field(8, ge=1, description="step between patches in pixels")
    baseline: BaselineName = Field("gray", description="colour of the patch: black | gray | white")
    forward_batch: int = Field(256, ge=1, description="occluded images evaluated per forward pass (all images of the batch together)")


def occluded_copies(params: OcclusionParams, side: int) -> int:
    """Occluded copies of a ``side`` px image, one forward pass each: patch positions per axis, squared."""
    return max(1, (side - params.window) // params.stride + 1) ** 2


@register_attribution(
    "occlusion",
    params=OcclusionParams,
    description="Occlusion (Zeiler & Fergus, 2014): logit drop when a sliding patch is greyed out",
    cost=occluded_copies,
)
def occlusion(
    module: nn.Module, inputs: torch.Tensor, target: torch.Tensor, *, window: int, stride: int, baseline: str, forward_batch: int
) -> torch.Tensor:
    """Occlusion maps (all channels occluded together, so channel sum = 3 × the per-pixel drop).

    Args:
        module: images in [0, 1] (N, 3, H, W) → logits.
        inputs: float images (N, 3, H, W).
        target: class per image (N,).
        window, stride, baseline, forward_batch: :class:`OcclusionParams`.

    Returns:
        (N, H, W) signed maps (positive: occluding the region lowers the target logit).
    """
    from captum.attr import Occlusion

    channels = inputs.shape[1]
    attr = Occlusion(module).attribute(
        inputs,
        sliding_window_shapes=(channels, window, window),
        strides=(channels, stride, stride),
        baselines=BASELINES[baseline],
        target=target,
        perturbations_per_eval=max(1, forward_batch // max(1, len(inputs))),
    )
    return attr.sum(1)
