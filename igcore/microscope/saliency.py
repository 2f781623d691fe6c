"""Saliency (Simonyan, Vedaldi & Zisserman, 2014, "Deep Inside Convolutional Networks").

The absolute gradient of the target logit with respect to each input pixel: where a small change of
the input changes the output most. Non-negative; the cheapest method (one backward pass).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from igcore.microscope.registry import register_attribution
from igcore.settings import Settings

if TYPE_CHECKING:
    import torch
    from torch import nn


class SaliencyParams(Settings):
    abs: bool = Field(True, description="take the absolute value of the gradient (the original definition)")


@register_attribution(
    "saliency",
    params=SaliencyParams,
    description="Saliency (Simonyan et al., 2014): absolute input gradient of the target logit",
    signed=False,
)
def saliency(module: nn.Module, inputs: torch.Tensor, target: torch.Tensor, *, abs: bool) -> torch.Tensor:  # noqa: A002
    """Input gradients summed over colour channels.

    Args:
        module: images in [0, 1] (N, 3, H, W) → logits.
        inputs: float images (N, 3, H, W).
        target: class per image (N,).
        abs: :class:`SaliencyParams`.

    Returns:
        (N, H, W) maps (non-negative when ``abs``).
    """
    from captum.attr import Saliency

    return Saliency(module).attribute(inputs, target=target, abs=abs).sum(1)
