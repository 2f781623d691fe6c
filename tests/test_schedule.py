"""Stages that run at once (igcore.pipeline.run_stages, ``runtime.stages``): the partial order they start in, what
starts first, a failure, and the files of a run that do not depend on which thread finished first."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from igcore.config import load_config
from igcore.context import RunContext
from igcore.pipeline import run_stages
from igcore.runtime import Concurrency, CpuGauge, RuntimeConfig
from igcore.stages import Stage, predecessors, select_stages, stage_named
from igcore.store.writer import RunWriter


@dataclass(frozen=True)
class _Step(Stage):
    """A stage whose function is given directly (the real ones are imported by their dotted path)."""

    body: Callable[[RunContext], dict[str, Any] | None] = lambda ctx: None

    def run(self, ctx: RunContext) -> dict[str, Any]:
        return self.body(ctx) or {}


def _step(name: str, requires: tuple[str, ...] = (), body: Callable[[RunContext], Any] = lambda ctx: None) -> _Step:
    return _Step(name, "", requires, (name,), frozenset({name}), name, body=body)


def _context(tmp_path: Path) -> RunContext:
    config = load_config()
    return RunContext(config, None, RunWriter(tmp_path, "schedule", {}), torch.device("cpu"))  # type: ignore[arg-type]


def test_the_default_stages_wait_for_what_they_read() -> None:
    config = load_config()
    after = predecessors(select_stages(config), config)
    assert after["world"] == ()
    assert set(after["concepts"]) == {"world"}  # the concept model reads no model: it trains beside erm
    assert set(after["vocabulary"]) == {"world", "concepts", "discover"}  # discovered concepts join the vocabulary
    assert "ig" in after["microscope"] and "discover" in after["microscope"]  # read without being required
    assert "student" in after["discover_effects"]


def test_independent_stages_run_at_once_and_a_dependant_waits(tmp_path: Path) -> None:
    both = threading.Barrier(2, timeout=20)  # passes only when a and b run at the same time
    seen: list[str] = []

    def meet(ctx: RunContext) -> None:
        both.wait()
        ctx.write_metrics({ctx.stage: threading.current_thread().name})

    def last(ctx: RunContext) -> None:
        seen.extend(sorted(ctx.writer.metrics))

    ctx = _context(tmp_path)
    run_stages([_step("a", body=meet), _step("b", body=meet), _step("c", ("a", "b"), last)], ctx, RuntimeConfig(stages=2))
    assert seen == ["a", "b"]  # c started after both had written
    assert ctx.writer.metrics["a"] != ctx.writer.metrics["b"]  # two threads
    assert sorted(ctx.writer.manifest["stages"]) == ["a", "b", "c"]


def test_the_writer_puts_what_stages_wrote_in_pipeline_order(tmp_path: Path) -> None:
    writer = RunWriter(tmp_path, "order", {})
    writer.write_metrics("oracle", {"methods.oracle": 1, "late": 0})  # oracle finished first
    writer.note("oracle", "second")
    writer.record_stage("oracle", 1.0)
    writer.write_metrics("erm", {"methods.erm": 2, "baseline": 3})
    writer.note("erm", "first")
    writer.note("erm", "first, again")
    writer.record_stage("erm", 2.0)
    writer.in_stage_order(["world", "erm", "oracle"])
    assert list(writer.metrics) == ["methods", "baseline", "late"] and list(writer.metrics["methods"]) == ["erm", "oracle"]
    assert list(writer.manifest["stages"]) == ["erm", "oracle"]
    assert [n["note"] for n in writer.manifest["notes"]] == ["first", "first, again", "second"]
    assert (tmp_path / "metrics.json").read_text().index('"erm"') < (tmp_path / "metrics.json").read_text().index('"oracle"')


def test_what_more_stages_wait_for_starts_first(tmp_path: Path) -> None:
    started: list[str] = []

    def note(ctx: RunContext) -> None:
        started.append(ctx.stage)

    # "reference" comes first in the pipeline, but "train" and "score" lead to "report"
    stages = [_step("reference", body=note), _step("train", body=note), _step("score", body=note),
              _step("report", ("train", "score"), note)]
    run_stages(stages, _context(tmp_path), RuntimeConfig(stages=2))
    assert started[:2] in (["train", "score"], ["score", "train"]) and started[-1] == "report"
    started.clear()
    (tmp_path / "one").mkdir()
    run_stages(stages, _context(tmp_path / "one"), RuntimeConfig(stages=1))
    assert started == ["reference", "train", "score", "report"]  # one at a time: the pipeline's order


def test_a_failed_stage_stops_the_run_after_the_running_one_finishes(tmp_path: Path) -> None:
    finished: list[str] = []

    def fail(ctx: RunContext) -> None:
        raise ValueError("broken stage")

    def slow(ctx: RunContext) -> None:
        time.sleep(0.3)
        finished.append(ctx.stage)

    ctx = _context(tmp_path)
    stages = [_step("slow", body=slow), _step("fail", body=fail), _step("after", ("fail",), slow), _step("later", body=slow)]
    with pytest.raises(ValueError, match="broken stage"):
        run_stages(stages, ctx, RuntimeConfig(stages=2))
    assert finished == ["slow"]  # the running stage finished; nothing started after the failure
    assert list(ctx.writer.manifest["stages"]) == ["slow"]


def test_a_stage_reads_its_own_copy_of_a_model(tmp_path: Path) -> None:
    from igcore.context import TrainedClassifier

    ctx = _context(tmp_path)
    model = torch.nn.Linear(2, 2)
    ctx.classifiers["m"] = TrainedClassifier("m", model)  # type: ignore[arg-type]
    copies: dict[str, Any] = {}

    def take(ctx: RunContext) -> None:
        copies[ctx.stage] = ctx.classifier("m")
        assert ctx.classifier("m") is copies[ctx.stage]  # one copy per stage

    run_stages([_step("x", body=take), _step("y", body=take)], ctx, RuntimeConfig(stages=2))
    assert copies["x"] is not copies["y"] and model not in copies.values()
    assert torch.equal(copies["x"].weight, model.weight)
    assert ctx.classifier("m") is model  # outside a stage: the model itself


class _Load:
    """A :class:`~igcore.runtime.CpuGauge` whose readings are given: other processes' busy CPUs, one per reading
    (the last repeats)."""

    def __init__(self, *readings: float) -> None:
        self.readings = list(readings)

    def others_busy(self) -> float:
        return self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]


def _adaptive(monkeypatch: pytest.MonkeyPatch, *readings: float) -> None:
    """run_stages with the default ``runtime.stages`` (null) on two CPUs, one thread per stage, under the given load."""
    import igcore.pipeline

    monkeypatch.setattr(igcore.pipeline, "Concurrency", lambda runtime: Concurrency(runtime, gauge=_Load(*readings), cpus=2))  # type: ignore[arg-type]
    monkeypatch.setattr(igcore.pipeline, "POLL_S", 0.05)


def _spans(seconds: float, spans: dict[str, tuple[float, float]]) -> Callable[[RunContext], None]:
    def body(ctx: RunContext) -> None:
        start = time.perf_counter()
        time.sleep(seconds)
        spans[ctx.stage] = (start, time.perf_counter())
    return body


def test_the_gauge_counts_the_cpu_time_of_other_processes_only() -> None:
    # (wall s, machine busy CPU-s, this process's CPU-s)
    readings = iter([(0.0, 100.0, 10.0), (2.0, 103.0, 11.0), (2.1, 103.1, 11.1), (3.0, 103.5, 11.5)])
    gauge = CpuGauge(min_window=0.5, clock=lambda: next(readings))
    assert gauge.others_busy() == pytest.approx(1.0)  # 3 CPU-s in 2 s, of which 1 this process's own
    assert gauge.others_busy() == pytest.approx(1.0)  # 0.1 s later: too short a span, the previous reading
    assert gauge.others_busy() == pytest.approx(0.0)  # over the last second all of it this process's own


def test_the_gauge_sees_a_busy_process() -> None:
    import subprocess
    import sys

    busy = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 3\nwhile time.time() < end: pass"])
    try:
        gauge = CpuGauge()
        time.sleep(1.0)
        assert gauge.others_busy() >= 0.4  # one busy loop: about a CPU, less where the machine is shared
    finally:
        busy.kill()
        busy.wait()


@pytest.mark.parametrize(("others", "at_once"), [(0.0, 2), (0.3, 2), (0.8, 1), (1.0, 1), (2.0, 1)])
def test_stages_at_once_are_what_the_free_cpus_hold(others: float, at_once: int) -> None:
    assert Concurrency(RuntimeConfig(threads=1), gauge=_Load(others), cpus=2).at_once() == at_once  # type: ignore[arg-type]
    assert Concurrency(RuntimeConfig(threads=1, stages=2), gauge=_Load(others), cpus=2).at_once() == 2  # set: fixed


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="the default runs stages at once only on two CPUs or more")
def test_a_busy_cpu_holds_the_second_stage_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _adaptive(monkeypatch, 1.0)
    spans: dict[str, tuple[float, float]] = {}
    ctx = _context(tmp_path)
    run_stages([_step("a", body=_spans(0.3, spans)), _step("b", body=_spans(0.3, spans))], ctx, RuntimeConfig(threads=1))
    first, second = sorted(spans.values())
    assert second[0] >= first[1]  # one after the other
    schedule = {name: record["schedule"] for name, record in ctx.writer.manifest["stages"].items()}
    assert schedule["a"]["stages_at_once"] == schedule["b"]["stages_at_once"] == 1
    assert schedule["b"]["others_busy_cpus"] == 1.0


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="the default runs stages at once only on two CPUs or more")
def test_a_held_stage_starts_once_the_cpu_is_free_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _adaptive(monkeypatch, 1.0, 1.0, 0.0)  # busy at the start, free from the third look on
    spans: dict[str, tuple[float, float]] = {}
    ctx = _context(tmp_path)
    run_stages([_step("long", body=_spans(1.5, spans)), _step("short", body=_spans(0.1, spans))], ctx, RuntimeConfig(threads=1))
    schedule = {name: record["schedule"] for name, record in ctx.writer.manifest["stages"].items()}
    assert schedule["short"]["started_s"] >= schedule["long"]["started_s"] + 0.1  # held back for two looks of POLL_S
    assert spans["short"][0] < spans["long"][1] and schedule["short"]["stages_at_once"] == 2  # beside the long one


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="the default runs stages at once only on two CPUs or more")
def test_without_readable_cpu_times_the_default_runs_up_to_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import igcore.runtime

    tried: list[bool] = []

    def unreadable() -> tuple[float, float, float]:
        tried.append(True)
        raise PermissionError("/proc/stat")

    monkeypatch.setattr(igcore.runtime, "_cpu_clock", unreadable)
    concurrency = Concurrency(RuntimeConfig(threads=1), cpus=2)
    assert tried and concurrency.limit > 1  # the gauge was tried, where more than one stage may run at once
    assert not concurrency.adaptive and concurrency.at_once() == concurrency.limit


def test_a_run_records_when_each_stage_started_and_whether_it_chose_how_many_ran(runs_dir: Path) -> None:
    from igcore.store import RunStore

    manifest = RunStore(runs_dir).load("tiny").manifest
    schedules = [record["schedule"] for record in manifest["stages"].values()]
    assert schedules[0]["started_s"] == 0.0 and all(0 <= s["started_s"] < manifest["total_seconds"] for s in schedules)
    assert all(1 <= s["stages_at_once"] <= manifest["stages_at_once"] for s in schedules)
    assert manifest["stages_adaptive"] is (manifest["config"]["runtime"]["stages"] is None and manifest["stages_at_once"] > 1)
    # an adaptive run records, for every stage, how busy other processes kept the CPUs when it started; a fixed one does not
    assert all(("others_busy_cpus" in s) is manifest["stages_adaptive"] for s in schedules)


def test_the_executor_is_started_in_the_callers_thread_before_any_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A local Ray cluster must be initialised by a thread that outlives the work: one initialised in a stage's thread
    (the features stage, the first to map) terminated the process, exit status 1 and no message, at the first map of a
    later stage, once that thread had ended (igcore.executors.RayExecutor.connect). So run_pipeline connects the
    executor itself, in its caller's thread, before the first stage starts, and closes it after the last."""
    import igcore.pipeline
    from igcore.executors import LocalExecutor
    from igcore.pipeline import run_pipeline
    from testkit.runs import tiny_sets

    events: list[tuple[str, str]] = []

    class Recording(LocalExecutor):
        def connect(self) -> None:
            events.append(("connect", threading.current_thread().name))

        def close(self) -> None:
            events.append(("close", threading.current_thread().name))

    monkeypatch.setattr(igcore.pipeline, "make_executor", lambda config, progress=True, on_progress=None: Recording(progress, on_progress))
    started = lambda name, i, total: events.append(("stage " + name, threading.current_thread().name))  # noqa: E731
    config = load_config(None, [*tiny_sets(), "run_id=connect"])
    run_pipeline(config, tmp_path, stages=["world"], progress=False, on_stage=started)
    caller = threading.current_thread().name
    # the world works on no image through the executor: no cluster is started for it
    assert events == [("stage world", caller), ("close", caller), ("stage done", caller)]
    events.clear()
    world = stage_named("world")
    monkeypatch.setattr(igcore.pipeline, "select_stages", lambda config, stages: [dataclasses.replace(world, per_image=True)])
    run_pipeline(config.model_copy(update={"run_id": "connect-per-image"}), tmp_path, stages=["world"], progress=False, on_stage=started)
    assert events == [("connect", caller), ("stage world", caller), ("close", caller), ("stage done", caller)]


def test_every_stage_that_worked_on_images_through_the_executor_says_it_may(runs_dir: Path) -> None:
    """A stage's per-image work on the executor (the manifest's ``per_image``, counted as it runs) is declared
    (``Stage.per_image``): run_pipeline starts a Ray cluster in its own thread only for selections with such a stage,
    and one started by a stage's thread would end the process (the test above)."""
    manifest = json.loads((runs_dir / "tiny" / "manifest.json").read_text())
    mapped = {name for name, record in manifest["stages"].items() if record.get("per_image")}
    assert {"microscope", "discover", "discover_effects"} <= mapped  # the tiny run's per-image work
    assert all(stage_named(name).per_image for name in mapped), mapped


def test_a_ray_address_where_nothing_answers_is_one_line_not_minutes_of_retries() -> None:
    """``ray.init`` retries an address where nothing listens for minutes, printing only its own warnings; the executor
    checks the host and port first (igcore.executors.check_reachable) and says what to fix in one line."""
    import socket

    from igcore.errors import InputError
    from igcore.executors import check_reachable

    with socket.socket() as listening:  # a port where something answers
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        check_reachable(f"127.0.0.1:{port}")
        check_reachable(f"ray://127.0.0.1:{port}")
    with socket.socket() as closed:  # a free port, now closed: nothing answers there
        closed.bind(("127.0.0.1", 0))
        free = closed.getsockname()[1]
    with pytest.raises(InputError, match=f"cannot reach the Ray cluster at ray.address='127.0.0.1:{free}'.*leave both unset"):
        check_reachable(f"127.0.0.1:{free}")
    with pytest.raises(InputError, match="is not host:port"):
        check_reachable("head:sixtythree")
    check_reachable("auto")  # Ray's to resolve: nothing is checked here
    with pytest.raises(InputError, match="ray.address='ray://127.0.0.1'"):  # the Ray Client's port, where nothing answers
        check_reachable("ray://127.0.0.1")
