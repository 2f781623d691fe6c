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
from igcore.microscope.registry import register_attribution, same_pixels
from igcore.settings import Settings

if TYPE_CHECKING:
    import torch
    from torch import nn


#: Images × steps per pass: 128 at the reference side, the same pixels on larger images. As for
#: :data:`igcore.baseline.LOGITS_BATCH`, a pass whose activations stay in the core's cache runs faster than a larger
#: one (docs/bench_attribution.md times IG at each pass size; vit-tiny behaved alike, and on a ResNet-18 shape at
#: 224 px the 10-image passes this gives were no slower than 42), and a pass's size moves a map only by float rounding
#: (captum sums the passes' gradients).
PATH_BATCH = same_pixels(internal_batch_size=128)


class IntegratedGradientsParams(Settings):
    n_steps: int = Field(32, ge=1, description="points of the path integral (one forward and backward pass each)")
    internal_batch_size: int | None = Field(
        None, ge=1, description="images × steps evaluated per forward/backward pass; null = 128 at 64 px, the same pixels on larger images"
    )
    baseline: BaselineName = Field("black", description="reference image: black | gray | white")


@register_attribution(
    "integrated_gradients",
    params=IntegratedGradientsParams,
    description="Integrated Gradients (Sundararajan et al., 2017): path integral of gradients from a baseline image",
    cost=lambda p, side: p.n_steps,
    scaled=PATH_BATCH,
)
def integrated_gradients(
    module: nn.Module, inputs: torch.Tensor, target: torch.Tensor, *, n_steps: int, internal_batch_size: int | None, baseline: str
) -> torch.Tensor:
    """Integrated gradients summed over colour channels.

    Args:
        module: images in [0, 1] (N, 3, H, W) → logits.
        inputs: float images (N, 3, H, W).
        target: class per image (N,).
        n_steps, internal_batch_size, baseline: :class:`IntegratedGradientsParams` (null batch: :data:`PATH_BATCH`).

    Returns:
        (N, H, W) signed attribution maps.
    """
    from captum.attr import IntegratedGradients

    attr = IntegratedGradients(module).attribute(
        inputs,
        baselines=baseline_like(baseline, inputs),
        target=target,
        n_steps=n_steps,
        internal_batch_size=internal_batch_size or PATH_BATCH(int(inputs.shape[-1]))["internal_batch_size"],
    )
    return attr.sum(1)
