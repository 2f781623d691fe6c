"""Occlusion (Zeiler & Fergus, 2014, "Visualizing and Understanding Convolutional Networks").

Slide a ``window``×``window`` patch of the baseline colour over the image with step ``stride`` and
record how much the target logit drops; each pixel gets the mean drop of the patches covering it.
Model-agnostic (forward passes only) and signed; its resolution is the stride.

The window and stride scale with the image unless set: a quarter and an eighth of its side
(:data:`WINDOW_SHARE`, :data:`STRIDE_SHARE`), the 16/8 px of a 64 px image. Every map then occludes the
same number of copies at any resolution, the patch covers the same share of the object, and the cost
of a map grows with the model's cost per pass only, not with the square of the image side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from igcore.microscope._baselines import BASELINES, BaselineName
from igcore.microscope.registry import register_attribution, same_pixels
from igcore.settings import Settings

if TYPE_CHECKING:
    import torch
    from torch import nn


#: Window and stride as shares of the image side when not set.
WINDOW_SHARE, STRIDE_SHARE = 1 / 4, 1 / 8
#: Occluded images per forward pass: 128 at the reference side (as :data:`igcore.baseline.LOGITS_BATCH`, which this
#: module does not import: the config reads it without torch), the same pixels on larger images.
FORWARD_BATCH = same_pixels(forward_batch=128)


class OcclusionParams(Settings):
    window: int | None = Field(None, ge=1, description="side of the square occluding patch in pixels; null = a quarter of the image side")
    stride: int | None = Field(None, ge=1, description="step between patches in pixels; null = an eighth of the image side")
    baseline: BaselineName = Field("gray", description="colour of the patch: black | gray | white")
    forward_batch: int | None = Field(
        None, ge=1, description="occluded images evaluated per forward pass (all images of the batch together); null = 128 at 64 px, the same pixels on larger images"
    )


def geometry(side: int) -> dict[str, int]:
    """Window and stride (pixels) for ``side`` px images: :data:`WINDOW_SHARE` and :data:`STRIDE_SHARE` of the side."""
    return {"window": max(1, round(side * WINDOW_SHARE)), "stride": max(1, round(side * STRIDE_SHARE))}


def scaled(side: int) -> dict[str, int]:
    """The values of the parameters left null on ``side`` px images."""
    return {**geometry(side), **FORWARD_BATCH(side)}


def occluded_copies(params: OcclusionParams, side: int) -> int:
    """Occluded copies of a ``side`` px image, one forward pass each: patch positions per axis, squared."""
    window, stride = params.window or geometry(side)["window"], params.stride or geometry(side)["stride"]
    return max(1, (side - window) // stride + 1) ** 2


@register_attribution(
    "occlusion",
    params=OcclusionParams,
    description="Occlusion (Zeiler & Fergus, 2014): logit drop when a sliding patch is greyed out",
    cost=occluded_copies,
    backward=False,
    scaled=scaled,
)
def occlusion(
    module: nn.Module,
    inputs: torch.Tensor,
    target: torch.Tensor,
    *,
    window: int | None,
    stride: int | None,
    baseline: str,
    forward_batch: int | None,
) -> torch.Tensor:
    """Occlusion maps (all channels occluded together, so channel sum = 3 × the per-pixel drop).

    Args:
        module: images in [0, 1] (N, 3, H, W) → logits.
        inputs: float images (N, 3, H, W).
        target: class per image (N,).
        window, stride, baseline, forward_batch: :class:`OcclusionParams` (null: :func:`scaled` of the image side).

    Returns:
        (N, H, W) signed maps (positive: occluding the region lowers the target logit).
    """
    from captum.attr import Occlusion

    channels, side = inputs.shape[1], scaled(int(inputs.shape[-1]))
    window, stride, forward_batch = window or side["window"], stride or side["stride"], forward_batch or side["forward_batch"]
    attr = Occlusion(module).attribute(
        inputs,
        sliding_window_shapes=(channels, window, window),
        strides=(channels, stride, stride),
        baselines=BASELINES[baseline],
        target=target,
        perturbations_per_eval=max(1, forward_batch // max(1, len(inputs))),
    )
    return attr.sum(1)
