"""SQLite storage of human judgments: the shipped CSVs plus whatever users add in the dashboard.

One database file may be shared by several processes (CLI runs, dashboard servers) and threads at once,
so the store relies on SQLite's own locking rather than on anything in this process:

* every write, seeding included, is a single ``BEGIN IMMEDIATE`` transaction: the write lock is taken
  before anything is read, so a check ("already seeded?") and the write that depends on it cannot
  interleave with another writer, and a killed writer leaves either all of its transaction or none;
* the file is in WAL mode (readers never block the writer and vice versa) and every connection waits up
  to :data:`BUSY_TIMEOUT_S` for a lock instead of failing at once;
* :meth:`JudgmentsStore.reset` copies the rows it removes into a backup inside the same transaction, so
  any reset can be undone with :meth:`JudgmentsStore.restore`.

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
    SHIPPED_PAIRWISE,
    SHIPPED_RATINGS,
    check_clause_ids,
    check_rater,
    check_rating_value,
    load_judgments_csv,
    load_pairwise_csv,
    validate_pairwise,
)
from igcore.worlds.base import Vocabulary

SCHEMA_VERSION = 3  # 1: meta, ratings, pairwise; 2: + backups; 3: + zstar_log (older files are upgraded in place)
MAX_RATER_LENGTH = 64
BUSY_TIMEOUT_S = 30.0
BACKUP_COLUMNS = ("id", "created", "n_ratings", "n_pairwise")

_RATING_FIELDS = "rater, concept, class, rating, source, created"
_PAIRWISE_FIELDS = "rater, hypothesis_a, hypothesis_b, preferred, source, created"
_TABLES = {"ratings": _RATING_FIELDS, "pairwise": _PAIRWISE_FIELDS}
# One statement per entry: sqlite3's executescript() would commit the surrounding transaction.
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)",
    """CREATE TABLE IF NOT EXISTS ratings (
        id INTEGER PRIMARY KEY AUTOINCREMENT, rater TEXT NOT NULL, concept TEXT NOT NULL,
        class TEXT NOT NULL, rating INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
        source TEXT NOT NULL, created TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS pairwise (
        id INTEGER PRIMARY KEY AUTOINCREMENT, rater TEXT NOT NULL, hypothesis_a TEXT NOT NULL,
        hypothesis_b TEXT NOT NULL, preferred TEXT NOT NULL CHECK (preferred IN ('a', 'b')),
        source TEXT NOT NULL, created TEXT NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS backups (id INTEGER PRIMARY KEY AUTOINCREMENT, created TEXT NOT NULL)",
    # a backup keeps each row with its original id, so restoring it twice cannot duplicate anything
    """CREATE TABLE IF NOT EXISTS backup_ratings (
        backup_id INTEGER NOT NULL REFERENCES backups (id), id INTEGER NOT NULL, rater TEXT NOT NULL,
        concept TEXT NOT NULL, class TEXT NOT NULL, rating INTEGER NOT NULL, source TEXT NOT NULL,
        created TEXT NOT NULL, PRIMARY KEY (backup_id, id))""",
    """CREATE TABLE IF NOT EXISTS backup_pairwise (
        backup_id INTEGER NOT NULL REFERENCES backups (id), id INTEGER NOT NULL, rater TEXT NOT NULL,
        hypothesis_a TEXT NOT NULL, hypothesis_b TEXT NOT NULL, preferred TEXT NOT NULL,
        source TEXT NOT NULL, created TEXT NOT NULL, PRIMARY KEY (backup_id, id))""",
    # z*'s clause set after each re-solve of the Prior page, for the stopping signal (igcore.prior.elicit);
    # ``epoch`` counts resets and restores, so a history never mixes two sets of judgments
    """CREATE TABLE IF NOT EXISTS zstar_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, epoch INTEGER NOT NULL,
        n_ratings INTEGER NOT NULL CHECK (n_ratings >= 0), support TEXT NOT NULL, created TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS zstar_log_run ON zstar_log (run_id, epoch, id)",
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
    """Human judgments in SQLite (stdlib ``sqlite3``): the shipped CSVs plus whatever users add.

    The first store to open an empty database loads the shipped ratings and pairwise preferences, once,
    however many stores open it at the same time. Every write is validated (:class:`InputError`) and is
    one transaction. :meth:`reset` goes back to exactly the shipped judgments after backing up what it
    removes; :meth:`backups` lists those backups and :meth:`restore` brings one back. :meth:`log_z_star`
    and :meth:`z_star_log` keep z*'s clause set after each re-solve (the stopping signal of
    :mod:`igcore.prior.elicit`); a reset or a restore starts a new log. A connection is
    opened per operation, so one store can be used from several threads (e.g. Streamlit sessions) and
    several stores, in any processes, can share one file.

    Args:
        path: database file (created with its parent folder), or ``":memory:"`` (private to this object).
        vocabulary, classes: what ratings may refer to.
        shipped_ratings, shipped_pairwise: the CSVs that seed an empty database (``None``: no seed).
    """

    def __init__(
        self,
        path: str | Path,
        vocabulary: Vocabulary,
        classes: Sequence[str],
        shipped_ratings: str | Path | None = SHIPPED_RATINGS,
        shipped_pairwise: str | Path | None = SHIPPED_PAIRWISE,
    ) -> None:
        super().__init__(path)
        self.vocabulary = vocabulary
        self.classes = list(classes)
        self.shipped_ratings = shipped_ratings
        self.shipped_pairwise = shipped_pairwise
        self._initialise()

    def _initialise(self) -> None:
        with self._write() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value "
                "WHERE CAST(value AS INTEGER) < CAST(excluded.value AS INTEGER)",
                (str(SCHEMA_VERSION),),
            )
            if conn.execute("SELECT value FROM meta WHERE key = 'seeded'").fetchone() is None:
                self._seed(conn)

    # ------------------------------------------------------------------ seeding
    def _seed(self, conn: sqlite3.Connection) -> None:
        """Insert the shipped judgments (inside the caller's transaction) and mark the database seeded."""
        now = _now()
        try:
            ratings = None if self.shipped_ratings is None else load_judgments_csv(self.shipped_ratings, self.vocabulary, self.classes)
            pairwise = None if self.shipped_pairwise is None else load_pairwise_csv(self.shipped_pairwise, self.vocabulary, self.classes)
        except InputError as e:  # shipped judgments are for another world: start empty, say why
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('seed_skipped', ?)", (str(e),))
        else:
            for table, df in (("ratings", ratings), ("pairwise", pairwise)):
                if df is not None:
                    conn.executemany(
                        f"INSERT INTO {table} ({_TABLES[table]}) VALUES (?, ?, ?, ?, 'shipped', ?)",
                        [(*row, now) for row in df.itertuples(index=False, name=None)],
                    )
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('seeded', ?)", (now,))

    # ------------------------------------------------------------------ writes
    def add_rating(self, rater: str, concept: str, cls: str, rating: int) -> int:
        """Add one rating (1-5 integer) by ``rater`` that ``concept`` is evidence for class ``cls``.

        Returns the new rating's id; when this returns, the rating is committed.
        """
        where = "rating"
        rater = check_rater_name(rater, where)
        check_clause_ids(concept, cls, self.vocabulary, self.classes, where)
        value = check_rating_value(rating, where)
        with self._write() as conn:
            cur = conn.execute(
                f"INSERT INTO ratings ({_RATING_FIELDS}) VALUES (?, ?, ?, ?, 'user', ?)",
                (rater, concept, cls, value, _now()),
            )
        return int(cur.lastrowid)

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
                cur = conn.execute(f"INSERT INTO ratings ({_RATING_FIELDS}) VALUES (?, ?, ?, ?, 'user', ?)", (*row, now))
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
                f"INSERT INTO pairwise ({_PAIRWISE_FIELDS}) VALUES (?, ?, ?, ?, 'user', ?)",
                (r["rater"], r["hypothesis_a"], r["hypothesis_b"], r["preferred"], _now()),
            )
        return int(cur.lastrowid)

    def reset(self) -> int:
        """Back up every rating and preference, then go back to exactly the shipped judgments.

        Backup, deletion and reseeding are one transaction. Returns the backup's id (see :meth:`restore`).
        """
        with self._write() as conn:
            backup_id = int(conn.execute("INSERT INTO backups (created) VALUES (?)", (_now(),)).lastrowid)
            for table, fields in _TABLES.items():
                conn.execute(
                    f"INSERT INTO backup_{table} (backup_id, id, {fields}) SELECT ?, id, {fields} FROM {table}",
                    (backup_id,),
                )
                conn.execute(f"DELETE FROM {table}")
            self._seed(conn)
            _next_epoch(conn)
        return backup_id

    def restore(self, backup_id: int) -> None:
        """Bring back exactly the rows that backup ``backup_id`` holds, with their original ids.

        User rows added since the backup stay. The backup's shipped rows replace the current ones (which
        :meth:`reset` reloaded), so shipped judgments are never counted twice. Restoring the same backup
        again changes nothing.
        """
        try:
            backup_id = operator.index(backup_id)
        except TypeError:
            raise InputError(f"backup id must be an integer, got {backup_id!r}; see JudgmentsStore.backups()") from None
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM backups WHERE id = ?", (backup_id,)).fetchone() is None:
                known = [str(i) for (i,) in conn.execute("SELECT id FROM backups ORDER BY id")]
                raise InputError(f"no backup with id {backup_id}; existing backups: {', '.join(known) or 'none'}")
            for table, fields in _TABLES.items():
                conn.execute(
                    f"DELETE FROM {table} WHERE source = 'shipped' "
                    f"AND id NOT IN (SELECT id FROM backup_{table} WHERE backup_id = ?)",
                    (backup_id,),
                )
                # AUTOINCREMENT never reuses an id, so an id already present is this very row restored before
                conn.execute(
                    f"INSERT OR IGNORE INTO {table} (id, {fields}) SELECT id, {fields} FROM backup_{table} "
                    "WHERE backup_id = ?",
                    (backup_id,),
                )
            _next_epoch(conn)

    # ------------------------------------------------------------------ reads
    def ratings(self) -> pd.DataFrame:
        """All ratings: columns ``rater, concept, class, rating, source`` (source = shipped | user)."""
        with self._connection() as conn:
            rows = conn.execute("SELECT rater, concept, class, rating, source FROM ratings ORDER BY id").fetchall()
        df = pd.DataFrame(rows, columns=[*RATING_COLUMNS, "source"])
        df["rating"] = df["rating"].astype(np.int64)
        return df

    def pairwise(self) -> pd.DataFrame:
        """All pairwise preferences: columns ``rater, hypothesis_a, hypothesis_b, preferred, source``."""
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT rater, hypothesis_a, hypothesis_b, preferred, source FROM pairwise ORDER BY id"
            ).fetchall()
        return pd.DataFrame(rows, columns=[*PAIRWISE_COLUMNS, "source"])

    def backups(self) -> pd.DataFrame:
        """The backups :meth:`reset` made, oldest first: columns ``id, created, n_ratings, n_pairwise``."""
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT b.id, b.created, "
                "(SELECT COUNT(*) FROM backup_ratings r WHERE r.backup_id = b.id), "
                "(SELECT COUNT(*) FROM backup_pairwise p WHERE p.backup_id = b.id) "
                "FROM backups b ORDER BY b.id"
            ).fetchall()
        return pd.DataFrame(rows, columns=list(BACKUP_COLUMNS)).astype(
            {"id": np.int64, "n_ratings": np.int64, "n_pairwise": np.int64}
        )

    # ------------------------------------------------------------------ z* after each re-solve
    def log_z_star(self, run_id: str, n_ratings: int, support: Iterable[tuple[str, str]]) -> int:
        """Record that z* of run ``run_id``, re-solved on ``n_ratings`` ratings, uses the clauses ``support``.

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
                (run_id, _epoch(conn), int(n_ratings), json.dumps(pairs), _now()),
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
                (run_id, _epoch(conn)),
            ).fetchall()
        return [(int(n), frozenset((k, c) for k, c in json.loads(text))) for n, text in rows]


def check_run_id(value: Any, where: str) -> str:
    """A run id fit to store: a non-empty one-line string of at most :data:`MAX_RUN_ID_LENGTH` characters."""
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: run id must be a non-empty string, got {value!r}")
    if len(value) > MAX_RUN_ID_LENGTH or any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in value):
        raise InputError(f"{where}: run id must be one line of at most {MAX_RUN_ID_LENGTH} characters")
    return value


def _epoch(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
    return int(row[0]) if row else 0


def _next_epoch(conn: sqlite3.Connection) -> None:
    """A new set of judgments begins (inside the caller's transaction): later z* logs start afresh."""
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('epoch', ?)", (str(_epoch(conn) + 1),))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
