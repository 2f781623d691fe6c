"""Short labels for widgets, and the computed sentences that state a run's stored numbers in words.

The sentences that say what a hypothesis claims come from the engine
(:func:`igcore.hypothesis.summary_sentence`, :meth:`igcore.hypothesis.Hypothesis.render`); these helpers
format single clauses and list entries, and turn stored statistics (effects with their confidence
intervals, accuracies, fidelities, TCAV controls) into one sentence each. They compute nothing new.
Every percentage they write is a fraction of something, so it lies in [0, 100].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from dashboard.components.style import method_label, possessive, subject
from dashboard.explanations import Explanation
from igcore.hypothesis import clause_qualifiers
from igcore.schema import (
    Effect,
    Interval,
    MethodMetrics,
    RankedRecord,
    SanityCheck,
    Surrogate,
    SwapAttribution,
    TCAVControls,
)


def percent(fraction: float | None, digits: int = 1) -> str:
    """A fraction in [0, 1] as a percentage ("43.9%"); "–" when there is none."""
    return "–" if fraction is None else f"{100 * float(fraction):.{digits}f}%"


def utc_time(stamp: str | None) -> str:
    """An ISO timestamp the engine wrote (``2026-11-30T17:36:08+00:00``) as people read it: "2026-11-30 17:36 UTC"."""
    if not stamp:
        return "time unknown"
    try:
        moment = datetime.fromisoformat(stamp).astimezone(UTC)
    except ValueError:
        return stamp
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def clause_name(record: Mapping[str, Any]) -> str:
    """A clause as a chart label: "✗ coat pattern: spotted → cow" (✗ = the deletion test found it not specific)."""
    mark = "✗ " if record.get("specific") is False else ""
    return f"{mark}{record.get('text') or record.get('concept')} → {record.get('class')}"


def clause_line(record: Mapping[str, Any]) -> str:
    """A field-guide line (Markdown) for one clause record: "Curved bill suggests **landbird** (weight +2.10,
    strong evidence)", with "not specific" when the clause-deletion test said so."""
    text = str(record.get("text") or record["concept"])
    return f"{text[:1].upper()}{text[1:]} suggests **{record['class']}** (weight {float(record['weight']):+.2f}, {clause_qualifiers(record)})"


def hypothesis_label(index: int, record: RankedRecord, is_z_star: bool) -> str:
    """Short label for the ranked list: ``#1 ★ z* · 5 clauses · posterior 0.62`` (``index`` from 0)."""
    n = len(record.clauses)
    star = " ★ z*" if is_z_star else ""
    return f"#{index + 1}{star} · {n} clause{'s' if n != 1 else ''} · posterior {record.posterior:.3g}"


def _num(v: float) -> str:
    """A log-odds value: one decimal from 1 up, two below (a change of 0.04 is not "0.0")."""
    return f"{v:.1f}" if abs(v) >= 1 else f"{v:.2f}"


def effect_phrase(stat: Interval, whose: str, full: bool = True) -> str:
    """"lowers the baseline's confidence in its answer by 2.3 log-odds (95% CI 2.1–2.5)" for an effect (a
    change in the log-odds of the model's own answer); a confidence interval that includes 0 reads "does not
    clearly change …". ``full=False`` drops "confidence in its answer"."""
    mean, lo, hi = float(stat.mean or 0.0), float(stat.ci_low or 0.0), float(stat.ci_high or 0.0)
    what = f"{whose} confidence in its answer" if full else whose
    if lo <= 0 <= hi:
        return f"does not clearly change {what} (mean {_num(mean)} log-odds, 95% CI {_num(lo)} to {_num(hi)})"
    a, b = sorted((abs(lo), abs(hi)))
    return f"{'lowers' if mean < 0 else 'raises'} {what} by {_num(abs(mean))} log-odds (95% CI {_num(a)}–{_num(b)})"


def relies(stat: Interval) -> bool:
    """Removing a discovered component clearly lowers the model's confidence in its own answers (interval below 0)."""
    return stat.ci_high is not None and stat.ci_high < 0


def reliance_sentence(label: str, effects: Mapping[str, Interval], bold: bool = True) -> str:
    """"**erm** relies on component 3: removing it lowers …; **ig_student** does not rely on component 3: …" over
    every examined model (``bold``: the models' names in markdown bold, for a page; plain for the report)."""
    mark = "**" if bold else ""
    return "; ".join(f"{mark}{m}{mark} {'relies' if relies(s) else 'does not rely'} on {label}: removing it "
                     f"{effect_phrase(s, possessive(m))}" for m, s in effects.items()) + "."


def most_relied_sentence(table: Any, models: Sequence[str], bold: bool = True) -> str | None:
    """"Most relied on by erm: **erm** relies on component 3 (“a ruler”): …" for the component the first of
    ``models`` relies on most, from a table of discovered components (:meth:`igcore.discover.DiscoveryView.components`,
    its effects on ``models``: :func:`dashboard.components.tables.effect_models`); None when no effect was measured."""
    if not models:
        return None
    top = table.sort_values(f"rank_{models[0]}").iloc[0]
    effects = {m: Interval(mean=top[f"effect_{m}"], ci_low=top[f"ci_low_{m}"], ci_high=top[f"ci_high_{m}"]) for m in models}
    label = f"component {top['k']}" + (f" (“{top['text']}”)" if top["named"] else "")
    return f"Most relied on by {models[0]}: " + reliance_sentence(label, effects, bold)


def effects_sentence(effects: Mapping[str, Mapping[str, Effect]], kind: str) -> str | None:
    """One sentence over every model: what swapping only the ``kind`` (``background`` or ``object``) does to
    its confidence in its own answer (``microscope.<model>.effects.<kind>.overall``), or None if no model has it."""
    stats = [(m, e[kind].overall) for m, e in effects.items() if kind in e and e[kind].overall is not None and e[kind].overall.mean is not None]
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


def fidelity_sentence(summary: Surrogate | None, name: str, whose: str) -> str | None:
    """"z_baseline reproduces 98.3% (95% CI 96.1–99.3%) of the baseline's 300 answers on D′" from
    ``surrogates.<name>`` (None when the fidelity was not stored)."""
    if summary is None or summary.fidelity is None:
        return None
    ci = ""
    if summary.fidelity_ci_low is not None and summary.fidelity_ci_high is not None:
        ci = f" (95% CI {100 * summary.fidelity_ci_low:.1f}–{100 * summary.fidelity_ci_high:.1f}%)"
    n = f"{summary.n_eval} " if summary.n_eval else ""
    return f"{name} reproduces {percent(summary.fidelity)}{ci} of {whose} {n}answers on D′."


def tcav_controls_sentence(controls: TCAVControls | None) -> str:
    """The random-control rate of a model's TCAV (``microscope.<model>.tcav_controls``) in words."""
    if controls is None or not controls.n_tests or controls.not_significant_rate is None:
        return "No random image sets were tested as controls, so there is no check of the test's false-positive rate."
    rate, repeats = controls.not_significant_rate, controls.repeats
    text = f"Random image sets, tested and judged exactly like concepts, came out not significant in {100 * rate:.0f}% of {controls.n_tests} tests"
    text += f" (significant means: in every one of {repeats} repeats)" if repeats and repeats > 1 else ""
    verdict = (": the test rarely calls noise a concept." if rate >= 0.95
               else ": below the 95% a sound test reaches, so read the significant scores with care.")
    single = controls.single_repeat_not_significant_rate
    if single is not None and repeats and repeats > 1:
        verdict += f" One repeat alone would have passed {100 * single:.0f}% of them, which is why one repeat is not enough."
    return text + verdict


def log_odds_interval(stat: Interval) -> str:
    """"+2.1 log-odds (95% CI +1.8 to +2.4)"."""
    ci = f" (95% CI {stat.ci_low:+.2f} to {stat.ci_high:+.2f})" if stat.ci_low is not None and stat.ci_high is not None else ""
    return f"{float(stat.mean or 0.0):+.2f} log-odds{ci}"


def swap_parts_sentence(attribution: Mapping[str, SwapAttribution]) -> str | None:
    """Where integrated gradients put each model's change in log-odds between a double swap and the
    original: the part on background pixels and the part on the objects' pixels, with their intervals
    (``microscope.<model>.swap_attribution``), in one sentence."""
    parts = []
    for model, a in attribution.items():
        bg, ob = a.background_log_odds, a.object_log_odds
        if bg is None or ob is None or bg.mean is None or ob.mean is None:
            continue
        parts.append(f"{subject(model)} {log_odds_interval(bg)} on the background and {log_odds_interval(ob)} on the objects")
    if not parts:
        return None
    return ("Integrated gradients split each model's change in the log-odds of its answer, from the double swap to the original, "
            "by where the pixels are: " + "; ".join(parts) + ".")


def sanity_verdict(entry: SanityCheck | None, whose: str) -> str:
    """The model-randomisation sanity check (Adebayo et al., 2018) of one model's maps of one method, in words."""
    if entry is None:
        return f"sanity check not run for {whose} maps"
    if entry.trustworthy is None:
        return f"sanity check undefined for {whose} maps (they did not vary)"
    if entry.trustworthy:
        return f"✅ {whose} maps pass the sanity check"
    return f"❌ {whose} maps fail the sanity check: do not trust them"


def place_legend(covers: Mapping[str, list[str]]) -> str | None:
    """"Backgrounds stand for these place categories: land = bamboo forest, forest (broadleaf); water = …"
    (None when every background is only itself)."""
    if not covers:
        return None
    return ("Groups are class/background; the background names (the world's `place_names`) stand for these place "
            "categories of the photographs: " + "; ".join(f"**{b}** = {', '.join(c) or 'no image'}" for b, c in covers.items()) + ".")


def explanation_sentence(e: Explanation, fidelity: Surrogate | None = None) -> str:
    """One model's answer on one image, explained by the hypothesis that describes it (Markdown).

    Its own answer first; then the hypothesis's answer: where they agree, the clauses that carried it, each
    with the concept model's *reading* (a probability) and its strength; where they differ, that the
    hypothesis does not explain this answer (with its fidelity, when stored)."""
    head = f"**{method_label(e.model)}** says *{e.answer}*."
    name = e.hypothesis_name
    if not e.agrees:
        rate = f" ({name} reproduces {percent(fidelity.fidelity)} of {possessive(e.model)} answers on D′; this image is among the rest)" \
            if fidelity is not None and fidelity.fidelity is not None else ""
        return f"{head} {name} ({e.relation}) says *{e.hypothesis_answer}* here, so it does not explain this answer{rate}."
    if not e.reasons:
        others = " or ".join(f"*{c}*" for c in e.other_classes)
        return (f"{head} {name} ({e.relation}) gives the same answer, but none of its clauses for *{e.answer}* fires on this image: "
                f"it answers *{e.answer}* because its evidence for {others} is weaker here.")
    reader = {False: "which the concept model reads at", True: "a discovered concept whose calibrated presence here is"}
    reasons = "; ".join(f"“{r.text}”, {reader[r.discovered]} p = {r.reading:.2f} (weight {r.weight:.2f}, {r.qualifiers})" for r in e.reasons)
    return f"{head} {name} ({e.relation}) gives the same answer, from: {reasons}."
