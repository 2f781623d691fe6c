"""Crash safety by killing, the short version of bench/bench_crash.py (runs of three stages, world, erm and
oracle, so it takes minutes rather than many): SIGKILL ``igcore run`` 3 times, a
microscope recompute 2 times and a judgments writer 2 times at seeded random moments, then check what
the stores promise (see the bench's docstring): nothing half-written is listed as a run, leftovers are
listed as interrupted and cleaned, a half-published recompute is finished by its journal with metrics
matching its folder, no committed rating is lost or duplicated, and the next run and recompute succeed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench import bench_crash


@pytest.mark.slow
def test_kills_leave_the_stores_consistent(tmp_path: Path) -> None:
    log: list[str] = []
    results = bench_crash.run_all((3, 2, 2), seed=1, work=tmp_path, log=log, stages=bench_crash.SHORT_STAGES)
    assert bench_crash.problems(results) == [], "\n".join(log)
    runs, _ = results["runs"]
    recomputes, _, _ = results["recomputes"]
    assert len(runs) == 3 and len(recomputes) == 2 and len(results["judgments"]) == 2
    assert any(t.killed for t in runs), "no kill landed while the run was being written"
    assert all(t.killed for t in results["judgments"])


def test_the_checks_catch_a_mix_and_a_partial_run(runs_dir: Path, tmp_path: Path) -> None:
    """The checks can fail: metrics of one model set beside a folder of another, and a run missing a file."""
    run_dir = Path(shutil.copytree(runs_dir / "tiny", tmp_path / "runs" / "tiny"))
    assert bench_crash.check_recompute(run_dir)[0] == []
    assert bench_crash.check_runs(tmp_path / "runs", bench_crash.files_of(run_dir)) == []
    metrics = json.loads((run_dir / "metrics.json").read_text())
    del metrics["microscope"]["oracle"]
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    problems, _ = bench_crash.check_recompute(run_dir)
    assert len(problems) == 1 and "microscope/ holds" in problems[0]
    reference = bench_crash.files_of(run_dir)
    (run_dir / "tables" / "predictions.parquet").unlink()
    problems = bench_crash.check_runs(tmp_path / "runs", reference)
    assert len(problems) == 1 and "lacks 1 file" in problems[0]


def test_runs_are_compared_with_attribution_parts_masked(runs_dir: Path, tmp_path: Path) -> None:
    """Cached attribution parts get random names in every run: another name is the same run, a missing part is not."""
    run_dir = Path(shutil.copytree(runs_dir / "tiny", tmp_path / "runs" / "tiny"))
    reference = bench_crash.files_of(run_dir)
    parts = sorted(run_dir.glob("microscope/attributions/*/*/part-*.safetensors"))
    assert parts, "the tiny run caches attribution maps"
    parts[0].rename(parts[0].with_name("part-0123456789ab.safetensors"))
    assert bench_crash.check_runs(tmp_path / "runs", reference) == []
    parts = sorted(run_dir.glob("microscope/attributions/*/*/part-*.safetensors"))
    parts[0].unlink()
    problems = bench_crash.check_runs(tmp_path / "runs", reference)
    assert len(problems) == 1 and "lacks 1 file" in problems[0]
