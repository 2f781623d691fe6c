"""Regenerate the documentation: run every generator of :data:`bench.registry.GENERATORS` at its settings.

    python -m bench.regenerate                        # every generator at its documented settings (hours on 2 cores)
    python -m bench.regenerate --only methods elicit  # some of them
    python -m bench.regenerate --quick --out DIR      # small settings into a copy of the docs (CI), structure checked
    python -m bench.regenerate --list                 # the registry: commands, outputs, estimated times

Each generator runs in its own process (``python -m <module> <settings>``, from the repository root) and writes
its blocks, files and provenance under the output root: the repository, or ``--out DIR``, which first receives
a copy of README.md and docs/ so that the blocks are replaced in copies of the pages. Runs and data sets the
generators make go to ``--runs`` (default: ``DIR/runs``, or ``runs/regenerate/<time>`` in the repository),
shared by the generators of one invocation (the default run is made once for the report, the screenshots and
the dashboard bench).

With ``--out``, the structure of every block written (:func:`bench.docs.shape`: headings, tables' header rows and
row labels, list keys) is compared with the repository's page; ``--check`` makes a difference an error: run
before merging a change to a generator, it catches one that no longer writes what the committed pages hold (CI runs
the test suite, which does this for the generators marked ``ci`` only). Quick settings run one torch thread
per process (``OMP_NUM_THREADS=1``) unless the environment sets it: on a machine shared by several jobs, two
threads per process stall each other.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.common import OUT_ENV, PROVENANCE_DIR, ROOT, SETTINGS_ENV, command_line, file_digest, read_record, sha256
from bench.docs import blocks, shape
from bench.registry import GENERATORS, TINY_SETS, Generator, generator


def _shown(module: str, settings: tuple[str, ...]) -> str:
    """A command of the registry, with the tiny config's ``--set`` arguments named instead of spelled out."""
    n = len(TINY_SETS)
    at = next((i for i in range(len(settings) - n + 1) if settings[i:i + n] == TINY_SETS), None)
    if at is None:
        return command_line(module, settings)
    return command_line(module, settings[:at] + settings[at + n:]) + " --set <each key of testkit.runs.TINY>"


def registry_markdown() -> str:
    """The registry as a Markdown table (``--list``; docs/ARCHITECTURE.md's generated table)."""
    lines = ["| generator | what | full settings (documented) | quick settings (CI) | writes | full, est. |",
             "|---|---|---|---|---|---|"]
    for g in GENERATORS:
        writes = ", ".join(f"`{o}`" for o in (*g.blocks, *g.files))
        env = " ".join(f"{k}={v}" for k, v in g.env.items())
        full = (env + " " if env else "") + _shown(g.module, g.full)
        lines.append(f"| `{g.name}` | {g.doc} | `{full}` | `{_shown(g.module, g.quick)}` | {writes} | "
                     f"{g.minutes:g} min |")
    return "\n".join(lines)


def copy_docs(out: Path) -> None:
    """README.md and docs/ of the repository into ``out`` (the pages whose blocks the generators replace)."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "README.md", out / "README.md")
    shutil.copytree(ROOT / "docs", out / "docs", dirs_exist_ok=True)


def run(g: Generator, quick: bool, out: Path, runs: Path, logs: Path) -> tuple[bool, float]:
    """Run one generator; its output goes to ``logs/<name>.log``. Returns (succeeded, seconds)."""
    env = {**os.environ, **g.env, OUT_ENV: str(out), SETTINGS_ENV: "quick" if quick else "full"}
    if quick:
        env.setdefault("OMP_NUM_THREADS", "1")
    cmd = [sys.executable, "-m", g.module, *g.settings(quick, str(runs))]
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{g.name}.log"
    print(f"[{g.name}] {' '.join(cmd[1:])}  (log: {log})", flush=True)
    start = time.perf_counter()
    with log.open("w") as f:
        done = subprocess.run(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if done.returncode:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        print(f"[{g.name}] FAILED (exit {done.returncode}) after {seconds:.0f} s:\n{tail}", flush=True)
    else:
        print(f"[{g.name}] done in {seconds:.0f} s", flush=True)
    return done.returncode == 0, seconds


def structure_differences(g: Generator, out: Path, reference: Path = ROOT) -> list[str]:
    """Where the blocks ``g`` wrote under ``out`` differ in structure from the same blocks of ``reference``. A provenance
    block of a page measured before records existed (a legacy record) is only checked for being written."""
    problems = []
    legacy = bool((read_record(g.name, reference) or {}).get("legacy"))
    for output in (*g.blocks, *g.provenance_blocks):
        page, _, name = output.partition("#")
        mine = blocks((out / page).read_text()).get(name) if (out / page).is_file() else None
        theirs = blocks((reference / page).read_text()).get(name) if (reference / page).is_file() else None
        if mine is None:
            problems.append(f"{output}: not written")
        elif theirs is None:
            problems.append(f"{output}: not in the repository's {page}")
        elif legacy and output in g.provenance_blocks:
            continue
        elif shape(mine) != shape(theirs):
            a, b = shape(mine), shape(theirs)
            first = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            problems.append(f"{output}: structure differs at element {first}: generated "
                            f"{a[first] if first < len(a) else 'nothing'} vs repository {b[first] if first < len(b) else 'nothing'}")
    return problems


def verify(g: Generator, root: Path = ROOT) -> list[str]:
    """Why the outputs of ``g`` under ``root`` are not exactly what it last wrote (its record's SHA-256 of every
    block and file; every declared output recorded). Empty when they are."""
    record = read_record(g.name, root)
    if record is None:
        return [f"{g.name}: no record {PROVENANCE_DIR}/{g.name}.json (run `python -m bench.regenerate --only {g.name}`)"]
    recorded = record.get("outputs", {})
    problems = []
    for output in (*g.blocks, *g.provenance_blocks, *g.files):
        if output.endswith("/"):
            if not any(o.startswith(output) for o in recorded):
                problems.append(f"{output}: nothing recorded in it")
        elif output not in recorded:
            problems.append(f"{output}: not in the record (declared since the generator last ran)")
    for output, digest in recorded.items():
        page, _, name = output.partition("#")
        path = root / page
        if not path.is_file():
            problems.append(f"{output}: missing")
        elif name:
            body = blocks(path.read_text()).get(name)
            if body is None:
                problems.append(f"{output}: the block is not in {page}")
            elif sha256(body) != digest:
                problems.append(f"{output}: not what `{g.name}` wrote (edited by hand, or written by an older generator)")
        elif file_digest(path) != digest:
            problems.append(f"{output}: not the file `{g.name}` wrote")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the small settings (CI), not the documented ones")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="these generators only (see --list)")
    ap.add_argument("--out", type=Path, help="write into a copy of the docs in DIR instead of the repository")
    ap.add_argument("--runs", type=Path, help="where the generators keep their runs and data sets")
    ap.add_argument("--check", action="store_true", help="with --out: exit 1 when a block's structure differs from the repository's")
    ap.add_argument("--list", action="store_true", help="print the registry and exit")
    args = ap.parse_args(argv)
    if args.list:
        print(registry_markdown())
        return 0
    try:
        chosen = [generator(n) for n in args.only] if args.only else list(GENERATORS)
    except KeyError as e:
        print(f"error: {e.args[0]}", file=sys.stderr)
        return 2
    chosen = [g for g in GENERATORS if g in chosen]  # the registry's order
    out = (args.out or ROOT).resolve()
    if args.out:
        copy_docs(out)
    runs = (args.runs or (out / "runs" if args.out else ROOT / "runs" / "regenerate" / time.strftime("%Y%m%d-%H%M%S"))).resolve()
    runs.mkdir(parents=True, exist_ok=True)
    results = {}
    for g in chosen:
        results[g.name] = run(g, args.quick, out, runs, runs / "logs")
    drift = {g.name: structure_differences(g, out) for g in chosen if results[g.name][0]} if args.out else {}
    print("\n| generator | result | seconds | structure |\n|---|---|---|---|")
    for g in chosen:
        ok, seconds = results[g.name]
        same = "–" if not args.out or not ok else ("same" if not drift[g.name] else f"{len(drift[g.name])} difference(s)")
        print(f"| {g.name} | {'ok' if ok else 'FAILED'} | {seconds:.0f} | {same} |")
    for name, problems in drift.items():
        for p in problems:
            print(f"  {name}: {p}")
    failed = [n for n, (ok, _) in results.items() if not ok]
    if failed:
        print(f"failed: {', '.join(failed)} (logs in {runs / 'logs'})", file=sys.stderr)
    return 1 if failed or (args.check and any(drift.values())) else 0


if __name__ == "__main__":
    raise SystemExit(main())
