"""How much work the microscope does: chosen from the image size, the models' cost and a time budget.

The rule, in order:

1. **Image size.** Occlusion's window and stride follow the image side unless set
   (:func:`igcore.microscope.occlusion.geometry`), so a map occludes the same number of copies at any
   resolution; the resolved values are what the run records and caches.
2. **Model cost.** With a budget, before the parts run, every examined model's seconds per image of a
   forward pass and of a forward+backward pass are measured on random images at the run's image size
   (:func:`measure_cost`, on batches large enough that per-call overhead does not dominate, the fastest of a
   few passes; once per model shape; torch's FLOP counter adds the forward pass's FLOPs to the report).
   Every part's work is counted
   in passes per model (each attribution method declares its own,
   :meth:`~igcore.microscope.registry.AttributionMethod.cost`, and whether they are forward+backward or
   forward-only passes) and turned into seconds (:func:`estimate`).
3. **Budget.** ``microscope.budget_s`` is off by default: what a budget cuts depends on how fast the
   machine is at that moment, and a run without one computes exactly what its config says, on any machine.
   When the estimate of the configured work fits the budget, everything runs as configured too.
   Otherwise the plan lowers, one halving at a time and in turn, the path points per map
   (integrated-gradients and layer-IG steps, GradientSHAP samples, the swap attribution's steps; never
   below :data:`MIN_STEPS` / :data:`MIN_SAMPLES`), the images of the sanity cascade (never below
   :data:`MIN_SANITY_IMAGES`), the attribution images per group and the swap-attribution images per group
   (never below one), the images moved onto other backgrounds (never below a first effects round) and the
   test_train images the surrogates are fitted to (never below :data:`MIN_SURROGATE_IMAGES`), until the
   estimate fits or everything is at its floor (:func:`make_plan`). TCAV is not lowered: its statistics
   and controls need the images they have.
4. **Precision.** The counterfactual effects use every D′ image when that fits their share of the budget.
   Otherwise images are added in stratified rounds, each doubling the images per group (the first round
   has :data:`FIRST_ROUND_PER_GROUP`), until every effect's 95% interval half-width is below
   ``counterfactuals.half_width`` or their share is spent; the plan reserves them what
   :data:`EFFECTS_RESERVE_PER_GROUP` images per group cost.
5. **Deadlines.** When the configured work fits, a part is cut only once the whole budget is spent.
   Otherwise each part gets the budget still left in proportion to its estimate among the parts still to
   run in its lane (:meth:`Budget.deadline`; the two :data:`LANES` run side by side unless ``runtime.stages``
   allows one thing at a time, and then all parts are one lane), so time a part saves or overruns moves to
   the later parts. A part past its deadline stops adding work: the effects stop adding rounds (and do not
   start one that the last round's seconds per image say would end past it), attributions and sanity
   checks skip the remaining (model, method) pairs and TCAV the remaining models, each saying so in the
   model's ``unavailable``. The parts that cannot stop half-way (background swaps, surrogates, TCAV within
   a model) run first in their lanes, so the ones that can absorb what the estimates got wrong. Costs
   measured on a loaded machine are higher, so what a run that does not fit computes depends on the
   machine; the run records what it chose.

The run reports the plan (the estimate, what was lowered, the seconds each part took) in
``microscope/info.json`` ``budget`` and the stage's manifest record, and the precision it reached per
model in ``metrics.json`` ``microscope.<model>.precision``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from igcore.microscope.registry import get_method

#: Floors of the plan's reductions.
MIN_STEPS, MIN_SAMPLES, MIN_SANITY_IMAGES, MIN_SURROGATE_IMAGES = 8, 2, 2, 256
#: D′ images per group of the effects' first round (each further round doubles the images per group).
FIRST_ROUND_PER_GROUP = 8
#: Images per group whose effects the plan keeps time for when all of D′ does not fit.
EFFECTS_RESERVE_PER_GROUP = 32
#: The runner's two lanes of parts, side by side (:func:`igcore.microscope.runner.run_microscope`), of about equal
#: work at the default settings, each in the order it runs them: those that cannot stop half-way first.
LANES = (("swaps", "tcav", "effects"), ("surrogates", "attributions", "sanity"))
#: The parts, in the order the runner runs them one at a time (one lane, then the other).
PARTS = tuple(part for lane in LANES for part in lane)
#: Parameters holding path points per map, and their floors.
PATH_POINTS = {"n_steps": MIN_STEPS, "n_samples": MIN_SAMPLES}


@dataclass(frozen=True)
class ModelCost:
    """Seconds per image of a forward and of a forward+backward pass (input gradient), and forward GFLOPs."""

    forward_s: float
    backward_s: float
    gflops: float

    def seconds(self, forward: float, backward: float) -> float:
        return forward * self.forward_s + backward * self.backward_s


def measure_cost(
    module: nn.Module, side: int, device: torch.device | str = "cpu", min_seconds: float = 0.2, max_batch: int = 64, repeats: int = 3,
) -> ModelCost:
    """:class:`ModelCost` of a :class:`~igcore.baseline.PixelClassifier` on ``side``-pixel images.

    The parts run batches, and for a small model a pass of a few images is mostly per-call overhead, so the
    batch doubles until one forward+backward pass takes ``min_seconds`` (or reaches ``max_batch`` images),
    after one warm-up pass (the first call of a model pays one-time setup). That batch is then timed
    ``repeats`` times and the fastest pass of each kind gives the seconds per image: on a shared machine the
    other processes only ever add time, so the minimum is the least disturbed estimate. Random pixels come
    from a private generator, so the global random state is untouched.
    """
    from torch.utils.flop_counter import FlopCounterMode

    module.eval()
    pixels = torch.Generator().manual_seed(0)

    def timed(n: int) -> tuple[float, float]:
        x = torch.rand(n, 3, side, side, generator=pixels).to(device)
        start = time.perf_counter()
        with torch.no_grad():
            module(x)
        middle = time.perf_counter()
        x.requires_grad_()
        torch.autograd.grad(module(x)[:, 0].sum(), x)
        return middle - start, time.perf_counter() - middle

    with torch.no_grad(), FlopCounterMode(display=False) as flops:
        module(torch.rand(1, 3, side, side, generator=pixels).to(device))
    timed(1)  # warm-up
    n = 1
    while timed(n)[1] < min_seconds and n < max_batch:
        n *= 2
    forward, backward = (min(t) for t in zip(*(timed(n) for _ in range(max(1, repeats))), strict=True))
    return ModelCost(forward / n, backward / n, flops.get_total_flops() / 1e9)


@dataclass(frozen=True)
class Workload:
    """What the data asks of the microscope, independent of the settings' knobs.

    Attributes:
        side: image side in pixels.
        n_groups: groups of D′ (attribution and effect samples are stratified by group).
        n_test: D′ (test_eval) images.
        n_test_train: test_train images (the surrogates predict them).
        n_bank: concept-bank images.
        n_concepts: concepts of the vocabulary.
        n_classes: classes.
        n_backgrounds: backgrounds a renderer can draw (0 for photographs).
        has_masks: whether D′ has object masks (inpainted swaps).
        architectures: model → ``resnet`` | ``vit``.
        cascade_steps: model → steps of its sanity cascade.
    """

    side: int
    n_groups: int
    n_test: int
    n_test_train: int
    n_bank: int
    n_concepts: int
    n_classes: int
    n_backgrounds: int
    has_masks: bool
    architectures: Mapping[str, str]
    cascade_steps: Mapping[str, int]

    def effect_forwards_per_image(self) -> int:
        """Forward passes one D′ image costs each model in the effects: the original, its background swaps, its object swap."""
        background = self.n_backgrounds - 1 if self.n_backgrounds else int(self.has_masks)
        return 1 + background + int(self.has_masks)


def resolved_params(settings: Any, side: int) -> dict[str, dict[str, Any]]:
    """Every configured method's parameters with the registry's defaults and the image-size rule applied."""
    return {m: get_method(m).resolve(settings.params.get(m, {}), side) for m in settings.methods}


def _map_seconds(settings: Any, work: Workload, model: str, cost: ModelCost) -> float:
    """Seconds of one attribution map of every applicable method for ``model``."""
    total = 0.0
    for method, params in settings.params.items():
        spec = get_method(method)
        if method in settings.methods and spec.applies_to(work.architectures[model]):
            passes = spec.cost(params, work.side)
            total += cost.seconds(0, passes) if spec.backward else cost.seconds(passes + 1, 0)  # occlusion: its copies and the original
    return total


def effects_seconds(settings: Any, work: Workload, costs: Mapping[str, ModelCost], n_images: int) -> float:
    """Seconds of the effects on ``n_images`` D′ images, swap attribution included."""
    c = settings.counterfactuals
    per_image = sum(cost.forward_s for m, cost in costs.items() if m in settings.models) * work.effect_forwards_per_image()
    attributed = min(c.attribution_per_group * work.n_groups, n_images) if work.has_masks else 0
    return n_images * per_image + attributed * c.n_steps * sum(cost.backward_s for m, cost in costs.items() if m in settings.models)


def estimate(settings: Any, work: Workload, costs: Mapping[str, ModelCost], effect_images: int | None = None) -> dict[str, float]:
    """Estimated seconds of every part for ``settings`` (parameters already resolved), with the effects on
    ``effect_images`` D′ images (default: all those the settings ask for)."""
    models = [m for m in settings.models if m in costs]
    attributed = min(settings.per_group * work.n_groups, work.n_test)
    sanity_models = [m for m in (settings.sanity.models or models) if m in models]
    t = settings.tcav
    tcav_bank = min(work.n_bank, (work.n_concepts + t.n_controls + t.n_random) * t.n_concept_images * t.repeats)
    swap_images = min(settings.swaps.max_images or work.n_test, work.n_test)
    n_effects = min(settings.counterfactuals.max_images or work.n_test, work.n_test) if effect_images is None else effect_images
    return {
        "attributions": sum(attributed * _map_seconds(settings, work, m, costs[m]) for m in models),
        "swaps": sum(swap_images * max(work.n_backgrounds - 1, 0) * costs[m].forward_s for m in models),
        "effects": effects_seconds(settings, work, costs, n_effects) if (work.n_backgrounds or work.has_masks) else 0.0,
        "sanity": sum(min(settings.sanity.n_images, attributed) * work.cascade_steps[m] * _map_seconds(settings, work, m, costs[m])
                      for m in sanity_models),
        "tcav": sum(tcav_bank * costs[m].forward_s + t.n_inputs * work.n_classes * costs[m].backward_s
                    for m in t.models if m in models),
        "surrogates": sum(min(settings.surrogate_max_images or work.n_test_train, work.n_test_train) * costs[m].forward_s
                          for m in ("erm", "ig_student") if m in models) if settings.surrogates else 0.0,
    }


def _halve(value: int, floor: int) -> int:
    return max(floor, value // 2)


@dataclass
class Plan:
    """What the microscope will do: its settings (parameters resolved, knobs lowered when over budget) and why.

    Attributes:
        settings: the effective :class:`~igcore.microscope.params.MicroscopeConfig`.
        budget_s: the budget (None: no limit).
        costs: measured :class:`ModelCost` per model (empty without a budget).
        configured_s: estimated seconds of the configured work, per part.
        planned_s: estimated seconds of the planned work, per part.
        fits: whether the configured work fits the budget (then the settings are the configured ones).
        reduced: ``{knob: [configured, planned]}`` for every knob the plan lowered.
        all_effects: whether the effects use every D′ image they were asked for (else precision rounds).
    """

    settings: Any
    budget_s: float | None
    costs: dict[str, ModelCost] = field(default_factory=dict)
    configured_s: dict[str, float] = field(default_factory=dict)
    planned_s: dict[str, float] = field(default_factory=dict)
    fits: bool = True
    reduced: dict[str, list[Any]] = field(default_factory=dict)
    all_effects: bool = True

    def report(self) -> dict[str, Any]:
        """JSON-ready summary for ``info.json`` and the manifest."""
        return {
            "budget_s": self.budget_s,
            "fits": self.fits,
            "estimate_s": round(sum(self.configured_s.values()), 2),
            "planned_s": round(sum(self.planned_s.values()), 2),
            "planned_part_s": {k: round(v, 2) for k, v in self.planned_s.items()},
            "reduced": self.reduced,
            "all_effects": self.all_effects,
            "model_cost": {m: {"forward_ms": round(1e3 * c.forward_s, 3), "backward_ms": round(1e3 * c.backward_s, 3),
                               "gflops": round(c.gflops, 4)} for m, c in self.costs.items()},
        }


def make_plan(settings: Any, work: Workload, costs: Mapping[str, ModelCost]) -> Plan:
    """The :class:`Plan` for ``settings`` on ``work`` with the models' ``costs`` (see the module docstring)."""
    effective = settings.model_copy(deep=True)
    effective.params = {**effective.params, **resolved_params(effective, work.side)}
    plan = Plan(effective, settings.budget_s, dict(costs))
    if settings.budget_s is None or not costs:
        return plan
    plan.configured_s = estimate(effective, work, costs)
    plan.planned_s = dict(plan.configured_s)
    if sum(plan.configured_s.values()) <= settings.budget_s:
        return plan
    plan.fits = False
    configured = dict(_knobs(effective, work))
    n_effects = min(effective.counterfactuals.max_images or work.n_test, work.n_test)
    reserve = min(n_effects, EFFECTS_RESERVE_PER_GROUP * work.n_groups)

    def planned() -> dict[str, float]:
        return estimate(effective, work, costs, effect_images=reserve)

    order = [name for name, _ in _knobs(effective, work)]
    while sum(planned().values()) > settings.budget_s:
        lowered = False
        for name in order:
            if _lower(effective, name, work):
                lowered = True
                if sum(planned().values()) <= settings.budget_s:
                    break
        if not lowered:
            break
    plan.reduced = {name: [configured[name], value] for name, value in _knobs(effective, work) if value != configured[name]}
    others = sum(v for k, v in planned().items() if k != "effects")
    full = estimate(effective, work, costs)["effects"]
    plan.all_effects = others + full <= settings.budget_s
    plan.planned_s = estimate(effective, work, costs, effect_images=None if plan.all_effects else reserve)
    if not plan.all_effects:  # the effects take whatever the other parts leave
        plan.planned_s["effects"] = max(plan.planned_s["effects"], settings.budget_s - others)
    return plan


def _knobs(settings: Any, work: Workload) -> list[tuple[str, int]]:
    """The knobs the plan may lower, in the order it lowers them, with their values in ``settings``."""
    knobs = [(f"params.{m}.{k}", int(p[k])) for m, p in settings.params.items() if m in settings.methods for k in PATH_POINTS if k in p]
    return [
        *knobs,
        ("counterfactuals.n_steps", settings.counterfactuals.n_steps),
        ("sanity.n_images", settings.sanity.n_images),
        ("per_group", settings.per_group),
        ("counterfactuals.attribution_per_group", settings.counterfactuals.attribution_per_group),
        ("swaps.max_images", min(settings.swaps.max_images or work.n_test, work.n_test)),
        ("surrogate_max_images", min(settings.surrogate_max_images or work.n_test_train, work.n_test_train)),
    ]


def _lower(settings: Any, name: str, work: Workload) -> bool:
    """Halve knob ``name`` of ``settings`` in place, down to its floor; whether it changed."""
    if name.startswith("params."):
        _, method, key = name.split(".")
        value = settings.params[method][key]
        new = _halve(value, min(value, PATH_POINTS[key]))
        settings.params = {**settings.params, method: {**settings.params[method], key: new}}
        return new != value
    section, _, key = name.rpartition(".")
    owner = getattr(settings, section) if section else settings
    value = dict(_knobs(settings, work))[name]
    floor = {"counterfactuals.n_steps": MIN_STEPS, "sanity.n_images": MIN_SANITY_IMAGES,
             "swaps.max_images": FIRST_ROUND_PER_GROUP * work.n_groups, "surrogate_max_images": MIN_SURROGATE_IMAGES}.get(name, 1)
    new = _halve(value, min(value, floor))
    if new == value:
        return False
    setattr(owner, key, new)
    return True


class Budget:
    """Deadlines of the parts. When the configured work fits, every part may run until the budget is spent;
    otherwise each part gets the budget still left in proportion to its planned seconds among the parts still
    to run in its lane (``lanes``: parts that run one after the other; the lanes run side by side, so each
    lane's parts share what is left of the budget's wall time; default: one lane of every part)."""

    def __init__(self, plan: Plan, lanes: Sequence[Sequence[str]] = (PARTS,), start: float | None = None) -> None:
        self.plan = plan
        self.start = time.perf_counter() if start is None else start  # when the budget started running
        self.lanes = [list(lane) for lane in lanes]
        self.deadlines: dict[str, float | None] = {}
        self._lock = threading.Lock()  # the lanes ask from their own threads

    def deadline(self, part: str) -> float | None:
        """Start ``part``: the ``time.perf_counter()`` by which it should stop adding work (None: no limit)."""
        with self._lock:
            pending = next((lane for lane in self.lanes if part in lane), [])
            if part in pending:
                pending.remove(part)
            if self.plan.budget_s is None or not self.plan.planned_s:
                self.deadlines[part] = None
                return None
            if self.plan.fits:  # the configured work, cut only if the whole budget runs out
                self.deadlines[part] = self.start + self.plan.budget_s
                return self.deadlines[part]
            now = time.perf_counter()
            left = self.plan.budget_s - (now - self.start)
            mine = self.plan.planned_s.get(part, 0.0)
            rest = mine + sum(self.plan.planned_s.get(p, 0.0) for p in pending)
            self.deadlines[part] = now + max(0.0, left) * (mine / rest if rest > 0 else 1.0)
            return self.deadlines[part]

    def spent(self) -> float:
        return time.perf_counter() - self.start


def expired(deadline: float | None) -> bool:
    """Whether a part's deadline has passed."""
    return deadline is not None and time.perf_counter() > deadline


def stratified_rounds(groups: np.ndarray, rows: np.ndarray, first: int = FIRST_ROUND_PER_GROUP, seed: int = 0) -> list[np.ndarray]:
    """``rows`` in rounds: round ``k`` brings every group's images up to ``first · 2^k`` (a random order per
    group, seeded), so the rows of the first ``k`` rounds are a stratified sample that doubles each round."""
    rng = np.random.default_rng(seed)
    rows = np.asarray(rows, dtype=np.int64)
    order = {g: rng.permutation(rows[groups[rows] == g]) for g in np.unique(groups[rows])}
    rounds, start, stop = [], 0, first
    while start < max((len(v) for v in order.values()), default=0):
        rounds.append(np.sort(np.concatenate([v[start:stop] for v in order.values()])))
        start, stop = stop, 2 * stop
    return rounds


def half_width(stat: Mapping[str, Any]) -> float:
    """Half the width of a ``mean_ci`` interval (inf when it has none)."""
    low, high = stat.get("ci_low"), stat.get("ci_high")
    return float("inf") if low is None or high is None or stat.get("n", 0) < 2 else (high - low) / 2
