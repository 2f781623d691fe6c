"""Counterfactual evidence: does a model's answer follow the background or the object?

Three interventions on a D′ image x, each changing one thing:

- **background swap**: the same object on another background. A world that draws its images re-renders
  the object on every other background (:meth:`World.render_on_background`: exact). For photographs with
  object masks, the object is pasted onto an image of another place whose own object has been removed by
  OpenCV's inpainting (Telea, 2004, "An Image Inpainting Technique Based on the Fast Marching Method").
- **object swap**: an object of the other class pasted onto the same background (x's object inpainted
  away first).
- **double swap**: both at once (an object of the other class on another place's background), used as the
  integrated-gradients baseline below.

**Effect**: for every model, the mean change in the log-odds of its own answer ŷ on x,
``log p(ŷ|x') / (1 - p(ŷ|x')) - log p(ŷ|x) / (1 - p(ŷ|x))``, over D′ images, with a bootstrap 95%
confidence interval (scipy.stats.bootstrap, percentile), overall and per group. A model that reads the
background loses log-odds under a background swap; one that reads the object, under an object swap. This
replaces a flip rate over all images, which understates a model that uses both (it flips only where the
background outweighs the object).

**Attribution of the swap**: integrated gradients (Sundararajan et al., 2017) of the log-odds of ŷ from the
double swap x″ (the baseline) to x. By completeness the attributions sum to the change in log-odds, so
their sum over background pixels (outside both objects) against the sum over object pixels says where the
evidence that separates x from x″ sits. A single swap would make this trivial (only the swapped pixels
differ, so they get all the attribution); the double swap puts background and object in competition.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from igcore.baseline import to_pixels
from igcore.microscope.integrated_gradients import PATH_BATCH
from igcore.worlds.base import Split, World

KINDS = ("background", "object")


# ---------------------------------------------------------------------------------------------- images


def remove_objects(images: np.ndarray, masks: np.ndarray, radius: int = 3) -> np.ndarray:
    """The images with their objects inpainted away (OpenCV Telea); the mask is dilated by a few pixels
    so the object's anti-aliased rim goes too."""
    import cv2

    kernel = np.ones((3, 3), np.uint8)
    out = np.empty_like(images)
    for i, (img, mask) in enumerate(zip(images, masks, strict=True)):
        grown = cv2.dilate(mask.astype(np.uint8) * 255, kernel, iterations=max(1, img.shape[0] // 48))
        out[i] = cv2.inpaint(np.ascontiguousarray(img), grown, radius, cv2.INPAINT_TELEA)
    return out


def paste(objects: np.ndarray, object_masks: np.ndarray, backgrounds: np.ndarray) -> np.ndarray:
    """Each object (its mask's pixels) over the matching background, at the object's own position."""
    return np.where(object_masks[..., None], objects, backgrounds)


@dataclass
class Counterfactuals:
    """Counterfactual images of D′ rows: ``images[j]`` changes row ``index[j]``; ``source[j]`` supplied the
    new object or background (-1 when a renderer drew it); a double swap's background came from
    ``background_source[j]``."""

    kind: str
    index: np.ndarray
    images: np.ndarray
    source: np.ndarray
    how: str
    background_source: np.ndarray | None = None


def _donors(split: Split, rows: np.ndarray, differ: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each row, a random row of ``split`` whose ``differ`` value is not the row's own."""
    out = np.empty(len(rows), dtype=np.int64)
    for value in np.unique(differ[rows]):
        mine = rows[differ[rows] == value]
        pool = np.flatnonzero(differ != value)
        out[np.isin(rows, mine)] = rng.choice(pool, size=len(mine), replace=True) if len(pool) else -1
    return out


def rerendered(world: World, split: Split, rows: np.ndarray) -> Counterfactuals:
    """Background swaps by a world that draws its images: ``split[rows]`` re-rendered on every other background
    (offset-major: all rows on background + 1, then + 2, ...)."""
    rows = np.asarray(rows, dtype=np.int64)
    n_bg = len(world.backgrounds)
    part = split.subset(rows)
    parts = [world.render_on_background(part, (part.background + offset) % n_bg).images for offset in range(1, n_bg)]
    images = np.concatenate(parts) if parts else split.images[:0]
    return Counterfactuals("background", np.tile(rows, n_bg - 1), images, np.full(len(rows) * (n_bg - 1), -1),
                           "re-rendered on every other background")


def make_counterfactuals(
    world: World, split: Split, rows: np.ndarray, seed: int = 0, background: Counterfactuals | None = None
) -> dict[str, Counterfactuals]:
    """Background, object and double swaps of ``split[rows]`` that this data supports (see the module doc).

    Without object masks only a renderer can swap backgrounds; without either, nothing is returned.
    ``background`` is :func:`rerendered` of the same rows when the caller already drew it (the background
    swaps of :mod:`igcore.microscope.swaps`): it is used instead of drawing them again.
    """
    rng = np.random.default_rng(seed)
    rows = np.asarray(rows, dtype=np.int64)
    out: dict[str, Counterfactuals] = {}
    if world.can_render:
        if background is not None and not np.array_equal(background.index, np.tile(rows, len(world.backgrounds) - 1)):
            raise ValueError("the background swaps given were drawn for other rows")
        out["background"] = background if background is not None else rerendered(world, split, rows)
    if split.masks is None:
        return out
    masks = split.masks
    other_place = _donors(split, rows, split.background, rng)
    other_class = _donors(split, rows, split.labels, rng)
    usable = (other_place >= 0) & (other_class >= 0)
    rows, other_place, other_class = rows[usable], other_place[usable], other_class[usable]
    need = np.unique(np.concatenate([rows, other_place]))
    cleared = dict(zip(need.tolist(), remove_objects(split.images[need], masks[need]), strict=True))
    backgrounds_own = np.stack([cleared[int(i)] for i in rows]) if len(rows) else split.images[:0]
    backgrounds_other = np.stack([cleared[int(i)] for i in other_place]) if len(rows) else split.images[:0]
    if not world.can_render:
        out["background"] = Counterfactuals(
            "background", rows, paste(split.images[rows], masks[rows], backgrounds_other), other_place,
            "object pasted onto an inpainted image of another place")
    out["object"] = Counterfactuals(
        "object", rows, paste(split.images[other_class], masks[other_class], backgrounds_own), other_class,
        "object of the other class pasted onto the inpainted background")
    out["double"] = Counterfactuals(
        "double", rows, paste(split.images[other_class], masks[other_class], backgrounds_other), other_class,
        "object of the other class on another place's inpainted background", other_place)
    return out


# --------------------------------------------------------------------------------------------- effects


def _log_odds(z: torch.Tensor) -> torch.Tensor:
    """(N, C) log-odds ``log p_c - log(1 - p_c) = z_c - logsumexp_{c' != c} z_c'`` (C >= 2 classes)."""
    others = [torch.logsumexp(torch.cat([z[:, :c], z[:, c + 1 :]], 1), 1) for c in range(z.shape[1])]
    return z - torch.stack(others, 1)


def log_odds(logits: np.ndarray) -> np.ndarray:
    """(N, C) log-odds of every class from logits, in float64."""
    return _log_odds(torch.as_tensor(logits, dtype=torch.float64)).numpy()


def mean_ci(values: np.ndarray, seed: int = 0, n_resamples: int = 2000) -> dict[str, Any]:
    """Mean with a percentile bootstrap 95% CI (scipy.stats.bootstrap); ``n``; None bounds for n < 2."""
    from scipy.stats import bootstrap

    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2 or np.allclose(values, values[0]):
        v = float(values.mean()) if len(values) else None
        return {"mean": v, "ci_low": v if len(values) else None, "ci_high": v if len(values) else None, "n": int(len(values))}
    res = bootstrap((values,), np.mean, confidence_level=0.95, n_resamples=n_resamples, method="percentile",
                    random_state=np.random.default_rng(seed))
    return {"mean": float(values.mean()), "ci_low": float(res.confidence_interval.low),
            "ci_high": float(res.confidence_interval.high), "n": int(len(values))}


#: Bytes of resampled values one bootstrap batch of :func:`mean_cis` may hold (rows × resamples × n float64).
BOOTSTRAP_BYTES = 64 * 2**20


def mean_cis(values: np.ndarray, seed: int = 0, n_resamples: int = 2000) -> list[dict[str, Any]]:
    """:func:`mean_ci` of every row of ``values`` (m, n), from one bootstrap: every row is resampled with the same
    draws, which is what m calls of :func:`mean_ci` with the same seed do, so the intervals are theirs up to
    float rounding (a test compares). scipy.stats.bootstrap along the last axis draws the indices once instead
    of m times; its ``batch`` keeps the resampled values under :data:`BOOTSTRAP_BYTES`.

    Why: the discovered components' ablation effects (:mod:`igcore.discover.importance`) bootstrap dozens of
    statistics of the same images, overall and per group, and drawing indices was most of their cost."""
    from scipy.stats import bootstrap

    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    m, n = values.shape
    out: list[dict[str, Any] | None] = [None] * m
    # constant rows (and n < 2) take mean_ci's own path: scipy would warn of a degenerate distribution
    live = [i for i in range(m) if n >= 2 and not np.allclose(values[i], values[i, 0])]
    for i in sorted(set(range(m)) - set(live)):
        out[i] = mean_ci(values[i], seed, n_resamples)
    if live:
        batch = max(1, min(n_resamples, BOOTSTRAP_BYTES // (8 * n * len(live))))
        res = bootstrap((values[live],), np.mean, confidence_level=0.95, n_resamples=n_resamples, method="percentile",
                        random_state=np.random.default_rng(seed), axis=-1, batch=batch)
        means = values[live].mean(axis=-1)
        for j, i in enumerate(live):
            out[i] = {"mean": float(means[j]), "ci_low": float(res.confidence_interval.low[j]),
                      "ci_high": float(res.confidence_interval.high[j]), "n": int(n)}
    return out  # type: ignore[return-value]


@dataclass
class Changes:
    """One kind of swap seen by one model: per swapped D′ row, the mean change in the log-odds of the model's
    answer (an image swapped several times counts once), and whether each counterfactual flipped the answer."""

    rows: np.ndarray
    change: np.ndarray
    flips: np.ndarray
    how: str

    @staticmethod
    def concat(parts: list[Changes]) -> Changes:
        """The changes of disjoint sets of rows together."""
        return Changes(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("rows", "change", "flips")), parts[0].how)


#: ``logits(images, rows)``: a model's logits of ``images[rows]`` (every image when ``rows`` is None).
LogitsFn = Callable[[Any, "np.ndarray | None"], np.ndarray]


def log_odds_changes(
    model: Any, split: Split, counterfactuals: Mapping[str, Counterfactuals], original_logits: np.ndarray | None = None,
    logits: LogitsFn | None = None,
) -> dict[str, Changes]:
    """:class:`Changes` of every kind of swap in ``counterfactuals`` (``background``, ``object``).

    ``original_logits`` (N, C) are the model's logits on ``split`` (computed when None); only the rows the
    counterfactuals change are read. ``logits`` computes the model's logits (default: in this process; the
    microscope passes its executor's, :class:`~igcore.baseline.BatchLogits` per batch).
    """
    logits = logits or (lambda images, rows: model.logits(images if rows is None else images[rows]))
    base = logits(split.images, None) if original_logits is None else original_logits
    answer = base.argmax(1)
    base_lo = log_odds(base)[np.arange(len(base)), answer]
    out: dict[str, Changes] = {}
    for kind in KINDS:
        cf = counterfactuals.get(kind)
        if cf is None:
            continue
        swapped = logits(cf.images, None)
        change = log_odds(swapped)[np.arange(len(cf.index)), answer[cf.index]] - base_lo[cf.index]
        rows, inverse = np.unique(cf.index, return_inverse=True)
        out[kind] = Changes(rows, np.bincount(inverse, weights=change) / np.bincount(inverse), swapped.argmax(1) != answer[cf.index], cf.how)
    return out


def summarise_changes(changes: Mapping[str, Changes], split: Split, group_names: list[str], seed: int = 0,
                      n_resamples: int = 2000) -> dict[str, Any]:
    """``{kind: {"overall": {mean, ci_low, ci_high, n}, "by_group": {group: {...}}, "flip_rate", "how"}}``, each
    interval from ``n_resamples`` bootstrap resamples (:func:`mean_ci`)."""
    out: dict[str, Any] = {}
    for kind, c in changes.items():
        groups = split.groups[c.rows]
        out[kind] = {
            "overall": mean_ci(c.change, seed, n_resamples),
            "by_group": {group_names[g]: mean_ci(c.change[groups == g], seed, n_resamples) for g in np.unique(groups)},
            "flip_rate": float(c.flips.mean()),
            "how": c.how,
        }
    return out


def effects(
    model: Any, split: Split, counterfactuals: Mapping[str, Counterfactuals], group_names: list[str],
    original_logits: np.ndarray | None = None, seed: int = 0,
) -> dict[str, Any]:
    """Mean change in the log-odds of the model's answer under each kind of swap, overall and per group.

    Returns ``{kind: {"overall": {mean, ci_low, ci_high, n}, "by_group": {group: {...}}, "flip_rate", "how"}}``
    for the kinds in ``counterfactuals`` (``background``, ``object``). An image swapped several times (a
    renderer's every other background) counts once, with its mean change.
    """
    return summarise_changes(log_odds_changes(model, split, counterfactuals, original_logits), split, group_names, seed)


# ---------------------------------------------------------------------------------- swap attribution


class LogOdds(nn.Module):
    """A pixel classifier's log-odds of every class (what the swap attribution explains)."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return _log_odds(self.module(pixels))


class SwapIntegratedGradients:
    """The per-image work of :func:`swap_attribution` (``fn(pairs, rows)``, what an executor runs): for each
    pair (B, 2, H, W, 3) of an original and its double swap, the integrated gradients of the log-odds of the
    model's answer on the original from the double swap, summed over colour channels, and the completeness
    gap. Returns float32 (B, H·W + 1): the flattened map, then the gap."""

    def __init__(self, model: Any, n_steps: int, batch_size: int) -> None:
        self.model, self.n_steps, self.batch_size = model, n_steps, batch_size

    def __call__(self, pairs: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        from captum.attr import IntegratedGradients

        ig = IntegratedGradients(LogOdds(self.model.module_).eval())
        answer = self.model.predict(pairs[:, 0])
        out = []
        for start in range(0, len(pairs), self.batch_size):
            sl = slice(start, start + self.batch_size)
            x = to_pixels(pairs[sl, 0], self.model.device_)
            x0 = to_pixels(pairs[sl, 1], self.model.device_)
            target = torch.as_tensor(answer[sl], device=self.model.device_)
            attr, delta = ig.attribute(x, baselines=x0, target=target, n_steps=self.n_steps, return_convergence_delta=True,
                                       internal_batch_size=PATH_BATCH(int(x.shape[-1]))["internal_batch_size"])
            a = attr.sum(1).detach().float().cpu().numpy()
            out.append(np.concatenate([a.reshape(len(a), -1), delta.abs().detach().float().cpu().numpy()[:, None]], 1))
        side = pairs.shape[2] * pairs.shape[3]
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, side + 1), np.float32)


def swap_pairs(split: Split, double: Counterfactuals, positions: np.ndarray) -> np.ndarray:
    """uint8 (B, 2, H, W, 3): the originals of the chosen double swaps and the swaps themselves."""
    return np.stack([split.images[double.index[positions]], double.images[positions]], axis=1)


def swap_attribution(
    model: Any, split: Split, double: Counterfactuals, positions: np.ndarray, n_steps: int = 32,
    batch_size: int = 16, seed: int = 0, group_names: list[str] | None = None, attributed: np.ndarray | None = None,
    n_resamples: int = 2000,
) -> dict[str, Any]:
    """Integrated gradients of the log-odds of the model's answer from the double swap to the original.

    For each chosen entry of ``double`` (``positions``): the attribution inside the background (outside
    the original's and the pasted object's masks) and inside the objects. Returns the mean background and
    object parts and their total (log-odds, the unit people read) with bootstrap CIs, overall and per group
    (``background_log_odds_by_group``, ``object_log_odds_by_group``), the completeness gap, and the mean
    share of the total on the background (``background_share``, overall and per group). The share is
    unbounded where the two parts pull in opposite directions (a total near 0 makes it explode), so it is
    kept for older readers and the dashboard shows the parts.

    ``attributed`` is :class:`SwapIntegratedGradients`' output for ``swap_pairs(split, double, positions)``
    (the microscope computes it on its executor); None computes it here. Every interval takes ``n_resamples``
    bootstrap resamples (:func:`mean_ci`).
    """
    rows, donors = double.index[positions], double.source[positions]
    if attributed is None:
        attributed = SwapIntegratedGradients(model, n_steps, batch_size)(swap_pairs(split, double, positions))
    h, w = split.images.shape[1:3]
    a, gap = attributed[:, :-1].reshape(len(attributed), h, w), attributed[:, -1].astype(np.float64)
    objects = split.masks[rows] | split.masks[donors]  # both objects; the rest is background
    # summed in float32 (the maps' precision), then in float64
    bg, ob, tot = ((a * ~objects).sum((1, 2)).astype(np.float64), (a * objects).sum((1, 2)).astype(np.float64),
                   a.sum((1, 2)).astype(np.float64))
    keep = np.abs(tot) > 1e-6
    share = bg[keep] / tot[keep]
    ci = functools.partial(mean_ci, seed=seed, n_resamples=n_resamples)
    out = {
        "background_share": ci(share),
        "background_log_odds": ci(bg),
        "object_log_odds": ci(ob),
        "total_log_odds": ci(tot),
        "completeness_gap": float(np.mean(gap)) if len(gap) else None,
        "n_steps": n_steps,
    }
    if group_names is not None and len(rows):
        groups = split.groups[rows]
        out["background_share_by_group"] = {group_names[g]: ci(share[groups[keep] == g]) for g in np.unique(groups[keep])}
        out["background_log_odds_by_group"] = {group_names[g]: ci(bg[groups == g]) for g in np.unique(groups)}
        out["object_log_odds_by_group"] = {group_names[g]: ci(ob[groups == g]) for g in np.unique(groups)}
    return out
