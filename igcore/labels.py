"""Human labels of D′_eval images given z*, and how often L_M(·|x, z*) gives the same answer.

Imitative Generalization (Barnes, "Imitative Generalisation (AKA 'Learning the Prior')", AI Alignment
Forum, 2021) rests on L_M imitating L_H: a person who has read the hypothesis z labels x as
L_H(y | x, z) says, and L_M(y | x, z) is a model of that person. Nothing in the pipeline checks the
premise; this module collects the data that does. A person reads z* (its field guide, never a model's
answer), labels D′_eval images one at a time, and the **imitation agreement** is the share of those
labels that equal L_M's answer (the arg-max of L_M(·|x, z*) on the run's stored concept scores,
:mod:`igcore.likelihood`), with a Wilson 95% interval (``scipy.stats.binomtest``), per person and over
everyone's labels pooled (each label one trial; two people labelling one image are two trials).

The labels live in the dashboard's judgments database (``RUNS_DIR/judgments.sqlite``), table ``labels``,
under the same discipline as the judgments (:class:`igcore.prior.store.SQLiteFile`: WAL, ``BEGIN
IMMEDIATE``, busy timeout) and with server-side limits (rater name, image index, class). A person's
first answer for an image stands: answering the same image again changes nothing, so a double click
or a second browser tab cannot count twice. :func:`write_imitation` publishes the agreement into the
run (metrics key ``imitation``, the answers as ``labels/tables/answers.parquet``) through
:func:`igcore.store.recompute_output`.
"""

from __future__ import annotations

import io
import operator
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from igcore.errors import InputError
from igcore.hypothesis import Hypothesis
from igcore.likelihood import predict_proba
from igcore.prior.store import SQLiteFile, check_rater_name, check_run_id
from igcore.store import Run, recompute_output

#: Columns of :meth:`LabelStore.labels` and of the CSV export.
LABEL_COLUMNS = ("run_id", "image", "rater", "label", "created")
#: Pooled over everyone, in the agreement tables.
EVERYONE = "everyone"
#: The metrics key :func:`write_imitation` owns, and its folder in the run.
METRICS_KEY, FOLDER, TABLE = "imitation", "labels", "answers"

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS labels (
        id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, image INTEGER NOT NULL CHECK (image >= 0),
        rater TEXT NOT NULL, label TEXT NOT NULL, created TEXT NOT NULL, UNIQUE (run_id, rater, image))""",
    "CREATE INDEX IF NOT EXISTS labels_run ON labels (run_id, rater)",
)


def image_order(n_images: int, seed: int) -> np.ndarray:
    """The order in which images are shown: a permutation of ``range(n_images)`` fixed by ``seed``."""
    return np.random.default_rng(seed).permutation(n_images)


class LabelStore(SQLiteFile):
    """People's labels of one run's D′_eval images (table ``labels`` of a judgments database).

    Args:
        path: the database file (``RUNS_DIR/judgments.sqlite``; ``":memory:"`` for a private one).
        run_id: the run whose D′_eval images are labelled.
        classes: the run's classes (what a label may be).
        n_images: how many D′_eval images the run has (an image index is in ``[0, n_images)``).
    """

    def __init__(self, path: str | Path, run_id: str, classes: Sequence[str], n_images: int) -> None:
        super().__init__(path)
        self.run_id = check_run_id(run_id, "labels")
        self.classes = list(classes)
        if len(self.classes) < 2:
            raise InputError("labels: a run needs at least two classes to be labelled")
        self.n_images = int(n_images)
        with self._write() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)

    def add(self, rater: str, image: int, label: str) -> bool:
        """Store ``rater``'s answer ``label`` for D′_eval image ``image`` (committed when this returns).

        Returns False, and changes nothing, when this rater already labelled this image (the first answer
        stands). Raises :class:`InputError` for a bad name, image index or class.
        """
        where = "label"
        rater = check_rater_name(rater, where)
        try:
            if isinstance(image, bool):
                raise TypeError
            image = operator.index(image)
        except TypeError:
            raise InputError(f"{where}: image must be an integer index, got {image!r}") from None
        if not 0 <= image < self.n_images:
            raise InputError(f"{where}: image {image} is not a D′_eval image of run {self.run_id!r} (0-{self.n_images - 1})")
        if label not in self.classes:
            raise InputError(f"{where}: unknown class {label!r}; classes: {', '.join(self.classes)}")
        with self._write() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO labels (run_id, image, rater, label, created) VALUES (?, ?, ?, ?, ?)",
                (self.run_id, image, rater, label, datetime.now(UTC).isoformat(timespec="seconds")),
            )
        return cur.rowcount == 1

    def labels(self, rater: str | None = None) -> pd.DataFrame:
        """This run's labels (:data:`LABEL_COLUMNS`), in the order they were given; one rater's when named."""
        query = f"SELECT {', '.join(LABEL_COLUMNS)} FROM labels WHERE run_id = ?"
        params: tuple[Any, ...] = (self.run_id,)
        if rater is not None:
            query += " AND rater = ?"
            params += (check_rater_name(rater, "labels"),)
        with self._connection() as conn:
            rows = conn.execute(query + " ORDER BY id", params).fetchall()
        return pd.DataFrame(rows, columns=list(LABEL_COLUMNS)).astype({"image": np.int64})

    def next_image(self, rater: str, seed: int) -> int | None:
        """The first image of :func:`image_order` that ``rater`` has not labelled (None: all done)."""
        done = set(self.labels(rater)["image"].tolist())
        return next((int(i) for i in image_order(self.n_images, seed) if int(i) not in done), None)


# ------------------------------------------------------------------------------------------ agreement
@dataclass(frozen=True)
class Agreement:
    """How often someone's labels equal L_M's answer: ``agree`` of ``n``, ``rate`` with a Wilson 95% interval."""

    rater: str
    n: int
    agree: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lm_proba(run: Run) -> np.ndarray:
    """L_M(·|x, z*) on the run's D′_eval (N, C): z* as stored (``hypotheses.z_star_json``) applied to the
    stored concept scores (:func:`igcore.likelihood.predict_proba`)."""
    stored = run.metrics.get("hypotheses", {}).get("z_star_json")
    if not stored:
        raise InputError(f"run {run.run_id!r} has no z* (hypotheses.z_star_json); run its `ig` stage first")
    vocabulary, classes = run.vocabulary()
    z = Hypothesis.from_json(stored, vocabulary, classes)
    return predict_proba(run.tensors("concept_scores")["test_eval"], z, vocabulary, classes)


def _wilson(agree: int, n: int) -> tuple[float | None, float | None, float | None]:
    if n == 0:
        return None, None, None
    ci = binomtest(agree, n).proportion_ci(confidence_level=0.95, method="wilson")
    return agree / n, float(ci.low), float(ci.high)


def compare(labels: pd.DataFrame, proba: np.ndarray, classes: Sequence[str]) -> pd.DataFrame:
    """Each label beside L_M's answer: adds ``lm_label``, ``lm_p_label`` (L_M's probability of the
    person's label) and ``agree``."""
    classes = list(classes)
    proba = np.asarray(proba)
    if len(labels) and (labels["image"].max() >= len(proba) or labels["image"].min() < 0):
        raise InputError(f"labels refer to image {int(labels['image'].max())}, but L_M answered {len(proba)} images")
    idx = labels["image"].to_numpy(dtype=np.int64)
    answer = proba.argmax(1)[idx] if len(idx) else np.array([], dtype=np.int64)
    cols = labels["label"].map({c: i for i, c in enumerate(classes)})
    if cols.isna().any():
        raise InputError(f"labels hold a class this run does not have; classes: {', '.join(classes)}")
    person = cols.to_numpy(dtype=np.int64)
    out = labels.copy()
    out["lm_label"] = [classes[i] for i in answer]
    out["lm_p_label"] = proba[idx, person] if len(idx) else np.array([], dtype=np.float64)
    out["agree"] = answer == person
    return out


def agreement(labels: pd.DataFrame, proba: np.ndarray, classes: Sequence[str]) -> list[Agreement]:
    """Agreement with L_M per rater (in the order they first labelled) and, last, over everyone's labels."""
    compared = compare(labels, proba, classes)
    out = []
    for rater in dict.fromkeys(compared["rater"]):
        mine = compared.loc[compared["rater"] == rater, "agree"]
        out.append(Agreement(str(rater), len(mine), int(mine.sum()), *_wilson(int(mine.sum()), len(mine))))
    n, k = len(compared), int(compared["agree"].sum())
    out.append(Agreement(EVERYONE, n, k, *_wilson(k, n)))
    return out


def disagreements(labels: pd.DataFrame, proba: np.ndarray, classes: Sequence[str]) -> pd.DataFrame:
    """The labels that differ from L_M's answer (image, rater, label, lm_label, lm_p_label, created)."""
    compared = compare(labels, proba, classes)
    return compared.loc[~compared["agree"], ["image", "rater", "label", "lm_label", "lm_p_label", "created"]].reset_index(drop=True)


def to_csv(labels: pd.DataFrame) -> bytes:
    """The labels as CSV (UTF-8): :data:`LABEL_COLUMNS`."""
    buffer = io.StringIO()
    labels[list(LABEL_COLUMNS)].to_csv(buffer, index=False)
    return buffer.getvalue().encode("utf-8")


def imitation_metrics(labels: pd.DataFrame, proba: np.ndarray, classes: Sequence[str], z_star: Hypothesis) -> dict[str, Any]:
    """The ``imitation`` section of ``metrics.json``: overall and per-rater agreement with L_M."""
    rows = agreement(labels, proba, classes)
    overall = rows[-1].to_dict()
    overall.pop("rater")
    return {
        "overall": overall,
        "by_rater": {r.rater: {k: v for k, v in r.to_dict().items() if k != "rater"} for r in rows[:-1]},
        "n_raters": len(rows) - 1,
        "n_labels": int(len(labels)),
        "n_images": int(labels["image"].nunique()),
        "z_star": sorted([list(pair) for pair in z_star.structure]),
        "how": "share of people's labels of D′_eval images, given z*'s field guide, that equal the arg-max of "
        "L_M(·|x, z*); Wilson 95% interval; everyone's labels pooled, each label one trial",
        "written": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_imitation(run: Run, labels: pd.DataFrame) -> dict[str, Any]:
    """Publish the agreement of ``labels`` (:class:`LabelStore` rows of this run) into ``run``.

    Metrics key ``imitation`` (:func:`imitation_metrics`) and ``labels/tables/answers.parquet`` (every label
    beside L_M's answer), through :func:`igcore.store.recompute_output`: the previous ``labels/`` is kept
    as ``labels.v<N>``. Returns the metrics written.
    """
    if labels.empty:
        raise InputError("no labels to write yet: label some images first")
    if set(labels["run_id"]) != {run.run_id}:
        raise InputError(f"these labels are not all for run {run.run_id!r}")
    vocabulary, classes = run.vocabulary()
    z = Hypothesis.from_json(run.metrics["hypotheses"]["z_star_json"], vocabulary, classes)
    proba = lm_proba(run)
    section = imitation_metrics(labels, proba, classes, z)
    with recompute_output(run, FOLDER, {METRICS_KEY}) as output:
        table = compare(labels, proba, classes)
        (output.path / "tables").mkdir()
        table.to_parquet(output.path / "tables" / f"{TABLE}.parquet", index=False)
        output.metrics[METRICS_KEY] = section
    return section
