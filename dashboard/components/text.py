"""Short labels for widgets, and the computed sentences that state a run's stored numbers in words.

The sentences that say what a hypothesis claims come from the engine
(:func:`igcore.hypothesis.summary_sentence`, :meth:`igcore.hypothesis.Hypothesis.render`); these helpers
format single clauses and list entries, and turn stored statistics (effects with their confidence
intervals, accuracies, fidelities, TCAV controls) into one sentence each. They compute nothing new.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dashboard.components.style import possessive, subject
from igcore.schema import MethodMetrics, RankedRecord


def clause_line(record: Mapping[str, Any]) -> str:
    """A field-guide line (Markdown) for one clause record: "Curved bill suggests **landbird** (weight +2.10)"."""
    text = str(record.get("text") or record["concept"])
    return f"{text[:1].upper()}{text[1:]} suggests **{record['class']}** (weight {float(record['weight']):+.2f})"


def hypothesis_label(index: int, record: RankedRecord, is_z_star: bool) -> str:
    """Short label for the ranked list: ``#1 ★ z* · 5 clauses · posterior 0.62``."""
    n = len(record.clauses)
    star = " ★ z*" if is_z_star else ""
    return f"#{index + 1}{star} · {n} clause{'s' if n != 1 else ''} · posterior {record.posterior:.3g}"


def _num(v: float) -> str:
    """A log-odds value: one decimal from 1 up, two below (a change of 0.04 is not "0.0")."""
    return f"{v:.1f}" if abs(v) >= 1 else f"{v:.2f}"


def effect_phrase(stat: Mapping[str, Any], whose: str, full: bool = True) -> str:
    """"lowers the baseline's confidence in its answer by 2.3 log-odds (95% CI 2.1–2.5)" for an effect
    ``{mean, ci_low, ci_high}`` (a change in the log-odds of the model's own answer); a confidence interval
    that includes 0 reads "does not clearly change …". ``full=False`` drops "confidence in its answer"."""
    mean, lo, hi = float(stat["mean"]), float(stat["ci_low"]), float(stat["ci_high"])
    what = f"{whose} confidence in its answer" if full else whose
    if lo <= 0 <= hi:
        return f"does not clearly change {what} (mean {_num(mean)} log-odds, 95% CI {_num(lo)} to {_num(hi)})"
    a, b = sorted((abs(lo), abs(hi)))
    return f"{'lowers' if mean < 0 else 'raises'} {what} by {_num(abs(mean))} log-odds (95% CI {_num(a)}–{_num(b)})"


def effects_sentence(effects: Mapping[str, Mapping[str, Any]], kind: str) -> str | None:
    """One sentence over every model: what swapping only the ``kind`` (``background`` or ``object``) does to
    its confidence in its own answer (``microscope.<model>.effects.<kind>.overall``), or None if no model has it."""
    stats = [(m, e[kind]["overall"]) for m, e in effects.items() if (e.get(kind) or {}).get("overall")]
    if not stats:
        return None
    (model, stat), *rest = stats
    text = f"Swapping only the {kind} {effect_phrase(stat, possessive(model))}"
    return text + "".join(f"; it {effect_phrase(s, possessive(m), full=False)}" for m, s in rest) + "."


def prior_sentence(methods: Mapping[str, MethodMetrics]) -> str | None:
    """What the human prior contributed on this run: the IG student's worst-group accuracy against the
    likelihood-only ``no_prior`` ablation's (None unless both were evaluated)."""
    if "ig_student" not in methods or "no_prior" not in methods:
        return None
    with_prior, without = methods["ig_student"], methods["no_prior"]
    gain = round(100 * with_prior.worst_group_acc) - round(100 * without.worst_group_acc)
    effect = (f"the prior adds {gain} points" if gain > 0 else f"the prior costs {-gain} points" if gain < 0
              else "on the worst group the prior makes no difference")
    return (
        f"With the human prior, the worst group ({with_prior.worst_group}) is right {100 * with_prior.worst_group_acc:.0f}% "
        f"of the time; without it, the worst group ({without.worst_group}) is right {100 * without.worst_group_acc:.0f}%: {effect}."
    )


def interval(summary: Mapping[str, Any], low: str, high: str) -> str:
    """"95% CI 97.6–99.8%" from two stored fractions (empty when either is absent)."""
    if summary.get(low) is None or summary.get(high) is None:
        return ""
    return f"95% CI {100 * float(summary[low]):.1f}–{100 * float(summary[high]):.1f}%"


def fidelity_sentence(summary: Mapping[str, Any], name: str, whose: str) -> str | None:
    """"z_baseline reproduces 99% (95% CI 97.6–99.8%) of the baseline's 300 answers on D′" from
    ``surrogates.<name>`` (None when the fidelity was not stored)."""
    if summary.get("fidelity") is None:
        return None
    ci = interval(summary, "fidelity_ci_low", "fidelity_ci_high")
    n = f"{summary['n_eval']} " if summary.get("n_eval") else ""
    return f"{name} reproduces {100 * float(summary['fidelity']):.1f}%{f' ({ci})' if ci else ''} of {whose} {n}answers on D′."


def tcav_controls_sentence(controls: Mapping[str, Any]) -> str:
    """The random-control rate of a model's TCAV (``microscope.<model>.tcav_controls``) in words."""
    n, rate = int(controls.get("n_tests", 0)), controls.get("not_significant_rate")
    if not n or rate is None:
        return "No random image sets were tested as controls, so there is no check of the test's false-positive rate."
    repeats = controls.get("repeats")
    text = f"Random image sets, tested and judged exactly like concepts, came out not significant in {100 * float(rate):.0f}% of {n} tests"
    text += f" (significant means: in every one of {repeats} repeats)" if repeats and repeats > 1 else ""
    verdict = (": the test rarely calls noise a concept." if float(rate) >= 0.95
               else ": below the 95% a sound test reaches, so read the significant scores with care.")
    single = controls.get("single_repeat_not_significant_rate")
    if single is not None and repeats and repeats > 1:
        verdict += f" One repeat alone would have passed {100 * float(single):.0f}% of them, which is why one repeat is not enough."
    return text + verdict


def share_sentence(attribution: Mapping[str, Mapping[str, Any]]) -> str | None:
    """Where integrated gradients put each model's log-odds change between a double swap and the original
    (``microscope.<model>.swap_attribution.background_share``), in one sentence."""
    parts = []
    for model, a in attribution.items():
        s = a.get("background_share") or {}
        if s.get("mean") is None:
            continue
        ci = f" (95% CI {100 * float(s['ci_low']):.0f}% to {100 * float(s['ci_high']):.0f}%)" if s.get("ci_low") is not None else ""
        parts.append(f"{subject(model)} {100 * float(s['mean']):.0f}%{ci}")
    if not parts:
        return None
    return "Share of the change in log-odds between the double swap and the original that sits on background pixels: " + "; ".join(parts) + "."


def sanity_verdict(entry: Mapping[str, Any] | None, whose: str) -> str:
    """The model-randomisation sanity check (Adebayo et al., 2018) of one model's maps of one method, in words."""
    if entry is None:
        return f"sanity check not run for {whose} maps"
    if entry.get("trustworthy") is None:
        return f"sanity check undefined for {whose} maps (they did not vary)"
    if entry["trustworthy"]:
        return f"✅ {whose} maps pass the sanity check"
    return f"❌ {whose} maps fail the sanity check: do not trust them"
