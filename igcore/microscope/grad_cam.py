"""Grad-CAM (Selvaraju et al., 2017, "Grad-CAM: Visual Explanations from Deep Networks").

Weights each channel of the last convolutional stage by the spatial mean of the target logit's
gradient, sums over channels, applies a ReLU and upsamples the coarse map to the image size with
:meth:`captum.attr.LayerAttribution.interpolate`. ResNet only (it needs a spatial feature map).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from igcore.architectures import last_conv_stage
from igcore.microscope.registry import InterpolateMode, register_attribution, to_image_maps
from igcore.settings import Settings

if TYPE_CHECKING:
    import torch
    from torch import nn


class GradCAMParams(Settings):
    relu: bool = Field(True, description="keep only evidence for the target (the original definition)")
    interpolate_mode: InterpolateMode = Field("bilinear", description="upsampling of the coarse map to the image")


@register_attribution(
    "grad_cam",
    params=GradCAMParams,
    architectures=("resnet",),
    description="Grad-CAM (Selvaraju et al., 2017) on the last ResNet stage, upsampled to the image",
    signed=False,
)
def grad_cam(module: nn.Module, inputs: torch.Tensor, target: torch.Tensor, *, relu: bool, interpolate_mode: str) -> torch.Tensor:
    """Grad-CAM maps at image resolution.

    Args:
        module: a ResNet :class:`~igcore.baseline.PixelClassifier`.
        inputs: float images (N, 3, H, W).
        target: class per image (N,).
        relu, interpolate_mode: :class:`GradCAMParams`.

    Returns:
        (N, H, W) maps.
    """
    from captum.attr import LayerGradCam

    layer_attr = LayerGradCam(module, last_conv_stage(module)).attribute(inputs, target=target, relu_attributions=relu)
    return to_image_maps(layer_attr, tuple(inputs.shape[-2:]), interpolate_mode)
