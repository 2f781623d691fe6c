"""The data-source contract every world (procedural or a loader for users' data) implements.

A world produces :class:`Split` objects: images plus everything the engine and the evaluation need
(labels, concept annotations over the world's :class:`Vocabulary`, background, object mask, group).
The engine never looks inside a world beyond this contract, so a loader for a user's own data set only
has to fill these arrays.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from pydantic import Field, field_validator

from igcore.errors import InputError
from igcore.settings import Settings

ConceptKind = Literal["core", "context", "distractor", "discovered"]  # discovered: igcore/discover
SPLITS = ("train", "val", "test_train", "test_eval", "concept_bank")


@dataclass(frozen=True)
class Concept:
    id: str  # stable identifier, e.g. "amber_eyes"
    text: str  # English phrase used in field guides, e.g. "amber eyes"
    kind: ConceptKind


@dataclass(frozen=True)
class Vocabulary:
    """Ordered list of human concepts; column k of every concept matrix is ``concepts[k]``."""

    concepts: tuple[Concept, ...]

    @property
    def ids(self) -> list[str]:
        return [c.id for c in self.concepts]

    def index(self, concept_id: str) -> int:
        for i, c in enumerate(self.concepts):
            if c.id == concept_id:
                return i
        raise InputError(f"unknown concept {concept_id!r}; known concepts: {', '.join(self.ids)}")

    def __getitem__(self, concept_id: str) -> Concept:
        return self.concepts[self.index(concept_id)]

    def __len__(self) -> int:
        return len(self.concepts)

    def kinds(self) -> np.ndarray:
        return np.array([c.kind for c in self.concepts])

    @classmethod
    def from_csv(cls, path: str | Path) -> Vocabulary:
        """Read a vocabulary CSV with columns ``id,text,kind``."""
        path = Path(path)
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or not {"id", "text", "kind"} <= set(rows[0]):
            raise InputError(f"{path}: a vocabulary CSV needs columns id,text,kind")
        bad = [r["id"] for r in rows if r["kind"] not in ("core", "context", "distractor")]
        if bad:
            raise InputError(f"{path}: kind must be core/context/distractor (bad rows: {', '.join(bad)})")
        return cls(tuple(Concept(r["id"], r["text"], r["kind"]) for r in rows))  # type: ignore[arg-type]


@dataclass
class Split:
    """One split of a world. All arrays share the first dimension N.

    images:     uint8 (N, H, W, 3)
    labels:     int64 (N,) index into ``World.classes``
    concepts:   uint8 (N, K) 0/1 annotation of every vocabulary concept (core, context, distractor)
    background: int64 (N,) index into ``World.backgrounds``
    masks:      bool  (N, H, W) True on the animal, or ``None`` when the data has no object masks (a
                user's data set without segmentations); code that needs masks must check for ``None``
    groups:     int64 (N,) ``label * n_backgrounds + background``
    latents:    per-image generator parameters (world specific) that let the world re-render the same
                animal on another background (counterfactuals)
    """

    name: str
    images: np.ndarray
    labels: np.ndarray
    concepts: np.ndarray
    background: np.ndarray
    masks: np.ndarray | None
    groups: np.ndarray
    latents: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: np.ndarray) -> Split:
        return Split(
            self.name,
            self.images[index],
            self.labels[index],
            self.concepts[index],
            self.background[index],
            None if self.masks is None else self.masks[index],
            self.groups[index],
            {k: v[index] for k, v in self.latents.items()},
        )


class WorldParams(Settings):
    """A world's parameters: the ``world.*`` config keys. Each world declares a subclass with its own keys
    (bounds and one line of documentation each), so ``world.*`` accepts exactly what the chosen world reads."""

    name: str = Field(description="the registered world (igcore/worlds/)")
    hide_concepts: list[str] = Field([], description="concept ids withheld from the engine (vocabulary, concept bank, judgments); groups still evaluate")

    @field_validator("hide_concepts")
    @classmethod
    def _distinct_hidden(cls, ids: list[str]) -> list[str]:
        if len(set(ids)) < len(ids):
            raise ValueError(f"world.hide_concepts repeats a concept, got {ids!r}")
        return ids


class World(Protocol):
    """What the pipeline needs from a data source.

    ``can_render`` says whether the world can draw the same object on another background
    (:meth:`render_on_background`): True for procedural worlds, False for loaders of photographs, which
    do not have the method at all; callers check the flag before asking for counterfactuals.
    ``notes`` are one-line remarks about what the world did with the data (concepts dropped, groups
    missing from a split...), for the run manifest and the dashboard; empty when there is nothing to say.
    """

    name: str
    classes: list[str]
    backgrounds: list[str]
    vocabulary: Vocabulary
    image_size: int
    can_render: bool
    notes: list[str]

    def split(self, name: str) -> Split:
        """Return split ``name`` (one of :data:`SPLITS`), generated deterministically from the seed."""
        ...

    def render_on_background(self, split: Split, background: np.ndarray) -> Split:
        """Counterfactual: the same animals (same latents) drawn on ``background`` (one index per image).

        Only worlds with ``can_render`` True implement it.
        """
        ...

    def group_names(self) -> list[str]:
        """Names of groups in group-id order, e.g. ``["husky/snow", "husky/grass", ...]``."""
        ...
