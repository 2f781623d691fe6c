"""Reference inputs ("baselines") for path and perturbation methods, by name."""

from __future__ import annotations

import torch

from igcore.errors import InputError

#: name → constant pixel value in [0, 1]. ``gray`` is the normalisation mean (the model's zero input).
BASELINES = {"black": 0.0, "gray": 0.5, "white": 1.0}


def baseline_like(name: str, inputs: torch.Tensor) -> torch.Tensor:
    """A constant image like ``inputs`` (N, 3, H, W) for the baseline ``name``."""
    if name not in BASELINES:
        raise InputError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
    return torch.full_like(inputs, BASELINES[name])
