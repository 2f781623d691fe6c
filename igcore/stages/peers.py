"""Peer-method stages (GroupDRO, JTT, DFR; methods in :mod:`igcore.peers`), run when named in ``peers``.

Each trains with the run's ``baseline`` budget and ERM's model-selection rule (best average accuracy
on ``val``, never D′).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from igcore.context import RunContext
from igcore.peers import DFR, GroupDROClassifier, penultimate_features


def stage_groupdro(ctx: RunContext) -> dict[str, Any]:
    """Online Group DRO on D with its group labels."""
    train, val = ctx.data.train, ctx.data.val
    base = ctx.new_classifier("groupdro")
    model = GroupDROClassifier(**vars(base)).set_groups(train.groups)
    model.fit(train.images, train.labels, val=(val.images, val.labels))
    ctx.add_classifier("groupdro", model)
    ctx.evaluate("groupdro", model.predict_proba(ctx.data.test_eval.images), uses="D group labels")
    return {"best_epoch": model.best_epoch_}


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


def stage_dfr(ctx: RunContext) -> dict[str, Any]:
    """DFR on the ERM model; the balanced set is drawn from ``val`` (D's distribution, group labels)."""
    erm, val = ctx.classifier("erm"), ctx.data.val
    dfr = DFR(C=ctx.config.dfr.C, seed=ctx.config.seed).fit(penultimate_features(erm, val.images), val.labels, val.groups)
    proba = dfr.predict_proba(penultimate_features(erm, ctx.data.test_eval.images))
    names = ctx.world.group_names()
    ctx.evaluate(
        "dfr",
        proba,
        uses=f"group labels of {dfr.n_per_group_} val images per group ({', '.join(names[g] for g in dfr.groups_used_)})",
    )
    return {"per_group": dfr.n_per_group_, "groups": len(dfr.groups_used_)}
