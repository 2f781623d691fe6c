"""Do two threads that train at once give the numbers each gives alone? A race below the engine, and its remedy.

The engine trains two stages at once in two threads (``runtime.stages``; :func:`igcore.pipeline.run_stages`), each
with one intra-op thread and its own seeded randomness, so a run is meant to write what a one-stage-at-a-time run
writes. This script checks the layer below the engine: two small convolutional networks of the shapes the default
run trains (64 px, batch 64, BatchNorm, AdamW), each from the same seed, trained in fresh processes (every way
takes its turn in each round)

- one after the other;
- in two threads at once (plain PyTorch, no code of this project: what differs is PyTorch's, its CPU kernels and
  oneDNN);
- in two threads at once after :func:`igcore.runtime.warm_kernels` ran in the process's main thread, as the engine
  runs it before its stage threads start (one training step of a small network of other shapes);

and the engine itself: a tiny run of the world, erm and the oracle (whose trainings start together) one stage at a
time, two at once without the warm-up step (this diagnostic replaces it), and two at once as the engine runs.

Each process prints a digest of both networks' weights (or of the run's two models); the tables count, per way of
training, the processes whose weights are those trained one after the other (one stage at a time). Writes the "Two trainings at once" section of
docs/PERFORMANCE.md.

    OMP_NUM_THREADS=1 python -m bench.thread_race --processes 60 --engine-processes 40   # a fresh process per try
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import subprocess
import sys
import threading

import torch
from torch import nn

from bench.common import Report

#: How the two networks are trained, as the table says it.
MODES = {
    "seq": "one after the other",
    "par": "two threads at once",
    "warm": "two threads at once, after `igcore.runtime.warm_kernels` in the main thread",
}
#: The engine itself: a tiny run whose erm and oracle stages start at the same moment (testkit.runs.TINY).
ENGINE_MODES = {
    "engine-seq": "the engine, one stage at a time (`runtime.stages=1`)",
    "engine-cold": "the engine, two stages at once, its warm-up step left out",
    "engine": "the engine, two stages at once, as it runs",
}
BATCH = 64


def network() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, 2, 1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 2),
    )


def child(mode: str, size: int, epochs: int) -> str:
    """Train both networks as ``mode`` says; their weights' digests."""
    torch.set_num_threads(1)
    if mode == "warm":
        from igcore.runtime import warm_kernels

        warm_kernels(torch.device("cpu"))
    g = torch.Generator().manual_seed(1)
    # the same size: the two threads stay in step, as erm and the oracle start
    data = {k: (torch.rand(size, 3, 64, 64, generator=g), torch.randint(0, 2, (size,), generator=g)) for k in "ab"}
    models = {k: network() for k in data}
    out: dict[str, str] = {}

    def train(k: str) -> None:
        torch.set_num_threads(1)  # a per-thread setting, as each stage thread sets it
        m, (x, y) = models[k], data[k]
        opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
        for _ in range(epochs):
            for s in range(0, len(x), BATCH):
                loss = nn.functional.cross_entropy(m(x[s : s + BATCH]), y[s : s + BATCH])
                opt.zero_grad()
                loss.backward()
                opt.step()
        out[k] = hashlib.md5(b"".join(p.detach().numpy().tobytes() for p in m.parameters())).hexdigest()[:8]

    if mode == "seq":
        for k in data:
            train(k)
    else:
        threads = [threading.Thread(target=train, args=(k,)) for k in data]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return " ".join(f"{k}={out[k]}" for k in sorted(out))


def engine_child(mode: str) -> str:
    """A tiny run of the world, erm and the oracle (which start together) in a temporary folder; its models' digest.
    ``engine-cold`` leaves the warm-up step out (this diagnostic replaces it; nothing else can)."""
    import tempfile
    from pathlib import Path

    import igcore.pipeline as pipeline
    from igcore.config import load_config
    from testkit.runs import tiny_sets

    if mode == "engine-cold":
        pipeline.warm_kernels = lambda device: 0.0
    stages = 1 if mode == "engine-seq" else 2
    with tempfile.TemporaryDirectory() as folder:
        config = load_config(None, [*tiny_sets(), f"runtime.stages={stages}", "run_id=race"])
        run = pipeline.run_pipeline(config, folder, stages=["world", "erm", "oracle"], progress=False)
        digest = hashlib.md5(b"".join(p.read_bytes() for p in sorted(Path(run).glob("models/**/*.safetensors"))))
    return digest.hexdigest()[:8]


def outcomes(processes: dict[str, int], size: int, epochs: int) -> dict[str, collections.Counter[str]]:
    """The digests of fresh processes training as each mode says (``{mode: how many}``), counted; the modes take
    turns, so that a slow or busy spell of the machine falls on each alike."""
    seen: dict[str, collections.Counter[str]] = {mode: collections.Counter() for mode in processes}
    for i in range(max(processes.values())):
        for mode, n in processes.items():
            if i < n:
                command = [sys.executable, "-m", "bench.thread_race", "--child", mode]
                command += [] if mode in ENGINE_MODES else ["--size", str(size), "--epochs", str(epochs)]
                seen[mode][subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()] += 1
        print(f"round {i + 1}/{max(processes.values())}", file=sys.stderr, flush=True)
    return seen


def rows(counts: dict[str, collections.Counter[str]], labels: dict[str, str]) -> tuple[list[str], dict[str, int]]:
    """A table row per way of training of ``labels`` (its first the reference); how many processes differed."""
    alone, _ = counts[next(iter(labels))].most_common(1)[0]
    lines, differ = [], {}
    for mode, label in labels.items():
        seen = counts[mode]
        total, same = sum(seen.values()), seen[alone]
        differ[mode] = total - same
        lines.append(f"| {label} | {total} | {same} | {total - same} | {len(seen)} |")
    return lines, differ


def render(counts: dict[str, collections.Counter[str]], size: int, epochs: int) -> str:
    """The section: a row per way of training, then what it means."""
    lines = [
        "## Two trainings at once: a race below the engine",
        "",
        f"Two small convolutional networks ({size} images of 64 px each, batch {BATCH}, BatchNorm, AdamW, {epochs} "
        "epoch(s), the same seed), trained in a fresh process per try, one intra-op thread per thread; a process's "
        "outcome is the digest of both networks' weights. Reference: the outcome of the networks trained one after "
        "the other. The rows with threads use no code of this project but the last row's warm-up step.",
        "",
        "| how the two networks trained | processes | weights as trained one after the other | other weights | distinct outcomes |",
        "|---|---|---|---|---|",
    ]
    plain, differ = rows(counts, MODES)
    lines += plain
    lines += ["", f"**Two threads at once:** {differ['par']} of {sum(counts['par'].values())} processes ended with other "
              f"weights; after the warm-up step, {differ['warm']} of {sum(counts['warm'].values())}; one after the other, "
              f"{differ['seq']} of {sum(counts['seq'].values())}."]
    if "engine" in counts:
        engine, differ = rows(counts, ENGINE_MODES)
        lines += ["", "The engine itself: a run of `testkit.runs.TINY` with the stages world, erm and the oracle, whose "
                  "two trainings start at the same moment when two stages run at once; a process's outcome is the digest "
                  "of both models' files. Reference: the outcome one stage at a time.", "",
                  "| how the engine ran | processes | models as one stage at a time | other models | distinct outcomes |",
                  "|---|---|---|---|---|", *engine, "",
                  f"**The engine, two stages at once:** {differ['engine-cold']} of {sum(counts['engine-cold'].values())} "
                  f"runs ended with other models without the warm-up step; {differ['engine']} of "
                  f"{sum(counts['engine'].values())} with it."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", type=int, default=80, help="fresh processes for each way of training with threads")
    ap.add_argument("--seq-processes", type=int, default=None, help="fresh processes one after the other (default: a quarter)")
    ap.add_argument("--size", type=int, default=1600, help="images per network")
    ap.add_argument("--epochs", type=int, default=1, help="epochs per network (the race shows at the second step)")
    ap.add_argument("--engine-processes", type=int, default=40, help="fresh processes for each way the engine runs (0: none)")
    ap.add_argument("--child", choices=(*MODES, *ENGINE_MODES), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(engine_child(args.child) if args.child in ENGINE_MODES else child(args.child, args.size, args.epochs))
        return 0
    report = Report("thread-race", argv)
    seq = args.seq_processes if args.seq_processes is not None else max(2, args.processes // 4)
    processes = {mode: seq if mode == "seq" else args.processes for mode in MODES}
    if args.engine_processes:
        processes |= {mode: max(2, args.engine_processes // 4) if mode == "engine-seq" else args.engine_processes for mode in ENGINE_MODES}
    counts = outcomes(processes, args.size, args.epochs)
    body = render(counts, args.size, args.epochs)
    print(body)
    report.block("docs/PERFORMANCE.md", "thread-race", body)
    report.publish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
