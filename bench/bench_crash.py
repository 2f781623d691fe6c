"""Crash safety, tested by killing: SIGKILL at seeded random moments, then check what the stores say.

Three writers are killed (``kill -9``: no handler, no ``finally``, no flush):

1. ``python -m igcore run`` (a tiny config). After each kill: every run the store lists as complete really is
   (it opens, its metrics validate, and it holds exactly the files of a run that was not killed); the
   killed writer's folder is listed by ``igcore list`` as ``interrupted`` (or ``failed``), never as a run,
   and ``igcore clean`` removes it. At the end a run goes through.
2. ``python -m igcore microscope RUN_DIR --set …`` (recomputes alternate between two model sets, so a
   mix of two versions shows). After each kill the run opens (a half-published recompute is finished by
   the journal), no journal is left after that opening, the metrics' microscope models are those of the
   ``microscope/`` folder next to them, and the previous versions are kept as ``microscope.v<N>``.
   Temporary folders a killed recompute leaves inside the run are counted. At the end a recompute goes through.
3. The judgments store (SQLite) in the middle of writes: a process adds ratings in a loop and prints each
   one after its commit (the approach of tests/test_prior_store.py). After each kill: the file passes
   ``PRAGMA integrity_check``, every printed rating is there, nothing is there twice, and at most the one
   rating committed just before the kill was not printed yet.

Usage (from the repository root; heavy, so niced)::

    nice -n 10 .venv/bin/python -m bench.bench_crash                 # 20 + 20 + 20 kills, docs/RELIABILITY.md
    nice -n 10 .venv/bin/python -m bench.bench_crash --kills 3 2 2 --no-report

tests/test_crash.py runs the same checks with 3 + 2 + 2 kills.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import ROOT, Report
from igcore.errors import InputError
from igcore.store import JOURNAL, RunStore, load_run_dir
from testkit.concurrency import start_rating_writer
from testkit.runs import TINY

VOCAB = ROOT / "assets" / "snowwolf_vocabulary.csv"

#: The tests' tiny run (:data:`testkit.runs.TINY`) made faster still, since every kill restarts one: a smaller
#: world at 32 px, one epoch, two attribution methods, fewer TCAV, swap and counterfactual draws.
CRASH_RUN = {
    **TINY,
    "world.n_train": 120, "world.n_val": 60, "world.n_test_train": 90, "world.n_test_eval": 90,
    "world.n_concept_bank": 120, "world.image_size": 32,
    "baseline.epochs": 1, "concepts.epochs": 1, "search.n_ranked": 10, "search.beam_width": 2,
    "microscope.per_group": 1, "microscope.methods": ["saliency", "integrated_gradients"],
    "microscope.params.integrated_gradients.n_steps": 4, "microscope.tcav.repeats": 1, "microscope.tcav.n_controls": 2,
    "microscope.swaps.max_images": 20, "microscope.counterfactuals.max_images": 20,
    "microscope.counterfactuals.attribution_per_group": 1, "microscope.counterfactuals.n_steps": 4,
    "microscope.counterfactuals.n_resamples": 100,
}
#: The two microscope recomputes that alternate (their metrics name different models). Surrogates off:
#: they need the concepts stage, which the short version (tests/test_crash.py) does not run.
_RECOMPUTE = ["microscope.sanity.models=[\"erm\"]", "microscope.surrogates=false"]
RECOMPUTES = (["microscope.models=[\"erm\"]", *_RECOMPUTE], ["microscope.models=[\"erm\", \"oracle\"]", *_RECOMPUTE])
#: Stages the short version runs: enough for a microscope of two models, and every step of the store.
SHORT_STAGES = "world,erm,oracle"

def crash_sets(stages: str | None = None) -> list[str]:
    """``--set`` arguments of :data:`CRASH_RUN` (and ``--stages`` when given)."""
    out = ["--stages", stages] if stages else []
    for key, value in CRASH_RUN.items():
        out += ["--set", f"{key}={json.dumps(value)}"]
    return out


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def igcore(*args: str) -> subprocess.Popen:
    """``python -m igcore args…`` in a new process (its output captured)."""
    return subprocess.Popen([sys.executable, "-m", "igcore", *args], cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, what: str, timeout: float = 900) -> str:
    """Wait for ``proc``; its stdout, or RuntimeError with its stderr if it failed."""
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}): {err[-2000:]}")
    return out


def kill_at(proc: subprocess.Popen, moment: float) -> bool:
    """SIGKILL ``proc`` ``moment`` seconds after it started; False if it finished before that."""
    deadline = time.monotonic() + moment
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            proc.communicate()
            return False
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    return True


@dataclass
class Trial:
    """One kill: when, what was found afterwards, and anything that broke a promise."""

    n: int
    moment: float
    killed: bool
    found: str
    problems: list[str] = field(default_factory=list)


#: Cached attribution maps are stored as ``part-<random hex>.safetensors`` (parts are only ever added, so
#: two writers never pick one name): runs are compared with those names masked.
PART = re.compile(r"part-[0-9a-f]+\.safetensors$")


#: Kill moments are drawn over this share of an uninterrupted run's length: later ones mostly find the writer
#: already gone (runs vary in length with the machine's load), which tests nothing.
KILL_WINDOW = 0.85


def files_of(path: Path) -> set[str]:
    """The run's files relative to ``path``; each cached attribution part is named by its folder and count."""
    names: list[str] = []
    for p in path.rglob("*"):
        if p.is_file():
            names.append(PART.sub("part-*.safetensors", str(p.relative_to(path))))
    counts = Counter(names)
    return {name if n == 1 else f"{name} ×{n}" for name, n in counts.items()}


# ------------------------------------------------------------------------------------------ 1. runs
def check_runs(runs: Path, reference: set[str]) -> list[str]:
    """Every run listed is complete and whole; no published folder is half a run."""
    problems = []
    for run in RunStore(runs).list():
        if run.status != "complete":
            problems.append(f"{run.run_id} is listed with status {run.status!r}")
            continue
        try:
            load_run_dir(run.path).results()
        except (InputError, ValueError) as e:
            problems.append(f"{run.run_id} is listed complete but does not open: {e}")
            continue
        missing = reference - files_of(run.path)
        if missing:
            problems.append(f"{run.run_id} is listed complete but lacks {len(missing)} file(s), e.g. {sorted(missing)[0]}")
    return problems


def kill_runs(work: Path, kills: int, rng: random.Random, log: list[str], stages: str | None = None) -> tuple[list[Trial], float]:
    runs = work / "runs"
    started = time.monotonic()
    reference_dir = Path(finish(igcore("run", "--out", str(runs), "--quiet", *crash_sets(stages)), "reference run").strip().splitlines()[-1])
    duration = time.monotonic() - started
    reference = files_of(reference_dir)
    log.append(f"reference run: {duration:.1f} s, {len(reference)} files")
    trials = []
    for n in range(1, kills + 1):
        moment = rng.uniform(0.0, KILL_WINDOW * duration)
        before = {r.run_id for r in RunStore(runs).list()}
        t0 = time.monotonic()
        killed = kill_at(igcore("run", "--out", str(runs), "--quiet", *crash_sets(stages)), moment)
        if not killed:  # runs got faster than the reference: later kills are drawn over the shorter length
            duration = min(duration, time.monotonic() - t0)
        store = RunStore(runs)
        new_runs = sorted({r.run_id for r in store.list()} - before)
        leftovers = store.leftovers()
        trial = Trial(n, moment, killed, "")
        trial.problems += check_runs(runs, reference)
        listing = finish(igcore("list", "--out", str(runs)), "igcore list")
        for leftover in leftovers:
            line = next((x for x in listing.splitlines() if x.startswith(leftover.path.name)), "")
            if leftover.state not in ("interrupted", "failed") or leftover.state not in line:
                trial.problems.append(f"{leftover.path.name} is listed as {line.split()[1:2] or '(missing)'} (state {leftover.state})")
        finish(igcore("clean", "--out", str(runs)), "igcore clean")
        if RunStore(runs).leftovers():
            trial.problems.append("igcore clean left leftovers behind")
        if {r.run_id for r in RunStore(runs).list()} != before | set(new_runs):
            trial.problems.append("igcore clean removed a run")
        trial.found = (f"{len(leftovers)} leftover(s) ({', '.join(sorted(lo.state for lo in leftovers))}), cleaned" if leftovers
                       else "a complete run" if new_runs else "nothing written yet")
        trials.append(trial)
        log.append(f"run kill {n}: {moment:.1f} s -> {trial.found}; problems: {trial.problems or 'none'}")
    final = Path(finish(igcore("run", "--out", str(runs), "--quiet", *crash_sets(stages)), "the run after the kills").strip().splitlines()[-1])
    after = check_runs(runs, reference)
    if not load_run_dir(final).complete or after:
        trials.append(Trial(kills + 1, 0.0, False, "the next run", [f"the next run is not whole: {after}"]))
    log.append(f"the next run: {final.name} complete")
    return trials, duration


# ------------------------------------------------------------------------------------------ 2. microscope
def check_recompute(run_dir: Path) -> tuple[list[str], str]:
    """Open the run (replaying a journal) and check it; returns problems and what was found."""
    journal = (run_dir / JOURNAL).is_file()
    strays = sorted(p.name for p in run_dir.iterdir() if p.name.startswith(".tmp-"))
    problems = []
    try:
        run = load_run_dir(run_dir)
        metrics = run.results()
        models = sorted(run.metrics.get("microscope", {}))
        info = json.loads((run_dir / "microscope" / "info.json").read_text())
    except (InputError, ValueError, OSError) as e:
        return [f"the run does not open after the kill: {e}"], "unreadable"
    if (run_dir / JOURNAL).exists():
        problems.append("a journal is left after opening the run")
    if not run.complete or metrics.world is None:
        problems.append("the run is no longer complete")
    if models != sorted(info["models"]):
        problems.append(f"metrics name models {models} but microscope/ holds {sorted(info['models'])}")
    found = ("journal replayed on opening" if journal else "old or new microscope, no journal") + (
        f"; {len(strays)} temporary folder(s) left in the run" if strays else "")
    return problems, found


def kill_recomputes(work: Path, kills: int, rng: random.Random, log: list[str], stages: str | None = None) -> tuple[list[Trial], float, int]:
    runs = work / "runs"
    complete = [r for r in RunStore(runs).list() if r.complete]
    run_dir = complete[0].path if complete else Path(finish(igcore("run", "--out", str(runs), "--quiet", *crash_sets(stages)), "run").strip().splitlines()[-1])
    sets = [a for s in RECOMPUTES[0] for a in ("--set", s)]
    started = time.monotonic()
    finish(igcore("microscope", str(run_dir), *sets), "reference recompute")
    duration = time.monotonic() - started
    log.append(f"reference recompute: {duration:.1f} s")
    trials = []
    for n in range(1, kills + 1):
        moment = rng.uniform(0.0, KILL_WINDOW * duration)
        sets = [a for s in RECOMPUTES[n % 2] for a in ("--set", s)]
        t0 = time.monotonic()
        killed = kill_at(igcore("microscope", str(run_dir), *sets), moment)
        if not killed:
            duration = min(duration, time.monotonic() - t0)
        problems, found = check_recompute(run_dir)
        trials.append(Trial(n, moment, killed, found, problems))
        log.append(f"recompute kill {n}: {moment:.1f} s -> {found}; problems: {problems or 'none'}")
    sets = [a for s in RECOMPUTES[1] for a in ("--set", s)]
    finish(igcore("microscope", str(run_dir), *sets), "the recompute after the kills")
    problems, _ = check_recompute(run_dir)
    info = json.loads((run_dir / "microscope" / "info.json").read_text())
    if sorted(info["models"]) != ["erm", "oracle"] or problems:
        trials.append(Trial(kills + 1, 0.0, False, "the next recompute", problems or ["the next recompute did not publish"]))
    strays = len([p for p in run_dir.iterdir() if p.name.startswith(".tmp-")])
    # what killed recomputes left inside the run is listed as interrupted and removed by `igcore clean`
    listing = finish(igcore("list", "--out", str(runs)), "igcore list")
    listed = sum(1 for line in listing.splitlines() if "/.tmp-" in line and "interrupted" in line)
    finish(igcore("clean", "--out", str(runs)), "igcore clean")
    after = len([p for p in run_dir.iterdir() if p.name.startswith(".tmp-")])
    if listed != strays or after:
        trials.append(Trial(kills + 2, 0.0, False, "list and clean", [f"{strays} temporary folder(s) in the run, {listed} listed as "
                                                                      f"interrupted, {after} left after clean"]))
    log.append(f"the next recompute: published; temporary folders left in the run: {strays}, listed {listed}, after clean {after}")
    return trials, duration, strays


# ------------------------------------------------------------------------------------------ 3. judgments
def user_raters(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r for (r,) in conn.execute("SELECT rater FROM ratings WHERE source = 'user' ORDER BY id")]


def kill_judgments(work: Path, kills: int, rng: random.Random, log: list[str]) -> list[Trial]:
    db = work / "judgments.sqlite"
    expected: set[str] = set()
    trials = []
    for n in range(1, kills + 1):
        proc = start_rating_writer(db, VOCAB, f"k{n}")
        assert proc.stdout is not None
        moment = rng.uniform(0.05, 1.5)
        time.sleep(moment)
        alive = proc.poll() is None  # the writer adds ratings until it is killed: it is still writing unless it failed
        proc.kill()  # SIGKILL; nothing once a writer that failed has been reaped
        # read through the same text wrapper as "ready": communicate() would read the pipe directly and skip
        # the lines readline() had already buffered
        rest = proc.stdout.read()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        reported = {f"k{n}-{int(line)}" for line in rest.splitlines() if line.strip().isdigit()}
        trial = Trial(n, moment, alive, "")
        with sqlite3.connect(db) as conn:
            if conn.execute("PRAGMA integrity_check").fetchall() != [("ok",)]:
                trial.problems.append("integrity_check failed")
        raters = user_raters(db)
        if len(raters) != len(set(raters)):
            trial.problems.append(f"{len(raters) - len(set(raters))} duplicated rating(s)")
        present = {r for r in raters if r.startswith(f"k{n}-")}
        lost = reported - present
        if lost:
            trial.problems.append(f"{len(lost)} committed rating(s) lost")
        extra = present - reported
        if extra - {f"k{n}-{len(reported)}"}:
            trial.problems.append(f"unexpected ratings {sorted(extra)[:3]}")
        if set(raters) - expected - present:
            trial.problems.append("ratings of earlier writers changed")
        if expected - set(raters):
            trial.problems.append(f"{len(expected - set(raters))} rating(s) of earlier writers lost")
        expected |= present
        trial.found = f"{len(reported)} ratings committed and reported" + (f", {len(extra)} committed just before the kill" if extra else "")
        trials.append(trial)
        log.append(f"judgments kill {n}: {moment:.2f} s -> {trial.found}; problems: {trial.problems or 'none'}")
    return trials


# ------------------------------------------------------------------------------------------ report
def table(trials: Sequence[Trial]) -> list[str]:
    rows = ["| kill | after (s) | killed | found afterwards | problems |", "|---|---|---|---|---|"]
    for t in trials:
        rows.append(f"| {t.n} | {t.moment:.2f} | {'yes' if t.killed else 'finished first'} | {t.found} | {'; '.join(t.problems) or 'none'} |")
    return rows


def report(args: argparse.Namespace, results: dict) -> str:
    runs, run_s = results["runs"]
    recomputes, rec_s, strays = results["recomputes"]
    judgments = results["judgments"]
    total = sum(len(t.problems) for t in runs + recomputes + judgments)
    lines = [
        f"Seed {args.seed}; kill moments drawn uniformly over the first {100 * KILL_WINDOW:.0f}% of an uninterrupted run "
        f"or recompute (the reference's length, shortened to that of any faster one that finished before its kill; last "
        f"{run_s:.1f} s and {rec_s:.1f} s), and over 0.05–1.5 s of a judgments writer's loop. "
        f"**{total} problem(s)** in {len(runs) + len(recomputes) + len(judgments)} kills "
        f"({sum(t.killed for t in runs + recomputes + judgments)} of them landed while the writer was still running).",
        "",
        f"### `python -m igcore run` ({len(runs)} kills)",
        "",
        "After each kill: runs listed complete are whole (they open, their metrics validate, they hold every file an "
        "uninterrupted run holds); the killed run's folder is listed as interrupted and `igcore clean` removes it "
        "without touching a run. A run after the last kill completes.",
        "",
        *table(runs),
        "",
        f"### `python -m igcore microscope RUN_DIR --set …` ({len(recomputes)} kills)",
        "",
        "Recomputes alternate between `microscope.models=[\"erm\"]` and `[\"erm\", \"oracle\"]`. After each kill the run "
        "opens (an interrupted publication is finished by its journal), no journal is left, and the metrics name the "
        "models of the `microscope/` folder beside them. A recompute after the last kill publishes.",
        "",
        *table(recomputes),
        "",
        f"Temporary folders (`.tmp-microscope-*`) that killed recomputes left inside the run: {strays}; nothing reads "
        "them, `igcore list` lists each as `interrupted` and `igcore clean` removed them (checked)." if strays else
        "No temporary folder was left inside the run.",
        "",
        f"### Judgments store ({len(judgments)} kills)",
        "",
        "A writer adds ratings in a loop (one `BEGIN IMMEDIATE` transaction each) and prints each after its commit; "
        "it is killed at a random moment. Checked: `PRAGMA integrity_check`, every printed rating present, none "
        "twice, at most the one committed just before the kill not yet printed, earlier writers' ratings intact.",
        "",
        *table(judgments),
    ]
    return "\n".join(lines)


def run_all(kills: Sequence[int], seed: int, work: Path, log: list[str], stages: str | None = None) -> dict:
    """The three kill series; ``stages`` limits the runs (``--stages``; default: every default stage)."""
    rng = random.Random(seed)
    results: dict = {}
    results["runs"] = kill_runs(work, kills[0], rng, log, stages)
    results["recomputes"] = kill_recomputes(work, kills[1], rng, log, stages)
    results["judgments"] = kill_judgments(work, kills[2], rng, log)
    return results


def problems(results: dict) -> list[str]:
    trials = results["runs"][0] + results["recomputes"][0] + results["judgments"]
    return [f"{t.n}: {p}" for t in trials for p in t.problems]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, nargs=3, default=[20, 20, 20], metavar=("RUN", "MICROSCOPE", "JUDGMENTS"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-report", action="store_true", help="print only; do not write docs/RELIABILITY.md")
    args = parser.parse_args(argv)
    report_to = Report("crash", argv)
    log: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-crash-") as tmp:
        results = run_all(args.kills, args.seed, Path(tmp), log)
    print("\n".join(log))
    found = problems(results)
    print(f"{len(found)} problem(s)" + ("".join(f"\n  {p}" for p in found)))
    if not args.no_report:
        report_to.block("docs/RELIABILITY.md", "crash", report(args, results), title="Reliability")
        report_to.publish()
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
