"""``--set key=value`` overrides: parsing them into nested sections and merging sections key by key."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

from igcore.errors import InputError


def _parse_value(text: str) -> Any:
    """``--set`` values: JSON when it parses (numbers, true/false/null, lists), else the raw string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def deep_merge(base: dict[str, Any], override: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``override`` merged into a copy of ``base``, recursively through sections (dicts)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        path = f"{prefix}{key}"
        if isinstance(out.get(key), dict):
            if not isinstance(value, Mapping):
                raise InputError(f"config key {path!r} is a section; set one of its keys, e.g. {path}.<key>=...")
            out[key] = deep_merge(out[key], value, path + ".")
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_sets(sets: Sequence[str], only_prefix: str | None = None) -> dict[str, Any]:
    """``["a.b=1", ...]`` as a nested dict (later keys win). ``only_prefix`` restricts the keys allowed."""
    nested: dict[str, Any] = {}
    for item in sets:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise InputError(f"--set expects key=value, got {item!r}")
        if only_prefix is not None and not key.startswith(only_prefix + "."):
            raise InputError(f"only {only_prefix}.* keys can be set here, got {key!r}")
        parts = key.split(".")
        node = nested
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = _parse_value(raw.strip())
    return nested
