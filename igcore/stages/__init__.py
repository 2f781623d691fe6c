"""The pipeline's stages, in order, in one place: everything about each stage.

A stage is a function ``run(ctx) -> info`` over the :class:`~igcore.context.RunContext`. It *requires*
results provided by earlier stages (``splits``, ``model:erm``, ``concepts``...), *provides* its own
(typed fields of the context), *writes* the ``metrics.json`` keys it owns — each key has exactly one
writer — and the run files it lists. :func:`select_stages` checks a chosen subset before any work: every
requirement must be provided by a selected stage that runs earlier, else one line names what is missing
and which stage provides it. Readers of stored runs (the dashboard) ask :func:`writer_of` and
:func:`file_writer` which stage a missing key or file would have come from.

The order below is the only order; nothing registers itself on import. Stages that do not read each other's
results may run at once (``runtime.stages``, :func:`igcore.pipeline.run_stages`): :func:`predecessors` gives
the partial order they start in, from what each requires and :attr:`Stage.reads`. Stage functions are named by
their dotted path (``module:function``) and imported when the stage runs, so this list loads no torch:
the dashboard reads it to explain a run. The peer methods' stages come from their registry
(:data:`igcore.peers.PEERS`). To add a stage, write its function in a module of this package and add
one :class:`Stage` entry (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from igcore.errors import InputError
from igcore.peers import PEERS, Peer
from igcore.settings import unknown
from igcore.stages.discover import discovers, effects_models  # config predicates (the module loads no torch)

if TYPE_CHECKING:
    from igcore.config import Config
    from igcore.context import RunContext
    from igcore.microscope.params import MicroscopeConfig
    from igcore.worlds.base import World


def _always(config: Config) -> bool:
    return True


def _with_features(*needs: str) -> Callable[[Config], tuple[str, ...]]:
    """Requirements of a stage that trains models: the frozen features too when the run uses a backbone."""

    def requires(config: Config) -> tuple[str, ...]:
        return (*needs, "features") if config.features.backbone else needs

    return requires


def _erm_requires(config: Config) -> tuple[str, ...]:
    return ("splits",) if config.baseline.checkpoint else _with_features("splits")(config)


def _uses_backbone(config: Config) -> bool:
    return bool(config.features.backbone)


def _discover_requires(config: Config) -> tuple[str, ...]:
    return ("splits", *(f"model:{m}" for m in config.discover.models))


def _discover_effects_requires(config: Config) -> tuple[str, ...]:
    return ("discovered", *(f"model:{m}" for m in effects_models(config)))


def _microscope_requires(config: Config) -> tuple[str, ...]:
    needs = ["splits", *(f"model:{m}" for m in config.microscope.models)]
    if config.microscope.surrogates:
        needs.append("concepts")
    return tuple(needs)


def _function(path: str) -> Callable[..., Any]:
    """The function a dotted path ``package.module:function`` names (imported now)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline, and everything about it.

    Attributes:
        name: the stage's name (``--stages`` and the manifest use it).
        function: where its function ``run(ctx) -> info`` is, as ``package.module:function``.
        requires: results it reads, or a function of the config giving them.
        provides: results it fills (``model:<name>`` for a classifier saved under ``models/<name>``).
        writes: ``metrics.json`` keys it owns (dotted; ``methods.<method>`` for each method it evaluates).
        doc: one line for people (``python -m igcore stages``, the dashboard's progress).
        enabled: whether it runs when no subset is chosen (peers run when named in ``peers``).
        when: for a stage that does not always run, when it does, for people (the stage table).
        preflight: where its cheap check of the inputs it will read is (``module:function(config, world)``),
            run before any stage does work.
        files: run files it writes, as path prefixes (``tables/split_``, ``microscope/``), which may hold ``*`` for
            one folder whose name varies (``discover/*/tensors/patterns_``); the folders of the models it
            provides are added (:meth:`writes_file`). Where two stages' prefixes match a file, the longer one
            names its writer (:func:`file_writer`).
        labels: names for people of the ``metrics.json`` keys it writes (``hypotheses.z_star`` -> ``z*``).
        reads: results it reads when a selected stage provides them, without requiring them (the microscope
            speaks z*'s language when ``ig`` ran): when stages run at once it starts after their providers.
        per_image: it may run per-image work on the run's executor (``ctx.executor``): the pipeline starts the
            executor (a Ray cluster on ``executor=ray``) only for a selection that holds such a stage.
    """

    name: str
    function: str
    requires: tuple[str, ...] | Callable[[Config], tuple[str, ...]]
    provides: tuple[str, ...]
    writes: frozenset[str]
    doc: str
    enabled: Callable[[Config], bool] = _always
    when: str = "always"
    preflight: str | None = None
    files: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    reads: tuple[str, ...] = ()
    per_image: bool = False

    def run(self, ctx: RunContext) -> dict[str, Any]:
        """Run the stage on ``ctx`` (its function is imported now)."""
        return _function(self.function)(ctx)

    def check_inputs(self, config: Config, world: World) -> None:
        """The stage's preflight check, if it has one (raises :class:`InputError` for bad input)."""
        if self.preflight is not None:
            _function(self.preflight)(config, world)

    def requirements(self, config: Config) -> tuple[str, ...]:
        return self.requires(config) if callable(self.requires) else self.requires

    def optional_reads(self, config: Config) -> tuple[str, ...]:
        """What it reads when provided beyond what it requires (:attr:`reads`; the microscope requires ``concepts``
        only with surrogates)."""
        return tuple(r for r in self.reads if r not in self.requirements(config))

    @property
    def models(self) -> tuple[str, ...]:
        """Names of the classifiers this stage trains."""
        return tuple(p.split(":", 1)[1] for p in self.provides if p.startswith("model:"))

    def file_prefix(self, relative: str) -> str | None:
        """The longest of this stage's file prefixes that run file ``relative`` (a path in the run directory) starts
        with, or None when the stage does not write it."""
        prefixes = (*self.files, *(f"models/{m}/" for m in self.models))
        return max((p for p in prefixes if re.match(re.escape(p).replace(r"\*", "[^/]*"), relative)), key=len, default=None)

    def writes_file(self, relative: str) -> bool:
        """Whether run file ``relative`` (a path in the run directory) is one this stage writes."""
        return self.file_prefix(relative) is not None


def peer_stage(peer: Peer) -> Stage:
    """The stage of a peer method: it runs when named in ``peers`` and writes ``methods.<name>``."""

    def enabled(config: Config) -> bool:
        return peer.name in config.peers

    return Stage(peer.name, peer.function, peer.requires, peer.results, frozenset({f"methods.{peer.name}"}), peer.doc, enabled,
                 when="when named in `peers`")


_HYPOTHESES_IG = ("z_star", "z_star_text", "z_star_implausible", "z_star_json", "no_prior", "no_prior_text", "no_prior_json", "ranked", "no_prior_ranked")
_HYPOTHESES_MICROSCOPE = ("z_baseline", "z_baseline_text", "z_student", "z_student_text")

STAGES: tuple[Stage, ...] = (
    Stage("world", "igcore.stages.world:stage_world", (), ("splits",), frozenset({"world"}),
          "draw or load every split of the world (D, val, D′ and the concept bank)",
          files=("contact_sheet.png", "tables/split_", "tensors/test_eval.", "tensors/concept_bank.")),
    Stage("features", "igcore.stages.features:stage_features", ("splits",), ("features",), frozenset({"features"}),
          "extract frozen-backbone features of every image once (when features.backbone is set)", enabled=_uses_backbone,
          when="when `features.backbone` is set",
          files=("tensors/features.",), per_image=True),
    Stage("erm", "igcore.stages.train:stage_erm", _erm_requires, ("model:erm",), frozenset({"methods.erm", "baseline"}),
          "train the baseline classifier on D (empirical risk minimisation), or load a user's checkpoint",
          preflight="igcore.stages.train:check_checkpoint", per_image=True),
    Stage("oracle", "igcore.stages.train:stage_oracle", _with_features("splits"), ("model:oracle",), frozenset({"methods.oracle"}),
          "train the oracle reference on the labels of D′ (evaluation only)"),
    Stage("true_concepts", "igcore.stages.train:stage_true_concepts", ("splits",), ("true_concepts",),
          frozenset({"methods.true_concepts"}), "fit the true-concepts reference (logistic regression on annotated concepts)"),
    Stage("discover", "igcore.stages.discover:stage_discover", _discover_requires, ("discovered",), frozenset(),
          "discover the concepts of discover.models by NMF of a layer (ACE, CRAFT); they become vocabulary",
          enabled=discovers, preflight="igcore.stages.discover:check_names", files=("discover/",), per_image=True),
    Stage("concepts", "igcore.stages.ig:stage_concepts", _with_features("splits"), ("annotated_concepts",),
          frozenset({"concepts.heldout_auc", "concepts.test_eval_auc"}),
          "train the concept model on the concept bank (annotated concepts); score every split",
          files=("models/concepts/",)),
    Stage("vocabulary", "igcore.stages.ig:stage_vocabulary", ("splits", "annotated_concepts"), ("concepts",),
          frozenset({"concepts.vocabulary"}),
          "the run's concepts, the columns L_M reads: the annotated ones' scores, then the discovered ones' when discover ran",
          preflight="igcore.stages.discover:check_vocabulary", files=("tensors/concept_scores.",), reads=("discovered",)),
    Stage("ig", "igcore.stages.ig:stage_ig", ("splits", "concepts"), ("ig",),
          frozenset({"prior", "methods.ig_direct", "methods.no_prior", "methods.ig_posterior", "clause_deletion.z_star",
                     *(f"hypotheses.{k}" for k in _HYPOTHESES_IG)}),
          "fit the human prior; search z* = argmax prior + likelihood, and the no_prior ablation",
          preflight="igcore.stages.ig:check_judgments",
          labels={"hypotheses.z_star": "z*", "hypotheses.no_prior": "no-prior hypothesis"}),
    Stage("student", "igcore.stages.ig:stage_student", _with_features("splits", "ig"), ("model:ig_student", "pseudo_labels"),
          frozenset({"methods.ig_student"}), "label D′ with z* and train the IG student to imitate those labels",
          files=("tensors/pseudo_labels.",)),
    *(peer_stage(peer) for peer in PEERS.values()),
    Stage("discover_effects", "igcore.stages.discover:stage_discover_effects", _discover_effects_requires, ("discover_effects",),
          frozenset({"discover"}), "remove each discovered concept from every examined model's layer: effect on its answers, ranked; "
          "the components named alike also together",
          enabled=discovers, files=("tables/discover_effects.", "discover/*/tensors/patterns_"), labels={"discover": "discovered concepts"},
          per_image=True),
    Stage("microscope", "igcore.stages.microscope:stage_microscope", _microscope_requires, ("microscope",),
          frozenset({"microscope", "surrogates", "clause_deletion.z_baseline", "clause_deletion.z_student",
                     *(f"hypotheses.{k}" for k in _HYPOTHESES_MICROSCOPE)}),
          "put the models under the microscope (attributions, TCAV, swaps, surrogates, sanity)",
          files=("microscope/",), labels={"hypotheses.z_baseline": "z_baseline", "hypotheses.z_student": "z_student"},
          reads=("ig", "discovered", "concepts"), per_image=True),
)

STAGE_NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)
#: Every classifier a run can hold (``microscope.models`` names are checked against these).
MODEL_NAMES: tuple[str, ...] = tuple(m for s in STAGES for m in s.models)
#: Run files the pipeline itself writes after its last stage (every evaluated method's answers).
PIPELINE_FILES: tuple[str, ...] = ("tables/predictions.parquet",)
#: Stored hypotheses (``hypotheses.<key>``) and how people call them, from the stages that write them.
HYPOTHESIS_NAMES: dict[str, str] = {
    key.removeprefix("hypotheses."): label for s in STAGES for key, label in s.labels.items() if key.startswith("hypotheses.")
}


def stage_named(name: str) -> Stage:
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise InputError(f"unknown stage {name!r}; stages are: {', '.join(STAGE_NAMES)}")


def provider_of(result: str) -> str | None:
    """The stage that provides ``result``."""
    return next((s.name for s in STAGES if result in s.provides), None)


def with_prerequisites(config: Config, names: Sequence[str]) -> list[str]:
    """``names`` and, transitively, the stages that provide what they require under ``config``, in pipeline order
    (``python -m igcore baseline``: ERM and the world, and the frozen features when the run uses a backbone)."""
    wanted: set[str] = set()
    todo = list(names)
    while todo:
        stage = stage_named(todo.pop())
        if stage.name not in wanted:
            wanted.add(stage.name)
            todo.extend(p for r in stage.requirements(config) if (p := provider_of(r)) is not None)
    return [s.name for s in STAGES if s.name in wanted]


def writer_of(key: str) -> Stage | None:
    """The stage that writes ``metrics.json`` key ``key`` (dotted; the longest declared prefix wins).

    ``hypotheses.z_star`` -> ``ig``; ``microscope.erm.tcav`` -> ``microscope`` (it owns ``microscope``).
    """
    parts = key.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        for stage in STAGES:
            if prefix in stage.writes:
                return stage
    return None


def file_writer(relative: str) -> Stage | None:
    """The stage that writes run file ``relative`` (see :attr:`Stage.files`: the most specific prefix wins, so the
    discover stage's ``discover/`` does not claim the patterns ``discover_effects`` writes there); None for files
    no stage writes."""
    matches = [(len(prefix), stage) for stage in STAGES if (prefix := stage.file_prefix(relative)) is not None]
    return max(matches, key=lambda m: m[0], default=(0, None))[1]


def check_models(microscope: MicroscopeConfig) -> None:
    """The models a ``microscope`` section names must be ones a stage of this engine trains, and the models
    whose layers TCAV tests or whose maps are sanity-checked must be examined; one line otherwise."""
    sanity = microscope.sanity.models or []
    for key, names in (("models", microscope.models), ("tcav.models", microscope.tcav.models), ("sanity.models", sanity)):
        if problem := unknown(f"model(s) in microscope.{key}", names, MODEL_NAMES):
            raise InputError(problem)
    for key, names in (("tcav.models", microscope.tcav.models), ("sanity.models", sanity)):
        if outside := [n for n in names if n not in microscope.models]:
            raise InputError(f"microscope.{key} names {', '.join(outside)}, which microscope.models does not examine")


def select_stages(config: Config, names: Sequence[str] | None = None) -> list[Stage]:
    """The stages to run, in pipeline order: ``names`` (any order), or the default selection for ``config``.

    Raises:
        InputError: a model the microscope cannot examine (:func:`check_models`), an unknown stage name,
            or a selected stage whose requirement no earlier selected stage provides (one line naming the
            result and its provider).
    """
    check_models(config.microscope)
    if names is None:
        selected = [s for s in STAGES if s.enabled(config)]
    else:
        wanted = set(names)
        for name in wanted:
            stage_named(name)
        selected = [s for s in STAGES if s.name in wanted]
    available: set[str] = set()
    for stage in selected:
        missing = [r for r in stage.requirements(config) if r not in available]
        if missing:
            first = missing[0]
            provider = provider_of(first)
            how = f"add stage {provider!r}" if provider else "nothing provides it"
            if first.startswith("model:") and stage.name == "microscope":
                how += f" or leave {first[6:]!r} out of microscope.models"
            raise InputError(f"stage {stage.name!r} needs {first!r}, which no earlier selected stage provides; {how}")
        available.update(stage.provides)
    return selected


def predecessors(selected: Sequence[Stage], config: Config) -> dict[str, tuple[str, ...]]:
    """For each selected stage, the earlier selected stages it waits for: the providers of what it requires and of
    what it reads (:attr:`Stage.reads`). Stages that run at once (``runtime.stages``) start in this partial order,
    and each reads exactly what it would read one stage after the other."""
    after: dict[str, tuple[str, ...]] = {}
    provided: dict[str, str] = {}
    for stage in selected:
        wanted = (*stage.requirements(config), *stage.reads)
        after[stage.name] = tuple(dict.fromkeys(provided[r] for r in wanted if r in provided))
        provided.update({result: stage.name for result in stage.provides})
    return after


def stages_markdown(config: Config) -> str:
    """The stage table of docs/ARCHITECTURE.md (``python -m igcore stages --markdown``)."""
    default = {s.name for s in select_stages(config)}
    lines = ["| # | stage | runs by default | requires | provides | writes (metrics.json) | what |", "|---|---|---|---|---|---|---|"]
    for i, stage in enumerate(STAGES, 1):
        cells = [
            str(i), f"`{stage.name}`", "yes" if stage.name in default else stage.when,
            ", ".join([*(f"`{r}`" for r in stage.requirements(config)), *(f"`{r}` (if run)" for r in stage.optional_reads(config))])
            or "–",
            ", ".join(f"`{p}`" for p in stage.provides),
            ", ".join(f"`{w}`" for w in sorted(stage.writes)),
            stage.doc,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


__all__ = [
    "HYPOTHESIS_NAMES",
    "MODEL_NAMES",
    "PIPELINE_FILES",
    "STAGES",
    "STAGE_NAMES",
    "Stage",
    "check_models",
    "file_writer",
    "peer_stage",
    "predecessors",
    "provider_of",
    "select_stages",
    "stage_named",
    "stages_markdown",
    "with_prerequisites",
    "writer_of",
]
