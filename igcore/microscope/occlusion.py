"""Occlusion (Zeiler & Fergus, 2014, "Visualizing and Understanding Convolutional Networks").

Slide a ``window``×``window`` patch of the baseline colour over the image with step ``stride`` and
record how much the target logit drops; each pixel gets the mean drop of the patches covering it.
Model-agnostic (forward passes only) and signed; its resolution is the stride.
"""

from __future__ import annotations

import torch
from torch import nn

from igcore.microscope._baselines import BASELINES
from igcore.microscope.registry import register_attribution


@register_attribution(
    "occlusion",
    defaults={"window": 16, "stride": 8, "baseline": "gray", "forward_batch": 256},
    description="Occlusion (Zeiler & Fergus, 2014): logit drop when a sliding patch is greyed out",
)
def occlusion(
    module: nn.Module,
    inputs: torch.Tensor,
    target: torch.Tensor,
    *,
    window: int = 16,
    stride: int = 8,
    baseline: str = "gray",
    forward_batch: int = 256,
) -> torch.Tensor:
    """Occlusion maps (all channels occluded together, so channel sum = 3 × the per-pixel drop).

    Args:
        module: images in [0, 1] (N, 3, H, W) → logits.
        inputs: float images (N, 3, H, W).
        target: class per image (N,).
        window: side of the square occluding patch in pixels.
        stride: step between patches in pixels.
        baseline: colour of the patch (``black``, ``gray``, ``white``).
        forward_batch: occluded images evaluated per forward pass (all images of the batch together).

    Returns:
        (N, H, W) signed maps (positive: occluding the region lowers the target logit).
    """
    from captum.attr import Occlusion

    from igcore.errors import InputError

    if baseline not in BASELINES:
        raise InputError(f"unknown baseline {baseline!r}; choose one of {', '.join(BASELINES)}")
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
