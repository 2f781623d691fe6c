"""AppTest tests of the Prior page (its judgments and where they came from, runs of two worlds side by side, the
"Clauses nobody has rated" section, re-solving, resets and backups) and of the "Label with z*" page: a simulated
person rates a batch of clauses in one form, resets and restores; another labels images, the app is opened
afresh (a reload: a new session, nothing kept but the URL) and nothing is lost, and the agreement the page shows
is the one igcore.labels computes.
"""

from __future__ import annotations

import json
import shutil
from html import escape
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import export
from dashboard.components.judgments import accuracy_delta, change_summary, reset_sentence, stop_status
from dashboard.run_view import RunView
from igcore.labels import LabelStore, agreement, image_order, lm_proba
from igcore.prior import Judgments, JudgmentsStore
from igcore.prior.elicit import DEFAULT_BATCH, STOP_WINDOW, stopping_signal
from igcore.resolve import CHANGE_COLUMNS, Comparison, resolve
from igcore.store import RunStore
from testkit.apptest import all_text, assert_clean
from testkit.byod_fixtures import SIMULATED_RATER
from testkit.hypotheses import from_pairs

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "dashboard" / "app.py"
TIMEOUT = 120


def open_app(page: str, params: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params.update(params or {})
    at.switch_page(f"app_pages/{page}.py")
    return at.run()


def progress_texts(at: AppTest) -> list[str]:
    return [json.loads(p.proto.text) if p.proto.text.startswith('"') else p.proto.text for p in at.get("progress")]


def judgments(root: Path, run_id: str = "tiny") -> JudgmentsStore:
    """The dashboard's judgments store of ``root``, for the world of run ``run_id``."""
    run = RunStore(root).load(run_id)
    vocabulary, classes = run.vocabulary()
    return JudgmentsStore(root / "judgments.sqlite", vocabulary, classes)


def own(root: Path, run_id: str = "tiny") -> Judgments:
    """The judgments run ``run_id`` was solved with (recorded in it)."""
    return RunStore(root).load(run_id).judgments()


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def question_radios(at: AppTest) -> list:
    return [r for r in at.radio if str(r.key).startswith("w_elicit|")]


# ---------------------------------------------------------------------------------- the Prior page
def test_unrated_clauses_section(fresh_runs_dir: Path) -> None:
    at = open_app("prior")
    assert_clean(at)
    text = all_text(at)
    assert "Clauses nobody has rated" in text
    assert "written by the project's developers as a worked example" in text
    assert "keeps a timestamped backup" in text
    ratings = own(fresh_runs_dir).ratings
    assert judgments(fresh_runs_dir).ratings().empty  # nobody added any: the page shows the run's own
    assert metrics(at)["Ratings"] == str(len(ratings)) and metrics(at)["Added on the Prior page"] == "0"
    vocabulary, classes = RunStore(fresh_runs_dir).load("tiny").vocabulary()
    n_total = sum(c.kind != "discovered" for c in vocabulary.concepts) * len(classes)  # nobody is asked about unnamed ones
    n_rated = ratings[["concept", "class"]].drop_duplicates().shape[0]
    assert f"{n_rated} of {n_total} clauses rated" in progress_texts(at)
    radios = question_radios(at)
    assert len(radios) == min(DEFAULT_BATCH, n_total - n_rated)
    # the history starts from the run's own z*, which the page re-solves to exactly
    log = judgments(fresh_runs_dir).z_star_log("tiny")
    stored = {(c["concept"], c["class"]) for c in RunStore(fresh_runs_dir).load("tiny").metrics["hypotheses"]["z_star"]}
    assert log == [(len(ratings), frozenset(stored))]
    assert any("z* is logged after each set of ratings" in str(c.value) for c in at.caption)


def test_rate_a_batch_in_one_form(fresh_runs_dir: Path) -> None:
    store = judgments(fresh_runs_dir)
    n_own = len(own(fresh_runs_dir).ratings)
    at = open_app("prior")
    radios = question_radios(at)
    asked = [tuple(r.key.split("|")[1:]) for r in radios]
    radios[0].set_value(5)
    radios[1].set_value(1)  # the rest stay "skip"
    at.text_input(key="w_elicit_rater").input("ana")
    [b for b in at.button if b.label.startswith("Save these ratings")][0].click().run()
    assert_clean(at)
    added = store.ratings()
    assert added[["rater", "concept", "class", "rating"]].values.tolist() == [["ana", *asked[0], 5], ["ana", *asked[1], 1]]
    assert any("Saved 2 ratings by ana" in str(s.value) for s in at.success)
    assert metrics(at)["Ratings"] == str(n_own + 2) and metrics(at)["Added on the Prior page"] == "2"
    # z* re-solved on the run's own judgments plus the two, and logged after the batch
    log = store.z_star_log("tiny")
    assert [n for n, _ in log] == [n_own, n_own + 2]
    run = RunStore(fresh_runs_dir).load("tiny")
    assert log[-1][1] == resolve(run, run.judgments().joined(store)).z_star.structure
    # the next batch asks about other clauses: neither the rated ones nor the skipped ones
    next_asked = {tuple(r.key.split("|")[1:]) for r in question_radios(at)}
    assert not next_asked & set(asked)


def test_a_batch_needs_a_name(fresh_runs_dir: Path) -> None:
    store = judgments(fresh_runs_dir)
    at = open_app("prior")
    question_radios(at)[0].set_value(4)
    [b for b in at.button if b.label.startswith("Save these ratings")][0].click().run()
    assert any("tell us your name" in str(e.value) for e in at.error)
    assert store.ratings().empty


def test_reset_returns_to_the_runs_own_judgments_and_keeps_a_backup(fresh_runs_dir: Path) -> None:
    store = judgments(fresh_runs_dir)
    n = len(own(fresh_runs_dir).ratings)
    store.add_rating("ana", "amber_eyes", "wolf", 5)
    store.add_pairwise("ana", from_pairs([("amber_eyes", "wolf", 1.0)]), "[]", "a")
    at = open_app("prior")
    assert int(at.metric[0].value) == n + 1
    # the popover says what the reset removes: the preference too, which the ratings' count leaves out
    assert "This sets aside the 1 rating and 1 pairwise preference stored for this world" in all_text(at)
    at.button(key="w_reset").click().run()
    assert_clean(at)
    assert int(at.metric[0].value) == n and metrics(at)["Added on the Prior page"] == "0"
    assert any("back to the run's own" in str(s.value) for s in at.success)
    assert "Backup #1" in all_text(at)
    at.button(key="w_restore_1").click().run()
    assert_clean(at)
    assert int(at.metric[0].value) == n + 1
    assert any("Backup #1 is restored" in str(s.value) for s in at.success)


@pytest.mark.parametrize(
    ("stored", "added", "says", "never"),
    [
        ((0, 0), (0, 0), "Nobody has added ratings", "sets aside"),
        ((3, 0), (3, 0), "sets aside the 3 ratings stored", "This run read"),
        ((3, 2), (1, 2), "sets aside the 3 ratings and 2 pairwise preferences stored", "preference of them"),
        ((5, 0), (2, 0), "This run read 3 ratings of them", "Nobody"),
        ((0, 1), (0, 1), "sets aside the 1 pairwise preference stored", "rating"),
        ((2, 3), (2, 1), "This run read 2 pairwise preferences of them", "This run read 2 ratings"),
    ],
)
def test_reset_says_what_it_removes(stored: tuple[int, int], added: tuple[int, int], says: str, never: str) -> None:
    """A reset removes every rating and preference stored for the world, including those a run read through
    prior.database (which the page does not count as added, since the run holds them)."""
    sentence = reset_sentence(stored, added)
    assert says in sentence and never not in sentence, sentence


def test_stopping_signal_is_shown(fresh_runs_dir: Path) -> None:
    """A log in which the last ratings left z* as it is: the page says further ratings stopped changing it."""
    store = judgments(fresh_runs_dir)
    n = len(own(fresh_runs_dir).ratings)
    z = resolve(RunStore(fresh_runs_dir).load("tiny")).z_star.structure
    other = {("amber_eyes", "wolf")} if z != {("amber_eyes", "wolf")} else {("blue_eyes", "husky")}
    store.log_z_star("tiny", n - STOP_WINDOW - 3, other)
    store.log_z_star("tiny", n - STOP_WINDOW - 1, z)
    store.log_z_star("tiny", n, z)
    at = open_app("prior")
    assert_clean(at)
    assert any(f"the last {STOP_WINDOW + 1} ratings left its clauses as they were" in str(s.value) for s in at.success), all_text(at)


# ---------------------------------------------------------------------------------- what the page says
S, T = frozenset({("a", "x")}), frozenset({("b", "y")})


@pytest.mark.parametrize(
    ("history", "kind", "says", "never"),
    [
        ([(10, S)], "caption", "z* is logged after each set of ratings", "changed"),
        ([(10, S), (11, S)], "info", "The 1 rating added on the Prior page left z*'s clauses as they were", "changed"),
        ([(10, S), (16, S)], "success", "the 6 ratings added on the Prior page left z*'s clauses as they were", "changed"),
        ([(10, S), (11, T)], "info", "The latest ratings changed z*'s clauses (z*'s clauses changed 1 time since", "ago"),
        ([(10, S), (11, T), (13, T)], "info", "The last 2 ratings left z*'s clauses as they were (z*'s clauses changed 1 time", "ago"),
        ([(10, S), (11, T), (17, T)], "success", "the last 6 ratings left its clauses as they were (z*'s clauses changed 1 time", "ago"),
    ],
)
def test_the_stopping_signal_says_only_what_happened(history: list, kind: str, says: str, never: str) -> None:
    """Issue: before any re-solve the page said "z* changed 1 rating(s) ago (0 change(s) …)" of a z* that never changed."""
    got_kind, sentence = stop_status(stopping_signal(history, window=STOP_WINDOW), len(history))
    assert got_kind == kind and says in sentence and never not in sentence, sentence
    assert "(s)" not in sentence


def _comparison(changes: list[str], answers_changed: int, right: tuple[int, int], n: int = 1500) -> Comparison:
    clauses = pd.DataFrame([("k", "c", 1.0, 1.0, c) for c in changes], columns=list(CHANGE_COLUMNS))
    return Comparison(clauses, n, answers_changed, *right)


def test_a_re_solve_that_changes_nothing_shows_no_change() -> None:
    """Issue: a re-solve that changed no clause and 0 answers was shown with a green up-arrow and "+0.0 pts"."""
    same = _comparison(["same", "weaker"], 0, (1200, 1200))
    assert accuracy_delta(same) is None
    assert change_summary(same) == "z* uses the same clauses as the run's, and L_M reading it gives the same answer on every D′ image."
    moved = _comparison(["same", "added", "removed", "removed"], 3, (1200, 1201))
    assert change_summary(moved) == "z* gained 1 clause and lost 2 clauses, and L_M reading it changes its answer on 3 of 1500 D′ images."
    assert accuracy_delta(moved) == "+0.1 pts" and accuracy_delta(_comparison(["same"], 1, (2000, 1999), n=3000)) == "-0.03 pts"


# ---------------------------------------------------------------------------------- two worlds, one runs folder
@pytest.fixture
def two_worlds(worlds_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the runs of every world (a Snow-and-Wolves run and a Waterbirds-layout run made with its own
    ratings file, among others), read by the dashboard."""
    root = tmp_path / "runs"
    shutil.copytree(worlds_dir, root)
    monkeypatch.setenv("IG_RUNS_DIR", str(root))
    return root


#: A rater name that appears nowhere else (the reports embed plotly.js, whose code has many common words).
RATER = "rater-ana-7"


def prior_page(run_id: str) -> AppTest:
    at = open_app("prior", {"v": "1", "run": run_id})
    assert_clean(at)
    return at


@pytest.mark.parametrize("order", [("waterbirds", "tiny"), ("tiny", "waterbirds")], ids=["waterbirds-first", "tiny-first"])
def test_each_run_opens_on_its_own_judgments_in_either_order(two_worlds: Path, order: tuple[str, str]) -> None:
    """The reported bugs: the Waterbirds run's Prior page opened first showed 0 ratings (and took the Snow-and-Wolves
    run's away); opened second it showed the other world's 192 ratings and crashed (KeyError: 'amber_eyes'). The
    browser test (tests/test_browser_judgments.py) opens them in the first order on a real server."""
    for run_id in order:
        at = prior_page(run_id)
        recorded = own(two_worlds, run_id)
        shown = metrics(at)
        assert shown["Ratings"] == str(len(recorded.ratings)) and shown["Raters"] == str(recorded.ratings["rater"].nunique())
        assert shown["Added on the Prior page"] == "0"
        text = all_text(at)
        assert recorded.provenance.describe() in text and "people rated" not in text
        if run_id == "waterbirds":
            assert f"18 ratings by 1 rater ({SIMULATED_RATER}) in `waterbirds_ratings.csv` (given as prior.judgments)" in text
            assert "team_01" not in text
        else:
            assert "written by the project's developers as a worked example" in text


@pytest.mark.parametrize("run_id", ["waterbirds", "tiny"])
def test_pages_and_report_name_the_runs_own_sources(two_worlds: Path, run_id: str) -> None:
    """Overview, Hypotheses and the report say where this run's judgments came from (its recorded provenance), not
    the shipped files for a run made with its own."""
    sources = own(two_worlds, run_id).provenance.describe(added=False)
    for page in ("overview", "hypotheses"):
        at = open_app(page, {"v": "1", "run": run_id})
        assert_clean(at)
        assert sources in all_text(at), page
    assert escape(sources) in export.report_html(RunView.open(str(two_worlds), run_id))
    if run_id == "waterbirds":
        assert "waterbirds_ratings.csv" in sources and "192 ratings" not in sources


def test_an_older_run_whose_ratings_file_is_gone_reads_as_one_line(two_worlds: Path) -> None:
    """A run made before runs recorded their judgments, whose ratings file has since gone: a note, no traceback."""
    shutil.rmtree(two_worlds / "waterbirds" / "judgments")
    manifest = json.loads((two_worlds / "waterbirds" / "manifest.json").read_text())
    manifest["config"]["prior"]["judgments"] = str(two_worlds / "gone.csv")
    (two_worlds / "waterbirds" / "manifest.json").write_text(json.dumps(manifest))
    at = prior_page("waterbirds")
    assert any("made before runs recorded their judgments" in str(i.value) and "gone.csv" in str(i.value) for i in at.info)
    hypotheses = open_app("hypotheses", {"v": "1", "run": "waterbirds"})
    assert_clean(hypotheses)
    assert "made before runs recorded their judgments" in all_text(hypotheses)
    assert "made before runs recorded their judgments" in export.report_html(RunView.open(str(two_worlds), "waterbirds"))


def test_a_rating_added_for_one_world_stays_in_that_world(two_worlds: Path) -> None:
    at = prior_page("waterbirds")
    z_star = RunStore(two_worlds).load("waterbirds").metrics["hypotheses"]["z_star"]
    clause = max(z_star, key=lambda c: c["weight"])  # a rating that agrees with z*: its strongest clause, rated 5
    at.text_input(key="w_rater").input(RATER)
    at.selectbox(key="w_concept").set_value(clause["concept"])
    at.selectbox(key="w_class").set_value(clause["class"])
    at.number_input(key="w_rating").set_value(5)
    [b for b in at.button if b.label == "Add rating"][0].click().run()
    assert_clean(at)
    assert metrics(at)["Added on the Prior page"] == "1" and metrics(at)["Ratings"] == str(len(own(two_worlds, "waterbirds").ratings) + 1)
    # re-solving on the run's own ratings plus the agreeing one keeps the clause
    [b for b in at.button if "Re-solve" in b.label][0].click().run()
    assert_clean(at)
    (changes,) = [d.value for d in at.dataframe if "change" in d.value.columns]
    text = RunStore(two_worlds).load("waterbirds").vocabulary()[0][clause["concept"]].text
    kept = changes[changes["clause"] == f"{text} ⇒ {clause['class']}"]
    assert len(kept) == 1 and kept["change"].iloc[0] in ("same", "stronger", "weaker") and kept["weight after"].iloc[0] > 0
    # never on the other world's page or in its report; in this run's report
    other = prior_page("tiny")
    assert metrics(other)["Added on the Prior page"] == "0" and RATER not in all_text(other)
    assert RATER not in export.report_html(RunView.open(str(two_worlds), "tiny"))
    report = export.report_html(RunView.open(str(two_worlds), "waterbirds"))
    assert "Ratings added for this world on the Prior page" in report and f"<td>{RATER}</td><td>{escape(text)}</td>" in report


def test_re_solving_without_an_edit_changes_nothing_and_says_so(two_worlds: Path) -> None:
    """A world without pairwise judgments: the page's Prior_M is the run's (carried shape costs included), so the re-solve
    gives back the run's z* and every answer; the page says so, with no arrow for a change that did not happen."""
    at = prior_page("waterbirds")
    [b for b in at.button if "Re-solve" in b.label][0].click().run()
    assert_clean(at)
    text = all_text(at)
    assert "z* uses the same clauses as the run's, and L_M reading it gives the same answer on every D′ image." in text
    shown = {m.label: m for m in at.metric}
    assert shown["D′ answers that changed"].value.startswith("0 of ")
    assert "after (unchanged)" in shown and shown["after (unchanged)"].proto.delta == ""
    assert not [c for c in at.caption if "changed" in str(c.value) and "z*" in str(c.value)]


# ---------------------------------------------------------------------------------- Label with z*
def _label(at: AppTest, n: int) -> None:
    for i in range(n):
        buttons = [b for b in at.button if str(b.key).startswith("w_label_") and b.key not in ("w_label_write",)]
        buttons[i % len(buttons)].click().run()
        assert_clean(at)


def test_label_reload_and_agreement(fresh_runs_dir: Path) -> None:
    at = open_app("label")
    assert_clean(at)
    run = RunStore(fresh_runs_dir).load("tiny")
    z_text = run.metrics["hypotheses"]["z_star_text"]
    assert "Type your name to start" in all_text(at)
    at.text_input(key="w_label_rater").input("ana").run()
    assert z_text in all_text(at)  # the field guide, and no model's answer
    assert at.query_params["rater"] == ["ana"] or at.query_params["rater"] == "ana"
    _label(at, 5)
    n_images = len(run.table("split_test_eval"))
    assert f"ana: 5 of {n_images} images labelled" in progress_texts(at)

    # reload: a new session with only the URL
    again = open_app("label", {"rater": "ana"})
    assert_clean(again)
    assert again.text_input(key="w_label_rater").value == "ana"
    assert f"ana: 5 of {n_images} images labelled" in progress_texts(again)
    store = LabelStore(fresh_runs_dir / "judgments.sqlite", "tiny", run.vocabulary()[1], n_images)
    labels = store.labels()
    assert len(labels) == 5 and list(labels["image"]) == [int(i) for i in image_order(n_images, int(run.manifest["seed"]))[:5]]
    # the agreement shown is the one igcore.labels computes
    a = {x.rater: x for x in agreement(labels, lm_proba(run), run.vocabulary()[1])}["ana"]
    text = all_text(again)
    assert f"**{a.agree} of {a.n}** images: **{100 * a.rate:.1f}%**" in text
    assert f"(95% interval {100 * a.ci_low:.1f}–{100 * a.ci_high:.1f}%)" in text

    # write it into the run; the CSV download is offered
    again.button(key="w_label_write").click().run()
    assert_clean(again)
    stored = RunStore(fresh_runs_dir).load("tiny").metrics["imitation"]
    assert stored["overall"]["agree"] == a.agree and stored["overall"]["n"] == 5
    assert any("Written into run tiny" in str(s.value) for s in again.success)
    assert f"{a.agree} of 5 labels by 1 person agree with L_M" in all_text(again)


def test_label_bad_name_from_the_url(fresh_runs_dir: Path) -> None:
    at = open_app("label", {"rater": "x" * 80})
    assert not at.exception
    assert any("at most 64" in str(e.value) for e in at.error)
    assert not [b for b in at.button if str(b.key).startswith("w_label_") and b.key != "w_label_write"]


def test_pages_on_an_incomplete_run(runs_dir: Path) -> None:
    """The Prior page needs only the world (its unrated-clauses section says what it waits for); Label needs z*."""
    at = open_app("prior", {"v": "1", "run": "tiny-incomplete"})
    assert_clean(at)
    assert any("`concepts` stage writes (it has not finished yet)" in str(c.value) for c in at.caption)
    assert not [i.value for i in at.info if "This run has no" in str(i.value)]
    at = open_app("label", {"v": "1", "run": "tiny-incomplete"})
    assert_clean(at)
    assert any("`ig` stage has not finished" in str(i.value) for i in at.info), [i.value for i in at.info]
