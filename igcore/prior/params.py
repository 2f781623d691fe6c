"""Prior_M's parameters (the ``prior`` config section); :class:`~igcore.prior.model.PriorModel` checks its own
arguments against the same model, so a bound is written once."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator

from igcore.prior.encoders import ENCODERS
from igcore.settings import PathText, Settings, stored, unknown

#: Text features of a clause the prior's regression reads.
FEATURES = ("concept", "clause", "concept+clause")


class PriorConfig(Settings):
    """Prior_M (igcore/prior): log Prior(z) = strength * (sum w log p - coef_weight sum w^2 - coef_length |z|
    - coef_class_length sum_c n_c^2 - coef_empty_class #empty classes)."""

    judgments: PathText | None = Field(None, description="ratings CSV rater,concept,class,rating (1-5) replacing assets/judgments/ratings.csv")
    pairwise: PathText | None = Field(None, description="pairwise CSV rater,hypothesis_a,hypothesis_b,preferred replacing the shipped one")
    database: PathText | None = Field(None, description="SQLite judgments store (the dashboard's): what people added there for this world joins the CSVs' ratings")
    encoder: str = Field("minilm", description="clause text encoder: minilm (all-MiniLM-L6-v2 from local files) | hashing (char n-grams)")
    features: str = Field("concept", description="text features of a clause: concept | clause | concept+clause")
    ridge_alpha: float = Field(0.1, ge=0, description="ridge penalty of the text -> mean rating regression")
    shrinkage: float = Field(1.0, ge=0, description="pseudo-raters given to the text model when combining with rated means")
    endorse_threshold: int = Field(4, ge=2, le=5, description="a rating >= this endorses a clause (plausibility = P(endorse))")
    min_plausibility: float = Field(1e-3, gt=0, lt=0.5, description="plausibilities clipped to [min, 1 - min]")
    strength: float = Field(100.0, ge=0, description="nats of data log-likelihood one unit of the prior bracket is worth")
    fit_pairwise: bool = Field(True, description="fit the coef_* terms by Bradley-Terry on the pairwise judgments")
    coef_length: float = Field(0.4, ge=0, description="cost per clause (used when not fitted)")
    coef_weight: float = Field(0.025, ge=0, description="cost per unit w^2 (used when not fitted)")
    coef_class_length: float = Field(0.0, ge=0, description="cost per unit sum_c n_c^2 (used when not fitted)")
    coef_empty_class: float = Field(7.0, ge=0, description="cost per class without a clause (used when not fitted)")
    bt_l2: float = Field(0.1, ge=0, description="L2 on the Bradley-Terry parameters")

    @field_validator("judgments", "pairwise")
    @classmethod
    def _readable_file(cls, path: str | None, info: ValidationInfo) -> str | None:
        if path is None or stored(info):
            return path
        p = Path(path)
        if not path.strip() or not p.is_file():
            raise ValueError(f"file {path!r} does not exist")
        try:
            with p.open("rb"):
                pass
        except OSError as e:
            raise ValueError(f"file {path!r} cannot be read ({e.strerror})") from None
        return path

    @field_validator("database")
    @classmethod
    def _database_path(cls, path: str | None, info: ValidationInfo) -> str | None:
        if path is not None and not stored(info) and (not path.strip() or not Path(path).parent.is_dir()):
            raise ValueError(f"{path!r} is not a file path in an existing folder")
        return path

    @field_validator("encoder")
    @classmethod
    def _known_encoder(cls, name: str) -> str:
        if problem := unknown("text encoder", [name], ENCODERS):
            raise ValueError(problem)
        return name

    @field_validator("features")
    @classmethod
    def _known_features(cls, name: str) -> str:
        if problem := unknown("clause features", [name], FEATURES):
            raise ValueError(problem)
        return name
