"""Benchmark: Integrated Gradients throughput against the model's own forward+backward throughput.

IG with ``n_steps`` path points costs ``n_steps`` forward+backward passes per image, so its ideal
throughput is (forward+backward images/s) / n_steps. The ratio

    efficiency = IG images/s × n_steps / (forward+backward images/s at the same batch size)

measures captum's overhead (scaling the inputs along the path, batching, summing the gradients):
1.0 = no overhead; the target is >= 0.7. The forward+backward reference computes what IG needs, the
gradient of the target logits with respect to the input (``torch.autograd.grad``); the full
``loss.backward()`` with weight gradients is reported as well. Best of ``--repeats``, wall-clock and
process-CPU time (the machine may be shared). ``--batch`` defaults to the engine's pass size for the image
(``igcore.microscope.integrated_gradients.PATH_BATCH``); a second table times IG at each of ``--passes``, the
measurement behind that default. Writes ``docs/bench_attribution.md``.

    python -m bench.bench_attribution [--arch resnet-tiny] [--n-steps 32] [--batch N] [--images 64]
                                      [--repeats 3] [--threads 2] [--passes 32,64,...] [--pass-images 32] [--pass-rounds 7]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from bench.common import Report
from igcore.baseline import PixelClassifier, build_model
from igcore.config import MicroscopeConfig
from igcore.microscope import get_method
from igcore.microscope.integrated_gradients import PATH_BATCH


def best_of(fn: Callable[[], None], repeats: int) -> tuple[float, float]:
    """(best wall-clock seconds, best process-CPU seconds) of ``repeats`` calls after one warm-up."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return min(wall), min(cpu)


def attributed_inputs(arch: str, images: int, image_size: int) -> tuple[PixelClassifier, torch.Tensor, torch.Tensor]:
    """The model (untrained, seeded) and the images and targets every measurement attributes."""
    torch.manual_seed(0)
    module = PixelClassifier(build_model(arch, 2, image_size)).eval()
    return module, torch.rand(images, 3, image_size, image_size), torch.randint(0, 2, (images,))


def pass_sizes(arch: str, n_steps: int, passes: list[int], images: int, rounds: int, image_size: int = 64) -> dict[int, float]:
    """IG images/s (wall-clock, median of ``rounds``) with ``internal_batch_size`` = each of ``passes``.

    Each round times every pass size once, in an order that rotates from round to round, after one warm-up call
    of each, so a slow minute of a shared machine falls on every size alike."""
    module, x, target = attributed_inputs(arch, images, image_size)
    method = get_method("integrated_gradients")
    calls = {size: functools.partial(method.fn, module, x, target, **method.resolve({"n_steps": n_steps, "internal_batch_size": size}))
             for size in passes}
    for call in calls.values():
        call()
    walls: dict[int, list[float]] = {size: [] for size in passes}
    for r in range(rounds):
        for size in passes[r % len(passes):] + passes[: r % len(passes)]:
            start = time.perf_counter()
            calls[size]()
            walls[size].append(time.perf_counter() - start)
    return {size: images / statistics.median(w) for size, w in walls.items()}


def measure(arch: str, n_steps: int, batch: int, images: int, repeats: int, image_size: int = 64) -> dict[str, float]:
    module, x, target = attributed_inputs(arch, images, image_size)
    # forward+backward at the same batch size IG uses internally (``batch`` path points per pass)
    xb = torch.rand(batch, 3, image_size, image_size)
    tb = torch.randint(0, 2, (batch,))

    def input_grad() -> None:
        inp = xb.clone().requires_grad_()
        out = module(inp).gather(1, tb[:, None]).sum()
        torch.autograd.grad(out, inp)

    def full_backward() -> None:
        module.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(module(xb), tb).backward()

    method = get_method("integrated_gradients")
    params = method.resolve({"n_steps": n_steps, "internal_batch_size": batch})  # the registry's defaults for the rest

    def ig() -> None:
        method.fn(module, x, target, **params)

    fb_wall, fb_cpu = best_of(input_grad, repeats)
    full_wall, full_cpu = best_of(full_backward, repeats)
    ig_wall, ig_cpu = best_of(ig, repeats)
    return {
        "fb_ips": batch / fb_wall,
        "fb_ips_cpu": batch / fb_cpu,
        "full_ips": batch / full_wall,
        "ig_ips": images / ig_wall,
        "ig_ips_cpu": images / ig_cpu,
        "ratio": images / ig_wall * n_steps / (batch / fb_wall),
        "ratio_cpu": images / ig_cpu * n_steps / (batch / fb_cpu),
        "ratio_full": images / ig_wall * n_steps / (batch / full_wall),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet-tiny")
    parser.add_argument("--n-steps", type=int, default=32)
    parser.add_argument("--batch", type=int, default=None,
                        help="path points per forward/backward (IG internal_batch_size; default: the engine's for the image size)")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--passes", default="32,64,128,256,512,1024",
                        help="pass sizes (IG internal_batch_size) timed against each other; captum takes no fewer than the images")
    parser.add_argument("--pass-images", type=int, default=MicroscopeConfig().batch_size,
                        help="images per IG call when timing pass sizes (default: the microscope's, microscope.batch_size)")
    parser.add_argument("--pass-rounds", type=int, default=7, help="rounds of the pass-size timing (median reported)")
    args = parser.parse_args(argv)
    report = Report("attribution", argv)
    torch.set_num_threads(args.threads)
    engine_batch = PATH_BATCH(args.image_size)["internal_batch_size"]
    args.batch = args.batch or engine_batch
    # captum's passes hold whole path points (every image at once), so a pass smaller than the images is not one
    passes = sorted({max(int(v), args.pass_images) for v in args.passes.split(",") if v.strip()})

    r = measure(args.arch, args.n_steps, args.batch, args.images, args.repeats, args.image_size)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    verdict = "meets" if r["ratio"] >= 0.7 else "MISSES"
    print(
        f"{args.arch}: IG(n_steps={args.n_steps}) {r['ig_ips']:.1f} images/s; forward+backward {r['fb_ips']:.0f} images/s "
        f"at batch {args.batch}; efficiency {r['ratio']:.2f} ({verdict} >= 0.7), per CPU second {r['ratio_cpu']:.2f}"
    )
    lines = [
        f"Model `{args.arch}` ({args.image_size}×{args.image_size}, untrained weights: speed does not depend on them), "
        f"captum `IntegratedGradients` through `igcore.microscope.integrated_gradients` with n_steps={args.n_steps}, "
        f"internal_batch_size={args.batch}, {args.images} images per call, black baseline.",
        "",
        "efficiency = IG images/s × n_steps / (forward+backward images/s at the same batch size); 1.0 = no overhead,",
        "target ≥ 0.7. The forward+backward reference computes the input gradient of the target logits",
        "(what IG needs); the full `loss.backward()` (weight gradients too) is shown for context.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| IG images/s, wall-clock (best of {args.repeats}) | {r['ig_ips']:,.1f} |",
        f"| forward+backward (input gradient) images/s at batch {args.batch} | {r['fb_ips']:,.0f} |",
        f"| forward+backward (full backward) images/s at batch {args.batch} | {r['full_ips']:,.0f} |",
        f"| **efficiency** (wall-clock) | **{r['ratio']:.2f}** ({verdict} ≥ 0.7) |",
        f"| efficiency per CPU second | {r['ratio_cpu']:.2f} |",
        f"| efficiency vs full backward | {r['ratio_full']:.2f} |",
        f"| cores available / torch threads | {cores} / {args.threads} |",
        f"| load average at the end | {load:.1f} (the machine is shared; CPU-time figures are less sensitive to it) |",
    ]
    if passes:
        speeds = pass_sizes(args.arch, args.n_steps, passes, args.pass_images, args.pass_rounds, args.image_size)
        fastest = max(speeds.values())
        lines += [
            "",
            f"### Pass size: images × path points per forward/backward pass ({args.pass_images} images per call as the "
            f"microscope makes them, n_steps={args.n_steps}, median of {args.pass_rounds} interleaved rounds; the engine's "
            f"default at {args.image_size} px is {engine_batch}: `igcore.microscope.integrated_gradients.PATH_BATCH`)",
            "",
            "| pass size | IG images/s | relative to the fastest |",
            "|---|---|---|",
            *(f"| {size}{' (default)' if size == engine_batch else ''} | {v:,.1f} | {v / fastest:.2f} |" for size, v in speeds.items()),
        ]
    report.block("docs/bench_attribution.md", "attribution", "\n".join(lines),
                 title="Attribution benchmark: Integrated Gradients vs forward+backward")
    report.publish()
    return 0 if np.isfinite(r["ratio"]) else 1



if __name__ == "__main__":
    raise SystemExit(main())
