"""Discovered concepts as vocabulary: their ids, their texts, their names, and the language of z*.

A component k discovered in model ``m`` is the concept ``discovered::m/k`` of kind ``discovered``. Until
a person names it, its text is ``"unnamed concept k"``; a name (``discover.names=FILE.csv`` with columns
``component,text``, or the naming store :class:`igcore.discover.store.NameStore`) becomes its text
everywhere a concept's text is used: field guides, clause records, Prior_M's text encoder (which embeds
the text), the Prior page's questions.

**z\\* speaks only in words people can judge.** Prior_M(z) is a model of what people find plausible, and
nobody can judge "unnamed concept 3 is evidence for a wolf". So the hypothesis language of z\\* — and of
its likelihood-only ablation ``no_prior``, so that the two stay comparable — is the annotated concepts
plus the *named* discovered ones (:func:`hypothesis_language`). The surrogates z_baseline / z_student
speak the same language (they describe a model "in the language of z*"), so a named component enters
them too. Every discovered concept, named or not, is described by what it resembles and by its ablation
effect on every model (:mod:`igcore.discover.importance`), is tested by TCAV with ``discover.tcav``, and
is a column of the run's concept scores; those are what people look at to decide what to name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from igcore.errors import InputError
from igcore.hypothesis import DISCOVERED_KIND
from igcore.worlds.base import Concept, Vocabulary

if TYPE_CHECKING:
    from igcore.config import Config

PREFIX = "discovered::"
KIND = DISCOVERED_KIND
#: Longest name a person may give a concept.
MAX_NAME_LENGTH = 80
_ID = re.compile(r"discovered::([A-Za-z0-9_]+)/(\d+)")
_FIX = "a names CSV has columns component,text (e.g. discovered::erm/3,snowy ground), one row per named component"


def concept_id(model: str, k: int) -> str:
    """``discovered::<model>/<k>``."""
    return f"{PREFIX}{model}/{k}"


def parse_id(concept: str) -> tuple[str, int] | None:
    """``(model, k)`` of a discovered concept id, None for any other id."""
    m = _ID.fullmatch(concept)
    return (m.group(1), int(m.group(2))) if m else None


def unnamed_text(k: int) -> str:
    return f"unnamed concept {k}"


def is_discovered(concept: Concept) -> bool:
    return concept.kind == KIND


def is_named(concept: Concept) -> bool:
    """A discovered concept whose text is a person's name for it (not ``unnamed concept k``)."""
    parsed = parse_id(concept.id)
    return parsed is not None and concept.text != unnamed_text(parsed[1])


def name_key(text: str) -> str:
    """What two names must share to be one name: the words, without case."""
    return " ".join(text.split()).casefold()


def alike(concepts: Sequence[Concept]) -> dict[str, list[int]]:
    """Named discovered concepts that share a name (compared without case and extra spaces), two or more each:
    ``{the first one's text: [their positions in concepts]}``. A person who gives several components one name says
    they are one concept to them; :mod:`igcore.discover.importance` then removes them together as well."""
    groups: dict[str, list[int]] = {}
    texts: dict[str, str] = {}
    for i, concept in enumerate(concepts):
        if is_named(concept):
            key = name_key(concept.text)
            texts.setdefault(key, concept.text)
            groups.setdefault(key, []).append(i)
    return {texts[key]: members for key, members in groups.items() if len(members) > 1}


def check_name(text: object, where: str) -> str:
    """A name fit to be a concept's text: one line, not empty, at most :data:`MAX_NAME_LENGTH` characters."""
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{where}: a name must be non-empty text")
    text = " ".join(text.split())
    if len(text) > MAX_NAME_LENGTH:
        raise InputError(f"{where}: a name is at most {MAX_NAME_LENGTH} characters, got {len(text)}")
    if any(ord(ch) < 32 for ch in text):
        raise InputError(f"{where}: a name must be plain one-line text")
    if re.fullmatch(r"unnamed concept \d+", text):
        raise InputError(f"{where}: {text!r} is how an unnamed concept is written; give a name that says what it shows")
    return text


def check_component(component: object, where: str, models: tuple[str, ...], max_k: int | None = None) -> str:
    """A discovered concept id of one of ``models`` (and ``k`` below ``max_k`` when given)."""
    parsed = parse_id(str(component)) if isinstance(component, str) else None
    if parsed is None or parsed[0] not in models:
        raise InputError(f"{where}: {component!r} is not a discovered concept id discovered::<model>/<k> of "
                         f"{', '.join(models) or 'no model (discovery is off)'}; {_FIX}")
    if max_k is not None and parsed[1] >= max_k:
        raise InputError(f"{where}: {component!r} has no such component (k is below {max_k})")
    return str(component)


def read_names_csv(path: str | Path, models: tuple[str, ...], max_k: int | None = None) -> dict[str, str]:
    """``{component id: name}`` from a CSV ``component,text``, every row checked (one-line errors)."""
    from igcore.worlds.imageset import read_csv

    path = Path(path).expanduser()
    df = read_csv(path, ("component", "text"), "discover.names: file", _FIX)
    extra = [c for c in df.columns if c not in ("component", "text")]
    if extra:
        raise InputError(f"discover.names: {path} has column(s) {', '.join(extra)} besides component,text; {_FIX}")
    names: dict[str, str] = {}
    for line, (component, text) in enumerate(zip(df["component"], df["text"], strict=True), start=2):
        where = f"discover.names: {path} line {line}"
        component = check_component(component, where, models, max_k)
        if component in names:
            raise InputError(f"{where}: {component} is named twice; give each component one name")
        names[component] = check_name(text, where)
    return names


def discovered_concepts(model: str, k: int, names: Mapping[str, str] | None = None) -> list[Concept]:
    """The K concepts discovered in ``model``, named from ``names`` where it names them."""
    names = names or {}
    return [Concept(concept_id(model, j), names.get(concept_id(model, j), unnamed_text(j)), KIND) for j in range(k)]  # type: ignore[arg-type]


def apply_names(vocabulary: Vocabulary, names: Mapping[str, str | None]) -> Vocabulary:
    """``vocabulary`` with discovered concepts renamed (a None or empty name makes one unnamed again)."""
    out = []
    for c in vocabulary.concepts:
        parsed = parse_id(c.id)
        if parsed is not None and c.id in names:
            name = names[c.id]
            c = Concept(c.id, name if name else unnamed_text(parsed[1]), c.kind)
        out.append(c)
    return Vocabulary(tuple(out))


@dataclass(frozen=True)
class Language:
    """The concepts z* may speak in: a sub-vocabulary, its columns in the run's concept scores, and how many
    concepts the run has in all."""

    vocabulary: Vocabulary
    columns: np.ndarray
    n_run: int

    def of(self, scores: np.ndarray) -> np.ndarray:
        """The language's columns of an (N, K_run) array of the run's concepts."""
        return np.asarray(scores)[:, self.columns]

    @property
    def left_out(self) -> int:
        """Concepts of the run the language leaves out (unnamed discovered ones)."""
        return self.n_run - len(self.columns)


def hypothesis_language(vocabulary: Vocabulary) -> Language:
    """Annotated concepts and named discovered ones (see the module docstring), in vocabulary order."""
    keep = [i for i, c in enumerate(vocabulary.concepts) if not is_discovered(c) or is_named(c)]
    return Language(Vocabulary(tuple(vocabulary.concepts[i] for i in keep)), np.asarray(keep, dtype=np.int64), len(vocabulary))


def judgments_left_out(config: Config, vocabulary: Vocabulary, language: Vocabulary) -> set[str]:
    """Concepts whose judgments Prior_M is not fitted on: those withheld from the engine
    (``world.hide_concepts``) and discovered ones outside z*'s ``language`` (nobody named them)."""
    d = config.discover
    possible = {c.id for m in d.models for c in discovered_concepts(m, d.max_k())}
    return set(config.world.hide_concepts) | ((possible | set(vocabulary.ids)) - set(language.ids))
