"""The world registry: each data source registers a factory and the parameters class of its ``world.*`` keys.

Registration is explicit (:func:`register_world` on the world's class, in the world's own module); the
package :mod:`igcore.worlds` imports the built-in worlds, so the registry is complete whichever module
is imported first. The worlds import this module, never the package.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from igcore.errors import InputError
from igcore.settings import validated
from igcore.worlds.base import World, WorldParams
from igcore.worlds.images import ProgressFn

#: The world a run uses unless ``world.name`` says otherwise (the demo, and the first in docs).
DEFAULT_WORLD = "snowwolf"


@dataclass(frozen=True)
class WorldSpec:
    """A registered world: ``factory(params, seed, progress) -> World`` and the settings class of its parameters."""

    name: str
    factory: Callable[[Any, int, ProgressFn | None], World]
    params: type[WorldParams]


WORLDS: dict[str, WorldSpec] = {}


Factory = Callable[[Any, int, "ProgressFn | None"], World]


def register_world(name: str, params: type[WorldParams]) -> Callable[[Factory], Factory]:
    """Class decorator adding a world to :data:`WORLDS`; the class is built as ``cls(params, seed, progress)``."""

    def decorate(factory: Factory) -> Factory:
        WORLDS[name] = WorldSpec(name, factory, params)
        return factory

    return decorate


def world_spec(name: str) -> WorldSpec:
    if name not in WORLDS:
        raise InputError(f"unknown world {name!r}; known worlds: {', '.join(sorted(WORLDS))}")
    return WORLDS[name]


def world_params_class(name: str) -> type[WorldParams]:
    """The parameters class of world ``name`` (unknown names raise :class:`InputError` listing the known ones)."""
    return world_spec(name).params


def build_world(params: WorldParams, seed: int = 0, progress: ProgressFn | None = None) -> World:
    """The world described by validated ``params`` (a run config's ``world`` section).

    ``progress(done, total)`` is called while a loader decodes images (the dashboard's progress bar).
    Concepts named in ``hide_concepts`` are withheld (:mod:`igcore.worlds.hidden`).
    """
    from igcore.worlds.hidden import hide

    return hide(world_spec(params.name).factory(params, seed, progress), params.hide_concepts)


def make_world(name: str, seed: int = 0, progress: ProgressFn | None = None, **params: Any) -> World:
    """Build world ``name`` from keyword parameters (validated by its parameters class)."""
    return build_world(validated(world_spec(name).params, {"name": name, **params}, "world"), seed, progress)
