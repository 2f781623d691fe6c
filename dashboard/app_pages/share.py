"""Share & export: links that restore a view, a self-contained HTML report, chart PNGs."""

from __future__ import annotations

import io
import zipfile
from urllib.parse import urlencode, urlsplit

import streamlit as st

from dashboard import export, session
from dashboard import state as codec
from dashboard.components import charts, widgets

ctx = session.context()
if ctx.ref is None:
    widgets.no_run(ctx.root)
session.publish(ctx, [])
ref = ctx.ref
metrics = ctx.metrics

widgets.page_header(
    "Share & export",
    "Every view of this dashboard is a link: the page, the run, the selected hypothesis, image, method and filters are all in the address bar. "
    "Copy a link below, or export a report that opens offline.",
)
session.show_notes(ctx.notes)

base = ""
try:
    url = st.context.url or ""
    parts = urlsplit(url)
    if parts.scheme and parts.netloc:
        base = f"{parts.scheme}://{parts.netloc}"
except Exception:  # noqa: BLE001  (older Streamlit or tests: relative links still work)
    base = ""

PAGE_KEYS = {
    "overview": [],
    "hypotheses": ["hyp"],
    "microscope": ["model", "method", "group", "correct", "img"],
    "compare": ["method"],
    "prior": [],
}
st.subheader("Links to the current views")
for page, keys in PAGE_KEYS.items():
    query = urlencode(codec.encode(ctx.view, ["run", *keys]))
    st.markdown(f"**{page.capitalize()}**")
    st.code(f"{base}/{page}?{query}", language=None, wrap_lines=True)
st.caption(f"Links use format version v={codec.CODEC_VERSION}; links from other versions open the default view with a note.")

st.subheader("Report")
st.markdown("One HTML file with the key results, interactive charts (plotly, embedded) and images (inline): it needs no server and no internet.")
link = f"{base}/overview?{urlencode(codec.encode(ctx.view, ['run']))}" if base else None
st.download_button(
    "Download the HTML report",
    data=lambda: export.report_html(ref, link=link, root=ctx.root).encode("utf-8"),
    file_name=f"ig-report-{ref.run_id}.html",
    mime="text/html",
    type="primary",
    icon=":material/description:",
    on_click="ignore",
    key="dl_report",
)

st.subheader("Charts as images")
methods = metrics.get("methods", {})
micro = metrics.get("microscope", {}) or {}
world = metrics.get("world", {})


def chart_zip() -> bytes:
    figs = {}
    if methods:
        figs["accuracy"] = charts.accuracy_bars(methods)
        figs["groups"] = charts.group_heatmap(methods, world.get("groups"))
    if any(m.get("relevance_on_animal") for m in micro.values()):
        figs["relevance"] = charts.relevance_bars(micro)
    if any(m.get("swap_flip_rate") is not None for m in micro.values()):
        figs["swaps"] = charts.swap_bars(micro)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, fig in figs.items():
            z.writestr(f"{name}.png", widgets.figure_png(fig))
    return buf.getvalue()


st.download_button(
    "Download the main charts (PNG, zipped)",
    data=chart_zip,
    file_name=f"ig-charts-{ref.run_id}.zip",
    mime="application/zip",
    icon=":material/image:",
    on_click="ignore",
    key="dl_pngs",
)
st.caption("Every chart in the dashboard also has its own PNG button under it. Images are rendered by kaleido with the local chromium.")
