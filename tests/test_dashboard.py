"""AppTest tests of the dashboard: every page renders, key elements are there, the view state round-trips
through the URL, and every kind of bad input ends in a friendly note and a safe default view."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import tiny_sets
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "dashboard" / "app.py"
PAGES = ["overview", "hypotheses", "microscope", "compare", "prior", "share"]
TIMEOUT = 120


def open_app(page: str = "overview", params: dict[str, str] | None = None) -> AppTest:
    """Open the app directly on ``page`` with URL ``params`` (as a shared link would)."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params.update(params or {})
    if page != "overview":
        at.switch_page(f"app_pages/{page}.py")  # url_path == file stem, so this works before the first run
    return at.run()


def all_text(at: AppTest) -> str:
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def assert_clean(at: AppTest) -> None:
    """No exception and no error box (a 'could not be drawn' warning also counts as a failure)."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    drawn = [w.value for w in at.warning if "could not be drawn" in str(w.value)]
    assert not drawn, drawn


def metrics(runs_dir: Path, run: str = "tiny") -> dict:
    return json.loads((runs_dir / run / "metrics.json").read_text())


def plotly_charts(at: AppTest) -> list:
    return list(at.get("plotly_chart"))


# ------------------------------------------------------------------------------------------ pages
@pytest.mark.parametrize("page", PAGES)
def test_page_renders(runs_dir: Path, page: str) -> None:
    at = open_app(page)
    assert_clean(at)
    assert at.title, "every page has a title"
    assert at.query_params.get("v") == "1"
    assert at.query_params.get("run") == "tiny"
    # the sidebar run picker lists the runs and marks the incomplete one
    picker = at.sidebar.selectbox(key="w_run")
    assert picker.value == "tiny"
    assert "tiny-incomplete" in picker.options[1] or any("tiny-incomplete" in o for o in picker.options)
    assert any("running" in o for o in picker.options)


def test_overview_elements(runs_dir: Path) -> None:
    at = open_app("overview")
    m = metrics(runs_dir)
    text = all_text(at)
    assert len(plotly_charts(at)) >= 2  # accuracy bars + group heat map
    assert at.dataframe, "the accuracy table"
    if m.get("hypotheses", {}).get("z_star"):
        assert "IG learned that" in text
    else:
        assert "not computed in this run" in text
    if m.get("hypotheses", {}).get("z_baseline"):
        assert "The baseline learned that" in text


def test_hypotheses_elements_and_selection_roundtrip(runs_dir: Path) -> None:
    ranked = metrics(runs_dir).get("hypotheses", {}).get("ranked") or []
    at = open_app("hypotheses")
    assert_clean(at)
    if not ranked:
        assert "not computed in this run" in all_text(at)
        pytest.skip("the engine did not produce hypotheses.ranked in the tiny run")
    assert plotly_charts(at), "prior-vs-likelihood scatter"
    pick = at.selectbox(key="w_hyp")
    assert pick.value == 0 or ranked[pick.value]
    target = min(2, len(ranked) - 1)
    pick.select(target).run()
    assert_clean(at)
    assert at.query_params["hyp"] == str(target)
    assert f"Hypothesis #{target + 1} as a field guide" in all_text(at)
    # the URL restores the selection in a fresh session
    again = open_app("hypotheses", dict(at.query_params))
    assert_clean(again)
    assert again.selectbox(key="w_hyp").value == target
    assert again.query_params["hyp"] == str(target)


def test_microscope_state_roundtrip(runs_dir: Path) -> None:
    m = metrics(runs_dir)
    group = m["world"]["groups"][-1]
    at = open_app("microscope", {"v": "1", "run": "tiny", "group": group, "correct": "wrong", "img": "3"})
    assert_clean(at)
    assert at.query_params["group"] == group
    assert at.query_params["correct"] == "wrong"
    assert at.query_params["img"] == "3"
    assert at.selectbox(key="w_group").value == group
    text = all_text(at)
    assert "Image **#3**" in text
    if m.get("microscope", {}).get("erm"):
        assert len(plotly_charts(at)) >= 2  # relevance on the animal + TCAV
        assert "sanity check" in text  # a verdict next to every method
        assert len(at.image) >= 2  # the image and its maps
    else:
        assert "not computed in this run" in text
    at.selectbox(key="w_group").select("all").run()
    assert at.query_params["group"] == "all"
    again = open_app("microscope", dict(at.query_params))
    assert again.selectbox(key="w_group").value == "all"
    assert again.query_params["img"] == "3"


def test_compare_and_share_elements(runs_dir: Path) -> None:
    at = open_app("compare", {"v": "1", "run": "tiny", "method": "saliency"})
    assert_clean(at)
    assert "z* (Imitative Generalization)" in all_text(at)
    m = metrics(runs_dir)
    if "saliency" in (m.get("microscope", {}).get("erm", {}).get("relevance_on_animal") or {}):
        assert at.query_params["method"] == "saliency"  # the compare view's method round-trips
        assert len(plotly_charts(at)) >= 3  # clause weights ×2, weights vs TCAV (+ swaps)
    share = open_app("share")
    assert_clean(share)
    assert len(share.get("download_button")) >= 2  # report + chart PNGs
    codes = [c.value for c in share.code]
    assert any("/hypotheses?v=1&run=tiny" in c for c in codes)


def test_state_survives_page_switch(runs_dir: Path) -> None:
    """Streamlit clears query params when the sidebar switches pages; the session keeps the view."""
    at = open_app("microscope", {"v": "1", "run": "tiny", "correct": "wrong"})
    at.query_params.clear()
    at.switch_page("app_pages/overview.py").run()
    at.query_params.clear()
    at.switch_page("app_pages/microscope.py").run()
    assert_clean(at)
    assert at.query_params["correct"] == "wrong"


def test_share_links_carry_the_session_view(runs_dir: Path) -> None:
    """Selections made on other pages appear in the Share page's links (the URL only holds the page's keys)."""
    at = open_app("microscope", {"v": "1", "run": "tiny", "img": "4", "correct": "wrong"})
    at.switch_page("app_pages/share.py").run()
    assert_clean(at)
    assert "img" not in at.query_params  # the share page's own URL stays short
    codes = [c.value for c in at.code]
    assert any("/microscope?" in c and "img=4" in c and "correct=wrong" in c for c in codes), codes


def test_incomplete_run_does_not_crash(runs_dir: Path) -> None:
    for page in PAGES:
        at = open_app(page, {"v": "1", "run": "tiny-incomplete"})
        assert not at.exception, (page, [e.value for e in at.exception])
        assert at.query_params.get("run") == "tiny-incomplete"
        assert any("running" in str(w.value) for w in at.sidebar.warning)


# ------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"v": "1", "run": "no-such-run"}, "There is no run `no-such-run`"),
        ({"v": "1", "run": "../../etc/passwd"}, "is not a valid run id"),
        ({"v": "1", "run": "tiny/../tiny"}, "is not a valid run id"),
        ({"v": "1", "run": "a/b"}, "is not a valid run id"),
        ({"v": "1", "run": "junk"}, "cannot be opened as a run"),
    ],
)
def test_bad_run_id(runs_dir: Path, params: dict[str, str], expected: str) -> None:
    at = open_app("overview", params)
    assert_clean(at)
    assert expected in all_text(at)
    assert at.query_params["run"] == "tiny"  # safe default: the newest complete run


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"v": "0", "hyp": "1"}, "older version"),
        ({"v": "9", "hyp": "1"}, "newer version"),
        ({"v": "one", "hyp": "1"}, "is not valid"),
        ({"hyp": "1"}, "no format version"),
        ({"v": "1", "hyp": "abc"}, "could not be read"),
        ({"v": "1", "hyp": "-3"}, "could not be read"),
        ({"v": "1", "hyp": "999999"}, "out of range"),
    ],
)
def test_bad_query_values(runs_dir: Path, params: dict[str, str], expected: str) -> None:
    at = open_app("hypotheses", params)
    assert_clean(at)
    ranked = metrics(runs_dir).get("hypotheses", {}).get("ranked") or []
    if expected == "out of range" and not ranked:
        pytest.skip("no ranked hypotheses in the tiny run")
    assert expected in all_text(at)
    assert at.query_params.get("hyp", "0") == "0"  # safe default: the first (MAP) hypothesis


@pytest.mark.parametrize(
    "params",
    [
        {"v": "1", "img": "123456"},
        {"v": "1", "group": "zebra/moon"},
        {"v": "1", "correct": "maybe"},
        {"v": "1", "model": "<script>"},
        {"v": "1", "method": "no_such_method"},
    ],
)
def test_bad_microscope_values(runs_dir: Path, params: dict[str, str]) -> None:
    at = open_app("microscope", params)
    assert_clean(at)
    notes = [str(i.value) for i in at.info]
    assert any("could not be read" in n or "does not exist" in n or "out of range" in n for n in notes), notes
    assert at.query_params.get("correct", "all") in ("all", "correct", "wrong")
    assert at.query_params.get("group", "all") != "zebra/moon"


def test_rating_outside_range_is_refused(fresh_runs_dir: Path) -> None:
    at = open_app("prior")
    assert_clean(at)
    before = int(at.metric[0].value)
    at.text_input(key="w_rater").input("tester")
    at.number_input(key="w_rating").set_value(7)
    submit = [b for b in at.button if b.label == "Add rating"][0]
    submit.click().run()
    assert not at.exception
    assert any("from 1 (implausible) to 5" in str(e.value) for e in at.error)
    assert int(at.metric[0].value) == before  # nothing saved


def test_rating_add_and_reset(fresh_runs_dir: Path) -> None:
    at = open_app("prior")
    before = int(at.metric[0].value)
    at.text_input(key="w_rater").input("<b>ana</b>")
    at.number_input(key="w_rating").set_value(5)
    [b for b in at.button if b.label == "Add rating"][0].click().run()
    assert_clean(at)
    assert int(at.metric[0].value) == before + 1
    assert any("Saved" in str(s.value) for s in at.success)
    # the report escapes the rater's name
    from dashboard import data, export

    html = export.report_html(data.open_run(str(fresh_runs_dir), "tiny"), root=str(fresh_runs_dir))
    assert "&lt;b&gt;ana&lt;/b&gt;" in html and "<b>ana</b>" not in html
    at.button(key="w_reset").click().run()
    assert_clean(at)
    assert int(at.metric[0].value) == before


def test_resolve_z_star_or_note(fresh_runs_dir: Path) -> None:
    at = open_app("prior")
    [b for b in at.button if "Re-solve" in b.label][0].click().run()
    assert not at.exception
    text = all_text(at)
    assert "Re-solved in" in text or "not computed in this run" in text or "not available" in text


def test_first_launch_computes_demo_run(tmp_path: Path, runs_dir: Path) -> None:
    empty = tmp_path / "empty-runs"
    os.environ["IG_RUNS_DIR"] = str(empty)
    os.environ["IG_DEMO_SET"] = ";".join(tiny_sets())
    os.environ["IG_DEMO_STAGES"] = "world"
    try:
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
        assert not at.exception, [e.value for e in at.exception]
        runs = [p for p in empty.iterdir() if p.is_dir() and not p.name.startswith(".")]
        assert len(runs) == 1 and (runs[0] / "manifest.json").is_file()
        at.run()  # the next script run shows the demo run
        assert_clean(at)
        assert at.query_params["run"] == runs[0].name
    finally:
        os.environ["IG_RUNS_DIR"] = str(runs_dir)
        os.environ.pop("IG_DEMO_SET", None)
        os.environ.pop("IG_DEMO_STAGES", None)
