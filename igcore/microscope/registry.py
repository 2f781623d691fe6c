"""Registry of attribution methods (zennit/timm style): each entry carries everything about its method.

Each method is a function ``fn(module, inputs, target, **params) -> maps`` that takes a
:class:`~igcore.baseline.PixelClassifier` (images in ``[0, 1]`` → logits), a float batch
(N, 3, H, W) and the target classes (N,), and returns one (N, H, W) float map per image (attributions
summed over the colour channels, or a layer attribution upsampled to the image size). A method
declares the architecture families it applies to, its parameters (a :class:`~igcore.settings.Settings`
class: each parameter's default, bounds and one line of meaning) and what a map costs, so the config
(``microscope.params.<method>.*``: defaults and validation), the dashboard and the tests derive from
the registration alone.

Importing this module (and the method modules) loads neither torch nor captum; they load when a
method runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from igcore.architectures import ARCHITECTURE_FAMILIES, architecture_of
from igcore.errors import InputError
from igcore.settings import Settings, validated

if TYPE_CHECKING:
    import torch

AttributionFn = Callable[..., "torch.Tensor"]
#: ``cost(params, side)``: model passes (forward, or forward and backward) one map of a ``side`` px image takes.
CostFn = Callable[[Any, int], int]
#: ``scaled(side) -> {parameter: value}``: the values of parameters left null, chosen from the image side.
ScaledFn = Callable[[int], dict[str, Any]]

#: The image side the batch-size defaults are written for (the default world's).
REFERENCE_SIDE = 64

#: Upsampling modes of a coarse layer attribution (``torch.nn.functional.interpolate`` on (N, 1, h, w)).
InterpolateMode = Literal["nearest", "nearest-exact", "bilinear", "bicubic", "area"]


class NoParams(Settings):
    """A method without parameters."""


def one_pass(params: Any, side: int) -> int:
    """The cost of a method that needs one forward and one backward pass per map."""
    return 1


def same_pixels(**at_reference: int) -> ScaledFn:
    """A ``scaled`` rule for batch-size parameters: on larger images a pass holds as many pixels as
    ``at_reference`` images hold at :data:`REFERENCE_SIDE` (fewer images, the same memory); never more images
    than at the reference side."""

    def scaled(side: int) -> dict[str, int]:
        return {k: max(1, min(v, round(v * (REFERENCE_SIDE / side) ** 2))) for k, v in at_reference.items()}

    return scaled


@dataclass(frozen=True)
class AttributionMethod:
    """A registered attribution method.

    Attributes:
        name: registry key (``integrated_gradients`` ...), also the config name.
        fn: ``fn(module, inputs, target, **params) -> (N, H, W)`` maps.
        params: its parameters: defaults, bounds, one line of meaning each (``microscope.params.<name>.*``).
        architectures: families it applies to (``resnet``, ``vit``).
        description: one line for the dashboard.
        signed: whether maps carry a sign (IG, GradientSHAP, occlusion) or are non-negative.
        cost: model passes one map takes, for validated parameters and the image side (``cost(params, side)``).
        backward: whether each of those passes is a forward and backward pass (input gradients) or a forward
            pass only (occlusion): what the microscope's plan (:mod:`igcore.microscope.plan`) multiplies by the
            model's measured seconds per pass.
        scaled: ``scaled(side) -> {parameter: value}`` for parameters whose default (null) follows the image
            side (occlusion's window and stride, the batch sizes); None when none does.
        stochastic: whether a map depends on random draws (GradientSHAP's baselines and path points): such a
            method is run image by image, each image seeded from its row, so that a map does not depend on the
            batch it was computed in (nor on the executor that cut the batches).
    """

    name: str
    fn: AttributionFn
    params: type[Settings]
    architectures: tuple[str, ...]
    description: str
    signed: bool
    cost_fn: CostFn
    backward: bool = True
    scaled: ScaledFn | None = None
    stochastic: bool = False

    @property
    def defaults(self) -> dict[str, Any]:
        """Every parameter with its default value."""
        return self.params().model_dump()

    def applies_to(self, architecture: str) -> bool:
        return architecture in self.architectures

    def check(self, params: Mapping[str, Any] | None = None) -> Settings:
        """``params`` validated against the method's parameters: unknown names and values out of bounds raise
        :class:`InputError` naming the key (``microscope.params.<name>.<key>``)."""
        return validated(self.params, dict(params or {}), f"microscope.params.{self.name}")

    def resolve(self, params: Mapping[str, Any] | None = None, side: int | None = None) -> dict[str, Any]:
        """Defaults overridden by ``params`` (checked with :meth:`check`): the keywords ``fn`` is called with.
        With ``side`` (the image side in pixels) the parameters left null are set from it (:attr:`scaled`)."""
        self.check(params)
        resolved = {**self.defaults, **dict(params or {})}
        if side is not None and self.scaled is not None:
            resolved.update({k: v for k, v in self.scaled(side).items() if resolved.get(k) is None})
        return resolved

    def cost(self, params: Mapping[str, Any] | None, side: int) -> int:
        """Model passes one map of a ``side`` px image takes with ``params`` (defaults, scaled to ``side``, for the rest)."""
        return int(self.cost_fn(self.check(self.resolve(params, side)), side))


ATTRIBUTIONS: dict[str, AttributionMethod] = {}


def register_attribution(
    name: str,
    *,
    params: type[Settings] = NoParams,
    architectures: tuple[str, ...] = ARCHITECTURE_FAMILIES,
    description: str = "",
    signed: bool = True,
    cost: CostFn = one_pass,
    backward: bool = True,
    scaled: ScaledFn | None = None,
    stochastic: bool = False,
) -> Callable[[AttributionFn], AttributionFn]:
    """Decorator adding an attribution function to :data:`ATTRIBUTIONS` under ``name``.

    ``params`` declares its parameters (the function takes them as keywords, without defaults of its own);
    ``cost(params, side)`` says how many model passes a map takes (default: one), ``backward`` whether they
    are forward and backward passes or forward passes only, ``scaled(side)`` the values of parameters left
    null on ``side`` px images, ``stochastic`` whether its maps depend on random draws: a stochastic method runs
    image by image from the process-wide generators seeded for each image, behind :func:`igcore.runtime.global_rng`;
    any other runs without seeding or waiting, so a method that draws numbers must say so, or a run's maps would depend
    on which thread drew first (stages and models run side by side).
    """

    def decorate(fn: AttributionFn) -> AttributionFn:
        ATTRIBUTIONS[name] = AttributionMethod(
            name, fn, params, tuple(architectures), description or (fn.__doc__ or "").strip().split("\n")[0], signed, cost,
            backward, scaled, stochastic,
        )
        return fn

    return decorate


def get_method(name: str) -> AttributionMethod:
    if name not in ATTRIBUTIONS:
        raise InputError(f"unknown attribution method {name!r}; valid methods: {', '.join(ATTRIBUTIONS)}")
    return ATTRIBUTIONS[name]


def params_key(method: str, params: Mapping[str, Any]) -> str:
    """Stable short key of (method, parameters) for the attribution cache."""
    text = json.dumps({"method": method, "params": dict(params)}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def to_image_maps(layer_attr: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """(N, C, h, w) layer attribution → (N, H, W), summed over channels and upsampled with captum."""
    from captum.attr import LayerAttribution

    summed = layer_attr.sum(1, keepdim=True)
    return LayerAttribution.interpolate(summed, size, mode).squeeze(1)


__all__ = [
    "ATTRIBUTIONS",
    "AttributionMethod",
    "InterpolateMode",
    "NoParams",
    "architecture_of",
    "get_method",
    "params_key",
    "register_attribution",
    "same_pixels",
    "to_image_maps",
]
