"""Imitative Generalization stages (Barnes, 2021, "Imitative Generalisation (AKA 'Learning the Prior')").

``concepts``  the perception half of L_M, trained on the concept bank only; scores every split
``vocabulary`` the annotated concepts' scores, then the discovered concepts': the columns L_M reads
``ig``        Prior_M fitted on human judgments; z* = argmax log Prior_M(z) + Σ_D log L_M(y|x,z) with ranked
              alternatives; the ``no_prior`` ablation (same search, flat prior); ``ig_direct`` = L_M(·|x′, z*)
``student``   D′_train labelled by L_M(·|x′, z*) (soft labels); a student with ERM's architecture and budget
              imitates them (:mod:`igcore.imitate`)

The concept scores are stored in the run (``tensors/concept_scores``) and so are the judgments Prior_M was
fitted on (``judgments/``, :mod:`igcore.prior.sources`), so :func:`igcore.resolve.resolve` can re-fit the
prior from the run's own or edited judgments and re-solve z* for a finished run without touching images.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from igcore.concepts import ConceptModel
from igcore.config import Config
from igcore.context import ConceptResult, ConceptScores, IGResult, RunContext
from igcore.discover.names import hypothesis_language, judgments_left_out
from igcore.errors import InputError
from igcore.hypothesis import implausible_sentence
from igcore.imitate import imitate, pseudo_label_summary
from igcore.likelihood import clause_deletion
from igcore.prior import fit_prior, load_judgments
from igcore.prior.sources import JUDGMENTS_FOLDER
from igcore.search import search_from_config
from igcore.worlds.base import World

#: The splits the concept model scores (the concept bank is its training set).
SCORED_SPLITS = ("train", "val", "test_train", "test_eval")


def check_judgments(config: Config, world: World) -> None:
    """Read and validate the configured judgments (ratings 1–5, known concepts and classes, required columns,
    valid hypothesis JSON in the pairwise file) before any training. Judgments of concepts the run will discover
    (``discovered::<model>/<k>``) and of hidden ones (``world.hide_concepts``) are read and left out."""
    load_judgments(config.prior, world.vocabulary, list(world.classes), drop=judgments_left_out(config, world.vocabulary, world.vocabulary))


def stage_concepts(ctx: RunContext) -> dict[str, Any]:
    """Train the concept model on the concept bank; score every split with it; report per-concept ROC AUC. It reads
    no model of the run, so it runs beside the baseline's training when stages run at once."""
    c, b = ctx.config.concepts, ctx.config.baseline
    data = ctx.data
    info: dict[str, Any] = {}
    model: ConceptModel | None = None
    if len(ctx.world.vocabulary):
        model = ConceptModel(
            ctx.world.vocabulary,
            holdout=c.holdout,
            seed=ctx.config.seed,
            estimator=ctx.estimator(),
            arch=ctx.config.features.backbone or b.arch,
            image_size=ctx.world.image_size,
            epochs=c.epochs,
            batch_size=b.batch_size,
            lr=c.lr,
            weight_decay=b.weight_decay,
            device=str(ctx.device),
            precision=ctx.precision,
            progress=ctx.progress,
        ).fit(data.concept_bank, ctx.inputs("concept_bank"))
        ctx.note_precision("concepts", model.classifier_)
        model.classifier_.save(ctx.writer.subdir("models/concepts"))
        annotated = {name: model.scores(ctx.inputs(name)) for name in SCORED_SPLITS}
        test_auc = model.auc(data.test_eval, annotated["test_eval"])
        ctx.write_metrics({"concepts.heldout_auc": model.heldout_auc_, "concepts.test_eval_auc": test_auc})
        heldout = [v for v in model.heldout_auc_.values() if v is not None]
        tested = [v for v in test_auc.values() if v is not None]
        # None where no concept's AUC is defined (a small data set whose held-out or D′_eval images show one value)
        info = {
            "mean_heldout_auc": round(float(np.mean(heldout)), 4) if heldout else None,
            "min_heldout_auc": round(float(np.min(heldout)), 4) if heldout else None,
            "mean_test_eval_auc": round(float(np.mean(tested)), 4) if tested else None,
        }
    else:
        annotated = {name: np.zeros((len(getattr(data, name)), 0), dtype=np.float32) for name in SCORED_SPLITS}
    ctx.annotated = ConceptResult(model, ConceptScores(**annotated), ctx.world.vocabulary)
    return info


def stage_vocabulary(ctx: RunContext) -> dict[str, Any]:
    """The run's vocabulary, the columns L_M reads: the annotated concepts scored by the concept model, then the
    concepts the ``discover`` stage found (when it ran), scored by their calibrated presence (:mod:`igcore.discover`)."""
    from igcore.discover.discovery import merge_concepts

    annotated = ctx.need(ctx.annotated, "annotated_concepts")
    vocabulary, merged = merge_concepts(ctx.world.vocabulary, annotated.scores.as_dict(), ctx.discovered)
    if not len(vocabulary):
        raise InputError("this data set annotates no concept and stage 'discover' did not run, so there is no concept "
                         "vocabulary; add 0/1 concept columns, or run the discover stage")
    scores = ConceptScores(**merged)
    ctx.writer.tensors("concept_scores", scores.as_dict())
    ctx.concepts = ConceptResult(annotated.model, scores, vocabulary)
    ctx.write_metrics({"concepts.vocabulary": [{"id": x.id, "text": x.text, "kind": x.kind} for x in vocabulary.concepts]})
    return {"concepts": len(vocabulary), "discovered": len(vocabulary) - len(ctx.world.vocabulary)}


def stage_ig(ctx: RunContext) -> dict[str, Any]:
    """Fit Prior_M, search z* (and the flat-prior ablation) on D's concept scores, evaluate on D′_eval; record the
    judgments Prior_M was fitted on, with their provenance, in the run (``judgments/``).

    Both searches speak the run's hypothesis language: annotated and named discovered concepts
    (:func:`igcore.discover.names.hypothesis_language`; an unnamed concept is nothing a person can judge)."""
    classes = list(ctx.world.classes)
    scores = ctx.need(ctx.concepts, "concepts").scores
    language = hypothesis_language(ctx.vocabulary)
    vocabulary = language.vocabulary
    if language.left_out:
        ctx.note(f"z* and no_prior use {len(vocabulary)} of the run's {len(ctx.vocabulary)} concepts: "
                 f"{language.left_out} discovered concept(s) are unnamed (name them with discover.names or on the Discover page)")
    y = ctx.data.train.labels
    start = time.perf_counter()
    # Read for the run's whole vocabulary (the world the judgments store and the recorded judgments speak about),
    # without the judgments about concepts outside z*'s language; Prior_M is fitted on the language.
    drop = judgments_left_out(ctx.config, ctx.vocabulary, vocabulary)
    prior = fit_prior(ctx.config.prior, load_judgments(ctx.config.prior, ctx.vocabulary, classes, drop=drop), vocabulary, classes)
    judgments = prior.judgments_
    judgments.write(ctx.writer.subdir(JUDGMENTS_FOLDER))
    for text in judgments.notes:
        ctx.note(text)
    prior_seconds = time.perf_counter() - start
    device = str(ctx.device)
    train, test_eval = language.of(scores.train), language.of(scores.test_eval)
    search = search_from_config(ctx.config.search, prior, device).fit(train, y, vocabulary, classes)
    flat = search_from_config(ctx.config.search, None, device).fit(train, y, vocabulary, classes)
    ctx.ig = IGResult(prior, search, flat, language)
    implausible = prior.implausible_records(search.z_star_)
    if warning := implausible_sentence(implausible, {c.id: c.text for c in vocabulary.concepts}):
        ctx.note(warning)

    ctx.write_metrics(
        {
            "hypotheses.z_star": search.z_star_.to_records(vocabulary),
            "hypotheses.z_star_text": search.z_star_.render(vocabulary, classes),
            "hypotheses.z_star_implausible": implausible,
            "hypotheses.z_star_json": search.z_star_.to_dict(),
            "hypotheses.no_prior": flat.z_star_.to_records(vocabulary),
            "hypotheses.no_prior_text": flat.z_star_.render(vocabulary, classes),
            "hypotheses.no_prior_json": flat.z_star_.to_dict(),
            "hypotheses.ranked": search.ranked_records(),
            "hypotheses.no_prior_ranked": flat.ranked_records(),
            "prior": {**prior.summary(), "judgments": judgments.provenance.describe(), "notes": judgments.notes},
            "clause_deletion.z_star": clause_deletion(search.z_star_, test_eval, language.of(ctx.annotations("test_eval")),
                                                      vocabulary, classes),
        }
    )
    ctx.evaluate("ig_direct", search.predict_proba(test_eval))
    ctx.evaluate("no_prior", flat.predict_proba(test_eval))
    if ctx.config.ig.posterior_predictive:
        ctx.evaluate("ig_posterior", search.posterior_predictive(test_eval))
    return {
        "prior_fit_seconds": round(prior_seconds, 3),
        "search_seconds": round(search.fit_seconds_, 3),
        "no_prior_seconds": round(flat.fit_seconds_, 3),
        "encoder": prior.encoder_name_,
        "z_star_size": len(search.z_star_),
    }


def stage_student(ctx: RunContext) -> dict[str, Any]:
    """Label D′_train with L_M(·|x′, z*) (or the posterior predictive) and train the student on it."""
    ig = ctx.need(ctx.ig, "ig")
    search = ig.search
    scores = ig.of(ctx.need(ctx.concepts, "concepts").scores.test_train)
    soft = search.posterior_predictive(scores) if ctx.config.ig.posterior_predictive else search.predict_proba(scores)
    student = imitate(ctx.new_classifier("ig_student"), ctx.inputs("test_train"), soft)
    ctx.add_classifier("ig_student", student)
    ctx.pseudo_labels = soft.astype(np.float32)
    ctx.writer.tensors("pseudo_labels", {"test_train": ctx.pseudo_labels})
    summary = pseudo_label_summary(soft)
    ctx.evaluate("ig_student", student.predict_proba(ctx.inputs("test_eval")), best_epoch=student.best_epoch_, **summary)
    return {"best_epoch": student.best_epoch_, **{k: round(v, 4) for k, v in summary.items()}}
