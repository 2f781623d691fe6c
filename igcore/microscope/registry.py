"""Registry of attribution methods (zennit/timm style).

Each method is a function ``fn(module, inputs, target, **params) -> maps`` that takes a
:class:`~igcore.baseline.PixelClassifier` (images in ``[0, 1]`` → logits), a float batch
(N, 3, H, W) and the target classes (N,), and returns one (N, H, W) float map per image (attributions
summed over the colour channels, or a layer attribution upsampled to the image size). A method
declares which architectures it applies to and its parameters with their defaults, so the config, the
dashboard and the tests discover it the moment it is registered.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from igcore.errors import InputError

AttributionFn = Callable[..., torch.Tensor]
#: ``passes(params, side) -> (forward, forward+backward)``: model passes one map of a ``side``-pixel image costs.
PassesFn = Callable[[Mapping[str, Any], int], tuple[float, float]]


#: The image side the batch-size defaults are written for (the default world's).
REFERENCE_SIDE = 64


def same_pixels(**at_reference: int) -> Callable[[int], dict[str, int]]:
    """A ``scaled`` rule for batch-size parameters: on larger images a pass holds as many pixels as
    ``at_reference`` images hold at :data:`REFERENCE_SIDE` (fewer images, the same memory); never more images
    than at the reference side."""

    def scaled(side: int) -> dict[str, int]:
        return {k: max(1, min(v, round(v * (REFERENCE_SIDE / side) ** 2))) for k, v in at_reference.items()}

    return scaled


def one_gradient(_params: Mapping[str, Any], _side: int) -> tuple[float, float]:
    """One forward+backward pass per map (saliency, Grad-CAM)."""
    return 0.0, 1.0

#: Architecture families the microscope knows how to open (see :func:`architecture_of`).
ARCHITECTURE_FAMILIES = ("resnet", "vit")


@dataclass(frozen=True)
class AttributionMethod:
    """A registered attribution method.

    Attributes:
        name: registry key (``integrated_gradients`` ...), also the config name.
        fn: ``fn(module, inputs, target, **params) -> (N, H, W)`` maps.
        architectures: families it applies to (``resnet``, ``vit``).
        defaults: parameters and their default values (every accepted parameter is listed).
        description: one line for the dashboard.
        signed: whether maps carry a sign (IG, GradientSHAP, occlusion) or are non-negative.
        passes: model passes per map, (forward, forward+backward), from the resolved parameters and the
            image side: what the microscope's plan (:mod:`igcore.microscope.plan`) multiplies by the
            model's measured cost per pass.
        scaled: ``scaled(side) -> {parameter: value}`` for parameters whose default (None) follows the image
            size (occlusion's window and stride).
    """

    name: str
    fn: AttributionFn
    architectures: tuple[str, ...]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    signed: bool = True
    passes: PassesFn = one_gradient
    scaled: Callable[[int], dict[str, Any]] | None = None

    def applies_to(self, architecture: str) -> bool:
        return architecture in self.architectures

    def resolve(self, params: Mapping[str, Any] | None = None, side: int | None = None) -> dict[str, Any]:
        """Defaults overridden by ``params``, and with ``side`` (the image side in pixels) the parameters left
        None set from it (:attr:`scaled`); unknown parameter names raise :class:`InputError`."""
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise InputError(
                f"attribution method {self.name!r} has no parameter(s) {', '.join(unknown)}; "
                f"its parameters are: {', '.join(self.defaults) or '(none)'}"
            )
        resolved = {**self.defaults, **params}
        if side is not None and self.scaled is not None:
            resolved.update({k: v for k, v in self.scaled(side).items() if resolved.get(k) is None})
        return resolved


ATTRIBUTIONS: dict[str, AttributionMethod] = {}


def register_attribution(
    name: str,
    *,
    architectures: tuple[str, ...] = ARCHITECTURE_FAMILIES,
    defaults: Mapping[str, Any] | None = None,
    description: str = "",
    signed: bool = True,
    passes: PassesFn = one_gradient,
    scaled: Callable[[int], dict[str, Any]] | None = None,
) -> Callable[[AttributionFn], AttributionFn]:
    """Decorator adding an attribution function to :data:`ATTRIBUTIONS` under ``name``."""

    def decorate(fn: AttributionFn) -> AttributionFn:
        ATTRIBUTIONS[name] = AttributionMethod(
            name, fn, tuple(architectures), dict(defaults or {}), description or (fn.__doc__ or "").strip().split("\n")[0], signed,
            passes, scaled,
        )
        return fn

    return decorate


def get_method(name: str) -> AttributionMethod:
    if name not in ATTRIBUTIONS:
        raise InputError(f"unknown attribution method {name!r}; valid methods: {', '.join(ATTRIBUTIONS)}")
    return ATTRIBUTIONS[name]


def available_methods(architecture: str | None = None) -> list[str]:
    """Registered method names, optionally only those that apply to ``architecture``."""
    return [n for n, m in ATTRIBUTIONS.items() if architecture is None or m.applies_to(architecture)]


def params_key(method: str, params: Mapping[str, Any]) -> str:
    """Stable short key of (method, parameters) for the attribution cache."""
    text = json.dumps({"method": method, "params": dict(params)}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


# -- architecture helpers ---------------------------------------------------------------------------


def architecture_of(module: nn.Module) -> str:
    """``resnet`` or ``vit`` for a :class:`~igcore.baseline.PixelClassifier` (or its HF model)."""
    model = getattr(module, "model", module)
    if hasattr(model, "resnet"):
        return "resnet"
    if hasattr(model, "vit"):
        return "vit"
    raise InputError(
        f"the microscope supports {', '.join(ARCHITECTURE_FAMILIES)} models; got {type(model).__name__}"
    )


def last_conv_stage(module: nn.Module) -> nn.Module:
    """The last ResNet stage (the usual Grad-CAM layer)."""
    return module.model.resnet.encoder.stages[-1]


def patch_embedding(module: nn.Module) -> nn.Module:
    """The ViT patch embedding (the usual layer for layer integrated gradients)."""
    return module.model.vit.embeddings.patch_embeddings


def vit_layers(module: nn.Module) -> nn.ModuleList:
    vit = module.model.vit
    return vit.layers if hasattr(vit, "layers") else vit.encoder.layer


def to_image_maps(layer_attr: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """(N, C, h, w) layer attribution → (N, H, W), summed over channels and upsampled with captum."""
    from captum.attr import LayerAttribution

    summed = layer_attr.sum(1, keepdim=True)
    return LayerAttribution.interpolate(summed, size, mode).squeeze(1)
