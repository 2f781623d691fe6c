"""The Discover page: every section renders on a run with discovery (the tiny run: discovery is on by default); a
person names a component through the form, the name is in the NameStore with the rater, survives a reload (a new
AppTest session, nothing kept but the URL), and z* is re-solved in the named words; the name then reaches the other
pages (the Hypotheses page's field guide of z* re-solved in it, the Prior page's questions and its re-solve) through
the run view's one text lookup (:attr:`dashboard.run_view.RunView.vocabulary`); a shared link opens its component;
the browser does the same through the real server (Playwright, Debian chromium).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import url_state
from dashboard.run_view import RunView, clause_records, rendered_text
from igcore.discover import DiscoveryView
from igcore.resolve import resolve
from igcore.store import RunStore
from testkit.apptest import DISCOVER_SECTIONS, all_text, assert_clean
from testkit.browser import CHROMIUM, CHROMIUM_ARGS, streamlit_server, wait_idle

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "dashboard" / "app.py"
TIMEOUT = 120
V = str(url_state.CODEC_VERSION)


def open_page(page: str, params: dict[str, str] | None = None) -> AppTest:
    """A new session (a reload: nothing kept but the URL) on ``page`` of the tiny run."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params.update({"v": V, "run": "tiny", **(params or {})})
    at.switch_page(f"app_pages/{page}.py")
    return at.run()


def open_discover(params: dict[str, str] | None = None) -> AppTest:
    return open_page("discover", params)


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
    for heading in DISCOVER_SECTIONS:
        assert heading in text, heading
    view = DiscoveryView(RunStore(runs_dir).load("tiny"))
    assert len(at.dataframe[0].value) == len(view.component_ids("erm"))  # one row per component
    # annotated concepts in their words, as every other page says them (not their ids)
    texts = {c.id: c.text for c in view.vocabulary().concepts}
    assert list(at.dataframe[0].value["best annotated concept"]) == [texts[c] for c in view.components("erm")["best_concept"]]
    resembles = at.dataframe[1].value
    assert set(resembles.loc[resembles["kind"] == "concept", "name"]) <= {c.text for c in view.vocabulary().concepts}
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

    # every other page reads the name through the run view: Hypotheses shows z* re-solved in it, as the engine solves it
    hypotheses = open_page("hypotheses")
    assert_clean(hypotheses)
    shown = all_text(hypotheses)
    assert "z* in the names given since this run" in shown and "(“snowy ground”)" in shown
    assert f"In the engine's words: {expected.text}" in shown
    # the Prior page asks about the named concept's clauses in its name, and re-solves z* in the named words
    prior = open_page("prior")
    assert_clean(prior)
    asked = next(d.value for d in prior.dataframe if "flip_probability" in d.value.columns)
    assert {f"snowy ground ⇒ {c}" for c in run.vocabulary()[1]} <= set(asked["clause"])
    assert not any(c.startswith("unnamed concept") for c in asked["clause"])  # nobody can judge an unnamed concept
    next(b for b in prior.button if b.label.startswith("Re-solve z*")).click().run()
    assert_clean(prior)
    assert f"Field guide: {expected.text}" in all_text(prior)  # the run's own judgments, the named words


def test_a_shared_link_opens_its_component(runs_dir: Path) -> None:
    ids = DiscoveryView(RunStore(runs_dir).load("tiny")).component_ids()
    wanted = ids[len(ids) // 2]
    at = open_discover({"comp": wanted})
    assert_clean(at)
    assert at.selectbox(key="w_discover_comp").value == wanted
    assert at.subheader[-1].value.startswith(wanted) or any(s.value.startswith(f"{wanted}:") for s in at.subheader)
    assert at.query_params["comp"] == wanted
    # picking another component puts it in the link; the Share page's link to Discover carries it
    at.selectbox(key="w_discover_comp").set_value(ids[0]).run()
    assert at.query_params["comp"] == ids[0]
    at.switch_page("app_pages/share.py").run()
    assert any("/discover?" in c.value and f"comp={ids[0]}" in c.value.replace("%3A", ":").replace("%2F", "/") for c in at.code)
    # a component the run does not have: the first one, with a note that says so
    other = open_discover({"comp": "discovered::erm/999"})
    assert not other.exception
    assert other.selectbox(key="w_discover_comp").value == ids[0] and other.query_params["comp"] == ids[0]
    assert any("does not exist in this run" in str(i.value) for i in other.info)


def test_the_text_lookup_applies_names(fresh_runs_dir: Path) -> None:
    """:attr:`RunView.vocabulary` is the run's vocabulary with people's names: unnamed concepts read "unnamed concept k",
    a name is every text of its concept, the names are part of the view's identity (every cache keyed by it sees a
    new name), and nothing of a run without names changes (its field guides are the stored ones)."""
    root = str(fresh_runs_dir)
    (fresh_runs_dir / "judgments.sqlite").unlink(missing_ok=True)  # a dashboard where nobody has written yet
    before = RunView.open(root, "tiny")
    assert before.names == () and not (fresh_runs_dir / "judgments.sqlite").exists()  # reading created nothing
    assert before.vocabulary == before.recorded_vocabulary and before.renamed == []
    for key in ("z_star", "no_prior", "z_baseline", "z_student"):
        assert before.hypothesis_text(key) == getattr(before.hypotheses, f"{key}_text")
        # rendered again as the engine rendered it (a field guide, or what a surrogate's model behaves as if), the
        # stored text comes back exactly: rendering in people's names changes nothing but the names
        assert rendered_text(before, key) == getattr(before.hypotheses, f"{key}_text"), key
    ids = DiscoveryView(before.run).component_ids()
    assert [before.concept_texts[c] for c in ids] == [f"unnamed concept {k}" for k in range(len(ids))]

    store = DiscoveryView(before.run).name_store(fresh_runs_dir / "judgments.sqlite")
    store.name("ana", ids[1], "a ruler at the edge")
    named = RunView.open(root, "tiny")
    assert named.names == ((ids[1], "a ruler at the edge"),) and named != before and named.stamp == before.stamp
    assert named.concept_texts[ids[1]] == "a ruler at the edge" and named.renamed == [ids[1]]
    assert named.concept_texts[ids[0]] == "unnamed concept 0"
    assert named.name_map == store.names()
    # stored records about the concept take its name (the ranked list, clause records, field guides read them)
    z = named.hypotheses.z_star or []
    assert z, "the tiny run's z* has clauses"
    relabelled = z[0].model_copy(update={"concept": ids[1]})
    assert clause_records([relabelled], texts=named.concept_texts)[0]["text"] == "a ruler at the edge"
    # no clause of z* is about the renamed concept (z* speaks only annotated and named concepts, and none was named at the
    # run), so its field guide is the stored one
    assert ids[1] not in {c.concept for c in z}
    assert named.hypothesis_text("z_star") == before.hypothesis_text("z_star")
    store.unname("bo", ids[1])
    again = RunView.open(root, "tiny")
    assert again.names == ((ids[1], ""),) and again.concept_texts[ids[1]] == "unnamed concept 1"


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
        page.goto(f"{server}/discover?v={V}&run=tiny&comp={top.replace('/', '%2F')}")
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
        page.get_by_role("link", name="Hypotheses").first.click()  # another page, after the reload: the name is there
        page.get_by_text("z* in the names given since this run").wait_for(timeout=60_000)
        assert "“grassy ground”" in page.locator("[data-testid=stMain]").inner_text()
        assert not page.locator("[data-testid=stException]").count()
        browser.close()
    store = DiscoveryView(RunStore(discover_runs).load("tiny")).name_store(discover_runs / "judgments.sqlite")
    assert store.names() == {top: "grassy ground"} and list(store.history(top)["rater"]) == ["bo"]
