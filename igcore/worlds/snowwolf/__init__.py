"""Snow and Wolves: a procedural world of huskies and wolves photographed on snow, grass and forest floor.

The world is a benchmark for shortcut learning. Six binary animal attributes (eye
colour, tail, face, coat, snout, ears) carry the class: each equals its class's codeword value with
probability ``feature_p``, so no single attribute decides but the six together decide with ~99 %
accuracy. The background is large and salient and, in ``train``/``val``, agrees with the class with
probability ``rho`` (wolf on snow, husky on grass): the shortcut a baseline learns. ``test_train`` and
``test_eval`` (D') have balanced groups; the ``concept_bank`` draws every attribute 50/50, independently of
any class and of the background.

A split is drawn in two steps: each image's latents (class, background, attributes, pose, lighting, colour
jitter, texture offsets), then their pixels, a pure function of the latents, vectorised over the batch:
each body part is a signed-distance shape anti-aliased from its distance in pixels, and backgrounds, fur
grain and pixel noise are crops of texture tiles made once per world from the seed, so re-rendering the
same latents on another background (a counterfactual) reproduces the animal's pixels exactly.

One job per module: :mod:`~igcore.worlds.snowwolf.sampling` (what the world contains, and each image's
random latents), :mod:`~igcore.worlds.snowwolf.textures` (texture synthesis), :mod:`~igcore.worlds.snowwolf.raster`
(signed-distance body parts), :mod:`~igcore.worlds.snowwolf.render` (latents to pixels) and
:mod:`~igcore.worlds.snowwolf.world` (the world's keys and the class that registers as ``snowwolf``).
"""

from __future__ import annotations

from igcore.worlds.snowwolf.sampling import (
    ATTRIBUTES,
    BACKGROUNDS,
    CLASS_NAMES,
    LIGHTING,
    POSITION,
    TYPICAL_BACKGROUND,
    VOCABULARY_PATH,
)
from igcore.worlds.snowwolf.world import SnowWolfParams, SnowWolfWorld

__all__ = [
    "ATTRIBUTES",
    "BACKGROUNDS",
    "CLASS_NAMES",
    "LIGHTING",
    "POSITION",
    "TYPICAL_BACKGROUND",
    "VOCABULARY_PATH",
    "SnowWolfParams",
    "SnowWolfWorld",
]
