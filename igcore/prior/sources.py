"""The judgments a prior is fitted on, and where they came from: read from what a config names, recorded in a
run, joined with what people added for the run's world.

A run's z* depends on the human judgments its Prior_M learned from, so the run keeps them: the ``ig`` stage
writes exactly the ratings and pairwise preferences it fitted Prior_M on into the run directory, with their
provenance (which file or store, its SHA-256, who wrote the rows, which raters they name), atomically with
the rest of the run (:mod:`igcore.store` assembles a run in a temporary directory)::

    judgments/tables/ratings.parquet    rater, concept, class, rating, source, store_row
    judgments/tables/pairwise.parquet   rater, hypothesis_a, hypothesis_b, preferred, source, store_row
                                        (absent when no pairwise preference speaks about the world)
    judgments/provenance.json           :class:`Provenance`

``source`` names the :class:`Source` a row came from: ``shipped`` (``assets/judgments/``, written by the
project's developers as a worked example), ``prior.judgments`` / ``prior.pairwise`` (a file the person who
made the run named), ``prior.database`` (rows people had added in the dashboard's judgments store) or
``added`` (added in the store for this world after the run was made, see :meth:`Judgments.joined`).
``store_row`` is a row's id in that store, so a row a run already holds is never counted twice.

Where no pairwise preference compares hypotheses of the world, the hypothesis-shape costs of the prior
(length, weight size, class balance) carry over from the shipped pairwise file, fitted there by
Bradley-Terry; the run records the carried coefficients themselves (:class:`CarriedStructure`), so
re-solving a stored run (:mod:`igcore.resolve`) reproduces its z* exactly without reading the assets again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel

from igcore.errors import InputError
from igcore.hypothesis import Hypothesis
from igcore.prior.judgments import (
    ASSETS_DIR,
    PAIRWISE_COLUMNS,
    RATING_COLUMNS,
    SHIPPED_CLASSES,
    SHIPPED_PAIRWISE,
    SHIPPED_RATINGS,
    SHIPPED_VOCABULARY,
    load_judgments_csv,
    load_pairwise_csv,
    vocabulary_fingerprint,
)
from igcore.prior.model import MODEL_PARAMS, PriorModel
from igcore.prior.params import PriorConfig
from igcore.prior.store import JudgmentsStore
from igcore.worlds.base import Concept, Vocabulary

#: The folder of a run directory that holds the judgments it was solved with.
JUDGMENTS_FOLDER = "judgments"
PROVENANCE_FILE = "provenance.json"

SHIPPED = "shipped"
RATINGS_FILE = "prior.judgments"
PAIRWISE_FILE = "prior.pairwise"
DATABASE = "prior.database"
ADDED = "added"

#: Who wrote the rows of each kind of source, in words the pages and the report show.
WRITTEN_BY = {
    SHIPPED: "the project's developers as a worked example, not collected from other people in a study",
    RATINGS_FILE: "not recorded: the person who made the run gave this file (its rater column names the raters)",
    PAIRWISE_FILE: "not recorded: the person who made the run gave this file (its rater column names the raters)",
    DATABASE: "people on the dashboard's Prior page, each under the name they typed",
    ADDED: "people on the dashboard's Prior page, each under the name they typed",
}
NO_RATINGS = (
    "No ratings for this world's concepts: the prior knows nothing about them and rates every clause alike, so z* rests "
    "on the data alone. Rate clauses on the dashboard's Prior page or give prior.judgments (a CSV rater,concept,class,rating)."
)
#: The hypothesis-shape coefficients of Prior_M (what pairwise preferences identify).
STRUCTURE_COEFS = ("coef_length", "coef_weight", "coef_class_length", "coef_empty_class")


class Source(BaseModel):
    """One file or store some of the judgments came from."""

    key: str  # the ``source`` value of its rows
    kind: Literal["ratings", "pairwise"]
    where: str  # the file as named, or the judgments store's file
    sha256: str | None = None  # of the file's bytes, when a file was read
    written_by: str
    rows: int
    raters: list[str]


class CarriedStructure(BaseModel):
    """Hypothesis-shape coefficients fitted by Bradley-Terry on the shipped pairwise file, for a world that no
    pairwise preference speaks about (people's taste in a field guide's shape does not depend on its concepts)."""

    coef_length: float
    coef_weight: float
    coef_class_length: float
    coef_empty_class: float
    where: str
    sha256: str
    rows: int


class Provenance(BaseModel):
    """Where a set of judgments came from (``judgments/provenance.json`` of a run)."""

    world: str  # vocabulary_fingerprint of the world they speak about
    sources: list[Source] = []
    carried: CarriedStructure | None = None
    store_id: str | None = None  # the judgments store read through prior.database (JudgmentsStore.store_id)
    notes: list[str] = []
    #: False when not read from a run's record (a run made before runs recorded their judgments, or whose ``ig``
    #: stage has not run yet): then read afresh from what its config names, and ``unrecorded`` says why.
    recorded: bool = True
    unrecorded: str | None = None

    def of(self, kind: str) -> list[Source]:
        return [s for s in self.sources if s.kind == kind]

    def describe(self, added: bool = True) -> str:
        """What Prior_M learned from, who wrote it, in a few plain sentences (``added``: include what people added
        after the run)."""
        groups: dict[tuple[str, str], list[Source]] = {}
        for source in self.sources:
            if source.key != ADDED or added:
                file = source.where if source.key in (RATINGS_FILE, PAIRWISE_FILE) else ""
                groups.setdefault((source.key, file), []).append(source)
        parts = [_group_phrase(key, sources) for (key, _), sources in groups.items()]
        out = []
        if parts:
            out.append(f"Prior_M learned from {_join(parts)}.")
        if not [s for s in self.of("ratings") if s.rows]:
            out.append("No ratings speak about this world's concepts, so Prior_M rates every clause alike and z* rests on the data alone.")
        if self.carried is not None:
            out.append(
                "No pairwise preference compares field guides of this world, so the costs of a field guide's shape (length, strength "
                f"of claims, every class described) carry over from the {_count(self.carried.rows, 'pairwise preference')} shipped in "
                "`assets/judgments/` for the demo world, written by the project's developers as a worked example."
            )
        if any(s.key == SHIPPED for s in self.sources):
            out.append(f"The shipped judgments were written by {WRITTEN_BY[SHIPPED]}.")
        if not self.recorded and self.unrecorded:
            out.append(self.unrecorded)
        return " ".join(out)


@dataclass(frozen=True)
class Judgments:
    """Ratings and pairwise preferences with their provenance: what a Prior_M is fitted on.

    ``pairwise`` is None when no pairwise preference speaks about this world's vocabulary; the prior then
    takes its hypothesis-shape terms from the shipped pairwise file (``provenance.carried``, filled in by
    :func:`~igcore.prior.fit_prior`).
    """

    ratings: pd.DataFrame  # RATING_COLUMNS + source, store_row
    pairwise: pd.DataFrame | None  # PAIRWISE_COLUMNS + source, store_row
    provenance: Provenance

    @property
    def notes(self) -> list[str]:
        return list(self.provenance.notes)

    def n_added(self, kind: str = "ratings") -> int:
        """Ratings (``kind="pairwise"``: pairwise preferences) people added for this world on the Prior page that the run
        did not read (``source == "added"``)."""
        table = self.ratings if kind == "ratings" else self.pairwise
        return 0 if table is None else int((table["source"] == ADDED).sum())

    def key(self) -> str:
        """A digest of everything a fit reads (for caches)."""
        text = self.ratings.to_json() + ("" if self.pairwise is None else self.pairwise.to_json())
        carried = self.provenance.carried.model_dump_json() if self.provenance.carried else ""
        return hashlib.sha256((text + carried).encode()).hexdigest()

    def without(self, drop: Collection[str], vocabulary: Vocabulary, classes: Sequence[str]) -> Judgments:
        """These judgments without those about a concept in ``drop`` (ratings of it, preferences between hypotheses
        that mention it; ``vocabulary`` must hold every concept they mention), with a note counting them."""
        ratings, pairwise, note = _without(self.ratings, self.pairwise, frozenset(drop), vocabulary, list(classes))
        if len(ratings) == len(self.ratings) and (0 if pairwise is None else len(pairwise)) == (0 if self.pairwise is None else len(self.pairwise)):
            return self  # nothing spoke about a dropped concept
        return Judgments(ratings, pairwise, self.provenance.model_copy(update={"notes": _with(self.provenance.notes, note)}) if note
                         else self.provenance)

    # ------------------------------------------------------------------ joining what people added
    def joined(self, store: JudgmentsStore) -> Judgments:
        """These judgments plus what people added for this world in ``store`` (source ``added``), except the
        rows these judgments already hold (read through ``prior.database`` when the run was made)."""
        if store.world != self.provenance.world:
            raise InputError("the judgments store was opened for another world than these judgments; open it with the run's vocabulary")
        tables = {}
        sources = [s for s in self.provenance.sources if s.key != ADDED]
        for kind, own, rows in (("ratings", self.ratings, store.ratings()), ("pairwise", self.pairwise, store.pairwise())):
            if store.store_id == self.provenance.store_id and own is not None:
                rows = rows[~rows["id"].isin(own["store_row"].dropna().astype(np.int64))]
            new = _from_store(rows, ADDED, RATING_COLUMNS if kind == "ratings" else PAIRWISE_COLUMNS)
            tables[kind] = new if own is None else own if new.empty else pd.concat([own, new], ignore_index=True)
            if len(new):
                sources.append(Source(key=ADDED, kind=kind, where=store.path, written_by=WRITTEN_BY[ADDED], rows=len(new),
                                      raters=_raters(new)))
        pairwise = tables["pairwise"] if len(tables["pairwise"]) or self.pairwise is not None else None
        carried = self.provenance.carried if pairwise is None else None  # preferences about this world replace them
        return Judgments(tables["ratings"], pairwise, self.provenance.model_copy(update={"sources": sources, "carried": carried}))

    # ------------------------------------------------------------------ in a run directory
    @classmethod
    def recorded(cls, ratings: pd.DataFrame, pairwise: pd.DataFrame | None, provenance_json: bytes | str) -> Judgments:
        """Judgments as :meth:`write` recorded them in a run (read back by :meth:`igcore.store.Run.judgments`)."""
        return cls(_typed(ratings), pairwise, Provenance.model_validate_json(provenance_json))

    def write(self, folder: str | Path) -> None:
        """Write into ``folder`` (a run's ``judgments/``, while the run is assembled): the tables and the provenance."""
        folder = Path(folder)
        (folder / "tables").mkdir(parents=True, exist_ok=True)
        self.ratings.to_parquet(folder / "tables" / "ratings.parquet", index=False)
        if self.pairwise is not None:
            self.pairwise.to_parquet(folder / "tables" / "pairwise.parquet", index=False)
        (folder / PROVENANCE_FILE).write_text(self.provenance.model_dump_json(indent=1))



# ---------------------------------------------------------------------------------------------- loading
def load_judgments(prior: PriorConfig, vocabulary: Vocabulary, classes: Sequence[str], drop: Collection[str] = ()) -> Judgments:
    """The ratings and pairwise preferences a config asks for, with their provenance.

    Ratings: ``prior.judgments`` if set, else the shipped ones when they speak about this world's concepts and
    classes (otherwise none, with a note). Pairwise preferences: ``prior.pairwise`` if set, else the shipped
    ones when they fit. With ``prior.database`` (the dashboard's judgments store), what people added there for
    this world joins them. Files a person named must fit the world (a concept or class it does not have is an
    :class:`InputError`).

    Judgments about a concept in ``drop`` -- one withheld from the engine (``world.hide_concepts``), or a
    discovered concept nobody has named (outside z*'s language, :mod:`igcore.discover.names`) -- are left out:
    ratings of it, and pairwise preferences between hypotheses that mention it (a note counts them).
    """
    classes = list(classes)
    drop = frozenset(drop)
    reading = _with_concepts(vocabulary, drop)  # files may speak about the dropped concepts
    sources: list[Source] = []
    loaded: dict[str, pd.DataFrame | None] = {}
    for kind, reader, named, key, shipped in (("ratings", load_judgments_csv, prior.judgments, RATINGS_FILE, SHIPPED_RATINGS),
                                              ("pairwise", load_pairwise_csv, prior.pairwise, PAIRWISE_FILE, SHIPPED_PAIRWISE)):
        try:
            loaded[kind] = _read(reader, named or shipped, key if named else SHIPPED, kind, reading, classes, sources)
        except InputError:
            if named:
                raise
            loaded[kind] = None  # the shipped file speaks about another world (fit_prior carries the shape terms over)
    ratings, pairwise = loaded["ratings"], loaded["pairwise"]
    notes = []
    if drop:
        ratings, pairwise, note = _without(ratings, pairwise, drop, reading, classes)
        notes += [note] if note else []
    notes += [] if ratings is not None and len(ratings) else [NO_RATINGS]
    judgments = Judgments(
        ratings if ratings is not None else _from_store(_empty(RATING_COLUMNS), SHIPPED, RATING_COLUMNS),
        pairwise,
        Provenance(world=vocabulary_fingerprint(vocabulary, classes), sources=sources, notes=notes),
    )
    if not prior.database:
        return judgments
    store = JudgmentsStore(prior.database, vocabulary, classes)
    joined = judgments.joined(store)  # the store's rows as "added", then named for what they are here
    sources = [s.model_copy(update={"key": DATABASE, "written_by": WRITTEN_BY[DATABASE]}) if s.key == ADDED else s
               for s in joined.provenance.sources]
    rename = {"source": {ADDED: DATABASE}}
    found = Judgments(
        joined.ratings.replace(rename),
        None if joined.pairwise is None else joined.pairwise.replace(rename),
        joined.provenance.model_copy(update={"sources": sources, "store_id": store.store_id}),
    )
    return found.without(drop, vocabulary, classes) if drop else found  # the store's rows may speak about them too


def _with_concepts(vocabulary: Vocabulary, ids: Collection[str]) -> Vocabulary:
    """``vocabulary`` and the concepts ``ids`` it lacks (to read judgments that speak about them)."""
    extra = tuple(Concept(c, c, "core") for c in sorted(set(ids) - set(vocabulary.ids)))
    return Vocabulary(vocabulary.concepts + extra) if extra else vocabulary


def _without(ratings: pd.DataFrame | None, pairwise: pd.DataFrame | None, drop: frozenset[str], vocabulary: Vocabulary,
             classes: list[str]) -> tuple[pd.DataFrame | None, pd.DataFrame | None, str | None]:
    """The ratings without those of concepts in ``drop``, the preferences without those that mention one, and a note."""
    vocabulary = _with_concepts(vocabulary, drop)
    left_out = 0
    if ratings is not None:
        keep = ~ratings["concept"].isin(drop)
        left_out = int((~keep).sum())
        ratings = ratings[keep].reset_index(drop=True)
    if pairwise is not None:
        def clean(text: str) -> bool:
            return not Hypothesis.from_json(text, vocabulary, classes).concepts_used() & drop

        keep = [clean(a) and clean(b) for a, b in zip(pairwise["hypothesis_a"], pairwise["hypothesis_b"], strict=True)]
        pairwise = pairwise[keep].reset_index(drop=True) if any(keep) else None
    note = f"{left_out} rating(s) about concepts withheld from the engine or not yet named were left out" if left_out else None
    return ratings, pairwise, note


def _read(reader: Callable[[str | Path, Vocabulary, Sequence[str]], pd.DataFrame], path: str | Path, key: str, kind: str,
          vocabulary: Vocabulary, classes: list[str], sources: list[Source]) -> pd.DataFrame:
    """Read one CSV with ``reader`` (validating it), note it as a :class:`Source`, tag its rows ``key``."""
    df = reader(path, vocabulary, classes)
    path = Path(path)
    where = str(path.resolve().relative_to(ASSETS_DIR.parent)) if key == SHIPPED else str(path)
    sources.append(Source(key=key, kind=kind, where=where, sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                          written_by=WRITTEN_BY[key], rows=len(df), raters=_raters(df)))
    return _from_store(df.assign(id=pd.NA), key, RATING_COLUMNS if kind == "ratings" else PAIRWISE_COLUMNS)



# ---------------------------------------------------------------------------------------------- fitting
def fit_prior(prior: PriorConfig, judgments: Judgments, vocabulary: Vocabulary, classes: Sequence[str]) -> PriorModel:
    """Prior_M fitted on ``judgments`` with the ``prior`` section's parameters: the one way a prior is built (the
    pipeline, the re-solve of a stored run and the dashboard all call this).

    Without pairwise preferences for this world, the hypothesis-shape coefficients are the carried ones the
    judgments recorded, or are carried over from the shipped pairwise file now (:class:`CarriedStructure`).
    The model's ``judgments_`` are ``judgments`` with the carried coefficients and the notes filled in.
    """
    model = PriorModel(**prior.model_dump(include=set(MODEL_PARAMS)))
    provenance = judgments.provenance
    if judgments.pairwise is None and prior.fit_pairwise:
        carried = provenance.carried or _carried_structure(prior)
        model.fit_pairwise = False
        for name in STRUCTURE_COEFS:
            setattr(model, name, getattr(carried, name))
        note = (
            "No pairwise judgments compare hypotheses of this world: the preferences about a field guide's shape "
            "(length, strength of claims, every class described) carry over from the shipped Snow-and-Wolves "
            "pairwise file, fitted there by Bradley-Terry."
        )
        provenance = provenance.model_copy(update={"carried": carried, "notes": _with(provenance.notes, note)})
    model.fit(judgments.ratings, vocabulary, classes, judgments.pairwise)
    model.judgments_ = replace(judgments, provenance=provenance)
    return model


def _carried_structure(prior: PriorConfig) -> CarriedStructure:
    """The hypothesis-shape coefficients of Prior_M fitted on the shipped judgments of the demo world."""
    vocabulary, classes = Vocabulary.from_csv(SHIPPED_VOCABULARY), list(SHIPPED_CLASSES)
    ratings = load_judgments_csv(SHIPPED_RATINGS, vocabulary, classes)
    pairwise = load_pairwise_csv(SHIPPED_PAIRWISE, vocabulary, classes)
    shipped = PriorModel(**prior.model_dump(include=set(MODEL_PARAMS))).fit(ratings, vocabulary, classes, pairwise)
    return CarriedStructure(
        **{name: float(getattr(shipped, f"{name}_")) for name in STRUCTURE_COEFS},
        where=str(SHIPPED_PAIRWISE.relative_to(ASSETS_DIR.parent)),
        sha256=hashlib.sha256(SHIPPED_PAIRWISE.read_bytes()).hexdigest(),
        rows=len(pairwise),
    )


# ---------------------------------------------------------------------------------------------- helpers
def _from_store(rows: pd.DataFrame, key: str, columns: Sequence[str]) -> pd.DataFrame:
    """Rows of a CSV or a store (``id`` = the store's row id) as judgments rows tagged ``key``."""
    out = rows[list(columns)].copy().assign(source=key, store_row=rows["id"].to_numpy() if len(rows) else [])
    return _typed(out)


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    df = df.reset_index(drop=True)
    df["store_row"] = df["store_row"].astype("Int64")
    if "rating" in df:
        df["rating"] = df["rating"].astype(np.int64)
    return df


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=np.int64 if c == "rating" else object) for c in (*columns, "id")})


def _raters(df: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(df["rater"].astype(str)))


def _with(notes: Sequence[str], note: str) -> list[str]:
    return list(notes) if note in notes else [*notes, note]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _names(raters: Sequence[str], most: int = 6) -> str:
    shown = ", ".join(raters[:most])
    return shown + (f" and {len(raters) - most} more" if len(raters) > most else "")


def _join(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _group_phrase(key: str, sources: Sequence[Source]) -> str:
    """``"24 ratings by 1 rater (dev-1) in `ratings.csv` (given as prior.judgments)"`` and the like."""
    counts = " and ".join(_count(s.rows, "rating" if s.kind == "ratings" else "pairwise preference") for s in sources)
    raters = list(dict.fromkeys(r for s in sources for r in s.raters))
    if key == SHIPPED:
        return f"{counts} shipped in `assets/judgments/` ({_count(len(raters), 'answer set')}: {_names(raters)})"
    by = f"by {_count(len(raters), 'rater')} ({_names(raters)})"
    if key in (RATINGS_FILE, PAIRWISE_FILE):
        return f"{counts} {by} in `{Path(sources[0].where).name}` (given as {key})"
    if key == DATABASE:
        return f"{counts} {by} that had been added on the dashboard's Prior page (read through prior.database)"
    return f"{counts} {by} added on the Prior page that the run did not read"
