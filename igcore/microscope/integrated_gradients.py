"""Integrated Gradients (Sundararajan, Taly & Yan, 2017, "Axiomatic Attribution for Deep Networks").

The attribution of pixel i is ``(x_i - x'_i) · ∫_0^1 ∂f_c(x' + α(x - x')) / ∂x_i dα``, the path integral
of the gradient along the straight line from a baseline ``x'`` to the input, approximated with
``n_steps`` Gauss–Legendre points (captum's default). Attributions sum to ``f_c(x) - f_c(x')``
(completeness), so they are signed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from igcore.microscope._baselines import BaselineName, baseline_like
from igcore.microscope.registry import register_attribution
from igcore.settings import Settings

if TYPE_CHECKING:
    import torch
    from torch import nn


class IntegratedGradientsParams(Settings):
    n_steps: int = Field(32, ge=1, description="points of the path integral (one forward and backward pass each)")
    internal_batch_size: int = Field(512, ge=1, description="images × steps evaluated per forward/backward pass")
    baseline: BaselineName = Field("black", description="reference image: black | gray | white")


@register_attribution(
    "integrated_gradients",
    params=IntegratedGradientsParams,
    description="Integrated Gradients (Sundararajan et al., 2017): path integral of gradients from a baseline image",
    cost=lambda p, side: p.n_steps,
)
def integrated_gradients(
    module: nn.Module, inputs: torch.Tensor, target: torch.Tensor, *, n_steps: int, internal_batch_size: int, baseline: str
) -> torch.Tensor:
    """Integrated gradients summed over colour channels.

    Args:
        module: images in [0, 1] (N, 3, H, W) → logits.
        inputs: float images (N, 3, H, W).
        target: class per image (N,).
        n_steps, internal_batch_size, baseline: :class:`IntegratedGradientsParams`.

    Returns:
        (N, H, W) signed attribution maps.
    """
    from captum.attr import IntegratedGradients

    attr = IntegratedGradients(module).attribute(
        inputs,
        baselines=baseline_like(baseline, inputs),
        target=target,
        n_steps=n_steps,
        internal_batch_size=max(internal_batch_size, 1),
    )
    return attr.sum(1)
