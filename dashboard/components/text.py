"""Plain-English sentences from the engine's hypothesis records (lists of clause dicts).

A clause is ``{concept, kind, class, weight, text}``: "``text`` is evidence for ``class`` with strength
``weight``" (a negative weight is evidence against). These helpers only *phrase* what the engine
stored; they never change or re-rank it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Clause = dict[str, Any]
CONTEXT_KINDS = ("context", "distractor")


def _article(noun: str) -> str:
    return f"an {noun}" if noun[:1].lower() in "aeiou" else f"a {noun}"


def join_words(items: Sequence[str]) -> str:
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _phrase(clause: Clause) -> str:
    text = str(clause.get("text") or clause.get("concept") or "?")
    return text


def _weight(clause: Clause) -> float:
    try:
        return float(clause.get("weight", 0.0))
    except (TypeError, ValueError):
        return 0.0


def context_share(clauses: Sequence[Clause]) -> float:
    """Fraction of the total |weight| carried by background/distractor clauses (0 when empty)."""
    total = sum(abs(_weight(c)) for c in clauses)
    if total == 0:
        return 0.0
    return sum(abs(_weight(c)) for c in clauses if c.get("kind") in CONTEXT_KINDS) / total


def _by_class(clauses: Sequence[Clause], classes: Sequence[str], top: int = 3) -> list[str]:
    parts = []
    order = list(classes) + sorted({str(c.get("class")) for c in clauses} - set(classes))
    for cls in order:
        own = sorted((c for c in clauses if str(c.get("class")) == cls), key=lambda c: -abs(_weight(c)))[:top]
        if not own:
            continue
        has = [_phrase(c) for c in own if _weight(c) > 0]
        lacks = [_phrase(c) for c in own if _weight(c) < 0]
        words = []
        if has:
            words.append(f"has {join_words(has)}")
        if lacks:
            words.append(f"does not have {join_words(lacks)}")
        parts.append(f"{_article(cls)} {' and '.join(words)}")
    return parts


def _signs(clauses: Sequence[Clause], classes: Sequence[str], top: int = 3) -> list[str]:
    out = []
    for c in sorted(clauses, key=lambda c: -abs(_weight(c)))[:top]:
        cls = str(c.get("class"))
        if _weight(c) >= 0:
            out.append(f"{_phrase(c)} ⇒ {cls}")
        else:
            out.append(f"{_phrase(c)} ⇒ not {cls}")
    return out


def summary_sentence(clauses: Sequence[Clause] | None, subject: str, classes: Sequence[str], verb: str = "learned that") -> str:
    """One sentence saying what a hypothesis claims, led by whatever carries most of its weight.

    Animal features are grouped per class; background (``context``) and ``distractor`` clauses are
    listed as "X ⇒ class". At most three items per part are named (strongest first), the rest counted.

    >>> summary_sentence([{"concept": "amber_eyes", "kind": "core", "class": "wolf", "weight": 2.0,
    ...                    "text": "amber eyes"}], "IG", ["husky", "wolf"])
    'IG learned that a wolf has amber eyes; the background does not matter.'
    """
    if not clauses:
        return f"{subject} {verb.split()[0]} no rule at all (empty hypothesis)."
    core = [c for c in clauses if c.get("kind") not in CONTEXT_KINDS]
    background = [c for c in clauses if c.get("kind") == "context"]
    distractors = [c for c in clauses if c.get("kind") == "distractor"]
    animal = "; ".join(_by_class(core, classes))
    signs = join_words(_signs(background, classes))
    swayed = join_words(_signs(distractors, classes))
    core_classes = {str(c.get("class")) for c in core}
    shown = sum(min(3, sum(1 for c in core if str(c.get("class")) == cls)) for cls in core_classes)
    shown += min(3, len(background)) + min(3, len(distractors))
    more = len(clauses) - shown
    extra = f" (plus {more} weaker clause{'s' if more != 1 else ''})" if more > 0 else ""
    tail = f"; distractors also sway it ({swayed})" if distractors else ""
    total = sum(abs(_weight(c)) for c in clauses) or 1.0
    background_share = sum(abs(_weight(c)) for c in background) / total
    if background and background_share >= 0.5:
        lead = f"{subject} {verb} {signs}"
        rest = f"; animal features matter less ({animal})" if animal else "; the animal itself plays no part"
        return f"{lead}{rest}{tail}{extra}."
    body = animal or "the animal itself plays no part"
    if background:
        return f"{subject} {verb} {body}; the background also counts ({signs}){tail}{extra}."
    return f"{subject} {verb} {body}; the background does not matter{tail}{extra}."


def clause_sentence(clause: Clause) -> str:
    """A field-guide line for one clause: "Amber eyes → wolf (weight +2.1)"."""
    w = _weight(clause)
    arrow = "suggests" if w >= 0 else "argues against"
    text = _phrase(clause)
    return f"{text[:1].upper()}{text[1:]} {arrow} **{clause.get('class')}** (weight {w:+.2f})"


def hypothesis_label(index: int, record: dict[str, Any]) -> str:
    """Short label for the ranked list: ``#1 · 5 clauses · posterior 0.62``."""
    n = len(record.get("clauses") or [])
    post = record.get("posterior")
    post_txt = f" · posterior {float(post):.3g}" if isinstance(post, (int, float)) else ""
    star = " (z*)" if index == 0 else ""
    return f"#{index + 1}{star} · {n} clause{'s' if n != 1 else ''}{post_txt}"
