"""Benchmark: TCAV alone on a stored run's models, main's captum-TCAV path against the layer kernels.

Both paths run in one invocation on the same models, images and settings (the run's
``microscope.tcav``): the old one (``testkit/tcav_reference.py``: captum's ``TCAV`` class, one forward
pass per concept set and repeat, activations and CAVs round-tripped through a temporary directory) and
the new one (:func:`igcore.microscope.tcav.tcav_repeated`: each bank image through the model once, each
tested input's layer gradients once, every CAV fitted in memory from the Gram matrix). Reports wall-clock
and process-CPU seconds of each (best of ``--repeats``; the machine may be shared), and whether the
significant/unstable calls and the random-control rate agree. Writes the ``bench_tcav`` block of
``docs/bench_tcav.md`` (generator ``tcav`` of :data:`bench.registry.GENERATORS`). Torch threads follow the
engine's policy (``runtime.threads``: one fewer than the CPUs unless ``--threads`` says otherwise).

    python -m bench.bench_tcav --runs DIR [--set KEY=VALUE ...]   # the default run (made once under DIR)
    python -m bench.bench_tcav --run RUN_DIR [--threads N] [--repeats 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.common import Report, default_run
from igcore.discover.view import stored_present
from igcore.microscope.runner import tcav_inputs
from igcore.microscope.tcav import tcav_repeated
from igcore.runtime import RuntimeConfig, apply_threads
from igcore.store import load_run_dir
from testkit import tcav_reference


def timed(fn: Callable[[], Any], repeats: int) -> tuple[Any, float, float]:
    """(result, best wall-clock seconds, best process-CPU seconds) of ``repeats`` calls."""
    wall, cpu, out = [], [], None
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return out, min(wall), min(cpu)


def calls(result: tuple[list[dict[str, Any]], dict[str, Any]]) -> tuple[list[tuple[str, str, str, bool, bool]], float | None]:
    records, controls = result
    return [(r["concept"], r["class"], r["layer"], r["significant"], r["unstable"]) for r in records], controls["not_significant_rate"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--run", type=Path, help="a finished run directory (python -m igcore run)")
    where.add_argument("--runs", type=Path, help="a folder of runs: the default run there (made when absent)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config of the default run (--runs)")
    ap.add_argument("--models", default=None, help="comma-separated models (default: the run's microscope.tcav.models)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: runtime.threads, CPUs - 1)")
    ap.add_argument("--repeats", type=int, default=1, help="timed calls of each path (best is reported)")
    args = ap.parse_args(argv)
    report = Report("tcav", argv)

    run = load_run_dir(args.run or default_run(args.runs, args.set))
    apply_threads(RuntimeConfig(threads=args.threads).intra_op())
    threads = torch.get_num_threads()
    config = run.config_model()
    t = config.microscope.tcav
    vocabulary, classes = run.vocabulary()
    bank, images = run.tensors("concept_bank"), run.tensors("test_eval")["images"]
    # the concepts the run tested: the annotated ones, then the discovered ones when discover.tcav (as the run did)
    bank_concepts, concept_ids = bank["concepts"], list(vocabulary.ids)[: bank["concepts"].shape[1]]
    if config.discover.tcav and len(vocabulary) > bank_concepts.shape[1]:
        bank_concepts = np.concatenate([bank_concepts, stored_present(run, "concept_bank")], axis=1)
        concept_ids = list(vocabulary.ids)
    labels = run.table("predictions").sort_values("index")["label"].to_numpy()  # D′ labels pick the tested inputs, as in the run
    by_class = tcav_inputs(images, labels, classes, t.n_inputs, config.seed)
    settings = {"classes": classes, "n_random": t.n_random, "n_concept_images": t.n_concept_images, "alpha": t.alpha,
                "correction": t.correction, "seed": config.seed, "n_controls": t.n_controls, "repeats": t.repeats}
    rows = []
    for name in (args.models.split(",") if args.models else t.models):
        module = run.load_model(name, device="cpu").module_.eval()
        call = (module, bank["images"], bank_concepts, concept_ids, by_class, t.layers)
        new, new_wall, new_cpu = timed(lambda: tcav_repeated(*call, **settings), args.repeats)  # noqa: B023
        old, old_wall, old_cpu = timed(lambda: tcav_reference.tcav_repeated(*call, **settings), args.repeats)  # noqa: B023
        (old_calls, old_rate), (new_calls, new_rate) = calls(old), calls(new)
        score_diff = max(abs(a["score"] - b["score"]) for a, b in zip(old[0], new[0], strict=True))
        rows.append({
            "model": name, "old_wall": old_wall, "old_cpu": old_cpu, "new_wall": new_wall, "new_cpu": new_cpu,
            "tests": len(new_calls), "significant": sum(c[3] for c in new_calls), "unstable": sum(c[4] for c in new_calls),
            "same_calls": old_calls == new_calls, "old_rate": old_rate, "new_rate": new_rate, "score_diff": score_diff,
        })
        print(rows[-1], flush=True)

    n_sets = (len(concept_ids) + t.n_controls) * t.n_random + t.n_random
    lines = [
        f"Settings (the run's `microscope.tcav`): layers {', '.join(t.layers)}; {t.n_random} random sets, {t.n_controls} "
        f"random controls, {t.n_concept_images} images per set, {t.n_inputs} tested inputs per class, {t.repeats} repeats "
        f"(up to {n_sets} CAVs per layer and repeat); {len(bank['images'])} concept-bank images of "
        f"{bank['images'].shape[1]} px; torch threads {threads}. Seconds are the best of {args.repeats} call(s), "
        "measured one after the other in this invocation.",
        "",
        "| model | old wall s | old CPU s | new wall s | new CPU s | speed-up (wall) | tests | significant | unstable "
        "| same calls | control not-significant rate old / new | largest score difference |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rate = " / ".join("–" if x is None else f"{100 * x:.1f} %" for x in (r["old_rate"], r["new_rate"]))
        lines.append(f"| `{r['model']}` | {r['old_wall']:.1f} | {r['old_cpu']:.1f} | {r['new_wall']:.1f} | {r['new_cpu']:.1f} | "
                     f"{r['old_wall'] / r['new_wall']:.1f}× | {r['tests']} | {r['significant']} | {r['unstable']} | "
                     f"{'yes' if r['same_calls'] else 'NO'} | {rate} | {r['score_diff']:.2g} |")
    body = "\n".join(lines)
    report.block("docs/bench_tcav.md", "bench_tcav", body, title="TCAV: computed once per layer and model")
    report.publish()
    print(body)
    return 0 if all(r["same_calls"] and r["old_rate"] == r["new_rate"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
