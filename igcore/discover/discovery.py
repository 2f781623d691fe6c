"""Discovery of one model's concepts from first forward pass to calibrated vocabulary, and what they resemble.

:func:`discover` runs the steps of :mod:`igcore.discover` on a trained classifier: read the layer
(:mod:`~igcore.discover.layers`), factorise positions of images from D and D′_train
(:mod:`~igcore.discover.factorize`), score every image of every split, calibrate the scores into
probabilities (:mod:`~igcore.discover.calibrate`) and measure what each component resembles. The result
(:class:`SourceDiscovery`) is what the pipeline turns into vocabulary (columns of the concept scores) and
what :mod:`igcore.discover.importance` ablates.

**What a component resembles**: the ROC AUC of its presence score on D′_eval against every annotated
concept, every background (place) and every group of the data, where they exist. D′_eval's annotations
and groups are used for this description only (like every evaluation); nothing the engine learns reads
them. A discovered concept that duplicates an annotation says so (AUC near 1).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from igcore.discover.calibrate import PresenceCalibration
from igcore.discover.factorize import ConceptFactorization, presence_scores
from igcore.discover.layers import Site, capture, resolve_site
from igcore.discover.names import discovered_concepts
from igcore.discover.params import DiscoverParams
from igcore.worlds.base import Concept, Split, Vocabulary

#: Splits every discovered concept is scored on (the concept bank too when TCAV tests them).
SCORED = ("train", "val", "test_train", "test_eval")


@dataclass
class SourceDiscovery:
    """The concepts discovered in one model (the *source*).

    Attributes:
        model: the source model's name (``erm``).
        site: where it was factorised.
        factorization: the fitted NMF (``components_`` (K, C)).
        calibration: score -> P(present).
        scores: raw presence scores (N, K) per split.
        probability: calibrated P(present) (N, K) per split (the concept scores L_M reads).
        maps: coefficient maps (N, h, w, K) of D′_eval (people's view of where a component is).
        fit_images: ``{"train": rows, "test_train": rows}`` whose positions were factorised.
        fit_maps: coefficient maps of those images (train rows first), for carrying components to other models.
        concepts: the vocabulary entries ``discovered::<model>/<k>`` (named where a name was given).
        resemblance: per component, AUCs against annotated concepts, backgrounds and groups (D′_eval).
        seconds: wall time per step.
        grids: the source's activations of the fitting images (``fit``) and of D′_eval (``test_eval``), so the
            effects stage need not read them again.
    """

    model: str
    site: Site
    factorization: ConceptFactorization
    calibration: PresenceCalibration
    scores: dict[str, np.ndarray]
    probability: dict[str, np.ndarray]
    maps: np.ndarray
    fit_images: dict[str, np.ndarray]
    fit_maps: np.ndarray
    concepts: list[Concept]
    resemblance: list[dict[str, Any]]
    seconds: dict[str, float] = field(default_factory=dict)
    grids: dict[str, np.ndarray] = field(default_factory=dict)  # the source's own activations: "fit", "test_eval"

    @property
    def k(self) -> int:
        return int(self.factorization.k_)

    def present(self, split: str) -> np.ndarray:
        """0/1 (N, K): the component is present (P >= 0.5), the discovered counterpart of an annotation."""
        return (self.probability[split] >= 0.5).astype(np.uint8)

    def info(self) -> dict[str, Any]:
        """JSON-able facts: layer, K and how it was chosen, fit, calibration (``discover/<model>/info.json``)."""
        f = self.factorization
        return {
            "model": self.model,
            "layer": self.site.path,
            "family": self.site.family,
            "non_negative": "stage output after ReLU" if self.site.family == "resnet" else "patch tokens as [relu(x), relu(-x)]",
            "grid": list(self.maps.shape[1:3]),
            "k": self.k,
            "k_selection": None if f.selection_ is None else f.selection_.to_dict(),
            "reconstruction_error": f.reconstruction_error_,
            "n_positions": f.n_positions_,
            "fit_images": {name: int(len(rows)) for name, rows in self.fit_images.items()},
            "calibration": self.calibration.to_dict(),
            "present_share": {s: [float(v) for v in self.present(s).mean(0)] for s in self.probability},
            "concepts": [{"id": c.id, "text": c.text, "kind": c.kind} for c in self.concepts],
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


def fit_sample(splits: Mapping[str, Split], n_images: int, seed: int) -> dict[str, np.ndarray]:
    """Rows of D (``train``) and D′_train (``test_train``) whose positions are factorised: half from each."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xD15C]))
    out = {}
    for name in ("train", "test_train"):
        n = len(splits[name])
        out[name] = np.sort(rng.choice(n, size=min(n, max(2, n_images // 2)), replace=False))
    return out


def auc_table(scores: np.ndarray, columns: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """ROC AUC of each score column against each 0/1 column ``(N, M)`` (constant columns left out).

    One scikit-learn call for all columns (a multilabel ``roc_auc_score`` with ``average=None`` computes each
    column's binary AUC exactly as a call per column would, without re-validating the inputs each time)."""
    from sklearn.metrics import roc_auc_score

    columns = np.asarray(columns)
    counts = columns.sum(0) if columns.ndim == 2 else np.zeros(0)
    keep = [j for j in range(len(names)) if 0 < counts[j] < len(columns)]
    if not keep:
        return {}
    if len(keep) == 1:
        return {names[keep[0]]: float(roc_auc_score(columns[:, keep[0]], scores))}
    aucs = roc_auc_score(columns[:, keep], np.repeat(np.asarray(scores)[:, None], len(keep), axis=1), average=None)
    return {names[j]: float(a) for j, a in zip(keep, aucs, strict=True)}


def resemblance(scores: np.ndarray, split: Split, vocabulary: Vocabulary, backgrounds: Sequence[str],
                group_names: Sequence[str]) -> list[dict[str, Any]]:
    """Per component: AUCs of its presence on ``split`` against annotated concepts, backgrounds and groups,
    and the best match of each kind (see the module docstring)."""
    kinds = {
        "concepts": (np.asarray(split.concepts).reshape(len(split), -1), list(vocabulary.ids)),
        "backgrounds": ((np.eye(len(backgrounds), dtype=np.uint8)[split.background], list(backgrounds)) if len(backgrounds) > 1
                        else (np.zeros((len(split), 0), np.uint8), [])),
        "groups": (np.eye(len(group_names), dtype=np.uint8)[split.groups], list(group_names)),
    }
    # every kind's columns side by side, so each component needs one AUC call
    columns = np.concatenate([c.astype(np.float64) for c, _ in kinds.values()], axis=1)
    labels = [f"{kind}/{name}" for kind, (_, names) in kinds.items() for name in names]
    out = []
    for k in range(scores.shape[1]):
        found = auc_table(scores[:, k], columns, labels)
        record: dict[str, Any] = {kind: {name: found[f"{kind}/{name}"] for name in names if f"{kind}/{name}" in found}
                                  for kind, (_, names) in kinds.items()}
        for kind in ("concepts", "backgrounds", "groups"):
            table = record[kind]
            best = max(table, key=table.__getitem__) if table else None
            record[f"best_{kind[:-1]}"] = None if best is None else {"name": best, "auc": table[best]}
        out.append(record)
    return out


def grid_splits(scored: Sequence[str] = SCORED) -> list[str]:
    """The splits whose activations :func:`discover` reads: those it scores, and those it factorises."""
    return list(dict.fromkeys([*scored, "train", "test_train", "test_eval"]))


def discover(
    model: Any,
    name: str,
    splits: Mapping[str, Split],
    params: DiscoverParams,
    *,
    vocabulary: Vocabulary,
    backgrounds: Sequence[str],
    group_names: Sequence[str],
    names: Mapping[str, str] | None = None,
    seed: int = 0,
    scored: Sequence[str] = SCORED,
    grids: Mapping[str, np.ndarray] | None = None,
) -> SourceDiscovery:
    """Discover the concepts of ``model`` (an :class:`~igcore.baseline.ImageClassifier`) named ``name``.

    Args:
        splits: the run's splits (``train`` and ``test_train`` are factorised; every split in ``scored`` is scored).
        params: the ``discover.*`` settings (K or its candidates, the layer, the sample size).
        vocabulary, backgrounds, group_names: the data's annotations, for :func:`resemblance` on D′_eval.
        names: ``{concept id: name}`` for components people named.
        scored: splits to score (``test_eval`` is always among them: maps and resemblance).
        grids: the layer's activations of every split of :func:`grid_splits` (the pipeline reads them on its
            executor, :class:`~igcore.discover.layers.LayerActivations`); None reads them here.
    """
    clock = time.perf_counter()
    seconds: dict[str, float] = {}

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[step] = seconds.get(step, 0.0) + now - clock
        clock = now

    module, device = model.module_, model.device_
    site = resolve_site(module, params.layer)
    if grids is None:
        grids = {s: capture(module, site, splits[s].images, device=device) for s in grid_splits(scored)}
    rows = fit_sample(splits, params.images, seed)
    fit_grids = np.concatenate([grids["train"][rows["train"]], grids["test_train"][rows["test_train"]]])
    lap("capture")
    factorization = ConceptFactorization(params.k, tuple(params.k_candidates), params.energy, seed).fit(fit_grids)
    lap("factorise")
    fit_maps = factorization.transform(fit_grids)
    all_maps = {s: factorization.transform(g) for s, g in grids.items()}
    scores = {s: presence_scores(all_maps[s]) for s in scored}
    maps = all_maps["test_eval"]
    lap("score")
    calibration = PresenceCalibration(seed).fit(presence_scores(fit_maps))
    probability = {s: calibration.predict_proba(v) for s, v in scores.items()}
    lap("calibrate")
    similar = resemblance(scores["test_eval"], splits["test_eval"], vocabulary, backgrounds, group_names)
    lap("resemblance")
    return SourceDiscovery(
        model=name, site=site, factorization=factorization, calibration=calibration, scores=scores,
        probability=probability, maps=maps, fit_images=rows, fit_maps=fit_maps,
        concepts=discovered_concepts(name, factorization.k_, names), resemblance=similar, seconds=seconds,
        grids={"fit": fit_grids, "test_eval": grids["test_eval"]},
    )


def merge_concepts(
    annotated: Vocabulary, scores: Mapping[str, np.ndarray], discovered: Mapping[str, SourceDiscovery] | None
) -> tuple[Vocabulary, dict[str, np.ndarray]]:
    """The run's vocabulary and concept scores: the annotated concepts' columns, then each source's discovered
    concepts (their calibrated presence), in ``discover.models`` order."""
    found = list((discovered or {}).values())
    vocabulary = Vocabulary(annotated.concepts + tuple(c for d in found for c in d.concepts))
    merged = {s: np.concatenate([v, *(d.probability[s] for d in found)], axis=1).astype(np.float32) for s, v in scores.items()}
    return vocabulary, merged
