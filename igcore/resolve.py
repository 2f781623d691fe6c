"""Re-solving z* for a stored run: its own judgments, or those plus what people added (the dashboard's Prior page),
in the names people gave its discovered concepts (the Discover and Hypotheses pages).

The ``vocabulary`` stage stores the concept scores of every split and the ``ig`` stage the judgments it
fitted Prior_M on (:mod:`igcore.stages.ig`, :class:`igcore.prior.Judgments`), so re-fitting Prior_M and
re-solving z* needs neither images nor the concept model, and re-solving with the run's own judgments (on the
device its search ran on, :func:`search_device`) gives back exactly the run's z*, ranked list and D′ answers.
:func:`compare` says what a re-solve changed against the stored run.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from igcore.discover.names import Language, apply_names, hypothesis_language, judgments_left_out
from igcore.hypothesis import Hypothesis
from igcore.likelihood import predict_proba
from igcore.prior import Judgments, fit_prior
from igcore.search import HypothesisSearch, search_from_config
from igcore.store import Run

#: Columns of :attr:`Comparison.clauses`.
CHANGE_COLUMNS = ("concept", "class", "weight_before", "weight_after", "change")
#: Weights closer than this are "the same".
SAME_WEIGHT = 1e-6


@dataclass
class Resolution:
    """z* re-solved under a (possibly edited) prior, with its predictions on D′_eval."""

    search: HypothesisSearch
    judgments: Judgments  # what Prior_M was fitted on (carried coefficients and notes filled in)
    z_star: Hypothesis
    ranked: list[dict[str, Any]]
    text: str
    records: list[dict[str, Any]]
    implausible: list[dict[str, Any]]  # z*'s clauses a rater is less likely than not to endorse ({concept, class, plausibility})
    test_eval_proba: np.ndarray
    prior_summary: dict[str, Any]
    seconds: float
    language: Language  # the run's concepts z* speaks (``language.of(scores)`` gives the search's columns)


@dataclass(frozen=True)
class _Inputs:
    """What every re-solve of one run reads: none of it changes with a rating."""

    config: Any
    vocabulary: Any
    classes: list[str]
    scores: dict[str, np.ndarray]  # concept scores per split
    y_train: np.ndarray
    y_test_eval: np.ndarray


@lru_cache(maxsize=8)
def _read_inputs(run: Run, stamp: float) -> _Inputs:
    vocabulary, classes = run.vocabulary()
    return _Inputs(
        run.config_model(), vocabulary, classes, run.tensors("concept_scores"),
        run.table("split_train")["label"].to_numpy(), run.table("split_test_eval")["label"].to_numpy(),
    )


def _inputs(run: Run) -> _Inputs:
    """The run's config, vocabulary, concept scores and labels, read once per version of the run (its stamp):
    live prior editing re-solves many times in a row and only the judgments change."""
    return _read_inputs(run, run.stamp())


def resolve(run: Run, judgments: Judgments | None = None, warm: HypothesisSearch | None = None,
            names: Mapping[str, str | None] | None = None) -> Resolution:
    """Re-fit Prior_M on ``judgments`` (default: the ones the run recorded, :meth:`igcore.store.Run.judgments`) and re-solve
    z* on the run's stored concept scores of D. No image is touched; pass the previous search as ``warm`` to
    start from its solution. ``names`` (e.g. :meth:`igcore.discover.NameStore.names`) rename discovered
    concepts: z* speaks the annotated and named ones (:func:`igcore.discover.names.hypothesis_language`), and
    judgments about concepts outside that language are left out."""
    start = time.perf_counter()
    inputs = _inputs(run)
    config, full, classes = inputs.config, inputs.vocabulary, inputs.classes
    language = hypothesis_language(apply_names(full, names or {}))
    vocabulary = language.vocabulary
    scores = {split: language.of(v) for split, v in inputs.scores.items()}
    y = inputs.y_train
    judgments = judgments if judgments is not None else run.judgments()
    left_out = judgments_left_out(config, full, vocabulary)
    if left_out:
        judgments = judgments.without(left_out, full, classes)
    prior = fit_prior(config.prior, judgments, vocabulary, classes)
    if warm is None:
        search = search_from_config(config.search, prior, search_device(run))
    else:  # same estimator, new prior: starts from the previous solution
        search = warm
        search.prior, search.warm_start = prior, True
    search.fit(scores["train"], y, vocabulary, classes)
    z = search.z_star_
    return Resolution(
        search=search,
        judgments=prior.judgments_,
        z_star=z,
        ranked=search.ranked_records(),
        text=z.render(vocabulary, classes),
        records=z.to_records(vocabulary),
        implausible=prior.implausible_records(z),
        test_eval_proba=search.predict_proba(scores["test_eval"]),
        prior_summary=prior.summary(),
        seconds=time.perf_counter() - start,
        language=language,
    )


def search_device(run: Run) -> str:
    """The device the run's search ran on, when this machine has it (the same arithmetic gives the same z* to the
    last bit), else the CPU."""
    import torch

    recorded = str(run.manifest.get("device") or "cpu")
    return recorded if recorded == "cpu" or torch.cuda.is_available() else "cpu"


@dataclass
class Comparison:
    """What a re-solve changed against the run as stored: z*'s clauses and L_M's answers on D′_eval."""

    clauses: pd.DataFrame  # CHANGE_COLUMNS, one row per clause of either z*; change: added | removed | stronger | weaker | same
    n_images: int
    answers_changed: int
    right_before: int  # D′_eval images L_M(·|x, z*) labels right (evaluation only)
    right_after: int

    @property
    def same_clauses(self) -> bool:
        return bool((self.clauses["change"].isin(("same", "stronger", "weaker"))).all())

    @property
    def accuracy_before(self) -> float:
        return self.right_before / self.n_images if self.n_images else float("nan")

    @property
    def accuracy_after(self) -> float:
        return self.right_after / self.n_images if self.n_images else float("nan")


def compare(run: Run, resolution: Resolution) -> Comparison:
    """The run's stored z* (``hypotheses.z_star_json``, read by L_M on the stored D′_eval concept scores) against
    ``resolution``'s."""
    inputs = _inputs(run)
    vocabulary, classes = inputs.vocabulary, inputs.classes
    stored = Hypothesis.from_json(run.metrics["hypotheses"]["z_star_json"], vocabulary, classes)
    before = {c.key: c.weight for c in stored.clauses}
    after = {c.key: c.weight for c in resolution.z_star.clauses}
    rows = []
    for key in sorted(set(before) | set(after), key=lambda k: (classes.index(k[1]), vocabulary.index(k[0]))):
        w0, w1 = before.get(key, 0.0), after.get(key, 0.0)
        change = ("added" if key not in before else "removed" if key not in after
                  else "stronger" if w1 > w0 + SAME_WEIGHT else "weaker" if w1 < w0 - SAME_WEIGHT else "same")
        rows.append((*key, w0, w1, change))
    old = predict_proba(inputs.scores["test_eval"], stored, vocabulary, classes).argmax(1)
    new = np.asarray(resolution.test_eval_proba).argmax(1)
    y = inputs.y_test_eval
    return Comparison(
        clauses=pd.DataFrame(rows, columns=list(CHANGE_COLUMNS)),
        n_images=len(y),
        answers_changed=int((old != new).sum()),
        right_before=int((old == y).sum()),
        right_after=int((new == y).sum()),
    )
