"""Benchmark on a Waterbirds-layout data set with CUB-layout attributes and masks → docs/BYOD.md.

Generates the data set with ``testkit/byod_data.py`` when it is not there (4,800 JPEGs of 96 px, rho = 0.95
in train, place-balanced val and test, 4% annotation noise), runs the whole pipeline on it with the
``waterbirds`` world for every seed, and writes worst-group accuracy per method (mean ± std over seeds),
the seconds per stage, whether z* uses a ``place::`` concept, and the counterfactual effects of the
inpainted swaps (with an example strip) into the generated block of docs/BYOD.md. With ``--backbone``
it adds a run on frozen features at 224 px and measures feature extraction against the backbone's plain
batched forward throughput, side by side.

    python -m bench.bench_byod                         # 3 seeds, the default data set
    python -m bench.bench_byod --backbone              # + frozen features at 224 px

The data set's judgments (``judgments_bench.csv``) are simulated: ``testkit/byod_data.py`` draws them with a
random-number generator from the rule it draws the birds by, under three simulated rater names.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench.common import ROOT, Report
from igcore.config import load_config
from igcore.pipeline import run_pipeline
from igcore.stages import select_stages
from igcore.store import Run, load_run_dir

METHODS = ("erm", "oracle", "true_concepts", "no_prior", "ig_direct", "ig_student")


def ensure_data(folder: Path, n: int, size: int) -> Path:
    """The generated data set in ``folder`` (written when absent)."""
    if not (folder / "metadata.csv").is_file():
        from testkit import byod_data

        stats = byod_data.write_dataset(folder, n=n, size=size, seed=0, rho=0.95)
        print(f"wrote {stats['n']} images of {size} px in {stats['seconds']:.1f} s", flush=True)
    return folder


def world_sets(data: Path) -> list[str]:
    return [
        "world.name=waterbirds", f"world.root={data}", f"world.cub_root={data / 'CUB_200_2011'}",
        f"world.vocabulary={data / 'vocabulary_bench.csv'}", f"prior.judgments={data / 'judgments_bench.csv'}",
    ]


def run_one(sets: list[str], out: Path, skip: tuple[str, ...] = ()) -> tuple[Run, float]:
    """One run of the pipeline's default stages for ``sets``, less the stages named in ``skip``."""
    config = load_config(None, sets)
    stages = [s.name for s in select_stages(config) if s.name not in skip]
    start = time.perf_counter()
    run = load_run_dir(run_pipeline(config, out, stages=stages, progress=False))
    return run, time.perf_counter() - start


def fmt(values: list[float]) -> str:
    a = 100 * np.asarray(values, dtype=float)
    return f"{a.mean():.1f} ± {a.std(ddof=1) if len(a) > 1 else 0.0:.1f}"


def effect_cell(run: Run, model: str, kind: str) -> str:
    e = (run.metrics["microscope"].get(model) or {}).get("effects", {}).get(kind)
    if not e:
        return "–"
    o = e["overall"]
    return f"{o['mean']:+.2f} [{o['ci_low']:+.2f}, {o['ci_high']:+.2f}], flips {100 * e['flip_rate']:.0f}%"


def strip_png(run: Run, path: Path) -> str | None:
    """The counterfactual strip (original | background | object | double swap) of a run as a PNG."""
    from PIL import Image

    try:
        t = run.tensors("counterfactuals", "microscope")
    except Exception:  # noqa: BLE001  (a run without masks has no strip)
        return None
    rows = [np.concatenate([t[k][i] for k in ("original", "background", "object", "double") if k in t], axis=1)
            for i in range(min(8, len(t["index"])))]
    img = Image.fromarray(np.concatenate(rows, axis=0))
    img = img.resize((img.width * 2, img.height * 2), Image.NEAREST) if img.width < 600 else img
    img.save(path)
    return path.name


def backbone_section(data224: Path, out: Path, seed: int, extra: list[str]) -> list[str]:
    """Frozen features at 224 px: stage times and extraction vs the backbone's plain forward throughput."""
    import torch

    from igcore.features import FeatureExtractor

    backbone = out / "backbone-resnet18"
    if not (backbone / "config.json").is_file():
        from transformers import ResNetConfig, ResNetForImageClassification

        torch.manual_seed(0)  # ResNet-18 shape; random weights (no pretrained weights reachable from here)
        ResNetForImageClassification(ResNetConfig(layer_type="basic", depths=[2, 2, 2, 2], hidden_sizes=[64, 128, 256, 512],
                                                  embedding_size=64, num_labels=2)).save_pretrained(backbone)
    sets = [*extra, *world_sets(data224), "world.image_size=224", f"features.backbone={backbone}", f"seed={seed}",
            f"run_id=byod-backbone-{time.strftime('%Y%m%d-%H%M%S')}"]
    # Without the microscope: this section measures the frozen-feature path; bench/bench_microscope_scale.py
    # measures the microscope at 224 px on the same kind of backbone, under microscope.budget_s.
    run, wall = run_one(sets, out / "runs", skip=("microscope",))
    feats = run.metrics["features"]
    extractor = FeatureExtractor(backbone, batch_size=64, device="cpu")
    x = torch.rand(64, 3, 224, 224)
    with torch.inference_mode():
        extractor.module_.model(pixel_values=x)  # warm-up
        start, reps = time.perf_counter(), 3
        for _ in range(reps):
            extractor.module_.model(pixel_values=x)
        plain = 64 * reps / (time.perf_counter() - start)
    ratio = feats["images_per_second"] / plain
    stages = run.manifest["stages"]
    lines = [
        "## Frozen features at 224 px",
        "",
        f"`features.backbone` = a ResNet-18-shaped transformers model with **random weights** (built from config: no pretrained "
        "vision weights can be downloaded on the machine that ran this; the timing does not depend on the weights, the "
        f"accuracy does, so none is reported). Seed {seed}, `world.image_size=224`, {feats['images']} images through the backbone. "
        "Every default stage but the microscope, which [bench_microscope.md](bench_microscope.md) measures at 224 px "
        "(`bench/bench_microscope_scale.py`: the same kind of backbone, under `microscope.budget_s`).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| feature extraction (stage `features`, decode excluded) | {feats['images_per_second']:.1f} images/s |",
        f"| the backbone's plain batched forward (batch 64, random tensors) | {plain:.1f} images/s |",
        f"| **ratio** | **{ratio:.2f}** (target ≥ 0.8) |",
        f"| loading and decoding the images (`prepare_seconds`) | {run.manifest['prepare_seconds']:.1f} s |",
        f"| whole run | {wall:.0f} s |",
        "",
        "| stage | seconds |",
        "|---|---|",
        *[f"| {k} | {v['seconds']:.1f} |" for k, v in stages.items()],
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / "runs" / "bench-byod-data", help="the data set (generated when absent)")
    ap.add_argument("--n", type=int, default=4800, help="images in the data set")
    ap.add_argument("--n-backbone", type=int, default=None, help="images in the 224 px data set (default: --n)")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-byod")
    ap.add_argument("--set", action="append", default=[], help="extra config overrides for every run")
    ap.add_argument("--backbone", action="store_true", help="also a run on frozen features at 224 px")
    args = ap.parse_args(argv)
    report = Report("byod", argv)
    data = ensure_data(args.data, args.n, args.size)
    seeds = [int(s) for s in args.seeds.split(",")]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    runs: list[tuple[int, Run, float]] = []
    for seed in seeds:
        run, wall = run_one([*world_sets(data), f"seed={seed}", f"run_id=byod-{stamp}-s{seed}", *args.set], args.out)
        runs.append((seed, run, wall))
        wga = {m: run.results().methods[m].worst_group_acc for m in METHODS if m in run.results().methods}
        print(f"seed {seed}: {wall:.0f} s  " + "  ".join(f"{m}={v:.3f}" for m, v in wga.items()), flush=True)

    per_method = {m: [r.results().methods[m].worst_group_acc for _, r, _ in runs] for m in METHODS}
    avg = {m: [r.results().methods[m].avg_acc for _, r, _ in runs] for m in METHODS}
    gap = [a - b for a, b in zip(per_method["ig_student"], per_method["erm"], strict=True)]
    place = [[c["concept"] for c in r.metrics["hypotheses"]["z_star"] if c["concept"].startswith("place::")] for _, r, _ in runs]
    first = runs[0][1]
    strip = strip_png(first, report.path("docs/byod_counterfactual_strip.png"))
    stage_names = list(first.manifest["stages"])
    n_images = sum(1 for _ in (data / "metadata.csv").open()) - 1
    lines = [
        f"Data: {n_images:,} JPEGs written by `testkit/byod_data.py` (rho = 0.95 in train, place-balanced val and test, 4% "
        f"annotation noise); per split {', '.join(f'{k} {v}' for k, v in first.metrics['world']['sizes'].items())}; "
        f"`world.image_size` {first.config['world']['image_size']}; seeds {seeds}. "
        "Judgments: `judgments_bench.csv`, **simulated**: drawn by `testkit/byod_data.py` with a random-number generator "
        "from the rule it draws the birds by (a bird feature is evidence for the class it is typical of, a place for neither), "
        "under three simulated rater names; no person rated these concepts.",
        "",
        "| method | worst-group accuracy (mean ± std) | average accuracy |",
        "|---|---|---|",
        *[f"| {m} | {fmt(per_method[m])} | {fmt(avg[m])} |" for m in METHODS],
        "",
        f"**ig_student − erm, worst group:** {fmt(gap)} points (per seed: {', '.join(f'{100 * g:+.1f}' for g in gap)}).  ",
        "**z\\* uses a `place::` concept:** " + ("never" if not any(place) else "; ".join(f"seed {s}: {p}" for (s, _, _), p in zip(runs, place, strict=True) if p)) + ".",
        "",
        "z\\* of seed " + str(seeds[0]) + ": " + first.metrics["hypotheses"]["z_star_text"],
        "",
        "## Seconds per stage (mean over seeds)",
        "",
        "| stage | seconds |",
        "|---|---|",
        f"| loading the data set (`prepare_seconds`) | {np.mean([r.manifest['prepare_seconds'] for _, r, _ in runs]):.1f} |",
        *[f"| {s} | {np.mean([r.manifest['stages'][s]['seconds'] for _, r, _ in runs]):.1f} |" for s in stage_names],
        f"| **whole run** | {np.mean([w for _, _, w in runs]):.0f} |",
        "",
        "## Inpainted counterfactuals (seed " + str(seeds[0]) + ")",
        "",
        "Mean change in the log-odds of the model's own answer when only the background is swapped (the bird pasted onto "
        "an inpainted image of another place) or only the bird is swapped (a bird of the other class pasted onto the "
        "inpainted background), with bootstrap 95% intervals over D′_eval; and how often the answer flips.",
        "",
        "| model | background swap | object swap |",
        "|---|---|---|",
        *[f"| {m} | {effect_cell(first, m, 'background')} | {effect_cell(first, m, 'object')} |" for m in ("erm", "ig_student", "oracle")],
        "",
    ]
    if strip:
        lines += [f"![original, background swap, object swap, double swap]({strip})",
                  "", "Columns: original · background swapped · bird swapped · both swapped.", ""]
    if args.backbone:
        data224 = ensure_data(args.data.with_name(args.data.name + "-224"), args.n_backbone or args.n, 224)
        lines += backbone_section(data224, args.out, seeds[0], args.set)
    report.block("docs/BYOD.md", "byod", "\n".join(lines), title="Bring your own data")
    report.publish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
