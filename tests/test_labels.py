"""People's labels of D′ images given z* (igcore.labels): the store under concurrency, its limits, the
agreement with L_M(·|x, z*) against a hand-computed case, and writing the agreement into a run.

Several dashboard servers and threads share one judgments file, so the concurrency checks open real files
and start real threads and processes (a ``forkserver``, as in tests/test_prior_store.py).
"""

from __future__ import annotations

import io
import math
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from igcore.errors import InputError
from igcore.labels import (
    EVERYONE,
    LABEL_COLUMNS,
    Agreement,
    LabelStore,
    agreement,
    compare,
    disagreements,
    image_order,
    lm_proba,
    to_csv,
    write_imitation,
)
from igcore.prior import JudgmentsStore
from igcore.schema import Metrics, pred_column
from igcore.store import RunStore
from igcore.worlds.base import Vocabulary
from testkit.concurrency import run_processes, run_threads

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["husky", "wolf"]


def _open(path: str | Path, run_id: str = "run-1", n: int = 50) -> LabelStore:
    return LabelStore(path, run_id, CLASSES, n)


# ---------------------------------------------------------------------------------- workers
def _label_after_barrier(path: str, barrier: Any, rater: str, n: int) -> None:
    store = _open(path)
    barrier.wait(timeout=60)
    for i in range(n):
        store.add(rater, i, CLASSES[i % 2])


def _same_answer_after_barrier(path: str, barrier: Any, label: str, answer: str) -> None:
    """One person's answer for image 7, at the same moment as the others; whether it was kept goes to file ``answer``."""
    store = _open(path)
    barrier.wait(timeout=60)
    Path(answer).write_text(str(store.add("ana", 7, label)))


# ---------------------------------------------------------------------------------- concurrency
@pytest.mark.parametrize("runner", [run_threads, run_processes], ids=["threads", "processes"])
def test_concurrent_raters_lose_and_duplicate_nothing(tmp_path: Path, runner: Callable) -> None:
    path = str(tmp_path / "judgments.sqlite")
    runner(_label_after_barrier, [(path, f"r{j}", 30) for j in range(4)])
    labels = _open(path).labels()
    assert len(labels) == 120
    assert not labels.duplicated(["rater", "image"]).any()
    for j in range(4):
        mine = labels[labels["rater"] == f"r{j}"]
        assert list(mine["image"]) == list(range(30)) and list(mine["label"]) == [CLASSES[i % 2] for i in range(30)]


@pytest.mark.parametrize("runner", [run_threads, run_processes], ids=["threads", "processes"])
def test_two_answers_for_one_image_at_once_keep_the_first(tmp_path: Path, runner: Callable) -> None:
    path = str(tmp_path / "judgments.sqlite")
    answers = [("husky", tmp_path / "a0"), ("wolf", tmp_path / "a1"), ("wolf", tmp_path / "a2")]
    runner(_same_answer_after_barrier, [(path, label, str(out)) for label, out in answers])
    kept = [label for label, out in answers if out.read_text() == "True"]
    assert len(kept) == 1 and all(out.read_text() in ("True", "False") for _, out in answers)  # one add() was told it stood
    labels = _open(path).labels()
    assert len(labels) == 1 and labels.loc[0, "label"] == kept[0]  # and its answer is the one stored


def test_labels_and_judgments_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "judgments.sqlite"
    vocab = Vocabulary.from_csv(ROOT / "assets" / "snowwolf_vocabulary.csv")
    judgments = JudgmentsStore(path, vocab, CLASSES)
    n_ratings = len(judgments.ratings())
    labels = _open(path)
    barrier = threading.Barrier(2)

    def rate() -> None:
        barrier.wait(timeout=60)
        for i in range(20):
            judgments.add_rating(f"j{i}", "amber_eyes", "wolf", 5)

    def label() -> None:
        barrier.wait(timeout=60)
        for i in range(20):
            labels.add("ana", i, "wolf")

    threads = [threading.Thread(target=rate), threading.Thread(target=label)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(judgments.ratings()) == n_ratings + 20 and len(labels.labels()) == 20
    judgments.reset()  # a reset of the judgments leaves the labels alone
    assert len(labels.labels()) == 20


# ---------------------------------------------------------------------------------- limits
@pytest.mark.parametrize(
    ("rater", "image", "label", "match"),
    [
        ("", 0, "wolf", "rater"),
        ("   ", 0, "wolf", "rater"),
        ("x" * 65, 0, "wolf", "at most 64"),
        ("ana\nbob", 0, "wolf", "line break"),
        ("ana", -1, "wolf", "not a D′_eval image"),
        ("ana", 50, "wolf", "not a D′_eval image"),
        ("ana", 1.5, "wolf", "integer"),
        ("ana", True, "wolf", "integer"),
        ("ana", "3", "wolf", "integer"),
        ("ana", 0, "fox", "unknown class"),
        ("ana", 0, None, "unknown class"),
    ],
)
def test_bad_answers_are_refused(tmp_path: Path, rater: Any, image: Any, label: Any, match: str) -> None:
    store = _open(tmp_path / "j.sqlite")
    with pytest.raises(InputError, match=match):
        store.add(rater, image, label)
    assert store.labels().empty


def test_bad_store_arguments(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="run id"):
        LabelStore(tmp_path / "j.sqlite", "", CLASSES, 5)
    with pytest.raises(InputError, match="two classes"):
        LabelStore(tmp_path / "j.sqlite", "run", ["wolf"], 5)


def test_first_answer_stands_and_runs_are_apart(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    a, b = _open(path, "run-a"), _open(path, "run-b")
    assert a.add(" ana ", 3, "wolf") is True
    assert a.add("ana", 3, "husky") is False  # the same person, the same image: ignored
    assert b.add("ana", 3, "husky") is True
    assert list(a.labels()["label"]) == ["wolf"] and list(b.labels()["label"]) == ["husky"]
    assert list(a.labels()["rater"]) == ["ana"]  # stored stripped
    assert list(a.labels().columns) == list(LABEL_COLUMNS)


def test_next_image_follows_the_seeded_order(tmp_path: Path) -> None:
    store = _open(tmp_path / "j.sqlite", n=6)
    order = list(image_order(6, seed=3))
    assert sorted(order) == list(range(6)) and order == list(image_order(6, seed=3))
    seen = []
    while (i := store.next_image("ana", 3)) is not None:
        seen.append(i)
        store.add("ana", i, "wolf")
    assert seen == order
    assert store.next_image("bob", 3) == order[0]  # another person starts at the beginning


# ---------------------------------------------------------------------------------- agreement maths
def _wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval, written out (Wilson 1927)."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_agreement_against_a_hand_computed_case() -> None:
    # L_M's answers on 5 images: wolf, husky, wolf, wolf, husky
    proba = np.array([[0.2, 0.8], [0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.55, 0.45]])
    labels = pd.DataFrame(
        [["r", 0, "ana", "wolf", "t"], ["r", 1, "ana", "husky", "t"], ["r", 2, "ana", "husky", "t"], ["r", 3, "ana", "wolf", "t"],
         ["r", 0, "bob", "husky", "t"], ["r", 4, "bob", "husky", "t"]],
        columns=list(LABEL_COLUMNS),
    )
    rows = {a.rater: a for a in agreement(labels, proba, CLASSES)}
    assert list(rows) == ["ana", "bob", EVERYONE]
    for who, k, n in (("ana", 3, 4), ("bob", 1, 2), (EVERYONE, 4, 6)):
        a = rows[who]
        low, high = _wilson(k, n)
        assert (a.agree, a.n) == (k, n) and a.rate == pytest.approx(k / n)
        assert a.ci_low == pytest.approx(low, abs=1e-9) and a.ci_high == pytest.approx(high, abs=1e-9)
    differ = disagreements(labels, proba, CLASSES)
    assert differ[["image", "rater", "label", "lm_label"]].values.tolist() == [[2, "ana", "husky", "wolf"], [0, "bob", "husky", "wolf"]]
    assert differ["lm_p_label"].tolist() == pytest.approx([0.4, 0.2])
    assert agreement(labels.iloc[:0], proba, CLASSES) == [Agreement(EVERYONE, 0, 0, None, None, None)]


def test_compare_refuses_labels_l_m_did_not_answer() -> None:
    proba = np.array([[0.2, 0.8]])
    labels = pd.DataFrame([["r", 3, "ana", "wolf", "t"]], columns=list(LABEL_COLUMNS))
    with pytest.raises(InputError, match="image 3"):
        compare(labels, proba, CLASSES)


def test_csv_export_round_trips(tmp_path: Path) -> None:
    store = _open(tmp_path / "j.sqlite")
    store.add("ana, the \"rater\"", 4, "wolf")
    store.add("bob", 2, "husky")
    back = pd.read_csv(io.BytesIO(to_csv(store.labels())))
    assert list(back.columns) == list(LABEL_COLUMNS)
    assert back["rater"].tolist() == ['ana, the "rater"', "bob"] and back["image"].tolist() == [4, 2]


# ---------------------------------------------------------------------------------- into the run
def test_write_imitation_into_a_run(runs_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    shutil.copytree(runs_dir / "tiny", root / "tiny")
    run = RunStore(root).load("tiny")
    proba = lm_proba(run)
    # L_M(·|x, z*) is what the ig stage evaluated as ig_direct
    predictions = run.table("predictions")
    assert (proba.argmax(1) == predictions[pred_column("ig_direct")].to_numpy()).all()

    store = LabelStore(root / "judgments.sqlite", "tiny", run.vocabulary()[1], len(proba))
    classes = run.vocabulary()[1]
    answers = proba.argmax(1)
    for i in range(8):  # ana agrees with L_M on 6 of 8, bob on 1 of 2
        store.add("ana", i, classes[answers[i] if i < 6 else 1 - answers[i]])
    store.add("bob", 0, classes[answers[0]])
    store.add("bob", 1, classes[1 - answers[1]])
    section = write_imitation(run, store.labels())
    assert section["overall"]["agree"] == 7 and section["overall"]["n"] == 10
    assert section["by_rater"]["ana"]["agree"] == 6 and section["by_rater"]["bob"]["n"] == 2
    assert section["n_raters"] == 2 and section["n_images"] == 8
    low, high = _wilson(7, 10)
    assert section["overall"]["ci_low"] == pytest.approx(low) and section["overall"]["ci_high"] == pytest.approx(high)

    stored = run.metrics["imitation"]
    assert stored == section
    assert Metrics.model_validate(run.metrics).imitation == section
    table = run.table("answers", "labels")
    assert len(table) == 10 and int(table["agree"].sum()) == 7
    assert set(table.columns) >= {"image", "rater", "label", "lm_label", "lm_p_label", "agree", "created"}
    # a second write keeps the first answers as labels.v1 and replaces the metrics
    store.add("cy", 5, classes[answers[5]])
    write_imitation(run, store.labels())
    assert run.metrics["imitation"]["n_labels"] == 11 and len(run.table("answers", "labels")) == 11
    assert (run.path / "labels.v1" / "tables" / "answers.parquet").is_file()
    assert run.metrics["hypotheses"] == RunStore(runs_dir).load("tiny").metrics["hypotheses"]  # nothing else touched


def test_write_imitation_refuses_nothing_or_another_run(runs_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    shutil.copytree(runs_dir / "tiny", root / "tiny")
    run = RunStore(root).load("tiny")
    store = LabelStore(root / "judgments.sqlite", "other", ["husky", "wolf"], 10)
    with pytest.raises(InputError, match="no labels"):
        write_imitation(run, store.labels())
    store.add("ana", 1, "wolf")
    with pytest.raises(InputError, match="not all for run"):
        write_imitation(run, store.labels())
    assert "imitation" not in run.metrics
