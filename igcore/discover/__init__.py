"""Concept discovery: the concepts a model uses that nobody annotated, as words people can name and judge.

Every concept IG Microscope could speak of used to come from an annotated vocabulary. This package finds
the others in the models themselves, in the manner of automatic concept extraction (ACE; Ghorbani et al.,
2019, "Towards Automatic Concept-based Explanations", NeurIPS) and CRAFT (Fel et al., 2023, "CRAFT:
Concept Recursive Activation FacTorization for Explainability", CVPR), and closes the loop neither does:
discovered concept → a person names it → Prior_M judges its clauses → z* → a student that does not use it.

1. **Where** (:mod:`~igcore.discover.layers`): a layer whose output is a grid of non-negative feature
   vectors — a ResNet stage output after its ReLU (``discover.layer``: ``last`` by default), or a ViT
   block's patch tokens read as ``[relu(x), relu(-x)]`` (exact and invertible).
2. **What** (:mod:`~igcore.discover.factorize`): scikit-learn NMF of the activations at every position of
   images from D and from the unlabelled D′_train (never D′_eval) into K components, K from
   ``discover.k`` or the share of the activations' energy it explains; per component a basis vector, each
   image's presence score (its strongest position) and its spatial map.
3. **Vocabulary** (:mod:`~igcore.discover.calibrate`, :mod:`~igcore.discover.names`): component k of model
   m is the concept ``discovered::m/k`` (kind ``discovered``); its probability for L_M is its presence
   score calibrated so that "present" means "in the upper of the two populations of its scores";
   unnamed, its text is "unnamed concept k"; named (``discover.names``, or :class:`NameStore` from the
   dashboard), the name is its text everywhere. z* speaks only in annotated and named concepts.
4. **Importance** (:mod:`~igcore.discover.importance`): each component removed from the layer of every
   model under the microscope by a forward hook, and the change in the log-odds of the model's answer on
   D′_eval with bootstrap 95% intervals, overall and per group; for a model other than the one it was
   found in, the component is carried over by its coefficient maps (what it adds to that model's
   activations, fitted on D′_train), and how well that fits is reported.
5. **Resemblance** (:mod:`~igcore.discover.discovery`): presence AUC on D′_eval against every annotated
   concept, background and group, so a discovered concept that duplicates an annotation says so.

The pipeline runs it as two stages (:mod:`igcore.stages.discover`): ``discover`` after the models it
explains and before ``vocabulary`` (which appends the discovered concepts to the run's vocabulary, so
they are words for z*), and ``discover_effects`` after the student (the effects on every model).
:mod:`~igcore.discover.view` reads a stored run's discovery for the dashboard;
:mod:`~igcore.discover.store` keeps people's names, and :mod:`~igcore.discover.remeasure` removes the components
people name alike after the run together on its models.

Public API (imported lazily, so that the config can import :class:`DiscoverParams` without torch)::

    DiscoverParams                                  the discover.* keys
    discover(model, name, splits, params, ...)      -> SourceDiscovery
    ConceptFactorization, select_k, KSelection      NMF and the choice of K
    PresenceCalibration                             score -> P(present)
    fit_patterns, ablation_effects, Ablations       importance (components alone, and those named alike together)
    measure_together(run, groups)                   names given alike after the run, removed together on its models
    concept_id, parse_id, apply_names, alike, hypothesis_language, read_names_csv
    NameStore                                       names with rater, time and history (SQLite), and what removing
                                                    components named alike together did (per set of components)
    DiscoveryView                                   a stored run's components, exemplars, maps, effects, names
"""

from __future__ import annotations

import importlib
from typing import Any

from igcore.discover.params import DISCOVER_MODELS, DiscoverParams

_LAZY = {
    "discover": "discovery", "SourceDiscovery": "discovery", "resemblance": "discovery",
    "ConceptFactorization": "factorize", "KSelection": "factorize", "select_k": "factorize", "presence_scores": "factorize",
    "PresenceCalibration": "calibrate",
    "Patterns": "importance", "fit_patterns": "importance", "ablation_effects": "importance", "Ablations": "importance",
    "measure_together": "remeasure",
    "Site": "layers", "resolve_site": "layers", "capture": "layers", "variants": "layers",
    "concept_id": "names", "parse_id": "names", "apply_names": "names", "alike": "names", "hypothesis_language": "names",
    "read_names_csv": "names", "Language": "names", "is_named": "names", "unnamed_text": "names",
    "NameStore": "store",
    "DiscoveryView": "view",
}

__all__ = ["DISCOVER_MODELS", "DiscoverParams", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"igcore.discover.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'igcore.discover' has no attribute {name!r}")
