"""Loading a run config: defaults <- a TOML/JSON file <- ``--set`` overrides, validated into a :class:`Config`."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from igcore.config.schema import Config
from igcore.config.sets import deep_merge, parse_sets
from igcore.errors import InputError
from igcore.settings import validated
from igcore.worlds.base import WorldParams
from igcore.worlds.registry import DEFAULT_WORLD, world_params_class


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A TOML (``.toml``) or JSON config file as a dict; unreadable or malformed files are one-line errors."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"config file {str(p)!r} does not exist")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise InputError(f"config file {str(p)!r} cannot be read ({e.strerror}); check its permissions") from None
    except UnicodeDecodeError:
        raise InputError(f"config file {str(p)!r} is not UTF-8 text") from None
    try:
        data = tomllib.loads(text) if p.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"config file {str(p)!r} is not valid {'TOML' if p.suffix.lower() == '.toml' else 'JSON'}: {e}") from None
    if not isinstance(data, dict):
        raise InputError(f"config file {str(p)!r} must hold a table of keys")
    return data


def build_config(data: Mapping[str, Any], stored: bool = False) -> Config:
    """Validate a nested dict of config keys (a file, overrides or a stored run's config) into a :class:`Config`.

    The ``world`` section is validated by the parameters class of the world it names; other sections
    start from their defaults (free-form dicts such as ``microscope.params`` are merged key by key).
    ``stored=True`` (a finished run's config) skips the checks that files it names still exist.
    """
    data = dict(data)
    world = data.pop("world", {})
    if isinstance(world, WorldParams):
        world_params = world
    else:
        if not isinstance(world, Mapping):
            raise InputError("config key 'world' is a section; set one of its keys, e.g. world.<key>=...")
        name = world.get("name", DEFAULT_WORLD)
        if not isinstance(name, str):
            raise InputError(f"world.name must be a world's name, got {name!r}")
        world_params = validated(world_params_class(name), world, "world", stored=stored)
    defaults = Config.model_construct().model_dump(exclude={"world"})
    return validated(Config, {**deep_merge(defaults, data), "world": world_params}, stored=stored)


def load_config(path: str | Path | None = None, sets: Sequence[str] = ()) -> Config:
    """Defaults <- file (``.toml`` or ``.json``) <- ``key=value`` overrides, validated (one-line errors)."""
    data: dict[str, Any] = read_config_file(path) if path is not None else {}
    data = deep_merge(data, parse_sets(sets)) if sets else data
    return build_config(data)


def default_config() -> Config:
    return build_config({})
