"""The microscope's plan (igcore/microscope/plan.py): occlusion windows that follow the image, work that fits a
time budget, deadlines, and counterfactual effects that stop adding images at the precision asked for."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from igcore.baseline import LOGITS_BATCH
from igcore.config import MicroscopeConfig
from igcore.microscope import ATTRIBUTIONS
from igcore.microscope.counterfactuals import mean_ci
from igcore.microscope.occlusion import geometry
from igcore.microscope.plan import (
    LANES,
    MIN_SAMPLES,
    MIN_STEPS,
    PARTS,
    Budget,
    ModelCost,
    Workload,
    estimate,
    half_width,
    make_plan,
    measure_cost,
    stratified_rounds,
)
from igcore.microscope.runner import MicroscopeInputs, counterfactual_effects, run_microscope
from igcore.worlds import make_world

torch.set_num_threads(1)


def work(side: int = 64, **changes) -> Workload:
    base = Workload(side=side, n_groups=4, n_test=1500, n_test_train=3000, n_bank=3000, n_concepts=19, n_classes=2,
                    n_backgrounds=3, has_masks=True, architectures={m: "resnet" for m in ("erm", "ig_student", "oracle")},
                    cascade_steps={m: 6 for m in ("erm", "ig_student", "oracle")})
    return dataclasses.replace(base, **changes)


def costs(forward_s: float, backward_s: float) -> dict[str, ModelCost]:
    return {m: ModelCost(forward_s, backward_s, 1.0) for m in ("erm", "ig_student", "oracle")}


def test_occlusion_windows_follow_the_image():
    assert geometry(64) == {"window": 16, "stride": 8}  # the windows the default run has always used
    assert geometry(224) == {"window": 56, "stride": 28}
    spec = ATTRIBUTIONS["occlusion"]
    assert spec.cost(None, 224) == spec.cost(None, 64) == 49 and not spec.backward  # forward passes only
    assert spec.cost({"window": 16, "stride": 8}, 224) == 729  # what the fixed 16/8 px windows cost at 224 px
    assert spec.resolve({}, 224)["window"] == 56 and spec.resolve({"window": 20}, 224)["window"] == 20  # a set value stays


@pytest.mark.parametrize("method", list(ATTRIBUTIONS))
@pytest.mark.parametrize("side", [64, 224])
def test_every_method_declares_what_a_map_costs(method, side):
    spec = ATTRIBUTIONS[method]
    params = spec.resolve({}, side)
    assert all(v is not None for v in params.values())  # every parameter the image size decides is decided
    # forward (+ backward) passes per map: one for the gradient maps, one per path point or sample, one per window
    passes = {"saliency": 1, "grad_cam": 1, "integrated_gradients": 32, "layer_integrated_gradients": 32, "gradient_shap": 8,
              "occlusion": 49}
    assert spec.cost(params, side) == passes[method]


def test_default_run_keeps_its_settings_when_it_fits():
    """At 64 px the plan's windows and steps are today's defaults, and nothing is lowered: without a budget
    (the default) and with one the configured work fits."""
    settings = MicroscopeConfig(budget_s=240.0)
    plan = make_plan(settings, work(64), costs(1e-4, 3e-4))
    assert plan.fits and plan.all_effects and plan.reduced == {} and 0 < sum(plan.configured_s.values()) <= 240
    before = {  # the parameters of every default run at 64 px: the windows and steps they had before they followed the
        # image size; occlusion's passes of igcore.baseline.LOGITS_BATCH images, the path methods' of as many images × steps
        "integrated_gradients": {"n_steps": 32, "internal_batch_size": 128, "baseline": "black"},
        "occlusion": {"window": 16, "stride": 8, "baseline": "gray", "forward_batch": LOGITS_BATCH},
        "layer_integrated_gradients": {"n_steps": 32, "internal_batch_size": 128, "baseline": "black", "interpolate_mode": "nearest"},
    }
    assert {m: plan.settings.params[m] for m in before} == before
    assert {m: p for m, p in plan.settings.params.items() if m not in before} == {m: p for m, p in settings.params.items() if m not in before}
    assert make_plan(settings, work(224), costs(1e-4, 3e-4)).settings.params["integrated_gradients"]["internal_batch_size"] == 10  # 128 × (64 / 224)²
    assert (plan.settings.per_group, plan.settings.sanity.n_images) == (settings.per_group, settings.sanity.n_images)
    unbudgeted = make_plan(MicroscopeConfig(), work(64), {})
    assert MicroscopeConfig().budget_s is None and unbudgeted.fits and unbudgeted.settings.params == plan.settings.params


def test_over_budget_lowers_path_points_then_samples_down_to_floors():
    settings = MicroscopeConfig(budget_s=300.0)
    small = work(224, n_test=400, n_test_train=400, n_bank=600)
    slow = costs(0.03, 0.09)  # a ResNet-18 at 224 px on two cores, roughly
    unplanned = make_plan(settings.model_copy(update={"budget_s": None}), small, {}).settings
    assert sum(estimate(unplanned, small, slow).values()) > 300
    plan = make_plan(settings, small, slow)
    assert not plan.fits and plan.reduced
    s = plan.settings
    assert MIN_STEPS <= s.params["integrated_gradients"]["n_steps"] < 32 and s.params["gradient_shap"]["n_samples"] >= MIN_SAMPLES
    assert s.per_group >= 1 and s.sanity.n_images >= 1
    assert sum(plan.planned_s.values()) == pytest.approx(300)  # what the other parts leave is the effects' share
    assert not plan.all_effects  # the effects take what the others leave, which here holds fewer than every D′ image
    assert plan.report()["reduced"]["params.integrated_gradients.n_steps"] == [32, s.params["integrated_gradients"]["n_steps"]]
    assert s.tcav == settings.tcav  # TCAV keeps its statistics
    # a budget nothing fits: everything at its floor, and the plan says it does not fit
    floor = make_plan(MicroscopeConfig(budget_s=1.0), small, slow).settings
    assert floor.params["integrated_gradients"]["n_steps"] == MIN_STEPS and floor.per_group == 1
    assert floor.counterfactuals.attribution_per_group == 1 and floor.swaps.max_images == 8 * small.n_groups


def test_deadlines_share_what_is_left_in_proportion_to_the_estimates():
    plan = make_plan(MicroscopeConfig(budget_s=10.0), work(224), costs(0.03, 0.09))
    budget = Budget(plan)
    first = budget.deadline("attributions") - budget.start
    share = plan.planned_s["attributions"] / sum(plan.planned_s.values())
    assert first == pytest.approx(10.0 * share, rel=0.05)
    fitting = Budget(make_plan(MicroscopeConfig(budget_s=1e6), work(64), costs(1e-5, 3e-5)))
    assert fitting.deadline("sanity") == fitting.start + 1e6  # a plan that fits is cut only when the whole budget is spent
    assert Budget(make_plan(MicroscopeConfig(budget_s=None), work(64), {})).deadline("tcav") is None


def test_lanes_side_by_side_share_what_is_left_among_their_own_parts():
    """Side by side (the runner's two lanes), a part's share of what is left counts only the parts still to run in its
    own lane: the other lane spends the same wall time at once."""
    plan = make_plan(MicroscopeConfig(budget_s=10.0), work(224), costs(0.03, 0.09))
    planned, budget = plan.planned_s, Budget(plan, LANES)
    surrogates = budget.deadline("surrogates") - budget.start
    assert surrogates == pytest.approx(10.0 * planned["surrogates"] / sum(planned[p] for p in LANES[1]), rel=0.05)
    budget.deadline("swaps"), budget.deadline("tcav")
    effects = budget.deadline("effects") - budget.start
    assert effects == pytest.approx(10.0, rel=0.05)  # the last part of its lane: all that is left
    assert {p for lane in LANES for p in lane} == set(PARTS) and not plan.fits


def test_stratified_rounds_double_per_group():
    groups = np.repeat(np.arange(3), [40, 20, 5])
    rounds = stratified_rounds(groups, np.arange(65), first=4, seed=0)
    cumulative = [np.bincount(groups[np.concatenate(rounds[: k + 1])], minlength=3) for k in range(len(rounds))]
    assert [c.tolist() for c in cumulative] == [[4, 4, 4], [8, 8, 5], [16, 16, 5], [32, 20, 5], [40, 20, 5]]
    assert np.array_equal(np.sort(np.concatenate(rounds)), np.arange(65))


def test_half_width():
    assert half_width({"mean": 0.0, "ci_low": -0.2, "ci_high": 0.4, "n": 10}) == pytest.approx(0.3)
    assert half_width(mean_ci(np.array([1.0]))) == float("inf")


def test_measure_cost_leaves_the_random_state_alone():
    from igcore.baseline import PixelClassifier, build_model

    module = PixelClassifier(build_model("resnet-tiny", 2, 32))
    torch.manual_seed(5)
    before = torch.rand(1)
    torch.manual_seed(5)
    cost = measure_cost(module, 32, min_seconds=0.0)
    assert torch.rand(1) == before
    assert cost.forward_s > 0 and cost.backward_s > 0 and cost.gflops > 0


# -- on a tiny world ---------------------------------------------------------------------------------


class _Reader:
    """A model whose log-odds follow the mean brightness of the image (so swaps change them) or nothing at all."""

    def __init__(self, gain: float):
        self.gain = gain

    def logits(self, images: np.ndarray) -> np.ndarray:
        x = images.reshape(len(images), -1).mean(1) / 255.0 - 0.5
        return np.stack([np.zeros(len(images)), self.gain * x + 0.01], 1)


@pytest.fixture(scope="module")
def world():
    return make_world("snowwolf", seed=0, image_size=32, n_train=40, n_val=20, n_test_train=20, n_test_eval=200, n_concept_bank=40)


def _inputs(world, models):
    return MicroscopeInputs(world=world, test_eval=world.split("test_eval"), concept_bank_images=np.zeros((0, 32, 32, 3), np.uint8),
                            concept_bank_concepts=np.zeros((0, 1)), models=models)


def _effects(world, models, target, all_images=False, n_resamples=2000):
    settings = MicroscopeConfig(models=list(models), counterfactuals={"attribution_per_group": 0, "examples_per_group": 0,
                                                                         "half_width": target, "n_resamples": n_resamples})
    per_model = {m: {} for m in models}
    with tempfile.TemporaryDirectory() as tmp:
        counterfactual_effects(_inputs(world, models), settings, list(models), Path(tmp), per_model, all_images)
    return per_model


def test_effects_stop_adding_images_once_precise_enough(world):
    blind = _effects(world, {"erm": _Reader(0.0)}, target=0.05)["erm"]  # no change at all: one round is enough
    assert blind["precision"]["rounds"] == 1 and blind["precision"]["effects_images"] == 8 * len(world.group_names())
    assert all(h < 0.05 for h in blind["precision"]["effects_half_width"].values())
    reader = _effects(world, {"erm": _Reader(40.0)}, target=1e-6)["erm"]  # never precise enough: every image
    assert reader["precision"]["effects_images"] == len(world.split("test_eval"))
    assert reader["precision"]["rounds"] > 1 and reader["precision"]["target_half_width"] == 1e-6
    for e in reader["effects"].values():  # every effect with its interval
        assert e["overall"]["ci_low"] <= e["overall"]["mean"] <= e["overall"]["ci_high"]
    everything = _effects(world, {"erm": _Reader(40.0)}, target=1e-6, all_images=True)["erm"]
    assert everything["precision"]["rounds"] == 1 and everything["precision"]["target_half_width"] is None
    assert everything["effects"]["background"]["overall"]["n"] == len(world.split("test_eval"))


def test_the_effects_intervals_take_the_configured_resamples(world):
    """`counterfactuals.n_resamples` is the bootstrap of every effect's interval (it used to be ignored: always 2000)."""
    few, many = (_effects(world, {"erm": _Reader(40.0)}, target=1e-6, all_images=True, n_resamples=n)["erm"]["effects"] for n in (100, 2000))
    for kind in few:
        a, b = few[kind]["overall"], many[kind]["overall"]
        assert a["mean"] == b["mean"] and a["n"] == b["n"]  # the same changes
        assert (a["ci_low"], a["ci_high"]) != (b["ci_low"], b["ci_high"])  # read through another bootstrap
        assert a["ci_low"] <= a["mean"] <= a["ci_high"]


def test_a_tiny_budget_is_respected_and_reported(world, tmp_path):
    """With a budget far below the configured work, the run lowers its knobs, cuts what is left when time runs
    out (saying so per model), keeps every effect's interval, and reports the plan and the precision reached."""
    from igcore.baseline import ImageClassifier

    train = world.split("train")
    clf = ImageClassifier("resnet-tiny", 2, image_size=32, epochs=1, batch_size=20, device="cpu", progress=False).fit(train.images, train.labels)
    bank = world.split("concept_bank")
    inputs = dataclasses.replace(_inputs(world, {"erm": clf}), concept_bank_images=bank.images, concept_bank_concepts=bank.concepts)
    settings = MicroscopeConfig(models=["erm"], surrogates=False, budget_s=0.05, sanity={"n_images": 4},
                                tcav={"n_random": 2, "n_concept_images": 6, "n_inputs": 4, "repeats": 1, "n_controls": 0,
                                      "layers": ["penultimate"]})
    result = run_microscope(inputs, settings, tmp_path)
    budget = result.info["budget"]
    assert budget["budget_s"] == 0.05 and not budget["fits"] and budget["reduced"]
    assert result.info["settings"]["params"]["integrated_gradients"]["n_steps"] == MIN_STEPS
    erm = result.per_model["erm"]
    cut = {part for part, reason in erm["unavailable"].items() if "time budget" in reason}
    assert cut & {"attributions", "sanity", "tcav"}  # work left when the budget ran out is named, not silently dropped
    assert erm["effects"] and all(e["overall"]["ci_low"] is not None for e in erm["effects"].values())
    assert erm["precision"]["effects_all_images"] is False and erm["precision"]["rounds"] >= 1


def test_the_scale_page_says_when_even_the_floor_was_estimated_over_the_budget() -> None:
    """bench_microscope_scale's sentence: only when the planned seconds exceed the budget, with whether the run kept it."""
    from bench.bench_microscope_scale import beyond_floor

    within = beyond_floor({"budget_s": 240, "planned_s": 276, "spent_s": 202})
    assert "276 s > 240 s" in within and "finished within it (202 s)" in within
    assert "ran 10 s past it" in beyond_floor({"budget_s": 240, "planned_s": 276, "spent_s": 250})
    assert beyond_floor({"budget_s": 240, "planned_s": 230, "spent_s": 250}) == ""
    assert beyond_floor({"budget_s": None, "planned_s": 230, "spent_s": 250}) == ""
