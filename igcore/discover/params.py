"""The ``discover.*`` config keys: which models are explained, how many components, how names are given.

Declared beside the estimators that read them (:func:`~igcore.discover.discovery.discover` and its
:class:`~igcore.discover.factorize.ConceptFactorization`, the ``discover`` and ``discover_effects`` stages),
so a bound is written once.
"""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator, model_validator

from igcore.settings import PathText, Settings, stored, unique, unknown

#: Models discovery can explain: trained (or loaded) before the ``ig`` stage, never on D′ labels.
DISCOVER_MODELS = ("erm",)
#: A run's folder of discovered concepts, one subfolder per model they were found in (``discover/<model>/``).
FOLDER = "discover"
#: Layers of a model discovery can factorise (aliases; igcore/discover/layers.py).
LAYER_ALIASES = ("last", "penultimate")


class DiscoverParams(Settings):
    """Concept discovery (igcore/discover/): NMF of a model's layer activations (ACE, CRAFT)."""

    models: list[str] = Field(["erm"], description="models whose concepts are discovered (erm: the baseline or a user's checkpoint); [] = off")
    k: int | None = Field(None, ge=2, le=64, description="components per model; null = the smallest of discover.k_candidates explaining discover.energy (the largest when none does)")
    k_candidates: list[int] = Field(
        [4, 6, 8, 10, 12, 16, 20, 24, 32], min_length=1, description="K tried in increasing order when discover.k is null (each 2-64)"
    )
    energy: float = Field(0.95, gt=0, lt=1, description="share of the layer's activation energy (sum of squares) the chosen K must explain")
    layer: str = Field("last", description="last | penultimate (ResNet stage / ViT block output) | a dotted module path")
    images: int = Field(2000, ge=20, le=1_000_000, description="images of D and D'_train (half each) whose positions are factorised")
    names: PathText | None = Field(None, description="CSV component,text naming discovered concepts (component = discovered::<model>/<k>)")
    exemplars: int = Field(12, ge=1, le=200, description="D'_eval exemplars per component shown to people who name it (highest presence first)")
    tcav: bool = Field(False, description="also test discovered concepts with TCAV (the ablation effect already measures their causal use)")

    @field_validator("models")
    @classmethod
    def _known_models(cls, models: list[str]) -> list[str]:
        if problem := unknown("model(s)", models, DISCOVER_MODELS):
            raise ValueError(problem)
        return unique(models)

    @field_validator("k_candidates")
    @classmethod
    def _candidates(cls, values: list[int]) -> list[int]:
        if any(v < 2 or v > 64 for v in values) or len(set(values)) < len(values):
            raise ValueError(f"discover.k_candidates must be distinct integers between 2 and 64, got {values!r}")
        return sorted(values)

    @field_validator("layer")
    @classmethod
    def _layer_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("discover.layer must be last, penultimate or a dotted module path")
        return value

    @field_validator("names")
    @classmethod
    def _names_file(cls, path: str | None, info: ValidationInfo) -> str | None:
        from pathlib import Path

        if path is not None and not stored(info) and not Path(path).expanduser().is_file():
            raise ValueError(f"discover.names: file {path!r} does not exist; give a CSV component,text")
        return path

    @model_validator(mode="after")
    def _names_need_discovery(self) -> DiscoverParams:
        if self.names is not None and not self.models:
            raise ValueError("discover.names names discovered concepts, but discover.models is empty (discovery is off)")
        return self

    def max_k(self) -> int:
        """The most components any model can get (ids ``discovered::<model>/<k>`` have ``k`` below it)."""
        return self.k if self.k is not None else max(self.k_candidates)
