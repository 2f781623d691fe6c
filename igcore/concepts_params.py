"""The concept model's training (the ``concepts`` config section) of :mod:`igcore.concepts`."""

from __future__ import annotations

from pydantic import Field

from igcore.settings import Settings


class ConceptsConfig(Settings):
    """The concept model (igcore/concepts.py), trained on the concept bank only."""

    epochs: int = Field(8, ge=1, le=1000, description="training epochs")
    lr: float = Field(3e-3, gt=0, le=10, description="peak learning rate")
    holdout: float = Field(0.2, gt=0, lt=1, description="fraction of the concept bank held out for model selection and AUC")
