"""The end-to-end run, stage by stage.

Each stage is a function ``stage(ctx) -> info`` registered in :data:`STAGES`, in order; the run
records every stage's wall time (and what the stage reports) in the manifest, and writes metrics
after each stage, so a failed run shows how far it got. Stage outputs that later work reuses
(concept scores, models) are stored in the run, so e.g. re-solving z* with a new prior only needs
the stored concept scores.
"""

from __future__ import annotations

import datetime as _dt
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from igcore.baseline import ImageClassifier, check_architecture, resolve_device
from igcore.errors import InputError
from igcore.evaluate import group_metrics
from igcore.store import RunStore, RunWriter
from igcore.worlds import Split, World, make_world

ProgressFn = Callable[[str, int, int], None]  # (stage name, index, total)


@dataclass
class RunContext:
    """Everything stages share: config, the world and its splits, the writer, results so far."""

    config: dict[str, Any]
    world: World
    writer: RunWriter
    device: torch.device
    splits: dict[str, Split] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, Any]:
        return self.writer.metrics

    @property
    def progress(self) -> bool:
        return bool(self.config.get("_progress", True))

    def classifier(self, name: str, **overrides: Any) -> ImageClassifier:
        """An :class:`ImageClassifier` with the run's baseline budget (every method gets the same)."""
        b = self.config["baseline"]
        params: dict[str, Any] = {
            "arch": b["arch"],
            "num_labels": len(self.world.classes),
            "image_size": self.world.image_size,
            "epochs": b["epochs"],
            "batch_size": b["batch_size"],
            "lr": b["lr"],
            "weight_decay": b["weight_decay"],
            "device": str(self.device),
            "seed": self.config["seed"],
            "progress": self.progress,
            "name": name,
        }
        params.update(overrides)
        return ImageClassifier(**params)

    def evaluate(self, method: str, proba_or_pred: np.ndarray, **extra: Any) -> dict[str, Any]:
        """Score predictions on D′_eval, store them under ``methods.<method>`` and in the predictions table."""
        test = self.splits["test_eval"]
        result = group_metrics(
            test.labels, proba_or_pred, test.groups, self.world.group_names(), self.splits["train"].groups
        )
        result.update(extra)
        self.metrics.setdefault("methods", {})[method] = result
        pred = proba_or_pred.argmax(1) if np.ndim(proba_or_pred) == 2 else np.asarray(proba_or_pred)
        self.artifacts.setdefault("predictions", {})[method] = pred
        if np.ndim(proba_or_pred) == 2:
            self.artifacts.setdefault("probabilities", {})[method] = np.asarray(proba_or_pred, dtype=np.float32)
        return result

    def save_model(self, name: str, model: ImageClassifier) -> None:
        model.save(self.writer.subdir(f"models/{name}"))
        self.models[name] = model


STAGES: list[tuple[str, Callable[[RunContext], dict[str, Any]]]] = []
#: Cheap input checks run before any stage, so bad input fails in a second, not after training.
PREFLIGHT: list[Callable[[dict[str, Any], World], None]] = []


def register_stage(name: str) -> Callable[[Callable[[RunContext], dict[str, Any]]], Callable[[RunContext], dict[str, Any]]]:
    def decorate(fn: Callable[[RunContext], dict[str, Any]]) -> Callable[[RunContext], dict[str, Any]]:
        STAGES.append((name, fn))
        return fn

    return decorate


def split_table(split: Split, world: World) -> pd.DataFrame:
    """Per-example metadata of a split (no pixels): label, group, background, concept annotations."""
    df = pd.DataFrame(
        {
            "index": np.arange(len(split)),
            "label": split.labels,
            "group": split.groups,
            "background": split.background,
        }
    )
    annotations = pd.DataFrame(split.concepts.astype(np.uint8), columns=[f"true_{c}" for c in world.vocabulary.ids])
    return pd.concat([df, annotations], axis=1)


@register_stage("world")
def stage_world(ctx: RunContext) -> dict[str, Any]:
    from igcore.worlds import SPLITS

    for name in SPLITS:
        ctx.splits[name] = ctx.world.split(name)
        ctx.writer.table(f"split_{name}", split_table(ctx.splits[name], ctx.world))
    test = ctx.splits["test_eval"]
    ctx.writer.tensors("test_eval", {"images": test.images, "masks": test.masks.astype(np.uint8)})
    bank = ctx.splits["concept_bank"]
    ctx.writer.tensors("concept_bank", {"images": bank.images, "concepts": bank.concepts})
    ctx.metrics["world"] = {
        "name": ctx.world.name,
        "classes": list(ctx.world.classes),
        "backgrounds": list(ctx.world.backgrounds),
        "groups": ctx.world.group_names(),
        "vocabulary": [{"id": c.id, "text": c.text, "kind": c.kind} for c in ctx.world.vocabulary.concepts],
        "sizes": {name: len(s) for name, s in ctx.splits.items()},
        "train_group_counts": dict(
            zip(ctx.world.group_names(), np.bincount(ctx.splits["train"].groups, minlength=len(ctx.world.group_names())).tolist(), strict=True)
        ),
    }
    from igcore.worlds.preview import contact_sheet  # works on any world through the World contract

    contact_sheet(ctx.world, ctx.writer.path / "contact_sheet.png")
    return {"images": int(sum(len(s) for s in ctx.splits.values()))}


def _train_and_evaluate(ctx: RunContext, name: str, split: str) -> dict[str, Any]:
    data, val = ctx.splits[split], ctx.splits["val"]
    model = ctx.classifier(name).fit(data.images, data.labels, val=(val.images, val.labels))
    ctx.save_model(name, model)
    val_acc = model.score(val.images, val.labels)
    ctx.evaluate(name, model.predict_proba(ctx.splits["test_eval"].images), val_acc=val_acc, best_epoch=model.best_epoch_)
    return {"val_acc": round(val_acc, 4), "best_epoch": model.best_epoch_}


@register_stage("erm")
def stage_erm(ctx: RunContext) -> dict[str, Any]:
    """Empirical risk minimisation on D (the baseline put under the microscope)."""
    return _train_and_evaluate(ctx, "erm", "train")


@register_stage("oracle")
def stage_oracle(ctx: RunContext) -> dict[str, Any]:
    """Same architecture trained on D′_train *with its labels*: an evaluation reference only."""
    return _train_and_evaluate(ctx, "oracle", "test_train")


@register_stage("true_concepts")
def stage_true_concepts(ctx: RunContext) -> dict[str, Any]:
    """A "human with the concepts": logistic regression on the true core-concept annotations of D."""
    from sklearn.linear_model import LogisticRegression

    core = ctx.world.vocabulary.kinds() == "core"
    train, test = ctx.splits["train"], ctx.splits["test_eval"]
    clf = LogisticRegression(C=ctx.config["true_concepts"]["C"], max_iter=1000).fit(train.concepts[:, core], train.labels)
    ctx.evaluate("true_concepts", clf.predict_proba(test.concepts[:, core]))
    return {"features": int(core.sum())}


def finish_predictions(ctx: RunContext) -> None:
    """Write the per-image predictions of every evaluated method on D′_eval."""
    test = ctx.splits["test_eval"]
    df = pd.DataFrame({"index": np.arange(len(test)), "label": test.labels, "group": test.groups, "background": test.background})
    for method, pred in ctx.artifacts.get("predictions", {}).items():
        df[f"pred_{method}"] = pred
    for method, proba in ctx.artifacts.get("probabilities", {}).items():
        for c, cls in enumerate(ctx.world.classes):
            df[f"p_{method}_{cls}"] = proba[:, c]
    ctx.writer.table("predictions", df)


def default_run_id(config: dict[str, Any]) -> str:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    w = config["world"]
    return f"{stamp}-{w['name']}-rho{w['rho']}-s{config['seed']}-{secrets.token_hex(2)}"


def make_world_from_config(config: dict[str, Any]) -> World:
    w = dict(config["world"])
    name = w.pop("name")
    return make_world(name, seed=config["seed"], **w)


def run_pipeline(
    config: dict[str, Any],
    out: str | Path = "runs",
    on_stage: ProgressFn | None = None,
    stages: list[str] | None = None,
) -> Path:
    """Run every registered stage (or the named subset, in registry order) into a new run directory.

    Returns the final run directory. Raises :class:`InputError` for bad input before any heavy work.
    """
    names = [n for n, _ in STAGES]
    if stages is not None:
        unknown = sorted(set(stages) - set(names))
        if unknown:
            raise InputError(f"unknown stage(s) {', '.join(unknown)}; stages are: {', '.join(names)}")
    selected = [(n, fn) for n, fn in STAGES if stages is None or n in stages]
    torch.manual_seed(config["seed"])
    check_architecture(config["baseline"]["arch"])
    device = resolve_device(config["device"])
    world = make_world_from_config(config)
    for check in PREFLIGHT:
        check(config, world)
    store = RunStore(out)
    run_id = config["run_id"] or default_run_id(config)
    public_config = {k: v for k, v in config.items() if not k.startswith("_")}
    with store.create(run_id, public_config) as writer:
        writer.manifest["device"] = str(device)
        ctx = RunContext(config, world, writer, device)
        total_start = time.perf_counter()
        for i, (name, fn) in enumerate(selected):
            if on_stage:
                on_stage(name, i, len(selected))
            start = time.perf_counter()
            info = fn(ctx) or {}
            writer.record_stage(name, time.perf_counter() - start, **info)
        finish_predictions(ctx)
        writer.manifest["total_seconds"] = round(time.perf_counter() - total_start, 3)
        if on_stage:
            on_stage("done", len(selected), len(selected))
    return store.root / run_id


# Stages defined in other modules register themselves on import, in this order.
from igcore import ig, peers  # noqa: E402,F401
from igcore.microscope import stage as _microscope_stage  # noqa: E402,F401
