"""Reference inputs ("baselines") for path and perturbation methods, by name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

#: name → constant pixel value in [0, 1]. ``gray`` is the normalisation mean (the model's zero input).
BASELINES = {"black": 0.0, "gray": 0.5, "white": 1.0}
#: A baseline's name, as a parameter type (its values are :data:`BASELINES`' keys).
BaselineName = Literal[tuple(BASELINES)]  # type: ignore[valid-type]


def baseline_like(name: str, inputs: torch.Tensor) -> torch.Tensor:
    """A constant image like ``inputs`` (N, 3, H, W) for the baseline ``name`` (a validated parameter)."""
    import torch

    return torch.full_like(inputs, BASELINES[name])
