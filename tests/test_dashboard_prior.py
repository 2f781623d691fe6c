"""AppTest tests of the Prior page's "Clauses nobody has rated" section, its backups, and the "Label with z*"
page: a simulated person rates a batch of clauses in one form, resets and restores; another labels images,
the app is opened afresh (a reload: a new session, nothing kept but the URL) and nothing is lost, and the
agreement the page shows is the one igcore.labels computes.
"""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from igcore.ig import resolve
from igcore.labels import LabelStore, agreement, image_order, lm_proba
from igcore.prior import JudgmentsStore
from igcore.prior.elicit import DEFAULT_BATCH, STOP_WINDOW
from igcore.store import RunStore
from testkit.apptest import all_text, assert_clean

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


def judgments(root: Path) -> JudgmentsStore:
    run = RunStore(root).load("tiny")
    vocabulary, classes = run.vocabulary()
    return JudgmentsStore(root / "judgments.sqlite", vocabulary, classes)


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
    store = judgments(fresh_runs_dir)
    ratings = store.ratings()
    vocabulary, classes = RunStore(fresh_runs_dir).load("tiny").vocabulary()
    n_total = len(vocabulary) * len(classes)
    n_rated = ratings[["concept", "class"]].drop_duplicates().shape[0]
    assert f"{n_rated} of {n_total} clauses rated" in progress_texts(at)
    radios = question_radios(at)
    assert len(radios) == min(DEFAULT_BATCH, n_total - n_rated)
    # the page logged z* for the judgments it shows
    log = store.z_star_log("tiny")
    assert len(log) == 1 and log[0][0] == len(ratings)


def test_rate_a_batch_in_one_form(fresh_runs_dir: Path) -> None:
    store = judgments(fresh_runs_dir)
    before = store.ratings()
    at = open_app("prior")
    radios = question_radios(at)
    asked = [tuple(r.key.split("|")[1:]) for r in radios]
    radios[0].set_value(5)
    radios[1].set_value(1)  # the rest stay "skip"
    at.text_input(key="w_elicit_rater").input("ana")
    [b for b in at.button if b.label.startswith("Save these ratings")][0].click().run()
    assert_clean(at)
    after = store.ratings()
    added = after.iloc[len(before):]
    assert added[["rater", "concept", "class", "rating"]].values.tolist() == [["ana", *asked[0], 5], ["ana", *asked[1], 1]]
    assert any("Saved 2 rating(s) by ana" in str(s.value) for s in at.success)
    assert int(at.metric[0].value) == len(after)
    # z* re-solved on the new judgments, and logged after the batch
    log = store.z_star_log("tiny")
    assert [n for n, _ in log] == [len(before), len(after)]
    expected = resolve(RunStore(fresh_runs_dir).load("tiny"), after, store.pairwise()).z_star.structure
    assert log[-1][1] == expected
    # the next batch asks about other clauses: neither the rated ones nor the skipped ones
    next_asked = {tuple(r.key.split("|")[1:]) for r in question_radios(at)}
    assert not next_asked & set(asked)


def test_a_batch_needs_a_name(fresh_runs_dir: Path) -> None:
    store = judgments(fresh_runs_dir)
    n = len(store.ratings())
    at = open_app("prior")
    question_radios(at)[0].set_value(4)
    [b for b in at.button if b.label.startswith("Save these ratings")][0].click().run()
    assert any("tell us your name" in str(e.value) for e in at.error)
    assert len(store.ratings()) == n


def test_reset_keeps_a_backup_that_restores(fresh_runs_dir: Path) -> None:
    store = judgments(fresh_runs_dir)
    n = len(store.ratings())
    store.add_rating("ana", "amber_eyes", "wolf", 5)
    at = open_app("prior")
    assert int(at.metric[0].value) == n + 1
    at.button(key="w_reset").click().run()
    assert_clean(at)
    assert int(at.metric[0].value) == n
    assert "Backup #1" in all_text(at)
    at.button(key="w_restore_1").click().run()
    assert_clean(at)
    assert int(at.metric[0].value) == n + 1
    assert any("Backup #1 is restored" in str(s.value) for s in at.success)


def test_stopping_signal_is_shown(fresh_runs_dir: Path) -> None:
    """A log in which the last answers left z* as it is: the page says further answers stopped changing it."""
    store = judgments(fresh_runs_dir)
    store.reset()  # a new log: earlier tests' visits to the Prior page logged z* in the session's database
    ratings = store.ratings()
    z = resolve(RunStore(fresh_runs_dir).load("tiny"), ratings, store.pairwise()).z_star.structure
    other = {("amber_eyes", "wolf")} if z != {("amber_eyes", "wolf")} else {("blue_eyes", "husky")}
    store.log_z_star("tiny", len(ratings) - STOP_WINDOW - 3, other)
    store.log_z_star("tiny", len(ratings) - STOP_WINDOW - 1, z)
    store.log_z_star("tiny", len(ratings), z)
    at = open_app("prior")
    assert_clean(at)
    assert any(f"the last {STOP_WINDOW + 1} ratings left its clauses as they were" in str(s.value) for s in at.success), all_text(at)


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
