"""Speed and scale of the default pipeline: per-stage wall time and peak memory at 1×, 4×, … the
default split sizes, written to ``docs/PERFORMANCE.md``.

    python bench/bench_pipeline.py                 # scales 1 and 4 (default sizes × scale)
    python bench/bench_pipeline.py --scales 1,4,16 # add 16× (about 16× the training time)

Peak memory is the process's maximum resident set size after each stage (``ru_maxrss``), so it shows
which stage raised the high-water mark. Other benchmarks that feed the report: ``bench/bench_search.py``
(z* search scaling) and ``bench/bench_attribution.py`` (captum overhead); their latest results are
linked from the report.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from bench.common import provenance
from igcore.config import default_config, load_config
from igcore.pipeline import run_pipeline
from igcore.store import load_run_dir

DOCS = Path(__file__).resolve().parents[1] / "docs"
SIZE_KEYS = ("n_train", "n_val", "n_test_train", "n_test_eval", "n_concept_bank")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", default="1,4")
    ap.add_argument("--out", default="runs/bench-pipeline")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    results = []
    world = default_config().world
    for scale in [int(s) for s in args.scales.split(",")]:
        sets = [f"world.{k}={getattr(world, k) * scale}" for k in SIZE_KEYS]
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
    write_report(results)


def write_report(results: list) -> None:
    base = {s: v["seconds"] for s, v in results[0][2].items()}
    lines = [
        "# Performance",
        "",
        *provenance(__file__),
        f"Device `{results[0][4]}`.",
        "No GPU was lent to the session that produced these numbers, so the CUDA path (`--set device=cuda`) "
        "has no measured speed-up here.",
        "",
        "## Per-stage wall time and peak memory",
        "",
        "Scale = multiple of the default split sizes (" + ", ".join(f"{k}={getattr(default_config().world, k)}" for k in SIZE_KEYS)
        + "); the training budget in epochs is unchanged, so training cost grows with the data.",
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
    lines += [
        "",
        "## Other measurements",
        "",
        "- z* search scaling over N × K and the re-solve time after a prior change: [bench_search.md](bench_search.md).",
        "- captum IntegratedGradients overhead vs the model's own forward+backward: [bench_attribution.md](bench_attribution.md).",
        "- World rendering throughput: [bench_world.md](bench_world.md).",
        "- Dashboard rerun times, first chart, re-solve and memory: [bench_dashboard.md](bench_dashboard.md).",
        "",
    ]
    (DOCS / "PERFORMANCE.md").write_text("\n".join(lines))
    print(f"wrote {DOCS / 'PERFORMANCE.md'}")


if __name__ == "__main__":
    main()
