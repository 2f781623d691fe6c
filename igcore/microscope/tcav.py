"""TCAV: Testing with Concept Activation Vectors (Kim et al., 2018, "Interpretability Beyond Feature
Attribution: Quantitative Testing with Concept Activation Vectors (TCAV)", ICML).

For a concept C, a layer l and a class k: a linear classifier separates the layer-l activations of
images showing C (concept-bank images annotated with C) from those of a random set of concept-bank
images; its normal is the concept activation vector (CAV). The TCAV score is the fraction of class-k
inputs whose class-k logit increases along the CAV (positive directional derivative). Computed with
:class:`captum.concept.TCAV` over the SAME concept vocabulary that z* is written in.

Significance (Kim et al., §3.2): the CAV is learned against ``n_random`` different random sets; the
concept's scores are compared with a two-sided t-test (scipy) to the scores of random-vs-random CAVs
(random set i against random set i+1, cyclically), and the p-values of all (concept, class, layer)
tests are corrected for multiple comparisons (Benjamini–Hochberg false-discovery rate by default; also
Holm, Bonferroni or none). With 2 classes × 2 layers × 19 concepts = 76 tests and 10 random sets, a
family-wise correction (Holm) left nothing significant on the default run even for the shortcut
concept (raw p ≈ 0.002–0.01), so the default controls the false-discovery rate instead. A score is ``significant`` when its corrected p-value is below ``alpha``; a non-significant score
says nothing about the model and the dashboard greys it out.

Controls (:func:`tcav_repeated`): the concept and random images are drawn anew in several repeats, and
a concept counts as significant only when it is in every repeat (with 40 instead of 80 concept images a
single draw flipped the shortcut concept between significant and not). Random image sets tested like
concepts measure the procedure's false-positive rate; the run reports it.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from igcore.architectures import architecture_of, vit_layers
from igcore.baseline import to_pixels
from igcore.errors import InputError
from igcore.microscope.params import CORRECTIONS

CONTROL_PREFIX = "random-control-"  # concept name of a random control set (no concept at all)


def resolve_layer(module: nn.Module, layer: str) -> str:
    """Dotted module path (relative to ``module``) for a layer alias or path.

    Aliases: ``penultimate`` — the last block whose output still reaches the logits through a
    nonlinearity (ResNet: the second-to-last stage; ViT: the last encoder layer, before the final
    layernorm) — and ``middle`` (ResNet: the stage before that; ViT: the middle encoder layer). The
    layers after them (ResNet: last stage → average pool → linear head; ViT: CLS token → linear head)
    are linear in their input or end in the last ReLU, so the gradient there is the same for every
    input and a sign-count TCAV score could only be 0 or 1. Any other string must be a dotted module
    path, e.g. ``model.resnet.encoder.stages.1``.
    """
    arch = architecture_of(module)
    if layer in ("penultimate", "middle"):
        if arch == "resnet":
            n = len(module.model.resnet.encoder.stages)
            return f"model.resnet.encoder.stages.{max(0, n - (2 if layer == 'penultimate' else 3))}"
        name = "layers" if hasattr(module.model.vit, "layers") else "encoder.layer"
        n = len(vit_layers(module))
        return f"model.vit.{name}.{n - 1 if layer == 'penultimate' else max(0, n // 2 - 1)}"
    try:
        module.get_submodule(layer)
    except AttributeError:
        raise InputError(f"TCAV layer {layer!r} is neither an alias (penultimate, middle) nor a module of the model") from None
    return layer


def _cav_classifier(seed: int, ridge: float = 0.1) -> Any:
    """A deterministic captum ``Classifier``: a ridge (L2-regularised least-squares) linear classifier.

    Concept sets are small (tens of images) and activations wide (thousands of features), so the
    classifier is solved in closed form in its dual (an n × n system, n = images): ~100× faster than an
    iterative logistic regression, and a linear separator all the same (Kim et al. allow any linear
    classifier). ``ridge`` is relative to the mean squared activation norm.
    """
    from captum.concept._utils.classifier import Classifier

    class RidgeCAV(Classifier):
        def __init__(self) -> None:
            self.rng = np.random.default_rng(seed)

        def train_and_eval(self, dataloader: Any, test_split_ratio: float = 0.33, **kwargs: Any) -> dict[str, Any]:
            xs, ys = zip(*[(x, y) for x, y in dataloader], strict=True)
            x = torch.cat(xs).detach().cpu().double().numpy()
            y = torch.cat(ys).cpu().numpy()
            self.classes_ = np.unique(y)
            order = self.rng.permutation(len(x))
            n_test = int(test_split_ratio * len(x))
            test, train = order[:n_test], order[n_test:]
            mean = x[train].mean(0)
            xc = x[train] - mean
            t = np.where(y[train] == self.classes_[-1], 1.0, -1.0)
            gram = xc @ xc.T
            lam = ridge * max(float(np.trace(gram)) / len(train), 1e-12)
            alpha = np.linalg.solve(gram + lam * np.eye(len(train)), t - t.mean())
            self.w_ = xc.T @ alpha  # points towards classes_[-1]
            self.b_ = float(t.mean() - mean @ self.w_)
            pred = np.where(x[test] @ self.w_ + self.b_ > 0, self.classes_[-1], self.classes_[0])
            acc = float((pred == y[test]).mean()) if n_test else float("nan")
            return {"accs": torch.tensor(acc)}

        def weights(self) -> torch.Tensor:
            w = torch.as_tensor(self.w_, dtype=torch.float32)
            return torch.stack([-w, w])  # row i is the direction of classes()[i]

        def classes(self) -> list[int]:
            return [int(c) for c in self.classes_]

    return RidgeCAV()


def _adjust(p: np.ndarray, correction: str) -> np.ndarray:
    """Multiple-comparison adjusted p-values."""
    p = np.asarray(p, dtype=np.float64)
    m = len(p)
    if m == 0 or correction == "none":
        return p.copy()
    if correction == "bonferroni":
        return np.minimum(p * m, 1.0)
    order = np.argsort(p)
    if correction == "holm":
        adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    elif correction == "bh":
        ranked = p[order] * m / np.arange(1, m + 1)
        adj = np.minimum.accumulate(ranked[::-1])[::-1]
    else:
        raise InputError(f"unknown correction {correction!r}; choose one of {', '.join(CORRECTIONS)}")
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out


def tcav_scores(
    module: nn.Module,
    bank_images: np.ndarray,
    bank_concepts: np.ndarray,
    concept_ids: Sequence[str],
    inputs_by_class: Mapping[str, np.ndarray],
    layers: Sequence[str] = ("penultimate", "middle"),
    *,
    classes: Sequence[str] | None = None,
    n_random: int = 10,
    n_concept_images: int = 40,
    alpha: float = 0.05,
    correction: str = "bh",
    seed: int = 0,
    device: torch.device | str = "cpu",
    model_id: str = "model",
    n_controls: int = 0,
) -> list[dict[str, Any]]:
    """TCAV scores with significance for every concept × class × layer.

    Args:
        module: a :class:`~igcore.baseline.PixelClassifier` ([0, 1] images → logits).
        bank_images: uint8 (M, H, W, 3) concept-bank images.
        bank_concepts: (M, K) 0/1 annotations, columns in ``concept_ids`` order.
        concept_ids: the vocabulary's concept ids.
        inputs_by_class: {class name: uint8 images of that class} whose predictions are tested.
        layers: layer aliases (``penultimate``, ``middle``) or dotted module paths.
        classes: class names in logit order (default: the keys of ``inputs_by_class``).
        n_random: random sets (≥ 2); each concept gets one CAV per random set.
        n_concept_images: images per concept set and per random set.
        alpha: significance level after correction.
        correction: ``bh`` | ``holm`` | ``bonferroni`` | ``none`` over all tests of the call.
        seed: sampling of the sets and the CAV train/test splits.
        device: where to compute.
        model_id: name used for captum's on-disk activation store (a temporary directory).
        n_controls: random image sets tested exactly like concepts (records with ``control`` True,
            concept ``random-control-<j>``): they carry no concept, so every "significant" one is a false
            positive of the procedure. Their p-values are corrected among themselves.

    Returns:
        One record per (concept, class, layer): ``concept``, ``class``, ``layer`` (as given),
        ``layer_module``, ``score`` (mean sign-count TCAV score over random sets), ``score_std``,
        ``random_score`` (mean random-vs-random score), ``p_value`` (two-sided t-test), ``p_adjusted``,
        ``significant``, ``cav_acc`` (mean held-out accuracy of the concept's CAVs), ``n_random``,
        ``n_images`` (concept images used). Concepts with fewer than 4 annotated images are skipped.
    """
    from captum.concept import TCAV, Concept
    from scipy.stats import ttest_ind

    if n_random < 2:
        raise InputError(f"TCAV needs at least 2 random sets for its t-test, got {n_random}")
    if correction not in CORRECTIONS:
        raise InputError(f"unknown correction {correction!r}; choose one of {', '.join(CORRECTIONS)}")
    classes = list(classes) if classes is not None else list(inputs_by_class)
    rng = np.random.default_rng(seed)
    module.eval()
    paths = [resolve_layer(module, layer) for layer in layers]

    def batch(idx: np.ndarray) -> list[torch.Tensor]:
        return [to_pixels(bank_images[np.sort(idx)], device)]

    concepts: list[tuple[str, Any, int]] = []
    cid = 0
    for k, name in enumerate(concept_ids):
        pos = np.flatnonzero(np.asarray(bank_concepts)[:, k] > 0)
        if len(pos) < 4:
            continue
        pick = rng.choice(pos, size=min(n_concept_images, len(pos)), replace=False)
        concepts.append((name, Concept(cid, f"c{cid}", batch(pick)), len(pick)))
        cid += 1
    for j in range(n_controls):
        pick = rng.choice(len(bank_images), size=min(n_concept_images, len(bank_images)), replace=False)
        concepts.append((f"{CONTROL_PREFIX}{j}", Concept(cid, f"control{cid}", batch(pick)), len(pick)))
        cid += 1
    randoms = []
    for _ in range(n_random):
        pick = rng.choice(len(bank_images), size=min(n_concept_images, len(bank_images)), replace=False)
        randoms.append(Concept(cid, f"random{cid}", batch(pick)))
        cid += 1
    concept_sets = [[c, r] for _, c, _ in concepts for r in randoms]
    null_sets = [[randoms[i], randoms[(i + 1) % n_random]] for i in range(n_random)]

    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="igcore-tcav-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tcav = TCAV(module, layers=paths, model_id=model_id, classifier=_cav_classifier(seed), save_path=tmp + "/")
        # Train every CAV up front: one forward pass per concept set for all layers. (captum 0.9's
        # lazy path swaps AV.exists' layer/identifier arguments and would recompute activations for
        # every experimental set.) interpret() below then loads the saved CAVs.
        tcav.compute_cavs(concept_sets + null_sets, force_train=True)
        for class_name in classes:
            images = inputs_by_class.get(class_name)
            if images is None or len(images) == 0:
                continue
            target = classes.index(class_name)
            x = to_pixels(images, device)
            out = tcav.interpret(x, concept_sets + null_sets, target=target)
            for layer, path in zip(layers, paths, strict=True):
                null = np.array([float(out[_key(s)][path]["sign_count"][0]) for s in null_sets])
                for ci, (name, _concept, n_img) in enumerate(concepts):
                    sets = concept_sets[ci * n_random : (ci + 1) * n_random]
                    scores = np.array([float(out[_key(s)][path]["sign_count"][0]) for s in sets])
                    accs = [float(tcav.cavs[_key(s)][path].stats.get("accs", float("nan"))) for s in sets]
                    if np.allclose(scores, scores[0]) and np.allclose(null, null[0]):
                        p = 1.0 if np.isclose(scores[0], null[0]) else 0.0
                    else:
                        p = float(ttest_ind(scores, null, equal_var=False).pvalue)
                    records.append(
                        {
                            "concept": name,
                            "class": class_name,
                            "layer": layer,
                            "layer_module": path,
                            "score": float(scores.mean()),
                            "score_std": float(scores.std(ddof=1)),
                            "random_score": float(null.mean()),
                            "p_value": 1.0 if np.isnan(p) else p,
                            "cav_acc": float(np.nanmean(accs)),
                            "n_random": n_random,
                            "n_images": n_img,
                            "control": name.startswith(CONTROL_PREFIX),
                        }
                    )
    for family in (False, True):  # concepts and controls are corrected as separate families
        members = [r for r in records if r["control"] is family]
        adjusted = _adjust(np.array([r["p_value"] for r in members]), correction)
        for r, pa in zip(members, adjusted, strict=True):
            r["p_adjusted"] = float(pa)
            r["correction"] = correction
            r["significant"] = bool(pa < alpha)
    return records


def tcav_repeated(*args: Any, repeats: int = 3, seed: int = 0, **kwargs: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """:func:`tcav_scores` over ``repeats`` draws of the concept and random images (seeds ``seed + r``).

    A concept is called significant only when it is significant, after correction, in every repeat;
    one significant in some repeats but not all is marked ``unstable`` (the dashboard shows it as such).
    The random controls (``n_controls``) estimate how often the whole procedure calls a concept-free
    image set significant.

    Returns:
        ``(records, controls)``: one record per (concept, class, layer) with ``score`` (mean over
        repeats), ``score_min`` / ``score_max`` / ``score_spread`` (across repeats), ``p_values`` and
        ``p_adjusted_values`` (per repeat), ``p_adjusted`` (the largest), ``significant_repeats``,
        ``significant`` (in every repeat), ``unstable``, and the fields of :func:`tcav_scores` of the
        first repeat; ``controls`` = ``{"n_tests", "n_significant", "not_significant_rate", "n_unstable", "repeats"}`` for
        the random controls judged like concepts (significant in every repeat), plus ``single_repeat_*``
        counts of the repeats taken one by one.
    """
    if repeats < 1:
        raise InputError(f"TCAV needs at least one repeat, got {repeats}")
    runs = [tcav_scores(*args, seed=seed + r, **kwargs) for r in range(repeats)]
    key = ("concept", "class", "layer")
    merged: list[dict[str, Any]] = []
    for first, *others in zip(*runs, strict=True):
        group = [first, *others]
        assert all(tuple(g[k] for k in key) == tuple(first[k] for k in key) for g in group)
        scores = np.array([g["score"] for g in group])
        sig = [g["significant"] for g in group]
        merged.append({
            **first,
            "score": float(scores.mean()),
            "score_min": float(scores.min()),
            "score_max": float(scores.max()),
            "score_spread": float(scores.max() - scores.min()),
            "random_score": float(np.mean([g["random_score"] for g in group])),
            "p_values": [g["p_value"] for g in group],
            "p_adjusted_values": [g["p_adjusted"] for g in group],
            "p_value": float(max(g["p_value"] for g in group)),
            "p_adjusted": float(max(g["p_adjusted"] for g in group)),
            "cav_acc": float(np.nanmean([g["cav_acc"] for g in group])),
            "significant_repeats": int(sum(sig)),
            "significant": all(sig),
            "unstable": any(sig) and not all(sig),
            "repeats": repeats,
        })
    # The controls are judged by the rule concepts are judged by (significant in every repeat): their rate
    # of "not significant" is the procedure's. One repeat alone is anticonservative — the concept side of
    # its t-test reuses one image set against every random set, the null side pairs different random sets
    # — so the rate of single repeats is kept beside it as a diagnostic.
    control_calls = [r for r in merged if r["control"]]
    single = [r for run in runs for r in run if r["control"]]
    n_sig = sum(r["significant"] for r in control_calls)
    n_single = sum(r["significant"] for r in single)
    controls = {
        "n_tests": len(control_calls),
        "n_significant": int(n_sig),
        "not_significant_rate": float(1 - n_sig / len(control_calls)) if control_calls else None,
        "n_unstable": int(sum(r["unstable"] for r in control_calls)),
        "single_repeat_tests": len(single),
        "single_repeat_significant": int(n_single),
        "single_repeat_not_significant_rate": float(1 - n_single / len(single)) if single else None,
        "repeats": repeats,
    }
    return [r for r in merged if not r["control"]], controls


def _key(concepts: Sequence[Any]) -> str:
    return "-".join(str(c.id) for c in concepts)
