"""AppTest tests of the dashboard: every page renders every section of a complete run, the view state
round-trips through the URL, a run that lacks a section says which stage would have written it, and
every kind of bad input ends in a friendly note and a safe default view.

The ``runs_dir`` fixture (conftest) holds a real tiny run with every default stage, so a section the
engine stops writing fails these tests instead of turning into a note."""

from __future__ import annotations

import json
import os
from html import escape
from pathlib import Path

import pytest
from conftest import tiny_sets
from streamlit.testing.v1 import AppTest

from dashboard import export
from dashboard.components.figures import key_figures
from dashboard.run_view import NotComputed, RunView, writer_of
from igcore.hypothesis import summary_sentence
from igcore.stages import STAGES, Stage

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


def assert_complete(at: AppTest) -> None:
    """Clean, and no section says the run lacks something (the tiny run has every default stage)."""
    assert_clean(at)
    missing = [i.value for i in at.info if "This run has no" in str(i.value)]
    assert not missing, missing


def metrics(runs_dir: Path, run: str = "tiny") -> dict:
    return json.loads((runs_dir / run / "metrics.json").read_text())


def plotly_charts(at: AppTest) -> list:
    return list(at.get("plotly_chart"))


# ------------------------------------------------------------------------------------------ pages
@pytest.mark.parametrize("page", PAGES)
def test_page_renders(runs_dir: Path, page: str) -> None:
    at = open_app(page)
    assert_complete(at)
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
    assert_complete(at)
    m = metrics(runs_dir)
    text = all_text(at)
    assert len(plotly_charts(at)) >= 3  # accuracy bars, group heat map, stage times
    assert at.dataframe, "the accuracy table"
    assert summary_sentence(m["hypotheses"]["z_star"], "IG", m["world"]["classes"]) in text
    assert summary_sentence(m["hypotheses"]["z_baseline"], "The baseline", m["world"]["classes"]) in text
    assert len(at.metric) == 4  # worst-group accuracy of erm, ig_student, ig_direct, no_prior


def test_hypotheses_elements_and_selection_roundtrip(runs_dir: Path) -> None:
    ranked = metrics(runs_dir)["hypotheses"]["ranked"]
    assert len(ranked) >= 3, "the tiny run's search keeps several hypotheses"
    at = open_app("hypotheses")
    assert_complete(at)
    assert plotly_charts(at), "prior-vs-likelihood scatter"
    assert "In the engine's words:" in all_text(at)
    pick = at.selectbox(key="w_hyp")
    assert pick.value == 0
    target = 2
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
    assert len(plotly_charts(at)) >= 3  # relevance per image, relevance on the animal, TCAV
    methods = m["microscope"]["erm"]["sanity"]
    assert sum(text.count(phrase) for phrase in ("passes the sanity check", "fails the sanity check")) >= len(methods)
    at.selectbox(key="w_group").select("all").run()
    assert at.query_params["group"] == "all"
    again = open_app("microscope", dict(at.query_params))
    assert again.selectbox(key="w_group").value == "all"
    assert again.query_params["img"] == "3"


def test_compare_and_share_elements(runs_dir: Path) -> None:
    at = open_app("compare", {"v": "1", "run": "tiny", "method": "saliency"})
    assert_complete(at)
    assert "z* (Imitative Generalization)" in all_text(at)
    assert at.query_params["method"] == "saliency"  # the compare view's method round-trips
    assert len(plotly_charts(at)) == 5  # clause weights of z*, z_baseline and no_prior, weights vs TCAV, swaps
    share = open_app("share")
    assert_complete(share)
    assert len(share.get("download_button")) >= 2  # report + chart PNGs
    codes = [c.value for c in share.code]
    assert any("/hypotheses?v=1&run=tiny" in c for c in codes)
    assert any(c.startswith("/?v=1&run=tiny") for c in codes), "Overview is the default page, served at the root"


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


@pytest.mark.parametrize("page", PAGES)
def test_incomplete_run_says_what_is_still_running(runs_dir: Path, page: str) -> None:
    """A run whose pipeline is still running (only the world stage done): each missing section names the
    stage that will write it."""
    at = open_app(page, {"v": "1", "run": "tiny-incomplete"})
    assert_clean(at)
    assert at.query_params.get("run") == "tiny-incomplete"
    assert any("running" in str(w.value) for w in at.sidebar.warning)
    notes = [str(i.value) for i in at.info if "This run has no" in str(i.value)]
    if page in ("prior", "share"):  # they only need the world (and the judgments database)
        assert not notes, notes
    else:
        assert notes and all("has not finished yet (the run is running)" in n for n in notes), notes
    if page == "overview":
        assert "This run has no z* because its `ig` stage has not finished yet (the run is running)." in notes[0]


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
    assert_complete(at)
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
    html = export.report_html(RunView.open(str(fresh_runs_dir), "tiny"))
    assert "&lt;b&gt;ana&lt;/b&gt;" in html and "<b>ana</b>" not in html
    at.button(key="w_reset").click().run()
    assert_clean(at)
    assert int(at.metric[0].value) == before


def test_resolve_z_star(fresh_runs_dir: Path) -> None:
    at = open_app("prior")
    [b for b in at.button if "Re-solve" in b.label][0].click().run()
    assert_complete(at)
    text = all_text(at)
    assert "Re-solved in" in text and "**After** (your ratings): IG learned that" in text
    assert len(at.metric) == 6  # 3 about the judgments, 3 about what changed


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
        # the demo ran only the world stage: each missing section names the stage that would write it
        notes = [str(i.value) for i in at.info]
        assert any("This run has no z* because its `ig` stage was not run." in n for n in notes), notes
        assert any("This run has no z_baseline because its `microscope` stage was not run." in n for n in notes), notes
    finally:
        os.environ["IG_RUNS_DIR"] = str(runs_dir)
        os.environ.pop("IG_DEMO_SET", None)
        os.environ.pop("IG_DEMO_STAGES", None)


# ------------------------------------------------------------------------------------------ run view
@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_every_written_key_names_its_stage(stage: Stage) -> None:
    """The run view finds the writer of each metrics key from igcore.stages (a new stage is covered at once)."""
    for key in stage.writes:
        assert writer_of(key) is stage
        assert writer_of(f"{key}.some.sub.key") is stage


def test_run_view_reads_every_section(runs_dir: Path) -> None:
    run = RunView.open(str(runs_dir), "tiny")
    m = metrics(runs_dir)
    assert run.classes == m["world"]["classes"] and run.groups == m["world"]["groups"]
    assert set(run.methods) >= {"erm", "oracle", "true_concepts", "ig_direct", "no_prior", "ig_student"}
    for key in ("z_star", "no_prior", "z_baseline", "z_student"):
        assert run.clauses(key) == m["hypotheses"][key]
    assert len(run.ranked) == len(m["hypotheses"]["ranked"])
    assert run.tcav() == m["microscope"]["erm"]["tcav"]
    n = m["world"]["sizes"]["test_eval"]
    assert len(run.predictions()) == n and run.test_eval()["images"].shape[0] == n
    assert run.concept_scores().shape == (n, len(m["world"]["vocabulary"]))
    assert not run.test_eval()["images"].flags.writeable  # shared between sessions: read-only
    assert run.contact_sheet()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run.missing("hypotheses.z_star", "z*") is None
    assert run.missing("methods.groupdro", "GroupDRO") == "This run has no GroupDRO because its `groupdro` stage was not run."
    assert run.missing("methods.nonsense", "nonsense") == "This run has no nonsense: no stage of this engine writes `methods.nonsense`."


def test_run_view_explains_missing_files(runs_dir: Path) -> None:
    run = RunView.open(str(runs_dir), "tiny-incomplete")
    with pytest.raises(NotComputed, match=r"its `concepts` stage has not finished yet \(the run is running\)"):
        run.concept_scores()
    with pytest.raises(NotComputed, match=r"the pipeline writes it last, and it has not finished yet"):
        run.predictions()
    with pytest.raises(NotComputed, match=r"its `microscope` stage has not finished yet"):
        run.microscope_table("relevance")
    assert run.test_eval()["images"].shape[0] == run.world.sizes["test_eval"]


def test_key_figures_of_a_complete_run(runs_dir: Path) -> None:
    """The Overview, the PNG zip and the report share these figures; a complete run has all of them."""
    figures = key_figures(RunView.open(str(runs_dir), "tiny"))
    assert [f.key for f in figures] == ["accuracy", "groups", "clauses_z_star", "clauses_z_baseline", "tcav", "weights_tcav", "relevance", "swaps"]
    assert all(f.figure is not None and f.missing is None and f.caption for f in figures), [f.missing for f in figures]


def test_report_of_a_complete_run(runs_dir: Path) -> None:
    m = metrics(runs_dir)
    html = export.report_html(RunView.open(str(runs_dir), "tiny"))
    classes = m["world"]["classes"]
    assert escape(summary_sentence(m["hypotheses"]["z_star"], "IG", classes)) in html
    assert escape(summary_sentence(m["hypotheses"]["z_baseline"], "The baseline", classes)) in html
    assert html.count("<figure><h2>") == 8 and "This run has no" not in html
