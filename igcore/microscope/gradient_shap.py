"""GradientSHAP (Lundberg & Lee, 2017, "A Unified Approach to Interpreting Model Predictions").

Expected gradients: integrated gradients averaged over baselines drawn from a reference distribution
and random points on each path, with Gaussian noise (``stdevs``) added to the input (as in
SmoothGrad). Approximates SHAP values; signed. The reference distribution here is the black, gray and
white images plus ``n_noise_baselines`` uniform-noise images (seeded by the caller's RNG state: the method is
registered ``stochastic``, so each image is drawn with a seed of its own).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from igcore.microscope._baselines import BASELINES
from igcore.microscope.registry import register_attribution
from igcore.settings import Settings

if TYPE_CHECKING:
    import torch
    from torch import nn


class GradientShapParams(Settings):
    n_samples: int = Field(8, ge=1, description="random (baseline, path point) samples per image (one forward and backward pass each)")
    stdevs: float = Field(0.05, ge=0, description="std of the Gaussian noise added to the inputs")
    n_noise_baselines: int = Field(3, ge=0, description="uniform-noise images added to the black, gray and white baselines")


@register_attribution(
    "gradient_shap",
    params=GradientShapParams,
    description="GradientSHAP (Lundberg & Lee, 2017): expected gradients over random baselines and path points",
    cost=lambda p, side: p.n_samples,
    stochastic=True,
)
def gradient_shap(
    module: nn.Module, inputs: torch.Tensor, target: torch.Tensor, *, n_samples: int, stdevs: float, n_noise_baselines: int
) -> torch.Tensor:
    """GradientSHAP attributions summed over colour channels.

    Args:
        module: images in [0, 1] (N, 3, H, W) → logits.
        inputs: float images (N, 3, H, W).
        target: class per image (N,).
        n_samples, stdevs, n_noise_baselines: :class:`GradientShapParams`.

    Returns:
        (N, H, W) signed attribution maps.
    """
    import torch
    from captum.attr import GradientShap

    shape = (1, *inputs.shape[1:])
    refs = [torch.full(shape, v, device=inputs.device) for v in BASELINES.values()]
    refs += [torch.rand(shape, device=inputs.device) for _ in range(n_noise_baselines)]
    attr = GradientShap(module).attribute(
        inputs, baselines=torch.cat(refs), n_samples=n_samples, stdevs=stdevs, target=target
    )
    return attr.sum(1)
