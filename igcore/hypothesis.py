"""The hypothesis language of Imitative Generalization: z = a set of weighted clauses.

Imitative Generalization (IG; Barnes, "Imitative Generalisation (AKA 'Learning the Prior')", AI
Alignment Forum, 2021) searches for a hypothesis z that a *human* could read and apply: the prior
Prior_H(z) and the likelihood L_H(y | x, z) are both judgments a person makes after reading z. Here z is a
small "field guide": a list of clauses "<concept> is evidence for <class>" with a non-negative weight
each, plus one bias per class. A clause never says "evidence against"; a feature that is typical of the
other class is expressed as a clause for that other class, which keeps the guide readable.

:class:`Hypothesis` renders to plain English (:meth:`Hypothesis.render`), to the ``metrics.json`` clause
records (:meth:`Hypothesis.to_records`) and round-trips through JSON (:meth:`Hypothesis.to_json`,
:meth:`Hypothesis.from_json`). Everything read from a user is validated and bad input raises
:class:`~igcore.errors.InputError` with one line saying what is wrong.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from igcore.errors import InputError
from igcore.worlds.base import Vocabulary

#: Weight thresholds for the strength words of :meth:`Hypothesis.render` (weight >= threshold).
STRENGTH_WORDS: tuple[tuple[float, str], ...] = ((2.0, "strong evidence"), (1.0, "moderate"), (0.0, "weak"))

#: How :meth:`Hypothesis.render` names the concept kinds a hypothesis does not use.
KIND_NAMES: dict[str, str] = {"context": "the background", "distractor": "the distractors"}


def with_article(noun: str) -> str:
    """``"wolf" -> "a wolf"``, ``"otter" -> "an otter"`` (plain vowel rule, good enough for class names)."""
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def clause_sentence(concept_text: str, cls: str) -> str:
    """The English sentence of a clause, e.g. ``"amber eyes is evidence for a wolf"``.

    This is also the text the prior's text encoder embeds, so it must stay stable.
    """
    return f"{concept_text} is evidence for {with_article(cls)}"


def implausible_sentence(records: Sequence[Mapping[str, Any]], texts: Mapping[str, str]) -> str | None:
    """The one wording, for the run's note and the dashboard's warnings, of a z* that holds clauses a rater is less
    likely than not to endorse: ``records`` are ``{concept, class, plausibility}``
    (:meth:`igcore.prior.PriorModel.implausible_records`), ``texts`` the concepts' current words; None when empty."""
    if not records:
        return None
    listed = "; ".join(f"“{clause_sentence(texts.get(c['concept'], c['concept']), c['class'])}” "
                       f"(plausibility {float(c['plausibility']):.2f})" for c in records)
    return (f"z* holds {len(records)} clause(s) a rater is less likely than not to endorse: {listed}. The data "
            "outweighed the prior, because no plausible concept of z*'s language explains D as well: name more "
            "discovered concepts (Discover page) or add ratings (Prior page), then re-solve.")


def strength_word(weight: float, thresholds: Sequence[tuple[float, str]] = STRENGTH_WORDS) -> str:
    """The strength word for ``weight``: the first ``(threshold, word)`` with ``weight >= threshold``."""
    for threshold, word in thresholds:
        if weight >= threshold:
            return word
    return thresholds[-1][1]


def _check_weight(weight: Any, what: str) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float, np.integer, np.floating)):
        raise InputError(f"{what}: weight must be a number, got {weight!r}")
    w = float(weight)
    if not math.isfinite(w):
        raise InputError(f"{what}: weight must be finite, got {weight!r}")
    if w < 0:
        raise InputError(f"{what}: weight must be >= 0 (a clause is evidence FOR its class), got {w}")
    return w


@dataclass(frozen=True)
class Clause:
    """One clause of z: ``concept`` (a vocabulary id) is evidence for class ``cls`` with ``weight`` >= 0.

    Args:
        concept: concept id from the :class:`~igcore.worlds.base.Vocabulary`, e.g. ``"amber_eyes"``.
        cls: class name, e.g. ``"wolf"`` (``class`` in JSON).
        weight: non-negative, finite; added to the class logit per unit of concept score.
    """

    concept: str
    cls: str
    weight: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", _check_weight(self.weight, f"clause {self.concept}->{self.cls}"))

    @property
    def key(self) -> tuple[str, str]:
        return (self.concept, self.cls)

    def sentence(self, vocabulary: Vocabulary) -> str:
        return clause_sentence(vocabulary[self.concept].text, self.cls)

    def to_dict(self) -> dict[str, Any]:
        return {"concept": self.concept, "class": self.cls, "weight": self.weight}


@dataclass(frozen=True, eq=False)
class Hypothesis:
    """z: weighted clauses tied to classes, plus a bias per class.

    The class logits that L_M computes from z are ``bias[c] + sum(weight * score[concept])`` over the clauses
    of class ``c`` (see :mod:`igcore.likelihood`). Clauses are kept in a canonical order (class, then
    decreasing weight, then concept), so two equal hypotheses compare and serialise equal.

    Args:
        clauses: the clauses; at most one per (concept, class).
        bias: class -> bias (missing classes mean 0).
    """

    clauses: tuple[Clause, ...] = ()
    bias: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        clauses = tuple(self.clauses)
        seen: set[tuple[str, str]] = set()
        for c in clauses:
            if not isinstance(c, Clause):
                raise InputError(f"a hypothesis holds Clause objects, got {type(c).__name__}")
            if c.key in seen:
                raise InputError(f"duplicate clause {c.concept}->{c.cls}: give each (concept, class) once")
            seen.add(c.key)
        bias: dict[str, float] = {}
        for cls, b in dict(self.bias).items():
            if isinstance(b, bool) or not isinstance(b, (int, float, np.integer, np.floating)) or not math.isfinite(b):
                raise InputError(f"bias of class {cls!r} must be a finite number, got {b!r}")
            bias[str(cls)] = float(b)
        ordered = tuple(sorted(clauses, key=lambda c: (c.cls, -c.weight, c.concept)))
        object.__setattr__(self, "clauses", ordered)
        object.__setattr__(self, "bias", bias)

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self.clauses)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Hypothesis):
            return NotImplemented
        return self.clauses == other.clauses and self.bias == other.bias

    def __hash__(self) -> int:
        return hash((self.clauses, tuple(sorted(self.bias.items()))))

    @property
    def structure(self) -> frozenset[tuple[str, str]]:
        """The set of (concept, class) pairs with a clause, ignoring weights."""
        return frozenset(c.key for c in self.clauses)

    def concepts_used(self) -> set[str]:
        return {c.concept for c in self.clauses}

    def validate(self, vocabulary: Vocabulary, classes: Sequence[str]) -> Hypothesis:
        """Check every concept and class is known; returns ``self`` (raises :class:`InputError`)."""
        known = set(classes)
        for c in self.clauses:
            vocabulary.index(c.concept)  # raises InputError naming the known concepts
            if c.cls not in known:
                raise InputError(f"unknown class {c.cls!r} in clause {c.concept}->{c.cls}; classes: {', '.join(classes)}")
        for cls in self.bias:
            if cls not in known:
                raise InputError(f"unknown class {cls!r} in bias; classes: {', '.join(classes)}")
        return self

    # ------------------------------------------------------------------ matrices
    def to_matrix(self, vocabulary: Vocabulary, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Dense form: ``W`` float64 (K, C) with ``W[k, c]`` = weight of concept k for class c, and bias (C,)."""
        self.validate(vocabulary, classes)
        col = {c: i for i, c in enumerate(classes)}
        weights = np.zeros((len(vocabulary), len(classes)))
        for c in self.clauses:
            weights[vocabulary.index(c.concept), col[c.cls]] = c.weight
        bias = np.array([self.bias.get(c, 0.0) for c in classes], dtype=np.float64)
        return weights, bias

    @classmethod
    def from_matrix(
        cls,
        weights: np.ndarray,
        bias: np.ndarray | Sequence[float],
        vocabulary: Vocabulary,
        classes: Sequence[str],
        tol: float = 0.0,
    ) -> Hypothesis:
        """Inverse of :meth:`to_matrix`: one clause per entry of ``weights`` greater than ``tol``."""
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (len(vocabulary), len(classes)):
            raise InputError(f"weights must have shape (K, C) = {(len(vocabulary), len(classes))}, got {weights.shape}")
        ids = vocabulary.ids
        clauses = [
            Clause(ids[k], classes[c], float(weights[k, c])) for k, c in zip(*np.nonzero(weights > tol), strict=True)
        ]
        b = np.asarray(bias, dtype=np.float64)
        return cls(tuple(clauses), {cl: float(b[i]) for i, cl in enumerate(classes)})

    # ------------------------------------------------------------------ rendering
    def render(
        self,
        vocabulary: Vocabulary,
        classes: Sequence[str],
        thresholds: Sequence[tuple[float, str]] = STRENGTH_WORDS,
    ) -> str:
        """A plain-English field guide, e.g.

        ``"A wolf: amber eyes (strong evidence), a straight bushy tail hanging down (moderate). A husky:
        ice-blue eyes (strong evidence). Not used: the background (snowy ground, green grass), the
        distractors (bright sunlight, dim overcast light)."``

        Classes appear in ``classes`` order; within a class, clauses by decreasing weight. Strength words come
        from ``thresholds`` (weight >= threshold, see :data:`STRENGTH_WORDS`). The final sentence names the
        context and distractor concepts that z does not use (all of a kind when none is used).
        """
        self.validate(vocabulary, classes)
        parts: list[str] = []
        for cls in classes:
            mine = [c for c in self.clauses if c.cls == cls]
            head = with_article(cls)
            head = head[0].upper() + head[1:]
            if mine:
                items = ", ".join(f"{vocabulary[c.concept].text} ({strength_word(c.weight, thresholds)})" for c in mine)
                parts.append(f"{head}: {items}.")
            else:
                parts.append(f"{head}: no specific evidence (chosen when the evidence for the other classes is weak).")
        used = self.concepts_used()
        unused: list[str] = []
        for kind in ("context", "distractor"):
            of_kind = [c for c in vocabulary.concepts if c.kind == kind]
            left = [c.text for c in of_kind if c.id not in used]
            if left:
                unused.append(f"{KIND_NAMES[kind]} ({', '.join(left)})")
        if unused:
            parts.append(f"Not used: {', '.join(unused)}.")
        return " ".join(parts)

    def to_records(self, vocabulary: Vocabulary) -> list[dict[str, Any]]:
        """The ``metrics.json`` clause records: ``{concept, kind, class, weight, text}``.

        ``text`` is the concept's English phrase from the vocabulary (e.g. ``"amber eyes"``).
        """
        out = []
        for c in self.clauses:
            concept = vocabulary[c.concept]
            out.append({"concept": c.concept, "kind": concept.kind, "class": c.cls, "weight": c.weight, "text": concept.text})
        return out

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        return {"clauses": [c.to_dict() for c in self.clauses], "bias": dict(self.bias)}

    def to_json(self, indent: int | None = None) -> str:
        """JSON text ``{"clauses": [{"concept", "class", "weight"}, ...], "bias": {class: value}}``."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    @classmethod
    def from_json(
        cls, text_or_obj: str | bytes | Mapping[str, Any] | Sequence[Any], vocabulary: Vocabulary, classes: Sequence[str]
    ) -> Hypothesis:
        """Parse and validate a hypothesis from JSON text or an already-parsed object.

        Accepts ``{"clauses": [...], "bias": {...}}`` (what :meth:`to_json` writes) or a bare list of clause
        objects ``{"concept", "class", "weight"}``. Raises :class:`InputError` (one line) on malformed JSON,
        unknown concept or class, missing fields, duplicate clauses, negative or non-finite weights.
        """
        obj: Any = text_or_obj
        if isinstance(obj, (str, bytes)):
            try:
                obj = json.loads(obj)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise InputError(f"hypothesis is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
        if isinstance(obj, Mapping):
            unknown = set(obj) - {"clauses", "bias"}
            if unknown:
                raise InputError(f"hypothesis JSON has unknown keys {sorted(unknown)}; expected 'clauses' and 'bias'")
            raw_clauses = obj.get("clauses", [])
            raw_bias = obj.get("bias", {}) or {}
        elif isinstance(obj, Sequence) and not isinstance(obj, (str, bytes)):
            raw_clauses, raw_bias = obj, {}
        else:
            raise InputError("hypothesis JSON must be an object with 'clauses' or a list of clauses")
        if not isinstance(raw_clauses, Sequence) or isinstance(raw_clauses, (str, bytes)):
            raise InputError("hypothesis 'clauses' must be a list of {concept, class, weight} objects")
        if not isinstance(raw_bias, Mapping):
            raise InputError("hypothesis 'bias' must be an object {class: number}")
        clauses = [_clause_from_obj(item, i, vocabulary, classes) for i, item in enumerate(raw_clauses)]
        return cls(tuple(clauses), dict(raw_bias)).validate(vocabulary, classes)


def _clause_from_obj(item: Any, i: int, vocabulary: Vocabulary, classes: Sequence[str]) -> Clause:
    if not isinstance(item, Mapping):
        raise InputError(f"clause #{i} must be an object {{concept, class, weight}}, got {item!r}")
    missing = [k for k in ("concept", "class", "weight") if k not in item]
    if missing:
        raise InputError(f"clause #{i} is missing {', '.join(missing)}; each clause needs concept, class and weight")
    concept, cls = item["concept"], item["class"]
    if not isinstance(concept, str):
        raise InputError(f"clause #{i}: concept must be a string, got {concept!r}")
    vocabulary.index(concept)
    if cls not in classes:
        raise InputError(f"clause #{i}: unknown class {cls!r}; classes: {', '.join(classes)}")
    return Clause(concept, cls, _check_weight(item["weight"], f"clause #{i} ({concept}->{cls})"))


#: Concept kinds about the picture around the object rather than the object (see :func:`summary_sentence`).
CONTEXT_KINDS: tuple[str, ...] = ("context", "distractor")
#: The kind of a concept discovered in a model (:mod:`igcore.discover`): on the object or around it, nobody says.
DISCOVERED_KIND = "discovered"


def join_words(items: Sequence[str]) -> str:
    """``["a", "b", "c"] -> "a, b and c"`` (empty items are dropped)."""
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def clause_qualifiers(record: Mapping[str, Any]) -> str:
    """How strong a clause record is and, when a clause-deletion test found it not specific, that too:
    ``"weak, not specific"`` (the strength word of :data:`STRENGTH_WORDS`, as the field guide writes it)."""
    words = [strength_word(float(record["weight"]))]
    if record.get("specific") is False:
        words.append("not specific")
    return ", ".join(words)


def summary_sentence(
    records: Sequence[Mapping[str, Any]], subject: str, classes: Sequence[str], verb: str = "learned that", top: int = 3,
    names_background: bool = True,
) -> str:
    """One plain-English sentence saying what a hypothesis claims, led by whatever carries most of its weight.

    Where :meth:`Hypothesis.render` is the full field guide, this is the headline a reader sees first
    (the dashboard's cards, the HTML report). It reads clause *records*, the ``metrics.json`` form
    ``{concept, kind, class, weight, text}`` (:meth:`Hypothesis.to_records`), so stored hypotheses and
    surrogates are phrased without rebuilding them. Object features are grouped per class ("a wolf has
    amber eyes"); background (``context``) and ``distractor`` clauses are listed as "snowy ground ⇒ wolf".
    Every clause keeps the field guide's strength word, and a record with ``specific: False`` (the
    clause-deletion test found that deleting it changes answers no more where its concept is present than
    where it is absent) says so. When background clauses carry at least half of the total weight they lead
    the sentence. Concepts discovered in a model (kind ``discovered``) are listed as signs too, in a part of their own:
    nothing says whether one is a thing on the object or around it (a name is free text). So the sentence says "the
    background does not matter" only when the vocabulary names backgrounds (``names_background``: a world without
    background concepts cannot tell) and no discovered concept is used; with discovered ones it says that no annotated
    background counts. At most ``top`` items per part are named, strongest first; the rest are counted.

    Args:
        records: clause records; an empty list is the hypothesis that only uses the class biases.
        subject: who holds the hypothesis ("IG", "The baseline").
        classes: class names, in the order their parts are written.
        verb: what the subject does with it ("learned that", "says that").
        top: how many items each part names.
        names_background: whether the vocabulary has background (``context``) concepts.

    Returns:
        One sentence ending with a full stop.

    >>> summary_sentence([{"concept": "amber_eyes", "kind": "core", "class": "wolf", "weight": 2.0,
    ...                    "text": "amber eyes"}], "IG", ["husky", "wolf"])
    'IG learned that a wolf has amber eyes (strong evidence); the background does not matter.'
    """
    if not records:
        return f"{subject} {verb.split()[0]} no rule at all (empty hypothesis)."

    def strongest(items: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        return sorted(items, key=lambda r: -float(r["weight"]))[:top]

    def phrase(record: Mapping[str, Any]) -> str:
        return f"{record.get('text') or record['concept']} ({clause_qualifiers(record)})"

    def sign(record: Mapping[str, Any]) -> str:
        return f"{record.get('text') or record['concept']} ⇒ {record['class']} ({clause_qualifiers(record)})"

    core = [r for r in records if r.get("kind") not in (*CONTEXT_KINDS, DISCOVERED_KIND)]
    background = [r for r in records if r.get("kind") == "context"]
    distractors = [r for r in records if r.get("kind") == "distractor"]
    found = [r for r in records if r.get("kind") == DISCOVERED_KIND]
    order = list(classes) + sorted({str(r["class"]) for r in core} - set(classes))
    per_class = [(cls, strongest([r for r in core if str(r["class"]) == cls])) for cls in order]
    features = "; ".join(f"{with_article(cls)} has {join_words([phrase(r) for r in own])}" for cls, own in per_class if own)
    if found:
        discovered = f"discovered concepts count: {join_words([sign(r) for r in strongest(found)])}"
        features = f"{features}; {discovered}" if features else discovered
    signs = join_words([sign(r) for r in strongest(background)])
    swayed = join_words([sign(r) for r in strongest(distractors)])
    shown = sum(len(own) for _, own in per_class) + sum(min(top, len(part)) for part in (background, distractors, found))
    more = len(records) - shown
    extra = f" (plus {more} weaker clause{'s' if more != 1 else ''})" if more > 0 else ""
    tail = f"; distractors also sway it ({swayed})" if distractors else ""
    total = sum(abs(float(r["weight"])) for r in records) or 1.0
    if background and sum(abs(float(r["weight"])) for r in background) / total >= 0.5:
        rest = f"; features of the object matter less ({features})" if features else "; the object itself plays no part"
        return f"{subject} {verb} {signs}{rest}{tail}{extra}."
    body = features or "the object itself plays no part"
    if background:
        return f"{subject} {verb} {body}; the background also counts ({signs}){tail}{extra}."
    if not names_background:
        return f"{subject} {verb} {body}{tail}{extra}."
    unused = "no annotated background counts" if found else "the background does not matter"
    return f"{subject} {verb} {body}; {unused}{tail}{extra}."
