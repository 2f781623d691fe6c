"""The microscope's parameters (the ``microscope`` config section): what to examine and how.

The attribution methods' parameters (``microscope.params.<method>.*``) are not written here: each method
declares them when it registers (:mod:`igcore.microscope.registry`), and this section takes its defaults
and its checks from the registry. Which models a run can examine (``models``, ``tcav.models``,
``sanity.models``) is the stage list's business (:func:`igcore.stages.check_models`), not this section's.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from igcore.methods import EXAMINED
from igcore.microscope.registry import ATTRIBUTIONS
from igcore.settings import Settings, unique, unknown

#: Multiple-testing corrections of TCAV's p-values (:func:`igcore.microscope.tcav.adjust_p_values`).
CORRECTIONS = ("bh", "holm", "bonferroni", "none")


class TCAVConfig(Settings):
    models: list[str] = Field(["erm"], description="models whose layers are tested (a subset of microscope.models)")
    layers: list[str] = Field(["penultimate", "middle"], min_length=1, description="aliases (penultimate, middle) or dotted module paths")
    n_random: int = Field(20, ge=2, description="random concept sets for the t-test")
    repeats: int = Field(3, ge=1, description="draws of the concept and random images; significant = significant in every repeat")
    n_controls: int = Field(10, ge=0, description="random image sets tested like concepts (their significance rate is the false-positive rate)")
    n_concept_images: int = Field(80, ge=4, description="concept-bank images per concept / random set")
    n_inputs: int = Field(100, ge=1, description="test_eval images per class whose predictions are tested")
    alpha: float = Field(0.05, gt=0, lt=1, description="significance level")
    correction: str = Field("bh", description="multiple-testing correction over all concept x class x layer tests: bh | holm | bonferroni | none")

    @field_validator("correction")
    @classmethod
    def _known_correction(cls, name: str) -> str:
        if problem := unknown("correction", [name], CORRECTIONS):
            raise ValueError(problem)
        return name


class SwapsConfig(Settings):
    max_images: int | None = Field(None, ge=1, description="test_eval images swapped; null = every image")
    keep_per_group: int = Field(2, ge=0, description="swapped images per group kept for the dashboard")


class CounterfactualsConfig(Settings):
    max_images: int | None = Field(None, ge=1, description="D' images whose background and object are swapped; null = every test_eval image")
    attribution_per_group: int = Field(8, ge=0, description="images per group whose double swap is attributed with integrated gradients (0 = off)")
    n_steps: int = Field(32, ge=2, description="integrated-gradients steps of the swap attribution")
    n_resamples: int = Field(2000, ge=100, description="bootstrap resamples of every confidence interval")
    half_width: float = Field(
        0.1, gt=0, description="when D' does not fit the budget: add images until every effect's 95% CI half-width (log-odds) is below this"
    )
    examples_per_group: int = Field(2, ge=0, description="counterfactual examples per group kept for the dashboard and docs")


class SanityConfig(Settings):
    models: list[str] | None = Field(None, description="models whose maps get the cascading-randomisation check; null = every examined model")
    n_images: int = Field(8, ge=1, description="images per check")
    threshold: float = Field(0.5, ge=-1, le=1, description="a method is trustworthy when |Spearman| to the trained maps is at most this")


def registry_defaults() -> dict[str, dict[str, Any]]:
    """Every registered attribution method with its parameters' defaults (the default ``microscope.params``)."""
    return {name: method.defaults for name, method in ATTRIBUTIONS.items()}


class MicroscopeConfig(Settings):
    """The baseline microscope (igcore/microscope/): attributions, relevance mass, TCAV, surrogates, swaps, sanity."""

    models: list[str] = Field(list(EXAMINED), description="models examined (each needs the stage that trains it)")
    methods: list[str] = Field(
        ["integrated_gradients", "saliency", "gradient_shap", "occlusion", "grad_cam", "layer_integrated_gradients"],
        description="attribution methods; each runs on the architectures it applies to",
    )
    per_group: int = Field(8, ge=1, description="test_eval images per group that get attribution maps")
    batch_size: int = Field(32, ge=1, description="images per attribution call")
    params: dict[str, dict[str, Any]] = Field(
        default_factory=registry_defaults,
        description="per-method parameters {method: {parameter: value}}; each method declares its own (igcore/microscope/<method>.py)",
    )
    tcav: TCAVConfig = Field(default_factory=TCAVConfig)
    swaps: SwapsConfig = Field(default_factory=SwapsConfig)
    sanity: SanityConfig = Field(default_factory=SanityConfig)
    counterfactuals: CounterfactualsConfig = Field(default_factory=CounterfactualsConfig)
    surrogates: bool = Field(True, description="fit z_baseline / z_student (surrogate hypotheses in the language of z*)")
    surrogate_l1: float = Field(20.0, ge=0, le=1e6, description="sparsity cost on every surrogate clause (readable, concept-agnostic)")
    surrogate_max_images: int | None = Field(None, ge=1, description="test_train images the surrogates are fitted to (a seeded random subset); null = all")
    budget_s: float | None = Field(
        None, gt=0, description="seconds the microscope may take; work that does not fit is scaled down (igcore/microscope/plan.py); null = no limit"
    )

    @field_validator("models")
    @classmethod
    def _unique_models(cls, value: list[str]) -> list[str]:
        return unique(value)

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, methods: list[str]) -> list[str]:
        if problem := unknown("attribution method", methods, list(ATTRIBUTIONS)):
            raise ValueError(problem)
        return unique(methods)

    @field_validator("params")
    @classmethod
    def _known_params(cls, params: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for method, values in params.items():
            if problem := unknown("attribution method", [method], list(ATTRIBUTIONS)):
                raise ValueError(problem)
            ATTRIBUTIONS[method].check(values)  # the method's own bounds -> InputError (a ValueError) naming the key
        return params
