"""Re-solving z* for a stored run under edited judgments (the dashboard's Prior page).

The ``ig`` stage (:mod:`igcore.stages.ig`) stores the concept scores of every split, so re-fitting
Prior_M from edited judgments and re-solving z* needs neither images nor the concept model.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from igcore.discover.names import Language, apply_names, hypothesis_language, judgments_left_out
from igcore.hypothesis import Hypothesis
from igcore.prior import build_prior, prior_from_config
from igcore.search import HypothesisSearch, search_from_config
from igcore.store import Run


@dataclass
class Resolution:
    """z* re-solved under a (possibly edited) prior, with its predictions on D′_eval."""

    search: HypothesisSearch
    z_star: Hypothesis
    ranked: list[dict[str, Any]]
    text: str
    records: list[dict[str, Any]]
    test_eval_proba: np.ndarray
    prior_summary: dict[str, Any]
    seconds: float
    language: Language  # the run's concepts z* speaks (``language.of(scores)`` gives the search's columns)


def resolve(
    run: Run,
    ratings: pd.DataFrame | None = None,
    pairwise: pd.DataFrame | None = None,
    warm: HypothesisSearch | None = None,
    names: Mapping[str, str | None] | None = None,
) -> Resolution:
    """Re-fit Prior_M on ``ratings`` (default: the run's configured judgments) and re-solve z* on the
    run's stored concept scores of D. No image is touched; pass the previous search as ``warm`` to
    start from its solution. ``names`` (e.g. :meth:`igcore.discover.NameStore.names`) rename discovered
    concepts: z* speaks the annotated and named ones (:func:`igcore.discover.names.hypothesis_language`)."""
    start = time.perf_counter()
    config = run.config_model()
    full, classes = run.vocabulary()
    language = hypothesis_language(apply_names(full, names or {}))
    vocabulary = language.vocabulary
    scores = {split: language.of(v) for split, v in run.tensors("concept_scores").items()}
    y = run.table("split_train")["label"].to_numpy()
    left_out = judgments_left_out(config, full, vocabulary)
    if ratings is None:
        prior = build_prior(config.prior, vocabulary, classes, drop=left_out)
    else:
        ratings = ratings[~ratings["concept"].isin(left_out)].reset_index(drop=True)
        prior = prior_from_config(config.prior).fit(ratings, vocabulary, classes, pairwise)
    if warm is None:
        search = search_from_config(config.search, prior, "cpu")
    else:  # same estimator, new prior: starts from the previous solution
        search = warm
        search.prior, search.warm_start = prior, True
    search.fit(scores["train"], y, vocabulary, classes)
    z = search.z_star_
    return Resolution(
        search=search,
        z_star=z,
        ranked=search.ranked_records(),
        text=z.render(vocabulary, classes),
        records=z.to_records(vocabulary),
        test_eval_proba=search.predict_proba(scores["test_eval"]),
        prior_summary=prior.summary(),
        seconds=time.perf_counter() - start,
        language=language,
    )
