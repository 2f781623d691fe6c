"""The baseline microscope: attributions (every registered method), relevance mass, TCAV, swaps,
sanity checks, surrogates, the pipeline stage, recompute and the CLI. Tiny models, tiny world (< 60 s)."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.numpy import load_file

from igcore.baseline import ImageClassifier
from igcore.cli import main
from igcore.config import MicroscopeConfig, load_config
from igcore.errors import InputError
from igcore.microscope import (
    ATTRIBUTIONS,
    AttributionCache,
    background_swaps,
    compute_maps,
    maps_for,
    mask_area_share,
    rank_correlation,
    register_attribution,
    relevance_mass,
    sanity_check,
    tcav_scores,
)
from igcore.microscope.registry import architecture_of
from igcore.microscope.sanity import verdict
from igcore.microscope.tcav import _adjust
from igcore.worlds import make_world

torch.set_num_threads(1)
SIZE = 32


@pytest.fixture(scope="module")
def world():
    return make_world(
        "snowwolf", seed=0, image_size=SIZE, n_train=120, n_val=40, n_test_train=60, n_test_eval=48, n_concept_bank=160
    )


@pytest.fixture(scope="module")
def classifiers(world):
    """One tiny classifier per architecture family, trained for one epoch."""
    train = world.split("train")
    out = {}
    for arch in ("resnet-tiny", "vit-tiny"):
        clf = ImageClassifier(arch, 2, image_size=SIZE, epochs=1, batch_size=64, device="cpu", progress=False)
        out[arch.split("-")[0]] = clf.fit(train.images, train.labels)
    return out


def _cases() -> list[tuple[str, str]]:
    return [(m, arch) for m, spec in ATTRIBUTIONS.items() for arch in spec.architectures]


# -- attributions ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "arch"), _cases())
def test_every_method_gives_finite_maps_and_caches(method, arch, world, classifiers, tmp_path):
    clf = classifiers[arch]
    test = world.split("test_eval")
    params = {"n_steps": 4} if "n_steps" in ATTRIBUTIONS[method].defaults else {}
    cache = AttributionCache(tmp_path / "attributions")
    idx = np.array([5, 1, 7])
    first = maps_for(cache, "m", clf, test.images, idx, method, params, batch_size=2)
    assert first.maps.shape == (3, SIZE, SIZE) and first.maps.dtype == np.float32
    assert np.isfinite(first.maps).all() and np.abs(first.maps).sum() > 0
    assert first.computed == 3
    np.testing.assert_array_equal(first.targets, clf.predict(test.images[idx]))
    again = maps_for(cache, "m", clf, test.images, idx[::-1], method, params)
    assert again.computed == 0  # a cache hit computes nothing
    np.testing.assert_array_equal(again.maps, first.maps[::-1])
    more = maps_for(cache, "m", clf, test.images, np.array([1, 2]), method, params)
    assert more.computed == 1  # only the missing image
    other = maps_for(cache, "m", clf, test.images, idx[:1], method, {**params, **_other_params(method)})
    assert other.computed == 1  # other parameters are another cache key


@pytest.mark.parametrize(("method", "arch"), _cases())
def test_maps_are_the_same_whatever_the_global_random_state(method, arch, world, classifiers):
    """Stochastic methods draw from seeded generators (GradientShap's captum code draws path points from numpy's
    global RNG): the same call gives the same maps after other code consumed random numbers, and leaves the
    caller's random state as it was."""
    clf = classifiers[arch]
    images = world.split("test_eval").images[:3]
    targets = clf.predict(images)
    params = {"n_steps": 4} if "n_steps" in ATTRIBUTIONS[method].defaults else {}
    first = compute_maps(clf.module_, images, targets, method, params)
    np.random.seed(123)
    torch.manual_seed(456)
    before = np.random.get_state()[1].copy()
    again = compute_maps(clf.module_, images, targets, method, params)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def _other_params(method: str) -> dict:
    key, value = next((k, v) for k, v in ATTRIBUTIONS[method].defaults.items() if v is not None)  # None: follows the image
    return {key: (not value) if isinstance(value, bool) else (value + 1 if isinstance(value, (int, float)) else "white")}


@pytest.mark.parametrize("method, arch", [(m, a) for m, spec in ATTRIBUTIONS.items() for a in ("resnet", "vit") if not spec.applies_to(a)])
def test_methods_refuse_architectures_they_do_not_apply_to(method, arch, classifiers):
    """Each method refuses, in one line, the architectures its registration leaves out (grad_cam a ViT,
    layer_integrated_gradients a ResNet)."""
    with pytest.raises(InputError, match="does not apply"):
        compute_maps(classifiers[arch].module_, np.zeros((1, SIZE, SIZE, 3), np.uint8), np.zeros(1, int), method)


def test_config_defaults_list_every_method_with_its_registry_defaults():
    section = MicroscopeConfig()
    assert set(section.params) == set(ATTRIBUTIONS)
    for name, spec in ATTRIBUTIONS.items():
        assert section.params[name] == dict(spec.defaults), name
    assert set(section.methods) <= set(ATTRIBUTIONS)


def test_unknown_method_or_parameter_is_an_input_error():
    with pytest.raises(InputError, match="unknown attribution method 'magic'; valid: .*integrated_gradients"):
        load_config(None, ['microscope.methods=["integrated_gradients","magic"]'])
    with pytest.raises(InputError, match="unknown config key 'microscope.params.saliency.n_steps'; valid keys here: abs"):
        ATTRIBUTIONS["saliency"].resolve({"n_steps": 3})


@pytest.mark.parametrize("method", list(ATTRIBUTIONS))
def test_every_method_declares_each_parameter_once_with_its_meaning(method):
    """The registry entry is the one place a parameter's default and bounds are written: the function has no
    defaults of its own, every parameter has a line of meaning, and the config validates against the entry."""
    spec = ATTRIBUTIONS[method]
    keywords = [p for p in inspect.signature(spec.fn).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert [p.name for p in keywords] == list(spec.defaults)
    assert all(p.default is inspect.Parameter.empty for p in keywords)
    assert all(field.description for field in spec.params.model_fields.values())
    for name, value in spec.defaults.items():
        if isinstance(value, int) and not isinstance(value, bool) and spec.params.model_fields[name].metadata:
            with pytest.raises(InputError, match=f"microscope.params.{method}.{name}"):
                load_config(None, [f"microscope.params.{method}.{name}=-1"])


def test_a_methods_cost_is_the_model_passes_of_one_map():
    assert ATTRIBUTIONS["saliency"].cost(None, 64) == 1
    assert ATTRIBUTIONS["integrated_gradients"].cost({"n_steps": 8}, 64) == 8
    assert ATTRIBUTIONS["occlusion"].cost(None, 64) == 49  # 7 x 7 window positions of 16 px every 8 px
    assert ATTRIBUTIONS["occlusion"].cost({"window": 56, "stride": 28}, 224) == 49


# -- relevance mass ------------------------------------------------------------------------------


def test_relevance_mass_inside_outside_uniform():
    masks = np.zeros((3, 8, 8), bool)
    masks[:, 2:4, 2:6] = True  # 8 of 64 pixels
    inside = np.where(masks, 1.0, -0.5)
    outside = np.where(masks, -1.0, 2.0)
    uniform = np.ones((3, 8, 8))
    np.testing.assert_allclose(relevance_mass(inside, masks), 1.0)
    np.testing.assert_allclose(relevance_mass(outside, masks), 0.0)
    np.testing.assert_allclose(relevance_mass(uniform, masks), mask_area_share(masks))
    np.testing.assert_allclose(mask_area_share(masks), 8 / 64)
    assert np.isnan(relevance_mass(-uniform, masks)).all()  # no positive evidence at all


# -- TCAV ----------------------------------------------------------------------------------------


def test_tcav_records_and_p_values(world, classifiers):
    bank, test = world.split("concept_bank"), world.split("test_eval")
    ids = world.vocabulary.ids
    by_class = {c: test.images[test.labels == i][:8] for i, c in enumerate(world.classes)}
    records = tcav_scores(
        classifiers["resnet"].module_, bank.images, bank.concepts, ids, by_class, ["penultimate", "middle"],
        classes=world.classes, n_random=3, n_concept_images=10, seed=0,
    )
    assert len(records) == len(ids) * len(world.classes) * 2
    keys = {"concept", "class", "layer", "score", "p_value", "p_adjusted", "significant"}
    for r in records:
        assert keys <= set(r)
        assert 0.0 <= r["score"] <= 1.0 and 0.0 <= r["p_value"] <= 1.0 and r["p_value"] <= r["p_adjusted"] <= 1.0
        assert r["significant"] == (r["p_adjusted"] < 0.05)
    assert {r["layer"] for r in records} == {"penultimate", "middle"}
    with pytest.raises(InputError):
        tcav_scores(classifiers["resnet"].module_, bank.images, bank.concepts, ids, by_class, ["no.such.layer"], n_random=2)


def test_tcav_runs_on_vit(world, classifiers):
    bank, test = world.split("concept_bank"), world.split("test_eval")
    records = tcav_scores(
        classifiers["vit"].module_, bank.images, bank.concepts[:, :2], world.vocabulary.ids[:2],
        {world.classes[0]: test.images[:6]}, ["penultimate"], classes=world.classes, n_random=2, n_concept_images=8,
    )
    assert len(records) == 2 and all(0 <= r["p_value"] <= 1 for r in records)


def test_multiple_comparison_corrections():
    p = np.array([0.01, 0.04, 0.03, 0.2])
    np.testing.assert_allclose(_adjust(p, "bonferroni"), [0.04, 0.16, 0.12, 0.8])
    np.testing.assert_allclose(_adjust(p, "holm"), [0.04, 0.09, 0.09, 0.2])
    np.testing.assert_allclose(_adjust(p, "bh"), [0.04, 0.0533333, 0.0533333, 0.2], rtol=1e-5)
    np.testing.assert_allclose(_adjust(p, "none"), p)


# -- background swaps ----------------------------------------------------------------------------


class _ByBackground:
    """Predicts "wolf" on snow, "husky" elsewhere, by looking at the brightest corner (a shortcut)."""

    def predict(self, images: np.ndarray) -> np.ndarray:
        return (images[:, :4, :4].mean(axis=(1, 2, 3)) > 170).astype(np.int64)


class _Constant:
    def predict(self, images: np.ndarray) -> np.ndarray:
        return np.zeros(len(images), np.int64)


def test_swaps_change_only_background_pixels_and_measure_flips(world):
    test = world.split("test_eval")
    result = background_swaps(world, test, {"const": _Constant(), "bg": _ByBackground()}, keep_per_group=1, chunk=20)
    n_bg = len(world.backgrounds)
    assert result.metrics["const"]["swap_flip_rate"] == 0.0
    assert result.metrics["const"]["n_swaps"] == len(test) * (n_bg - 1)
    assert result.metrics["bg"]["swap_flip_rate"] > 0.2
    s = result.sample
    assert len(s["images"]) == len(np.unique(test.groups)) * (n_bg - 1)
    assert (s["to_background"] != s["from_background"]).all()
    for img, i in zip(s["images"], s["index"], strict=True):
        inside = test.masks[i]
        np.testing.assert_array_equal(img[inside], test.images[i][inside])  # the animal is untouched
        assert (img[~inside] != test.images[i][~inside]).any()  # the background changed
    assert set(result.table.columns) >= {"model", "from_background", "to_background", "flip_rate", "acc", "n"}


def test_effects_read_the_background_swaps_drawn_for_the_swaps_part(world, classifiers, tmp_path):
    """When the swaps and the effects both take every D′ image, the re-rendered images and their logits are made
    once (runner.shared_swaps); every number is the one each part computes on its own."""
    from igcore.microscope.recompute import microscope_settings
    from igcore.microscope.runner import (
        MicroscopeInputs,
        counterfactual_effects,
        plan_microscope,
        shared_swaps,
        shares_swaps,
        swaps,
        unavailable_parts,
    )

    settings = microscope_settings({}, ['microscope.models=["erm","oracle"]', "microscope.counterfactuals.attribution_per_group=1",
                                        "microscope.counterfactuals.n_steps=2"])
    bank, test = world.split("concept_bank"), world.split("test_eval")
    inputs = MicroscopeInputs(world, test, bank.images, bank.concepts, {"erm": classifiers["resnet"], "oracle": classifiers["resnet"]})
    models = list(settings.models)
    assert shares_swaps(inputs, settings, plan_microscope(inputs, settings), unavailable_parts(inputs))
    found = {}
    for name, shared in (("alone", None), ("shared", shared_swaps(inputs, models))):
        per_model: dict = {m: {} for m in models}
        swaps(inputs, settings, models, tmp_path / name, per_model, shared)
        counterfactual_effects(inputs, settings, models, tmp_path / name, per_model, shared=shared)
        found[name] = per_model
    assert found["shared"] == found["alone"] and found["alone"]["erm"]["swap_n"] == len(test) * (len(world.backgrounds) - 1)
    for table in ("swaps", "effects"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "shared" / "tables" / f"{table}.parquet"),
                                      pd.read_parquet(tmp_path / "alone" / "tables" / f"{table}.parquet"))


# -- sanity checks -------------------------------------------------------------------------------


@pytest.fixture
def edge_detector():
    """A method that ignores the model: image gradient magnitude (Adebayo et al.'s edge detector)."""

    @register_attribution("edge_detector_test", description="test only")
    def edge(module, inputs, target):
        gray = inputs.mean(1)
        gx = torch.zeros_like(gray)
        gy = torch.zeros_like(gray)
        gx[:, :, 1:] = gray[:, :, 1:] - gray[:, :, :-1]
        gy[:, 1:] = gray[:, 1:] - gray[:, :-1]
        return (gx**2 + gy**2).sqrt()

    yield "edge_detector_test"
    del ATTRIBUTIONS["edge_detector_test"]


def test_sanity_flags_a_method_that_ignores_the_model(world, classifiers, edge_detector):
    clf = classifiers["resnet"]
    test = world.split("test_eval")
    images = test.images[:4]
    targets = clf.predict(images)
    before = copy.deepcopy(clf.module_.state_dict())
    results, maps = sanity_check(
        clf.module_, images, targets, {edge_detector: {}, "saliency": {}}, threshold=0.5
    )
    assert results[edge_detector]["trustworthy"] is False
    np.testing.assert_allclose(results[edge_detector]["spearman_abs"], 1.0)
    assert results["saliency"]["stages"] == ["classifier", "stage4", "stage3", "stage2", "stage1", "stem"]
    assert results["saliency"]["final_spearman_abs"] < 0.99  # the model's gradients did change
    assert maps["saliency"].shape == (7, 4, SIZE, SIZE)
    for k, v in clf.module_.state_dict().items():  # the trained model is left alone
        assert torch.equal(v, before[k]), k
    for step, rho in enumerate(results["saliency"]["spearman"]):  # every step ranked at once: the pairwise numbers
        assert rho == float(np.mean(rank_correlation(maps["saliency"][0], maps["saliency"][step + 1], absolute=False)))


def test_rank_correlation_and_verdict():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 10, 10))
    np.testing.assert_allclose(rank_correlation(a, a), 1.0)
    np.testing.assert_allclose(rank_correlation(a, -a, absolute=False), -1.0)
    assert abs(np.mean(rank_correlation(a, rng.normal(size=a.shape)))) < 0.3
    assert verdict([0.9, 0.2], 0.5) and not verdict([0.2, 0.8], 0.5) and not verdict([], 0.5)


def test_sanity_cascade_on_vit(classifiers):
    clf = classifiers["vit"]
    images = np.random.default_rng(0).integers(0, 255, (2, SIZE, SIZE, 3), dtype=np.uint8)
    results, _ = sanity_check(clf.module_, images, np.zeros(2, int), {"saliency": {}})
    assert results["saliency"]["stages"][:2] == ["classifier", "layernorm"] and results["saliency"]["stages"][-1] == "embeddings"


# -- surrogates ------------------------------------------------------------------------------------


def test_surrogate_recovers_a_background_rule(world):
    pytest.importorskip("igcore.search")
    from igcore.microscope.surrogate import fit_surrogate

    rng = np.random.default_rng(0)
    k = world.vocabulary.index("snowy_ground")
    scores = rng.uniform(0.0, 1.0, (400, len(world.vocabulary))).astype(np.float32)
    pred = (scores[:, k] > 0.5).astype(np.int64)  # "snow ⇒ wolf"
    s = fit_surrogate("z_baseline", "erm", scores[:300], pred[:300], scores[300:], pred[300:], world.vocabulary, world.classes, device="cpu")
    assert s.fidelity > 0.9
    assert any(r["concept"] == "snowy_ground" and r["class"] == "wolf" for r in s.records)
    assert s.text.startswith("The baseline behaves as if: snowy ground ⇒ wolf")


# -- stage, recompute, CLI ---------------------------------------------------------------------------


TINY = [
    "world.image_size=32", "world.n_train=120", "world.n_val=40", "world.n_test_train=60", "world.n_test_eval=48",
    "world.n_concept_bank=120", "baseline.epochs=1", "device=cpu", "microscope.per_group=2",
    "microscope.params.integrated_gradients.n_steps=4", "microscope.tcav.n_random=2",
    "microscope.tcav.n_concept_images=8", "microscope.tcav.n_inputs=6", "microscope.sanity.n_images=2",
    "microscope.swaps.max_images=12", "microscope.models=[\"erm\"]",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from igcore.pipeline import run_pipeline

    config = load_config(None, [*TINY, "run_id=tiny", "microscope.surrogates=false"])
    return run_pipeline(config, tmp_path_factory.mktemp("runs"), stages=["world", "erm", "microscope"], progress=False)


def test_stage_writes_tables_tensors_and_metrics(tiny_run):
    from igcore.store import load_run_dir

    run = load_run_dir(tiny_run)
    erm = run.metrics["microscope"]["erm"]
    assert set(erm["relevance_on_animal"]) == {"integrated_gradients", "saliency", "gradient_shap", "occlusion", "grad_cam"}
    relevance = pd.read_parquet(run.path / "microscope" / "tables" / "relevance.parquet")
    for method, share in erm["relevance_on_animal"].items():  # the metric is the mean of the per-image shares
        rows = relevance[(relevance["model"] == "erm") & (relevance["method"] == method)]
        assert share == pytest.approx(rows["relevance_mass"].mean()), method
    assert 0.0 < erm["mask_area_share"] < 1.0
    swaps = pd.read_parquet(run.path / "microscope" / "tables" / "swaps.parquet")
    mine = swaps[swaps["model"] == "erm"]
    assert erm["swap_n"] == int(mine["n"].sum()) > 0
    assert erm["swap_flip_rate"] == pytest.approx((mine["flip_rate"] * mine["n"]).sum() / mine["n"].sum())
    assert set(erm["sanity"]) == set(erm["relevance_on_animal"])
    for record in erm["sanity"].values():  # the verdict is the threshold applied to the last cascade stage
        final = record["final_spearman_abs"]
        assert record["trustworthy"] == (None if final is None else final <= record["threshold"])
    assert erm["tcav"] and {"concept", "class", "layer", "score", "p_value", "significant"} <= set(erm["tcav"][0])
    for table in ("relevance", "relevance_summary", "tcav", "swaps", "sanity"):
        assert (run.path / "microscope" / "tables" / f"{table}.parquet").is_file()
    assert (run.path / "microscope" / "tensors" / "swaps.safetensors").is_file()
    assert "microscope" in run.manifest["stages"]


def test_attribution_maps_loads_from_the_run_cache(tiny_run):
    from safetensors.numpy import load_file

    from igcore.microscope import attribution_maps
    from igcore.store import load_run_dir

    sample = load_file(str(tiny_run / "microscope" / "tensors" / "sample.safetensors"))["indices"]
    got = attribution_maps(tiny_run, "erm", "integrated_gradients", sample[:3])
    assert got.computed == 0 and got.maps.shape == (3, SIZE, SIZE)
    with pytest.raises(InputError, match="no model"):
        attribution_maps(load_run_dir(tiny_run), "nope", "saliency", [0])
    with pytest.raises(InputError, match="valid methods"):
        attribution_maps(tiny_run, "erm", "magic", [0])


def test_recompute_keeps_history_reuses_cache_and_updates_metrics(tiny_run):
    from igcore.microscope.recompute import recompute

    before = json.loads((tiny_run / "metrics.json").read_text())
    out = recompute(tiny_run, ['microscope.methods=["saliency","grad_cam"]', "microscope.per_group=3"])
    assert out == tiny_run / "microscope" and (tiny_run / "microscope.v1").is_dir()
    after = json.loads((tiny_run / "metrics.json").read_text())
    assert set(after["microscope"]["erm"]["relevance_on_animal"]) == {"saliency", "grad_cam"}
    assert after["methods"] == before["methods"]  # other keys untouched
    # the old maps came along (hard links): the previous IG entry is still in the new cache
    assert list((out / "attributions" / "erm").glob("integrated_gradients-*/part-*.safetensors"))
    info = json.loads((out / "info.json").read_text())
    assert info["settings"]["per_group"] == 3 and "recomputed" in info
    with pytest.raises(InputError, match="only microscope"):
        recompute(tiny_run, ["seed=3"])


def test_cli_microscope_errors_exit_2(tiny_run, tmp_path, capsys):
    assert main(["microscope", str(tmp_path / "missing")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert main(["microscope", str(tiny_run), "--set", 'microscope.methods=["magic"]']) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "unknown attribution method 'magic'" in err and "\n" not in err
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    manifest = json.loads((tiny_run / "manifest.json").read_text())
    (incomplete / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
    assert main(["microscope", str(incomplete)]) == 2
    assert "not complete" in capsys.readouterr().err


def test_architecture_family_detection(classifiers):
    assert architecture_of(classifiers["resnet"].module_) == "resnet"
    assert architecture_of(classifiers["vit"].module_) == "vit"
    with pytest.raises(InputError):
        architecture_of(torch.nn.Linear(2, 2))


def test_registry_entries_are_complete():
    for name, spec in ATTRIBUTIONS.items():
        assert spec.name == name and spec.architectures and spec.description
        assert dataclasses.is_dataclass(spec)


def test_cache_keys_list_metadata(tmp_path):
    cache = AttributionCache(tmp_path)
    cache.add("erm", "saliency", {"abs": True}, np.array([0]), np.array([1]), np.zeros((1, 2, 2), np.float32))
    (entry,) = cache.keys()
    assert entry["model"] == "erm" and entry["method"] == "saliency" and json.loads(entry["params"]) == {"abs": True}
    assert Path(tmp_path / entry["entry"]).is_dir()


def test_run_microscope_on_a_vit_baseline(world, classifiers, tmp_path):
    from igcore.microscope.recompute import microscope_settings
    from igcore.microscope.runner import MicroscopeInputs, run_microscope

    settings = microscope_settings(
        {},
        [
            "microscope.per_group=1", "microscope.params.integrated_gradients.n_steps=4",
            "microscope.params.layer_integrated_gradients.n_steps=4", "microscope.tcav.n_random=2",
            "microscope.tcav.n_concept_images=6", "microscope.tcav.n_inputs=4", "microscope.sanity.n_images=2",
            "microscope.swaps.max_images=12", 'microscope.models=["erm","ig_student"]', "microscope.surrogates=false",
        ],
    )
    bank, test = world.split("concept_bank"), world.split("test_eval")
    inputs = MicroscopeInputs(world, test, bank.images, bank.concepts, {"erm": classifiers["vit"], "ig_student": classifiers["resnet"]})
    result = run_microscope(inputs, settings, tmp_path / "microscope")
    erm, student = result.per_model["erm"], result.per_model["ig_student"]
    assert "layer_integrated_gradients" in erm["relevance_on_animal"] and "grad_cam" not in erm["relevance_on_animal"]
    assert "grad_cam" in student["relevance_on_animal"] and "layer_integrated_gradients" not in student["relevance_on_animal"]
    assert erm["sanity"]["layer_integrated_gradients"]["stages"][-1] == "embeddings"
    assert {r["layer_module"] for r in erm["tcav"]} == {"model.vit.layers.3", "model.vit.layers.1"}
    assert "sanity" in student and "tcav" not in student  # sanity for every examined model; TCAV for erm only
    assert result.hypotheses == {} and (tmp_path / "microscope" / "info.json").is_file()


def test_occlusion_cost_is_noted_only_when_large():
    from igcore.stages.microscope import occlusion_note

    assert occlusion_note(64, 16, 8) is None  # 7 × 7 = 49 occluded copies
    note = occlusion_note(224, 16, 8)
    assert note and "729 copies of each 224 px image" in note and "56/28 px" in note
    assert occlusion_note(224, 56, 28) is None


def test_the_microscope_finds_the_same_side_by_side_as_one_thing_at_a_time(world, classifiers, tmp_path):
    """``parallel`` > 1 runs the two lanes (TCAV beside the image parts) and every model of a part at once, each in
    its own thread; every number, table and tensor is the one of a run that does one thing at a time."""
    from igcore.microscope.recompute import microscope_settings
    from igcore.microscope.runner import MicroscopeInputs, run_microscope

    settings = microscope_settings({}, [
        "microscope.per_group=1", "microscope.params.integrated_gradients.n_steps=4", "microscope.params.gradient_shap.n_samples=2",
        "microscope.tcav.n_random=2", "microscope.tcav.n_concept_images=6", "microscope.tcav.n_inputs=4", "microscope.tcav.repeats=1",
        "microscope.sanity.n_images=2", "microscope.counterfactuals.attribution_per_group=1", "microscope.counterfactuals.n_steps=2",
        "microscope.surrogates=false",
    ])
    bank, test = world.split("concept_bank"), world.split("test_eval")
    found = {}
    for parallel in (1, 2):
        models = {m: copy.deepcopy(classifiers["resnet"]) for m in settings.models}
        inputs = MicroscopeInputs(world, test, bank.images, bank.concepts, models, parallel=parallel)
        found[parallel] = run_microscope(inputs, settings, tmp_path / str(parallel))
    assert len(settings.models) == 3 and found[2].per_model == found[1].per_model and found[1].per_model["erm"]["tcav"]
    def written(run: str) -> list[Path]:  # the attribution cache's parts are named at random: compared below
        return sorted(p.relative_to(tmp_path / run) for p in (tmp_path / run).rglob("*")
                      if p.suffix in (".parquet", ".safetensors") and "attributions" not in p.parts)

    assert written("1") and written("1") == written("2")
    for path in written("1"):
        assert (tmp_path / "1" / path).read_bytes() == (tmp_path / "2" / path).read_bytes(), path
    entries = sorted(p.relative_to(tmp_path / "1") for p in (tmp_path / "1" / "attributions").glob("*/*"))
    assert entries and entries == sorted(p.relative_to(tmp_path / "2") for p in (tmp_path / "2" / "attributions").glob("*/*"))
    for entry in entries:
        maps = [{i: (t, m.tolist()) for part in (tmp_path / run / entry).glob("part-*.safetensors")
                 for i, t, m in zip(*(load_file(str(part))[k] for k in ("indices", "targets", "maps")), strict=True)}
                for run in "12"]
        assert maps[0] and maps[0] == maps[1], entry
