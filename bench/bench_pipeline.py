"""Speed and scale of the default pipeline: per-stage wall time and peak memory at 1×, 4×, … the
default split sizes, written to ``docs/PERFORMANCE.md``.

    python -m bench.bench_pipeline --scales 1,4             # the documented settings
    python -m bench.bench_pipeline --scales 1,4,16          # add 16× (about 16× the training time)
    python -m bench.bench_pipeline --scales 1 --compare HEAD~1   # and the default run of another commit beside this one
    python -m bench.bench_pipeline --compare published           # ... of the commit that last published the page
    python -m bench.bench_pipeline --compare published --variant runtime.keep_freed_memory=false  # ... and this code with it off
    python -m bench.bench_pipeline --compare published --repeats 3   # each column the median of 3 runs, taken in turns

``--compare REV`` answers "did this change make the default run slower?": the default run (1×, the same
``--set``) with the code of git revision REV (checked out into a temporary worktree) and with this code, one
after the other in one invocation on the same machine, each as its own ``python -m igcore run`` process, and the
per-stage seconds side by side. ``--compare published`` names the commit that the page's provenance record says
last published it (``HEAD~1`` when there is none, or it is not in this clone's history): after a run of
documentation-only commits, ``HEAD~1`` has the same code as this one and the comparison says nothing.
``--variant KEY=VALUE`` (repeatable) adds this code's default run with that setting, after the other two, as one more
column: what a runtime setting (the malloc policy, the threads) is worth, measured the same way. ``--repeats N`` runs
every column N times, in turns (REV, this code, each variant, then again), so that a slow spell of a shared machine
falls on every column alike; each cell is the median, and the page gives the process's wall time as median and
range, and its CPU seconds (user + system), which say how much work a run did whatever else the machine was doing.

Scale multiplies every split size of the config (the default's, or the one ``--set`` makes). Peak memory is the
process's maximum resident set size after each stage (``ru_maxrss``), so it shows which stage raised the
high-water mark. The microscope's parts (attributions, TCAV, …) are timed by the stage itself (its manifest entry).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from bench.common import ROOT, Report, lanes_sentence, load_average, read_record
from igcore.config import load_config
from igcore.pipeline import run_pipeline
from igcore.store import load_run_dir

SIZE_KEYS = ("n_train", "n_val", "n_test_train", "n_test_eval", "n_concept_bank")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", default="1,4")
    ap.add_argument("--out", default="runs/bench-pipeline")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--set", action="append", default=[], help="config overrides of every run (before scaling)")
    ap.add_argument("--compare", metavar="REV", help="also time the default run of git revision REV beside this code's "
                    f"('{PUBLISHED}': the commit that last published the page)")
    ap.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE",
                    help="with --compare: also this code's default run with KEY=VALUE, as one more column")
    ap.add_argument("--repeats", type=int, default=1, help="with --compare: runs per column, taken in turns (medians)")
    args = ap.parse_args(argv)
    if args.variant and not args.compare:
        ap.error("--variant needs --compare (it adds a column to the comparison)")
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    report = Report("pipeline", argv)  # its clock (the provenance's wall time) includes the comparison's runs
    compared = compare(args.compare, args.set, args.device, Path(args.out), args.variant, args.repeats) if args.compare else None
    results = []
    base = load_config(None, args.set)
    for scale in [int(s) for s in args.scales.split(",")]:
        sets = [*args.set, *(f"world.{k}={getattr(base.world, k) * scale}" for k in SIZE_KEYS)]
        sets += [f"device={args.device}", f"run_id=perf-{time.strftime('%Y%m%d-%H%M%S')}-x{scale}"]
        config = load_config(None, sets)
        marks: dict[str, float] = {}  # the process's peak resident memory as each stage finished
        t0 = time.perf_counter()
        run_dir = run_pipeline(config, args.out, on_finish=lambda name, seconds, marks=marks: marks.__setitem__(name, peak_rss_mb()),
                               progress=False)
        total = time.perf_counter() - t0
        run = load_run_dir(run_dir)
        stages = run.manifest["stages"]
        names = list(stages)
        peaks = {name: marks[name] for name in names}  # the peak reached by the time the stage finished
        results.append((scale, total, stages, peaks, run.manifest.get("device", "cpu"), run.manifest.get("precision") or "float32"))
        print(f"scale {scale}: {total:.1f}s", {k: v["seconds"] for k, v in stages.items()}, flush=True)
    lines = render(results, base.world, args.set) + (render_comparison(*compared, default_config=not args.set) if compared else [])
    report.block("docs/PERFORMANCE.md", "pipeline", "\n".join(lines), title="Performance")
    report.publish()


def render(results: list, world: object, sets: list[str]) -> list[str]:
    """The per-stage table (seconds and peak RSS per scale, growth), the microscope's parts, the sizes."""
    base = {s: v["seconds"] for s, v in results[0][2].items()}
    config = "the default config" + (f" with `{' '.join('--set ' + s for s in sets)}`" if sets else "")
    lines = [
        f"Runs of {config} on device `{results[0][4]}`, training steps in {results[0][5]} (`runtime.precision="
        f"{load_config(None, sets).runtime.precision}`: `igcore.runtime.training_precision`); scale = multiple of its split sizes ("
        + ", ".join(f"{k}={getattr(world, k)}" for k in SIZE_KEYS)
        + "); the training budget in epochs is unchanged, so training cost grows with the data.",
        "",
        f"Stages run up to {load_config(None, sets).runtime.concurrent_stages()} at once (`runtime.stages`, each in its own thread, "
        "a stage starting once the results it reads exist: `igcore.pipeline.run_stages`). A stage's seconds are its own "
        "wall time, stretched where another stage shares the CPU with it, so the stages add up to more than the total; "
        "a stage's peak RSS is the process's peak by the time it finished.",
        "",
        "## Per-stage wall time and peak memory",
        "",
        "| stage | " + " | ".join(f"×{r[0]} s | ×{r[0]} peak RSS MB" for r in results) + " | growth ×last / ×1 |",
        "|---|" + "---|---|" * len(results) + "---|",
    ]
    for stage in results[0][2]:
        cells = []
        for _, _, stages, peaks, *_ in results:
            cells += [f"{stages[stage]['seconds']:.2f}", f"{peaks[stage]:.0f}"]
        last = results[-1][2][stage]["seconds"]
        growth = f"{last / base[stage]:.1f}" if base[stage] > 0.01 else "–"
        lines.append(f"| {stage} | " + " | ".join(cells) + f" | {growth} |")
    lines.append("| **total** | " + " | ".join(f"**{r[1]:.1f}** | {max(r[3].values()):.0f}" for r in results) + " | "
                 + f"{results[-1][1] / results[0][1]:.1f} |")
    parts = [(r[0], r[2].get("microscope", {}).get("timings") or {}) for r in results]
    if any(p for _, p in parts):
        names = list(dict.fromkeys(k for _, p in parts for k in p))
        lines += ["", "## The microscope's parts (seconds)", "",
                  f"Each part from its own start to its own end; the parts run in two lanes side by side ({lanes_sentence()}: "
                  "`igcore.microscope.plan.LANES`), so they add up to more than the stage.", "",
                  "| part | " + " | ".join(f"×{scale}" for scale, _ in parts) + " |", "|---|" + "---|" * len(parts),
                  *[f"| {name} | " + " | ".join(f"{p[name]:.1f}" if name in p else "–" for _, p in parts) + " |" for name in names]]
    return lines


class Timed(NamedTuple):
    """One run of ``python -m igcore run`` in its own process."""

    wall: float  #: the process's wall seconds, start to end
    stages: dict[str, float]  #: the manifest's seconds per stage
    cpu: float  #: user + system seconds of the process and its children
    exit: float | None = None  #: seconds from the run folder's rename into place (its files final) to the process's end

#: The wall time of the default run, this code, that the page holds it to (2 CPU cores).
TARGET_S = 60.0


def timed_run(code: Path, sets: list[str], out: Path) -> Timed:
    """``python -m igcore run`` with the code in folder ``code``, timed (:class:`Timed`). The exit is read off the
    clock of the file system: ``out`` is a new folder, and its modification time is the moment the run's folder was
    renamed into it, the run's last step."""
    out.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=out))  # runs are never overwritten
    env = {**os.environ, "PYTHONPATH": str(code)}
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "igcore", "run", "--out", str(out), "--quiet", *(a for s in sets for a in ("--set", s))],
                   cwd=code, env=env, check=True)
    wall, ended = time.perf_counter() - t0, time.time()
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    manifest = json.loads(next(out.glob("*/manifest.json")).read_text())
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    stages = {name: float(stage.get("seconds") or 0.0) for name, stage in manifest["stages"].items()}
    return Timed(wall, stages, cpu, max(0.0, ended - out.stat().st_mtime))


#: ``--compare`` value naming the commit of the page's provenance record
PUBLISHED = "published"


def published_commit(record: dict | None) -> str:
    """The commit of a provenance record (the one that last published docs/PERFORMANCE.md's pipeline block), if this
    clone has it; else ``HEAD~1``."""
    commit = (record or {}).get("commit") or ""
    known = commit and subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}^{{commit}}"],
                                      capture_output=True).returncode == 0
    return commit if known else "HEAD~1"




def compare(rev: str, sets: list[str], device: str, out: Path, variants: list[str] = (), repeats: int = 1,
            ) -> tuple[str, list[Timed], list[Timed], list[tuple[str, list[Timed]]], tuple[str, str]]:
    """The default run with the code of ``rev``, with this code, then with this code and each ``variant`` (one
    ``KEY=VALUE`` setting), back to back, ``repeats`` times in turns: ``(short rev, before runs, after runs,
    [(variant, runs), ...], (load average at the start, at the end))``."""
    git = ["git", "-C", str(ROOT)]
    rev = published_commit(read_record("pipeline")) if rev == PUBLISHED else rev
    short = subprocess.run([*git, "rev-parse", "--short=12", rev], capture_output=True, text=True, check=True).stdout.strip()
    sets = [*sets, f"device={device}"]
    before: list[Timed] = []
    after: list[Timed] = []
    varied: dict[str, list[Timed]] = {v: [] for v in variants}
    load_start = load_average()
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        tree = Path(tmp) / "code"
        subprocess.run([*git, "worktree", "add", "--detach", "--quiet", str(tree), short], check=True)
        try:
            for round_ in range(repeats):
                before.append(timed_run(tree, sets, out / "compare" / f"rev-{short}"))
                after.append(timed_run(ROOT, sets, out / "compare" / "this"))
                print(f"round {round_ + 1}/{repeats}: {short} {before[-1].wall:.1f}s, this code {after[-1].wall:.1f}s", flush=True)
                for variant in variants:
                    varied[variant].append(timed_run(ROOT, [*sets, variant], out / "compare" / "variant"))
                    print(f"  this code with {variant}: {varied[variant][-1].wall:.1f}s", flush=True)
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(tree)], check=False)
    return short, before, after, list(varied.items()), (load_start, load_average())


def render_comparison(rev: str, before: list[Timed], after: list[Timed], variants: list[tuple[str, list[Timed]]] = (),
                      load: tuple[str, str] | None = None, default_config: bool = True) -> list[str]:
    """Per stage: the default run's seconds with the code of ``rev``, with this code (and with this code under each
    variant), medians over the runs of each column, the ratio of this code to ``rev``; then the process's wall time
    (median, range) and CPU seconds, and, for the default config, the wall time against :data:`TARGET_S`."""
    before, after = [Timed(*run) for run in before], [Timed(*run) for run in after]
    variants = [(v, [Timed(*run) for run in runs]) for v, runs in variants]
    columns = [before, after, *(runs for _, runs in variants)]
    stages = list(dict.fromkeys(s for runs in columns for run in runs for s in run.stages))
    n = min(len(runs) for runs in columns)

    def stage_median(runs: list[Timed], stage: str) -> float | None:
        values = [run.stages[stage] for run in runs if stage in run.stages]
        return statistics.median(values) if values else None

    def cell(value: float | None) -> str:
        return "–" if value is None else f"{value:.2f}"

    def ratio(a: float | None, b: float | None) -> str:
        return f"{b / a:.2f}" if a and b is not None and a > 0.01 else "–"

    def wall(runs: list[Timed]) -> float:
        return statistics.median([run.wall for run in runs])

    def cpu(runs: list[Timed]) -> float:
        return statistics.median([run.cpu for run in runs])

    def exit_seconds(runs: list[Timed]) -> str:
        values = [run.exit for run in runs if run.exit is not None]
        return f"{statistics.median(values):.2f}" if values else "–"

    def spread(runs: list[Timed]) -> str:
        walls = [run.wall for run in runs]
        return f"{min(walls):.1f}–{max(walls):.1f}" if len(walls) > 1 else f"{walls[0]:.1f}"

    also = "".join(f" | this code, `{v}` s" for v, _ in variants)
    variant_text = (" The last column" + ("s" if len(variants) > 1 else "") + " ran this code again with one setting changed, "
                    "after the other two." if variants else "")
    runs_text = (f" Each column is the median of {n} runs, taken in turns (that commit, this code"
                 + (", each variant" if variants else "") + ", then again), so that a slow spell of the machine falls on every "
                 "column alike." if n > 1 else "")
    load_text = (f" Load average (1/5/15 min) when the comparison began: {load[0]}; when it ended: {load[1]}; the machine is "
                 "shared with other jobs, so the CPU seconds, which count only the run's own work, compare code more "
                 "steadily than the wall time." if load else "")
    return ["", f"## This code against commit `{rev}`", "",
            f"The default run (1×) with the code of commit `{rev}` and then with this code, one after the other on this "
            "machine, each in its own process (`--compare`); ratio = this code / that commit. A stage's seconds are its "
            "wall time, stretched where stages run at once; the wall row is what a user waits." + variant_text + runs_text
            + load_text + " The exit row is the time from the run's folder being renamed into place, its last "
            "step, to the end of the process: the interpreter's teardown (`igcore/__main__.py`).", "",
            f"| stage | `{rev}` s | this code s | ratio{also} |", "|---|---|---|---|" + "---|" * len(variants),
            *[f"| {s} | {cell(stage_median(before, s))} | {cell(stage_median(after, s))} | "
              f"{ratio(stage_median(before, s), stage_median(after, s))}"
              + "".join(f" | {cell(stage_median(runs, s))}" for _, runs in variants) + " |" for s in stages],
            f"| **wall (process)** | **{wall(before):.1f}** | **{wall(after):.1f}** | {ratio(wall(before), wall(after))}"
            + "".join(f" | **{wall(runs):.1f}**" for _, runs in variants) + " |",
            f"| wall (process), range over the runs | {spread(before)} | {spread(after)} | –"
            + "".join(f" | {spread(runs)}" for _, runs in variants) + " |",
            f"| CPU seconds (process) | {cpu(before):.1f} | {cpu(after):.1f} | {ratio(cpu(before), cpu(after))}"
            + "".join(f" | {cpu(runs):.1f}" for _, runs in variants) + " |",
            f"| process exit after the run's files were final, s | {exit_seconds(before)} | {exit_seconds(after)} | –"
            + "".join(f" | {exit_seconds(runs)}" for _, runs in variants) + " |",
            "", (f"**The default run with this code:** {wall(after):.1f} s" + (f" (median of {n} runs, {spread(after)} s)" if n > 1 else "")
                 + f" against a target of {TARGET_S:.0f} s on {os.cpu_count()} CPUs: {'met' if wall(after) <= TARGET_S else 'not met'}."
                 if default_config else
                 f"**This code's run:** {wall(after):.1f} s; not the default config, so the default run's target of {TARGET_S:.0f} s does not apply.")]


if __name__ == "__main__":
    main()
