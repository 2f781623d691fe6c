"""The ``world`` stage: every split of the world, its per-example tables and the contact sheet."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from igcore.context import RunContext, Splits
from igcore.schema import true_column
from igcore.worlds.base import Split, World


def split_table(split: Split, world: World) -> pd.DataFrame:
    """Per-example metadata of a split (no pixels): label, group, background, concept annotations."""
    df = pd.DataFrame({"index": np.arange(len(split)), "label": split.labels, "group": split.groups, "background": split.background})
    annotations = pd.DataFrame(split.concepts.astype(np.uint8), columns=[true_column(c) for c in world.vocabulary.ids])
    return pd.concat([df, annotations], axis=1)


def stage_world(ctx: RunContext) -> dict[str, Any]:
    """Generate (or load) every split; store their tables, D′_eval's pixels and masks, the concept bank."""
    from igcore.worlds.preview import contact_sheet

    world = ctx.world
    splits = Splits(**{name: world.split(name) for name in ("train", "val", "test_train", "test_eval", "concept_bank")})
    for name, split in splits.items():
        ctx.writer.table(f"split_{name}", split_table(split, world))
    test, bank = splits.test_eval, splits.concept_bank
    masks = {} if test.masks is None else {"masks": test.masks.astype(np.uint8)}
    ctx.writer.tensors("test_eval", {"images": test.images, **masks})
    ctx.writer.tensors("concept_bank", {"images": bank.images, "concepts": bank.concepts})
    names = world.group_names()
    ctx.write_metrics(
        {
            "world": {
                "name": world.name,
                "classes": list(world.classes),
                "backgrounds": list(world.backgrounds),
                "groups": names,
                "vocabulary": [{"id": c.id, "text": c.text, "kind": c.kind} for c in world.vocabulary.concepts],
                "sizes": {name: len(s) for name, s in splits.items()},
                "train_group_counts": dict(
                    zip(names, np.bincount(splits.train.groups, minlength=len(names)).tolist(), strict=True)
                ),
                "has_masks": test.masks is not None,
                "can_render": bool(world.can_render),
                "notes": list(world.notes),
            }
        }
    )
    ctx.splits = splits
    contact_sheet(world, ctx.writer.path / "contact_sheet.png")
    info: dict[str, Any] = {"images": int(sum(len(s) for _, s in splits.items()))}
    load = getattr(world, "load_info", None)
    if load is not None:  # loaders of photographs: how the images were decoded (or read from the cache)
        info["load"] = {"cache": load.cache, "seconds": round(load.seconds, 3), "images_per_second": round(load.n / max(load.seconds, 1e-9), 1)}
    return info
