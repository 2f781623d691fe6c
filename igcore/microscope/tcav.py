"""TCAV: Testing with Concept Activation Vectors (Kim et al., 2018, "Interpretability Beyond Feature
Attribution: Quantitative Testing with Concept Activation Vectors (TCAV)", ICML).

For a concept C, a layer l and a class k: a linear classifier separates the layer-l activations of
images showing C (concept-bank images annotated with C) from those of a random set of concept-bank
images; its normal is the concept activation vector (CAV). The TCAV score is the fraction of class-k
inputs whose class-k logit increases along the CAV (positive directional derivative), for every concept
of the concept bank: the annotated concepts z* is written in and, with ``discover.tcav``, the discovered
ones (their presence on the bank's images as annotations; :mod:`igcore.stages.microscope`).

Computed once per layer and model (:func:`layer_kernels`): every concept-bank image that any set of any
repeat uses goes through the model once (captum's ``LayerActivation``, all layers in one pass), and each
tested input's layer gradient is computed once (captum's ``LayerGradientXActivation`` without the
multiplication, as inside captum's ``TCAV``). The CAVs are ridge classifiers fitted in memory in their dual
form (:func:`fit_cav`), so concepts, random sets, controls and repeats all reuse one Gram matrix of the
activations; the statistics are those of captum's ``TCAV`` with the same classifier, which
tests/test_tcav.py checks against main's captum path.

Significance (Kim et al., §3.2): the CAV is learned against ``n_random`` different random sets; the
concept's scores are compared with a two-sided t-test (scipy) to the scores of random-vs-random CAVs
(random set i against random set i+1, cyclically), and the p-values of all (concept, class, layer)
tests are corrected for multiple comparisons (Benjamini–Hochberg false-discovery rate by default; also
Holm, Bonferroni or none). When this default was chosen (2 classes × 2 layers × 19 concepts = 76 tests,
then with 10 random sets), a family-wise correction (Holm) left nothing significant on the default run
even for the shortcut concept (raw p ≈ 0.002–0.01), so the default controls the false-discovery rate
instead. A score is ``significant`` when its corrected p-value is below ``alpha``; a non-significant
score says nothing about the model and the dashboard greys it out.

Controls (:func:`tcav_repeated`): the concept and random images are drawn anew in several repeats, and
a concept counts as significant only when it is in every repeat (with 40 instead of 80 concept images a
single draw flipped the shortcut concept between significant and not). Random image sets tested like
concepts measure the procedure's false-positive rate; the run reports it.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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



# ------------------------------------------------------------------------------------------ image sets


@dataclass(frozen=True)
class ImageSets:
    """One draw of TCAV's image sets, as sorted concept-bank rows.

    Attributes:
        names: concept id of each entry of ``concepts`` (random controls are ``random-control-<j>``).
        concepts: rows of every concept with enough annotated images, then of every random control.
        randoms: rows of every random set (the negatives of the CAVs and the null distribution).
    """

    names: list[str]
    concepts: list[np.ndarray]
    randoms: list[np.ndarray]

    def rows(self) -> np.ndarray:
        """Every bank row some set uses, sorted and unique."""
        return np.unique(np.concatenate([*self.concepts, *self.randoms])) if self.randoms else np.zeros(0, np.int64)


def draw_sets(
    bank_concepts: np.ndarray, concept_ids: Sequence[str], *, n_random: int, n_concept_images: int, n_controls: int, seed: int
) -> ImageSets:
    """Concept, control and random sets of one repeat (concepts with fewer than 4 annotated images are skipped)."""
    rng = np.random.default_rng(seed)
    annotations = np.asarray(bank_concepts)
    n_bank = len(annotations)
    names, concepts = [], []
    for k, name in enumerate(concept_ids):
        pos = np.flatnonzero(annotations[:, k] > 0)
        if len(pos) >= 4:
            names.append(name)
            concepts.append(np.sort(rng.choice(pos, size=min(n_concept_images, len(pos)), replace=False)))
    for j in range(n_controls):
        names.append(f"{CONTROL_PREFIX}{j}")
        concepts.append(np.sort(rng.choice(n_bank, size=min(n_concept_images, n_bank), replace=False)))
    randoms = [np.sort(rng.choice(n_bank, size=min(n_concept_images, n_bank), replace=False)) for _ in range(n_random)]
    return ImageSets(names, concepts, randoms)


# ------------------------------------------------------------------------------------- layer kernels


@dataclass
class LayerKernel:
    """What every CAV of one layer needs, computed once for all of them.

    A ridge CAV is a linear combination of its training activations (the dual form), so neither fitting
    it nor scoring along it needs the activations themselves, only their inner products: the Gram matrix
    of the activations of the bank rows in use, and the inner products of each tested input's layer
    gradient with those activations.

    Attributes:
        rows: the concept-bank rows in use (sorted); position ``i`` of ``gram`` is ``rows[i]``.
        gram: (M, M) float64 ``<a(rows[i]), a(rows[j])>``.
        grad_dot: {class: (N, M) float64 ``<∂ logit_class / ∂ a(x_n), a(rows[j])>``} for the class's inputs.
    """

    rows: np.ndarray
    gram: np.ndarray
    grad_dot: dict[str, np.ndarray]

    def positions(self, rows: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.rows, rows)


#: Bytes of bank activations held in memory; beyond this they are written to a temporary memory-mapped file.
MAX_ACTIVATION_BYTES = 2 * 2**30


def _flat(out: torch.Tensor | list[torch.Tensor]) -> list[np.ndarray]:
    """captum's per-layer output (a tensor for one layer, a list for several) as float32 (N, features) arrays."""
    return [t.detach().flatten(1).float().cpu().numpy() for t in (out if isinstance(out, list) else [out])]


def layer_kernels(
    module: nn.Module,
    paths: Sequence[str],
    bank_images: np.ndarray,
    rows: np.ndarray,
    inputs_by_class: Mapping[str, np.ndarray],
    classes: Sequence[str],
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 64,
    feature_chunk: int = 4096,
) -> dict[str, LayerKernel]:
    """:class:`LayerKernel` of every layer in ``paths``: one forward pass per batch of bank images for all
    layers (captum's ``LayerActivation``), one backward pass per batch of tested inputs for all layers
    (captum's ``LayerGradientXActivation`` without the multiplication by the activation: the plain layer
    gradient, as in captum's TCAV). Activations are held as float32, in memory up to
    :data:`MAX_ACTIVATION_BYTES` and in a temporary memory-mapped file beyond; the inner products are
    accumulated in float64 over chunks of ``feature_chunk`` features."""
    from captum.attr import LayerActivation, LayerGradientXActivation

    paths = list(dict.fromkeys(paths))
    layers = [module.get_submodule(p) for p in paths]
    rows = np.asarray(rows, dtype=np.int64)
    activation = LayerActivation(module, layers)
    gradient = LayerGradientXActivation(module, layers, multiply_by_inputs=False)
    grads: dict[str, list[np.ndarray]] = {}
    for class_name in classes:
        images = inputs_by_class.get(class_name)
        if images is None or len(images) == 0:
            continue
        target = list(classes).index(class_name)
        parts = [_flat(gradient.attribute(to_pixels(images[i : i + batch_size], device), target=target))
                 for i in range(0, len(images), batch_size)]
        grads[class_name] = [np.concatenate(layer) for layer in zip(*parts, strict=True)]
    with tempfile.TemporaryDirectory(prefix="igcore-tcav-") as tmp:
        bank: list[np.ndarray] = []
        for start in range(0, len(rows), batch_size):
            out = _flat(activation.attribute(to_pixels(bank_images[rows[start : start + batch_size]], device)))
            if not bank:
                on_disk = len(rows) * sum(a.shape[1] for a in out) * 4 > MAX_ACTIVATION_BYTES
                bank = [np.lib.format.open_memmap(f"{tmp}/{i}.npy", "w+", np.float32, (len(rows), a.shape[1])) if on_disk
                        else np.empty((len(rows), a.shape[1]), np.float32) for i, a in enumerate(out)]
            for store, a in zip(bank, out, strict=True):
                store[start : start + len(a)] = a
        kernels = {}
        for i, path in enumerate(paths):
            gram = np.zeros((len(rows), len(rows)))
            dots = {c: np.zeros((len(g[i]), len(rows))) for c, g in grads.items()}
            for f in range(0, bank[i].shape[1] if bank else 0, feature_chunk):
                chunk = np.ascontiguousarray(bank[i][:, f : f + feature_chunk], dtype=np.float64)
                gram += chunk @ chunk.T
                for c, g in grads.items():
                    dots[c] += g[i][:, f : f + feature_chunk].astype(np.float64) @ chunk.T
            kernels[path] = LayerKernel(rows, gram, dots)
        del bank  # the memory map is closed before its folder goes
    return kernels


# ----------------------------------------------------------------------------------------------- CAVs


def fit_cavs(
    gram: np.ndarray, positive: np.ndarray, negative: np.ndarray, order: np.ndarray, ridge: float = 0.1, test_ratio: float = 0.33
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ridge (L2-regularised least-squares) CAVs, each separating a set of ``positive`` from a set of ``negative``
    activations, solved in closed form in their dual; a stack of P CAVs whose sets have the same sizes at once.

    Concept sets are small (tens of images) and activations wide (thousands of features), so the dual (an
    n × n system, n = training images) is cheap, and a linear separator all the same (Kim et al. allow any
    linear classifier). The first ``test_ratio`` of each row of ``order`` (a permutation of the positive then the
    negative images) is held out for the accuracy. ``ridge`` is relative to the mean squared norm of the
    centred activations. Every CAV of the stack is solved as it would be alone (numpy's stacked ``solve`` and
    ``matmul`` run one LAPACK solve and one matrix-vector product per CAV).

    Args:
        gram: the layer's Gram matrix (:class:`LayerKernel`).
        positive: (P, p) positions in ``gram`` of the images each CAV points towards.
        negative: (P, q) positions of the images it points away from.
        order: (P, p + q) permutations (the train/test splits).
        ridge: regularisation.
        test_ratio: share held out.

    Returns:
        ``(train, beta, accuracy)``: CAV i is ``v = Σ_j beta[i, j] a(train[i, j])`` (its direction: a
        gradient's inner products with the training activations times ``beta[i]``), and its accuracy on the
        held-out images (nan when none is held out).
    """
    pos = np.concatenate([positive, negative], axis=1)
    label = np.r_[np.ones(positive.shape[1]), -np.ones(negative.shape[1])]
    n_test = int(test_ratio * pos.shape[1])
    test, train = order[:, :n_test], order[:, n_test:]
    rows = np.take_along_axis(pos, train, 1)
    g = gram[rows[:, :, None], rows[:, None, :]]
    means = g.mean(2)
    centred = g - means[:, :, None] - means[:, None, :] + means.mean(1)[:, None, None]  # Gram matrices of the centred activations
    t = label[train]
    lam = ridge * np.maximum(np.trace(centred, axis1=1, axis2=2) / train.shape[1], 1e-12)
    alpha = np.linalg.solve(centred + lam[:, None, None] * np.eye(train.shape[1]), (t - t.mean(1, keepdims=True))[..., None])[..., 0]
    beta = alpha - alpha.mean(1, keepdims=True)  # v = Σ alpha_j (a_j - mean a) = Σ beta_j a_j
    bias = t.mean(1) - (g @ beta[..., None])[..., 0].mean(1)
    if not n_test:
        return rows, beta, np.full(len(pos), np.nan)
    held = np.take_along_axis(pos, test, 1)
    decision = (gram[held[:, :, None], rows[:, None, :]] @ beta[..., None])[..., 0] + bias[:, None]
    return rows, beta, ((decision > 0) == (label[test] > 0)).mean(1)


def fit_cav(
    gram: np.ndarray, positive: np.ndarray, negative: np.ndarray, order: np.ndarray, ridge: float = 0.1, test_ratio: float = 0.33
) -> tuple[np.ndarray, np.ndarray, float]:
    """One CAV of :func:`fit_cavs`: ``positive`` (p,), ``negative`` (q,) and ``order`` (p + q,) positions; returns
    ``(train, beta, accuracy)`` of that CAV."""
    train, beta, acc = fit_cavs(gram, np.asarray(positive)[None], np.asarray(negative)[None], np.asarray(order)[None], ridge, test_ratio)
    return train[0], beta[0], float(acc[0])


def _records_of_draw(
    sets: ImageSets, kernels: Mapping[str, LayerKernel], layers: Sequence[str], paths: Sequence[str], classes: Sequence[str],
    seed: int, ridge: float = 0.1,
) -> list[dict[str, Any]]:
    """Uncorrected TCAV records of one draw: a CAV per (concept, random set) and per pair of consecutive random
    sets (the null), per layer; scores are sign counts of the class's inputs along each CAV."""
    from scipy.stats import ttest_ind

    n_random = len(sets.randoms)
    pairs = [(c, r) for c in sets.concepts for r in sets.randoms]
    pairs += [(sets.randoms[i], sets.randoms[(i + 1) % n_random]) for i in range(n_random)]
    rng = np.random.default_rng(seed)  # one train/test permutation per (pair, layer), pair-major
    orders = [[rng.permutation(len(a) + len(b)) for _ in paths] for a, b in pairs]
    scores: dict[tuple[str, str], np.ndarray] = {}  # (class, path) -> score per pair
    accs: dict[str, np.ndarray] = {}  # path -> accuracy per pair
    shapes: dict[tuple[int, int], list[int]] = {}  # pairs whose sets have the same sizes are fitted as one stack
    for j, (a, b) in enumerate(pairs):
        shapes.setdefault((len(a), len(b)), []).append(j)
    for li, path in enumerate(paths):  # a path named twice is fitted twice, the second fit kept (as captum did)
        kernel = kernels[path]
        weights = np.zeros((len(kernel.rows), len(pairs)))  # column j: CAV j as coefficients of the bank activations
        acc = np.empty(len(pairs))
        for members in shapes.values():
            train, beta, acc[members] = fit_cavs(
                kernel.gram, np.stack([kernel.positions(pairs[j][0]) for j in members]),
                np.stack([kernel.positions(pairs[j][1]) for j in members]), np.stack([orders[j][li] for j in members]), ridge,
            )
            for j, t, b in zip(members, train, beta, strict=True):
                np.add.at(weights[:, j], t, b)
        accs[path] = acc
        for class_name, dots in kernel.grad_dot.items():
            scores[class_name, path] = ((dots @ weights) > 0).mean(0)
    records: list[dict[str, Any]] = []
    n_sets = len(sets.concepts) * n_random
    for class_name in classes:
        for layer, path in zip(layers, paths, strict=True):
            if (class_name, path) not in scores:
                continue
            all_scores = scores[class_name, path]
            null = all_scores[n_sets:]
            for ci, (name, rows) in enumerate(zip(sets.names, sets.concepts, strict=True)):
                mine = all_scores[ci * n_random : (ci + 1) * n_random]
                if np.allclose(mine, mine[0]) and np.allclose(null, null[0]):
                    p = 1.0 if np.isclose(mine[0], null[0]) else 0.0
                else:
                    with warnings.catch_warnings():  # near-identical scores: scipy warns, the p-value stands
                        warnings.simplefilter("ignore", RuntimeWarning)
                        p = float(ttest_ind(mine, null, equal_var=False).pvalue)
                records.append({
                    "concept": name,
                    "class": class_name,
                    "layer": layer,
                    "layer_module": path,
                    "score": float(mine.mean()),
                    "score_std": float(mine.std(ddof=1)),
                    "random_score": float(null.mean()),
                    "p_value": 1.0 if np.isnan(p) else p,
                    "cav_acc": float(np.nanmean(accs[path][ci * n_random : (ci + 1) * n_random])),
                    "n_random": n_random,
                    "n_images": len(rows),
                    "control": name.startswith(CONTROL_PREFIX),
                })
    return records


def _correct(records: list[dict[str, Any]], correction: str, alpha: float) -> list[dict[str, Any]]:
    """Adjusted p-values and the significance call; concepts and controls are corrected as separate families."""
    for family in (False, True):
        members = [r for r in records if r["control"] is family]
        adjusted = _adjust(np.array([r["p_value"] for r in members]), correction)
        for r, pa in zip(members, adjusted, strict=True):
            r["p_adjusted"] = float(pa)
            r["correction"] = correction
            r["significant"] = bool(pa < alpha)
    return records


# ----------------------------------------------------------------------------------------- public API


def tcav_draws(
    module: nn.Module,
    bank_images: np.ndarray,
    bank_concepts: np.ndarray,
    concept_ids: Sequence[str],
    inputs_by_class: Mapping[str, np.ndarray],
    layers: Sequence[str] = ("penultimate", "middle"),
    *,
    seeds: Sequence[int] = (0,),
    classes: Sequence[str] | None = None,
    n_random: int = 10,
    n_concept_images: int = 40,
    alpha: float = 0.05,
    correction: str = "bh",
    device: torch.device | str = "cpu",
    n_controls: int = 0,
    batch_size: int = 64,
) -> list[list[dict[str, Any]]]:
    """TCAV scores with significance for every concept × class × layer, for one draw of the image sets per seed.

    Every draw is scored on the same layer kernels: each bank image used by any draw goes through the
    model once, and each tested input's layer gradients are computed once.

    Args:
        module: a :class:`~igcore.baseline.PixelClassifier` ([0, 1] images → logits).
        bank_images: uint8 (M, H, W, 3) concept-bank images.
        bank_concepts: (M, K) 0/1 annotations, columns in ``concept_ids`` order.
        concept_ids: the vocabulary's concept ids.
        inputs_by_class: {class name: uint8 images of that class} whose predictions are tested.
        layers: layer aliases (``penultimate``, ``middle``) or dotted module paths.
        seeds: one draw of the concept and random sets (and of the CAV train/test splits) per seed.
        classes: class names in logit order (default: the keys of ``inputs_by_class``).
        n_random: random sets (≥ 2); each concept gets one CAV per random set.
        n_concept_images: images per concept set and per random set.
        alpha: significance level after correction.
        correction: ``bh`` | ``holm`` | ``bonferroni`` | ``none`` over all tests of a draw.
        device: where to compute.
        n_controls: random image sets tested exactly like concepts (records with ``control`` True,
            concept ``random-control-<j>``): they carry no concept, so every "significant" one is a false
            positive of the procedure. Their p-values are corrected among themselves.
        batch_size: concept-bank images per forward pass.

    Returns:
        Per seed, one record per (concept, class, layer): ``concept``, ``class``, ``layer`` (as given),
        ``layer_module``, ``score`` (mean sign-count TCAV score over random sets), ``score_std``,
        ``random_score`` (mean random-vs-random score), ``p_value`` (two-sided t-test), ``p_adjusted``,
        ``significant``, ``cav_acc`` (mean held-out accuracy of the concept's CAVs), ``n_random``,
        ``n_images`` (concept images used). Concepts with fewer than 4 annotated images are skipped.
    """
    if n_random < 2:
        raise InputError(f"TCAV needs at least 2 random sets for its t-test, got {n_random}")
    if correction not in CORRECTIONS:
        raise InputError(f"unknown correction {correction!r}; choose one of {', '.join(CORRECTIONS)}")
    if not seeds:
        raise InputError("TCAV needs at least one repeat, got none")
    classes = list(classes) if classes is not None else list(inputs_by_class)
    module.eval()
    paths = [resolve_layer(module, layer) for layer in layers]
    draws = [draw_sets(bank_concepts, concept_ids, n_random=n_random, n_concept_images=n_concept_images,
                       n_controls=n_controls, seed=s) for s in seeds]
    rows = np.unique(np.concatenate([d.rows() for d in draws]))
    kernels = layer_kernels(module, paths, bank_images, rows, inputs_by_class, classes, device=device, batch_size=batch_size)
    return [_correct(_records_of_draw(d, kernels, layers, paths, classes, s), correction, alpha)
            for d, s in zip(draws, seeds, strict=True)]


def tcav_scores(*args: Any, seed: int = 0, **kwargs: Any) -> list[dict[str, Any]]:
    """The records of :func:`tcav_draws` for one draw of the image sets (``seed``)."""
    return tcav_draws(*args, seeds=[seed], **kwargs)[0]


def tcav_repeated(*args: Any, repeats: int = 3, seed: int = 0, **kwargs: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """:func:`tcav_draws` over ``repeats`` draws of the concept and random images (seeds ``seed + r``), merged by
    :func:`merge_repeats`: a concept is called significant only when it is significant, after correction, in
    every repeat."""
    if repeats < 1:
        raise InputError(f"TCAV needs at least one repeat, got {repeats}")
    return merge_repeats(tcav_draws(*args, seeds=[seed + r for r in range(repeats)], **kwargs))


def merge_repeats(runs: Sequence[Sequence[Mapping[str, Any]]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One record per (concept, class, layer) from the corrected records of every repeat.

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
    repeats = len(runs)
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
