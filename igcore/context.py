"""What stages share during a run: the config, the world, the writer, and typed stage results.

Every stage reads the results of the stages it declared it requires (typed fields below, filled by
the stage that provides them) and fills its own. The stage graph (:mod:`igcore.stages`) checks before
any work that every requirement has a provider earlier in the run, so a missing result here is a bug,
reported by :meth:`RunContext.need` with the stage that should have provided it.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch

from igcore.config import Config
from igcore.evaluate import group_metrics
from igcore.executors import Executor, LocalExecutor
from igcore.runtime import Concurrency
from igcore.store import RunWriter
from igcore.worlds.base import Split, Vocabulary, World

if TYPE_CHECKING:
    from igcore.baseline import ImageClassifier
    from igcore.concepts import ConceptModel
    from igcore.discover.discovery import SourceDiscovery
    from igcore.discover.names import Language
    from igcore.microscope.runner import MicroscopeResult
    from igcore.prior import PriorModel
    from igcore.search import HypothesisSearch

T = TypeVar("T")

ProgressFn = Callable[[str, int, int], None]  # (stage name, index, total)


@dataclass(frozen=True)
class Splits:
    """The five splits of a world (SPLITS order)."""

    train: Split
    val: Split
    test_train: Split
    test_eval: Split
    concept_bank: Split

    def items(self) -> Iterator[tuple[str, Split]]:
        for f in fields(self):
            yield f.name, getattr(self, f.name)


@dataclass(frozen=True)
class PerSplit:
    """One array per split, as fields (what a stage stores under one tensors file)."""

    def as_dict(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class ConceptScores(PerSplit):
    """Concept model probabilities (N, K) on every split the engine scores."""

    train: np.ndarray
    val: np.ndarray
    test_train: np.ndarray
    test_eval: np.ndarray


@dataclass(frozen=True)
class Features(PerSplit):
    """Frozen-backbone features (N, D) of every split (:mod:`igcore.features`)."""

    train: np.ndarray
    val: np.ndarray
    test_train: np.ndarray
    test_eval: np.ndarray
    concept_bank: np.ndarray


@dataclass(frozen=True)
class TrainedClassifier:
    """An image classifier a stage trained (or loaded), under its model name (``erm``, ``ig_student``...)."""

    name: str
    model: ImageClassifier


@dataclass(frozen=True)
class ConceptResult:
    """The concept scores L_M reads and the vocabulary of their columns: the annotated concepts scored by the
    concept model (None when the data annotates none), then the discovered ones (:mod:`igcore.discover`)."""

    model: ConceptModel | None
    scores: ConceptScores
    vocabulary: Vocabulary | None = None


@dataclass(frozen=True)
class IGResult:
    """Prior_M, the search that found z* under it, and the same search under a flat prior (``no_prior``)."""

    prior: PriorModel
    search: HypothesisSearch
    no_prior: HypothesisSearch
    language: Language | None = None  # the concepts z* may use (None: the whole vocabulary)

    def of(self, scores: np.ndarray) -> np.ndarray:
        """The columns of the run's concept scores that the searches read."""
        return scores if self.language is None else self.language.of(scores)


@dataclass(frozen=True)
class Evaluation:
    """One method's answers on D′_eval and their group metrics (``metrics.json`` ``methods.<method>``)."""

    method: str
    metrics: dict[str, Any]
    predictions: np.ndarray
    probabilities: np.ndarray | None


@dataclass
class RunContext:
    """Config, world, writer and the typed results of the stages run so far."""

    config: Config
    world: World
    writer: RunWriter
    device: torch.device
    progress: bool = True
    precision: str = "float32"  # of the training steps: igcore.runtime.training_precision(runtime.precision, device)
    splits: Splits | None = None
    features: Features | None = None
    executor: Executor = field(default_factory=LocalExecutor)
    classifiers: dict[str, TrainedClassifier] = field(default_factory=dict)
    discovered: dict[str, SourceDiscovery] | None = None
    annotated: ConceptResult | None = None  # the concept model and its scores of the annotated concepts
    concepts: ConceptResult | None = None  # the run's vocabulary: annotated, then discovered concepts
    ig: IGResult | None = None
    pseudo_labels: np.ndarray | None = None
    microscope: MicroscopeResult | None = None
    evaluations: dict[str, Evaluation] = field(default_factory=dict)
    concurrency: Concurrency | None = None  # how many stages run at once now: set by igcore.pipeline.run_stages
    # the stage each thread runs (stages may run at once, one per thread: igcore.pipeline)
    _running: threading.local = field(default_factory=threading.local, repr=False)

    # -- the stage running in this thread ---------------------------------------------------------------
    def enter(self, stage: str, writes: frozenset[str]) -> None:
        """From now on this thread runs ``stage``, the owner of what it writes: the ``metrics.json`` keys it declared
        (``writes``), its notes, and its own copies of the run's models (:meth:`classifier`)."""
        self._running.stage, self._running.writes, self._running.models = stage, writes, {}

    @property
    def stage(self) -> str:
        """The stage running in this thread ("" before any)."""
        return getattr(self._running, "stage", "")

    @property
    def writes(self) -> frozenset[str]:
        """The ``metrics.json`` keys the stage running in this thread declared."""
        return getattr(self._running, "writes", frozenset())

    # -- typed access ------------------------------------------------------------------------------
    @staticmethod
    def need(value: T | None, what: str) -> T:
        """``value``, or an error naming the missing result (the stage graph should have caught it)."""
        if value is None:
            raise RuntimeError(f"stage result {what!r} is missing: the stage graph should have scheduled its provider first")
        return value

    @property
    def data(self) -> Splits:
        return self.need(self.splits, "splits")

    @property
    def vocabulary(self) -> Vocabulary:
        """The run's concepts: the world's annotated ones, then the discovered ones once the ``vocabulary`` stage
        has merged them (its ``concepts`` result: the columns of the concept scores)."""
        if self.concepts is not None and self.concepts.vocabulary is not None:
            return self.concepts.vocabulary
        return self.world.vocabulary

    def annotations(self, split: str) -> np.ndarray:
        """0/1 (N, K) over :attr:`vocabulary` of ``split``: the world's annotations, then each discovered concept's
        presence (P(present) >= 0.5), its unannotated counterpart."""
        own = getattr(self.data, split).concepts
        found = [d.present(split) for d in (self.discovered or {}).values()] if len(self.vocabulary) > own.shape[1] else []
        return np.concatenate([own, *found], axis=1) if found else own

    def at_once(self) -> int:
        """How many threads of work (stages, the microscope's lanes) the CPUs hold now (:class:`~igcore.runtime.Concurrency`)."""
        if self.concurrency is None:
            self.concurrency = Concurrency(self.config.runtime)
        return self.concurrency.at_once()

    def classifier(self, name: str) -> ImageClassifier:
        """The trained model ``name``, as the running stage's own copy: the hooks, train/eval mode and captum state a
        stage puts on a module are the module's, so two stages that read one model at once each read their own."""
        trained = self.need(self.classifiers.get(name), f"model:{name}").model
        models = getattr(self._running, "models", None)
        if models is None:  # outside a stage (a caller building a context by hand): the model itself
            return trained
        if name not in models:
            models[name] = copy.deepcopy(trained)
        return models[name]

    def inputs(self, split: str) -> np.ndarray:
        """What the run's models take for ``split``: the frozen-backbone features when the run has them, else images."""
        if self.features is not None:
            return getattr(self.features, split)
        return getattr(self.data, split).images

    # -- helpers shared by stages --------------------------------------------------------------------
    def estimator(self) -> type[ImageClassifier]:
        """The class of every model the run trains: a linear head on frozen features, or a whole image classifier."""
        from igcore.baseline import ImageClassifier
        from igcore.features import LinearHeadClassifier

        return LinearHeadClassifier if self.config.features.backbone else ImageClassifier

    def new_classifier(self, name: str, **overrides: Any) -> ImageClassifier:
        """A model with the run's baseline budget (every method gets the same architecture and budget)."""
        b = self.config.baseline
        params: dict[str, Any] = {
            "arch": self.config.features.backbone or b.arch,
            "num_labels": len(self.world.classes),
            "image_size": self.world.image_size,
            "epochs": b.epochs,
            "batch_size": b.batch_size,
            "lr": b.lr,
            "weight_decay": b.weight_decay,
            "device": str(self.device),
            "precision": self.precision,
            "seed": self.config.seed,
            "progress": self.progress,
            "name": name,
        }
        params.update(overrides)
        return self.estimator()(**params)

    def add_classifier(self, name: str, model: ImageClassifier) -> None:
        """Save a trained model into the run (``models/<name>``) and make it available to later stages."""
        self.note_precision(name, model)
        model.save(self.writer.subdir(f"models/{name}"))
        self.classifiers[name] = TrainedClassifier(name, model)

    def evaluate(self, method: str, proba_or_pred: np.ndarray, **extra: Any) -> dict[str, Any]:
        """Score a method's answers on D′_eval; written to ``methods.<method>`` and the predictions table."""
        test = self.data.test_eval
        result = group_metrics(test.labels, proba_or_pred, test.groups, self.world.group_names(), self.data.train.groups)
        result.update(extra)
        proba = np.asarray(proba_or_pred, dtype=np.float32) if np.ndim(proba_or_pred) == 2 else None
        pred = proba.argmax(1) if proba is not None else np.asarray(proba_or_pred)
        self.evaluations[method] = Evaluation(method, result, pred, proba)
        self.write_metrics({f"methods.{method}": result})
        return result

    def note_precision(self, name: str, model: ImageClassifier) -> None:
        """A note when ``model`` trained in another arithmetic than the run asked for (a bfloat16 fit that failed
        :func:`igcore.baseline.bfloat16_steps_agree` on its first batch and trained in float32)."""
        used = getattr(model, "precision_", model.precision)
        if used != model.precision:
            self.note(f"{name} trained in {used}, not {model.precision}: a {model.precision} training step of this model at "
                      f"this image size disagreed with {used} (igcore.baseline.bfloat16_steps_agree)")

    def note(self, text: str) -> None:
        """A remark people should read about this run (``manifest.json`` ``notes``; the CLI prints them)."""
        self.writer.note(self.stage, text)

    def write_metrics(self, values: dict[str, Any]) -> None:
        """Write ``metrics.json`` keys the running stage declared (``Stage.writes``); anything else is a bug."""
        undeclared = sorted(set(values) - self.writes)
        if undeclared:
            raise RuntimeError(f"stage {self.stage!r} wrote undeclared metrics key(s) {', '.join(undeclared)}; declare them in igcore/stages")
        self.writer.write_metrics(self.stage, values)
