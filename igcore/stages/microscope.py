"""The ``microscope`` stage: the run's models under the microscope (:mod:`igcore.microscope.runner`)."""

from __future__ import annotations

from typing import Any

from igcore.context import RunContext
from igcore.microscope.runner import MicroscopeInputs, run_microscope


def stage_microscope(ctx: RunContext) -> dict[str, Any]:
    """Attributions, relevance mass, TCAV, surrogates, background swaps and sanity checks of ``microscope.models``."""
    settings = ctx.config.microscope
    data = ctx.data
    scores = ctx.concepts.scores.as_dict() if ctx.concepts is not None else None
    inputs = MicroscopeInputs(
        world=ctx.world,
        test_eval=data.test_eval,
        concept_bank_images=data.concept_bank.images,
        concept_bank_concepts=data.concept_bank.concepts,
        models={name: ctx.classifier(name) for name in settings.models},
        test_train_images=data.test_train.images,
        concept_scores=scores,
        predictions={name: ctx.evaluations[name].predictions for name in settings.models if name in ctx.evaluations},
        seed=ctx.config.seed,
        search=ctx.config.search,
        device=str(ctx.device),
    )
    result = run_microscope(inputs, settings, ctx.writer.subdir("microscope"))
    ctx.microscope = result
    ctx.write_metrics(result.metrics_values())
    return {"timings": result.info["timings"]}
