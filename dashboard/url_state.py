"""View state <-> URL query parameters, with a versioned codec.

Every view of the dashboard is described by a :class:`ViewState` (run, selected hypothesis, image,
attribution method, gallery filters). The page itself is the URL *path* (``/hypotheses``); the rest
lives in the query string, e.g. ``/hypotheses?v=2&run=2026...&hyp=2``, so opening a link restores the
view. The codec is pure (no Streamlit) and never raises: anything it cannot use becomes the default,
with a friendly note explaining what was ignored.

A link comes from anyone, so every value is checked before it is used: at most :data:`MAX_VALUE`
characters, no control characters, ASCII digits only for numbers (``int("１２")`` would be 12), plain
names for models and methods (no path separators, no ``..``), ``class/background`` for groups, the run
store's own rule for run ids. Notes quote a refused value only through :func:`shorten`, inside a code
span it cannot leave, so a link can never put Markdown (a link, an image) into the page.

Version history:
    v=1  run, hyp, img, model, method, group, correct (``hyp`` counted the ranked hypotheses from 0)
    v=2  the same keys; ``hyp`` counts from 1, as the pages do ("Hypothesis #1"). A v=1 link is read with
         its ``hyp`` moved up by one, so old links keep showing what they showed. Later, ``comp`` (the
         Discover page's component), optional, so every earlier v=2 link reads as before; later still, ``tcav``
         and ``layer`` (the microscope's TCAV model and layer) and ``cls`` (the Compare page's class), optional
         in the same way.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from dashboard.escape import code_text
from igcore.config import RUN_ID_PATTERN
from igcore.discover.names import parse_id

CODEC_VERSION = 2
#: Older versions this codec still reads, each with how its values become this version's.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    1: lambda values: {**values, "hyp": values["hyp"] + 1} if values.get("hyp") is not None else values,
}
VERSION_KEY = "v"
CORRECTNESS = ("all", "correct", "wrong")
MAX_VALUE = 200  # characters; no view value comes near it (run ids stop at 128)

#: A model, method, class or background name: ASCII letters and digits, then also '.', '_', '-' and spaces.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]{0,63}")
#: A gallery group: ``class/background``.
GROUP = re.compile(rf"{NAME.pattern}/{NAME.pattern}")
#: A TCAV layer: an alias (``penultimate``) or a dotted module path (``backbone.layer4.1``), as long as any value.
LAYER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.]*")
RUN_ID = re.compile(RUN_ID_PATTERN)


@dataclass(frozen=True)
class ViewState:
    """Everything a shared link restores (besides the page, which is the URL path)."""

    run: str | None = None  # run id; validated against the run store by the app
    hyp: int | None = None  # number of the selected hypothesis in hypotheses.ranked, from 1 (None = z*)
    img: int | None = None  # index into D'_eval (test_eval)
    model: str = "erm"  # model under the microscope
    method: str | None = None  # attribution method (None = first available)
    group: str = "all"  # gallery filter: a group name ("class/background"), or "all"
    correct: str = "all"  # gallery filter: all | correct | wrong
    comp: str | None = None  # discovered concept shown on the Discover page (``discovered::<model>/<k>``; None = the first)
    tcav: str | None = None  # model of the microscope's TCAV section (None = the model under the microscope)
    layer: str | None = None  # layer of the microscope's TCAV section (None = the first, the penultimate layer)
    cls: str | None = None  # class of the Compare page's weights against TCAV (None = the last class)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Decoded:
    """A decoded link: the view, notes on what was ignored, and why its run id was refused (the router
    says which run it shows instead)."""

    state: ViewState
    notes: list[str] = field(default_factory=list)
    run_problem: str | None = None


def _first(value: str | Sequence[str]) -> str:
    if isinstance(value, str):
        return value
    return str(value[-1]) if len(value) else ""


def check_text(text: str) -> str:
    """``text`` if it is short and has no control characters, else ValueError saying which it is."""
    if len(text) > MAX_VALUE:
        raise ValueError(f"it is {len(text)} characters long; at most {MAX_VALUE}")
    if any(unicodedata.category(ch)[0] == "C" or unicodedata.category(ch) in ("Zl", "Zp") for ch in text):
        raise ValueError("it contains a control character or line break")
    return text


def valid_run_id(text: str) -> bool:
    """The run store's rule (:func:`igcore.config.check_run_id`): one path component of safe characters."""
    return bool(RUN_ID.fullmatch(text)) and ".." not in text


def _parse_run(text: str) -> str:
    if not valid_run_id(check_text(text)):
        raise ValueError("run ids are plain names of letters, digits, '.', '_' and '-', without '/' or '..'")
    return text


def _parse_number(text: str) -> int:
    if _parse_index(text) < 1:
        raise ValueError("hypotheses are numbered from 1")
    return int(text)


def _parse_index(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,7}", check_text(text)):  # not \d: it matches every script's digits
        raise ValueError("it is not a whole number written with the digits 0-9")
    return int(text)


def _parse_name(text: str) -> str:
    if not NAME.fullmatch(check_text(text)) or ".." in text:
        raise ValueError("names are letters, digits, '.', '_', '-' and spaces, without '/' or '..'")
    return text


def _parse_layer(text: str) -> str:
    if not LAYER.fullmatch(check_text(text)) or ".." in text:
        raise ValueError("a layer is a name or a dotted module path of letters, digits and '_' (e.g. layer4.1)")
    return text


def _parse_group(text: str) -> str:
    if text != "all" and (not GROUP.fullmatch(check_text(text)) or ".." in text):
        raise ValueError("a group is 'all' or class/background")
    return text


def _parse_correct(text: str) -> str:
    if text not in CORRECTNESS:
        raise ValueError(f"it must be one of {', '.join(CORRECTNESS)}")
    return text


def _parse_class(text: str) -> str:
    # A class is a folder's name, so it may hold any printable character; the page uses it only when the run has it.
    if not check_text(text).strip():
        raise ValueError("it is empty")
    return text


def _parse_component(text: str) -> str:
    if parse_id(check_text(text)) is None:
        raise ValueError("a discovered concept is written discovered::<model>/<k>, e.g. discovered::erm/3")
    return text


_PARSERS: dict[str, tuple[Callable[[str], Any], str]] = {
    "run": (_parse_run, "run id"),
    "hyp": (_parse_number, "hypothesis number"),
    "img": (_parse_index, "image number"),
    "model": (_parse_name, "model name"),
    "method": (_parse_name, "attribution method"),
    "group": (_parse_group, "group filter"),
    "correct": (_parse_correct, "correctness filter"),
    "comp": (_parse_component, "discovered concept"),
    "tcav": (_parse_name, "TCAV model"),
    "layer": (_parse_layer, "TCAV layer"),
    "cls": (_parse_class, "class"),
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
    if not re.fullmatch(r"[0-9]{1,4}", version):
        return Decoded(ViewState(), [f"This link's format version `v={shorten(version)}` is not valid; showing the default view instead."])
    if int(version) != CODEC_VERSION and int(version) not in MIGRATIONS:
        age = "an older" if int(version) < CODEC_VERSION else "a newer"
        return Decoded(
            ViewState(),
            [f"This link was made by {age} version of the dashboard (`v={version}`, this one reads `v={CODEC_VERSION}`); showing the default view instead."],
        )
    values: dict[str, Any] = {}
    notes: list[str] = []
    run_problem = None
    for key, (parse, label) in _PARSERS.items():
        if key not in known:
            continue
        try:
            values[key] = (_parse_index if key == "hyp" and int(version) == 1 else parse)(known[key])
        except ValueError as e:
            if key == "run":
                run_problem = f"{shorten_code(known[key])} is not a valid run id ({e})"
            else:
                notes.append(f"The {label} {shorten_code(known[key])} in this link could not be read ({e}); using the default instead.")
    if int(version) != CODEC_VERSION:
        values = MIGRATIONS[int(version)](values)
    return Decoded(replace(ViewState(), **values), notes, run_problem)


def encode(state: ViewState, keys: Sequence[str] = KEYS) -> dict[str, str]:
    """Query parameters for ``state`` (only ``keys``, and only values that are set), with the version."""
    out = {VERSION_KEY: str(CODEC_VERSION)}
    for key in keys:
        value = getattr(state, key)
        if value is not None:
            out[key] = str(value)
    return out


def choose(value: Any, options: Sequence[Any], default: Any, label: str, notes: list[str], *, shown: str | None = None,
           why: str = "does not exist in this run") -> Any:
    """``value`` if it is one of ``options``, else ``default`` (with a note when a value was given, saying ``why`` it
    was not used and what is shown instead: ``shown``, or ``default`` itself)."""
    if value in options:
        return value
    if value is not None and value != default:
        notes.append(f"The {label} {shorten_code(value)} {why}; showing {shown or shorten_code(default)} instead.")
    return default


def choose_index(value: int | None, size: int, default: int | None, label: str, notes: list[str], *, first: int = 0,
                 shown: str | None = None) -> int | None:
    """``value`` if it numbers one of ``size`` items counted from ``first``, else ``default`` (with a note
    that says what is shown instead: ``shown``, or ``default`` itself)."""
    if value is None:
        return default
    if first <= value < first + size:
        return value
    instead = shown or ("none" if default is None else f"`{default}`")
    notes.append(f"The {label} `{value}` is out of range for this run (it has {size}, numbered {first} to {first + size - 1}); "
                 f"showing {instead} instead.")
    return default


def shorten_code(text: object, n: int = 40) -> str:
    """``text`` as a Markdown code span that it cannot leave (see :func:`dashboard.safe.code_text`)."""
    return code_text(text, n)


def shorten(text: object, n: int = 40) -> str:
    """The inside of :func:`shorten_code`: for notes that write the backticks themselves (`` `{shorten(x)}` ``)."""
    return shorten_code(text, n)[1:-1]
