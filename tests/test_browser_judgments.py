"""Browser test: judgments belong to their world and their run.

One runs folder holds a Snow-and-Wolves run (the shipped judgments) and a Waterbirds-layout run solved with its
own ratings file (``prior.judgments``, written by a simulated rater). A real ``streamlit run`` server is driven
by Debian chromium through Playwright on a fresh copy of the folder (so the first page opened, the Waterbirds
run's, meets an empty judgments database; tests/test_dashboard_prior.py opens the two pages in either order):

- neither page shows an error, and each shows its own run's number of ratings and raters and where they came from;
- a rating added on the Waterbirds run's page that agrees with its z* (its strongest clause, rated 5) is kept by
  the re-solve, and never appears on the Snow-and-Wolves run's page or in its report (the Share page's download),
  while the Waterbirds run's report lists it.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from igcore.store import RunStore
from testkit.browser import CHROMIUM, CHROMIUM_ARGS, assert_page_ok, streamlit_server, wait_idle

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"Debian chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"),
]
RATER = "rater-ana-7"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def open_prior(page: object, base: str, run_id: str) -> None:
    page.goto(f"{base}/prior?v=1&run={run_id}")
    wait_idle(page, timeout=180)
    assert_page_ok(page, f"prior of {run_id}")


def metric(page: object, label: str) -> str:
    box = page.locator("[data-testid=stMetric]").filter(has=page.get_by_text(label, exact=True))
    return box.locator("[data-testid=stMetricValue]").first.inner_text().strip()


def choose(page: object, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label`` (type it into the box, then click it in the list)."""
    page.get_by_label(label).first.click()
    page.keyboard.type(option)
    page.get_by_role("option", name=option, exact=True).first.click()


def download_report(page: object, base: str, run_id: str, path: Path) -> str:
    page.goto(f"{base}/share?v=1&run={run_id}")
    wait_idle(page, timeout=180)
    with page.expect_download(timeout=180_000) as info:
        page.get_by_role("button", name=re.compile("Download the HTML report")).click()
    info.value.save_as(path)
    return path.read_text(encoding="utf-8")


def test_each_run_keeps_its_own_judgments(browser: object, worlds_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    shutil.copytree(worlds_dir, root, ignore=shutil.ignore_patterns("judgments.sqlite*"))
    store = RunStore(root)
    own = {run_id: store.load(run_id).judgments() for run_id in ("waterbirds", "tiny")}
    with streamlit_server(root, tmp_path) as base:
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page = ctx.new_page()
        for run_id in ("waterbirds", "tiny"):
            open_prior(page, base, run_id)
            ratings = own[run_id].ratings
            assert metric(page, "Ratings") == str(len(ratings)), run_id
            assert metric(page, "Raters") == str(ratings["rater"].nunique()), run_id
            assert metric(page, "Added on the Prior page") == "0", run_id
            text = page.locator("[data-testid=stMain]").inner_text()
            # "Prior_M learned from 18 ratings by 1 rater", as rendered (code spans lose their backticks)
            sentence = own[run_id].provenance.describe().split(" (")[0].replace("`", "")
            assert sentence in text, (run_id, sentence)
            assert "people rated" not in text

        # a rating that agrees with the Waterbirds run's z*: its strongest clause, rated 5
        run = store.load("waterbirds")
        vocabulary, _ = run.vocabulary()
        clause = max(run.metrics["hypotheses"]["z_star"], key=lambda c: c["weight"])
        concept_text = vocabulary[clause["concept"]].text
        open_prior(page, base, "waterbirds")
        form = page.locator("[data-testid=stForm]").filter(has=page.get_by_role("button", name="Add rating"))
        form.get_by_role("textbox", name="Your name").fill(RATER)
        choose(page, "Concept", concept_text)
        choose(page, "is evidence for", clause["class"])
        rating = form.get_by_role("spinbutton", name="Rating (1–5)")
        rating.fill("5")
        rating.press("Tab")
        form.get_by_role("button", name="Add rating").click()
        page.get_by_text(f"Saved: {RATER} rates “{concept_text} ⇒ {clause['class']}” as 5").wait_for(timeout=120_000)
        wait_idle(page, timeout=180)
        assert_page_ok(page, "prior of waterbirds (rating added)")
        assert metric(page, "Added on the Prior page") == "1"
        assert metric(page, "Ratings") == str(len(own["waterbirds"].ratings) + 1)

        page.get_by_role("button", name=re.compile("Re-solve z\\* with the current ratings")).click()
        page.get_by_text("Re-solved in").first.wait_for(timeout=180_000)
        wait_idle(page, timeout=180)
        assert_page_ok(page, "prior of waterbirds (re-solved)")
        # the whole sentence ("Re-solved in ... s ... with N ratings: z* gained ... and lost ..."), not only its bold start
        summary = page.locator("[data-testid=stMarkdownContainer] p").filter(has_text="Re-solved in").first.inner_text()
        assert "L_M reading it" in summary and "lost" not in summary, summary  # no clause of the run's z* was dropped
        after = page.locator("[data-testid=stColumn]").filter(has_text="After (the current ratings)").first.inner_text()
        assert concept_text in after, after  # the re-solved z*'s field guide still cites the clause's concept

        open_prior(page, base, "tiny")
        assert metric(page, "Added on the Prior page") == "0"
        assert RATER not in page.locator("[data-testid=stMain]").inner_text()
        assert RATER not in download_report(page, base, "tiny", tmp_path / "tiny.html")
        birds = download_report(page, base, "waterbirds", tmp_path / "waterbirds.html")
        assert "Ratings added for this world on the Prior page" in birds and f"<td>{RATER}</td>" in birds
        ctx.close()
