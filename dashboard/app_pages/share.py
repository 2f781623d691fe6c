"""Share & export: links that restore a view, a self-contained HTML report, the key figures as PNGs."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

import streamlit as st

from dashboard import export, url_state
from dashboard.page import open_page
from dashboard.pages import PAGES, PageSpec, page_named


def link(base: str, page: PageSpec) -> str:
    """The link to ``page`` showing the current view (the run and the keys the page reads)."""
    return f"{base}/{page.path}?{urlencode(url_state.encode(view, ['run', *page.keys]))}"


page = open_page(
    "Share & export",
    "Every view of this dashboard is a link: the page, the run, the selected hypothesis, image, attribution method, filters, TCAV model "
    "and layer, class and discovered concept are all in the links below, and each page's address bar carries what that page shows. "
    "Copy a link below, or export a report that opens offline.",
)
run, view = page.run, page.view
parts = urlsplit(st.context.url or "")
base = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""

st.subheader("Links to the current views")
for spec in PAGES:
    if spec.name == "share":
        continue
    st.markdown(f"**{spec.title}** · {spec.share}")
    st.code(link(base, spec), language=None, wrap_lines=True)
st.caption(f"Links use format version v={url_state.CODEC_VERSION}; links from older versions are read as they were meant, "
           "links from unknown versions open the default view with a note.")

st.subheader("Report")
st.markdown("One HTML file with the key results, interactive charts (plotly, embedded) and images (inline): it needs no server and no internet.")
st.download_button(
    "Download the HTML report",
    data=lambda: export.report_html(run, link=link(base, page_named("overview")) if base else None).encode("utf-8"),
    file_name=f"ig-report-{run.run_id}.html",
    mime="text/html",
    type="primary",
    icon=":material/description:",
    on_click="ignore",
    key="dl_report",
)

st.subheader("Charts as images")
st.download_button(
    "Download the key figures (PNG, zipped)",
    data=lambda: export.figures_zip(run),
    file_name=f"ig-charts-{run.run_id}.zip",
    mime="application/zip",
    icon=":material/image:",
    on_click="ignore",
    key="dl_pngs",
)
st.caption("The key figures of the HTML report: the Overview page's charts, the two hypotheses' clause weights, TCAV, weights against TCAV "
           "and relevance. Every chart in the dashboard also has its own PNG button under it; images are rendered by kaleido with the local chromium.")
