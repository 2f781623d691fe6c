"""Frozen pretrained features (the ``features`` config section) of :mod:`igcore.features`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator

from igcore.settings import PathText, Settings, stored


class FeaturesConfig(Settings):
    """Frozen pretrained features (the PCBM / DFR recipe): every model the run trains is a linear head on them."""

    backbone: PathText | None = Field(
        None, description="a local pretrained transformers vision checkpoint; its pooled features are extracted once per image"
    )
    batch_size: int = Field(64, ge=1, le=4096, description="images per forward pass of the backbone")

    @field_validator("backbone")
    @classmethod
    def _backbone_folder(cls, path: str | None, info: ValidationInfo) -> str | None:
        if path is not None and not stored(info) and not (Path(path).expanduser() / "config.json").is_file():
            raise ValueError(f"{path!r} is not a save_pretrained folder (no config.json)")
        return path
