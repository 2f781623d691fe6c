"""Write one run's numbers — methods, hypotheses, concept model, microscope, stage timings — to
``docs/DEFAULT_RUN.md``, so the documentation quotes what the code computed.

    python -m igcore run --out runs && python bench/report_run.py runs/<run_id>
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from igcore.store import load_run_dir  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs"


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--command", default="python -m igcore run", help="the command that produced the run")
    ap.add_argument("--out", default=str(DOCS / "DEFAULT_RUN.md"))
    args = ap.parse_args()
    run = load_run_dir(args.run_dir)
    m, man = run.metrics, run.manifest
    groups = m["world"]["groups"]
    lines = [
        "# The default run",
        "",
        f"Command: `{args.command}` (run `{run.run_id}`, seed {man['seed']}, device `{man.get('device')}`, "
        f"{man['machine']['cpus']} CPUs). Written by `python bench/report_run.py RUN_DIR`.",
        "",
        f"World `{m['world']['name']}`, ρ = {man['config']['world']['rho']}, sizes "
        + ", ".join(f"{k} {v}" for k, v in m["world"]["sizes"].items()) + ".",
        "Training groups: " + ", ".join(f"{k} {v}" for k, v in m["world"]["train_group_counts"].items()) + ".",
        "",
        "## Accuracy on D′_eval (%)",
        "",
        "| method | average | worst group | train-weighted | val | " + " | ".join(groups) + " |",
        "|---|---|---|---|---|" + "---|" * len(groups),
    ]
    for name, r in m["methods"].items():
        lines.append(
            f"| `{name}` | {pct(r['avg_acc'])} | {pct(r['worst_group_acc'])} ({r['worst_group']}) | "
            f"{pct(r.get('train_weighted_acc'))} | {pct(r.get('val_acc'))} | "
            + " | ".join(pct(r["group_acc"].get(g)) for g in groups) + " |"
        )
    h = m.get("hypotheses", {})
    if h:
        lines += ["", "## Hypotheses", "", f"- **z\\*** (IG): {h['z_star_text']}", f"- **no_prior** (flat prior): {h['no_prior_text']}"]
        if "z_baseline_text" in h:
            fid = m.get("surrogates", {}).get("z_baseline", {}).get("fidelity")
            lines.append(f"- **z_baseline** (surrogate of `erm`, fidelity {pct(fid)} %): {h['z_baseline_text']}")
        ranked = h.get("ranked", [])
        lines += ["", f"Ranked alternatives: {len(ranked)}; top 5:", "",
                  "| # | clauses | log prior | log likelihood | posterior |", "|---|---|---|---|---|"]
        for i, r in enumerate(ranked[:5], 1):
            clauses = ", ".join(f"{c['concept']}→{c['class']} ({c['weight']:.1f})" for c in r["clauses"])
            lines.append(f"| {i} | {clauses} | {r['log_prior']:.1f} | {r['log_likelihood']:.1f} | {r['posterior']:.3f} |")
    if "prior" in m:
        p = m["prior"]
        lines += ["", f"Prior_M: encoder {p['encoder']}; {p['n_ratings']} ratings from {p['n_raters']} raters; "
                  f"leave-one-concept-out MAE {p['loco_error']['mae']:.2f} (predict-the-mean {p['loco_error']['baseline_mae']:.2f})."]
    if "concepts" in m:
        auc = m["concepts"]
        lines += ["", "## Concept model ROC AUC", "", "| concept | held-out concept bank | D′_eval |", "|---|---|---|"]
        for cid, v in auc["heldout_auc"].items():
            t = auc["test_eval_auc"].get(cid)
            lines.append(f"| {cid} | {'–' if v is None else f'{v:.3f}'} | {'–' if t is None else f'{t:.3f}'} |")
    if "microscope" in m:
        lines += ["", "## Microscope", ""]
        for model, r in m["microscope"].items():
            rel = ", ".join(f"{k} {v:.3f}" for k, v in r.get("relevance_on_animal", {}).items())
            lines.append(f"- `{model}`: relevance on animal {rel} (mask area share {r.get('mask_area_share', 0):.3f}); "
                         f"background-swap flip rate {pct(r.get('swap_flip_rate'))} %, accuracy on swapped images "
                         f"{pct(r.get('swap_acc'))} %.")
            if "sanity" in r:
                lines.append("  Sanity (cascading randomisation): " + ", ".join(
                    f"{k} {'passes' if v.get('trustworthy') else 'FAILS' if v.get('trustworthy') is False else 'undefined'}"
                    for k, v in r["sanity"].items()) + ".")
        tcav = m["microscope"].get("erm", {}).get("tcav", [])
        if tcav:
            lines += ["", "TCAV on `erm` (background concepts):", "", "| concept | class | layer | score | p | significant |",
                      "|---|---|---|---|---|---|"]
            for t in tcav:
                if t["concept"] in ("snowy_ground", "grassy_ground", "forest_floor"):
                    lines.append(f"| {t['concept']} | {t['class']} | {t['layer']} | {t['score']:.2f} | {t['p_value']:.4f} | {t['significant']} |")
    lines += ["", "## Stage wall time (s)", "", "| stage | seconds |", "|---|---|"]
    for stage, v in man["stages"].items():
        lines.append(f"| {stage} | {v['seconds']:.1f} |")
    lines.append(f"| **total** | **{man.get('total_seconds', 0):.1f}** |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
