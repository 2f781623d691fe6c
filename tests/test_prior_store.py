"""JudgmentsStore under concurrency and crashes, its input limits, reset / backup / restore, worlds that share
one file, and the upgrade of files written by older versions.

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
from igcore.prior import JudgmentsStore, vocabulary_fingerprint
from igcore.prior.store import SCHEMA_VERSION
from igcore.worlds.base import Concept, Vocabulary
from testkit.concurrency import run_processes, run_threads, start_rating_writer
from testkit.hypotheses import from_pairs

ROOT = Path(__file__).resolve().parents[1]
VOCAB_CSV = ROOT / "assets" / "snowwolf_vocabulary.csv"
CLASSES = ["husky", "wolf"]


def _open(path: str | Path) -> JudgmentsStore:
    """A store for the Snow-and-Wolves world (its shipped vocabulary)."""
    return JudgmentsStore(path, Vocabulary.from_csv(VOCAB_CSV), CLASSES)


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary.from_csv(VOCAB_CSV)


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


# ---------------------------------------------------------------------------------- (a) opening at once
@pytest.mark.parametrize("runner", [run_threads, run_processes], ids=["threads", "processes"])
def test_simultaneous_first_opens_create_one_store(tmp_path: Path, runner: Callable) -> None:
    path = str(tmp_path / "judgments.sqlite")
    runner(_open_after_barrier, [(path,), (path,)])
    store = _open(path)
    assert store.ratings().empty and store.pairwise().empty  # nothing is copied in: runs record their own judgments
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM meta WHERE key = 'store_id'").fetchone() == (1,)
        assert conn.execute("SELECT COUNT(*) FROM worlds").fetchone() == (1,)


# ---------------------------------------------------------------------------------- (b) concurrent writers
@pytest.mark.parametrize("runner", [run_threads, run_processes], ids=["threads", "processes"])
def test_concurrent_writers_lose_and_duplicate_nothing(tmp_path: Path, runner: Callable) -> None:
    path = str(tmp_path / "judgments.sqlite")
    n_writers, n_each = 4, 15
    runner(_write_after_barrier, [(path, f"w{j}", n_each) for j in range(n_writers)])
    raters = _user_raters(_open(path))
    expected = {f"w{j}-{i}" for j in range(n_writers) for i in range(n_each)}
    assert len(raters) == len(expected) and set(raters) == expected
    assert len(_open(path).ratings()) == len(expected)


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
def test_writer_killed_midway_keeps_every_committed_rating(tmp_path: Path) -> None:
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
    assert (store.ratings()["source"] == "user").all()
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
def test_reset_backup_restore_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "judgments.sqlite"
    store = _open(path)
    store.add_rating("dana", "rounded_ears", "wolf", 5)
    store.add_rating("eli", "snowy_ground", "wolf", 1)
    store.add_pairwise("dana", from_pairs([("amber_eyes", "wolf", 1.0)]), "[]", "a")
    ratings, pairwise = store.ratings(), store.pairwise()

    backup_id = store.reset()
    assert store.ratings().empty and store.pairwise().empty  # back to the runs' own judgments: nothing added
    listed = _open(path).backups()  # backups live in the file, not in the object
    assert list(listed.columns) == ["id", "created", "n_ratings", "n_pairwise"]
    assert listed[["id", "n_ratings", "n_pairwise"]].values.tolist() == [[backup_id, len(ratings), len(pairwise)]]

    store.add_rating("late", "blue_eyes", "husky", 4)  # added after the reset: must survive the restore
    for _ in range(2):  # restoring twice changes nothing the second time
        store.restore(backup_id)
        got = store.ratings()
        pd.testing.assert_frame_equal(got.iloc[: len(ratings)].reset_index(drop=True), ratings)
        assert got.iloc[len(ratings):]["rater"].tolist() == ["late"]
        pd.testing.assert_frame_equal(store.pairwise(), pairwise)

    second = store.reset()
    assert second > backup_id
    assert store.backups()["n_ratings"].tolist() == [len(ratings), len(ratings) + 1]


def test_restore_of_an_unknown_backup_is_an_input_error(vocab: Vocabulary) -> None:
    store = JudgmentsStore(":memory:", vocab, CLASSES)
    with pytest.raises(InputError, match="no backup with id 7 for this world; existing backups: none"):
        store.restore(7)
    store.reset()
    with pytest.raises(InputError, match="existing backups: 1$"):
        store.restore(7)
    with pytest.raises(InputError, match="must be an integer"):
        store.restore("1")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- worlds sharing one file
OTHER = Vocabulary((Concept("fins", "fins", "core"), Concept("sand", "sandy ground", "context")))
OTHER_CLASSES = ["fish", "crab"]


@pytest.mark.parametrize("first", ["snowwolf", "other"])
def test_worlds_never_see_each_others_judgments(tmp_path: Path, vocab: Vocabulary, first: str) -> None:
    """Two worlds in one file, opened in either order: each sees, resets and restores only its own rows."""
    path = tmp_path / "judgments.sqlite"
    opened = {"snowwolf": lambda: _open(path), "other": lambda: JudgmentsStore(path, OTHER, OTHER_CLASSES)}
    stores = {first: opened[first]()}
    stores |= {name: make() for name, make in opened.items() if name not in stores}
    snow, other = stores["snowwolf"], stores["other"]
    assert snow.world != other.world and snow.store_id == other.store_id
    assert snow.ratings().empty and other.ratings().empty  # neither world seeds the file for the other
    snow.add_rating("ana", "amber_eyes", "wolf", 5)
    other.add_ratings("bo", [("fins", "fish", 4), ("sand", "crab", 2)])
    other.add_pairwise("bo", from_pairs([("fins", "fish", 1.0)]), "[]", "a")
    assert snow.ratings()["rater"].tolist() == ["ana"] and snow.pairwise().empty
    assert other.ratings()["rater"].tolist() == ["bo", "bo"] and len(other.pairwise()) == 1
    with pytest.raises(InputError, match="unknown concept 'fins'"):
        snow.add_rating("ana", "fins", "wolf", 3)  # another world's concept is refused, not stored
    backup = other.reset()
    assert other.ratings().empty and snow.ratings()["rater"].tolist() == ["ana"]
    assert snow.backups().empty and other.backups()["id"].tolist() == [backup]
    with pytest.raises(InputError, match=f"no backup with id {backup} for this world"):
        snow.restore(backup)
    snow.reset()
    other.restore(backup)
    assert len(other.ratings()) == 2 and snow.ratings().empty


def test_runs_of_one_world_share_its_judgments(tmp_path: Path, vocab: Vocabulary) -> None:
    """The world is its concept ids and classes: another order or other wording is the same world."""
    path = tmp_path / "judgments.sqlite"
    store = _open(path)
    store.add_rating("ana", "amber_eyes", "wolf", 5)
    reworded = Vocabulary(tuple(Concept(c.id, c.text.upper(), c.kind) for c in reversed(vocab.concepts)))
    same = JudgmentsStore(path, reworded, list(reversed(CLASSES)))
    assert same.world == store.world == vocabulary_fingerprint(vocab, CLASSES)
    assert same.ratings()["rater"].tolist() == ["ana"]
    fewer = Vocabulary(vocab.concepts[1:])  # e.g. a run that hides a concept: another world
    assert JudgmentsStore(path, fewer, CLASSES).ratings().empty


# ---------------------------------------------------------------------------------- (f) journal and locks
def test_database_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "judgments.sqlite"
    _open(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_opening_a_new_file_waits_for_a_lock_instead_of_failing(tmp_path: Path) -> None:
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
    assert store.ratings().empty
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
    assert store.ratings().empty and store.counts() == (0, 0) and store.backups()["n_ratings"].tolist() == [1]
    store.restore(backup_id)
    assert store.ratings()[["rater", "source"]].values.tolist() == [["old", "user"]] and store.counts() == (1, 0)


#: What a version-3 store wrote: one shared set of rows, seeded with the shipped files, a global reset epoch.
VERSION_3 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE ratings (id INTEGER PRIMARY KEY AUTOINCREMENT, rater TEXT NOT NULL, concept TEXT NOT NULL, class TEXT NOT NULL,
    rating INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5), source TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE pairwise (id INTEGER PRIMARY KEY AUTOINCREMENT, rater TEXT NOT NULL, hypothesis_a TEXT NOT NULL,
    hypothesis_b TEXT NOT NULL, preferred TEXT NOT NULL, source TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE backups (id INTEGER PRIMARY KEY AUTOINCREMENT, created TEXT NOT NULL);
CREATE TABLE backup_ratings (backup_id INTEGER NOT NULL, id INTEGER NOT NULL, rater TEXT NOT NULL, concept TEXT NOT NULL,
    class TEXT NOT NULL, rating INTEGER NOT NULL, source TEXT NOT NULL, created TEXT NOT NULL, PRIMARY KEY (backup_id, id));
CREATE TABLE backup_pairwise (backup_id INTEGER NOT NULL, id INTEGER NOT NULL, rater TEXT NOT NULL, hypothesis_a TEXT NOT NULL,
    hypothesis_b TEXT NOT NULL, preferred TEXT NOT NULL, source TEXT NOT NULL, created TEXT NOT NULL, PRIMARY KEY (backup_id, id));
CREATE TABLE zstar_log (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, epoch INTEGER NOT NULL,
    n_ratings INTEGER NOT NULL, support TEXT NOT NULL, created TEXT NOT NULL);
INSERT INTO meta VALUES ('schema', '3'), ('seeded', 'x'), ('epoch', '1');
INSERT INTO ratings (id, rater, concept, class, rating, source, created) VALUES
    (1, 'team_01', 'amber_eyes', 'wolf', 5, 'shipped', 'x'), (2, 'ana', 'amber_eyes', 'wolf', 4, 'user', 'x'),
    (3, 'bo', 'fins', 'fish', 5, 'user', 'x');
INSERT INTO pairwise (id, rater, hypothesis_a, hypothesis_b, preferred, source, created) VALUES
    (1, 'team_01', '[{"concept": "amber_eyes", "class": "wolf", "weight": 1.0}]', '[]', 'a', 'shipped', 'x'),
    (2, 'bo', '[{"concept": "fins", "class": "fish", "weight": 1.0}]', '[]', 'a', 'user', 'x');
INSERT INTO backups VALUES (1, 'x'), (2, 'x');
INSERT INTO backup_ratings VALUES (1, 7, 'team_01', 'amber_eyes', 'wolf', 5, 'shipped', 'x'),
    (1, 8, 'cy', 'blue_eyes', 'husky', 5, 'user', 'x'), (1, 9, 'dee', 'sand', 'crab', 2, 'user', 'x'),
    (2, 10, 'team_01', 'amber_eyes', 'wolf', 5, 'shipped', 'x');
INSERT INTO zstar_log (run_id, epoch, n_ratings, support, created) VALUES ('run-1', 1, 3, '[]', 'x');
"""


@pytest.mark.parametrize("first", ["snowwolf", "other"])
def test_a_version_3_database_is_upgraded_in_place(tmp_path: Path, vocab: Vocabulary, first: str) -> None:
    """The shared rows of an older file go to the worlds they fit, whichever is opened first; the copies of the
    shipped files are dropped (runs record their own), so is a backup that held nothing else; z* logs start afresh."""
    path = tmp_path / "judgments.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(VERSION_3)
    order = [first, *({"snowwolf", "other"} - {first})]
    opened = {name: _open(path) if name == "snowwolf" else JudgmentsStore(path, OTHER, OTHER_CLASSES) for name in order}
    snow, other = opened["snowwolf"], opened["other"]
    assert snow.ratings()[["rater", "source"]].values.tolist() == [["ana", "user"]]
    assert other.ratings()[["rater", "concept"]].values.tolist() == [["bo", "fins"]]
    assert snow.pairwise().empty and other.pairwise()["rater"].tolist() == ["bo"]
    assert snow.backups()[["id", "n_ratings"]].values.tolist() == [[1, 1]]  # backup 2 held only a shipped row
    assert other.backups()[["id", "n_ratings"]].values.tolist() == [[1, 1]]
    assert snow.z_star_log("run-1") == []  # logged on the old shared rows: not this world's history
    snow.restore(1)
    assert snow.ratings()["rater"].tolist() == ["ana", "cy"] and other.ratings()["rater"].tolist() == ["bo"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == (str(SCHEMA_VERSION),)
        assert conn.execute("SELECT COUNT(*) FROM ratings WHERE source = 'shipped'").fetchone() == (0,)
    reopened = _open(path)  # opening an upgraded file again changes nothing
    assert reopened.ratings()["rater"].tolist() == ["ana", "cy"] and reopened.store_id == snow.store_id
    with sqlite3.connect(path) as conn:  # an older version opens the file and seeds it again...
        conn.execute("INSERT INTO ratings (rater, concept, class, rating, source, created) VALUES ('team_01', 'amber_eyes', 'wolf', 5, 'shipped', 'x')")
    assert _open(path).ratings()["rater"].tolist() == ["ana", "cy"]  # ...and this one mends it when it opens it
