"""How every page opens: the router's context, the run view, the validated view state, title and notes.

A page file is layout only. It starts with one call::

    page = open_page("Title", "Lead paragraph.", keys=["hyp"], choose=pick_hypothesis)

which stops the page politely when there is no usable run or the run has no world, lets ``choose`` turn
the URL's view into one that is valid for this run (adding a note for each value it had to replace),
publishes the page's ``keys`` to the URL, and writes the title, the lead and the notes. The returned
:class:`Page` holds the run view and the view state for the rest of the page.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

import streamlit as st

from dashboard import session, url_state
from dashboard.run_view import RunView

#: Turns the decoded view into one valid for the run, appending a note per replaced value.
Chooser = Callable[[RunView, url_state.ViewState, list[str]], url_state.ViewState]


@dataclass
class Page:
    """What a page renders from: the router's context and the selected run."""

    ctx: session.PageContext
    run: RunView

    @property
    def view(self) -> url_state.ViewState:
        return self.ctx.view

    @property
    def root(self) -> str:
        return self.ctx.root

    def require(self, key: str, what: str) -> None:
        """End the page with a note when ``metrics.json`` key ``key`` is missing (the page shows nothing else)."""
        missing = self.run.missing(key, what)
        if missing:
            st.info(missing, icon="🧩")
            st.stop()


def open_page(title: str, lead: str | Callable[[RunView], str], keys: Sequence[str] = (), choose: Chooser | None = None) -> Page:
    """Open a page: context, run view, view state (``choose``), URL (``keys``), title, lead and notes.

    Stops the script run (``st.stop``) with a note when the runs folder has no usable run, or when the
    selected run has no world section (every page reads the world's classes and groups).
    """
    ctx = session.context()
    run = ctx.run
    if run is None:
        _stop(ctx, title, f"No usable run in `{ctx.root}`. Compute one with `python -m igcore run --out runs`, or remove broken run folders.", "📭")
    missing_world = run.missing("world", "world description")
    if missing_world:
        _stop(ctx, title, missing_world, "🧩")
    if choose is not None:
        ctx.view = choose(run, ctx.view, ctx.notes)
    session.publish(ctx, keys)
    st.title(title)
    st.markdown(lead(run) if callable(lead) else lead)
    session.show_notes(ctx.notes)
    return Page(ctx, run)


def _stop(ctx: session.PageContext, title: str, message: str, icon: str) -> NoReturn:
    """The page's title, the link notes and why there is nothing to show; ends the script run."""
    session.publish(ctx, [])
    st.title(title)
    session.show_notes(ctx.notes)
    st.info(message, icon=icon)
    st.stop()
