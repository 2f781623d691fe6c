"""Where per-image work runs: batches of images through a function that holds a model.

A stage that scores images (backbone features, concept scores, predictions) hands the executor a factory
``make_fn() -> fn`` and the images; ``fn(batch) -> array`` maps a uint8 batch (B, H, W, 3) to a result
with one row per image. The factory (not the function) crosses process boundaries, so each worker builds
its model once. :class:`LocalExecutor` runs in this process, batch by batch, with a progress bar; every
executor returns the same array in the same row order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
from tqdm.auto import tqdm

BatchFn = Callable[[np.ndarray], np.ndarray]


class Executor(Protocol):
    name: str

    def map_batches(self, make_fn: Callable[[], BatchFn], images: np.ndarray, batch_size: int, desc: str = "") -> np.ndarray:
        """``fn(batch)`` over ``images`` in batches, concatenated in the images' order."""
        ...


class LocalExecutor:
    """This process, one batch after another (``progress``: a tqdm bar)."""

    name = "local"

    def __init__(self, progress: bool = True) -> None:
        self.progress = progress

    def map_batches(self, make_fn: Callable[[], BatchFn], images: np.ndarray, batch_size: int, desc: str = "") -> np.ndarray:
        fn = make_fn()
        parts = [fn(images[start : start + batch_size])
                 for start in tqdm(range(0, len(images), batch_size), desc=desc, disable=not self.progress, leave=False)]
        return np.concatenate(parts) if parts else np.zeros((0,), np.float32)
