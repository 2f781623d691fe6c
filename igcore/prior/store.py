"""SQLite storage of the judgments people add in the dashboard, kept per world.

**Per world.** A rating speaks about a concept and a class of one world's vocabulary, so every row carries
the fingerprint of the world it was written for (:func:`~igcore.prior.judgments.vocabulary_fingerprint`:
a hash of the concept ids and class names). A :class:`JudgmentsStore` is opened for one vocabulary and
sees, adds, resets and restores only that world's rows: runs of different worlds share the file but never
see, seed, overwrite or trip over each other's ratings, in whatever order they open it, and the runs of
one world share what people added for it.

**What people added, not what a run was solved with.** The store holds no copy of the shipped files or
of a run's own ratings file: each run records the judgments it was solved with in its own directory
(:mod:`igcore.prior.sources`), and the Prior page shows those plus what this store holds for the run's
world. :meth:`JudgmentsStore.reset` therefore takes a world back to its runs' own judgments.

One database file may be shared by several processes (CLI runs, dashboard servers) and threads at once,
so the store relies on SQLite's own locking rather than on anything in this process:

* every write, opening included, is a single ``BEGIN IMMEDIATE`` transaction: the write lock is taken
  before anything is read, so a check and the write that depends on it cannot interleave with another
  writer, and a killed writer leaves either all of its transaction or none;
* the file is in WAL mode (readers never block the writer and vice versa) and every connection waits up
  to :data:`BUSY_TIMEOUT_S` for a lock instead of failing at once;
* :meth:`JudgmentsStore.reset` copies the rows it removes into a backup inside the same transaction, so
  any reset can be undone with :meth:`JudgmentsStore.restore`.

**Schema versions.** ``meta.schema`` says which layout a file has; opening a file of an older layout
upgrades it in place, in the opening transaction (:data:`SCHEMA_VERSION` lists the steps). Files from
before version 4 hold one shared, unlabelled set of rows: the copies of the shipped files they were
seeded with are dropped (each run records its own), and every other row is claimed by the first world
opened whose vocabulary holds its concept and class (its hypotheses, for a pairwise preference).

:class:`SQLiteFile` holds that discipline (connections, ``BEGIN IMMEDIATE`` writes, WAL); the judgments
store and the human-label store (:mod:`igcore.labels`) both build on it and may share one file.
"""

from __future__ import annotations

import contextlib
import json
import operator
import sqlite3
import threading
import time
import unicodedata
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from igcore.errors import InputError
from igcore.hypothesis import Hypothesis
from igcore.prior.judgments import (
    PAIRWISE_COLUMNS,
    RATING_COLUMNS,
    check_clause_ids,
    check_rater,
    check_rating_value,
    validate_pairwise,
    vocabulary_fingerprint,
)
from igcore.worlds.base import Vocabulary

#: 1: meta, ratings, pairwise; 2: + backups; 3: + zstar_log; 4: rows per world (``world`` columns, ``worlds``
#: table with each world's z*-log epoch), no copies of the shipped files. Older files are upgraded in place.
SCHEMA_VERSION = 4
MAX_RATER_LENGTH = 64
BUSY_TIMEOUT_S = 30.0
BACKUP_COLUMNS = ("id", "created", "n_ratings", "n_pairwise")
#: Columns of :meth:`JudgmentsStore.ratings` / :meth:`JudgmentsStore.pairwise` besides the CSV columns.
ROW_COLUMNS = ("source", "id", "created")
#: ``source`` of every row people add through a store.
USER = "user"

_RATING_FIELDS = "rater, concept, class, rating, source, created"
_PAIRWISE_FIELDS = "rater, hypothesis_a, hypothesis_b, preferred, source, created"
_TABLES = {"ratings": _RATING_FIELDS, "pairwise": _PAIRWISE_FIELDS}
# One statement per entry: sqlite3's executescript() would commit the surrounding transaction. ``world`` is
# nullable only for rows of files older than version 4 that no world has claimed yet.
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)",
    """CREATE TABLE IF NOT EXISTS worlds (
        fingerprint TEXT PRIMARY KEY, concepts TEXT NOT NULL, classes TEXT NOT NULL,
        epoch INTEGER NOT NULL, created TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS ratings (
        id INTEGER PRIMARY KEY AUTOINCREMENT, rater TEXT NOT NULL, concept TEXT NOT NULL,
        class TEXT NOT NULL, rating INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
        source TEXT NOT NULL, created TEXT NOT NULL, world TEXT)""",
    """CREATE TABLE IF NOT EXISTS pairwise (
        id INTEGER PRIMARY KEY AUTOINCREMENT, rater TEXT NOT NULL, hypothesis_a TEXT NOT NULL,
        hypothesis_b TEXT NOT NULL, preferred TEXT NOT NULL CHECK (preferred IN ('a', 'b')),
        source TEXT NOT NULL, created TEXT NOT NULL, world TEXT)""",
    "CREATE TABLE IF NOT EXISTS backups (id INTEGER PRIMARY KEY AUTOINCREMENT, created TEXT NOT NULL, world TEXT)",
    # a backup keeps each row with its original id, so restoring it twice cannot duplicate anything
    """CREATE TABLE IF NOT EXISTS backup_ratings (
        backup_id INTEGER NOT NULL REFERENCES backups (id), id INTEGER NOT NULL, rater TEXT NOT NULL,
        concept TEXT NOT NULL, class TEXT NOT NULL, rating INTEGER NOT NULL, source TEXT NOT NULL,
        created TEXT NOT NULL, world TEXT, PRIMARY KEY (backup_id, id))""",
    """CREATE TABLE IF NOT EXISTS backup_pairwise (
        backup_id INTEGER NOT NULL REFERENCES backups (id), id INTEGER NOT NULL, rater TEXT NOT NULL,
        hypothesis_a TEXT NOT NULL, hypothesis_b TEXT NOT NULL, preferred TEXT NOT NULL,
        source TEXT NOT NULL, created TEXT NOT NULL, world TEXT, PRIMARY KEY (backup_id, id))""",
    # z*'s clause set after each re-solve of the Prior page, for the stopping signal (igcore.prior.elicit);
    # ``epoch`` counts the resets and restores of the run's world, so a history never mixes two sets of judgments
    """CREATE TABLE IF NOT EXISTS zstar_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, epoch INTEGER NOT NULL,
        n_ratings INTEGER NOT NULL CHECK (n_ratings >= 0), support TEXT NOT NULL, created TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS zstar_log_run ON zstar_log (run_id, epoch, id)",
)
#: Tables whose rows belong to a world (version 4 added the ``world`` column to the ones that existed).
_WORLD_TABLES = ("ratings", "pairwise", "backups", "backup_ratings", "backup_pairwise")
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS ratings_world ON ratings (world, id)",
    "CREATE INDEX IF NOT EXISTS pairwise_world ON pairwise (world, id)",
)
#: Longest run id the z* log accepts (run ids are short names; see igcore.store).
MAX_RUN_ID_LENGTH = 200


def check_rater_name(value: Any, where: str) -> str:
    """The stripped rater name, if it is fit to store: non-empty, at most :data:`MAX_RATER_LENGTH`
    characters, no control characters or line breaks. Otherwise :class:`InputError`.

    The dashboard limits the field too, but only the store sees every writer (CLI, scripts, other servers).
    """
    name = check_rater(value, where)
    if len(name) > MAX_RATER_LENGTH:
        raise InputError(f"{where}: rater name is {len(name)} characters long; use at most {MAX_RATER_LENGTH}")
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in name):
        raise InputError(f"{where}: rater name contains a control character or line break; use a plain one-line name")
    return name


class SQLiteFile:
    """One SQLite file shared by threads and processes: a connection per operation, every write one
    ``BEGIN IMMEDIATE`` transaction, WAL mode, a busy timeout (see the module docstring).

    Args:
        path: database file (created with its parent folder), or ``":memory:"`` (private to this object).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        # ":memory:" is one connection shared by this object's threads, so it needs a lock; files do not.
        self._memory: sqlite3.Connection | None = None
        self._memory_lock = threading.Lock()
        if self.path == ":memory:":
            self._memory = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        else:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._enable_wal()

    # ------------------------------------------------------------------ connections and transactions
    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """A connection in autocommit mode (``isolation_level=None``): transactions are explicit."""
        if self._memory is not None:
            with self._memory_lock:
                yield self._memory
            return
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            yield conn
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.OperationalError):  # busy, locked, read-only: not the file's content
                raise
            raise InputError(f"{str(self.path)!r} is not a readable SQLite database ({e}); point prior.database "
                             "at another file, or move this one away to start an empty database") from e
        finally:
            conn.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed if the block succeeds, rolled back otherwise."""
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _enable_wal(self) -> None:
        """Put the file in WAL mode (persistent, so a no-op once done).

        SQLite answers a journal-mode change that meets another connection's lock with SQLITE_BUSY at once,
        without calling the busy handler; two stores opening a new file together hit that. So wait here,
        as the busy timeout would: retry with a growing pause until :data:`BUSY_TIMEOUT_S` has passed.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        pause = 0.005
        while True:
            try:
                with self._connection() as conn:
                    conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as e:
                busy = getattr(e, "sqlite_errorcode", None) is not None and e.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
                if not busy or time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)
                pause = min(2 * pause, 0.2)


class JudgmentsStore(SQLiteFile):
    """The judgments people added for one world, in SQLite (stdlib ``sqlite3``).

    Every write is validated against the world's vocabulary (:class:`InputError`) and is one transaction.
    :meth:`reset` backs up and removes what people added for this world (its runs go back to their own
    judgments); :meth:`backups` lists those backups and :meth:`restore` brings one back. :meth:`log_z_star`
    and :meth:`z_star_log` keep z*'s clause set after each re-solve of a run of this world (the stopping
    signal of :mod:`igcore.prior.elicit`); a reset or a restore starts a new log. A connection is opened per
    operation, so one store can be used from several threads (e.g. Streamlit sessions) and several stores,
    for any worlds, in any processes, can share one file.

    Args:
        path: database file (created with its parent folder), or ``":memory:"`` (private to this object).
        vocabulary, classes: the world: what ratings may refer to, and whose rows this store sees.

    Attributes:
        world: the world's fingerprint (:func:`~igcore.prior.judgments.vocabulary_fingerprint`).
        store_id: a name this file got when it was created; a run that read the file (``prior.database``)
            records it, so the rows it already holds are not counted twice later.
    """

    def __init__(self, path: str | Path, vocabulary: Vocabulary, classes: Sequence[str]) -> None:
        super().__init__(path)
        self.vocabulary = vocabulary
        self.classes = list(classes)
        self.world = vocabulary_fingerprint(vocabulary, self.classes)
        self.store_id = self._initialise()

    def _initialise(self) -> str:
        """Create or upgrade the layout, register this world and claim the unlabelled rows that fit it."""
        with self._write() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)
            for table in _WORLD_TABLES:  # files older than version 4
                if "world" not in {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN world TEXT")
            for statement in _INDEXES:
                conn.execute(statement)
            _drop_shipped_copies(conn)
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value "
                "WHERE CAST(value AS INTEGER) < CAST(excluded.value AS INTEGER)",
                (str(SCHEMA_VERSION),),
            )
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('store_id', ?)", (uuid.uuid4().hex,))
            # a new world's z* log starts after every epoch logged so far (an older file's logs speak of shared rows)
            conn.execute(
                "INSERT OR IGNORE INTO worlds (fingerprint, concepts, classes, epoch, created) "
                "VALUES (?, ?, ?, (SELECT COALESCE(MAX(epoch) + 1, 0) FROM zstar_log), ?)",
                (self.world, json.dumps(self.vocabulary.ids), json.dumps(self.classes), _now()),
            )
            self._claim(conn)
            return str(conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()[0])

    def _claim(self, conn: sqlite3.Connection) -> None:
        """Give this world the rows no world has claimed (from files older than version 4) that fit it."""
        ids, classes = self.vocabulary.ids, self.classes
        marks = f"concept IN ({','.join('?' * len(ids))}) AND class IN ({','.join('?' * len(classes))})"
        for table in ("ratings", "backup_ratings"):
            conn.execute(f"UPDATE {table} SET world = ? WHERE world IS NULL AND {marks}", (self.world, *ids, *classes))
        for table, key in (("pairwise", "id"), ("backup_pairwise", "backup_id, id")):
            for *row_key, a, b in conn.execute(f"SELECT {key}, hypothesis_a, hypothesis_b FROM {table} WHERE world IS NULL").fetchall():
                try:
                    for text in (a, b):
                        Hypothesis.from_json(text, self.vocabulary, classes)
                except InputError:
                    continue
                where = " AND ".join(f"{k.strip()} = ?" for k in key.split(","))
                conn.execute(f"UPDATE {table} SET world = ? WHERE {where}", (self.world, *row_key))

    # ------------------------------------------------------------------ writes
    def add_rating(self, rater: str, concept: str, cls: str, rating: int) -> int:
        """Add one rating (1-5 integer) by ``rater`` that ``concept`` is evidence for class ``cls``.

        Returns the new rating's id; when this returns, the rating is committed.
        """
        return self.add_ratings(rater, [(concept, cls, rating)])[0]

    def add_ratings(self, rater: str, items: Sequence[tuple[str, str, int]]) -> list[int]:
        """Add several ratings by one ``rater`` - ``(concept, class, rating)`` each - as one transaction:
        every item is validated first, then all are committed together or none is. Returns their ids."""
        where = "rating"
        rater = check_rater_name(rater, where)
        rows = []
        for concept, cls, rating in items:
            check_clause_ids(concept, cls, self.vocabulary, self.classes, where)
            rows.append((rater, concept, cls, check_rating_value(rating, where)))
        if len({(c, k) for _, c, k, _ in rows}) < len(rows):
            raise InputError(f"{where}: the same clause is rated twice in one batch; give each clause once")
        now = _now()
        ids = []
        with self._write() as conn:
            for row in rows:
                cur = conn.execute(
                    f"INSERT INTO ratings ({_RATING_FIELDS}, world) VALUES (?, ?, ?, ?, '{USER}', ?, ?)", (*row, now, self.world)
                )
                ids.append(int(cur.lastrowid))
        return ids

    def add_pairwise(self, rater: str, hypothesis_a: str | Hypothesis, hypothesis_b: str | Hypothesis, preferred: str) -> int:
        """Add one pairwise preference (``preferred`` is ``"a"`` or ``"b"``). Returns its id."""
        where = "pairwise judgment"
        rater = check_rater_name(rater, where)
        texts = [h.to_json() if isinstance(h, Hypothesis) else str(h) for h in (hypothesis_a, hypothesis_b)]
        df = validate_pairwise(
            pd.DataFrame([[rater, texts[0], texts[1], preferred]], columns=list(PAIRWISE_COLUMNS)),
            self.vocabulary, self.classes, source=where,
        )
        r = df.iloc[0]
        with self._write() as conn:
            cur = conn.execute(
                f"INSERT INTO pairwise ({_PAIRWISE_FIELDS}, world) VALUES (?, ?, ?, ?, '{USER}', ?, ?)",
                (r["rater"], r["hypothesis_a"], r["hypothesis_b"], r["preferred"], _now(), self.world),
            )
        return int(cur.lastrowid)

    def reset(self) -> int:
        """Back up every rating and preference people added for this world, then remove them: the runs of
        this world are back to their own judgments.

        Backup and deletion are one transaction. Returns the backup's id (see :meth:`restore`).
        """
        with self._write() as conn:
            backup_id = int(conn.execute("INSERT INTO backups (created, world) VALUES (?, ?)", (_now(), self.world)).lastrowid)
            for table, fields in _TABLES.items():
                conn.execute(
                    f"INSERT INTO backup_{table} (backup_id, id, {fields}, world) SELECT ?, id, {fields}, world FROM {table} "
                    "WHERE world = ?",
                    (backup_id, self.world),
                )
                conn.execute(f"DELETE FROM {table} WHERE world = ?", (self.world,))
            _next_epoch(conn, self.world)
        return backup_id

    def restore(self, backup_id: int) -> None:
        """Bring back exactly this world's rows that backup ``backup_id`` holds, with their original ids.

        Rows added since the backup stay. Restoring the same backup again changes nothing.
        """
        try:
            backup_id = operator.index(backup_id)
        except TypeError:
            raise InputError(f"backup id must be an integer, got {backup_id!r}; see JudgmentsStore.backups()") from None
        with self._write() as conn:
            known = [int(i) for (i,) in conn.execute(f"SELECT b.id FROM backups b WHERE {_BACKUP_OF_WORLD} ORDER BY b.id", (self.world,) * 3)]
            if backup_id not in known:
                raise InputError(f"no backup with id {backup_id} for this world; existing backups: {', '.join(map(str, known)) or 'none'}")
            for table, fields in _TABLES.items():
                # AUTOINCREMENT never reuses an id, so an id already present is this very row restored before
                conn.execute(
                    f"INSERT OR IGNORE INTO {table} (id, {fields}, world) SELECT id, {fields}, world FROM backup_{table} "
                    "WHERE backup_id = ? AND world = ?",
                    (backup_id, self.world),
                )
            _next_epoch(conn, self.world)

    # ------------------------------------------------------------------ reads
    def ratings(self) -> pd.DataFrame:
        """This world's ratings, oldest first: columns ``rater, concept, class, rating, source, id, created``."""
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT rater, concept, class, rating, source, id, created FROM ratings WHERE world = ? ORDER BY id", (self.world,)
            ).fetchall()
        df = pd.DataFrame(rows, columns=[*RATING_COLUMNS, *ROW_COLUMNS])
        return df.astype({"rating": np.int64, "id": np.int64})

    def pairwise(self) -> pd.DataFrame:
        """This world's pairwise preferences: columns ``rater, hypothesis_a, hypothesis_b, preferred, source, id, created``."""
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT rater, hypothesis_a, hypothesis_b, preferred, source, id, created FROM pairwise WHERE world = ? ORDER BY id",
                (self.world,),
            ).fetchall()
        return pd.DataFrame(rows, columns=[*PAIRWISE_COLUMNS, *ROW_COLUMNS]).astype({"id": np.int64})

    def counts(self) -> tuple[int, int]:
        """How many ratings and pairwise preferences this world holds (what :meth:`reset` would remove)."""
        with self._connection() as conn:
            n_ratings, n_pairwise = (int(conn.execute(f"SELECT COUNT(*) FROM {table} WHERE world = ?", (self.world,)).fetchone()[0])
                                     for table in ("ratings", "pairwise"))
        return n_ratings, n_pairwise

    def backups(self) -> pd.DataFrame:
        """The backups :meth:`reset` made of this world's rows, oldest first: columns ``id, created, n_ratings,
        n_pairwise``."""
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT b.id, b.created, "
                "(SELECT COUNT(*) FROM backup_ratings r WHERE r.backup_id = b.id AND r.world = ?), "
                "(SELECT COUNT(*) FROM backup_pairwise p WHERE p.backup_id = b.id AND p.world = ?) "
                f"FROM backups b WHERE {_BACKUP_OF_WORLD} ORDER BY b.id",
                (self.world,) * 5,
            ).fetchall()
        return pd.DataFrame(rows, columns=list(BACKUP_COLUMNS)).astype(
            {"id": np.int64, "n_ratings": np.int64, "n_pairwise": np.int64}
        )

    # ------------------------------------------------------------------ z* after each re-solve
    def log_z_star(self, run_id: str, n_ratings: int, support: Iterable[tuple[str, str]]) -> int:
        """Record that z* of run ``run_id`` (of this world), re-solved on ``n_ratings`` ratings, uses the clauses
        ``support``.

        Returns the entry's id. The entry belongs to the current set of judgments: :meth:`reset` and
        :meth:`restore` start a new log.
        """
        where = "z* log"
        run_id = check_run_id(run_id, where)
        if isinstance(n_ratings, bool) or not isinstance(n_ratings, (int, np.integer)) or n_ratings < 0:
            raise InputError(f"{where}: n_ratings must be a non-negative integer, got {n_ratings!r}")
        pairs = sorted({(str(k), str(c)) for k, c in support})
        for concept, cls in pairs:
            check_clause_ids(concept, cls, self.vocabulary, self.classes, where)
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO zstar_log (run_id, epoch, n_ratings, support, created) VALUES (?, ?, ?, ?, ?)",
                (run_id, _epoch(conn, self.world), int(n_ratings), json.dumps(pairs), _now()),
            )
        return int(cur.lastrowid)

    def z_star_log(self, run_id: str) -> list[tuple[int, frozenset[tuple[str, str]]]]:
        """``(n_ratings, clause set)`` of every z* logged for ``run_id`` since the last reset or restore, in the
        order of the number of ratings (then of logging): sessions that re-solve at once can log out of order,
        one of them on a count of ratings read before another's rating was committed."""
        run_id = check_run_id(run_id, "z* log")
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT n_ratings, support FROM zstar_log WHERE run_id = ? AND epoch = ? ORDER BY n_ratings, id",
                (run_id, _epoch(conn, self.world)),
            ).fetchall()
        return [(int(n), frozenset((k, c) for k, c in json.loads(text))) for n, text in rows]


#: A backup belongs to the world that made it, or (files older than version 4) to the worlds that claimed its rows.
_BACKUP_OF_WORLD = (
    "(b.world = ? OR (b.world IS NULL AND (EXISTS (SELECT 1 FROM backup_ratings r WHERE r.backup_id = b.id AND r.world = ?) "
    "OR EXISTS (SELECT 1 FROM backup_pairwise p WHERE p.backup_id = b.id AND p.world = ?))))"
)


def _drop_shipped_copies(conn: sqlite3.Connection) -> None:
    """Remove the copies of the shipped CSVs that stores older than version 4 seeded a file with (each run now records
    the judgments it was solved with), and the old backups that held nothing else. Done at every opening, so a file
    that an older version opens and seeds again is mended the next time this one opens it."""
    for table in ("ratings", "pairwise", "backup_ratings", "backup_pairwise"):
        conn.execute(f"DELETE FROM {table} WHERE source = 'shipped'")
    conn.execute(
        "DELETE FROM backups WHERE world IS NULL AND id NOT IN "
        "(SELECT backup_id FROM backup_ratings UNION SELECT backup_id FROM backup_pairwise)"
    )
    conn.execute("DELETE FROM meta WHERE key IN ('seeded', 'seed_skipped', 'epoch')")


def check_run_id(value: Any, where: str) -> str:
    """A run id fit to store: a non-empty one-line string of at most :data:`MAX_RUN_ID_LENGTH` characters."""
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: run id must be a non-empty string, got {value!r}")
    if len(value) > MAX_RUN_ID_LENGTH or any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in value):
        raise InputError(f"{where}: run id must be one line of at most {MAX_RUN_ID_LENGTH} characters")
    return value


def _epoch(conn: sqlite3.Connection, world: str) -> int:
    row = conn.execute("SELECT epoch FROM worlds WHERE fingerprint = ?", (world,)).fetchone()
    return int(row[0]) if row else 0


def _next_epoch(conn: sqlite3.Connection, world: str) -> None:
    """A new set of judgments begins for ``world`` (inside the caller's transaction): later z* logs start afresh."""
    conn.execute("UPDATE worlds SET epoch = epoch + 1 WHERE fingerprint = ?", (world,))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
