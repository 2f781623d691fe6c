"""How text that came from a person (a link, a form) or from a file (a run's metrics) reaches the page.

:func:`code_text` makes a value safe inside a Markdown code span (no backtick, line break or other control
character can end it and start a link); :func:`html_text` and :func:`css_color` are for the few strings
placed in ``unsafe_allow_html`` markup.
"""

from __future__ import annotations

import html
import re
import unicodedata

_HEX_COLOR = re.compile(r"#[0-9A-Fa-f]{6}")


def _visible(ch: str) -> str:
    """``ch``, or an escape such as ``\\n`` / ``\\u202e`` for control, format and line-separator characters."""
    if unicodedata.category(ch)[0] == "C" or unicodedata.category(ch) in ("Zl", "Zp"):
        return ch.encode("unicode_escape").decode("ascii")
    return ch


def code_text(value: object, n: int = 40) -> str:
    """``value`` as a Markdown code span that nothing in it can leave: backticks become ``'``, control
    characters and line breaks are shown escaped (``\\n``), and it is cut to ``n`` characters."""
    text = "".join(_visible(ch) for ch in str(value).replace("`", "'"))
    text = text if len(text) <= n else text[: n - 1] + "…"
    return f"`{text}`" if text.strip() else "` `"


def html_text(value: object) -> str:
    """``value`` escaped for HTML text or a quoted attribute (``& < > " '``)."""
    return html.escape(str(value), quote=True)


def css_color(value: object, fallback: str = "#888888") -> str:
    """``value`` if it is a ``#rrggbb`` colour, else ``fallback`` (a style attribute takes nothing else)."""
    text = str(value)
    return text if _HEX_COLOR.fullmatch(text) else fallback
