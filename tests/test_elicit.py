"""Which unrated clause to ask about next (igcore.prior.elicit), the stopping signal, and the judgments
store's parts behind them: batches of ratings in one transaction, the z* log and its epochs.

The score is checked against what it approximates: every unrated clause of a small synthetic world is
rated 1 and 5 by a probe rater, Prior_M refitted and z* re-solved exactly, and the predicted changes of
z*'s clause set are compared with the real ones.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from igcore.errors import InputError
from igcore.prior import FlatPrior, JudgmentsStore, PriorModel
from igcore.prior.elicit import (
    ORDER_COLUMNS,
    StopSignal,
    answer_cost_changes,
    question_order,
    stopping_signal,
    support_of,
)
from igcore.prior.store import SCHEMA_VERSION
from igcore.search import HypothesisSearch
from igcore.worlds.base import Concept, Vocabulary

CLASSES = ["husky", "wolf"]
VOCAB = Vocabulary((
    Concept("amber_eyes", "amber eyes", "core"),
    Concept("blue_eyes", "ice-blue eyes", "core"),
    Concept("pointed_ears", "large pointed ears", "core"),
    Concept("curled_tail", "a tail curled up over the back", "core"),
    Concept("snowy_ground", "snowy ground", "context"),
    Concept("bright_light", "bright sunlight", "distractor"),
))
#: P(concept present | husky), P(concept present | wolf)
PRESENT = {"amber_eyes": (0.15, 0.85), "blue_eyes": (0.8, 0.2), "pointed_ears": (0.4, 0.65),
           "curled_tail": (0.7, 0.3), "snowy_ground": (0.05, 0.95), "bright_light": (0.5, 0.5)}
#: amber eyes, the strongest feature, is left unrated: z* uses it on the data's word alone
RATED = pd.DataFrame(
    [[r, k, c, v] for r in ("a", "b", "c") for k, c, v in (
        ("blue_eyes", "husky", 5), ("blue_eyes", "wolf", 1), ("snowy_ground", "wolf", 1), ("snowy_ground", "husky", 1))],
    columns=["rater", "concept", "class", "rating"],
)


def world(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    present = np.stack([rng.random(n) < np.where(y == 1, PRESENT[c.id][1], PRESENT[c.id][0]) for c in VOCAB.concepts], 1)
    scores = np.clip(0.1 + 0.8 * present + rng.normal(0, 0.08, present.shape), 0, 1)
    return scores, y


def solve(ratings: pd.DataFrame, scores: np.ndarray, y: np.ndarray, **prior: float) -> HypothesisSearch:
    model = PriorModel(encoder="hashing", fit_pairwise=False, **prior).fit(ratings, VOCAB, CLASSES)
    return HypothesisSearch(model, beam_width=4, n_ranked=8, device="cpu").fit(scores, y, VOCAB, CLASSES)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return world()


@pytest.fixture(scope="module")
def solved(data: tuple[np.ndarray, np.ndarray]) -> HypothesisSearch:
    return solve(RATED, *data)


@pytest.fixture(scope="module")
def order(solved: HypothesisSearch, data: tuple[np.ndarray, np.ndarray]) -> pd.DataFrame:
    return question_order(solved, *data, RATED)


# ---------------------------------------------------------------------------------- the order
def test_lists_exactly_the_unrated_clauses_best_first(order: pd.DataFrame) -> None:
    assert list(order.columns) == list(ORDER_COLUMNS)
    rated = set(zip(RATED["concept"], RATED["class"], strict=True))
    listed = set(zip(order["concept"], order["class"], strict=True))
    assert listed == {(c.id, k) for c in VOCAB.concepts for k in CLASSES} - rated
    assert order["flip_probability"].is_monotonic_decreasing
    assert ((order["flip_probability"] >= 0) & (order["flip_probability"] <= 1)).all()
    assert (order["rating_sd"] > 0).all()


@pytest.mark.parametrize("n_rated", [0, 2, len(RATED)])
def test_one_more_rating_is_prior_m_refitted(n_rated: int) -> None:
    """The closed-form update (text model, shrinkage, calibration) equals refitting Prior_M with the rating."""
    ratings = RATED.iloc[:n_rated]
    prior = PriorModel(encoder="hashing", fit_pairwise=False).fit(ratings, VOCAB, CLASSES)
    unrated, deltas, _ = answer_cost_changes(prior, ratings)
    rated = {(VOCAB.index(c), CLASSES.index(k)) for c, k in zip(ratings["concept"], ratings["class"], strict=True)}
    # clause j = concept * C + class, in the order of Prior_M's (K, C) tables
    assert list(unrated) == [k * len(CLASSES) + c for k in range(len(VOCAB)) for c in range(len(CLASSES)) if (k, c) not in rated]
    assert len(unrated) == {0: 12, 2: 10, len(RATED): 8}[n_rated]
    cost = prior.strength * -np.log(prior.plausibility_.reshape(-1))
    for u, j in enumerate(unrated):
        for a in (1, 3, 5):
            more = pd.concat([ratings, pd.DataFrame([["new", VOCAB.concepts[j // 2].id, CLASSES[j % 2], a]], columns=RATED.columns)])
            refit = PriorModel(encoder="hashing", fit_pairwise=False).fit(more, VOCAB, CLASSES)
            real = refit.strength * -np.log(refit.plausibility_.reshape(-1)) - cost
            # sklearn stops its calibration fit at tol 1e-4; the closed form is exact
            np.testing.assert_allclose(deltas[u, a - 1], real, atol=0.2)


def test_the_fast_test_predicts_exact_re_solves(solved: HypothesisSearch, order: pd.DataFrame, data: tuple[np.ndarray, np.ndarray]) -> None:
    """Rate each unrated clause 1 and 5, refit, re-solve: does z*'s clause set change where predicted?"""
    base = solved.z_star_.structure
    outcomes = []
    for rec in order.to_dict("records"):
        for value in (1, 5):
            probe = pd.concat([RATED, pd.DataFrame([["probe", rec["concept"], rec["class"], value]], columns=RATED.columns)])
            changed = solve(probe, *data).z_star_.structure != base
            predicted = value in rec["flip_answers"]
            outcomes.append((rec["concept"], rec["class"], value, predicted, changed))
    df = pd.DataFrame(outcomes, columns=["concept", "class", "rating", "predicted", "changed"])
    assert df["changed"].any(), "the world must have clauses whose rating changes z*"
    assert (df["predicted"] == df["changed"]).mean() >= 0.9, df
    assert df.loc[df["changed"], "predicted"].all(), df  # every change of z* was foreseen
    # the clauses whose rating changes z* come first
    changes = df.groupby(["concept", "class"], sort=False)["changed"].any()
    ranked = [changes[(k, c)] for k, c in zip(order["concept"], order["class"], strict=True)]
    n = int(sum(ranked))
    assert sum(ranked[:n]) >= n - 1, (ranked, order)


def test_a_clause_of_z_star_is_asked_before_an_irrelevant_one(order: pd.DataFrame) -> None:
    in_z = order[order["in_z_star"]]
    assert len(in_z), "z* uses an unrated clause in this world (amber eyes)"
    noise = order[order["concept"] == "bright_light"]
    assert in_z.index.max() < noise.index.min()
    assert (noise["flip_probability"] < 0.05).all()
    # leaving z* takes a low rating
    assert all(1 in answers for answers in in_z["flip_answers"])


def test_strength_zero_means_no_answer_matters(data: tuple[np.ndarray, np.ndarray]) -> None:
    table = question_order(solve(RATED, *data, strength=0.0), *data, RATED)
    assert (table["flip_probability"] == 0).all()


def test_needs_a_learned_prior(data: tuple[np.ndarray, np.ndarray]) -> None:
    flat = HypothesisSearch(FlatPrior(), beam_width=2, n_ranked=4, device="cpu").fit(*data, VOCAB, CLASSES)
    with pytest.raises(TypeError, match="PriorModel"):
        question_order(flat, *data)


def test_no_ratings_at_all(data: tuple[np.ndarray, np.ndarray]) -> None:
    """Cold start: every clause unrated, every guess the same. Prior_M's first rating sets every clause's
    text rating to that value, so every first question has the same effect: the score says so."""
    empty = RATED.iloc[:0]
    table = question_order(solve(empty, *data), *data, empty)
    assert len(table) == len(VOCAB) * len(CLASSES)
    assert table["predicted_rating"].nunique() == 1
    assert table["flip_probability"].nunique() == 1 and table["flip_answers"].map(tuple).nunique() == 1
    assert table["flip_probability"].iloc[0] > 0


def test_bad_scores_are_one_line(solved: HypothesisSearch, data: tuple[np.ndarray, np.ndarray]) -> None:
    with pytest.raises(InputError, match="shape"):
        question_order(solved, data[0][:, :3], data[1])
    with pytest.raises(InputError, match="labels"):
        question_order(solved, data[0], data[1][:10])


# ---------------------------------------------------------------------------------- stopping signal
A, B = {("amber_eyes", "wolf")}, {("amber_eyes", "wolf"), ("blue_eyes", "husky")}


@pytest.mark.parametrize(
    ("history", "window", "expected"),
    [
        ([], 5, StopSignal(0, 0, 0, 5, False)),
        ([(0, A)], 5, StopSignal(0, 0, 0, 5, False)),
        ([(0, A), (3, A), (9, A)], 5, StopSignal(9, 9, 0, 5, True)),
        ([(0, A), (2, A), (5, B), (7, B), (12, B)], 5, StopSignal(12, 7, 1, 5, True)),
        ([(0, A), (2, A), (5, B), (7, B), (12, B)], 8, StopSignal(12, 7, 1, 8, False)),
        ([(0, A), (5, B), (6, A), (9, A)], 3, StopSignal(9, 3, 2, 3, True)),
        ([(0, A), (5, B), (6, A), (9, A)], 4, StopSignal(9, 3, 2, 4, False)),
    ],
)
def test_stopping_signal(history: list, window: int, expected: StopSignal) -> None:
    assert stopping_signal(history, window) == expected


def test_stopping_signal_refuses_a_shuffled_history() -> None:
    with pytest.raises(ValueError, match="order"):
        stopping_signal([(5, A), (3, A)])
    with pytest.raises(ValueError, match="window"):
        stopping_signal([(0, A)], window=0)


def test_support_of() -> None:
    from testkit.hypotheses import from_pairs

    assert support_of(from_pairs([("amber_eyes", "wolf", 2.0)])) == frozenset(A)
    assert support_of([["amber_eyes", "wolf"]]) == frozenset(A)


# ---------------------------------------------------------------------------------- the store
def _store(path: Path | str) -> JudgmentsStore:
    return JudgmentsStore(path, VOCAB, CLASSES)


def test_a_batch_of_ratings_is_one_transaction(tmp_path: Path) -> None:
    store = _store(tmp_path / "j.sqlite")
    ids = store.add_ratings("ana", [("amber_eyes", "wolf", 5), ("snowy_ground", "wolf", 1)])
    assert len(ids) == 2 and list(store.ratings()["rating"]) == [5, 1]
    for bad in ([("amber_eyes", "wolf", 5), ("amber_eyes", "wolf", 4)],  # the same clause twice
                [("amber_eyes", "wolf", 5), ("no_such", "wolf", 4)],
                [("amber_eyes", "wolf", 5), ("blue_eyes", "husky", 9)]):
        with pytest.raises(InputError):
            store.add_ratings("ana", bad)
    with pytest.raises(InputError, match="rater"):
        store.add_ratings("x" * 65, [("amber_eyes", "wolf", 5)])
    assert len(store.ratings()) == 2  # nothing of a refused batch was saved


def test_z_star_log_starts_afresh_after_reset_and_restore(tmp_path: Path) -> None:
    store = _store(tmp_path / "j.sqlite")
    store.log_z_star("run-1", 0, A)
    store.log_z_star("run-1", 2, B)
    store.log_z_star("run-2", 0, B)
    assert store.z_star_log("run-1") == [(0, frozenset(A)), (2, frozenset(B))]
    assert store.z_star_log("run-2") == [(0, frozenset(B))]
    store.add_rating("ana", "amber_eyes", "wolf", 5)
    backup = store.reset()
    assert store.z_star_log("run-1") == []
    store.log_z_star("run-1", 0, A)
    store.restore(backup)
    assert store.z_star_log("run-1") == []
    assert len(store.ratings()) == 1


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("", 0, A), "run id"),
        (("r" * 201, 0, A), "run id"),
        (("run\n1", 0, A), "run id"),
        (("run-1", -1, A), "n_ratings"),
        (("run-1", 1.5, A), "n_ratings"),
        (("run-1", 0, {("no_such", "wolf")}), "unknown concept"),
        (("run-1", 0, {("amber_eyes", "fox")}), "unknown class"),
    ],
)
def test_z_star_log_limits(tmp_path: Path, args: tuple, match: str) -> None:
    store = _store(tmp_path / "j.sqlite")
    with pytest.raises(InputError, match=match):
        store.log_z_star(*args)
    with sqlite3.connect(tmp_path / "j.sqlite") as conn:  # nothing was logged, under any run id
        assert conn.execute("SELECT COUNT(*) FROM zstar_log").fetchone() == (0,)


def test_concurrent_logs_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    _store(path)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def log(j: int) -> None:
        try:
            store = _store(path)
            barrier.wait(timeout=60)
            for i in range(10):
                store.log_z_star("run", 10 * j + i, A if i % 2 else B)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=log, args=(j,)) for j in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert sorted(n for n, _ in _store(path).z_star_log("run")) == list(range(40))


def test_a_version_2_file_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:  # what a version-2 store wrote: no z* log
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('schema', '2'), ('seeded', 'x')")
        conn.execute("""CREATE TABLE ratings (id INTEGER PRIMARY KEY AUTOINCREMENT, rater TEXT NOT NULL, concept TEXT NOT NULL,
                        class TEXT NOT NULL, rating INTEGER NOT NULL, source TEXT NOT NULL, created TEXT NOT NULL)""")
        conn.execute("INSERT INTO ratings (rater, concept, class, rating, source, created) VALUES ('old', 'amber_eyes', 'wolf', 4, 'user', 'x')")
    store = _store(path)
    assert list(store.ratings()["rater"]) == ["old"]
    store.log_z_star("run", 1, A)
    assert store.z_star_log("run") == [(1, frozenset(A))]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == (str(SCHEMA_VERSION),)


def test_z_star_log_is_read_in_the_order_of_the_ratings_it_was_solved_on(tmp_path: Path) -> None:
    """Two sessions re-solving at once can log out of order (one on a count read before the other's rating):
    the log reads in the order of the counts, so the stopping signal gets a history it accepts."""
    store = _store(tmp_path / "j.sqlite")
    store.log_z_star("run", 5, A)
    store.log_z_star("run", 4, A)  # a session that read the ratings before the fifth was committed
    store.log_z_star("run", 6, B)
    log = store.z_star_log("run")
    assert [n for n, _ in log] == [4, 5, 6]
    assert stopping_signal(log, window=1).changes == 1


def test_the_benchmark_runs_the_stages_that_write_what_it_reads() -> None:
    """bench_elicit's runs read ``tensors/concept_scores``: its stage list holds that file's writer and every
    requirement (the concepts stage once wrote the scores; since the vocabulary stage does, the bench's runs lacked them)."""
    from bench.bench_elicit import CASE_STAGES
    from igcore.config import load_config
    from igcore.stages import file_writer, select_stages

    writer = file_writer("tensors/concept_scores.safetensors")
    assert writer is not None and writer.name in CASE_STAGES
    assert [s.name for s in select_stages(load_config(None, []), CASE_STAGES)] == list(CASE_STAGES)

