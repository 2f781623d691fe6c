"""Side-by-side benchmark: IG vs ERM, GroupDRO, JTT, DFR, the no_prior ablation and references,
across spurious strengths ρ and seeds, on the same data, architecture and budget.

    python -m bench.bench_methods                      # ρ ∈ {0.90, 0.95, 0.99, 1.0} × seeds {0, 1, 2}
    python -m bench.bench_methods --rhos 0.95 --seeds 0 --out /tmp/bench   # a quick look

Every (ρ, seed) is one `igcore` run (every stage the config runs except the microscope) stored under ``--out``. The raw results
are three CSVs: ``docs/results_methods.csv`` (accuracy per run and method; the dashboard's ρ sweep),
``docs/results_ig_checks.csv`` (the IG checks per run: z* free of context/distractor clauses, no_prior using the
background) and ``docs/results_timings.csv`` (seconds per stage). Everything else is rendered from them
(:func:`render`): docs/RESULTS.md (tables of mean ± std), README's results table and the plotly figure
(``docs/results_methods.html`` / ``.png``), so a test can re-render the committed pages from the committed CSVs.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.common import Report
from igcore.config import default_config, load_config
from igcore.pipeline import run_pipeline
from igcore.stages import select_stages
from igcore.store import load_run_dir

METHOD_ORDER = ["erm", "groupdro", "jtt", "dfr", "no_prior", "ig_direct", "ig_student", "oracle", "true_concepts"]
#: README's table: the baseline, the peers, the ablation, IG's student and the reference.
README_METHODS = ["erm", "groupdro", "jtt", "dfr", "no_prior", "ig_student", "oracle"]
USES = {
    "erm": "D labels",
    "groupdro": "D labels + D group labels",
    "jtt": "D labels",
    "dfr": "D labels + group labels of a balanced subset of val",
    "no_prior": "D labels + concept bank",
    "ig_direct": "D labels + concept bank + human judgments",
    "ig_student": "D labels + concept bank + human judgments + unlabelled D′",
    "oracle": "D′ labels (reference)",
    "true_concepts": "true concept annotations of D (reference)",
}
#: The CSVs (relative to the output root) that hold the raw results.
CSVS = {"methods": "docs/results_methods.csv", "checks": "docs/results_ig_checks.csv", "timings": "docs/results_timings.csv"}


@dataclass(frozen=True)
class Results:
    """The raw results of a sweep, as the CSVs hold them."""

    methods: pd.DataFrame
    checks: pd.DataFrame
    timings: pd.DataFrame

    @classmethod
    def read(cls, root: Path) -> Results:
        return cls(**{name: pd.read_csv(root / path) for name, path in CSVS.items()})


def kinds_used(records: list[dict]) -> list[str]:
    return sorted({r["kind"] for r in records if r["weight"] > 0})


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rhos", default="0.9,0.95,0.99,1.0")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", default="runs/bench", help="where the runs are stored")
    ap.add_argument("--set", action="append", default=[], help="extra config overrides for every run")
    args = ap.parse_args(argv)
    report = Report("methods", argv)
    rhos = [float(r) for r in args.rhos.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]

    rows, checks, timings = [], [], []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for rho in rhos:
        for seed in seeds:
            sets = [*args.set, f"world.rho={rho}", f"seed={seed}", 'peers=["groupdro","jtt","dfr"]', f"run_id=bench-{stamp}-rho{rho}-s{seed}"]
            config = load_config(None, sets)
            stages = [s.name for s in select_stages(config) if s.name != "microscope"]  # what the config runs, peers included
            t0 = time.perf_counter()
            run = load_run_dir(run_pipeline(config, args.out, stages=stages, progress=False))
            wall = time.perf_counter() - t0
            m = run.metrics
            for method, r in m["methods"].items():
                rows.append({"rho": rho, "seed": seed, "method": method, "avg_acc": r["avg_acc"],
                             "worst_group_acc": r["worst_group_acc"], "worst_group": r["worst_group"],
                             "train_weighted_acc": r.get("train_weighted_acc"),
                             "world": m["world"]["name"]})  # the dashboard shows the sweep only beside this world's runs
            hyp = m["hypotheses"]
            z_classes = {r["class"] for r in hyp["z_star"] if r["weight"] > 0}
            checks.append({
                "rho": rho, "seed": seed,
                "z_star_kinds": "+".join(kinds_used(hyp["z_star"])),
                "z_star_core_only": kinds_used(hyp["z_star"]) == ["core"],
                "z_star_classes_covered": len(z_classes),
                "no_prior_uses_background": any(r["kind"] == "context" and r["weight"] > 0 for r in hyp["no_prior"]),
                "z_star_text": hyp["z_star_text"],
            })
            stage_s = {k: v["seconds"] for k, v in run.manifest["stages"].items()}
            timings.append({"rho": rho, "seed": seed, "wall_s": round(wall, 1), **stage_s})
            print(f"rho={rho} seed={seed}: {wall:.0f}s  " + "  ".join(
                f"{k}={v['worst_group_acc']:.3f}" for k, v in m["methods"].items()), flush=True)

    results = Results(pd.DataFrame(rows), pd.DataFrame(checks), pd.DataFrame(timings))
    for name, path in CSVS.items():
        getattr(results, name).to_csv(report.path(path), index=False)
    for (page, block), body in render(results).items():
        report.block(page, block, body)
    figure(results.methods, report.path("docs/results_methods.html"), report.path("docs/results_methods.png"))
    report.publish()


def md_table(df: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table (no extra dependency)."""
    head = "| " + " | ".join(map(str, df.columns)) + " |\n|" + "---|" * len(df.columns) + "\n"
    return head + "\n".join("| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False))


def fmt(mean: float, std: float, compact: bool = False) -> str:
    """``mean ± std`` in %; ``compact``: the mean alone when the spread is 0 (README)."""
    std = 0.0 if pd.isna(std) else std
    return f"{100 * mean:.1f}" if compact and std == 0 else f"{100 * mean:.1f} ± {100 * std:.1f}"


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of average and worst-group accuracy, per method and ρ."""
    return df.groupby(["method", "rho"]).agg(
        avg_mean=("avg_acc", "mean"), avg_std=("avg_acc", "std"),
        wga_mean=("worst_group_acc", "mean"), wga_std=("worst_group_acc", "std")).reset_index()


def render(results: Results) -> dict[tuple[str, str], str]:
    """The generated blocks, from the raw results alone: ``{(page, block): body}``."""
    df, checks, timings = results.methods, results.checks, results.timings
    agg = summary(df)
    rhos = sorted(df["rho"].unique())
    seeds = sorted(df["seed"].unique())
    methods = [m for m in METHOD_ORDER if m in set(df["method"])]

    def cell(method: str, rho: float) -> pd.Series | None:
        row = agg[(agg["method"] == method) & (agg["rho"] == rho)]
        return row.iloc[0] if len(row) else None

    def table(col_mean: str, col_std: str) -> str:
        head = "| method | uses | " + " | ".join(f"ρ = {r:g}" for r in rhos) + " |\n"
        head += "|---|---|" + "---|" * len(rhos) + "\n"
        for m in methods:
            cells = [fmt(c[col_mean], c[col_std]) if (c := cell(m, r)) is not None else "–" for r in rhos]
            head += f"| `{m}` | {USES.get(m, '')} | " + " | ".join(cells) + " |\n"
        return head

    lines = [
        f"ρ ∈ {{{', '.join(f'{r:g}' for r in rhos)}}}, seeds {{{', '.join(map(str, seeds))}}}: {len(timings)} runs, "
        f"{timings['wall_s'].sum() / 60:.1f} min in all ({timings['wall_s'].mean():.0f} s per run).",
        "",
        "All methods share the world, the architecture (`resnet-tiny`, transformers ResNet built from config), the training "
        "budget (epochs, batch size, learning rate). The models trained on D's labels keep the epoch with the best "
        "*average* accuracy on `val` (D's distribution); `ig_student`, which has no labels, keeps its last epoch "
        "(`val` would reward the background it learns from L_M's imperfect labels; `igcore/imitate.py`). No method uses a "
        "D′ label for training or selection; only the `oracle`, a reference, trains on them. Numbers are accuracy on D′_eval "
        "(balanced groups), mean ± std over seeds, in %.",
        "",
        "The default run with the microscope (attributions, TCAV, swaps, sanity checks, surrogate z_baseline) is "
        "reported in [DEFAULT_RUN.md](DEFAULT_RUN.md); stage timings and scaling in [PERFORMANCE.md](PERFORMANCE.md).",
        "",
        "## Worst-group accuracy",
        "",
        table("wga_mean", "wga_std"),
        "## Average accuracy",
        "",
        table("avg_mean", "avg_std"),
        "![results](results_methods.png)",
        "",
        "Interactive figure: [results_methods.html](results_methods.html); raw numbers: "
        "[results_methods.csv](results_methods.csv).",
        "",
        "## Who uses which labels (where the comparison is not fair)",
        "",
        "- `groupdro` gets D's group labels (class × background) for every training image — information IG never sees.",
        "- `dfr` gets group labels for a small group-balanced subset of `val`; at ρ = 1 `val` has no minority "
        "groups, so DFR can only balance the groups present.",
        "- `jtt` uses no group labels (its up-weighted error set comes from an ERM model trained for `jtt.id_epochs`).",
        "- IG (`ig_direct`, `ig_student`) uses D's labels, the concept bank (images annotated with concepts, independent "
        "of the task labels) and the human judgments that train Prior_M; `ig_student` also uses D′_train images without labels.",
        "- `no_prior` is IG's likelihood-only ablation: the same concept model and search with a flat prior.",
        "- `oracle` (trained on D′ labels) and `true_concepts` (true annotations) are references, not competitors.",
        "",
        "## IG checks per run",
        "",
        "| ρ | seed | z* clause kinds | classes covered | no_prior uses a background |",
        "|---|---|---|---|---|",
        *[f"| {c.rho:g} | {c.seed} | {c.z_star_kinds} | {c.z_star_classes_covered} | {c.no_prior_uses_background} |"
          for c in checks.itertuples()],
        "",
        "z* of each run (plain English):",
        "",
        *[f"- ρ = {c.rho:g}, seed {c.seed}: {c.z_star_text}" for c in checks.itertuples()],
        "",
        "## Wall time per run (seconds, per stage)",
        "",
        md_table(timings),
    ]
    return {("docs/RESULTS.md", "methods"): "\n".join(lines), ("README.md", "methods-readme"): readme_table(df)}


def readme_table(df: pd.DataFrame) -> str:
    """README's results table: worst-group accuracy per ρ (the default marked) and method, mean ± std over seeds."""
    agg = summary(df)
    default_rho = default_config().world.rho
    methods = [m for m in README_METHODS if m in set(df["method"])]
    names = {"ig_student": "**ig_student**", "oracle": "oracle (reference)"}
    lines = [f"Worst-group accuracy on D′ in % (mean ± std over {df['seed'].nunique()} seeds; the whole sweep, average "
             "accuracy and the other methods: [docs/RESULTS.md](docs/RESULTS.md)):", "",
             "| ρ | " + " | ".join(names.get(m, m) for m in methods) + " |", "|---|" + "---|" * len(methods)]
    for rho in sorted(df["rho"].unique()):
        cells = []
        for m in methods:
            row = agg[(agg["method"] == m) & (agg["rho"] == rho)]
            text = fmt(row["wga_mean"].iloc[0], row["wga_std"].iloc[0], compact=True) if len(row) else "–"
            cells.append(f"**{text}**" if m == "ig_student" else text)
        label = f"{rho:g} (the default)" if rho == default_rho else f"{rho:g}"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(df: pd.DataFrame, html: Path, png: Path) -> None:
    """Worst-group and average accuracy against ρ, mean ± std over seeds (plotly; PNG through kaleido)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    agg = summary(df)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Worst-group accuracy on D′_eval", "Average accuracy on D′_eval"))
    for m in [m for m in METHOD_ORDER if m in set(df["method"])]:
        sub = agg[agg["method"] == m].sort_values("rho")
        for col, (mean, std) in enumerate((("wga_mean", "wga_std"), ("avg_mean", "avg_std")), start=1):
            fig.add_trace(go.Scatter(x=sub["rho"], y=sub[mean], error_y={"type": "data", "array": sub[std].fillna(0)},
                                     name=m, legendgroup=m, showlegend=col == 1, mode="lines+markers"), row=1, col=col)
    fig.update_xaxes(title_text="ρ (class–background correlation in D)")
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    fig.update_layout(height=450, width=1100, template="plotly_white")
    fig.write_html(html, include_plotlyjs="cdn")
    fig.write_image(png, scale=1)


if __name__ == "__main__":
    main()
