"""The base of every declarative settings schema (run config sections, world parameters).

Settings are pydantic models: each key has a type, a default, bounds and one line of documentation
(``Field(description=...)``), unknown keys are refused, values are not coerced (``"3"`` is not 3,
``true`` is not 1) and NaN/±inf are refused wherever a number is expected. :func:`validated` turns a
pydantic error into the one line the CLI prints (exit 2) and the dashboard shows.

Components that take parameters (worlds, the prior, the search) validate them with the same models,
so a bound is written once and the config, the estimators and the docs cannot disagree.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, ValidationInfo

from igcore.errors import InputError

S = TypeVar("S", bound=BaseModel)


def _fspath(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


#: A file or folder path: text in a config file, a ``pathlib.Path`` from Python code.
PathText = Annotated[str, BeforeValidator(_fspath)]


class Settings(BaseModel):
    """Strict, closed settings: no coercion, no unknown keys, no NaN/inf."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, validate_assignment=True)


def unknown(kind: str, names: Sequence[str], valid: Sequence[str]) -> str | None:
    """The problem with ``names`` that are not in ``valid`` (a registry's names), or None: what validators raise."""
    bad = [n for n in names if n not in valid]
    return f"unknown {kind} {', '.join(map(repr, bad))}; valid: {', '.join(valid)}" if bad else None


def unique(names: list[str]) -> list[str]:
    """``names`` if none repeats (a validator of lists of names), else ValueError."""
    if len(set(names)) != len(names):
        raise ValueError(f"names must not repeat, got {names!r}")
    return names


def stored(info: ValidationInfo) -> bool:
    """Validating a stored run's config: files it named may be gone since, and that is not an error."""
    return bool(info.context and info.context.get("stored"))


def _phrase(message: str) -> str:
    """pydantic's "Input should be ..." / "Value error, ..." as a short clause."""
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    if message.startswith("Input should be "):
        return "must be " + message[len("Input should be ") :]
    return message[:1].lower() + message[1:]


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def one_line(error: ValidationError, prefix: str = "", model: type[BaseModel] | None = None) -> str:
    """The first problem of a validation error as one line naming the key (``world.rho: must be ...``)."""
    problems = error.errors()
    first = problems[0]
    loc = ".".join(str(p) for p in (prefix, *first["loc"]) if str(p))
    kind = first["type"]
    if kind == "extra_forbidden":
        line = f"unknown config key {loc!r}; `python -m igcore config` lists every key with its meaning"
        if model is not None and len(first["loc"]) == 1:
            line = f"unknown config key {loc!r}; valid keys here: {', '.join(model.model_fields)}"
    elif kind == "model_type" or (kind == "dict_type" and isinstance(first.get("input"), (str, int, float, bool))):
        line = f"config key {loc!r} is a section; set one of its keys, e.g. {loc}.<key>=..."
    elif kind == "missing":  # what to give, in the key's own description (world.manifest: "the CSV manifest; ...")
        field = model.model_fields.get(str(first["loc"][0])) if model is not None and len(first["loc"]) == 1 else None
        line = f"{loc} is required: set it" + (f" to {field.description}" if field is not None and field.description else "")
    elif kind.startswith("value_error") or kind == "assertion_error":
        text = _phrase(first["msg"])
        line = text if not loc or loc in text else f"{loc}: {text}"
    else:
        line = f"{loc} {_phrase(first['msg'])}, got {_shown(first.get('input'))}"
    more = len(problems) - 1
    return line + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")


def validated(model: type[S], data: Mapping[str, Any] | S, prefix: str = "", stored: bool = False) -> S:
    """``model`` validated from ``data``; a problem raises :class:`InputError` with one line.

    ``stored=True`` tells validators the data is a finished run's record (``info.context["stored"]``).
    """
    if isinstance(data, model):
        return data
    if not isinstance(data, Mapping):
        raise InputError(f"config key {prefix!r} is a section; set one of its keys, e.g. {prefix}.<key>=...")
    try:
        return model.model_validate(dict(data), context={"stored": stored})
    except ValidationError as e:
        raise InputError(one_line(e, prefix, model)) from None


class _Required:
    """The default of a key that has none: the person must give it (shown as ``(required)``)."""

    def __repr__(self) -> str:
        return "(required)"


REQUIRED = _Required()


def describe(settings: BaseModel, prefix: str = "") -> list[tuple[str, Any, Any, str]]:
    """``(dotted key, value, default, description)`` for every leaf key of ``settings``; a key without a
    default has :data:`REQUIRED` as its default.

    Nested settings are recursed by their actual class, so a section typed by a base class (the world's
    parameters) lists the keys of the class in use.
    """
    rows: list[tuple[str, Any, Any, str]] = []
    for name, field in type(settings).model_fields.items():
        key = f"{prefix}{name}"
        value = getattr(settings, name)
        if isinstance(value, BaseModel):
            rows += describe(value, key + ".")
        else:
            default = REQUIRED if field.is_required() else field.get_default(call_default_factory=True)
            rows.append((key, value, default, field.description or ""))
    return rows
