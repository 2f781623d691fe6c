"""Peer methods against spurious correlations, run on the same data, architecture and budget as ERM.

Every method trains :class:`~igcore.baseline.ImageClassifier` with the run's ``baseline`` budget
(architecture, epochs, batch size, learning rate) and the same model-selection rule as ERM: the epoch
with the best *average* accuracy on ``val`` (D's distribution; never D′). (The IG student, which has no
labels, keeps its last epoch instead: :mod:`igcore.imitate`.) Who uses which labels:

==========  ==========================================================================
method      extra information beyond D's class labels
==========  ==========================================================================
groupdro    D's group labels (class × background) during training
jtt         none (its error set comes from an ERM identification model)
dfr         group labels of a small group-balanced subset of ``val`` (D's distribution)
==========  ==========================================================================

Enable them with ``--set peers='["groupdro","jtt","dfr"]'`` (the benchmark does).

:data:`PEERS` is the registry, and everything else derives from it: the ``peers`` config key and each
peer's config section (its ``params``, e.g. ``jtt.upweight``), and the peer's stage in
:data:`igcore.stages.STAGES` (run when named in ``peers``). A peer's code — its estimator and its stage
function ``stage_<name>(ctx)`` — is one module of this package, ``igcore/peers/<name>.py``, imported when
the stage runs; this module stays light (no torch) so the config can read the registry.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from igcore.settings import Settings


class JTTConfig(Settings):
    id_epochs: int = Field(1, ge=1, description="epochs of the identification model whose errors are upweighted")
    upweight: float = Field(20.0, ge=1, description="weight of the identification model's training errors")


class DFRConfig(Settings):
    C: float = Field(1.0, gt=0, description="inverse L1 strength of the last-layer logistic regression")


@dataclass(frozen=True)
class Peer:
    """A registered peer method.

    Attributes:
        name: the method's name (``peers``, ``methods.<name>``, its stage and, when it trains one, its model).
        doc: one line for people (its stage's line in ``python -m igcore stages``).
        requires: run results its stage reads (``splits``, ``model:erm``...).
        provides: results its stage fills; ``None``: the classifier ``model:<name>``.
        params: its config section ``<name>.*`` (a :class:`~igcore.settings.Settings` class), if it has parameters.
    """

    name: str
    doc: str
    requires: tuple[str, ...] = ("splits",)
    provides: tuple[str, ...] | None = None
    params: type[Settings] | None = None

    @property
    def results(self) -> tuple[str, ...]:
        return self.provides if self.provides is not None else (f"model:{self.name}",)

    @property
    def function(self) -> str:
        """Its stage function, ``stage_<name>`` in ``igcore/peers/<name>.py`` (imported when the stage runs)."""
        return f"igcore.peers.{self.name}:stage_{self.name}"


PEERS: dict[str, Peer] = {
    peer.name: peer
    for peer in (
        Peer("groupdro", "train the GroupDRO peer (D's group labels)"),
        Peer("jtt", "train the JTT peer (upweights an identification model's errors)", params=JTTConfig),
        Peer("dfr", "re-train ERM's last layer on group-balanced val data (DFR peer)", ("splits", "model:erm"), ("dfr",), DFRConfig),
    )
}


__all__ = ["PEERS", "DFRConfig", "JTTConfig", "Peer"]
