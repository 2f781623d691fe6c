"""People's names for discovered concepts, in the SQLite file the dashboard writes to.

A name is what turns ``discovered::erm/3`` into words z* can use (:mod:`igcore.discover.names`). Names live
in table ``concept_names`` of the dashboard's judgments database (``RUNS_DIR/judgments.sqlite``), under
the same discipline as the judgments and the labels (:class:`igcore.prior.store.SQLiteFile`: WAL, every
write one ``BEGIN IMMEDIATE`` transaction, a busy timeout), so several sessions and processes can name at
once and a killed writer leaves all of a name or none. Nothing is overwritten: every naming is a new row
with its rater and time, the current name of a component is its latest row, and "unnamed again" is a row
with an empty text — so the history is the table. A component belongs to one run (another run's
``discovered::erm/3`` is another component), so rows carry the run id. Table ``removed_together`` keeps what
removing components named alike after the run did to the run's models, per set of components, so a measurement
made from one session (the Discover page's button) serves every session and outlives the server.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from igcore.discover.names import check_name
from igcore.errors import InputError
from igcore.prior.store import SQLiteFile, check_rater_name, check_run_id

#: Columns of :meth:`NameStore.history`.
HISTORY_COLUMNS = ("run_id", "component", "text", "rater", "created")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS concept_names (
        id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, component TEXT NOT NULL, text TEXT NOT NULL,
        rater TEXT NOT NULL, created TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS concept_names_run ON concept_names (run_id, component, id)",
    # components named alike after the run, removed together on its models (igcore.discover.measure_together): the
    # effect depends on which components, not on the words, so a measurement is kept per set of components
    """CREATE TABLE IF NOT EXISTS removed_together (
        id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, components TEXT NOT NULL, effects TEXT NOT NULL,
        created TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS removed_together_run ON removed_together (run_id, components)",
)


class NameStore(SQLiteFile):
    """Names of one run's discovered concepts (table ``concept_names`` of a judgments database).

    Args:
        path: the database file (``RUNS_DIR/judgments.sqlite``; ``":memory:"`` for a private one).
        run_id: the run whose components are named.
        components: the run's discovered concept ids (what may be named).
    """

    def __init__(self, path: str | Path, run_id: str, components: Sequence[str]) -> None:
        super().__init__(path)
        self.run_id = check_run_id(run_id, "names")
        self.components = tuple(components)
        with self._write() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)

    def _check(self, component: str, where: str) -> str:
        if component not in self.components:
            raise InputError(f"{where}: {component!r} is not a discovered concept of run {self.run_id!r}; "
                             f"its components are {', '.join(self.components) or '(none)'}")
        return component

    def _add(self, rater: str, component: str, text: str, where: str) -> int:
        rater = check_rater_name(rater, where)
        component = self._check(component, where)
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO concept_names (run_id, component, text, rater, created) VALUES (?, ?, ?, ?, ?)",
                (self.run_id, component, text, rater, datetime.now(UTC).isoformat(timespec="seconds")),
            )
        return int(cur.lastrowid)

    def name(self, rater: str, component: str, text: str) -> int:
        """``rater`` names ``component`` ``text`` (committed when this returns). Returns the row's id."""
        where = "name"
        return self._add(rater, component, check_name(text, where), where)

    def unname(self, rater: str, component: str) -> int:
        """``rater`` takes ``component``'s name back: it is "unnamed concept k" again (the old names stay in
        the history). Returns the row's id."""
        return self._add(rater, component, "", "unname")

    def names(self) -> dict[str, str]:
        """``{component: name}`` of every component with a row: its latest name, or ``""`` where the latest row
        takes the name back. The empty text matters: it overrides a name the run was given
        (``discover.names``), so taking back a name the CSV gave makes the concept unnamed again
        (:func:`igcore.discover.names.apply_names`)."""
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT component, text FROM concept_names WHERE id IN "
                "(SELECT MAX(id) FROM concept_names WHERE run_id = ? GROUP BY component)",
                (self.run_id,),
            ).fetchall()
        return {component: text for component, text in rows if component in self.components}

    def record_together(self, components: Sequence[str], effects: dict[str, Any]) -> None:
        """Keep what removing ``components`` together did to each model (``{model: {overall, by_group, flip_rate}}``,
        :func:`igcore.discover.measure_together`), so that no session measures the same components again."""
        key = json.dumps(sorted(self._check(c, "record_together") for c in components))
        with self._write() as conn:
            conn.execute("INSERT INTO removed_together (run_id, components, effects, created) VALUES (?, ?, ?, ?)",
                         (self.run_id, key, json.dumps(effects), datetime.now(UTC).isoformat(timespec="seconds")))

    def removed_together(self) -> dict[tuple[str, ...], dict[str, Any]]:
        """``{sorted component ids: effects}`` of every set of this run's components measured together (the latest
        measurement of each; the same components give the same numbers)."""
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT components, effects FROM removed_together WHERE id IN "
                "(SELECT MAX(id) FROM removed_together WHERE run_id = ? GROUP BY components)", (self.run_id,),
            ).fetchall()
        return {tuple(json.loads(components)): json.loads(effects) for components, effects in rows}

    def history(self, component: str | None = None) -> pd.DataFrame:
        """Every naming of this run's components (or of one), oldest first (:data:`HISTORY_COLUMNS`; an empty
        ``text`` is an unnaming)."""
        query = f"SELECT {', '.join(HISTORY_COLUMNS)} FROM concept_names WHERE run_id = ?"
        params: tuple[str, ...] = (self.run_id,)
        if component is not None:
            query += " AND component = ?"
            params += (self._check(component, "history"),)
        with self._connection() as conn:
            rows = conn.execute(query + " ORDER BY id", params).fetchall()
        return pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))
