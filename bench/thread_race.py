"""Do two threads that train at once give the numbers each gives alone? A diagnostic in plain PyTorch.

The engine trains two stages at once in two threads (``runtime.stages``; ``igcore.pipeline.run_stages``), each
with one intra-op thread and its own seeded randomness, so a run is meant to write what a one-stage-at-a-time run
writes. This script checks the layer below the engine: two small convolutional networks of the shapes the default
run trains (64 px, batch 64, BatchNorm, AdamW), each from the same seed, trained in two threads at once in a fresh
process, against the same two trained one after the other. It uses no code of this project, so what it finds is
PyTorch's (its CPU kernels and oneDNN), not the engine's. Each process prints a digest of both networks' weights;
the table counts the distinct outcomes.

    python -m bench.thread_race --processes 30      # a fresh process per try: several seconds each, sixty tries
    ONEDNN_PRIMITIVE_CACHE_CAPACITY=0 python -m bench.thread_race   # the same with oneDNN's primitive cache off
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

SIZES = {"a": 1600, "b": 1600}  # the same size: the two threads stay in step, as erm and the oracle start
EPOCHS = 3


def network() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, 2, 1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 2),
    )


def child(mode: str) -> str:
    """Train both networks (``par``: in two threads at once, ``seq``: one after the other); their weights' digests."""
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(1)
    data = {k: (torch.rand(n, 3, 64, 64, generator=g), torch.randint(0, 2, (n,), generator=g)) for k, n in SIZES.items()}
    models = {k: network() for k in data}
    out: dict[str, str] = {}

    def train(k: str) -> None:
        torch.set_num_threads(1)  # a per-thread setting, as each stage thread sets it
        m, (x, y) = models[k], data[k]
        opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
        for _ in range(EPOCHS):
            for s in range(0, len(x), 64):
                loss = nn.functional.cross_entropy(m(x[s : s + 64]), y[s : s + 64])
                opt.zero_grad()
                loss.backward()
                opt.step()
        out[k] = hashlib.md5(b"".join(p.detach().numpy().tobytes() for p in m.parameters())).hexdigest()[:8]

    if mode == "par":
        threads = [threading.Thread(target=train, args=(k,)) for k in data]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        for k in data:
            train(k)
    return " ".join(f"{k}={out[k]}" for k in sorted(out))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", type=int, default=30, help="fresh processes per mode")
    ap.add_argument("--child", choices=("par", "seq"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(child(args.child))
        return 0
    alone = subprocess.run([sys.executable, "-m", "bench.thread_race", "--child", "seq"], capture_output=True, text=True, check=True).stdout.strip()
    print("| mode | processes | outcome (weight digests) | processes with it |\n|---|---|---|---|", flush=True)
    for mode in ("seq", "par"):
        seen = collections.Counter(
            subprocess.run([sys.executable, "-m", "bench.thread_race", "--child", mode], capture_output=True, text=True, check=True).stdout.strip()
            for _ in range(args.processes)
        )
        for outcome, n in seen.most_common():
            label = "as trained one after the other" if outcome == alone else "DIFFERENT"
            print(f"| {'two threads at once' if mode == 'par' else 'one after the other'} | {args.processes} | {outcome} ({label}) | {n} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
