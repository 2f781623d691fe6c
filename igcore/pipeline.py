"""The end-to-end run: the selected stages of :data:`igcore.stages.STAGES` into a new run directory, in pipeline
order or, up to ``runtime.stages`` at once, each as soon as the stages it waits for have finished (:func:`run_stages`).

Before any work: the stage selection is checked (every requirement has an earlier provider), the
device is resolved, the world is built and every stage's preflight check runs, so bad input fails
in seconds with one line, not after training. Each stage's wall time, requirements and what it
reports go into the manifest, and metrics are flushed after each stage, so a failed run shows how
far it got. The run is assembled in a temporary directory and renamed into place when complete.
"""

from __future__ import annotations

import contextvars
import datetime as _dt
import queue
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from igcore.baseline import resolve_device
from igcore.config import Config
from igcore.context import ProgressFn, RunContext
from igcore.executors import count_images, make_executor
from igcore.runtime import (
    Concurrency,
    RuntimeConfig,
    heap_in_effect,
    keep_freed_memory,
    thread_policy,
    training_precision,
    warm_kernels,
)
from igcore.schema import pred_column, proba_column
from igcore.stages import Stage, predecessors, select_stages
from igcore.store import RunStore
from igcore.worlds import World, build_world
from igcore.worlds.images import ProgressFn as LoadProgressFn
from igcore.worlds.imageset import decoding

FinishFn = Callable[[str, float], None]  # (stage name, seconds)
#: Seconds between two looks at the CPUs while a ready stage is held back for them (igcore.runtime.Concurrency).
POLL_S = 1.0


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


@dataclass
class _Finished:
    stage: Stage
    seconds: float
    info: dict[str, Any]
    error: BaseException | None


def _descendants(after: dict[str, tuple[str, ...]]) -> dict[str, set[str]]:
    """For each stage, every stage that waits for it, directly or not."""
    below: dict[str, set[str]] = {name: set() for name in after}
    for name in reversed(list(after)):  # pipeline order: a stage's dependants come after it
        for before in after[name]:
            below[before] |= {name, *below[name]}
    return below


def _run_one(stage: Stage, ctx: RunContext, threads: int, finished: queue.Queue[_Finished]) -> None:
    """One stage in its own thread: torch's intra-op threads of this thread set, what it reports handed back."""
    start = time.perf_counter()
    try:
        if threads:
            torch.set_num_threads(threads)  # a per-thread setting in torch
        ctx.enter(stage.name, stage.writes)
        images = count_images()
        info = stage.run(ctx) or {}
        if images[0]:  # which executor ran this stage's per-image work, on how many images
            info["per_image"] = {"executor": ctx.executor.name, "images": images[0]}
        finished.put(_Finished(stage, time.perf_counter() - start, info, None))
    except BaseException as e:  # noqa: BLE001  (re-raised by the pipeline's thread)
        finished.put(_Finished(stage, time.perf_counter() - start, {}, e))


def run_stages(
    selected: Sequence[Stage], ctx: RunContext, runtime: RuntimeConfig, on_stage: ProgressFn | None = None,
    on_finish: FinishFn | None = None,
) -> None:
    """Run ``selected`` (pipeline order), up to ``runtime.stages`` at once, each in its own thread.

    A stage starts once the stages it waits for have finished (:func:`igcore.stages.predecessors`: the providers
    of what it requires or reads), so it reads what it would read one stage after the other, and the run's files
    are the same (:meth:`RunWriter.in_stage_order` restores the pipeline's order in them). Of the stages ready, those
    more stages wait for start first (erm and the concept model before the oracle, which fewer stages wait for), then pipeline
    order; one at a time, it is the pipeline order. With ``runtime.stages`` null, a stage starts beside a running one
    only while other processes leave the CPUs for it (:class:`igcore.runtime.Concurrency`, looked at again every
    :data:`POLL_S` while a stage waits); each stage's record says when it started, how many stages ran then and how
    busy other processes kept the CPUs (``schedule``). ``on_stage(name, i, total)`` is called as the i-th stage starts,
    ``on_finish(name, seconds)`` as a stage finishes (after its record is in the manifest).
    The first stage to fail stops the run: no further stage starts, the running ones finish, its error is raised.
    """
    config, writer = ctx.config, ctx.writer
    # torch's one-time kernel initialisation done in this thread, before stage threads race on it
    writer.manifest["warm_seconds"] = round(warm_kernels(ctx.device), 3)
    ctx.concurrency = concurrency = Concurrency(runtime)
    workers, threads = concurrency.limit, runtime.stage_threads()
    after = predecessors(selected, config)
    order = {s.name: i for i, s in enumerate(selected)}
    below = _descendants(after)
    first: Callable[[Stage], tuple[int, int]] = (
        (lambda s: (-len(below[s.name]), order[s.name])) if workers > 1 else (lambda s: (0, order[s.name]))
    )
    pending, done, running = list(selected), set[str](), 0
    finished: queue.Queue[_Finished] = queue.Queue()
    failure: BaseException | None = None
    started, held = 0, False
    began, launched = time.perf_counter(), dict[str, dict[str, Any]]()
    while pending or running:
        if failure is None:
            ready = sorted((s for s in pending if all(p in done for p in after[s.name])), key=first)
            room = (concurrency.at_once() if ready and running + len(ready) > 1 else workers) - running
            held = len(ready) > max(0, room)  # a stage is ready, but the CPUs are taken
            for stage in ready[: max(0, room)]:
                pending.remove(stage)
                if on_stage:
                    on_stage(stage.name, started, len(selected))
                started += 1
                running += 1
                launched[stage.name] = {"started_s": round(time.perf_counter() - began, 2), "stages_at_once": running,
                                        **({"others_busy_cpus": round(concurrency.others, 2)} if concurrency.adaptive else {})}
                context = contextvars.copy_context()  # the caller's context variables (how images are decoded)
                threading.Thread(target=context.run, args=(_run_one, stage, ctx, threads, finished),
                                 name=f"stage-{stage.name}", daemon=True).start()
        if not running:
            break
        try:  # a stage held back for the CPUs looks again after POLL_S: the other process may have finished
            result = finished.get(timeout=POLL_S if held else None)
        except queue.Empty:
            continue
        running -= 1
        if result.error is not None:
            failure = failure or result.error
            continue
        done.add(result.stage.name)
        writer.record_stage(result.stage.name, result.seconds, requires=list(result.stage.requirements(config)),
                            provides=list(result.stage.provides), schedule=launched[result.stage.name], **result.info)
        if on_finish:
            on_finish(result.stage.name, result.seconds)
    if failure is not None:
        raise failure


def run_pipeline(
    config: Config,
    out: str | Path = "runs",
    on_stage: ProgressFn | None = None,
    stages: Sequence[str] | None = None,
    progress: bool = True,
    on_load: LoadProgressFn | None = None,
    on_finish: FinishFn | None = None,
) -> Path:
    """Run the selected stages (default: :func:`igcore.stages.select_stages`) into a new run directory.

    Returns the final run directory. Raises :class:`~igcore.errors.InputError` for bad input before any
    heavy work.
    """
    if config.runtime.keep_freed_memory:
        keep_freed_memory()
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
            writer.manifest["heap"] = heap_in_effect()  # the malloc settings in effect (igcore.runtime.keep_freed_memory)
            executor = make_executor(config, progress, on_load)  # per-image work reports on_load(done, total)
            # a linear head on frozen features (features.backbone) trains in float32: its cost is the features, read once
            precision = "float32" if config.features.backbone else training_precision(config.runtime.precision, device)
            writer.manifest["precision"] = precision  # of the training steps (igcore.runtime.training_precision)
            ctx = RunContext(config, world, writer, device, progress=progress, precision=precision, executor=executor)
            writer.manifest["stages_at_once"] = config.runtime.concurrent_stages()  # at most: igcore.pipeline.run_stages
            for text in world.notes:
                writer.note("world", text)
            names = [s.name for s in selected]
            total_start = time.perf_counter()
            try:
                if any(s.per_image for s in selected):  # e.g. not for --stages world: no Ray cluster started for nothing
                    executor.connect()  # here: Ray must not be initialised in a stage's thread (RayExecutor.connect)
                run_stages(selected, ctx, config.runtime, on_stage, on_finish)
            finally:
                executor.close()
                writer.in_stage_order(names)
                # whether fewer ran at once while other processes kept the CPUs busy (igcore.runtime.Concurrency; each
                # stage's ``schedule`` says how many did)
                writer.manifest["stages_adaptive"] = bool(ctx.concurrency and ctx.concurrency.adaptive)
            if ctx.splits is not None:  # the methods in the order of the stages that evaluated them
                ctx.evaluations = dict(sorted(ctx.evaluations.items(), key=lambda kv: names.index(writer.owner(f"methods.{kv[0]}"))))
                writer.table("predictions", predictions_table(ctx))
            writer.manifest["total_seconds"] = round(time.perf_counter() - total_start, 3)
            if on_stage:
                on_stage("done", len(selected), len(selected))
    return writer.final_path
