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

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from igcore.microscope._baselines import BASELINES
from igcore.microscope.registry import register_attribution, same_pixels

#: Window and stride as shares of the image side when not set.
WINDOW_SHARE, STRIDE_SHARE = 1 / 4, 1 / 8


#: Occluded images per forward pass: 256 at the reference side, the same pixels on larger images.
FORWARD_BATCH = same_pixels(forward_batch=256)


def geometry(side: int) -> dict[str, int]:
    """Window and stride (pixels) for ``side``-pixel images: :data:`WINDOW_SHARE` and :data:`STRIDE_SHARE` of the side."""
    return {"window": max(1, round(side * WINDOW_SHARE)), "stride": max(1, round(side * STRIDE_SHARE))}


def _scaled(side: int) -> dict[str, int]:
    return {**geometry(side), **FORWARD_BATCH(side)}


def copies(side: int, window: int, stride: int) -> int:
    """Occluded copies of one ``side``-pixel image (forward passes per map, besides the unoccluded one)."""
    return max(1, (side - window) // stride + 1) ** 2


def _passes(params: Mapping[str, Any], side: int) -> tuple[float, float]:
    window, stride = params.get("window"), params.get("stride")
    scaled = geometry(side)
    return float(copies(side, window or scaled["window"], stride or scaled["stride"]) + 1), 0.0


@register_attribution(
    "occlusion",
    defaults={"window": None, "stride": None, "baseline": "gray", "forward_batch": None},
    description="Occlusion (Zeiler & Fergus, 2014): logit drop when a sliding patch is greyed out",
    passes=_passes,
    scaled=_scaled,
)
def occlusion(
    module: nn.Module,
    inputs: torch.Tensor,
    target: torch.Tensor,
    *,
    window: int | None = None,
    stride: int | None = None,
    baseline: str = "gray",
    forward_batch: int | None = None,
) -> torch.Tensor:
    """Occlusion maps (all channels occluded together, so channel sum = 3 × the per-pixel drop).

    Args:
        module: images in [0, 1] (N, 3, H, W) → logits.
        inputs: float images (N, 3, H, W).
        target: class per image (N,).
        window: side of the square occluding patch in pixels (None: :func:`geometry` of the image side).
        stride: step between patches in pixels (None: :func:`geometry` of the image side).
        baseline: colour of the patch (``black``, ``gray``, ``white``).
        forward_batch: occluded images evaluated per forward pass (all images of the batch together; None:
            :data:`FORWARD_BATCH` of the image side).

    Returns:
        (N, H, W) signed maps (positive: occluding the region lowers the target logit).
    """
    from captum.attr import Occlusion

    from igcore.errors import InputError

    if baseline not in BASELINES:
        raise InputError(f"unknown baseline {baseline!r}; choose one of {', '.join(BASELINES)}")
    channels, scaled = inputs.shape[1], _scaled(int(inputs.shape[-1]))
    window, stride, forward_batch = window or scaled["window"], stride or scaled["stride"], forward_batch or scaled["forward_batch"]
    attr = Occlusion(module).attribute(
        inputs,
        sliding_window_shapes=(channels, window, window),
        strides=(channels, stride, stride),
        baselines=BASELINES[baseline],
        target=target,
        perturbations_per_eval=max(1, forward_batch // max(1, len(inputs))),
    )
    return attr.sum(1)
