"""Benchmark: the thread policy (``runtime.threads``, ``runtime.stages``), per stage of the default pipeline, with and without a busy core.

    python -m bench.bench_threads [--set KEY=VALUE ...] [--repeats 1]

Runs the default stages (``python -m igcore run``, each in its own process, so that torch's inter-op pool is
fresh) under four policies (:data:`POLICIES`): one thread (``runtime.threads=1``, ``runtime.interop_threads=1``;
the engine's default on a 2-CPU machine, where it means one thread fewer than the CPUs) and the libraries' default
(``0``: one torch and BLAS thread per core), both with the stages one after the other (``runtime.stages=1``), one
thread per stage with two stages always at once (``runtime.stages=2``), and the engine's default as a whole (no
setting: two stages at once while other processes leave the CPUs free); each once on the machine as it is and once
while a competing CPU-bound process (a pure-Python loop pinned to core 0) keeps one core busy. The settings
default to :data:`testkit.runs.TINY` (every stage, small sizes: a few minutes in all), ``--set`` overrides them.

Reported per stage and for the run's wall time: seconds in each of the eight cases (median over ``--repeats``) and the
slowdown a busy core causes under each policy (busy / idle). The machine may be shared with other jobs (the load average
before and after is reported): compare the columns of one table, not tables of different invocations.
:func:`measure` returns the rows, :func:`markdown` the report; :func:`main` writes it into the
``bench-threads`` block of docs/PERFORMANCE.md (generator ``threads`` of :data:`bench.registry.GENERATORS`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import ROOT, Report, load_average
from igcore.runtime import BLAS_ENV, RuntimeConfig
from testkit.runs import tiny_sets

#: The policies compared: one thread and the libraries' default (one per core), stages one after the other; one thread
#: per stage, always two stages at once; and the engine's default (no setting: on two cores one thread per stage, two
#: stages at once while other processes leave the CPUs free, else one: igcore.runtime.Concurrency).
POLICIES = {
    "1 thread": ("runtime.threads=1", "runtime.interop_threads=1", "runtime.stages=1"),
    "libraries' default": ("runtime.threads=0", "runtime.interop_threads=0", "runtime.stages=1"),
    "1 thread, 2 stages at once": ("runtime.threads=1", "runtime.interop_threads=1", "runtime.stages=2"),
    "the engine's default": (),
}
#: The policy the acceptance line reads, and its target: with another process busy on one core, no stage slower than
#: this many times its idle seconds.
DEFAULT, TARGET = "the engine's default", 1.5
#: The row of a run's own wall time (its manifest's ``total_seconds``): with stages at once, not the stages' sum.
TOTAL = "**run (wall)**"
#: The pure-Python loop that keeps one core busy (pinned, so it competes with one of the run's threads).
BUSY_LOOP = "import os\nos.sched_setaffinity(0, {%d})\nwhile True:\n    pass\n"


@contextmanager
def busy_core(core: int = 0) -> Iterator[None]:
    """A CPU-bound process pinned to ``core`` while the block runs."""
    proc = subprocess.Popen([sys.executable, "-c", BUSY_LOOP % core])
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


def stage_seconds(sets: Sequence[str], out: Path) -> dict[str, float]:
    """One run of the default stages with ``sets`` in a fresh process; the seconds of each stage (manifest)."""
    env = {k: v for k, v in os.environ.items() if k not in BLAS_ENV}  # the policy alone decides the threads
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    args = [sys.executable, "-m", "igcore", "run", "--quiet", "--out", str(out), *(a for s in sets for a in ("--set", s))]
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    run = Path(done.stdout.strip().splitlines()[-1])
    manifest = json.loads((run / "manifest.json").read_text())
    return {**{name: record["seconds"] for name, record in manifest["stages"].items()}, TOTAL: manifest["total_seconds"]}


def measure(sets: Sequence[str], repeats: int = 1, out: Path | None = None) -> list[dict[str, Any]]:
    """Rows ``{stage, policy, competing, seconds}`` (median over ``repeats``) for every policy x busy core or not."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-threads-") as tmp:
        root = out or Path(tmp)
        for competing in (False, True):
            times: dict[str, dict[str, list[float]]] = {policy: {} for policy in POLICIES}
            with busy_core() if competing else _nothing():
                for _ in range(repeats):
                    for policy, policy_sets in POLICIES.items():  # interleaved: drift hits both alike
                        for stage, seconds in stage_seconds([*sets, *policy_sets], root).items():
                            times[policy].setdefault(stage, []).append(seconds)
                        print(f"  {'busy core' if competing else 'idle'} / {policy}: done (load {load_average()})", flush=True)
            for policy, stages in times.items():
                for stage, values in stages.items():
                    rows.append({"stage": stage, "policy": policy, "competing": competing, "seconds": statistics.median(values)})
    return rows


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def markdown(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The per-stage table: seconds per policy idle and with a busy core, and each policy's busy/idle slowdown."""
    cell = {(r["stage"], r["policy"], r["competing"]): r["seconds"] for r in rows}
    stages = list(dict.fromkeys(r["stage"] for r in rows))
    names = list(POLICIES)
    head = [f"{p}, idle (s)" for p in names] + [f"{p}, busy core (s)" for p in names] + [f"{p}: busy / idle" for p in names]
    lines = ["| stage | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    for stage in stages:  # the stages, then the run's wall time (TOTAL)
        values = [cell[(stage, p, c)] for c in (False, True) for p in names]
        ratios = [_ratio(cell[(stage, p, True)], cell[(stage, p, False)]) for p in names]
        shown = [f"**{v:.2f}**" if stage == TOTAL else f"{v:.2f}" for v in values]
        lines.append(f"| {stage} | " + " | ".join(shown) + " | " + " | ".join(ratios) + " |")
    return lines


def verdict(rows: Sequence[dict[str, Any]], policy: str = DEFAULT) -> str:
    """The largest busy/idle slowdown of a stage under ``policy`` (stages timed at 0.05 s or more idle) against
    :data:`TARGET`."""
    cell = {(r["stage"], r["competing"]): r["seconds"] for r in rows if r["policy"] == policy}
    ratios = {stage: cell[(stage, True)] / idle for (stage, competing), idle in cell.items()
              if not competing and stage != TOTAL and idle >= 0.05}
    worst = max(ratios, key=ratios.__getitem__)
    met = "met" if ratios[worst] <= TARGET else "not met"
    return (f"**A busy core under {policy}:** no stage slower than {ratios[worst]:.2f}× its idle seconds ({worst}), "
            f"against a target of {TARGET}×: {met}.")


def _ratio(busy: float, idle: float) -> str:
    """busy / idle, or – for a stage too short to time (under 0.05 s idle)."""
    return f"{busy / idle:.2f}×" if idle >= 0.05 else "–"


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides on top of the tiny settings")
    ap.add_argument("--repeats", type=int, default=1, help="runs per case (the median is reported)")
    args = ap.parse_args(argv)
    report = Report("threads", argv)
    sets = [*tiny_sets(), *args.set]
    load_start = load_average()
    rows = measure(sets, args.repeats)
    lines = [
        "## Thread policy: one thread vs the libraries' default, with and without a busy core",
        "",
        f"Every default stage, the tiny settings (`testkit.runs.TINY`){' with ' + ', '.join(f'`{s}`' for s in args.set) if args.set else ''}; "
        f"median of {args.repeats} run(s) per case. The first two policies run the stages one after the other "
        "(`runtime.stages=1`), so that a stage's seconds are its own; the third always runs two stages at once "
        "(`runtime.stages=2`), where a stage's seconds include sharing the CPU with the other stage; the fourth is the "
        "engine's default (no setting): two stages at once while other processes leave the CPUs free, one after the "
        "other while they do not (decided as each stage starts, `igcore.runtime.Concurrency`; each stage's `schedule` "
        "in the manifest says how many ran at once). The last row is "
        "the run's own wall time (`total_seconds`). Busy core: a pure-Python loop pinned to core 0. Load average "
        f"(1/5/15 min) at start: {load_start}; at end: {load_average()}. The machine is shared with other jobs, so the "
        "columns of this table are comparable with each other only.",
        "",
        *markdown(rows),
        "",
        verdict(rows),
        "",
        f"The engine's default is `runtime.threads` = null, one thread fewer than the CPUs (at least one: "
        f"{RuntimeConfig().intra_op()} on this machine's {os.cpu_count()} CPUs), `runtime.interop_threads=1`, and "
        f"`runtime.stages` = null, up to two stages at once where there are two CPUs or more ({RuntimeConfig().concurrent_stages()} "
        f"here, each with {RuntimeConfig().stage_threads()} thread(s)), as many as the CPUs other processes leave free hold "
        "(igcore/runtime.py; the microscope's two lanes likewise); Ray workers run `ray.threads_per_worker` threads each. A run records the policy in "
        "effect in `manifest.json` (`threads`).",
    ]
    print("\n".join(lines))
    report.block("docs/PERFORMANCE.md", "bench-threads", "\n".join(lines), title="Performance")
    report.publish()


if __name__ == "__main__":
    main()
