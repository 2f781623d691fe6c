"""Concept scores shaped like a concept model's on the Snow-and-Wolves world, without training one.

The z* search's tests and its bench (``bench/bench_search.py``) need many labelled score matrices of any
size; these come from the world's own attributes and backgrounds (:mod:`igcore.worlds.snowwolf`).
"""

from __future__ import annotations

import numpy as np

from igcore.worlds.base import Vocabulary
from igcore.worlds.snowwolf import ATTRIBUTES, BACKGROUNDS, CLASS_NAMES, LIGHTING, POSITION

#: The world's two classes (0 husky, 1 wolf).
CLASSES = list(CLASS_NAMES[:2])
#: (wolf-typical, husky-typical) concept of each of the six binary attributes.
PAIRS = [(wolf_id, husky_id) for _attribute, wolf_id, husky_id in ATTRIBUTES]
#: The background concepts: snow (wolf-typical), grass (husky-typical), forest.
BACKGROUND_CONCEPTS = tuple(concept for _name, concept in BACKGROUNDS)


def world_scores(vocab: Vocabulary, n: int, rho: float, seed: int, balanced: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Concept scores like a concept model's on the default world, and the labels: true annotations (attributes
    agree with the class w.p. 0.9; background typical for the class w.p. ``rho`` — 1/3 when ``balanced`` —
    else one of the other two; lighting and position independent of the class) plus logit noise, squashed
    to [0, 1]."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)  # 0 husky, 1 wolf
    ann = np.zeros((n, len(vocab)))
    for wolf_id, husky_id in PAIRS:
        wolfish = np.where(rng.random(n) < 0.9, y == 1, y == 0)
        ann[:, vocab.index(wolf_id)], ann[:, vocab.index(husky_id)] = wolfish, ~wolfish
    typical = np.where(y == 1, 0, 1)  # wolf -> snow, husky -> grass
    other = (typical + rng.integers(1, 3, n)) % 3
    bg = np.where(rng.random(n) < (1 / 3 if balanced else rho), typical, other)
    for b, cid in enumerate(BACKGROUND_CONCEPTS):
        ann[:, vocab.index(cid)] = bg == b
    for a, b in (LIGHTING, POSITION):
        on = rng.random(n) < 0.5
        ann[:, vocab.index(a)], ann[:, vocab.index(b)] = on, ~on
    logits = (2 * ann - 1) * 2.5 + rng.standard_normal(ann.shape)
    return (1 / (1 + np.exp(-logits))).astype(np.float32), y
