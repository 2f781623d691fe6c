"""SQLite storage of human judgments: the shipped CSVs plus whatever users add in the dashboard."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

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


class JudgmentsStore:
    """Human judgments in SQLite (stdlib ``sqlite3``): the shipped CSVs plus whatever users add.

    On first use of an empty database the shipped ratings and pairwise preferences are loaded;
    :meth:`reset` goes back to exactly them. Every write is validated (:class:`InputError`). A connection
    is opened per operation, so one store can be used from several threads (e.g. Streamlit sessions).

    Args:
        path: database file (created with its parent folder), or ``":memory:"``.
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
        self.path = str(path)
        self.vocabulary = vocabulary
        self.classes = list(classes)
        self.shipped_ratings = shipped_ratings
        self.shipped_pairwise = shipped_pairwise
        self._lock = threading.Lock()
        self._memory: sqlite3.Connection | None = None
        if self.path == ":memory:":
            self._memory = sqlite3.connect(":memory:", check_same_thread=False)
        else:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._initialise()

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._memory or sqlite3.connect(self.path, timeout=30)
            try:
                with conn:  # commit on success, roll back on error
                    yield conn
            finally:
                if conn is not self._memory:
                    conn.close()

    def _initialise(self) -> None:
        with self._connect() as conn:
            conn.executescript(
                """
                CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
                CREATE TABLE IF NOT EXISTS ratings (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, rater TEXT NOT NULL, concept TEXT NOT NULL,
                    class TEXT NOT NULL, rating INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
                    source TEXT NOT NULL, created TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS pairwise (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, rater TEXT NOT NULL, hypothesis_a TEXT NOT NULL,
                    hypothesis_b TEXT NOT NULL, preferred TEXT NOT NULL CHECK (preferred IN ('a', 'b')),
                    source TEXT NOT NULL, created TEXT NOT NULL);
                """
            )
            seeded = conn.execute("SELECT value FROM meta WHERE key = 'seeded'").fetchone()
            if seeded is None:
                self._seed(conn)

    def _seed(self, conn: sqlite3.Connection) -> None:
        now = _now()
        try:
            self._seed_rows(conn, now)
        except InputError as e:  # shipped judgments are for another world: start empty, say why
            conn.execute("DELETE FROM ratings")
            conn.execute("DELETE FROM pairwise")
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('seed_skipped', ?)", (str(e),))
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('seeded', ?)", (now,))

    def _seed_rows(self, conn: sqlite3.Connection, now: str) -> None:
        if self.shipped_ratings is not None:
            df = load_judgments_csv(self.shipped_ratings, self.vocabulary, self.classes)
            conn.executemany(
                "INSERT INTO ratings (rater, concept, class, rating, source, created) VALUES (?, ?, ?, ?, 'shipped', ?)",
                [(rater, concept, cls, int(rating), now) for rater, concept, cls, rating in df.itertuples(index=False, name=None)],
            )
        if self.shipped_pairwise is not None:
            df = load_pairwise_csv(self.shipped_pairwise, self.vocabulary, self.classes)
            conn.executemany(
                "INSERT INTO pairwise (rater, hypothesis_a, hypothesis_b, preferred, source, created) "
                "VALUES (?, ?, ?, ?, 'shipped', ?)",
                [(*row, now) for row in df.itertuples(index=False, name=None)],
            )

    def add_rating(self, rater: str, concept: str, cls: str, rating: int) -> None:
        """Add one rating (1-5 integer) by ``rater`` that ``concept`` is evidence for class ``cls``."""
        where = "rating"
        rater = check_rater(rater, where)
        check_clause_ids(concept, cls, self.vocabulary, self.classes, where)
        value = check_rating_value(rating, where)
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO ratings (rater, concept, class, rating, source, created) VALUES (?, ?, ?, ?, 'user', ?)",
                (rater, concept, cls, value, _now()),
            )

    def add_pairwise(self, rater: str, hypothesis_a: str | Hypothesis, hypothesis_b: str | Hypothesis, preferred: str) -> None:
        """Add one pairwise preference (``preferred`` is ``"a"`` or ``"b"``)."""
        texts = [h.to_json() if isinstance(h, Hypothesis) else str(h) for h in (hypothesis_a, hypothesis_b)]
        df = validate_pairwise(
            pd.DataFrame([[rater, texts[0], texts[1], preferred]], columns=list(PAIRWISE_COLUMNS)),
            self.vocabulary, self.classes, source="pairwise judgment",
        )
        r = df.iloc[0]
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO pairwise (rater, hypothesis_a, hypothesis_b, preferred, source, created) "
                "VALUES (?, ?, ?, ?, 'user', ?)",
                (r["rater"], r["hypothesis_a"], r["hypothesis_b"], r["preferred"], _now()),
            )

    def ratings(self) -> pd.DataFrame:
        """All ratings: columns ``rater, concept, class, rating, source`` (source = shipped | user)."""
        with self._connect() as conn:
            rows = conn.execute("SELECT rater, concept, class, rating, source FROM ratings ORDER BY id").fetchall()
        df = pd.DataFrame(rows, columns=[*RATING_COLUMNS, "source"])
        df["rating"] = df["rating"].astype(np.int64)
        return df

    def pairwise(self) -> pd.DataFrame:
        """All pairwise preferences: columns ``rater, hypothesis_a, hypothesis_b, preferred, source``."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT rater, hypothesis_a, hypothesis_b, preferred, source FROM pairwise ORDER BY id"
            ).fetchall()
        return pd.DataFrame(rows, columns=[*PAIRWISE_COLUMNS, "source"])

    def reset(self) -> None:
        """Delete everything and reload the shipped judgments."""
        with self._connect() as conn:
            conn.execute("DELETE FROM ratings")
            conn.execute("DELETE FROM pairwise")
            self._seed(conn)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
