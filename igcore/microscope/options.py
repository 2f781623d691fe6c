"""Validation of the ``microscope`` config section (defaults live in :data:`igcore.config.DEFAULTS`).

Every check raises :class:`~igcore.errors.InputError` with one line that names the key and, for
names, the valid choices (the registered attribution methods, the TCAV corrections).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from igcore.errors import InputError
from igcore.microscope.registry import ATTRIBUTIONS
from igcore.microscope.tcav import CORRECTIONS


def _int(section: Mapping[str, Any], key: str, low: int, prefix: str, allow_none: bool = False) -> None:
    v = section[key]
    if allow_none and v is None:
        return
    if not isinstance(v, int) or isinstance(v, bool) or v < low:
        raise InputError(f"{prefix}{key} must be an integer >= {low}{' or null' if allow_none else ''}, got {v!r}")


def _number(section: Mapping[str, Any], key: str, low: float, high: float, prefix: str) -> None:
    v = section[key]
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not low <= v <= high:
        raise InputError(f"{prefix}{key} must be a number in [{low}, {high}], got {v!r}")


def _names(section: Mapping[str, Any], key: str, prefix: str) -> list[str]:
    v = section[key]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise InputError(f"{prefix}{key} must be a list of names, got {v!r}")
    return v


def validate_microscope(section: Mapping[str, Any]) -> None:
    """Check the ``microscope`` section; unknown method names list the registered ones."""
    p = "microscope."
    methods = _names(section, "methods", p)
    unknown = [m for m in methods if m not in ATTRIBUTIONS]
    if unknown:
        raise InputError(
            f"unknown attribution method(s) {', '.join(map(repr, unknown))} in microscope.methods; "
            f"valid methods: {', '.join(ATTRIBUTIONS)}"
        )
    _names(section, "models", p)
    _int(section, "per_group", 1, p)
    _int(section, "batch_size", 1, p)
    params = section["params"]
    if not isinstance(params, Mapping):
        raise InputError("microscope.params must be a section {method: {parameter: value}}")
    for method, values in params.items():
        if method not in ATTRIBUTIONS:
            raise InputError(f"unknown attribution method {method!r} in microscope.params; valid methods: {', '.join(ATTRIBUTIONS)}")
        ATTRIBUTIONS[method].resolve(values)  # unknown parameter names → InputError
        for key, value in values.items():
            if key in ("n_steps", "n_samples", "window", "stride", "internal_batch_size", "forward_batch") and (
                not isinstance(value, int) or isinstance(value, bool) or value < 1
            ):
                raise InputError(f"microscope.params.{method}.{key} must be a positive integer, got {value!r}")
    t = section["tcav"]
    tp = p + "tcav."
    _names(t, "models", tp)
    layers = _names(t, "layers", tp)
    if not layers:
        raise InputError("microscope.tcav.layers must name at least one layer (e.g. penultimate, middle)")
    _int(t, "n_random", 2, tp)
    _int(t, "n_concept_images", 4, tp)
    _int(t, "n_inputs", 1, tp)
    _number(t, "alpha", 0.0, 1.0, tp)
    if t["correction"] not in CORRECTIONS:
        raise InputError(f"microscope.tcav.correction must be one of {', '.join(CORRECTIONS)}, got {t['correction']!r}")
    s = section["swaps"]
    _int(s, "max_images", 1, p + "swaps.", allow_none=True)
    _int(s, "keep_per_group", 0, p + "swaps.")
    sc = section["sanity"]
    _names(sc, "models", p + "sanity.")
    _int(sc, "n_images", 1, p + "sanity.")
    _number(sc, "threshold", -1.0, 1.0, p + "sanity.")
    if not isinstance(section["surrogates"], bool):
        raise InputError(f"microscope.surrogates must be true or false, got {section['surrogates']!r}")
    _number(section, "surrogate_l1", 0.0, 1e6, p)
