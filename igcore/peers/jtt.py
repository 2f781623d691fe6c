"""Just Train Twice (Liu et al., 2021): the peer that upweights an identification model's training errors."""

from __future__ import annotations

from typing import Any

import numpy as np

from igcore.context import RunContext


def stage_jtt(ctx: RunContext) -> dict[str, Any]:
    """Just Train Twice (Liu et al., 2021): ERM for ``jtt.id_epochs``, then upweight its training errors
    by ``jtt.upweight`` and train again from scratch with the full budget."""
    train, val = ctx.data.train, ctx.data.val
    params = ctx.config.jtt
    identifier = ctx.new_classifier("jtt-id", epochs=params.id_epochs).fit(train.images, train.labels)
    errors = identifier.predict(train.images) != train.labels
    weights = np.where(errors, float(params.upweight), 1.0)
    model = ctx.new_classifier("jtt").fit(train.images, train.labels, val=(val.images, val.labels), sample_weight=weights)
    ctx.add_classifier("jtt", model)
    ctx.evaluate("jtt", model.predict_proba(ctx.data.test_eval.images), uses="none beyond D labels")
    return {"error_set": int(errors.sum()), "best_epoch": model.best_epoch_}
