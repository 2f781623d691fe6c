"""``world.hide_concepts``: a world with some of its annotated concepts withheld from the engine.

A benchmark of concept discovery needs a concept the data *has* but the engine does not know: Snow and
Wolves with its background annotations withheld asks whether discovery finds the background by itself.
:class:`HiddenConcepts` wraps any world and removes the named concepts — annotated ones or the
``place::<group>`` concepts of a loader's group column — from its vocabulary and from every split's
concept matrix, so the concept bank, the concept model, the true-concepts reference, TCAV, clause
deletion and the judgments (:func:`igcore.prior.load_judgments` leaves out ratings about them) never see
them. Everything else stays: images, labels, backgrounds and groups, so evaluation per group is
unchanged. The hidden annotations are not stored in the run; a benchmark that wants them as ground truth
builds the same world without ``hide_concepts`` (same seed, same images).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from igcore.errors import InputError
from igcore.worlds.base import Split, Vocabulary, World


class HiddenConcepts:
    """``world`` without the concepts ``hidden`` (see the module docstring); every other attribute is the world's.

    Raises:
        InputError: a hidden id the world's vocabulary does not have.
    """

    def __init__(self, world: World, hidden: Sequence[str]) -> None:
        ids = list(world.vocabulary.ids)
        unknown = [c for c in hidden if c not in ids]
        if unknown:
            raise InputError(
                f"world.hide_concepts names {', '.join(map(repr, unknown))}, which this world's vocabulary does not have; "
                f"its concepts are: {', '.join(ids)}"
            )
        self._world = world
        self.hidden = tuple(hidden)
        self._keep = np.array([c not in self.hidden for c in ids], dtype=bool)
        self.vocabulary = Vocabulary(tuple(c for c, k in zip(world.vocabulary.concepts, self._keep, strict=True) if k))
        self.notes = [*world.notes, f"concepts withheld from the engine (world.hide_concepts): {', '.join(self.hidden)}"]
        self._cache: dict[str, Split] = {}

    def __getattr__(self, name: str) -> Any:  # name, classes, backgrounds, image_size, can_render, group_names...
        return getattr(self._world, name)

    def _strip(self, split: Split) -> Split:
        return dataclasses.replace(split, concepts=np.ascontiguousarray(split.concepts[:, self._keep]))

    def split(self, name: str) -> Split:
        if name not in self._cache:
            self._cache[name] = self._strip(self._world.split(name))
        return self._cache[name]

    def render_on_background(self, split: Split, background: np.ndarray) -> Split:
        return self._strip(self._world.render_on_background(split, background))


def hide(world: World, hidden: Sequence[str]) -> World:
    """``world`` with ``hidden`` withheld, or ``world`` itself when nothing is hidden."""
    return HiddenConcepts(world, hidden) if hidden else world  # type: ignore[return-value]
