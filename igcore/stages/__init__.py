"""The pipeline's stages, in order, in one place: what each requires, provides and writes.

A stage is a function ``run(ctx) -> info`` over the :class:`~igcore.context.RunContext`. It *requires*
results provided by earlier stages (``splits``, ``model:erm``, ``concepts``...), *provides* its own
(typed fields of the context), and *writes* the ``metrics.json`` keys it owns — each key has exactly
one writer. :func:`select_stages` checks a chosen subset before any work: every requirement must be
provided by a selected stage that runs earlier, else one line names what is missing and which stage
provides it.

The order below is the only order; nothing registers itself on import. To add a stage, write its
function in a module of this package and add one :class:`Stage` entry (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from igcore.config import Config
from igcore.context import RunContext
from igcore.errors import InputError
from igcore.stages.discover import (
    check_names,
    check_vocabulary,
    discovers,
    effects_models,
    stage_discover,
    stage_discover_effects,
)
from igcore.stages.features import stage_features
from igcore.stages.ig import check_judgments, stage_concepts, stage_ig, stage_student
from igcore.stages.microscope import stage_microscope
from igcore.stages.peers import stage_dfr, stage_groupdro, stage_jtt
from igcore.stages.train import check_checkpoint, stage_erm, stage_oracle, stage_true_concepts
from igcore.stages.world import stage_world
from igcore.worlds.base import World

StageFn = Callable[[RunContext], dict[str, Any]]


def _always(config: Config) -> bool:
    return True


def _peer(name: str) -> Callable[[Config], bool]:
    def enabled(config: Config) -> bool:
        return name in config.peers

    return enabled


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


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline.

    Attributes:
        name: the stage's name (``--stages`` and the manifest use it).
        run: the stage function.
        requires: results it reads, or a function of the config giving them.
        provides: results it fills (``model:<name>`` for a classifier saved under ``models/<name>``).
        writes: ``metrics.json`` keys it owns (dotted; ``methods.<method>`` for each method it evaluates).
        doc: one line for people (``python -m igcore stages``, the dashboard's progress).
        default: whether it runs when no subset is chosen (peers run when named in ``peers``).
        preflight: a cheap check of inputs it will read, run before any stage does work.
    """

    name: str
    run: StageFn
    requires: tuple[str, ...] | Callable[[Config], tuple[str, ...]]
    provides: tuple[str, ...]
    writes: frozenset[str]
    doc: str
    default: Callable[[Config], bool] = _always
    preflight: Callable[[Config, World], None] | None = None

    def requirements(self, config: Config) -> tuple[str, ...]:
        return self.requires(config) if callable(self.requires) else self.requires

    @property
    def models(self) -> tuple[str, ...]:
        """Names of the classifiers this stage trains."""
        return tuple(p.split(":", 1)[1] for p in self.provides if p.startswith("model:"))


_HYPOTHESES_IG = ("z_star", "z_star_text", "z_star_json", "no_prior", "no_prior_text", "no_prior_json", "ranked", "no_prior_ranked")
_HYPOTHESES_MICROSCOPE = ("z_baseline", "z_baseline_text", "z_student", "z_student_text")

STAGES: tuple[Stage, ...] = (
    Stage("world", stage_world, (), ("splits",), frozenset({"world"}),
          "draw or load every split of the world (D, val, D′ and the concept bank)"),
    Stage("features", stage_features, ("splits",), ("features",), frozenset({"features"}),
          "extract frozen-backbone features of every image once (when features.backbone is set)", default=_uses_backbone),
    Stage("erm", stage_erm, _erm_requires, ("model:erm",), frozenset({"methods.erm", "baseline"}),
          "train the baseline classifier on D (empirical risk minimisation), or load a user's checkpoint",
          preflight=check_checkpoint),
    Stage("oracle", stage_oracle, _with_features("splits"), ("model:oracle",), frozenset({"methods.oracle"}),
          "train the oracle reference on the labels of D′ (evaluation only)"),
    Stage("true_concepts", stage_true_concepts, ("splits",), ("true_concepts",), frozenset({"methods.true_concepts"}),
          "fit the true-concepts reference (logistic regression on annotated concepts)"),
    Stage("discover", stage_discover, _discover_requires, ("discovered",), frozenset(),
          "discover the concepts of discover.models by NMF of a layer (ACE, CRAFT); they become vocabulary",
          default=discovers, preflight=check_names),
    Stage("concepts", stage_concepts, _with_features("splits"), ("concepts",), frozenset({"concepts"}),
          "train the concept model on the concept bank; score every split; append the discovered concepts when discover ran",
          preflight=check_vocabulary),
    Stage("ig", stage_ig, ("splits", "concepts"), ("ig",),
          frozenset({"prior", "methods.ig_direct", "methods.no_prior", "methods.ig_posterior", "clause_deletion.z_star",
                     *(f"hypotheses.{k}" for k in _HYPOTHESES_IG)}),
          "fit the human prior; search z* = argmax prior + likelihood, and the no_prior ablation",
          preflight=check_judgments),
    Stage("student", stage_student, _with_features("splits", "ig"), ("model:ig_student", "pseudo_labels"), frozenset({"methods.ig_student"}),
          "label D′ with z* and train the IG student to imitate those labels"),
    Stage("groupdro", stage_groupdro, ("splits",), ("model:groupdro",), frozenset({"methods.groupdro"}),
          "train the GroupDRO peer (D's group labels)", default=_peer("groupdro")),
    Stage("jtt", stage_jtt, ("splits",), ("model:jtt",), frozenset({"methods.jtt"}),
          "train the JTT peer (upweights an identification model's errors)", default=_peer("jtt")),
    Stage("dfr", stage_dfr, ("splits", "model:erm"), ("dfr",), frozenset({"methods.dfr"}),
          "re-train ERM's last layer on group-balanced val data (DFR peer)", default=_peer("dfr")),
    Stage("discover_effects", stage_discover_effects, _discover_effects_requires, ("discover_effects",), frozenset({"discover"}),
          "remove each discovered concept from every examined model's layer: effect on its answers, ranked",
          default=discovers),
    Stage("microscope", stage_microscope, _microscope_requires, ("microscope",),
          frozenset({"microscope", "surrogates", "clause_deletion.z_baseline", "clause_deletion.z_student",
                     *(f"hypotheses.{k}" for k in _HYPOTHESES_MICROSCOPE)}),
          "put the models under the microscope (attributions, TCAV, swaps, surrogates, sanity)"),
)

STAGE_NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)
#: Every classifier a run can hold (``microscope.models`` names are checked against these).
MODEL_NAMES: tuple[str, ...] = tuple(m for s in STAGES for m in s.models)


def stage_named(name: str) -> Stage:
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise InputError(f"unknown stage {name!r}; stages are: {', '.join(STAGE_NAMES)}")


def provider_of(result: str) -> str | None:
    """The stage that provides ``result``."""
    return next((s.name for s in STAGES if result in s.provides), None)


def select_stages(config: Config, names: Sequence[str] | None = None) -> list[Stage]:
    """The stages to run, in pipeline order: ``names`` (any order), or the default selection for ``config``.

    Raises:
        InputError: an unknown stage name, or a selected stage whose requirement no earlier selected
            stage provides (one line naming the result and its provider).
    """
    if names is None:
        selected = [s for s in STAGES if s.default(config)]
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


def stages_markdown(config: Config) -> str:
    """The stage table of docs/ARCHITECTURE.md (``python -m igcore stages --markdown``)."""
    default = {s.name for s in select_stages(config)}
    lines = ["| # | stage | runs by default | requires | provides | writes (metrics.json) | what |", "|---|---|---|---|---|---|---|"]
    for i, stage in enumerate(STAGES, 1):
        cells = [
            str(i), f"`{stage.name}`", "yes" if stage.name in default else "when named in `peers`",
            ", ".join(f"`{r}`" for r in stage.requirements(config)) or "–",
            ", ".join(f"`{p}`" for p in stage.provides),
            ", ".join(f"`{w}`" for w in sorted(stage.writes)),
            stage.doc,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


__all__ = ["MODEL_NAMES", "STAGES", "STAGE_NAMES", "Stage", "provider_of", "select_stages", "stage_named", "stages_markdown"]
