"""Tables of stored numbers, as the pages and the report show them (percentages in %, rounded as the
charts round them, so a table never says 43.85% beside a chart's 43.9%)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from dashboard.components.charts.microscope import TCAV_STATUS
from dashboard.components.style import method_label, order_methods
from igcore.schema import ClauseDeletion, MethodMetrics, TCAVRecord


def percent_value(fraction: float | None) -> float | None:
    """A fraction as a percentage rounded to one decimal (None stays None)."""
    return None if fraction is None else round(100.0 * float(fraction), 1)


def accuracy_table(methods: Mapping[str, MethodMetrics]) -> pd.DataFrame:
    """One row per method: average and worst-group accuracy (in %) and which group is worst."""
    rows = []
    for name in order_methods(methods):
        m = methods[name]
        rows.append(
            {
                "method": method_label(name),
                "average accuracy": percent_value(m.avg_acc),
                "worst-group accuracy": percent_value(m.worst_group_acc),
                "worst group": m.worst_group,
                "accuracy at training proportions": percent_value(m.train_weighted_acc),
            }
        )
    return pd.DataFrame(rows)


def tcav_table(tcav: Sequence[TCAVRecord], texts: Mapping[str, str]) -> pd.DataFrame:
    """One row per concept and class: mean score, its range over repeats and the verdict."""
    rows = [
        {
            "concept": texts.get(t.concept, t.concept),
            "towards": t.cls,
            "layer": t.layer,
            "score (mean)": t.score,
            "lowest": t.score if t.score_min is None else t.score_min,
            "highest": t.score if t.score_max is None else t.score_max,
            "significant in": f"{int(t.significant) if t.significant_repeats is None else t.significant_repeats} of {t.repeats} repeats",
            "verdict": TCAV_STATUS[t.status][0],
        }
        for t in tcav
    ]
    return pd.DataFrame(rows)


def clause_deletion_table(records: Sequence[ClauseDeletion]) -> pd.DataFrame:
    """The clause-deletion test as a table (rates in %)."""
    rows = []
    for r in records:
        rows.append(
            {
                "clause": f"{r.text or r.concept} → {r.cls}",
                "weight": r.weight,
                "answers changed, concept present": percent_value(r.present.answer_change_rate),
                "mean drop, present": r.present.mean_drop,
                "answers changed, concept absent": percent_value(r.absent.answer_change_rate),
                "mean drop, absent": r.absent.mean_drop,
                "images present / absent": f"{r.present.n} / {r.absent.n}",
                "specific": "yes" if r.specific else "no",
            }
        )
    return pd.DataFrame(rows)


def interval_cells(table: pd.DataFrame, model: str) -> list[str]:
    """``effect [ci_low, ci_high]`` of each row of a table of discovered components (``effect_<model>``,
    ``ci_low_<model>``, ``ci_high_<model>``: :class:`igcore.discover.DiscoveryView`), for ``model``."""
    return [f"{e:+.2f} [{lo:+.2f}, {hi:+.2f}]" for e, lo, hi in
            zip(table[f"effect_{model}"], table[f"ci_low_{model}"], table[f"ci_high_{model}"], strict=True)]


def effect_models(table: pd.DataFrame) -> list[str]:
    """The models whose effects a table of discovered components holds (its ``effect_<model>`` columns), in order."""
    return [c.removeprefix("effect_") for c in table.columns if c.startswith("effect_")]


def discovered_table(table: pd.DataFrame, texts: Mapping[str, str]) -> pd.DataFrame:
    """The components of one model (:meth:`igcore.discover.DiscoveryView.components`) as the Discover page and the
    report show them: name, share of D′ where present, best annotated match (in its words, ``texts``: the run's concept
    texts), effect per model with its interval, rank."""
    models = effect_models(table)
    return pd.DataFrame({
        "component": table["id"], "name": [t if n else "unnamed" for t, n in zip(table["text"], table["named"], strict=True)],
        "present in D′ (share)": table["present_share"].round(3),
        "best annotated concept": [texts.get(c, c) if isinstance(c, str) else c for c in table["best_concept"]],
        "AUC": table["best_concept_auc"].astype(float).round(3),
        "best background": table["best_background"], "background AUC": table["best_background_auc"].astype(float).round(3),
        **{f"effect on {m}": interval_cells(table, m) for m in models},
        **{f"rank for {m}": table[f"rank_{m}"] for m in models},
    })


def removed_together_table(together: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """Components removed together (:func:`igcore.discover.view.together_table`) as shown: name, components, the
    effect on each of ``models`` that was measured, with its interval."""
    return pd.DataFrame({
        "name": together["text"], "components": [", ".join(c) for c in together["components"]],
        **{f"effect on {m}": interval_cells(together, m) for m in models if f"effect_{m}" in together},
    })
