"""The baseline microscope: what did a trained classifier actually learn?

Pixel attributions with captum (one method per file, registered with :func:`register_attribution`),
relevance mass inside the animal mask (Arras et al., 2022), TCAV over the annotated concepts of the
concept bank, and the discovered ones with ``discover.tcav`` (Kim et al., 2018), surrogate hypotheses
``z_baseline`` / ``z_student`` in the language of z*, background swaps, counterfactual effects of
background and object swaps (:mod:`~igcore.microscope.counterfactuals`) and sanity checks by cascading
randomisation (Adebayo et al., 2018).

Public API::

    attribution_maps(run, model, method, indices)   # load or compute (cached in the run)
    compute_maps(module, images, targets, method)    # uncached, any PixelClassifier
    ATTRIBUTIONS, register_attribution, get_method
    relevance_mass, mask_area_share
    tcav_scores
    fit_surrogate, behaves_as_if
    background_swaps
    sanity_check, rank_correlation
    recompute(run_dir, overrides)                    # python -m igcore microscope RUN_DIR

The attribution methods register when this package is imported; importing them, the registry and the
parameters (:mod:`igcore.microscope.params`) loads no torch. The parts that compute load torch, so they
are imported on first use (``from igcore.microscope import tcav_scores`` works as usual).

:mod:`igcore.microscope.runner` runs every part on in-memory inputs (the ``microscope`` stage of
:mod:`igcore.stages` feeds it); :mod:`igcore.microscope.recompute` reruns it for a stored run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# Registering the methods (one per file, captum style); importing them is light (torch and captum load when a method runs).
from igcore.microscope import (  # noqa: F401
    grad_cam,
    gradient_shap,
    integrated_gradients,
    layer_integrated_gradients,
    occlusion,
    saliency,
)
from igcore.microscope.registry import (
    ATTRIBUTIONS,
    AttributionMethod,
    architecture_of,
    get_method,
    register_attribution,
)

if TYPE_CHECKING:
    from igcore.microscope.attribution import (
        AttributionCache,
        AttributionMaps,
        attribution_maps,
        compute_maps,
        maps_for,
    )
    from igcore.microscope.relevance import mask_area_share, relevance_mass, summarise_relevance
    from igcore.microscope.sanity import rank_correlation, sanity_check
    from igcore.microscope.surrogate import Surrogate, behaves_as_if, fit_surrogate
    from igcore.microscope.swaps import SwapResult, background_swaps
    from igcore.microscope.tcav import tcav_scores

_ATTRIBUTION = ("AttributionCache", "AttributionMaps", "attribution_maps", "compute_maps", "maps_for")
_RELEVANCE = ("mask_area_share", "relevance_mass", "summarise_relevance")
_SANITY = ("rank_correlation", "sanity_check")
_SURROGATE = ("Surrogate", "behaves_as_if", "fit_surrogate")
_SWAPS = ("SwapResult", "background_swaps")


def __getattr__(name: str) -> Any:
    if name in _ATTRIBUTION:
        from igcore.microscope import attribution as module
    elif name in _RELEVANCE:
        from igcore.microscope import relevance as module
    elif name in _SANITY:
        from igcore.microscope import sanity as module
    elif name in _SURROGATE:
        from igcore.microscope import surrogate as module
    elif name in _SWAPS:
        from igcore.microscope import swaps as module
    elif name == "tcav_scores":
        from igcore.microscope import tcav as module
    else:
        raise AttributeError(f"module 'igcore.microscope' has no attribute {name!r}")
    return getattr(module, name)


def recompute(run_dir: Any, overrides: Any = (), device: str | None = None) -> Any:
    """Recompute the microscope of a stored run (see :func:`igcore.microscope.recompute.recompute`)."""
    from igcore.microscope.recompute import recompute as _recompute

    return _recompute(run_dir, overrides, device)


__all__ = [
    "ATTRIBUTIONS",
    "AttributionCache",
    "AttributionMaps",
    "AttributionMethod",
    "Surrogate",
    "SwapResult",
    "architecture_of",
    "attribution_maps",
    "background_swaps",
    "behaves_as_if",
    "compute_maps",
    "fit_surrogate",
    "get_method",
    "mask_area_share",
    "maps_for",
    "rank_correlation",
    "recompute",
    "register_attribution",
    "relevance_mass",
    "sanity_check",
    "summarise_relevance",
    "tcav_scores",
]
