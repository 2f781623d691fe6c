"""What a run directory contains: one schema for the writer (the pipeline), the reader (:class:`igcore.store.Run`),
the CLI, the bench scripts and the dashboard.

Layout of ``RUNS_DIR/<run_id>/``::

    manifest.json          :class:`Manifest`: schema version, config, seed, package versions, stages, status
    metrics.json           :class:`Metrics`: the contract of the design (methods, hypotheses, microscope, ...)
    contact_sheet.png      example images of every split and group
    tables/<name>.parquet  :data:`TABLES` (per-example tables and their columns)
    tensors/<name>.safetensors  :data:`TENSORS`
    models/<name>/         ``save_pretrained`` weights (safetensors) + ``estimator.json``
    microscope/            the microscope's own tables, tensors and attribution cache (igcore/microscope/stage.py)

The metrics models are *open* (extra keys allowed) so that a newer engine can add keys without
breaking older readers; the keys below are the ones every reader may rely on. The schema version is
bumped whenever a reader would misread a run; :func:`check_version` reads runs of
:data:`READABLE_VERSIONS` and refuses others with one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from igcore.errors import InputError

#: Version written by this engine. 2: explicit stage graph (stages record requires/provides), config schema.
SCHEMA_VERSION = 2
#: Versions this engine reads. Version 1 has the same files, keys and columns as version 2.
READABLE_VERSIONS = (1, 2)

RunStatus = Literal["running", "complete", "failed"]


def check_version(version: Any, run_id: str) -> int:
    """The run's schema version if this engine can read it, else :class:`InputError` with one line."""
    if not isinstance(version, int) or isinstance(version, bool):
        raise InputError(f"run {run_id!r} has no valid schema_version in manifest.json; it was not written by IG Microscope")
    if version not in READABLE_VERSIONS:
        newer = version > SCHEMA_VERSION
        raise InputError(
            f"run {run_id!r} has schema version {version}; this IG Microscope reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}" + ("; upgrade IG Microscope to open it" if newer else "; recompute the run")
        )
    return version


class _Open(BaseModel):
    """A record readers may rely on for the declared keys; further keys are kept."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


# ------------------------------------------------------------------------------------------- manifest


class StageRecord(_Open):
    seconds: float
    requires: list[str] = []
    provides: list[str] = []


class RunNote(_Open):
    stage: str
    note: str


class Manifest(_Open):
    schema_version: int
    run_id: str
    created: str
    status: RunStatus
    config: dict[str, Any]
    seed: int | None = None
    packages: dict[str, str] = {}
    machine: dict[str, Any] = {}
    device: str | None = None
    stages: dict[str, StageRecord] = {}
    stages_selected: list[str] = []
    prepare_seconds: float | None = None
    total_seconds: float | None = None
    notes: list[RunNote] = []


# -------------------------------------------------------------------------------------------- metrics


class ConceptRecord(_Open):
    id: str
    text: str
    kind: str


class WorldInfo(_Open):
    name: str
    classes: list[str]
    backgrounds: list[str]
    groups: list[str]
    vocabulary: list[ConceptRecord]
    sizes: dict[str, int]
    train_group_counts: dict[str, int]


class MethodMetrics(_Open):
    """``methods.<method>``: accuracies on D′_eval as fractions in [0, 1] (trained models also report
    ``val_acc`` and ``best_epoch``; peers say what extra labels they ``uses``)."""

    avg_acc: float
    worst_group_acc: float
    worst_group: str
    group_acc: dict[str, float]
    group_n: dict[str, int]
    train_weighted_acc: float | None = None
    val_acc: float | None = None
    best_epoch: int | None = None


class ClauseRecord(_Open):
    """A clause of a hypothesis: "``text`` is evidence for ``class`` with strength ``weight``"."""

    concept: str
    kind: str
    cls: str = Field(alias="class")
    weight: float
    text: str


class RankedRecord(_Open):
    clauses: list[ClauseRecord]
    log_prior: float
    log_likelihood: float
    log_posterior: float
    posterior: float


class Hypotheses(_Open):
    z_star: list[ClauseRecord] | None = None
    z_star_text: str | None = None
    z_star_json: dict[str, Any] | None = None
    no_prior: list[ClauseRecord] | None = None
    no_prior_text: str | None = None
    no_prior_json: dict[str, Any] | None = None
    ranked: list[RankedRecord] = []
    no_prior_ranked: list[RankedRecord] = []
    z_baseline: list[ClauseRecord] | None = None
    z_baseline_text: str | None = None
    z_student: list[ClauseRecord] | None = None
    z_student_text: str | None = None


class Metrics(_Open):
    """``metrics.json``. Sections are absent until the stage that writes them has run."""

    world: WorldInfo | None = None
    methods: dict[str, MethodMetrics] = {}
    concepts: dict[str, Any] | None = None
    prior: dict[str, Any] | None = None
    hypotheses: Hypotheses = Hypotheses()
    microscope: dict[str, dict[str, Any]] = {}
    surrogates: dict[str, Any] = {}
    clause_deletion: dict[str, list[dict[str, Any]]] = {}
    #: agreement of people's labels of D′_eval, given z*, with L_M(·|x, z*) (igcore.labels.write_imitation)
    imitation: dict[str, Any] | None = None
    #: per source model, its discovered concepts: resemblance, calibration, ablation effects (igcore.discover)
    discover: dict[str, dict[str, Any]] = {}


# --------------------------------------------------------------------------------------- tables, tensors


def pred_column(method: str) -> str:
    """Column of ``predictions`` holding ``method``'s predicted class index on D′_eval."""
    return f"pred_{method}"


def proba_column(method: str, cls: str) -> str:
    """Column of ``predictions`` holding ``method``'s probability of class ``cls``."""
    return f"p_{method}_{cls}"


def true_column(concept: str) -> str:
    """Column of a ``split_<name>`` table holding the 0/1 annotation of ``concept``."""
    return f"true_{concept}"


def methods_in(columns: Any) -> list[str]:
    """Methods that have a prediction column among ``columns``."""
    return [c[len("pred_") :] for c in columns if str(c).startswith("pred_")]


@dataclass(frozen=True)
class TableSpec:
    """A Parquet table of a run: its required columns and the families of columns named per method/concept."""

    description: str
    columns: tuple[str, ...]
    families: tuple[str, ...] = ()


SPLIT_TABLE = TableSpec(
    "per-example metadata of a split (no pixels)",
    ("index", "label", "group", "background"),
    (true_column("<concept>"),),
)

TABLES: dict[str, TableSpec] = {
    **{f"split_{name}": SPLIT_TABLE for name in ("train", "val", "test_train", "test_eval", "concept_bank")},
    "discover_effects": TableSpec(
        "each discovered concept's ablation effect on every examined model, overall (group ``all``) and per group",
        ("source", "component", "model", "group", "mean", "ci_low", "ci_high", "n"),
    ),
    "predictions": TableSpec(
        "every evaluated method's answer on D′_eval",
        ("index", "label", "group", "background"),
        (pred_column("<method>"), proba_column("<method>", "<class>")),
    ),
}

TENSORS: dict[str, str] = {
    "test_eval": "images uint8 (N,H,W,3), masks uint8 (N,H,W) of D′_eval",
    "concept_bank": "images uint8 (N,H,W,3), concepts uint8 (N,K) of the concept bank",
    "concept_scores": "concept model probabilities float32 (N,K) per split: train, val, test_train, test_eval",
    "pseudo_labels": "test_train: L_M(.|x', z*) float32 (N,C), the student's targets",
}


def check_table(name: str, columns: Any, run_id: str) -> None:
    """Refuse a stored table that lacks a required column (one line naming it)."""
    spec = TABLES.get(name)
    if spec is None:
        return
    missing = [c for c in spec.columns if c not in set(columns)]
    if missing:
        raise InputError(f"run {run_id!r}: table {name!r} lacks column(s) {', '.join(missing)}; the run is damaged")
