"""Short labels for widgets, from the engine's hypothesis records.

The sentences that say what a hypothesis claims come from the engine
(:func:`igcore.hypothesis.summary_sentence`, :meth:`igcore.hypothesis.Hypothesis.render`); these helpers
only format single clauses and list entries for Streamlit widgets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from igcore.schema import RankedRecord


def clause_line(record: Mapping[str, Any]) -> str:
    """A field-guide line (Markdown) for one clause record: "Amber eyes suggests **wolf** (weight +2.10)"."""
    text = str(record.get("text") or record["concept"])
    return f"{text[:1].upper()}{text[1:]} suggests **{record['class']}** (weight {float(record['weight']):+.2f})"


def hypothesis_label(index: int, record: RankedRecord, is_z_star: bool) -> str:
    """Short label for the ranked list: ``#1 ★ z* · 5 clauses · posterior 0.62``."""
    n = len(record.clauses)
    star = " ★ z*" if is_z_star else ""
    return f"#{index + 1}{star} · {n} clause{'s' if n != 1 else ''} · posterior {record.posterior:.3g}"
