"""Small Streamlit widgets shared by the pages (charts with a PNG download, key figures, image strips)."""

from __future__ import annotations

import os
import re
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from dashboard import engine
from dashboard.components.figures import KeyFigure
from dashboard.components.images import overlay, png_bytes
from dashboard.run_view import NotComputed, RunView

CHROMIUM = "/usr/bin/chromium"


@st.cache_resource(show_spinner=False)
def _kaleido() -> threading.Lock:
    """Start kaleido's persistent browser once per process (first PNG ~3 s, later ones ~0.2 s)."""
    if Path(CHROMIUM).exists():
        os.environ.setdefault("BROWSER_PATH", CHROMIUM)
    import kaleido

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kaleido.start_sync_server(silence_warnings=True)
    return threading.Lock()


def figure_png(fig: go.Figure, width: int = 1000, height: int | None = None) -> bytes:
    """PNG of a plotly figure through kaleido (which drives Debian chromium when it is installed)."""
    lock = _kaleido()
    h = height or int(fig.layout.height or 450)
    with lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fig.to_image(format="png", width=width, height=h, scale=2)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "chart"


def chart(fig: go.Figure, key: str, caption: str, *, run_id: str = "", **kwargs: object) -> object:
    """A plotly chart, a one-line caption explaining it, and a deferred "PNG" download."""
    event = st.plotly_chart(fig, key=key, config={"displaylogo": False}, **kwargs)
    left, right = st.columns([0.85, 0.15], vertical_alignment="center")
    left.caption(caption)
    right.download_button(
        "PNG",
        data=lambda: figure_png(fig),
        file_name=f"{_slug(key)}{('-' + run_id) if run_id else ''}.png",
        mime="image/png",
        key=f"png_{key}",
        icon=":material/download:",
        type="tertiary",
        on_click="ignore",
        help="Download this chart as a PNG image",
    )
    return event


def key_figure(fig: KeyFigure, page: str, run_id: str) -> None:
    """One of the run's key figures (:mod:`dashboard.components.figures`) with its caption and PNG button;
    raises :class:`NotComputed` with the figure's reason when the run lacks what it shows."""
    if fig.figure is None:
        raise NotComputed(fig.missing)
    chart(fig.figure, f"{page}_{fig.key}", fig.caption, run_id=run_id)


@st.cache_data(show_spinner=False, max_entries=4096)
def test_image_png(run: RunView, index: int, model: str | None = None, method: str | None = None, factor: int = 2) -> bytes:
    """PNG of D′_eval image ``index`` with the object's outline (when the data has masks) and, given a model
    and an attribution method, that model's map over it; encoded once per run and view, shared by reruns
    and sessions."""
    test, masks = run.test_eval(), run.masks()
    attribution = engine.attribution_maps(run, model, method, [index])[0][0] if model and method else None
    return png_bytes(overlay(test["images"][index], attribution, None if masks is None else masks[index], factor=factor))


def image_strip(images: Sequence[np.ndarray | bytes], captions: Sequence[str], *, columns: int = 6, width: int = 150) -> None:
    """A row (or rows) of images (arrays, or PNGs already encoded) with captions, drawn as crisp PNGs."""
    if not len(images):
        return
    cols = st.columns(columns)
    for i, (img, cap) in enumerate(zip(images, captions, strict=False)):
        with cols[i % columns]:
            st.image(img if isinstance(img, bytes) else png_bytes(img), caption=cap, width=width)
