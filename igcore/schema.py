"""What a run directory contains: one schema for the writer (the pipeline), the reader (:class:`igcore.store.Run`),
the CLI, the bench scripts and the dashboard.

Layout of ``RUNS_DIR/<run_id>/``::

    manifest.json          :class:`Manifest`: schema version, config, seed, package versions, stages, status
    metrics.json           :class:`Metrics`: the contract of the design (methods, hypotheses, microscope, ...)
    contact_sheet.png      example images of every split and group
    tables/<name>.parquet  :data:`TABLES` (per-example tables and their columns)
    tensors/<name>.safetensors  :data:`TENSORS`
    models/<name>/         ``save_pretrained`` weights (safetensors) + ``estimator.json``
    microscope/            the microscope's own tables, tensors and attribution cache (igcore/microscope/runner.py)

The metrics models are *open* (extra keys allowed) so that a newer engine can add keys without
breaking older readers; the keys below are the ones every reader may rely on. The schema version is
bumped whenever a reader would misread a run; :func:`check_version` reads runs of
:data:`READABLE_VERSIONS` and refuses others with one line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from igcore.errors import InputError

#: Version written by this engine. 2: explicit stage graph (stages record requires/provides), config schema.
SCHEMA_VERSION = 2
#: Versions this engine reads. Version 1 has the same files, keys and columns as version 2.
READABLE_VERSIONS = (1, 2)

RunStatus = Literal["running", "complete", "failed"]

RUN_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"


def check_run_id(run_id: str) -> str:
    """Run ids are single path components of safe characters (no separators, no ``..``)."""
    if not isinstance(run_id, str) or not re.fullmatch(RUN_ID_PATTERN, run_id) or ".." in run_id:
        raise InputError(f"invalid run id {run_id!r}: use letters, digits, '.', '_' and '-' only (no '/', no '..')")
    return run_id


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


class StageSchedule(_Open):
    """When a stage started (seconds since the run's first stage did), how many stages ran then, itself included,
    and how many CPUs other processes kept busy (with ``runtime.stages`` null): igcore.pipeline.run_stages."""

    started_s: float
    stages_at_once: int = 1
    others_busy_cpus: float | None = None


class StageRecord(_Open):
    seconds: float
    requires: list[str] = []
    provides: list[str] = []
    schedule: StageSchedule | None = None  # None: runs written before stages recorded when they started


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
    warm_seconds: float | None = None  # torch's kernels initialised before stages run side by side (igcore.runtime.warm_kernels)
    threads: dict[str, Any] = {}  # the thread policy in effect (igcore.runtime.thread_policy)
    precision: str | None = None  # arithmetic of the training steps (igcore.runtime.training_precision); None = runs before it was recorded: float32
    heap: dict[str, int] = {}  # glibc malloc settings applied (igcore.runtime.keep_freed_memory); {} = the library's defaults
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


class ImplausibleClause(_Open):
    """A clause of z* a rater is less likely than not to endorse (Prior_M's plausibility below one half)."""

    concept: str
    cls: str = Field(alias="class")
    plausibility: float


class Hypotheses(_Open):
    z_star: list[ClauseRecord] | None = None
    z_star_text: str | None = None
    z_star_implausible: list[ImplausibleClause] = []
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


# ------------------------------------------------------------------------------------------- microscope


class Interval(_Open):
    """A mean with its bootstrap 95% interval over ``n`` images (``igcore.microscope.counterfactuals.mean_ci``);
    the bounds are None below two images."""

    mean: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = 0


class Effect(_Open):
    """``microscope.<model>.effects.<kind>``: the change in the log-odds of the model's own answer when only
    the ``kind`` (background or object) of a D′ image is swapped."""

    overall: Interval | None = None
    by_group: dict[str, Interval] = {}
    flip_rate: float | None = None
    how: str | None = None


class SwapAttribution(_Open):
    """``microscope.<model>.swap_attribution``: integrated gradients of the log-odds of the model's answer
    from the double swap to the original. Completeness makes the background and object parts add up (up to
    the completeness gap) to the total change; all three are in log-odds, per image, averaged.

    ``background_share`` (the background part over the total) is kept for older readers: it is unbounded
    when the parts pull in opposite directions, so people are shown the parts instead.
    """

    background_log_odds: Interval | None = None
    object_log_odds: Interval | None = None
    total_log_odds: Interval | None = None
    background_log_odds_by_group: dict[str, Interval] = {}
    object_log_odds_by_group: dict[str, Interval] = {}
    background_share: Interval | None = None
    background_share_by_group: dict[str, Interval] = {}
    completeness_gap: float | None = None
    n_steps: int | None = None


class SanityCheck(_Open):
    """``microscope.<model>.sanity.<method>``: the model-randomisation test (Adebayo et al., 2018) of one
    attribution method's maps of one model; ``trustworthy`` is None when the maps did not vary."""

    trustworthy: bool | None = None
    final_spearman_abs: float | None = None
    threshold: float | None = None


class TCAVRecord(_Open):
    """One TCAV score (``microscope.<model>.tcav``): concept towards class at a layer, over the engine's repeats."""

    concept: str
    cls: str = Field("", alias="class")
    layer: str = ""
    score: float
    p_value: float | None = None
    significant: bool = False
    unstable: bool = False
    repeats: int = 1
    significant_repeats: int | None = None
    score_min: float | None = None
    score_max: float | None = None

    @property
    def status(self) -> Literal["significant", "unstable", "not significant"]:
        """``significant`` (in every repeat), ``unstable`` (in some) or ``not significant`` (in none)."""
        return "significant" if self.significant else "unstable" if self.unstable else "not significant"


class TCAVControls(_Open):
    """``microscope.<model>.tcav_controls``: random image sets tested and judged exactly like concepts."""

    n_tests: int = 0
    not_significant_rate: float | None = None
    repeats: int | None = None
    single_repeat_not_significant_rate: float | None = None


class Precision(_Open):
    """``microscope.<model>.precision``: how precise the counterfactual effects came out
    (:mod:`igcore.microscope.plan`). Without a budget, or when D′ fits it, every image asked for is swapped at
    once (``effects_all_images``); otherwise images are added in stratified rounds until every effect's 95%
    half-width (log-odds) is below ``target_half_width`` or the effects' share of the budget is spent.
    Half-widths are None where an interval is undefined (fewer than two images)."""

    effects_half_width: dict[str, float | None] = {}
    effects_images: int = 0
    effects_all_images: bool = True
    target_half_width: float | None = None
    rounds: int = 0
    swap_attribution_steps: int | None = None
    swap_attribution_half_width: dict[str, float | None] = {}


class MicroscopeSection(_Open):
    """``microscope.<model>``: everything the microscope measured on one model (absent parts were not run, or
    the data cannot support them: ``unavailable`` holds the engine's reason per part)."""

    # None where no image of the sample had positive attribution (a share of nothing is undefined)
    relevance_on_animal: dict[str, float | None] = {}
    relevance_on_animal_by_group: dict[str, dict[str, float | None]] = {}
    mask_area_share: float | None = None
    swap_flip_rate: float | None = None
    swap_acc: float | None = None
    swap_n: int | None = None
    effects: dict[str, Effect] = {}
    swap_attribution: SwapAttribution | None = None
    sanity: dict[str, SanityCheck] = {}
    tcav: list[TCAVRecord] = []
    tcav_controls: TCAVControls | None = None
    precision: Precision | None = None
    unavailable: dict[str, str] = {}


class ClauseDeletionPart(_Open):
    """Where a clause's concept is present (or absent): how many images, how many of L_M's answers change
    when the clause is deleted, and the mean drop in the probability of the clause's class."""

    n: int = 0
    answer_change_rate: float | None = None
    mean_drop: float | None = None


class ClauseDeletion(_Open):
    """``clause_deletion.<hypothesis>``: one clause and what deleting it does (:func:`igcore.likelihood.clause_deletion`)."""

    concept: str
    cls: str = Field(alias="class")
    weight: float
    text: str = ""
    present: ClauseDeletionPart = ClauseDeletionPart()
    absent: ClauseDeletionPart = ClauseDeletionPart()
    #: one-sided Fisher exact test that answers change more often where the concept is present (runs before it: absent)
    p_value: float | None = None
    specific: bool | None = None


class Surrogate(_Open):
    """``surrogates.<hypothesis>``: how faithfully a readable hypothesis reproduces a model's answers on D′."""

    model: str | None = None
    fidelity: float | None = None
    fidelity_ci_low: float | None = None
    fidelity_ci_high: float | None = None
    n_eval: int | None = None
    n_disagree: int | None = None



# --------------------------------------------------------------------------------- discovered concepts
class BestMatch(_Open):
    """The annotated concept, background or group a discovered concept's presence matches best."""

    name: str
    auc: float | None = None


class Resemblance(_Open):
    """Presence AUC on D′_eval of a discovered concept against every annotated concept, background and group."""

    concepts: dict[str, float | None] = {}
    backgrounds: dict[str, float | None] = {}
    groups: dict[str, float | None] = {}
    best_concept: BestMatch | None = None
    best_background: BestMatch | None = None
    best_group: BestMatch | None = None


class ComponentEffect(_Open):
    """What removing a discovered concept from one model's layer does to the log-odds of its answers on D′_eval."""

    overall: Interval
    by_group: dict[str, Interval] = {}
    flip_rate: float | None = None  # share of answers that change
    rank: int  # 1 = the component the model relies on most (most negative effect)
    share: float | None = None  # share of the model's layer variance the component's pattern explains


class DiscoveredComponent(_Open):
    """One discovered concept ``discovered::<source>/<k>`` (igcore.discover)."""

    id: str
    k: int
    text: str
    named: bool
    present_share: dict[str, float] = {}  # per split, the share of images where it is present (calibrated)
    threshold: float | None = None  # presence score above which it counts as present
    resembles: Resemblance = Resemblance()
    effects: dict[str, ComponentEffect] = {}


class DiscoverSource(_Open):
    """``discover.<source>``: the components of one model's layer, what they resemble and their effects."""

    layer: str
    k: int
    k_selection: dict[str, Any] | None = None  # how K was chosen (None: discover.k was given)
    reconstruction_error: float | None = None
    transfer_r2: dict[str, float] = {}  # per examined model: how well its layer is read by the components
    effect: str = ""
    ranking: dict[str, list[str]] = {}  # per examined model: component ids, most relied on first
    components: list[DiscoveredComponent] = []


class Metrics(_Open):
    """``metrics.json``. Sections are absent until the stage that writes them has run."""

    world: WorldInfo | None = None
    methods: dict[str, MethodMetrics] = {}
    concepts: dict[str, Any] | None = None
    prior: dict[str, Any] | None = None
    hypotheses: Hypotheses = Hypotheses()
    microscope: dict[str, MicroscopeSection] = {}
    surrogates: dict[str, Surrogate] = {}
    clause_deletion: dict[str, list[ClauseDeletion]] = {}
    #: agreement of people's labels of D′_eval, given z*, with L_M(·|x, z*) (igcore.labels.write_imitation)
    imitation: dict[str, Any] | None = None
    #: per source model, its discovered concepts: resemblance, calibration, ablation effects (igcore.discover)
    discover: dict[str, DiscoverSource] = {}


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
