"""Speed and scale of the default pipeline: per-stage wall time and peak memory at 1×, 4×, … the
default split sizes, written to ``docs/PERFORMANCE.md``.

    python -m bench.bench_pipeline --scales 1,4             # the documented settings
    python -m bench.bench_pipeline --scales 1,4,16          # add 16× (about 16× the training time)

Scale multiplies every split size of the config (the default's, or the one ``--set`` makes). Peak memory is the
process's maximum resident set size after each stage (``ru_maxrss``), so it shows which stage raised the
high-water mark. The microscope's parts (attributions, TCAV, …) are timed by the stage itself (its manifest entry).
"""

from __future__ import annotations

import argparse
import resource
import time

from bench.common import Report
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
    args = ap.parse_args(argv)
    report = Report("pipeline", argv)
    results = []
    base = load_config(None, args.set)
    for scale in [int(s) for s in args.scales.split(",")]:
        sets = [*args.set, *(f"world.{k}={getattr(base.world, k) * scale}" for k in SIZE_KEYS)]
        sets += [f"device={args.device}", f"run_id=perf-{time.strftime('%Y%m%d-%H%M%S')}-x{scale}"]
        config = load_config(None, sets)
        marks: dict[str, float] = {}
        t0 = time.perf_counter()
        run_dir = run_pipeline(config, args.out, on_stage=lambda name, i, n, marks=marks: marks.__setitem__(name, peak_rss_mb()), progress=False)
        total = time.perf_counter() - t0
        run = load_run_dir(run_dir)
        stages = run.manifest["stages"]
        names = list(stages)
        # the mark taken when stage i+1 starts is the peak reached during stage i
        peaks = {name: marks.get(names[i + 1] if i + 1 < len(names) else "done", peak_rss_mb()) for i, name in enumerate(names)}
        results.append((scale, total, stages, peaks, run.manifest.get("device", "cpu")))
        print(f"scale {scale}: {total:.1f}s", {k: v["seconds"] for k, v in stages.items()}, flush=True)
    report.block("docs/PERFORMANCE.md", "pipeline", "\n".join(render(results, base.world, args.set)), title="Performance")
    report.publish()


def render(results: list, world: object, sets: list[str]) -> list[str]:
    """The per-stage table (seconds and peak RSS per scale, growth), the microscope's parts, the sizes."""
    base = {s: v["seconds"] for s, v in results[0][2].items()}
    config = "the default config" + (f" with `{' '.join('--set ' + s for s in sets)}`" if sets else "")
    lines = [
        f"Runs of {config} on device `{results[0][4]}`; scale = multiple of its split sizes ("
        + ", ".join(f"{k}={getattr(world, k)}" for k in SIZE_KEYS)
        + "); the training budget in epochs is unchanged, so training cost grows with the data.",
        "",
        "## Per-stage wall time and peak memory",
        "",
        "| stage | " + " | ".join(f"×{r[0]} s | ×{r[0]} peak RSS MB" for r in results) + " | growth ×last / ×1 |",
        "|---|" + "---|---|" * len(results) + "---|",
    ]
    for stage in results[0][2]:
        cells = []
        for _, _, stages, peaks, _ in results:
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
                  "| part | " + " | ".join(f"×{scale}" for scale, _ in parts) + " |", "|---|" + "---|" * len(parts),
                  *[f"| {name} | " + " | ".join(f"{p[name]:.1f}" if name in p else "–" for _, p in parts) + " |" for name in names]]
    return lines


if __name__ == "__main__":
    main()
