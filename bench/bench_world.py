"""Benchmark: how fast the default procedural world renders images (images per second, best of N).

Each repeat builds a fresh world (so texture generation and latent sampling are included) and times
``world.split("train")`` for ``--n`` images. Prints the result and writes ``docs/bench_world.md``, and the
default world's contact sheet (every split, spread over its groups) to ``docs/contact_sheet.png`` (README).

    python -m bench.bench_world [--n 20000] [--repeats 3] [--image-size 64]
"""

from __future__ import annotations

import argparse
import os
import time

from bench.common import Report
from igcore.config import default_config
from igcore.worlds import build_world, make_world
from igcore.worlds.preview import contact_sheet


def run(n: int, repeats: int, image_size: int) -> tuple[list[float], list[float]]:
    """Wall-clock and process-CPU seconds per repeat to generate ``n`` training images with a fresh world.

    CPU time is reported too because the benchmark machine may be shared: it is less sensitive to other
    processes than wall-clock time. The renderer draws its chunks of images in a thread pool, one thread per CPU
    (``igcore.worlds.snowwolf.world``), so on an idle machine the CPU time exceeds the wall time.
    """
    wall, cpu = [], []
    for rep in range(repeats):
        world = make_world("snowwolf", seed=rep, image_size=image_size, n_train=n)
        start, start_cpu = time.perf_counter(), time.process_time()
        split = world.split("train")
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        assert len(split) == n
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="images per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args(argv)
    report = Report("world", argv)

    times, cpu = run(args.n, args.repeats, args.image_size)
    rate, cpu_rate = args.n / min(times), args.n / min(cpu)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"snowwolf {args.image_size}x{args.image_size}: {rate:,.0f} images/s wall-clock, {cpu_rate:,.0f} images/s "
        f"per CPU second (best of {args.repeats}, {args.n} images, load average {load:.1f})"
    )
    lines = [
        f"Procedural world `snowwolf`, default parameters, {args.image_size}×{args.image_size} RGB, "
        f"{args.n:,} training images per repeat, a fresh world per repeat (textures and latent sampling included).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| images/s, wall-clock (best of {args.repeats}) | **{rate:,.0f}** |",
        f"| images/s per CPU second (best of {args.repeats}) | {cpu_rate:,.0f} |",
        f"| wall-clock seconds per repeat | {', '.join(f'{t:.2f}' for t in times)} |",
        f"| cores available / load average at the end | {cores} / {load:.1f} |",
        "",
        f"The renderer draws chunks of images in a thread pool, one thread per CPU ({os.cpu_count()} here): numpy releases the "
        "GIL in its array loops, so the wall-clock rate is the CPU-time rate times the cores it kept busy. The machine "
        "may be shared, hence the CPU-time column.",
    ]
    report.block("docs/bench_world.md", "world", "\n".join(lines), title="World rendering benchmark")
    config = default_config()
    contact_sheet(build_world(config.world, config.seed), report.path("docs/contact_sheet.png"))
    report.publish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
