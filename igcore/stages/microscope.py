"""The ``microscope`` stage: the run's models under the microscope (:mod:`igcore.microscope.runner`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from igcore.context import RunContext
from igcore.microscope.occlusion import geometry
from igcore.microscope.registry import ATTRIBUTIONS
from igcore.microscope.runner import MicroscopeInputs, run_microscope

#: Above this many occluded copies per image the run says what occlusion costs and how to scale it.
OCCLUSION_COPIES_NOTE = 200


def occlusion_note(side: int, window: int, stride: int) -> str | None:
    """What occlusion will cost on ``side``-pixel images when that is many forward passes per map, else None."""
    copies = ATTRIBUTIONS["occlusion"].cost({"window": window, "stride": stride}, side)  # the registry's cost estimate
    if copies <= OCCLUSION_COPIES_NOTE:
        return None
    scaled = geometry(side)
    return (f"occlusion with {window}/{stride} px windows occludes {copies} copies of each {side} px image ({copies} forward "
            f"passes per map); leave microscope.params.occlusion.window and .stride unset (null) to scale them with the image "
            f"({scaled['window']}/{scaled['stride']} px here) or leave occlusion out of microscope.methods")


def stage_microscope(ctx: RunContext) -> dict[str, Any]:
    """Attributions, relevance mass, TCAV, surrogates, background swaps, counterfactual effects and sanity checks of
    ``microscope.models``."""
    from igcore.discover.names import hypothesis_language

    settings = ctx.config.microscope
    data = ctx.data
    # the surrogates speak z*'s language: annotated concepts and named discovered ones (igcore.discover.names)
    language = ctx.ig.language if ctx.ig is not None and ctx.ig.language is not None else hypothesis_language(ctx.vocabulary)
    scores = {k: language.of(v) for k, v in ctx.concepts.scores.as_dict().items()} if ctx.concepts is not None else None
    bank, tcav_concepts = data.concept_bank.concepts, None
    found = ctx.discovered or {}
    if found and ctx.config.discover.tcav:  # discovered concepts are tested like annotated ones
        bank = np.concatenate([bank, *(d.present("concept_bank") for d in found.values())], axis=1)
        tcav_concepts = ctx.world.vocabulary.ids + [c.id for d in found.values() for c in d.concepts]
    inputs = MicroscopeInputs(
        world=ctx.world,
        test_eval=data.test_eval,
        concept_bank_images=data.concept_bank.images,
        concept_bank_concepts=bank,
        models={name: ctx.classifier(name) for name in settings.models},
        test_train_images=data.test_train.images,
        concept_scores=scores,
        predictions={name: ctx.evaluations[name].predictions for name in settings.models if name in ctx.evaluations},
        seed=ctx.config.seed,
        search=ctx.config.search,
        device=str(ctx.device),
        vocabulary=language.vocabulary,
        test_eval_concepts=language.of(ctx.annotations("test_eval")),
        tcav_concepts=tcav_concepts,
        executor=ctx.executor,
        parallel=ctx.at_once(),  # its lanes side by side where the CPUs hold them, as stages run side by side
    )
    if "occlusion" in settings.methods:
        side = int(data.test_eval.images.shape[1])
        occ = ATTRIBUTIONS["occlusion"].resolve(settings.params.get("occlusion"), side)  # scaled with the image unless set
        note = occlusion_note(side, int(occ["window"]), int(occ["stride"]))
        if note:
            ctx.note(note)
    result = run_microscope(inputs, settings, ctx.writer.subdir("microscope"))
    ctx.microscope = result
    ctx.write_metrics(result.metrics_values())
    return {"timings": result.info["timings"], "part_timings": result.info["part_timings"], "budget": result.info["budget"]}
