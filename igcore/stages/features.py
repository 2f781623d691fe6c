"""The ``features`` stage: every image of every split through the frozen backbone, once (:mod:`igcore.features`)."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

from igcore.context import Features, RunContext
from igcore.features import FeatureExtractor


def stage_features(ctx: RunContext) -> dict[str, Any]:
    """Pooled backbone features of train, val, test_train, test_eval and the concept bank, cached in the run."""
    settings = ctx.config.features
    make = functools.partial(FeatureExtractor, settings.backbone, settings.batch_size, str(ctx.device))
    arrays, n, start = {}, 0, time.perf_counter()
    for name, split in ctx.data.items():
        arrays[name] = ctx.executor.map_batches(make, split.images, settings.batch_size, desc=f"features {name}")
        n += len(split)
    seconds = time.perf_counter() - start
    ctx.features = Features(**arrays)
    ctx.writer.tensors("features", arrays)
    dim = int(arrays["train"].shape[1])
    summary = {"backbone": Path(settings.backbone).name, "dim": dim, "images": n, "extract_seconds": round(seconds, 3),
               "images_per_second": round(n / max(seconds, 1e-9), 1), "executor": ctx.executor.name}
    ctx.write_metrics({"features": summary})
    return summary
