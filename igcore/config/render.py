"""The config for people: every key with its value and meaning (``python -m igcore config``), and README's tables."""

from __future__ import annotations

import json
from typing import Any

from igcore.config.loading import default_config
from igcore.config.schema import Config
from igcore.settings import REQUIRED, describe
from igcore.worlds.registry import DEFAULT_WORLD, WORLDS


def _toml_value(value: Any) -> str:
    if value is REQUIRED:
        return repr(value)
    return "null" if value is None else json.dumps(value)


def describe_config(config: Config) -> list[tuple[str, Any, Any, str]]:
    """``(key, value, default, meaning)`` for every key of ``config``."""
    return describe(config)


def config_text(config: Config) -> str:
    """The effective config, one ``key = value  # meaning`` line per key (what ``igcore config`` prints)."""
    rows = describe_config(config)
    width = min(48, max(len(f"{k} = {_toml_value(v)}") for k, v, _, _ in rows))
    lines = []
    for key, value, default, doc in rows:
        left = f"{key} = {_toml_value(value)}"
        if default is REQUIRED:
            changed = " (required)"
        else:
            changed = "" if value == default else f" (default {_toml_value(default)})"
        lines.append(f"{left:<{width}}  # {doc}{changed}")
    return "\n".join(lines)


def _markdown_cell(value: Any) -> str:
    shown = _toml_value(value)
    return "see `python -m igcore config`" if len(shown) > 40 else f"`{shown}`"


def config_markdown(config: Config | None = None) -> str:
    """README's tables of keys (generated; ``python -m igcore config --markdown``): the run's keys, then the
    ``world.*`` keys of every registered world."""
    config = config or default_config()
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for key, _value, default, doc in describe_config(config):
        if not key.startswith("world."):
            lines.append(f"| `{key}` | {_markdown_cell(default)} | {doc.replace('|', '&#124;')} |")
    lines += ["", "| world | key | default | meaning |", "|---|---|---|---|"]
    for name, spec in sorted(WORLDS.items(), key=lambda item: item[0] != DEFAULT_WORLD):
        for key, field in spec.params.model_fields.items():
            default = "(required)" if field.is_required() else _markdown_cell(field.get_default(call_default_factory=True))
            lines.append(f"| {name} | `world.{key}` | {default} | {(field.description or '').replace('|', '&#124;')} |")
    return "\n".join(lines)
