"""The ``features`` stage: every image of every split through the frozen backbone, once (:mod:`igcore.features`).

All splits go to the executor as one stream (one pool of workers holds the backbone for the whole
stage); the result is cut back into splits. On ``executor=ray`` the images are decoded in the workers
(a lazily built world hands over file paths), so the driver never holds the data set's pixels.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import numpy as np

from igcore.context import Features, RunContext
from igcore.features import FeatureExtractor
from igcore.worlds.images import LazyImages


def _joined(parts: list[np.ndarray | LazyImages]) -> LazyImages | None:
    """Lazy views of one data set as one lazy source (their row numbers concatenated); None for arrays."""
    lazy = [p for p in parts if isinstance(p, LazyImages)]
    if len(lazy) != len(parts) or len({id(p.source) for p in lazy}) != 1:
        return None
    return LazyImages(lazy[0].source, np.concatenate([p.rows for p in lazy]), lazy[0].kind)


def stage_features(ctx: RunContext) -> dict[str, Any]:
    """Pooled backbone features of train, val, test_train, test_eval and the concept bank, cached in the run."""
    settings = ctx.config.features
    batch_size = ctx.config.ray.batch_size if ctx.executor.name == "ray" else settings.batch_size
    make = functools.partial(FeatureExtractor, settings.backbone, batch_size, str(ctx.device))
    names, parts = zip(*((name, split.images) for name, split in ctx.data.items()), strict=True)
    start = time.perf_counter()
    joined = _joined(list(parts))
    if joined is not None:  # one stream, cut back into splits
        features = ctx.executor.map_batches(make, joined, batch_size, desc="features")
        bounds = np.cumsum([0, *(len(p) for p in parts)])
        arrays = {name: features[bounds[k] : bounds[k + 1]] for k, name in enumerate(names)}
    else:  # pixels in memory: split by split, without a joined copy
        arrays = {name: ctx.executor.map_batches(make, p, batch_size, desc=f"features {name}") for name, p in zip(names, parts, strict=True)}
    seconds = time.perf_counter() - start
    ctx.features = Features(**arrays)
    ctx.writer.tensors("features", arrays)
    n = sum(len(p) for p in parts)
    workers = ctx.executor.stats.get("workers", {})
    summary = {
        "backbone": Path(settings.backbone).name, "dim": int(arrays["train"].shape[1]), "images": n,
        "extract_seconds": round(seconds, 3), "images_per_second": round(n / max(seconds, 1e-9), 1),
        "executor": ctx.executor.name, "batch_size": batch_size, "workers": len(workers),
        "peak_rss_mb_per_worker": max(workers.values(), default=None),
    }
    ctx.write_metrics({"features": summary})
    return summary
