"""Human judgments as tables: reading, validating and writing the ratings and pairwise CSVs.

Ratings are ``rater,concept,class,rating`` rows (1-5: "how plausible is it that <concept> is evidence for
<class>?"); pairwise preferences are ``rater,hypothesis_a,hypothesis_b,preferred`` rows between whole
hypotheses. Every reader validates before anything is trained on the data and reports the first problem
as a one-line :class:`InputError` naming the file and line.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from igcore.errors import InputError
from igcore.hypothesis import Hypothesis
from igcore.worlds.base import Vocabulary

ASSETS_DIR = Path(__file__).resolve().parents[2] / "assets"
JUDGMENTS_DIR = ASSETS_DIR / "judgments"
SHIPPED_RATINGS = JUDGMENTS_DIR / "ratings.csv"
SHIPPED_PAIRWISE = JUDGMENTS_DIR / "pairwise.csv"
#: The vocabulary and classes the shipped judgments speak about (the Snow-and-Wolves world).
SHIPPED_VOCABULARY = ASSETS_DIR / "snowwolf_vocabulary.csv"
SHIPPED_CLASSES = ("husky", "wolf")
RATING_COLUMNS = ("rater", "concept", "class", "rating")
PAIRWISE_COLUMNS = ("rater", "hypothesis_a", "hypothesis_b", "preferred")


def vocabulary_fingerprint(vocabulary: Vocabulary, classes: Sequence[str]) -> str:
    """A short name of the world a judgment can speak about: a hash of its concept ids and class names.

    Ratings and preferences refer to concepts and classes by id, so two runs whose worlds have the same
    ids and classes (whatever their order, the concepts' wording or the images) can share judgments, and
    runs of worlds that differ in any id never see each other's.
    """
    key = json.dumps({"concepts": sorted(vocabulary.ids), "classes": sorted(map(str, classes))}, separators=(",", ":"))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def check_rating_value(value: Any, where: str) -> int:
    """``value`` as an int if it is an integer 1-5 (``"4"``, ``4.0`` accepted), else :class:`InputError`."""
    if isinstance(value, bool):
        raise InputError(f"{where}: rating must be an integer 1-5, got {value!r}")
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: rating must be an integer 1-5, got {value!r}") from None
    if not math.isfinite(f) or f != int(f) or not 1 <= f <= 5:
        raise InputError(f"{where}: rating must be an integer 1-5, got {value!r}")
    return int(f)


def check_rater(value: Any, where: str) -> str:
    """The stripped rater name; :class:`InputError` if it is missing or blank."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or not str(value).strip():
        raise InputError(f"{where}: rater must be a non-empty name")
    return str(value).strip()


def check_clause_ids(concept: Any, cls: Any, vocabulary: Vocabulary, classes: Sequence[str], where: str) -> None:
    """:class:`InputError` unless ``concept`` is in the vocabulary and ``cls`` is one of ``classes``."""
    if concept not in vocabulary.ids:
        raise InputError(f"{where}: unknown concept {concept!r}; known concepts: {', '.join(vocabulary.ids)}")
    if cls not in classes:
        raise InputError(f"{where}: unknown class {cls!r}; classes: {', '.join(classes)}")


def validate_ratings(
    df: pd.DataFrame, vocabulary: Vocabulary, classes: Sequence[str], source: str = "ratings", allow_empty: bool = False
) -> pd.DataFrame:
    """Check a ratings table (columns ``rater,concept,class,rating``) and return a clean copy.

    Raises :class:`InputError` naming missing columns, the first bad row (unknown concept/class, rating
    not an integer in 1-5, empty rater) or an empty table.
    """
    missing = [c for c in RATING_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{source}: missing columns {', '.join(missing)}; a judgments CSV needs columns {','.join(RATING_COLUMNS)}")
    if len(df) == 0 and not allow_empty:
        raise InputError(f"{source}: no ratings; add at least one row rater,concept,class,rating")
    out = df[list(RATING_COLUMNS)].copy()
    ratings = []
    for i, row in enumerate(out.itertuples(index=False), start=2):  # line numbers as in the CSV (header = 1)
        where = f"{source} line {i}"
        check_rater(row[0], where)
        check_clause_ids(row[1], row[2], vocabulary, classes, where)
        ratings.append(check_rating_value(row[3], where))
    out["rater"] = out["rater"].astype(str).str.strip()
    out["rating"] = np.asarray(ratings, dtype=np.int64)
    return out.reset_index(drop=True)


def _read_csv(path: str | Path, what: str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file {str(path)!r} does not exist")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise InputError(f"{what} file {str(path)!r} is not a readable CSV: {str(e).splitlines()[0]}") from None


def load_judgments_csv(path: str | Path, vocabulary: Vocabulary, classes: Sequence[str]) -> pd.DataFrame:
    """Read and validate a ratings CSV with columns ``rater,concept,class,rating`` (rating integer 1-5)."""
    return validate_ratings(_read_csv(path, "judgments"), vocabulary, classes, source=str(path))


def validate_pairwise(
    df: pd.DataFrame, vocabulary: Vocabulary, classes: Sequence[str], source: str = "pairwise"
) -> pd.DataFrame:
    """Check a pairwise table (``rater,hypothesis_a,hypothesis_b,preferred``; preferred is ``a`` or ``b``).

    Hypotheses are JSON (a list of ``{concept, class, weight}`` clauses or ``{"clauses": [...]}``) and are
    parsed with :meth:`Hypothesis.from_json`; errors name the line.
    """
    missing = [c for c in PAIRWISE_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{source}: missing columns {', '.join(missing)}; a pairwise CSV needs columns {','.join(PAIRWISE_COLUMNS)}")
    out = df[list(PAIRWISE_COLUMNS)].copy()
    for i, row in enumerate(out.itertuples(index=False), start=2):
        where = f"{source} line {i}"
        check_rater(row[0], where)
        for text in (row[1], row[2]):
            try:
                Hypothesis.from_json(text, vocabulary, classes)
            except InputError as e:
                raise InputError(f"{where}: {e}") from None
        if str(row[3]).strip().lower() not in ("a", "b"):
            raise InputError(f"{where}: preferred must be 'a' or 'b', got {row[3]!r}")
    out["rater"] = out["rater"].astype(str).str.strip()
    out["preferred"] = out["preferred"].astype(str).str.strip().str.lower()
    return out.reset_index(drop=True)


def load_pairwise_csv(path: str | Path, vocabulary: Vocabulary, classes: Sequence[str]) -> pd.DataFrame:
    """Read and validate a pairwise-preference CSV (see :func:`validate_pairwise`)."""
    return validate_pairwise(_read_csv(path, "pairwise"), vocabulary, classes, source=str(path))


def write_ratings_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a ratings table as a judgments CSV (``rater,concept,class,rating``)."""
    path = Path(path)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(RATING_COLUMNS)
        for row in df[list(RATING_COLUMNS)].itertuples(index=False):
            w.writerow(list(row))
    return path
