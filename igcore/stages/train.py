"""Stages that train the reference classifiers: ``erm`` (the baseline), ``oracle`` and ``true_concepts``."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from igcore.baseline import LOGITS_BATCH, BatchLogits, ImageClassifier, inspect_checkpoint
from igcore.config import Config
from igcore.context import RunContext
from igcore.worlds.base import World


def _train_and_evaluate(ctx: RunContext, name: str, split: str) -> dict[str, Any]:
    data, val = getattr(ctx.data, split), ctx.data.val
    model = ctx.new_classifier(name).fit(ctx.inputs(split), data.labels, val=(ctx.inputs("val"), val.labels))
    ctx.add_classifier(name, model)
    val_acc = max(r["val_score"] for r in model.history_)  # the kept epoch's, scored during fit on the same weights
    ctx.evaluate(name, model.predict_proba(ctx.inputs("test_eval")), val_acc=val_acc, best_epoch=model.best_epoch_)
    return {"val_acc": round(val_acc, 4), "best_epoch": model.best_epoch_}


def check_checkpoint(config: Config, world: World) -> None:
    """A user's checkpoint must fit the world (config, safetensors, labels) before any work."""
    if config.baseline.checkpoint:
        inspect_checkpoint(config.baseline.checkpoint, list(world.classes), config.baseline.label_map)


def stage_erm(ctx: RunContext) -> dict[str, Any]:
    """The baseline put under the microscope: a user's checkpoint as it is, else ERM on D."""
    b = ctx.config.baseline
    if not b.checkpoint:
        info = _train_and_evaluate(ctx, "erm", "train")
        backbone = ctx.config.features.backbone
        arch = f"linear head on frozen {Path(backbone).name} features" if backbone else b.arch
        ctx.write_metrics({"baseline": {"name": "ERM baseline", "trained": True, "arch": arch}})
        return {"trained": True, **info}
    checkpoint = inspect_checkpoint(b.checkpoint, list(ctx.world.classes), b.label_map)
    model = ImageClassifier.from_checkpoint(checkpoint, device=str(ctx.device))
    ctx.add_classifier("erm", model)
    # scored image by image on the run's executor: on executor=ray the checkpoint's weights go to the workers
    work = functools.partial(BatchLogits, model)
    val, test = ctx.data.val, ctx.data.test_eval
    val_acc = float((ctx.executor.map_batches(work, val.images, LOGITS_BATCH, desc="erm val", loading=False).argmax(1) == val.labels).mean())
    proba = model.proba(ctx.executor.map_batches(work, test.images, LOGITS_BATCH, desc="erm test_eval", loading=False))
    ctx.evaluate("erm", proba, val_acc=val_acc, checkpoint=checkpoint.name)
    ctx.write_metrics({"baseline": {
        "name": checkpoint.name, "trained": False, "arch": checkpoint.model_type, "labels": checkpoint.labels,
        "input_size": None if checkpoint.spec.size is None else list(checkpoint.spec.size),
        "normalisation": {"mean": list(checkpoint.spec.mean), "std": list(checkpoint.spec.std)},
    }})
    return {"trained": False, "checkpoint": checkpoint.name, "val_acc": round(val_acc, 4)}


def stage_oracle(ctx: RunContext) -> dict[str, Any]:
    """Same architecture as the run's trained models, fitted on D′_train *with its labels*: an evaluation reference only."""
    return _train_and_evaluate(ctx, "oracle", "test_train")


def stage_true_concepts(ctx: RunContext) -> dict[str, Any]:
    """A "human with the concepts": logistic regression on the true core-concept annotations of D."""
    from sklearn.linear_model import LogisticRegression

    core = ctx.world.vocabulary.kinds() == "core"
    if not core.any():
        ctx.note("no core concept is annotated, so there is no true-concepts reference (methods.true_concepts)")
        return {"features": 0}
    train, test = ctx.data.train, ctx.data.test_eval
    clf = LogisticRegression(C=ctx.config.true_concepts.C, max_iter=1000).fit(train.concepts[:, core], train.labels)
    ctx.evaluate("true_concepts", clf.predict_proba(test.concepts[:, core]))
    return {"features": int(core.sum())}
