"""The Discover page: every section renders on a run with discovery (the tiny run: discovery is on by default); a
person names a component through the form, the name is in the NameStore with the rater, survives a reload (a new
AppTest session, nothing kept but the URL), and z* is re-solved in the named words; the browser does the same
through the real server (Playwright, Debian chromium).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from igcore.discover import DiscoveryView
from igcore.resolve import resolve
from igcore.store import RunStore
from testkit.apptest import all_text, assert_clean
from testkit.browser import CHROMIUM, CHROMIUM_ARGS, streamlit_server, wait_idle

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "dashboard" / "app.py"
TIMEOUT = 120


def open_discover(params: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params.update(params or {})
    at.switch_page("app_pages/discover.py")
    return at.run()


def top_component(runs_dir: Path) -> tuple[str, dict]:
    """The component erm relies on most, and its metrics record."""
    section = RunStore(runs_dir).load("tiny").metrics["discover"]["erm"]
    top = section["ranking"]["erm"][0]
    return top, next(c for c in section["components"] if c["id"] == top)


def test_every_section_renders(runs_dir: Path) -> None:
    at = open_discover()
    assert_clean(at)
    text = all_text(at)
    top, record = top_component(runs_dir)
    for heading in ("Every discovered concept", "Name it", "z* in the named words", "What it resembles", "Its causal effect"):
        assert heading in text, heading
    view = DiscoveryView(RunStore(runs_dir).load("tiny"))
    assert len(at.dataframe[0].value) == len(view.component_ids("erm"))  # one row per component
    assert at.query_params.get("comp") == view.component_ids()[0]  # the selected component is in the URL
    # the reliance sentence names every examined model and reads the stored interval of the top component
    effect = record["effects"]["erm"]["overall"]
    verdict = "relies" if effect["ci_high"] < 0 else "does not rely"
    assert f"Most relied on by erm: **erm** {verdict} on component {record['k']}" in text
    for model in record["effects"]:
        assert f"**{model}**" in text
    shown = [c for el in at.get("image") for c in el.captions if c]  # the exemplars with their maps, by D′ index
    assert shown == [f"#{i}" for i in view.exemplars(view.component_ids()[0], len(shown))] and shown
    assert "No discovered concept is named yet" in text


def test_naming_survives_reload_and_re_solves_z_star(fresh_runs_dir: Path) -> None:
    top, record = top_component(fresh_runs_dir)
    at = open_discover({"comp": top})
    assert_clean(at)
    at.text_input(key="w_discover_rater").input("ana").run()
    assert at.query_params.get("rater") == "ana"
    at.text_input(key="w_discover_text").input("snowy ground")
    next(b for b in at.get("form_submit_button") if "Save the name" in b.label).click()
    at.run()
    assert_clean(at)
    run = RunStore(fresh_runs_dir).load("tiny")
    store = DiscoveryView(run).name_store(fresh_runs_dir / "judgments.sqlite")
    assert store.names() == {top: "snowy ground"}
    history = store.history(top)
    assert list(history["rater"]) == ["ana"] and list(history["text"]) == ["snowy ground"]

    again = open_discover({"comp": top, "rater": "ana"})  # a reload: a new session, only the URL kept
    assert_clean(again)
    text = all_text(again)
    assert f"Current name of {top}: **snowy ground**" in text
    assert again.text_input(key="w_discover_rater").value == "ana"
    expected = resolve(run, names={top: "snowy ground"})
    assert expected.text in text  # z* re-solved in the named words, as the engine solves it
    assert expected.language.left_out == len(DiscoveryView(run).component_ids()) - 1
    assert "Re-solved on the run's own judgments with 1 named concept(s) (“snowy ground”)" in text


def test_a_name_is_refused_in_one_line(fresh_runs_dir: Path) -> None:
    top, _ = top_component(fresh_runs_dir)
    at = open_discover({"comp": top, "rater": "ana"})
    at.text_input(key="w_discover_text").input("unnamed concept 3")
    next(b for b in at.get("form_submit_button") if "Save the name" in b.label).click()
    at.run()
    assert not at.exception
    assert any("That name could not be saved" in str(e.value) for e in at.error)
    store = DiscoveryView(RunStore(fresh_runs_dir).load("tiny")).name_store(fresh_runs_dir / "judgments.sqlite")
    assert store.names() == {}


# ------------------------------------------------------------------------------------------ the browser
@pytest.fixture(scope="module")
def discover_runs(runs_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("discover-runs") / "runs"
    shutil.copytree(runs_dir, root)
    return root


@pytest.fixture(scope="module")
def server(discover_runs: Path) -> Iterator[str]:
    with streamlit_server(discover_runs, discover_runs.parent) as base:
        yield base


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"Debian chromium is not installed at {CHROMIUM}")
def test_browser_names_a_component_and_sees_it_after_reload(server: str, discover_runs: Path) -> None:
    from playwright.sync_api import sync_playwright

    top, _ = top_component(discover_runs)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        page.goto(f"{server}/discover?comp={top.replace('/', '%2F')}")
        wait_idle(page)
        page.get_by_role("textbox", name="Your name").fill("bo")
        page.get_by_role("textbox", name="Your name").press("Enter")
        wait_idle(page)
        page.wait_for_url(re.compile(r"rater=bo"), timeout=30_000)
        page.get_by_role("textbox", name="What does this concept show?").fill("grassy ground")
        page.get_by_role("button", name="Save the name").click()
        page.get_by_text(f"Current name of {top}: grassy ground").wait_for(timeout=60_000)
        page.reload()
        wait_idle(page)
        page.get_by_text(f"Current name of {top}: grassy ground").wait_for(timeout=60_000)
        body = page.locator("[data-testid=stMain]").inner_text()
        assert "z* now reads" in body
        assert not page.locator("[data-testid=stException]").count()
        browser.close()
    store = DiscoveryView(RunStore(discover_runs).load("tiny")).name_store(discover_runs / "judgments.sqlite")
    assert store.names() == {top: "grassy ground"} and list(store.history(top)["rater"]) == ["bo"]
