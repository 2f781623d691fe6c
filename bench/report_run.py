"""Write the default run's numbers — methods, hypotheses, concept model, microscope — to ``docs/DEFAULT_RUN.md``
and its microscope evidence to ``docs/microscope.md``, so the documentation quotes what the code computed. It
reads the run through the dashboard's run view (typed sections over ``igcore.store.Run``) and phrases
hypotheses with the engine's own sentences, like the dashboard. Its time per stage is measured by
``bench/bench_pipeline.py`` (docs/PERFORMANCE.md).

    python -m bench.report_run --runs RUNS [--set KEY=VALUE ...]   # runs `python -m igcore run` (the default config) into RUNS
    python -m bench.report_run RUN_DIR                             # reports an existing run
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from streamlit.logger import set_log_level

set_log_level("error")  # before the run view's caches are made: outside a server each would warn that none runs

from bench.common import Report, default_run  # noqa: E402  (after the log level)
from dashboard.run_view import RunView  # noqa: E402  (after the log level)
from igcore.likelihood import SPECIFIC_ALPHA  # noqa: E402  (after the log level)
from igcore.schema import Interval, Surrogate  # noqa: E402  (after the log level)
from igcore.store import load_run_dir  # noqa: E402  (after the log level)

#: Background concepts whose TCAV scores the report lists.
BACKGROUNDS = ("snowy_ground", "grassy_ground", "forest_floor")


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def verdict(trustworthy: bool | None) -> str:
    return {True: "passes", False: "FAILS", None: "undefined"}[trustworthy]


def interval(x: Interval | None) -> str:
    if x is None or x.mean is None:
        return "–"
    return f"{x.mean:+.3f} [{x.ci_low:+.3f}, {x.ci_high:+.3f}]" if x.ci_low is not None and x.ci_high is not None else f"{x.mean:+.3f}"


def effects_lines(run: RunView) -> list[str]:
    """Counterfactual effects with bootstrap CIs, and where integrated gradients put the swap's evidence (log-odds)."""
    rows = []
    for model, m in run.microscope.items():
        a = m.swap_attribution
        for kind, e in m.effects.items():
            part = (a.background_log_odds if kind == "background" else a.object_log_odds) if a is not None else None
            rows.append(f"| `{model}` | {kind} | {interval(e.overall)} | {pct(e.flip_rate)} | {e.overall.n if e.overall else 0} | "
                        f"{interval(part)} |")
    if not rows:
        return []
    return ["", "Counterfactual effects: mean change of the log-odds of the model's own answer when only the background "
            "(or only the object) is swapped, 95% bootstrap CI; flip rate = share of answers that change. Swap attribution = "
            "the part of the integrated-gradients attribution of a double swap (log-odds of the model's answer, original − "
            "double swap) that sits on the swapped thing's pixels: background pixels on the background row, the objects' "
            "pixels on the object row.", "",
            "| model | swap | Δ log-odds [95% CI] | flip rate % | n | swap attribution on its pixels, log-odds [95% CI] |",
            "|---|---|---|---|---|---|", *rows]


def tcav_lines(run: RunView) -> list[str]:
    """TCAV of erm on the background concepts (aggregated over repeats) and the random controls' rate."""
    if run.missing("microscope.erm.tcav", "TCAV") is not None:
        return []
    lines = ["", "TCAV on `erm` (background concepts; score = mean over repeats, p = the largest corrected p of the "
             "repeats, significant = in every repeat):", "",
             "| concept | class | layer | score | spread | p adjusted | significant in |", "|---|---|---|---|---|---|---|"]
    for t in run.tcav():
        if t.concept in BACKGROUNDS:
            extra = t.model_extra or {}
            lines.append(f"| {t.concept} | {t.cls} | {t.layer} | {t.score:.2f} | {extra.get('score_spread', 0):.2f} | "
                         f"{extra['p_adjusted']:.4f} | {int(t.significant) if t.significant_repeats is None else t.significant_repeats} of {t.repeats} |")
    controls = run.tcav_controls("erm")
    if controls:
        more = controls.model_extra or {}
        lines += ["", f"Random controls (image sets with no concept, judged like concepts): {more.get('n_significant')} of "
                  f"{controls.n_tests} significant, not-significant rate **{pct(controls.not_significant_rate)} %**"
                  + (f" ({more.get('n_unstable')} significant in some repeats only; one repeat alone: "
                     f"{pct(controls.single_repeat_not_significant_rate)} % of {more['single_repeat_tests']})"
                     if "single_repeat_tests" in more else "") + "."]
    return lines


def deletion_lines(run: RunView) -> list[str]:
    """Per clause of z* and z_baseline: how often deleting it changes L_M's answer where its concept is present / absent,
    the one-sided test of the difference, and the verdict."""
    lines = []
    for key in ("z_star", "z_baseline"):
        if run.missing(f"clause_deletion.{key}", "clause deletion") is not None:
            continue
        records = run.clause_deletion(key)
        if not records:
            continue
        if not lines:
            lines = ["", "Clause deletion (L_M's answers with one clause deleted; answer-change rate where the concept is "
                     f"present / absent; specific = changed more often where present, one-sided Fisher exact p < {SPECIFIC_ALPHA:g}, "
                     "and the class probability drops more there):", "",
                     "| hypothesis | clause | weight | present: n, changed % | absent: n, changed % | p | specific |",
                     "|---|---|---|---|---|---|---|"]
        for r in records:
            p = r.p_value
            lines.append(f"| {key} | {r.concept} ⇒ {r.cls} | {r.weight:.2f} | {r.present.n}, "
                         f"{pct(r.present.answer_change_rate)} | {r.absent.n}, {pct(r.absent.answer_change_rate)} | "
                         f"{'–' if p is None else f'{p:.2g}'} | {r.specific} |")
    return lines


def run_line(run: RunView, command: str) -> str:
    """Which run the report describes: its command, id, seed and device."""
    return f"The run: `{command}` (run `{run.run_id}`, seed {run.info.seed}, device `{run.info.device}`)."


def report_body(run: RunView, command: str) -> list[str]:
    """The Markdown lines of the report."""
    info, world = run.info, run.world
    groups = world.groups
    lines = [
        run_line(run, command),
        "",
        f"World `{world.name}`, ρ = {info.config['world'].get('rho')}, sizes "
        + ", ".join(f"{k} {v}" for k, v in world.sizes.items()) + ".",
        "Training groups: " + ", ".join(f"{k} {v}" for k, v in world.train_group_counts.items()) + ".",
        "",
        "## Accuracy on D′_eval (%)",
        "",
        "| method | average | worst group | train-weighted | val | " + " | ".join(groups) + " |",
        "|---|---|---|---|---|" + "---|" * len(groups),
    ]
    for name, r in run.methods.items():
        lines.append(
            f"| `{name}` | {pct(r.avg_acc)} | {pct(r.worst_group_acc)} ({r.worst_group}) | "
            f"{pct(r.train_weighted_acc)} | {pct((r.model_extra or {}).get('val_acc'))} | "
            + " | ".join(pct(r.group_acc.get(g)) for g in groups) + " |"
        )
    if run.missing("hypotheses.z_star", "z*") is None:
        lines += ["", "## Hypotheses", "",
                  f"- **z\\*** (IG): {run.summary(run.clauses('z_star'), 'IG')} {run.hypothesis_text('z_star')}",
                  f"- **no_prior** (flat prior): {run.hypothesis_text('no_prior')}"]
        if run.missing("hypotheses.z_baseline", "z_baseline") is None:
            fid = (run.surrogate("z_baseline") or Surrogate()).fidelity
            lines.append(f"- **z_baseline** (surrogate of `erm`, fidelity {pct(fid)} %): "
                         f"{run.summary(run.clauses('z_baseline'), 'The baseline')} {run.hypothesis_text('z_baseline')}")
        lines += ["", f"Ranked alternatives: {len(run.ranked)}; top 5:", "",
                  "| # | clauses | log prior | log likelihood | posterior |", "|---|---|---|---|---|"]
        for i, r in enumerate(run.ranked[:5], 1):
            clauses = ", ".join(f"{c.concept}→{c.cls} ({c.weight:.1f})" for c in r.clauses)
            lines.append(f"| {i} | {clauses} | {r.log_prior:.1f} | {r.log_likelihood:.1f} | {r.posterior:.3f} |")
    prior = run.results.prior
    if prior:
        encoder = str(prior["encoder"]).split(" (")[0]  # the rest names local files of this machine
        lines += ["", f"Prior_M: encoder {encoder}; leave-one-concept-out MAE {prior['loco_error']['mae']:.2f} "
                  f"(predict-the-mean {prior['loco_error']['baseline_mae']:.2f}). Its judgments: {run.judgments_note()}"]
    concepts = run.results.concepts
    if concepts:
        lines += ["", "## Concept model ROC AUC", "", "| concept | held-out concept bank | D′_eval |", "|---|---|---|"]
        for cid, v in concepts["heldout_auc"].items():
            t = concepts["test_eval_auc"].get(cid)
            lines.append(f"| {cid} | {'–' if v is None else f'{v:.3f}'} | {'–' if t is None else f'{t:.3f}'} |")
    if run.microscope:
        lines += ["", "## Microscope", ""]
        for model, r in run.microscope.items():
            rel = ", ".join(f"{k} {v:.3f}" if v is not None else f"{k} undefined" for k, v in r.relevance_on_animal.items())
            lines.append(f"- `{model}`: relevance on the object {rel} (mask area share {r.mask_area_share or 0:.3f}); "
                         f"background-swap flip rate {pct(r.swap_flip_rate)} %, accuracy on swapped images "
                         f"{pct(r.swap_acc)} %.")
            if r.sanity:
                lines.append("  Sanity (cascading randomisation): "
                             + ", ".join(f"{k} {verdict(v.trustworthy)}" for k, v in r.sanity.items()) + ".")
        lines += effects_lines(run)
        lines += tcav_lines(run)
        lines += deletion_lines(run)
    lines += ["", "Time per stage of the default config: [PERFORMANCE.md](PERFORMANCE.md) (measured by `bench/bench_pipeline.py`)."]
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", nargs="?", help="an existing run (default: run the default config into --runs)")
    ap.add_argument("--runs", help="where to run (or find) the default run")
    ap.add_argument("--set", action="append", default=[], help="config overrides of the run (the quick settings)")
    args = ap.parse_args(argv)
    if (args.run_dir is None) == (args.runs is None):
        ap.error("give a RUN_DIR or --runs")
    report = Report("default-run", argv)
    path = Path(args.run_dir) if args.run_dir else default_run(Path(args.runs), args.set)
    path = load_run_dir(path).path.resolve()  # one line naming the problem when it is not a run
    run = RunView.open(str(path.parent), path.name)
    command = shlex.join(["python", "-m", "igcore", "run", *(a for s in args.set for a in ("--set", s))]) if args.runs else "python -m igcore run"
    report.block("docs/DEFAULT_RUN.md", "default-run", "\n".join(report_body(run, command)), title="The default run")
    evidence = [run_line(run, command) + " The whole report: [DEFAULT_RUN.md](DEFAULT_RUN.md).",
                *effects_lines(run), *tcav_lines(run), *deletion_lines(run)]
    report.block("docs/microscope.md", "default-run-evidence", "\n".join(evidence))
    report.publish()


if __name__ == "__main__":
    main()
