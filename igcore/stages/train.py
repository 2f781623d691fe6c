"""Stages that train the reference classifiers: ``erm`` (the baseline), ``oracle`` and ``true_concepts``."""

from __future__ import annotations

from typing import Any

from igcore.context import RunContext
from igcore.worlds.base import Split


def _train_and_evaluate(ctx: RunContext, name: str, data: Split) -> dict[str, Any]:
    val = ctx.data.val
    model = ctx.new_classifier(name).fit(data.images, data.labels, val=(val.images, val.labels))
    ctx.add_classifier(name, model)
    val_acc = model.score(val.images, val.labels)
    ctx.evaluate(name, model.predict_proba(ctx.data.test_eval.images), val_acc=val_acc, best_epoch=model.best_epoch_)
    return {"val_acc": round(val_acc, 4), "best_epoch": model.best_epoch_}


def stage_erm(ctx: RunContext) -> dict[str, Any]:
    """Empirical risk minimisation on D (the baseline put under the microscope)."""
    return _train_and_evaluate(ctx, "erm", ctx.data.train)


def stage_oracle(ctx: RunContext) -> dict[str, Any]:
    """Same architecture trained on D′_train *with its labels*: an evaluation reference only."""
    return _train_and_evaluate(ctx, "oracle", ctx.data.test_train)


def stage_true_concepts(ctx: RunContext) -> dict[str, Any]:
    """A "human with the concepts": logistic regression on the true core-concept annotations of D."""
    from sklearn.linear_model import LogisticRegression

    core = ctx.world.vocabulary.kinds() == "core"
    train, test = ctx.data.train, ctx.data.test_eval
    clf = LogisticRegression(C=ctx.config.true_concepts.C, max_iter=1000).fit(train.concepts[:, core], train.labels)
    ctx.evaluate("true_concepts", clf.predict_proba(test.concepts[:, core]))
    return {"features": int(core.sum())}
