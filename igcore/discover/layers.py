"""Where a model is factorised, and how its activations are read there and changed there.

A *site* is one module of a :class:`~igcore.baseline.PixelClassifier` whose output is a spatial grid of
feature vectors:

- **ResNet**: the output of an encoder stage (``last``: the last stage, ``penultimate``: the one before).
  A stage ends in the ReLU of its last residual block, so its activations are already non-negative:
  exactly what non-negative matrix factorisation needs (ACE and CRAFT factorise the same kind of layer).
- **ViT**: the output of an encoder block (``last``: the second-to-last block, because the last block's
  patch tokens never reach the class token, which alone feeds the head; ``penultimate``: the block
  before). Patch tokens are signed, so each
  token ``x`` is read as the non-negative vector ``[relu(x), relu(-x)]`` (twice the width). The map is
  exact and invertible (``x = pos - neg``), so a change made in the non-negative space is written back
  as ``pos' - neg'`` and no information is lost to a shift or a clip; the class token is left as it is.

:func:`capture` returns the grid ``(N, h, w, C)`` of every image; :func:`variants` is a forward hook that
replaces the site's output by several changed copies of it (the ablations of
:mod:`igcore.discover.importance`, one per component), stacked along the batch: the layers before the
site run once per image, the layers after it once per copy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from igcore.architectures import architecture_of, vit_layers
from igcore.baseline import LOGITS_BATCH, to_pixels
from igcore.errors import InputError

GridFn = Callable[[torch.Tensor], torch.Tensor]  # (B, h, w, C) non-negative -> (V, B, h, w, C) variants
#: Images per forward pass when a site's activations are read (forward only, as a classifier's scores).
CAPTURE_BATCH = LOGITS_BATCH


@dataclass(frozen=True)
class Site:
    """A module of a model whose output discovery reads as a non-negative grid.

    Attributes:
        path: dotted module path relative to the :class:`~igcore.baseline.PixelClassifier`.
        family: ``resnet`` or ``vit`` (how the output is laid out).
    """

    path: str
    family: str

    def to_grid(self, output: torch.Tensor) -> torch.Tensor:
        """The module's output as a non-negative grid ``(B, h, w, C)``."""
        if self.family == "resnet":
            return output.permute(0, 2, 3, 1)
        tokens = output[:, 1:, :]
        side = math.isqrt(tokens.shape[1])
        grid = tokens.reshape(tokens.shape[0], side, side, tokens.shape[2])
        return torch.cat([grid.clamp(min=0), (-grid).clamp(min=0)], dim=-1)

    def from_grid(self, grid: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`to_grid`: a grid written back into the module's output layout (``like``)."""
        if self.family == "resnet":
            return grid.permute(0, 3, 1, 2).contiguous()
        width = grid.shape[-1] // 2
        tokens = (grid[..., :width] - grid[..., width:]).reshape(grid.shape[0], -1, width)
        return torch.cat([like[:, :1, :], tokens], dim=1)


def resolve_site(module: nn.Module, layer: str) -> Site:
    """The :class:`Site` for a layer alias (``last``, ``penultimate``) or a dotted module path of ``module``."""
    family = architecture_of(module)
    if layer in ("last", "penultimate"):
        back = 1 if layer == "last" else 2
        if family == "resnet":
            n = len(module.model.resnet.encoder.stages)
            return Site(f"model.resnet.encoder.stages.{max(0, n - back)}", family)
        name = "layers" if hasattr(module.model.vit, "layers") else "encoder.layer"
        return Site(f"model.vit.{name}.{max(0, len(vit_layers(module)) - 1 - back)}", family)
    try:
        module.get_submodule(layer)
    except AttributeError:
        raise InputError(f"discover.layer {layer!r} is neither last, penultimate nor a module of the model") from None
    return Site(layer, family)


def _output(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, (tuple, list)) else out


def capture(module: nn.Module, site: Site, images: np.ndarray, batch_size: int = CAPTURE_BATCH, device: str | torch.device = "cpu") -> np.ndarray:
    """The site's non-negative grid ``(N, h, w, C)`` (float32) for uint8 images ``(N, H, W, 3)``."""
    target = module.get_submodule(site.path)
    grabbed: list[torch.Tensor] = []

    def hook(_m: nn.Module, _i: Any, out: Any) -> None:
        grabbed.append(site.to_grid(_output(out)).detach().float().cpu())

    handle = target.register_forward_hook(hook)
    module.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                module(to_pixels(images[start : start + batch_size], device))
    finally:
        handle.remove()
    if not grabbed:
        raise ValueError("capture needs at least one image")
    return torch.cat(grabbed).numpy()


class LayerActivations:
    """``fn(pixels, rows)``: the grid (B, h, w, C) of a classifier's ``layer`` for each image, the per-image work
    of discovery that an executor runs (:mod:`igcore.executors`). It holds the classifier, so on
    ``executor=ray`` its weights travel to each worker; the rows change nothing."""

    def __init__(self, classifier: Any, layer: str) -> None:
        self.classifier, self.layer = classifier, layer

    def __call__(self, pixels: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        module = self.classifier.module_
        return capture(module, resolve_site(module, self.layer), pixels, device=self.classifier.device_)


@contextmanager
def variants(module: nn.Module, site: Site, fn: GridFn) -> Iterator[None]:
    """Within the block, a batch of B images leaves the site as ``V * B`` outputs: ``fn`` maps the grid
    ``(B, h, w, C)`` to ``V`` changed grids ``(V, B, h, w, C)``, written back in the site's layout and
    stacked along the batch (variant-major), so the model returns ``V * B`` rows of logits."""
    target = module.get_submodule(site.path)

    def hook(_m: nn.Module, _i: Any, out: Any) -> Any:
        tensor = _output(out)
        grids = fn(site.to_grid(tensor))
        changed = torch.cat([site.from_grid(g, tensor) for g in grids], dim=0)
        return (changed, *out[1:]) if isinstance(out, (tuple, list)) else changed

    handle = target.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
