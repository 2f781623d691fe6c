"""What the AppTest tests of the dashboard read from a script run: its text, and whether it ran cleanly."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def all_text(at: AppTest) -> str:
    """Every title, header, markdown, caption and alert of the page, one element per line."""
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def assert_clean(at: AppTest) -> None:
    """No exception and no error box (a 'could not be drawn' warning also counts as a failure)."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    drawn = [w.value for w in at.warning if "could not be drawn" in str(w.value)]
    assert not drawn, drawn
