"""Stages that run at once (igcore.pipeline.run_stages, ``runtime.stages``): the partial order they start in, what
starts first, a failure, and the files of a run that do not depend on which thread finished first."""

from __future__ import annotations

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
from igcore.runtime import RuntimeConfig
from igcore.stages import Stage, predecessors, select_stages
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
