"""Benchmark: the microscope at 224 px on a ResNet-18-shaped baseline, under ``microscope.budget_s``.

Uses the BYOD bench's Waterbirds-layout data set at 224 px (``testkit/byod_data.py``, written when absent) and a
ResNet-18-shaped transformers model with **random weights** (no pretrained vision weights are reachable here;
the cost of a pass does not depend on the weights) as ``features.backbone``, so erm, ig_student and oracle
are heads on that backbone and the microscope opens the whole ResNet-18. The pipeline runs without the
microscope; then the microscope is run alone on the stored run (``igcore.microscope.recompute``, what
``python -m igcore microscope RUN_DIR`` does) and timed. Reports the plan (the estimate of the configured work,
what it lowered, each part's planned and actual seconds), the total, and every effect with its interval
and half-width. Writes the ``bench-microscope-scale`` block of ``docs/bench_microscope.md`` (generator
``microscope-scale`` of :data:`bench.registry.GENERATORS`). Torch threads follow the engine's policy
(``runtime.threads``: one fewer than the CPUs unless ``--threads`` says otherwise).

    python -m bench.bench_microscope_scale [--data DIR] [--out DIR] [--n 4800] [--budget 240] [--threads N] [--run RUN_DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from bench.bench_byod import ensure_data, run_one, world_sets
from bench.common import ROOT, Report, lanes_sentence
from igcore.microscope.recompute import recompute
from igcore.runtime import RuntimeConfig, apply_threads
from igcore.store import load_run_dir


def beyond_floor(budget: dict) -> str:
    """A sentence when the plan, every setting lowered as far as it goes, was still estimated above the budget: the
    estimate alone cannot promise the budget, the parts' deadlines (cutting effects for time) must."""
    if budget["budget_s"] is None or budget["planned_s"] <= budget["budget_s"]:
        return ""
    took = budget["spent_s"]  # the microscope's wall time (its parts run side by side: their seconds overlap)
    held = f"it finished within it ({took:.0f} s)" if took <= budget["budget_s"] else f"it ran {took - budget['budget_s']:.0f} s past it"
    return (f" Even with every setting at its floor the plan was estimated above the budget ({budget['planned_s']:.0f} s > "
            f"{budget['budget_s']:g} s), so only the parts' deadlines could hold it (what they cut is marked \"cut for time\" "
            f"below); {held}.")


def resnet18(folder: Path) -> Path:
    """A ResNet-18-shaped image classifier with random weights, saved with ``save_pretrained`` (once)."""
    if not (folder / "config.json").is_file():
        from transformers import ResNetConfig, ResNetForImageClassification

        torch.manual_seed(0)
        ResNetForImageClassification(ResNetConfig(layer_type="basic", depths=[2, 2, 2, 2], hidden_sizes=[64, 128, 256, 512],
                                                  embedding_size=64, num_labels=2)).save_pretrained(folder)
    return folder


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT / "runs" / "bench-byod-data-224", help="the 224 px data set (written when absent)")
    ap.add_argument("--n", type=int, default=4800, help="images of the data set when it is written")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-microscope-scale")
    ap.add_argument("--run", type=Path, default=None, help="reuse a run this script made before (skips the pipeline)")
    ap.add_argument("--budget", type=float, default=240.0, help="microscope.budget_s (seconds)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: runtime.threads, CPUs - 1)")
    args = ap.parse_args(argv)
    report = Report("microscope-scale", argv)
    apply_threads(RuntimeConfig(threads=args.threads).intra_op())
    threads = torch.get_num_threads()

    if args.run is None:
        data = ensure_data(args.data, args.n, 224)
        backbone = resnet18(args.out / "backbone-resnet18")
        sets = [*world_sets(data), "world.image_size=224", f"features.backbone={backbone}", "seed=0",
                f"run_id=scale-{time.strftime('%Y%m%d-%H%M%S')}"]
        run, wall = run_one(sets, args.out / "runs", skip=("microscope",))
        print(f"pipeline without the microscope: {wall:.0f} s -> {run.path}", flush=True)
    else:
        run = load_run_dir(args.run)
    overrides = {"budget_s": args.budget}
    start = time.perf_counter()
    recompute(run.path, overrides, device="cpu")
    seconds = time.perf_counter() - start
    run = load_run_dir(run.path)
    info = json.loads((run.path / "microscope" / "info.json").read_text())
    budget = info["budget"]
    micro = run.metrics["microscope"]

    lines = [
        "## The microscope at 224 px",
        "",
        f"Data: the BYOD bench's data set at 224 px ({run.metrics['world']['sizes']}); `features.backbone` = a ResNet-18-shaped "
        "transformers model with random weights (built from config; the cost of a pass does not depend on the weights, the "
        "answers do, so no accuracy is reported); erm, ig_student and oracle are heads on it, and the microscope opens the "
        f"whole network. Torch threads {threads}. The machine may have been shared while this ran.",
        "",
        f"`microscope.budget_s` = {budget['budget_s']:g} s. Estimate of the configured work: **{budget['estimate_s']:.0f} s**; "
        f"planned: {budget['planned_s']:.0f} s; the microscope took **{budget['spent_s']:.0f} s** "
        f"({seconds:.0f} s with rebuilding the world and loading the models for the recompute).{beyond_floor(budget)}",
        "",
        "| model | forward ms/image | forward+backward ms/image | forward GFLOPs |",
        "|---|---|---|---|",
        *[f"| `{m}` | {c['forward_ms']:.1f} | {c['backward_ms']:.1f} | {c['gflops']:.2f} |" for m, c in budget["model_cost"].items()],
        "",
        # one line, not a table: which settings the plan lowers depends on the measured costs
        "Lowered by the plan (configured → planned): "
        + (", ".join(f"`{k}` {v[0]} → {v[1]}" for k, v in budget["reduced"].items()) or "nothing") + ".",
        "",
        f"Its parts run in two lanes side by side ({lanes_sentence()}), so the parts' seconds overlap and add up to more "
        "than the microscope's.",
        "",
        "| part | planned s | took s |",
        "|---|---|---|",
        *[f"| {p} | {budget['planned_part_s'].get(p, 0):.1f} | {info['timings'].get(p, 0):.1f} |" for p in info["timings"]],
        "",
        "| model | swap | Δ log-odds [95% CI] | half-width | images | cut for time |",
        "|---|---|---|---|---|---|",
    ]
    for m, entry in micro.items():
        cut = ", ".join(k for k, v in (entry.get("unavailable") or {}).items() if "time budget" in v) or "–"
        for kind, e in (entry.get("effects") or {}).items():
            o = e["overall"]
            interval = "–" if o["ci_low"] is None else f"{o['mean']:+.3f} [{o['ci_low']:+.3f}, {o['ci_high']:+.3f}]"
            lines.append(f"| `{m}` | {kind} | {interval} | {entry['precision']['effects_half_width'][kind]:.3f} | {o['n']} | {cut} |")
    body = "\n".join(lines)
    report.block("docs/bench_microscope.md", "bench-microscope-scale", body, title="The microscope's cost")
    report.publish()
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
