"""Hypotheses written as data in tests: ``from_pairs([("amber_eyes", "wolf", 2.0), ...])``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from igcore.hypothesis import Clause, Hypothesis


def from_pairs(pairs: Iterable[tuple[str, str, float]], bias: Mapping[str, float] | None = None) -> Hypothesis:
    """The hypothesis of ``(concept, class, weight)`` clauses (and class biases)."""
    return Hypothesis(tuple(Clause(c, y, w) for c, y, w in pairs), dict(bias or {}))
