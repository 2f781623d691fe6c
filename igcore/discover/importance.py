"""Causal importance of a discovered component: remove it from a model's layer and watch the answer.

ACE (Ghorbani et al., 2019) and CRAFT (Fel et al., 2023) estimate a concept's importance by removing or
perturbing it inside the network and re-running the rest; here the perturbation subtracts what the
component adds to the layer.

**A component in each model.** A component is found in one model (the *source*); what is shared with
every other model is *where* it is: its coefficient maps ``U`` on the same images
(:mod:`igcore.discover.factorize`). For every model M under the microscope — the source included, so
that every model is treated alike — what the components add to M's layer are its **patterns**
(:func:`fit_patterns`): the least-squares fit ``A ≈ U P + c`` of M's activation at every position on the
source's coefficients there, all K components jointly (scikit-learn ``LinearRegression``; maps resampled
to M's grid when the grids differ), so ``p_k``, row k of ``P``, is the change of M's activation per unit
of component k with the others held fixed. The pipeline fits them on the D′_train images the source was
factorised on (:func:`igcore.stages.discover.stage_discover_effects`): in the worlds the project ships
the background does not travel with the class there, so a pattern does not absorb the animal. How much of
M's activations the components explain is :meth:`Patterns.fit_quality` on D′_eval (images only, no
labels): ``r2``, the share of the activation variance all of them explain, and per component its
``share``, the variance of its own term over the total. A model that carries a component's information
is explained by it; one that does not, is not, and then a small effect means "M cannot see it" rather
than "M ignores what it sees" — the record keeps both numbers.

**Ablation.** A forward hook on M's layer (:func:`igcore.discover.layers.variants`) subtracts the
component's centred term at every position, ``a' = a - (u_k - ū_k) p_k`` (:func:`remove_component`),
with ``ū_k`` its mean coefficient over the fitting positions: afterwards the component's term is the same
at every position of every image, so it carries no information, while the other components' terms — and
the average activation over the fitting positions — are untouched (a mean ablation; subtracting
``u_k p_k`` instead would also shift the mean, which every model feels whether it uses the component or
not). The unchanged layer and the K ablations are variants of one forward pass. The **effect** is the
change in the log-odds of the model's own answer on D′_eval, ``log-odds(ŷ | ablated) - log-odds(ŷ | x)``,
with a percentile-bootstrap 95% interval overall and per group, and the share of answers that change
(``flip_rate``): the statistic of the counterfactual swaps
(:func:`igcore.microscope.counterfactuals.effects`), so the two read alike. The components share one
bootstrap of the images (:func:`~igcore.microscope.counterfactuals.mean_cis`).

**Named alike, removed together.** A model may spread one concept over several components, and a person who
gives several components one name says they are one concept (:func:`igcore.discover.names.alike`). Each such
group is one more variant of the same forward pass, ``a' = a - Σ_k (u_k - ū_k) p_k`` over its members
(:func:`remove_components`), with the same statistic: the model's reliance on the concept, not on one part of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from igcore.baseline import LOGITS_BATCH, to_pixels
from igcore.discover.layers import Site, variants
from igcore.microscope.counterfactuals import log_odds, mean_cis


def resample_maps(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Coefficient maps (N, h, w, K) resampled to (N, size[0], size[1], K) (area / bilinear, torch)."""
    if tuple(maps.shape[1:3]) == tuple(size):
        return maps
    t = torch.as_tensor(np.ascontiguousarray(maps)).permute(0, 3, 1, 2).float()
    if size[0] <= maps.shape[1]:
        out = torch.nn.functional.interpolate(t, size=tuple(size), mode="area")
    else:
        out = torch.nn.functional.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False)
    return out.clamp(min=0).permute(0, 2, 3, 1).numpy()


def _positions(grids: np.ndarray, maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    maps = resample_maps(maps, grids.shape[1:3])
    return grids.reshape(-1, grids.shape[-1]).astype(np.float64), maps.reshape(-1, maps.shape[-1]).astype(np.float64)


@dataclass(frozen=True)
class Patterns:
    """What each component adds to one model's activations (see the module docstring).

    Attributes:
        patterns: (K, C) ``p_k``: the change of the model's activation per unit of the component's coefficient.
        intercept: (C,) the activation where no component is present.
        map_mean: (K,) ``ū_k``, each component's mean coefficient over the fitting positions.
    """

    patterns: np.ndarray
    intercept: np.ndarray
    map_mean: np.ndarray

    def fit_quality(self, grids: np.ndarray, maps: np.ndarray) -> dict[str, Any]:
        """On other images: ``r2``, the share of the model's activation variance the components explain, and
        ``share`` per component, the variance of its own term ``(u_k - ū_k) p_k`` over the total."""
        a, u = _positions(grids, maps)
        centred = u - self.map_mean
        rebuilt = centred @ self.patterns + (self.intercept + self.map_mean @ self.patterns)
        total = max(float(((a - a.mean(0)) ** 2).sum()), 1e-12)
        share = [float(((centred[:, [k]] * self.patterns[k]) ** 2).sum()) / total for k in range(len(self.patterns))]
        return {"r2": 1.0 - float(((a - rebuilt) ** 2).sum()) / total, "share": share}


def fit_patterns(grids: np.ndarray, source_maps: np.ndarray) -> Patterns:
    """Least squares ``A ≈ U P + c`` of a model's activations ``grids`` (N, h, w, C) on the source's coefficient
    maps (N, h', w', K) of the same images (scikit-learn ``LinearRegression``, all components jointly)."""
    from sklearn.linear_model import LinearRegression

    a, u = _positions(grids, source_maps)
    reg = LinearRegression().fit(u, a)
    return Patterns(np.ascontiguousarray(reg.coef_.T, dtype=np.float32), reg.intercept_.astype(np.float32),
                    u.mean(0).astype(np.float32))


def remove_component(grid: torch.Tensor, centred_map: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
    """``grid - (u_k - ū_k) p_k``: grid (B, h, w, C), centred_map (B, h, w), pattern (C,)."""
    return grid - centred_map[..., None] * pattern


def remove_components(grid: torch.Tensor, centred_maps: torch.Tensor, patterns: torch.Tensor) -> torch.Tensor:
    """``grid - Σ_k (u_k - ū_k) p_k`` over several components at once: centred_maps (B, h, w, M), patterns (M, C)."""
    return grid - centred_maps @ patterns


@dataclass(frozen=True)
class Ablations:
    """What :func:`ablation_effects` measured.

    Attributes:
        components: per component, its effect (``overall``, ``by_group``, ``flip_rate``).
        together: per group of components removed at once (``together`` of :func:`ablation_effects`), the same.
        grids: (N, h, w, C) float32, the site's unchanged grid of every image, as
            :func:`igcore.discover.layers.capture` reads it (the same forward pass: a caller needs no second one).
    """

    components: list[dict[str, Any]]
    together: list[dict[str, Any]]
    grids: np.ndarray


def ablation_effects(
    model: Any,
    site: Site,
    patterns: Patterns,
    maps: np.ndarray,
    images: np.ndarray,
    groups: np.ndarray,
    group_names: Sequence[str],
    *,
    batch_size: int = LOGITS_BATCH,
    seed: int = 0,
    n_resamples: int = 2000,
    components: Sequence[int] | None = None,
    together: Sequence[Sequence[int]] = (),
) -> Ablations:
    """The effect of removing each component from ``model``'s site (see the module docstring), and of removing each
    group of components in ``together`` at once (components a person gave one name: :func:`igcore.discover.names.alike`).

    Args:
        model: an :class:`~igcore.baseline.ImageClassifier` (``module_``, ``device_``).
        site: where the model's activations are changed.
        patterns: the model's :class:`Patterns`.
        maps: the source's coefficient maps of ``images`` on this model's grid (N, h, w, K)
            (:func:`resample_maps`).
        images: uint8 (N, H, W, 3), the D′_eval images.
        groups, group_names: each image's group, for the per-group effects.
        components: the components removed one at a time (default: all K); ``[]`` measures only ``together``
            (names given after the run: :func:`igcore.discover.remeasure.measure_together`).
        together: groups of component indices, each removed at once (variants after the single ones).

    Returns:
        :class:`Ablations`: per component removed alone (in the order of ``components``) and per group, ``overall``
        and ``by_group`` ({mean, ci_low, ci_high, n} of the change in the log-odds of the model's answer) and
        ``flip_rate`` (share of answers that change).
    """
    module, device = model.module_, model.device_
    module.eval()
    basis = torch.as_tensor(patterns.patterns).to(device)
    mean = torch.as_tensor(patterns.map_mean)
    singles = list(range(len(basis))) if components is None else [int(k) for k in components]
    k_n = len(singles)
    members = [torch.as_tensor(list(g), dtype=torch.long) for g in together]
    v_n = k_n + len(members)  # the changed variants: each component, then each group
    outs, grids = [], []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = to_pixels(images[start : start + batch_size], device)
            centred = (torch.as_tensor(maps[start : start + batch_size]) - mean).to(device)

            def ablate(grid: torch.Tensor, u: torch.Tensor = centred) -> torch.Tensor:
                # variant 0: the activations as they are; then each single component removed; then each group
                grids.append(grid.float().cpu())
                return torch.stack([grid, *(remove_component(grid, u[..., k], basis[k]) for k in singles),
                                    *(remove_components(grid, u[..., m], basis[m]) for m in members)])

            with variants(module, site, ablate):
                outs.append(module(x).float().cpu().reshape(v_n + 1, len(x), -1))
    logits = torch.cat(outs, dim=1).numpy()
    answer = logits[0].argmax(1)
    rows = np.arange(len(answer))
    before = log_odds(logits[0])[rows, answer]
    change = np.array([log_odds(logits[v + 1])[rows, answer] - before for v in range(v_n)]).reshape(v_n, len(answer))
    # every variant's statistic from one bootstrap of the images (the same draws mean_ci takes for each)
    overall = mean_cis(change, seed, n_resamples)
    by_group = {group_names[g]: mean_cis(change[:, groups == g], seed, n_resamples) for g in np.unique(groups)}
    found = [{
        "overall": overall[v],
        "by_group": {name: cis[v] for name, cis in by_group.items()},
        "flip_rate": float((logits[v + 1].argmax(1) != answer).mean()),
    } for v in range(v_n)]
    return Ablations(found[:k_n], found[k_n:], torch.cat(grids).numpy())
