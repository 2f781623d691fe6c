"""View state <-> URL query parameters, with a versioned codec.

Every view of the dashboard is described by a :class:`ViewState` (run, selected hypothesis, image,
attribution method, gallery filters). The page itself is the URL *path* (``/hypotheses``); the rest
lives in the query string, e.g. ``/hypotheses?v=1&run=2026...&hyp=2``, so opening a link restores the
view. The codec is pure (no Streamlit) and never raises: anything it cannot use becomes the default,
with a friendly note explaining what was ignored.

Version history:
    v=1  run, hyp, img, model, method, group, correct
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

CODEC_VERSION = 1
VERSION_KEY = "v"
CORRECTNESS = ("all", "correct", "wrong")

TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/ -]{0,127}")


@dataclass(frozen=True)
class ViewState:
    """Everything a shared link restores (besides the page, which is the URL path)."""

    run: str | None = None  # run id; validated against the run store by the app
    hyp: int = 0  # index into hypotheses.ranked (0 = the MAP hypothesis z*)
    img: int | None = None  # index into D'_eval (test_eval)
    model: str = "erm"  # model under the microscope
    method: str | None = None  # attribution method (None = first available)
    group: str = "all"  # gallery filter: a group name such as "wolf/grass", or "all"
    correct: str = "all"  # gallery filter: all | correct | wrong

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Decoded:
    state: ViewState
    notes: list[str] = field(default_factory=list)


def _first(value: str | Sequence[str]) -> str:
    if isinstance(value, str):
        return value
    return str(value[-1]) if len(value) else ""


def _parse_run(text: str) -> str:
    # The run store does the authoritative check (check_run_id); here only a cheap shape test so the
    # note can say "malformed" early. Ids with path separators or '..' are rejected by the store.
    if not text or len(text) > 128:
        raise ValueError
    return text


def _parse_index(text: str) -> int:
    if not re.fullmatch(r"\d{1,7}", text):
        raise ValueError
    return int(text)


def _parse_token(text: str) -> str:
    if not TOKEN.fullmatch(text):
        raise ValueError
    return text


def _parse_correct(text: str) -> str:
    if text not in CORRECTNESS:
        raise ValueError
    return text


_PARSERS: dict[str, tuple[Callable[[str], Any], str]] = {
    "run": (_parse_run, "run id"),
    "hyp": (_parse_index, "hypothesis number"),
    "img": (_parse_index, "image number"),
    "model": (_parse_token, "model name"),
    "method": (_parse_token, "attribution method"),
    "group": (_parse_token, "group filter"),
    "correct": (_parse_correct, "correctness filter"),
}
KEYS = tuple(_PARSERS)


def decode(params: Mapping[str, str | Sequence[str]]) -> Decoded:
    """Read query parameters into a :class:`ViewState`; never raises.

    - no parameters at all: the default view, silently;
    - a missing, older, newer or malformed ``v``: the whole link is ignored (default view) with a note;
    - a malformed single value: that value falls back to its default, with a note;
    - unknown keys are ignored silently (other tools add their own, e.g. ``embed``).
    """
    params = {str(k): _first(v) for k, v in params.items()}
    known = {k: v for k, v in params.items() if k in _PARSERS or k == VERSION_KEY}
    if not known:
        return Decoded(ViewState())
    version = known.get(VERSION_KEY)
    if version is None:
        return Decoded(ViewState(), ["This link has no format version (`v=`), so it was made by an older dashboard; showing the default view instead."])
    if not re.fullmatch(r"\d{1,4}", version):
        return Decoded(ViewState(), [f"This link's format version `v={shorten(version)}` is not valid; showing the default view instead."])
    if int(version) != CODEC_VERSION:
        age = "an older" if int(version) < CODEC_VERSION else "a newer"
        return Decoded(
            ViewState(),
            [f"This link was made by {age} version of the dashboard (`v={version}`, this one reads `v={CODEC_VERSION}`); showing the default view instead."],
        )
    values: dict[str, Any] = {}
    notes: list[str] = []
    for key, (parse, label) in _PARSERS.items():
        if key not in known:
            continue
        try:
            values[key] = parse(known[key])
        except ValueError:
            notes.append(f"The {label} `{shorten(known[key])}` in this link could not be read; using the default instead.")
    return Decoded(replace(ViewState(), **values), notes)


def encode(state: ViewState, keys: Sequence[str] = KEYS) -> dict[str, str]:
    """Query parameters for ``state`` (only ``keys``, and only values that are set), with the version."""
    out = {VERSION_KEY: str(CODEC_VERSION)}
    for key in keys:
        value = getattr(state, key)
        if value is not None:
            out[key] = str(value)
    return out


def choose(value: Any, options: Sequence[Any], default: Any, label: str, notes: list[str]) -> Any:
    """``value`` if it is one of ``options``, else ``default`` (with a note when a value was given)."""
    if value in options:
        return value
    if value is not None and value != default:
        notes.append(f"The {label} `{shorten(str(value))}` does not exist in this run; showing `{default}` instead.")
    return default


def choose_index(value: int | None, size: int, default: int | None, label: str, notes: list[str]) -> int | None:
    """``value`` if it indexes a sequence of ``size`` items, else ``default`` (with a note)."""
    if value is None:
        return default
    if 0 <= value < size:
        return value
    notes.append(f"The {label} `{value}` is out of range for this run (it has {size}); showing `{default}` instead.")
    return default


def shorten(text: str, n: int = 40) -> str:
    text = text.replace("`", "'")
    return text if len(text) <= n else text[: n - 1] + "…"
