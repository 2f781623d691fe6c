"""Streamlit side of the view state: the URL is the source of truth, mirrored in the session.

- At the start of each script run the router (``app.py``) decodes :func:`read_params`: the URL's view
  keys over the session's mirror of the last view (Streamlit clears query parameters when the user
  switches pages in the sidebar), so the run and the other selections survive page switches.
- Widgets call :func:`set_view` from their ``on_change`` callbacks: it updates the URL and the mirror.
- Each page publishes the keys it uses (:func:`dashboard.page.open_page` calls :func:`publish`), which
  writes the validated state back into the URL (so malformed values disappear from the address bar and
  the link is always complete).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import streamlit as st

from dashboard import url_state
from dashboard.run_view import NotComputed, RunView
from dashboard.runs import RunInfo
from igcore.errors import InputError

LOG = logging.getLogger("dashboard")
_MIRROR = "_ig_view"
_CTX = "_ig_ctx"


@dataclass
class PageContext:
    """What every page needs: the selected run, the decoded view state, and notes to show."""

    root: str
    runs: list[RunInfo]
    run: RunView | None
    view: url_state.ViewState
    notes: list[str] = field(default_factory=list)


def read_params() -> dict[str, str]:
    """The URL's view keys over the session's mirror of the last view.

    Pages only publish their own keys (and Streamlit clears the query string on page switches), so the
    mirror supplies the rest (e.g. the selected hypothesis while on the Share page). A link from another
    codec version is read on its own.
    """
    params = {k: st.query_params.get(k, "") for k in st.query_params.keys()}
    mirror = st.session_state.get(_MIRROR) or {}
    known = any(k in url_state.KEYS or k == url_state.VERSION_KEY for k in params)
    if not known or params.get(url_state.VERSION_KEY) == mirror.get(url_state.VERSION_KEY):
        return {**mirror, **params}
    return params


def store_context(ctx: PageContext) -> None:
    st.session_state[_CTX] = ctx
    st.session_state[_MIRROR] = url_state.encode(ctx.view)


def context() -> PageContext:
    """The context the router prepared for this script run (pages call this first)."""
    ctx = st.session_state.get(_CTX)
    if ctx is None:  # a page executed outside the router (should not happen): stop politely
        st.info("Open the dashboard through `streamlit run dashboard/app.py`.")
        st.stop()
    return ctx


def set_view(**changes: Any) -> None:
    """Change part of the view (widget callbacks): updates the mirror and the URL."""
    ctx: PageContext | None = st.session_state.get(_CTX)
    view = replace(ctx.view if ctx else url_state.ViewState(), **changes)
    if ctx is not None:
        ctx.view = view
    st.session_state[_MIRROR] = url_state.encode(view)
    for key, value in changes.items():
        if value is None:
            if key in st.query_params:
                del st.query_params[key]
        else:
            st.query_params[key] = str(value)
    st.query_params[url_state.VERSION_KEY] = str(url_state.CODEC_VERSION)


def publish(ctx: PageContext, keys: Sequence[str]) -> None:
    """Write the (validated) view into the URL: ``v``, ``run`` and this page's ``keys``."""
    st.session_state[_MIRROR] = url_state.encode(ctx.view)
    wanted = url_state.encode(ctx.view, ["run", *keys])
    current = {k: st.query_params.get(k) for k in st.query_params.keys()}
    if current != wanted:
        st.query_params.from_dict(wanted)


def bind(key: str, value: Any) -> None:
    """Make widget ``key`` show ``value`` (set before the widget is created; no default passed)."""
    if st.session_state.get(key, object()) != value:
        st.session_state[key] = value


def show_notes(notes: Sequence[str]) -> None:
    for note in dict.fromkeys(notes):
        st.info(note, icon="🔗")


@contextmanager
def guard(what: str) -> Iterator[None]:
    """Render a section; if the run lacks its inputs say which stage would have produced them, if it
    fails show a short error. One missing or broken part never takes the whole page down.

    The visitor reads the engine's one-line message for bad input (:class:`InputError`, written for
    people) and only the exception's type for anything else: its message can hold file paths and data.
    The terminal running the server gets the traceback.
    """
    try:
        yield
    except NotComputed as e:
        st.info(f"**{what}.** {e}", icon="🧩")
    except InputError as e:
        LOG.warning("section %r: %s", what, e)
        st.warning(f"**{what} could not be drawn**: {' '.join(str(e).splitlines())}", icon="⚠️")
    except Exception as e:  # noqa: BLE001  (Streamlit's own control flow uses BaseException)
        LOG.exception("section %r failed", what)
        st.warning(f"**{what} could not be drawn** (an internal error, {type(e).__name__}; the terminal running the dashboard has the details).", icon="⚠️")
