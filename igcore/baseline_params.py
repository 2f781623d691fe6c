"""The image classifiers' shared budget (the ``baseline`` config section): every method trains with it."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator

from igcore.architectures import ARCHITECTURES, check_architecture
from igcore.settings import PathText, Settings, stored


class BaselineConfig(Settings):
    """The image classifier every method trains with the same budget (ERM, oracle, student, peers)."""

    arch: str = Field(
        "resnet-tiny", description=f"{' | '.join(ARCHITECTURES)} | a local save_pretrained checkpoint directory"
    )
    epochs: int = Field(8, ge=1, le=1000, description="training epochs (the epoch with the best val accuracy is kept)")
    batch_size: int = Field(64, ge=1, le=65536, description="images per optimisation step")
    lr: float = Field(3e-3, gt=0, le=10, description="peak learning rate of the one-cycle AdamW schedule")
    weight_decay: float = Field(1e-4, ge=0, le=10, description="AdamW weight decay")
    checkpoint: PathText | None = Field(
        None, description="a user's trained transformers image classifier (save_pretrained folder) used as the baseline, without training"
    )
    label_map: dict[str, str] | None = Field(None, description="checkpoint label -> world class, when the names differ")

    @field_validator("checkpoint")
    @classmethod
    def _checkpoint_folder(cls, path: str | None, info: ValidationInfo) -> str | None:
        if path is not None and not stored(info) and not Path(path).expanduser().is_dir():
            raise ValueError(f"folder {path!r} does not exist; give a folder written by save_pretrained")
        return path

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, arch: str, info: ValidationInfo) -> str:
        return arch if stored(info) else check_architecture(arch)
