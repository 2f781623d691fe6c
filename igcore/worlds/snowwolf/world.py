"""The Snow-and-Wolves world's keys (:class:`SnowWolfParams`) and the world itself (:class:`SnowWolfWorld`),
registered as ``snowwolf``: it samples a split's latents and renders them (see the package's docstring)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
from pydantic import Field

from igcore.errors import InputError
from igcore.worlds.base import SPLITS, Split, WorldParams
from igcore.worlds.images import ProgressFn
from igcore.worlds.registry import register_world
from igcore.worlds.snowwolf.render import Renderer
from igcore.worlds.snowwolf.sampling import (
    BACKGROUNDS,
    CLASS_NAMES,
    TYPICAL_BACKGROUND,
    codewords,
    concept_annotations,
    load_vocabulary,
    sample_latents,
)

_CHUNK = 64  # images rendered at once: small enough for the work arrays to stay in cache


class SnowWolfParams(WorldParams):
    """The ``world.*`` keys of the Snow-and-Wolves world."""

    name: Literal["snowwolf"] = Field("snowwolf", description="the data source: snowwolf (procedural) or a loader of your own data (see docs/BYOD.md)")
    rho: float = Field(0.99, ge=0.5, le=1.0, description="P(typical background | class) in train/val; 0.99 = nearly every wolf on snow (the story)")
    image_size: int = Field(64, ge=32, le=512, description="side of the square RGB images in pixels")
    n_classes: int = Field(2, ge=2, le=len(CLASS_NAMES), description="2 (husky, wolf) up to 6 (adds fox, coyote, jackal, dingo)")
    n_train: int = Field(2000, ge=1, description="images in train (D)")
    n_val: int = Field(1000, ge=1, description="images in val (D's distribution, model selection)")
    n_test_train: int = Field(3000, ge=1, description="images in test_train (D', unlabelled for the engine)")
    n_test_eval: int = Field(1500, ge=1, description="images in test_eval (D' labels, evaluation only)")
    n_concept_bank: int = Field(3000, ge=1, description="images in the concept bank (concepts decorrelated from class and background)")
    feature_p: float = Field(0.9, gt=0.5, le=1.0, description="P(an attribute takes its class's typical value); 0.5 carries no signal")
    background_salience: float = Field(
        1.0, ge=0.0, le=1.0, description="1 keeps the backgrounds' own colours, 0 gives every background the same mean colour"
    )
    animal_scale: float = Field(1.2, ge=0.6, le=1.2, description="animal size relative to the default (1.2: features legible at 64 px)")
    noise_std: float = Field(0.03, ge=0.0, le=0.2, description="per-pixel Gaussian noise baked into the textures")


@register_world("snowwolf", SnowWolfParams)
class SnowWolfWorld:
    """Huskies and wolves (and optionally more canids) on snow, grass and forest floor.

    Args:
        params: the validated ``world.*`` keys (:class:`SnowWolfParams`).
        seed: every split and texture is a deterministic function of it.
        progress: unused: rendering happens split by split, when a split is first asked for.
    """

    name = "snowwolf"
    can_render = True  # procedural: the same animal can be re-drawn on any background (counterfactuals)

    def __init__(self, params: SnowWolfParams, seed: int = 0, progress: ProgressFn | None = None) -> None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise InputError(f"seed must be a non-negative integer, got {seed!r}")
        self.params = params
        self.seed = int(seed)
        self.rho = params.rho
        self.image_size = params.image_size
        self.n_classes = params.n_classes
        self.sizes = {
            split: getattr(params, key)
            for split, key in zip(SPLITS, ("n_train", "n_val", "n_test_train", "n_test_eval", "n_concept_bank"), strict=True)
        }
        self.feature_p = params.feature_p
        self.background_salience = params.background_salience
        self.animal_scale = params.animal_scale
        self.noise_std = params.noise_std

        self.classes = list(CLASS_NAMES[: self.n_classes])
        self.backgrounds = [b for b, _ in BACKGROUNDS]
        self.vocabulary = load_vocabulary()
        self.codewords = codewords(self.n_classes)
        self.typical_background = np.array(TYPICAL_BACKGROUND[: self.n_classes], dtype=np.int64)
        self.renderer = Renderer(self.image_size, self.animal_scale, self.seed, self.background_salience, self.noise_std)
        self._cache: dict[str, Split] = {}
        self.notes: list[str] = []

    # -- public API ---------------------------------------------------------------------------------

    def split(self, name: str) -> Split:
        """Split ``name`` (one of :data:`SPLITS`), generated on first use and cached."""
        if name not in SPLITS:
            raise InputError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
        if name not in self._cache:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, SPLITS.index(name)]))
            latents = sample_latents(
                name, self.sizes[name], rng, n_classes=self.n_classes, rho=self.rho, feature_p=self.feature_p,
                codewords=self.codewords, typical_background=self.typical_background, image_size=self.image_size,
                canvas=self.renderer.canvas, max_scale=self.renderer.max_scale,
            )
            self._cache[name] = self._make_split(name, latents)
        return self._cache[name]

    def render_on_background(self, split: Split, background: np.ndarray) -> Split:
        """The same animals (attributes, pose, position, colours, lighting, noise) on ``background``.

        Pixels inside the animal mask are identical to the original's; only the background (and the
        soft anti-aliased fringe just outside the mask) changes.
        """
        background = np.asarray(background)
        if background.shape != (len(split),) or not np.issubdtype(background.dtype, np.integer):
            raise InputError(f"background must be an integer array of shape ({len(split)},), got {background.shape}")
        if len(background) and (background.min() < 0 or background.max() >= len(self.backgrounds)):
            raise InputError(f"background indices must be in [0, {len(self.backgrounds) - 1}]")
        if "attributes" not in split.latents:
            raise InputError(f"split {split.name!r} has no snowwolf latents; only snowwolf splits can be re-rendered")
        latents = dict(split.latents)
        latents["background"] = background.astype(np.int64)
        return self._make_split(f"{split.name}/counterfactual", latents)

    def group_names(self) -> list[str]:
        """``class/background`` in group-id order (``label * n_backgrounds + background``)."""
        return [f"{c}/{b}" for c in self.classes for b in self.backgrounds]

    def _make_split(self, name: str, latents: dict[str, np.ndarray]) -> Split:
        labels, background = latents["labels"], latents["background"]
        n = len(labels)
        size = self.image_size
        images = np.empty((n, size, size, 3), dtype=np.uint8)
        masks = np.empty((n, size, size), dtype=bool)
        chunks = [slice(start, start + _CHUNK) for start in range(0, n, _CHUNK)]

        def draw(chunk: slice) -> None:
            self.renderer.draw({k: v[chunk] for k, v in latents.items()}, images[chunk], masks[chunk])

        # The chunks are independent and numpy releases the GIL in its array loops, so threads that take the next
        # chunk as they finish one fill the free cores (a work queue: a busy core only slows the thread on it, and
        # the pixels are the same in any order).
        self.renderer.textures()  # made once, before the threads share them
        with ThreadPoolExecutor(min(len(chunks), os.cpu_count() or 1) or 1, thread_name_prefix="render") as pool:
            list(pool.map(draw, chunks))
        groups = np.where(labels >= 0, labels * len(self.backgrounds) + background, -1)
        # The left/right annotation says where the animal's body actually is (mask centroid), which at
        # large animal scales can differ from the half its canvas was placed in.
        area = np.maximum(masks.sum((1, 2)), 1)
        centroid_x = (masks.sum(1) * np.arange(masks.shape[2])).sum(1) / area
        latents["position"] = (centroid_x > masks.shape[2] / 2).astype(np.uint8)
        return Split(name, images, labels, concept_annotations(latents, self.vocabulary), background, masks, groups, latents)
