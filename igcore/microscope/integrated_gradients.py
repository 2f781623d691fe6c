"""Integrated Gradients (Sundararajan, Taly & Yan, 2017, "Axiomatic Attribution for Deep Networks").

The attribution of pixel i is ``(x_i - x'_i) · ∫_0^1 ∂f_c(x' + α(x - x')) / ∂x_i dα``, the path integral
of the gradient along the straight line from a baseline ``x'`` to the input, approximated with
``n_steps`` Gauss–Legendre points (captum's default). Attributions sum to ``f_c(x) - f_c(x')``
(completeness), so they are signed.
"""

from __future__ import annotations

import torch
from torch import nn

from igcore.microscope._baselines import baseline_like
from igcore.microscope.registry import register_attribution, same_pixels

#: Images × steps per pass: 512 at the reference side, the same pixels on larger images.
PATH_BATCH = same_pixels(internal_batch_size=512)


@register_attribution(
    "integrated_gradients",
    defaults={"n_steps": 32, "internal_batch_size": None, "baseline": "black"},
    description="Integrated Gradients (Sundararajan et al., 2017): path integral of gradients from a baseline image",
    passes=lambda params, _side: (0.0, float(params["n_steps"])),
    scaled=PATH_BATCH,
)
def integrated_gradients(
    module: nn.Module,
    inputs: torch.Tensor,
    target: torch.Tensor,
    *,
    n_steps: int = 32,
    internal_batch_size: int | None = None,
    baseline: str = "black",
) -> torch.Tensor:
    """Integrated gradients summed over colour channels.

    Args:
        module: images in [0, 1] (N, 3, H, W) → logits.
        inputs: float images (N, 3, H, W).
        target: class per image (N,).
        n_steps: points of the path integral.
        internal_batch_size: images × steps evaluated per forward/backward pass (None: :data:`PATH_BATCH` of the image side).
        baseline: reference image (``black``, ``gray`` or ``white``).

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
