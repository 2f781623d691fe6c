"""Browser test: the real `streamlit run` server driven by Debian chromium through Playwright.

Visits every page of the registry and fails on a Python exception, Streamlit's "Page not found" dialog, an
error box, a section that says the run lacks something or a failed request of ours; selects a hypothesis
by clicking its point in the prior-vs-likelihood chart and by clicking its row in the ranked list, checks
the URL changed, opens that URL in a fresh browser context and sees the same selection, then exports the
HTML report and finds z*'s text in it.

With ``IG_SCREENSHOTS`` set, it takes a screenshot of every page (none otherwise: each costs a resize, a
wait for the charts and a full-page capture, and nothing asserts on it). To refresh the committed ones in
docs/screenshots/ from the default run (run from the repository root)::

    python -m igcore run --out /tmp/shots-runs
    IG_TEST_RUN=/tmp/shots-runs/<run id> IG_SCREENSHOTS=docs/screenshots python -m pytest tests/test_browser_dashboard.py

``IG_TEST_RUN`` makes the ``runs_dir`` fixture use a copy of that run (conftest); ``IG_SCREENSHOTS`` is
where the screenshots go.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard.pages import PAGES as PAGE_SPECS
from dashboard.url_state import CODEC_VERSION
from testkit.browser import CHROMIUM, CHROMIUM_ARGS, assert_page_ok, streamlit_server, wait_idle

ROOT = Path(__file__).resolve().parents[1]
#: Page -> URL path (the default page, Overview, is served at the root; /overview is "Page not found").
PAGES = {p.name: p.path for p in PAGE_SPECS}
#: Where the screenshots go instead of a temporary directory (docs/screenshots to refresh the committed ones).
SHOTS_ENV = "IG_SCREENSHOTS"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"Debian chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"),
]


@pytest.fixture(scope="module")
def shots() -> Path | None:
    """``$IG_SCREENSHOTS`` (relative to the repository root), or None: no screenshots."""
    wanted = os.environ.get(SHOTS_ENV)
    if not wanted:
        return None
    path = ROOT / wanted
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def server(runs_dir: Path) -> Iterator[str]:
    with streamlit_server(runs_dir, runs_dir.parent) as base:
        yield base


@pytest.fixture(scope="module")
def browser(server: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def screenshot(page: object, shots: Path | None, name: str) -> None:
    if shots is None:
        return
    height = page.evaluate("() => (document.querySelector('[data-testid=stMain]') || document.body).scrollHeight")
    page.set_viewport_size({"width": 1400, "height": int(min(max(height, 900), 5000))})
    page.wait_for_timeout(1200)  # charts resize to the new viewport
    page.screenshot(path=str(shots / f"{name}.png"))
    page.set_viewport_size({"width": 1400, "height": 900})


#: Requests that fail on every page opened at its own URL, made by Streamlit's frontend itself: it probes
#: ``<page>/_stcore/health`` and ``<page>/_stcore/host-config`` as a possible base path before the site's
#: root (streamlit/streamlit#7074, open upstream). Any other failed request is ours and fails the test.
UPSTREAM_PROBES = re.compile(r"/[a-z]+/_stcore/(health|host-config)$")


def test_visit_every_page(browser: object, server: str, shots: Path | None) -> None:
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    failed: list[tuple[int, str]] = []
    page.on("response", lambda r: failed.append((r.status, r.url)) if r.status >= 400 else None)
    for name, path in PAGES.items():
        page.goto(f"{server}/{path}")
        wait_idle(page)
        assert_page_ok(page, name)
        assert f"v={CODEC_VERSION}" in page.url and "run=tiny" in page.url, page.url
        ours = [(status, url) for status, url in failed if not UPSTREAM_PROBES.search(url.split("?")[0])]
        assert not ours, (name, ours)
        failed.clear()
        screenshot(page, shots, name)
    # navigation through the sidebar keeps the run in the URL
    page.get_by_role("link", name="Overview").click()
    wait_idle(page)
    assert_page_ok(page, "overview (sidebar)")
    assert "run=tiny" in page.url
    ctx.close()


def test_images_outlive_the_script_run_that_drew_them(browser: object, server: str) -> None:
    """Every image a page shows is decoded, and can still be loaded after the session's next script run, as
    bench_load's sessions need: a busy browser is still loading a page's last images when the click on the next page
    has started that page's run. (Images kept in Streamlit's media store lived only until the session's next run
    ended: 404. The pages now inline their images as data URIs, which load with their element; an image served from
    the media store again would be fetched here after the next run.)"""
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    page.goto(server)
    wait_idle(page)
    checked = 0
    for spec in sorted(PAGE_SPECS, key=lambda p: p.default):  # the default page last: every click changes the page
        shown = page.eval_on_selector_all("[data-testid=stMain] img", "images => images.map(i => i.src)")
        # every image the page shows has been decoded (a data URI as much as a served file)
        page.wait_for_function("() => [...document.querySelectorAll('[data-testid=stMain] img')].every(i => i.complete && i.naturalWidth > 0)",
                               timeout=30_000)
        title = page.locator("h1").first.inner_text()
        page.locator("[data-testid=stSidebarNav]").get_by_role("link", name=spec.title, exact=True).click()
        page.wait_for_function("t => { const h = document.querySelector('h1'); return !!h && h.innerText !== t; }", arg=title, timeout=90_000)
        wait_idle(page)
        for src in shown:
            if not src.startswith("data:"):  # a data URI is loaded with its element
                status = ctx.request.get(src).status
                assert status == 200, (title, src, status)
        checked += len(shown)
    assert checked, "no page showed an image"
    ctx.close()


def test_unknown_page_is_caught(browser: object, server: str) -> None:
    """The check above would see Streamlit's "Page not found" dialog (a URL path no page has)."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    page.goto(f"{server}/overview")
    wait_idle(page)
    with pytest.raises(AssertionError, match="page not found"):
        assert_page_ok(page, "overview")
    ctx.close()


def _ranked(runs_dir: Path) -> list:
    return json.loads((runs_dir / "tiny" / "metrics.json").read_text())["hypotheses"]["ranked"]


def _isolated_point(ranked: list[dict]) -> int:
    """A non-z* hypothesis whose point lies farthest from every other point (overlapping markers would
    take the click)."""
    xy = [(r["log_prior"], r["log_likelihood"]) for r in ranked]
    span = [max(v) - min(v) or 1.0 for v in zip(*xy, strict=True)]

    def gap(i: int) -> float:
        return min(
            ((xy[i][0] - xy[j][0]) / span[0]) ** 2 + ((xy[i][1] - xy[j][1]) / span[1]) ** 2
            for j in range(len(xy)) if j != i
        )

    return max(range(1, len(xy)), key=gap)


def test_select_hypothesis_and_share_url(browser: object, server: str, runs_dir: Path, shots: Path | None) -> None:
    ranked = _ranked(runs_dir)
    assert len(ranked) >= 2, "the run's search keeps several hypotheses"
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    page.goto(f"{server}/hypotheses")
    wait_idle(page)
    target = _isolated_point(ranked)
    points = page.locator("[data-testid=stPlotlyChart] .scatterlayer .trace").first.locator("path.point")
    points.nth(target).wait_for(timeout=30_000)
    for attempt in range(2):  # hover first: plotly picks the clicked point from its hover state
        box = points.nth(target).bounding_box()
        assert box is not None
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(cx - 6, cy - 6)
        page.mouse.move(cx, cy, steps=3)
        page.wait_for_timeout(400)
        page.mouse.down()
        page.mouse.up()
        try:
            page.wait_for_url(re.compile(rf"hyp={target + 1}(&|$)"), timeout=20_000)  # numbered from 1
            break
        except Exception:  # noqa: BLE001
            if attempt:
                raise
    wait_idle(page)
    assert_page_ok(page, "hypotheses (clicked)")
    expect_heading = f"Hypothesis #{target + 1} as a field guide"
    assert page.get_by_text(expect_heading).count() >= 1
    url = page.url
    ctx.close()
    # a fresh browser context (new session, no state) restores the same view from the URL alone
    fresh = browser.new_context(viewport={"width": 1400, "height": 1000})
    p2 = fresh.new_page()
    p2.goto(url)
    wait_idle(p2)
    assert_page_ok(p2, "hypotheses (shared link)")
    assert p2.get_by_text(expect_heading).count() >= 1
    assert re.search(rf"hyp={target + 1}(&|$)", p2.url)
    screenshot(p2, shots, "hypotheses_selected")
    fresh.close()


def test_a_row_of_the_ranked_table_selects_its_hypothesis(browser: object, server: str, runs_dir: Path) -> None:
    """A click on a row of the ranked list (not only on a point of the chart) selects that hypothesis; the URL
    and the page count it the same way, from 1."""
    from dashboard.run_view import RunView

    star = RunView.open(str(runs_dir), "tiny").z_star_rank
    assert len(_ranked(runs_dir)) >= 2
    target = 1 if star != 1 else 0  # a row that is not z*, which the page opens on
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    page.goto(f"{server}/hypotheses")
    wait_idle(page)
    grid = page.locator("[data-testid=stDataFrame]").first
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    assert box is not None
    row_height = 35  # Streamlit's data grid: a header row, then rows of the same height
    page.mouse.click(box["x"] + 14, box["y"] + row_height * (target + 1) + row_height / 2)  # the row's selection box
    page.wait_for_url(re.compile(rf"hyp={target + 1}(&|$)"), timeout=30_000)
    wait_idle(page)
    assert_page_ok(page, "hypotheses (row clicked)")
    assert page.get_by_text(f"Hypothesis #{target + 1} as a field guide").count() >= 1
    ctx.close()


def test_export_html_report(browser: object, server: str, runs_dir: Path, tmp_path: Path) -> None:
    from dashboard.run_view import RunView
    from igcore.hypothesis import summary_sentence

    metrics = json.loads((runs_dir / "tiny" / "metrics.json").read_text())
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = ctx.new_page()
    page.goto(f"{server}/share")
    wait_idle(page)
    with page.expect_download(timeout=120_000) as info:
        page.get_by_role("button", name=re.compile("Download the HTML report")).click()
    path = tmp_path / "report.html"
    info.value.save_as(path)
    ctx.close()
    report = path.read_text(encoding="utf-8")
    assert report.startswith("<!DOCTYPE html>")
    assert "Plotly" in report and "data:image/png;base64," in report
    z_star = metrics["hypotheses"]["z_star"]
    run = RunView.open(str(runs_dir), "tiny")  # the clauses with the clause-deletion verdicts, as every page cites them
    assert html.escape(summary_sentence(run.clauses("z_star"), "IG", run.classes)) in report
    for clause in z_star:
        assert html.escape(clause["text"]) in report
    assert html.escape(metrics["hypotheses"]["z_star_text"]) in report  # the engine's own words
    assert "This run has no" not in report  # every section of the run is there
    assert report.count("<figure><h2>") == 8  # the key figures (dashboard.components.figures)
    assert "<h2>What this run shows</h2>" in report and "Swapping only the background" in report


def test_key_figures_png_zip(runs_dir: Path) -> None:
    """The Share page's zip: every key figure as a PNG through kaleido, which drives the same Debian chromium."""
    import io
    import zipfile

    from dashboard.export import figures_zip
    from dashboard.run_view import RunView

    with zipfile.ZipFile(io.BytesIO(figures_zip(RunView.open(str(runs_dir), "tiny")))) as z:
        names = z.namelist()
        assert names == ["accuracy.png", "groups.png", "effects.png", "clauses_z_star.png", "clauses_z_baseline.png", "tcav.png", "weights_tcav.png", "relevance.png"]
        for name in names:
            png = z.read(name)
            assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000, name
