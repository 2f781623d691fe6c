"""The end-to-end run: the selected stages of :data:`igcore.stages.STAGES`, in order, into a new run directory.

Before any work: the stage selection is checked (every requirement has an earlier provider), the
device is resolved, the world is built and every stage's preflight check runs, so bad input fails
in seconds with one line, not after training. Each stage's wall time, requirements and what it
reports go into the manifest, and metrics are flushed after each stage, so a failed run shows how
far it got. The run is assembled in a temporary directory and renamed into place when complete.
"""

from __future__ import annotations

import datetime as _dt
import secrets
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from igcore.baseline import resolve_device
from igcore.config import Config
from igcore.context import ProgressFn, RunContext
from igcore.executors import make_executor
from igcore.runtime import thread_policy
from igcore.schema import pred_column, proba_column
from igcore.stages import Stage, select_stages
from igcore.store import RunStore
from igcore.worlds import World, build_world
from igcore.worlds.images import ProgressFn as LoadProgressFn
from igcore.worlds.imageset import decoding


def default_run_id(config: Config) -> str:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    rho = getattr(config.world, "rho", None)
    return "-".join(p for p in (stamp, config.world.name, f"rho{rho}" if rho is not None else "", f"s{config.seed}", secrets.token_hex(2)) if p)


def predictions_table(ctx: RunContext) -> pd.DataFrame:
    """Every evaluated method's answers on D′_eval, one row per image (see :data:`igcore.schema.TABLES`)."""
    test = ctx.data.test_eval
    columns: dict[str, np.ndarray] = {"index": np.arange(len(test)), "label": test.labels, "group": test.groups, "background": test.background}
    for method, ev in ctx.evaluations.items():
        columns[pred_column(method)] = ev.predictions
    for method, ev in ctx.evaluations.items():
        if ev.probabilities is not None:
            for c, cls in enumerate(ctx.world.classes):
                columns[proba_column(method, cls)] = ev.probabilities[:, c]
    return pd.DataFrame(columns)


def prepare(
    config: Config, stages: Sequence[str] | None = None, on_load: LoadProgressFn | None = None
) -> tuple[list[Stage], torch.device, World]:
    """Everything checked before any work: the stage selection, the device, the world, each stage's preflight.

    Building the world reads a user's data set (every table checked, images decoded or read from the
    cache; ``on_load(done, total)`` reports the decoding), so a bad data set fails here, before training.
    """
    selected = select_stages(config, stages)
    device = resolve_device(config.device)
    with decoding("lazy" if config.executor == "ray" else "eager"):  # ray: images are decoded in its workers
        world = build_world(config.world, config.seed, on_load)
    for stage in selected:
        stage.check_inputs(config, world)
    return selected, device, world


def run_pipeline(
    config: Config,
    out: str | Path = "runs",
    on_stage: ProgressFn | None = None,
    stages: Sequence[str] | None = None,
    progress: bool = True,
    on_load: LoadProgressFn | None = None,
) -> Path:
    """Run the selected stages (default: :func:`igcore.stages.select_stages`) into a new run directory.

    Returns the final run directory. Raises :class:`~igcore.errors.InputError` for bad input before any
    heavy work.
    """
    with thread_policy(config.runtime) as threads:  # before any work: the world is drawn with torch
        torch.manual_seed(config.seed)
        start = time.perf_counter()
        selected, device, world = prepare(config, stages, on_load)
        prepare_seconds = time.perf_counter() - start
        store = RunStore(out)
        run_id = config.run_id or default_run_id(config)
        with store.create(run_id, config.public()) as writer:
            writer.manifest["device"] = str(device)
            writer.manifest["stages_selected"] = [s.name for s in selected]
            writer.manifest["prepare_seconds"] = round(prepare_seconds, 3)  # checks + building (loading) the world
            writer.manifest["executor"] = config.executor
            writer.manifest["threads"] = threads  # the thread policy in effect (igcore.runtime)
            executor = make_executor(config, progress, on_load)  # per-image work reports on_load(done, total)
            ctx = RunContext(config, world, writer, device, progress=progress, stage="world", executor=executor)
            for text in world.notes:
                ctx.note(text)
            total_start = time.perf_counter()
            try:
                for i, stage in enumerate(selected):
                    if on_stage:
                        on_stage(stage.name, i, len(selected))
                    ctx.stage, ctx.writes = stage.name, stage.writes
                    start, mapped = time.perf_counter(), executor.stats["images"]
                    info = stage.run(ctx) or {}
                    if executor.stats["images"] > mapped:  # which executor ran this stage's per-image work, on how many images
                        info["per_image"] = {"executor": executor.name, "images": executor.stats["images"] - mapped}
                    writer.record_stage(
                        stage.name, time.perf_counter() - start,
                        requires=list(stage.requirements(config)), provides=list(stage.provides), **info,
                    )
            finally:
                executor.close()
            if ctx.splits is not None:
                writer.table("predictions", predictions_table(ctx))
            writer.manifest["total_seconds"] = round(time.perf_counter() - total_start, 3)
            if on_stage:
                on_stage("done", len(selected), len(selected))
    return writer.final_path
