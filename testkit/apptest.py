"""What the AppTest tests of the dashboard read from a script run: its text, and whether it ran cleanly."""

from __future__ import annotations

import os
from pathlib import Path

from streamlit.testing.v1 import AppTest


def all_text(at: AppTest) -> str:
    """Every title, header, markdown, caption and alert of the page, one element per line."""
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def assert_clean(at: AppTest) -> None:
    """No exception and no error box (a 'could not be drawn' warning also counts as a failure)."""
    assert not problems(at), problems(at)


#: The headings of the Discover page's sections (dashboard/app_pages/discover.py), each drawn in its own guard.
DISCOVER_SECTIONS = ("Every discovered concept", "What it resembles", "Its causal effect", "Name it", "z* in the named words")


def problems(at: AppTest) -> list[str]:
    """What went wrong in a script run: exceptions, error boxes and 'could not be drawn' warnings (empty: it ran cleanly)."""
    return ([str(e.value) for e in at.exception] + [str(e.value) for e in at.error]
            + [str(w.value) for w in at.warning if "could not be drawn" in str(w.value)])


def open_run_page(run_id: str, page: str, timeout: float = 120) -> AppTest:
    """A new session of the dashboard (RUNS_DIR from the environment) on ``dashboard/app_pages/<page>.py`` of run
    ``run_id``, run once."""
    from dashboard import url_state

    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py"), default_timeout=timeout)
    at.query_params.update({"v": str(url_state.CODEC_VERSION), "run": run_id})
    at.switch_page(f"app_pages/{page}.py")
    return at.run()


def discover_page(runs_dir: Path, run_id: str, timeout: float = 120) -> tuple[dict[str, bool], list[str]]:
    """Open the Discover page of run ``run_id`` in RUNS_DIR ``runs_dir`` as a new session would: which of
    :data:`DISCOVER_SECTIONS` it drew, and its :func:`problems`."""
    from dashboard.runs import RUNS_ENV

    before = os.environ.get(RUNS_ENV)
    os.environ[RUNS_ENV] = str(runs_dir)
    try:
        at = open_run_page(run_id, "discover", timeout)
    finally:
        if before is None:
            os.environ.pop(RUNS_ENV, None)
        else:
            os.environ[RUNS_ENV] = before
    text = all_text(at)
    return {heading: heading in text for heading in DISCOVER_SECTIONS}, problems(at)
