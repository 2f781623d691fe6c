"""Data sources ("worlds"): the procedural Snow-and-Wolves world and loaders of people's image sets.

The registry (:mod:`igcore.worlds.registry`) maps ``world.name`` to a world's factory and parameters
class; each world registers itself in its own module, and this package imports the built-in ones.
To add a world: one module that declares its parameters and registers its class, and one import below.
"""

from __future__ import annotations

from igcore.worlds import folder, snowwolf, waterbirds  # noqa: F401  (the built-in worlds register themselves)
from igcore.worlds.base import SPLITS, Concept, Split, Vocabulary, World, WorldParams
from igcore.worlds.registry import (
    DEFAULT_WORLD,
    WORLDS,
    WorldSpec,
    build_world,
    make_world,
    register_world,
    world_params_class,
    world_spec,
)

__all__ = [
    "DEFAULT_WORLD",
    "SPLITS",
    "WORLDS",
    "Concept",
    "Split",
    "Vocabulary",
    "World",
    "WorldParams",
    "WorldSpec",
    "build_world",
    "make_world",
    "register_world",
    "world_params_class",
    "world_spec",
]
