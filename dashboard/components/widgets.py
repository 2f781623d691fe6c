"""Small Streamlit widgets shared by the pages (charts with a PNG download, key figures, image strips, the
name of the person who writes)."""

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
from dashboard.components.images import data_uri, overlay, png_bytes, upscale
from dashboard.run_view import NotComputed, RunView
from igcore.errors import InputError
from igcore.prior.store import MAX_RATER_LENGTH, check_rater_name

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


def show_png(png: bytes, *, where: object = st, **kwargs: object) -> None:
    """Draw PNG bytes as they are, in ``where`` (a column, the sidebar; default the page), inlined in the element as a
    data URI, so the image lives as long as the page shows it. ``st.image`` on bytes keeps them in Streamlit's media
    store only until the session's next script run ends, and a browser still loading a page's last images when the
    next page's run ends gets 404 (bench_load, ten sessions); it also decodes every image on every rerun."""
    where.image(data_uri(png), **kwargs)  # type: ignore[attr-defined]


@st.cache_data(show_spinner=False, max_entries=4096)
def test_image_png(run: RunView, index: int, model: str | None = None, method: str | None = None, factor: int = 2) -> bytes:
    """PNG of D′_eval image ``index`` with the object's outline (when the data has masks) and, given a model
    and an attribution method, that model's map over it; encoded once per run and view, shared by reruns
    and sessions."""
    test, masks = run.test_eval(), run.masks()
    attribution = engine.attribution_maps(run, model, method, [index])[0][0] if model and method else None
    return png_bytes(overlay(test["images"][index], attribution, None if masks is None else masks[index], factor=factor))


#: Exemplars shown per discovered concept (the run's discover.exemplars caps it).
EXEMPLARS = 8


@st.cache_data(show_spinner=False, max_entries=64)
def exemplar_pngs(run: RunView, component: str) -> list[tuple[int, bytes, bytes]]:
    """A discovered concept's exemplars (the D′ images where it is most present) as (image number, its map overlaid,
    the crop around its strongest place) PNGs, encoded once per run and component and shared by every rerun and session
    (``st.image`` on arrays would re-encode them as JPEG on every rerun). The Discover page shows them, and a field
    guide shows them for a discovered concept, which the concept bank has no images of."""
    view = engine.discovery_view(run)
    chosen = view.exemplars(component, min(EXEMPLARS, int(run.run.config_model().discover.exemplars)))
    pictures, maps, crops = view.images(chosen), view.maps(component, chosen), view.crops(component, chosen)
    factor = max(1, 128 // pictures.shape[1])
    return [(int(i), png_bytes(overlay(picture, heat, factor=factor)), png_bytes(upscale(crop, max(1, 64 // crop.shape[0]))))
            for i, picture, heat, crop in zip(chosen, pictures, maps, crops, strict=True)]


def image_strip(images: Sequence[np.ndarray | bytes], captions: Sequence[str], *, columns: int = 6, width: int = 150) -> None:
    """A row (or rows) of images (arrays, or PNGs already encoded) with captions, drawn as crisp PNGs."""
    if not len(images):
        return
    cols = st.columns(columns)
    for i, (img, cap) in enumerate(zip(images, captions, strict=False)):
        with cols[i % columns]:
            show_png(img if isinstance(img, bytes) else png_bytes(img), caption=cap, width=width)


#: The URL key that carries the name of the person who writes (so a reload keeps it).
RATER_PARAM = "rater"


def wanted_rater() -> str | None:
    """The name in the URL; read it before :func:`dashboard.page.open_page`, which writes the view's keys into the URL."""
    return st.query_params.get(RATER_PARAM)


def rater_name(key: str, wanted: str | None, help: str, *, where: object = st, url: bool = True) -> str | None:
    """"Your name", the field of every page where people write (names, labels, ratings): the URL's name
    (``wanted``, :func:`wanted_rater`) fills it the first time; a valid name goes into the URL (``url``: the one
    field of a page that keeps it there) and an invalid one gets the store's one-line reason
    (:func:`igcore.prior.store.check_rater_name`). Returns the checked name, or None while there is none."""
    if key not in st.session_state and wanted:
        st.session_state[key] = wanted
    text = where.text_input("Your name", key=key, max_chars=MAX_RATER_LENGTH, placeholder="e.g. ana", help=help)  # type: ignore[attr-defined]
    rater = None
    if str(text).strip():
        try:
            rater = check_rater_name(text, "name")
        except InputError as e:
            where.error(f"{e}.")  # type: ignore[attr-defined]
    if url and rater:
        st.query_params[RATER_PARAM] = rater
    elif url and RATER_PARAM in st.query_params:
        del st.query_params[RATER_PARAM]
    return rater
