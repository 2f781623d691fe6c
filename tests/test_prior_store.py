"""JudgmentsStore under concurrency and crashes, its input limits, and reset / backup / restore.

Several processes (CLI runs, dashboard servers) and threads share one judgments file, so every check
here opens real files and starts real threads and processes. Process workers come from a ``forkserver``
(a clean single-threaded parent with the engine imported once), so each child is a separate process with
its own SQLite connections, started in milliseconds.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from igcore.errors import InputError
from igcore.prior import SHIPPED_PAIRWISE, SHIPPED_RATINGS, JudgmentsStore, load_judgments_csv, load_pairwise_csv
from igcore.worlds.base import Concept, Vocabulary
from testkit.concurrency import run_processes, run_threads, start_rating_writer
from testkit.hypotheses import from_pairs

ROOT = Path(__file__).resolve().parents[1]
VOCAB_CSV = ROOT / "assets" / "snowwolf_vocabulary.csv"
CLASSES = ["husky", "wolf"]


def _open(path: str | Path) -> JudgmentsStore:
    """A store on the shipped snowwolf vocabulary (so an empty file is seeded with the shipped judgments)."""
    return JudgmentsStore(path, Vocabulary.from_csv(VOCAB_CSV), CLASSES)


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary.from_csv(VOCAB_CSV)


@pytest.fixture(scope="module")
def n_shipped(vocab: Vocabulary) -> tuple[int, int]:
    return len(load_judgments_csv(SHIPPED_RATINGS, vocab, CLASSES)), len(load_pairwise_csv(SHIPPED_PAIRWISE, vocab, CLASSES))


def _user_raters(store: JudgmentsStore) -> pd.Series:
    ratings = store.ratings()
    return ratings.loc[ratings["source"] == "user", "rater"]


# ---------------------------------------------------------------------------------- process workers
def _open_after_barrier(path: str, barrier: Any) -> None:
    barrier.wait(timeout=60)
    _open(path)


def _write_after_barrier(path: str, barrier: Any, tag: str, n: int) -> None:
    store = _open(path)
    barrier.wait(timeout=60)
    for i in range(n):
        store.add_rating(f"{tag}-{i}", "amber_eyes", "wolf", 1 + i % 5)


# ---------------------------------------------------------------------------------- (a) seeding once
@pytest.mark.parametrize("runner", [run_threads, run_processes], ids=["threads", "processes"])
def test_simultaneous_first_opens_seed_once(tmp_path: Path, n_shipped: tuple[int, int], runner: Callable) -> None:
    path = str(tmp_path / "judgments.sqlite")
    runner(_open_after_barrier, [(path,), (path,)])
    store = _open(path)
    ratings, pairwise = store.ratings(), store.pairwise()
    assert (len(ratings), len(pairwise)) == n_shipped
    assert (ratings["source"] == "shipped").all() and (pairwise["source"] == "shipped").all()


# ---------------------------------------------------------------------------------- (b) concurrent writers
@pytest.mark.parametrize("runner", [run_threads, run_processes], ids=["threads", "processes"])
def test_concurrent_writers_lose_and_duplicate_nothing(tmp_path: Path, n_shipped: tuple[int, int], runner: Callable) -> None:
    path = str(tmp_path / "judgments.sqlite")
    n_writers, n_each = 4, 15
    runner(_write_after_barrier, [(path, f"w{j}", n_each) for j in range(n_writers)])
    raters = _user_raters(_open(path))
    expected = {f"w{j}-{i}" for j in range(n_writers) for i in range(n_each)}
    assert len(raters) == len(expected) and set(raters) == expected
    assert len(_open(path).ratings()) == n_shipped[0] + len(expected)


def test_threads_sharing_one_store_object(tmp_path: Path) -> None:
    store = _open(tmp_path / "judgments.sqlite")
    barrier = threading.Barrier(6)

    def write(j: int) -> None:
        barrier.wait(timeout=60)
        for i in range(10):
            store.add_rating(f"s{j}-{i}", "blue_eyes", "husky", 4)

    threads = [threading.Thread(target=write, args=(j,)) for j in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    raters = _user_raters(store)
    assert sorted(raters) == sorted(f"s{j}-{i}" for j in range(6) for i in range(10))


# ---------------------------------------------------------------------------------- (c) killed writer
def test_writer_killed_midway_keeps_every_committed_rating(tmp_path: Path, n_shipped: tuple[int, int]) -> None:
    path = tmp_path / "judgments.sqlite"
    proc = start_rating_writer(path, VOCAB_CSV, "killed")
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(40)]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        lines += proc.stdout.read().splitlines(keepends=True)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    reported = [int(line) for line in lines if line.endswith("\n")]
    assert reported == list(range(len(reported))) and len(reported) >= 40

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    store = _open(path)
    raters = _user_raters(store)
    assert raters.is_unique
    present = set(raters)
    assert {f"killed-{i}" for i in reported} <= present
    # at most the one rating committed between its COMMIT and the print the kill interrupted
    assert present - {f"killed-{i}" for i in reported} <= {f"killed-{len(reported)}"}
    assert (store.ratings()["source"] == "shipped").sum() == n_shipped[0]
    store.add_rating("after", "amber_eyes", "wolf", 3)  # the file is still writable
    assert (store.ratings()["rater"] == "after").sum() == 1


# ---------------------------------------------------------------------------------- (d) limits
@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "non-empty"),
        ("   ", "non-empty"),
        ("a" * 65, "at most 64"),
        ("ana\nbob", "control character"),
        ("ana\tbob", "control character"),
        ("ana\x00", "control character"),
        ("ana\x1b[31m", "control character"),
        ("ana\u2028bob", "line break"),
    ],
)
def test_bad_rater_names_are_refused(tmp_path: Path, vocab: Vocabulary, name: str, fragment: str) -> None:
    store = _open(tmp_path / "j.sqlite")
    before = (store.ratings(), store.pairwise())
    for write in (lambda: store.add_rating(name, "amber_eyes", "wolf", 4),
                  lambda: store.add_pairwise(name, from_pairs([("amber_eyes", "wolf", 1.0)]), "[]", "a")):
        with pytest.raises(InputError) as err:
            write()
        assert fragment in str(err.value) and "\n" not in str(err.value)
    pd.testing.assert_frame_equal(store.ratings(), before[0])
    pd.testing.assert_frame_equal(store.pairwise(), before[1])


def test_rater_names_within_the_limits_are_kept(vocab: Vocabulary) -> None:
    store = JudgmentsStore(":memory:", vocab, CLASSES)
    for name in ("a" * 64, "  Zoë Łukasz 李  ", "o'brien-smith (lab 2)"):
        store.add_rating(name, "amber_eyes", "wolf", 4)
    assert list(_user_raters(store)) == ["a" * 64, "Zoë Łukasz 李", "o'brien-smith (lab 2)"]


# ---------------------------------------------------------------------------------- (e) reset / restore
def test_reset_backup_restore_round_trip(tmp_path: Path, n_shipped: tuple[int, int]) -> None:
    path = tmp_path / "judgments.sqlite"
    store = _open(path)
    store.add_rating("dana", "rounded_ears", "wolf", 5)
    store.add_rating("eli", "snowy_ground", "wolf", 1)
    store.add_pairwise("dana", from_pairs([("amber_eyes", "wolf", 1.0)]), "[]", "a")
    ratings, pairwise = store.ratings(), store.pairwise()

    backup_id = store.reset()
    assert (len(store.ratings()), len(store.pairwise())) == n_shipped
    assert (store.ratings()["source"] == "shipped").all()
    listed = _open(path).backups()  # backups live in the file, not in the object
    assert list(listed.columns) == ["id", "created", "n_ratings", "n_pairwise"]
    assert listed[["id", "n_ratings", "n_pairwise"]].values.tolist() == [[backup_id, len(ratings), len(pairwise)]]

    store.add_rating("late", "blue_eyes", "husky", 4)  # added after the reset: must survive the restore
    for _ in range(2):  # restoring twice changes nothing the second time
        store.restore(backup_id)
        got = store.ratings()
        pd.testing.assert_frame_equal(got.iloc[: len(ratings)].reset_index(drop=True), ratings)
        assert got.iloc[len(ratings):]["rater"].tolist() == ["late"]
        assert (got["source"] == "shipped").sum() == n_shipped[0]  # shipped rows not doubled
        pd.testing.assert_frame_equal(store.pairwise(), pairwise)

    second = store.reset()
    assert second > backup_id
    assert store.backups()["n_ratings"].tolist() == [len(ratings), len(ratings) + 1]


def test_restore_of_an_unknown_backup_is_an_input_error(vocab: Vocabulary) -> None:
    store = JudgmentsStore(":memory:", vocab, CLASSES)
    with pytest.raises(InputError, match="no backup with id 7; existing backups: none"):
        store.restore(7)
    store.reset()
    with pytest.raises(InputError, match="existing backups: 1$"):
        store.restore(7)
    with pytest.raises(InputError, match="must be an integer"):
        store.restore("1")  # type: ignore[arg-type]


def test_reset_of_a_store_for_another_world_backs_up_and_stays_empty(tmp_path: Path) -> None:
    other = Vocabulary((Concept("fins", "fins", "core"), Concept("sand", "sandy ground", "context")))
    store = JudgmentsStore(tmp_path / "j.sqlite", other, ["fish", "crab"])
    store.add_rating("x", "fins", "fish", 5)
    backup_id = store.reset()
    assert store.ratings().empty
    store.restore(backup_id)
    assert store.ratings()[["rater", "concept", "class", "rating"]].values.tolist() == [["x", "fins", "fish", 5]]


# ---------------------------------------------------------------------------------- (f) journal and locks
def test_database_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "judgments.sqlite"
    _open(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_opening_a_new_file_waits_for_a_lock_instead_of_failing(tmp_path: Path, n_shipped: tuple[int, int]) -> None:
    path = tmp_path / "judgments.sqlite"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE other (x)")  # a file still in rollback-journal mode...
    holder.execute("BEGIN IMMEDIATE")  # ...where another connection (e.g. a second store) is about to write
    release = threading.Timer(0.5, lambda: holder.execute("COMMIT"))
    release.start()
    try:
        # the switch to WAL gets SQLITE_BUSY at once here (SQLite skips the busy handler), until the commit
        store = _open(path)
    finally:
        release.join()
        holder.close()
    assert len(store.ratings()) == n_shipped[0]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_writer_waits_for_a_lock_instead_of_failing(tmp_path: Path) -> None:
    path = tmp_path / "judgments.sqlite"
    store = _open(path)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    release = threading.Timer(1.0, lambda: holder.execute("COMMIT"))
    release.start()
    started = time.perf_counter()
    try:
        store.add_rating("patient", "amber_eyes", "wolf", 4)
    finally:
        release.join()
        holder.close()
    assert time.perf_counter() - started >= 0.5
    assert (store.ratings()["rater"] == "patient").sum() == 1


def test_a_version_1_database_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "judgments.sqlite"
    with sqlite3.connect(path) as conn:  # the layout the store had before backups, rollback journal
        conn.executescript(
            """
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
            CREATE TABLE ratings (id INTEGER PRIMARY KEY AUTOINCREMENT, rater TEXT NOT NULL, concept TEXT NOT NULL,
                class TEXT NOT NULL, rating INTEGER NOT NULL, source TEXT NOT NULL, created TEXT NOT NULL);
            CREATE TABLE pairwise (id INTEGER PRIMARY KEY AUTOINCREMENT, rater TEXT NOT NULL, hypothesis_a TEXT NOT NULL,
                hypothesis_b TEXT NOT NULL, preferred TEXT NOT NULL, source TEXT NOT NULL, created TEXT NOT NULL);
            INSERT INTO meta VALUES ('seeded', '2024-01-01T00:00:00+00:00');
            INSERT INTO ratings (rater, concept, class, rating, source, created)
                VALUES ('old', 'amber_eyes', 'wolf', 5, 'user', '2024-01-01T00:00:00+00:00');
            """
        )
    store = _open(path)
    assert store.ratings()[["rater", "source"]].values.tolist() == [["old", "user"]]  # not seeded again
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    backup_id = store.reset()
    assert store.backups()["n_ratings"].tolist() == [1]
    store.restore(backup_id)
    assert "old" in set(store.ratings()["rater"])
