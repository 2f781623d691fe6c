"""Browser test of "Label with z*": the real `streamlit run` server driven by Debian chromium (Playwright).

A person types their name, labels a few D′ images by clicking the class buttons, reloads the page, and
finds the same count and the agreement with L_M(·|x, z*) that igcore.labels computes from the stored
answers. The server runs on a private copy of the test runs folder (the answers are written to it).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from igcore.labels import LabelStore, agreement, lm_proba
from igcore.store import RunStore
from testkit.browser import CHROMIUM, CHROMIUM_ARGS, streamlit_server, wait_idle

ROOT = Path(__file__).resolve().parents[1]
N_LABELS = 3

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"Debian chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"),
]


@pytest.fixture(scope="module")
def label_runs(runs_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("label-runs") / "runs"
    shutil.copytree(runs_dir, root)
    return root


@pytest.fixture(scope="module")
def server(label_runs: Path) -> Iterator[str]:
    with streamlit_server(label_runs, label_runs.parent) as base:
        yield base


def assert_ok(page: object) -> None:
    for what, locator in (("exception", page.locator("[data-testid=stException]")),
                          ("error box", page.locator("[data-testid=stAlertContentError]"))):
        assert not locator.count(), (what, locator.first.inner_text()[:300])


def test_label_reload_and_agreement(server: str, label_runs: Path) -> None:
    from playwright.sync_api import sync_playwright

    run = RunStore(label_runs).load("tiny")
    classes = run.vocabulary()[1]
    n_images = len(run.table("split_test_eval"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        page.goto(f"{server}/label")
        wait_idle(page)
        assert_ok(page)
        page.get_by_role("textbox", name="Your name").fill("tester")
        page.get_by_role("textbox", name="Your name").press("Enter")
        wait_idle(page)
        page.wait_for_url(re.compile(r"rater=tester"), timeout=30_000)
        for i in range(N_LABELS):
            page.get_by_role("button", name=classes[i % len(classes)], exact=True).click()
            page.get_by_text(f"tester: {i + 1} of {n_images} images labelled").wait_for(timeout=60_000)
            wait_idle(page)
            assert_ok(page)
        page.reload()
        wait_idle(page)
        assert_ok(page)
        page.get_by_text(f"tester: {N_LABELS} of {n_images} images labelled").wait_for(timeout=60_000)
        labels = LabelStore(label_runs / "judgments.sqlite", "tiny", classes, n_images).labels("tester")
        assert len(labels) == N_LABELS
        a = {x.rater: x for x in agreement(labels, lm_proba(run), classes)}["tester"]
        body = page.locator("[data-testid=stMain]").inner_text()
        assert f"{a.agree} of {a.n} images: {100 * a.rate:.1f}%" in body, body[:2000]
        assert f"95% interval {100 * a.ci_low:.1f}–{100 * a.ci_high:.1f}%" in body
        browser.close()
