"""World registry: ``make_world(name, **params)`` builds any registered data source."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from igcore.errors import InputError
from igcore.worlds.base import SPLITS, Concept, Split, Vocabulary, World

WORLDS: dict[str, Callable[..., World]] = {}


def register_world(name: str) -> Callable[[Callable[..., World]], Callable[..., World]]:
    """Class decorator adding a world factory to :data:`WORLDS` under ``name``."""

    def decorate(factory: Callable[..., World]) -> Callable[..., World]:
        WORLDS[name] = factory
        return factory

    return decorate


def make_world(name: str, **params: Any) -> World:
    """Build world ``name``; unknown names raise :class:`InputError` listing the known ones."""
    if name not in WORLDS:
        raise InputError(f"unknown world {name!r}; known worlds: {', '.join(sorted(WORLDS))}")
    return WORLDS[name](**params)


# Registration imports: numpy, PIL and tqdm only (pandas is imported when a CSV is read; no torch).
from igcore.worlds import folder, snowwolf, waterbirds  # noqa: E402,F401  (register "folder", "snowwolf", "waterbirds")

__all__ = ["SPLITS", "WORLDS", "Concept", "Split", "Vocabulary", "World", "make_world", "register_world"]
