"""Imitative Generalization stages of the pipeline, and re-solving z* for a stored run.

Stages (registered in this order, after the references):

``concepts``  the perception model, trained on the concept bank only; scores every split
``ig``        Prior_M fitted on human judgments; z* = argmax log Prior_M(z) + Σ_D log L_M(y|x,z) with
              ranked alternatives; the ``no_prior`` ablation (same search, flat prior); ``ig_direct``
              = L_M(·|x′, z*) on D′_eval
``student``   D′_train labelled by L_M(·|x′, z*) (soft labels), a student with ERM's architecture and
              budget trained to imitate them (:mod:`igcore.imitate`)

The concept scores are stored in the run (``tensors/concept_scores``), so :func:`resolve` can re-fit
the prior from edited judgments and re-solve z* for a finished run without touching images.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from igcore.concepts import ConceptModel
from igcore.hypothesis import Hypothesis
from igcore.imitate import imitate, pseudo_label_summary
from igcore.pipeline import PREFLIGHT, RunContext, register_stage
from igcore.prior import build_prior, load_ratings_for_config, prior_from_config
from igcore.search import HypothesisSearch, search_from_config
from igcore.store import Run
from igcore.worlds.base import Concept, Vocabulary

SCORED_SPLITS = ("train", "val", "test_train", "test_eval")


def check_judgments(config: dict[str, Any], world: Any) -> None:
    """Read and validate the configured judgments (ratings 1–5, known concepts, required columns, valid
    hypothesis JSON in the pairwise file) before any training."""
    load_ratings_for_config(config["prior"], world.vocabulary, list(world.classes))


PREFLIGHT.append(check_judgments)


@register_stage("concepts")
def stage_concepts(ctx: RunContext) -> dict[str, Any]:
    """Train the concept model on the concept bank; score every split; report per-concept ROC AUC."""
    c = ctx.config["concepts"]
    model = ConceptModel(
        ctx.world.vocabulary,
        holdout=c["holdout"],
        seed=ctx.config["seed"],
        arch=ctx.config["baseline"]["arch"],
        image_size=ctx.world.image_size,
        epochs=c["epochs"],
        batch_size=ctx.config["baseline"]["batch_size"],
        lr=c["lr"],
        weight_decay=ctx.config["baseline"]["weight_decay"],
        device=str(ctx.device),
        progress=ctx.progress,
    ).fit(ctx.splits["concept_bank"])
    model.classifier_.save(ctx.writer.subdir("models/concepts"))
    scores = {name: model.scores(ctx.splits[name].images) for name in SCORED_SPLITS}
    ctx.writer.tensors("concept_scores", scores)
    ctx.artifacts["concept_scores"] = scores
    test_auc = model.auc(ctx.splits["test_eval"], scores["test_eval"])
    ctx.metrics["concepts"] = {"heldout_auc": model.heldout_auc_, "test_eval_auc": test_auc}
    valid = [v for v in model.heldout_auc_.values() if v is not None]
    return {
        "mean_heldout_auc": round(float(np.mean(valid)), 4),
        "min_heldout_auc": round(float(np.min(valid)), 4),
        "mean_test_eval_auc": round(float(np.mean([v for v in test_auc.values() if v is not None])), 4),
    }


def _hypothesis_metrics(search: HypothesisSearch, vocabulary: Vocabulary, classes: Sequence[str]) -> dict[str, Any]:
    z = search.z_star_
    return {"records": z.to_records(vocabulary), "text": z.render(vocabulary, classes)}


@register_stage("ig")
def stage_ig(ctx: RunContext) -> dict[str, Any]:
    """Fit Prior_M, search z* (and the flat-prior ablation) on D's concept scores, evaluate on D′_eval."""
    vocabulary, classes = ctx.world.vocabulary, list(ctx.world.classes)
    scores = ctx.artifacts["concept_scores"]
    y = ctx.splits["train"].labels
    start = time.perf_counter()
    prior = build_prior(ctx.config, vocabulary, classes)
    prior_seconds = time.perf_counter() - start
    device = str(ctx.device)
    search = search_from_config(ctx.config["search"], prior, device).fit(scores["train"], y, vocabulary, classes)
    flat = search_from_config(ctx.config["search"], None, device).fit(scores["train"], y, vocabulary, classes)
    ctx.models["z_search"], ctx.models["no_prior_search"] = search, flat

    z_star, no_prior = _hypothesis_metrics(search, vocabulary, classes), _hypothesis_metrics(flat, vocabulary, classes)
    ctx.metrics["hypotheses"] = {
        "z_star": z_star["records"],
        "z_star_text": z_star["text"],
        "z_star_json": search.z_star_.to_dict(),
        "no_prior": no_prior["records"],
        "no_prior_text": no_prior["text"],
        "no_prior_json": flat.z_star_.to_dict(),
        "ranked": search.ranked_records(),
        "no_prior_ranked": flat.ranked_records(),
    }
    ctx.metrics["prior"] = prior.summary()
    ctx.evaluate("ig_direct", search.predict_proba(scores["test_eval"]))
    ctx.evaluate("no_prior", flat.predict_proba(scores["test_eval"]))
    if ctx.config["ig"]["posterior_predictive"]:
        ctx.evaluate("ig_posterior", search.posterior_predictive(scores["test_eval"]))
    return {
        "prior_fit_seconds": round(prior_seconds, 3),
        "search_seconds": round(search.fit_seconds_, 3),
        "no_prior_seconds": round(flat.fit_seconds_, 3),
        "encoder": prior.encoder_name_,
        "z_star_size": len(search.z_star_),
    }


@register_stage("student")
def stage_student(ctx: RunContext) -> dict[str, Any]:
    """Label D′_train with L_M(·|x′, z*) (or the posterior predictive) and train the student on it."""
    search: HypothesisSearch = ctx.models["z_search"]
    scores = ctx.artifacts["concept_scores"]["test_train"]
    soft = search.posterior_predictive(scores) if ctx.config["ig"]["posterior_predictive"] else search.predict_proba(scores)
    val = ctx.splits["val"]
    student = imitate(ctx.classifier("ig_student"), ctx.splits["test_train"], soft, val=(val.images, val.labels))
    ctx.save_model("ig_student", student)
    ctx.writer.tensors("pseudo_labels", {"test_train": soft.astype(np.float32)})
    summary = pseudo_label_summary(soft)
    ctx.evaluate("ig_student", student.predict_proba(ctx.splits["test_eval"].images), best_epoch=student.best_epoch_, **summary)
    return {"best_epoch": student.best_epoch_, **{k: round(v, 4) for k, v in summary.items()}}


# ------------------------------------------------------------------------------------------------
# Re-solving z* for a stored run (dashboard's Prior page)


def run_vocabulary(run: Run) -> tuple[Vocabulary, list[str]]:
    """Vocabulary and classes as the run recorded them."""
    world = run.metrics["world"]
    vocab = Vocabulary(tuple(Concept(c["id"], c["text"], c["kind"]) for c in world["vocabulary"]))
    return vocab, list(world["classes"])


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


def resolve(
    run: Run,
    ratings: pd.DataFrame | None = None,
    pairwise: pd.DataFrame | None = None,
    warm: HypothesisSearch | None = None,
) -> Resolution:
    """Re-fit Prior_M on ``ratings`` (default: the run's configured judgments) and re-solve z* on the
    run's stored concept scores of D. No image is touched; pass the previous search as ``warm`` to
    start from its solution."""
    start = time.perf_counter()
    config = run.config
    vocabulary, classes = run_vocabulary(run)
    scores = run.tensors("concept_scores")
    y = run.table("split_train")["label"].to_numpy()
    if ratings is None:
        prior = build_prior(config, vocabulary, classes)
    else:
        prior = prior_from_config(config["prior"]).fit(ratings, vocabulary, classes, pairwise)
    if warm is None:
        search = search_from_config(config["search"], prior, "cpu")
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
    )
