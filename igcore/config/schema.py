"""The run config's schema: one :class:`Config` composed of sections, each declared where it is used.

Every key the pipeline reads is declared once, with its type, default, bounds and one line of
documentation. The sections of estimators live beside them (``igcore/search/params.py``,
``igcore/prior/params.py``, ``igcore/microscope/params.py``, ``igcore/baseline_params.py``, ...); the
world's keys are declared by the world itself (:class:`~igcore.worlds.base.WorldParams` subclasses), so
``world.*`` accepts exactly the parameters of the chosen ``world.name``; each peer method's section comes
from the peer registry (:data:`igcore.peers.PEERS`). This module adds the run-level keys and the checks
that span sections. It knows no stages: which models a run can hold is checked by the stage list
(:func:`igcore.stages.check_models`), before any work.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SerializeAsAny, create_model, field_validator, model_validator

from igcore.baseline_params import BaselineConfig
from igcore.concepts_params import ConceptsConfig
from igcore.discover.params import DiscoverParams
from igcore.features_params import FeaturesConfig
from igcore.microscope.params import MicroscopeConfig
from igcore.peers import PEERS
from igcore.prior.params import PriorConfig
from igcore.runtime import RuntimeConfig
from igcore.schema import check_run_id
from igcore.search.params import SearchConfig
from igcore.settings import Settings, unique, unknown
from igcore.worlds.base import WorldParams
from igcore.worlds.registry import DEFAULT_WORLD, world_params_class


class TrueConceptsConfig(Settings):
    C: float = Field(1.0, gt=0, description="inverse L2 strength of the true-concepts logistic regression (a reference)")


class IGConfig(Settings):
    posterior_predictive: bool = Field(False, description="label D' with the posterior predictive over the ranked list instead of L_M(.|x', z*)")


class RayConfig(Settings):
    """The ``executor=ray`` path: per-image work as Ray Data pipelines (docs/SCALE.md)."""

    address: str | None = Field(
        None, description="an existing Ray cluster (e.g. auto, ray://head:10001); null = $RAY_ADDRESS, else a local cluster here"
    )
    workers: int = Field(2, ge=1, le=4096, description="Ray workers mapping images at once, each holding the model (local cluster: its CPUs)")
    threads_per_worker: int = Field(1, ge=1, le=256, description="torch threads (and CPUs reserved) per worker")
    batch_size: int = Field(64, ge=1, le=4096, description="images per map_batches call (one backbone forward pass)")
    object_store_mb: int = Field(512, ge=100, le=1_048_576, description="object store of a local cluster, MiB (bounds the data in flight)")
    max_retries: int = Field(3, ge=0, le=100, description="retries of a batch whose worker died, before the run fails")


def _default_world() -> WorldParams:
    return world_params_class(DEFAULT_WORLD)()


class _RunConfig(Settings):
    """A whole run's configuration (the peers' sections are added below, from the peer registry)."""

    seed: int = Field(0, ge=0, le=2**32 - 1, description="seeds the world, training and search (same seed => same metrics)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto (CUDA when present) | cpu | cuda")
    run_id: str | None = Field(None, description="name of the run directory; null = generated; an existing id is refused")
    world: SerializeAsAny[WorldParams] = Field(default_factory=_default_world)
    baseline: BaselineConfig = Field(default_factory=BaselineConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    true_concepts: TrueConceptsConfig = Field(default_factory=TrueConceptsConfig)
    prior: PriorConfig = Field(default_factory=PriorConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    microscope: MicroscopeConfig = Field(default_factory=MicroscopeConfig)
    concepts: ConceptsConfig = Field(default_factory=ConceptsConfig)
    ig: IGConfig = Field(default_factory=IGConfig)
    discover: DiscoverParams = Field(default_factory=DiscoverParams)
    peers: list[str] = Field([], description=f"peer methods to run: {', '.join(PEERS)}")
    executor: Literal["local", "ray"] = Field("local", description="where per-image work runs: local (this process) | ray (Ray Data, ray.*)")
    ray: RayConfig = Field(default_factory=RayConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)

    @field_validator("run_id")
    @classmethod
    def _safe_run_id(cls, run_id: str | None) -> str | None:
        return None if run_id is None else check_run_id(run_id)

    @field_validator("peers")
    @classmethod
    def _known_peers(cls, peers: list[str]) -> list[str]:
        if problem := unknown("peer method(s)", peers, list(PEERS)):
            raise ValueError(problem)
        return unique(peers)

    @model_validator(mode="after")
    def _peers_train_images(self) -> _RunConfig:
        if self.peers and self.features.backbone:
            raise ValueError(
                f"peers ({', '.join(self.peers)}) train whole image models and cannot be compared with linear heads on "
                "frozen features; run them without features.backbone"
            )
        return self

    @model_validator(mode="after")
    def _ray_streams_features(self) -> _RunConfig:
        # The ray path streams images through the frozen backbone once; models train on the cached features.
        if self.executor == "ray" and not self.features.backbone:
            raise ValueError(
                "executor=ray streams images through a frozen backbone and trains on its features; "
                "set features.backbone=<save_pretrained folder> (or use executor=local to train whole image models)"
            )
        return self

    def public(self) -> dict[str, Any]:
        """JSON-ready dict (what the manifest stores)."""
        return self.model_dump(mode="json")


#: The run config: the run-level keys above and one section ``<peer>.*`` per peer method that has parameters.
Config: type[_RunConfig] = create_model(  # type: ignore[call-overload]
    "Config",
    __base__=_RunConfig,
    __doc__=_RunConfig.__doc__,
    __module__=__name__,
    **{name: (peer.params, Field(default_factory=peer.params)) for name, peer in PEERS.items() if peer.params is not None},
)
