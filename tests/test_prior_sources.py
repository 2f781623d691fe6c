"""The judgments a run is solved with: where they came from, recorded in the run, joined with what people added
for its world, and re-solving a stored run with them (igcore.prior.sources, igcore.resolve).

The acceptance test of the record: for every world, re-solving a stored run with its own judgments and no edit
gives back exactly its z*, its ranked list and its D′ answers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from igcore import prior as P
from igcore.config import PriorConfig
from igcore.errors import InputError
from igcore.prior import sources
from igcore.resolve import compare, resolve
from igcore.schema import pred_column, proba_column
from igcore.store import RunStore
from igcore.worlds.base import Concept, Vocabulary
from testkit.byod_fixtures import SIMULATED_RATER
from testkit.hypotheses import from_pairs

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["husky", "wolf"]
HASHING = PriorConfig(encoder="hashing")
WORLDS = ("tiny", "waterbirds", "folder")


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary.from_csv(P.SHIPPED_VOCABULARY)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------- where they came from
def test_the_shipped_judgments_say_who_wrote_them(vocab: Vocabulary) -> None:
    judgments = P.load_judgments(HASHING, vocab, CLASSES)
    ratings, pairwise = judgments.provenance.of("ratings"), judgments.provenance.of("pairwise")
    assert [(s.key, s.where, s.rows) for s in ratings] == [("shipped", "assets/judgments/ratings.csv", 192)]
    assert [(s.key, s.where, s.rows) for s in pairwise] == [("shipped", "assets/judgments/pairwise.csv", 54)]
    assert ratings[0].sha256 == _sha(P.SHIPPED_RATINGS) and ratings[0].raters == [f"team_0{i}" for i in range(1, 7)]
    assert (judgments.ratings["source"] == "shipped").all() and judgments.ratings["store_row"].isna().all()
    text = judgments.provenance.describe()
    assert "written by the project's developers as a worked example" in text
    assert "6 answer sets" in text and "people rated" not in text and "6 raters" not in text


def test_a_ratings_file_is_named_with_its_raters(tmp_path: Path, vocab: Vocabulary) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("rater,concept,class,rating\nana,amber_eyes,wolf,5\nbo,snowy_ground,wolf,1\nana,blue_eyes,husky,4\n")
    judgments = P.load_judgments(HASHING.model_copy(update={"judgments": str(path)}), vocab, CLASSES)
    (source,) = judgments.provenance.of("ratings")
    assert (source.key, source.where, source.sha256, source.rows, source.raters) == ("prior.judgments", str(path), _sha(path), 3, ["ana", "bo"])
    assert judgments.pairwise is not None  # the shipped pairwise file still fits this world
    assert "3 ratings by 2 raters (ana, bo) in `mine.csv` (given as prior.judgments)" in judgments.provenance.describe()


def test_the_store_joins_without_counting_a_row_twice(tmp_path: Path, vocab: Vocabulary) -> None:
    """prior.database: what people added for this world joins the files' ratings; a run that read them holds them,
    so joining the store again adds only what came after."""
    store = P.JudgmentsStore(tmp_path / "judgments.sqlite", vocab, CLASSES)
    store.add_rating("ana", "rounded_ears", "wolf", 5)
    run_made = P.load_judgments(HASHING.model_copy(update={"database": store.path}), vocab, CLASSES)
    assert run_made.provenance.store_id == store.store_id
    assert run_made.ratings.iloc[-1][["rater", "source"]].tolist() == ["ana", "prior.database"]
    assert run_made.joined(store).n_added() == 0 and len(run_made.joined(store).ratings) == 193
    store.add_rating("bo", "rounded_ears", "husky", 2)
    later = run_made.joined(store)
    assert later.ratings.iloc[-1][["rater", "source"]].tolist() == ["bo", "added"] and later.n_added() == 1
    assert [s.key for s in later.provenance.sources] == ["shipped", "shipped", "prior.database", "added"]
    assert "1 rating by 1 rater (bo) added on the Prior page that the run did not read" in later.provenance.describe()
    assert "added on the Prior page" not in later.provenance.describe(added=False)
    other = P.JudgmentsStore(store.path, Vocabulary((Concept("fins", "fins", "core"),)), ["fish", "crab"])
    with pytest.raises(InputError, match="another world"):
        run_made.joined(other)


def test_recorded_carried_coefficients_are_used_as_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    """A world no pairwise preference speaks about: the carried shape costs are fitted once, then read from the record."""
    other = Vocabulary((Concept("fins", "fins", "core"), Concept("sand", "sandy ground", "context")))
    first = P.fit_prior(HASHING, P.load_judgments(HASHING, other, ["fish", "crab"]), other, ["fish", "crab"])
    recorded = first.judgments_
    assert recorded.provenance.carried is not None
    monkeypatch.setattr(sources, "_carried_structure", lambda prior: pytest.fail("refitted the shipped judgments"))
    again = P.fit_prior(HASHING, recorded, other, ["fish", "crab"])
    again_coefs, first_coefs = ([getattr(m, f"{name}_") for name in sources.STRUCTURE_COEFS] for m in (again, first))
    assert again_coefs == first_coefs == [getattr(recorded.provenance.carried, name) for name in sources.STRUCTURE_COEFS]
    assert np.array_equal(again.plausibility_, first.plausibility_)


# ---------------------------------------------------------------------------------- recorded in the run
@pytest.mark.parametrize("run_id", WORLDS)
def test_a_run_records_the_judgments_it_was_solved_with(worlds_dir: Path, run_id: str) -> None:
    run = RunStore(worlds_dir).load(run_id)
    judgments = run.judgments()
    vocabulary, classes = run.vocabulary()
    assert judgments.provenance.recorded and judgments.provenance.world == P.vocabulary_fingerprint(vocabulary, classes)
    expected = P.load_judgments(run.config_model().prior, vocabulary, classes)
    pd.testing.assert_frame_equal(judgments.ratings, expected.ratings)
    assert [s.model_dump() for s in judgments.provenance.sources] == [s.model_dump() for s in expected.provenance.sources]
    assert run.metrics["prior"]["judgments"] == judgments.provenance.describe()
    if run_id == "waterbirds":  # its own file, by a simulated rater; no pairwise preference fits: carried over
        assert set(judgments.ratings["rater"]) == {SIMULATED_RATER} and judgments.pairwise is None
        assert judgments.provenance.carried is not None and judgments.provenance.sources[0].key == "prior.judgments"
    if run_id == "folder":
        assert judgments.ratings.empty and judgments.provenance.carried is not None


@pytest.mark.parametrize("run_id", WORLDS)
def test_re_solving_a_run_with_its_own_judgments_reproduces_it(worlds_dir: Path, run_id: str) -> None:
    run = RunStore(worlds_dir).load(run_id)
    out = resolve(run)
    hypotheses = run.metrics["hypotheses"]
    assert out.records == hypotheses["z_star"] and out.z_star.to_dict() == hypotheses["z_star_json"]
    assert out.ranked == hypotheses["ranked"]
    predictions = run.table("predictions")
    _, classes = run.vocabulary()
    stored = predictions[[proba_column("ig_direct", c) for c in classes]].to_numpy()
    assert np.array_equal(out.test_eval_proba.astype(stored.dtype), stored)
    assert np.array_equal(out.test_eval_proba.argmax(1), predictions[pred_column("ig_direct")].to_numpy())
    stored_prior = {k: v for k, v in run.metrics["prior"].items() if k not in ("judgments", "notes")}
    assert json.dumps(out.prior_summary, sort_keys=True) == json.dumps(stored_prior, sort_keys=True)  # the same Prior_M
    change = compare(run, out)
    assert change.same_clauses and change.answers_changed == 0 and change.right_after == change.right_before
    assert set(change.clauses["change"]) <= {"same"}


def test_live_editing_warm_re_solve_equals_a_cold_one(runs_dir: Path) -> None:
    """One added rating, re-solved from the previous search (the Prior page's path), gives a cold re-solve's z*,
    ranked list and D'_eval answers; the run's inputs are read once for both."""
    run = RunStore(runs_dir).load("tiny")
    first = resolve(run)
    judgments = run.judgments()
    added = pd.DataFrame([["me", "snowy_ground", "wolf", 5, "added", pd.NA]], columns=judgments.ratings.columns)
    edited = dataclasses.replace(judgments, ratings=pd.concat([judgments.ratings, added], ignore_index=True))
    warm = resolve(run, edited, warm=first.search)
    cold = resolve(run, edited)
    assert warm.search is first.search and warm.z_star.structure == cold.z_star.structure
    assert [[c["concept"], c["class"]] for r in warm.ranked for c in r["clauses"]] == [
        [c["concept"], c["class"]] for r in cold.ranked for c in r["clauses"]]
    assert np.allclose([r["log_posterior"] for r in warm.ranked], [r["log_posterior"] for r in cold.ranked], atol=1e-2)
    assert np.array_equal(warm.test_eval_proba.argmax(1), cold.test_eval_proba.argmax(1))
    assert warm.prior_summary == cold.prior_summary


def test_an_older_run_reads_its_judgments_afresh(worlds_dir: Path, tmp_path: Path) -> None:
    """A run made before runs recorded their judgments: what its config names is read now, and it says so."""
    root = tmp_path / "runs"
    shutil.copytree(worlds_dir / "waterbirds", root / "waterbirds")
    shutil.rmtree(root / "waterbirds" / "judgments")
    run = RunStore(root).load("waterbirds")
    judgments = run.judgments()
    assert not judgments.provenance.recorded and "made before runs recorded" in judgments.provenance.describe()
    assert resolve(run).records == run.metrics["hypotheses"]["z_star"]  # the file is still there
    manifest = json.loads((root / "waterbirds" / "manifest.json").read_text())
    manifest["config"]["prior"]["judgments"] = str(tmp_path / "gone.csv")
    (root / "waterbirds" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="made before runs recorded their judgments.*gone.csv") as err:
        RunStore(root).load("waterbirds").judgments()
    assert "\n" not in str(err.value)


def test_a_preference_added_for_the_world_replaces_the_carried_costs(tmp_path: Path) -> None:
    other = Vocabulary((Concept("fins", "fins", "core"), Concept("sand", "sandy ground", "context")))
    classes = ["fish", "crab"]
    recorded = P.fit_prior(HASHING, P.load_judgments(HASHING, other, classes), other, classes).judgments_
    store = P.JudgmentsStore(tmp_path / "judgments.sqlite", other, classes)
    assert recorded.joined(store).provenance.carried == recorded.provenance.carried  # nothing added: still carried
    store.add_pairwise("ana", from_pairs([("fins", "fish", 1.0)]), from_pairs([("sand", "fish", 1.0)]), "a")
    joined = recorded.joined(store)
    assert joined.provenance.carried is None and len(joined.pairwise) == 1
    assert "carry over" not in joined.provenance.describe()
    assert P.fit_prior(HASHING, joined, other, classes).pairwise_fit_["n"] == 1
