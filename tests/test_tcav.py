"""TCAV computed once per layer and model (igcore.microscope.tcav) against main's captum-TCAV path
(testkit/tcav_reference.py): the same statistics, controls and calls up to float noise, each bank image
through the model once, and CAVs that are the ridge classifiers they claim to be."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from igcore.baseline import ImageClassifier, to_pixels
from igcore.microscope.tcav import draw_sets, fit_cav, layer_kernels, merge_repeats, resolve_layer, tcav_repeated
from igcore.worlds import make_world
from testkit import tcav_reference

torch.set_num_threads(1)
SIZE = 32
LAYERS = ["penultimate", "middle"]


@pytest.fixture(scope="module")
def world():
    return make_world("snowwolf", seed=0, image_size=SIZE, n_train=400, n_val=40, n_test_train=40, n_test_eval=120, n_concept_bank=300)


@pytest.fixture(scope="module")
def model(world):
    """A tiny ResNet trained long enough on the shortcut world to be sensitive to some concepts."""
    train = world.split("train")
    clf = ImageClassifier("resnet-tiny", 2, image_size=SIZE, epochs=4, batch_size=64, device="cpu", progress=False, seed=0)
    return clf.fit(train.images, train.labels).module_.eval()


@pytest.fixture(scope="module")
def inputs(world):
    bank, test = world.split("concept_bank"), world.split("test_eval")
    by_class = {c: test.images[test.labels == i][:20] for i, c in enumerate(world.classes)}
    return bank, by_class


# Loose significance (no correction, alpha 0.2) so that the comparison has significant, unstable and
# non-significant calls to agree on, controls included.
SETTINGS = {"n_random": 4, "n_concept_images": 12, "n_controls": 3, "repeats": 2, "seed": 3, "alpha": 0.2, "correction": "none"}


def test_same_statistics_and_calls_as_mains_captum_path(world, model, inputs):
    bank, by_class = inputs
    args = (model, bank.images, bank.concepts, world.vocabulary.ids, by_class, LAYERS)
    old_records, old_controls = tcav_reference.tcav_repeated(*args, classes=world.classes, **SETTINGS)
    new_records, new_controls = tcav_repeated(*args, classes=world.classes, **SETTINGS)

    key = ("concept", "class", "layer")
    assert [tuple(r[k] for k in key) for r in new_records] == [tuple(r[k] for k in key) for r in old_records]
    calls = [(r["significant"], r["unstable"], r["significant_repeats"]) for r in old_records]
    assert {c[:2] for c in calls} == {(True, False), (False, True), (False, False)}  # the case tests every kind of call
    assert [(r["significant"], r["unstable"], r["significant_repeats"]) for r in new_records] == calls
    assert new_controls == old_controls
    for old, new in zip(old_records, new_records, strict=True):
        # sign-count scores are multiples of 1/inputs; captum kept them in float32
        for field in ("score", "score_min", "score_max", "random_score", "score_std", "cav_acc"):
            assert new[field] == pytest.approx(old[field], abs=1e-6), (old["concept"], old["class"], old["layer"], field)
        for field in ("p_values", "p_adjusted_values"):
            np.testing.assert_allclose(new[field], old[field], rtol=1e-5, atol=1e-9, err_msg=f"{old['concept']} {field}")
        assert (new["n_images"], new["n_random"], new["layer_module"]) == (old["n_images"], old["n_random"], old["layer_module"])


def test_every_bank_image_goes_through_the_model_once(world, model, inputs):
    """Activations are computed once per layer and model for every CAV of every repeat."""
    bank, by_class = inputs
    seen: list[int] = []
    handle = model.register_forward_hook(lambda _m, args, _out: seen.append(len(args[0])))
    try:
        tcav_repeated(model, bank.images, bank.concepts, world.vocabulary.ids, by_class, LAYERS, classes=world.classes,
                      **{**SETTINGS, "repeats": 3})
    finally:
        handle.remove()
    draws = [draw_sets(bank.concepts, world.vocabulary.ids, n_random=4, n_concept_images=12, n_controls=3, seed=3 + r) for r in range(3)]
    used = np.unique(np.concatenate([d.rows() for d in draws]))
    per_set = sum(len(s) for d in draws for s in (*d.concepts, *d.randoms))
    tested = sum(len(v) for v in by_class.values())
    assert sum(seen) == len(used) + tested  # bank images once each, tested inputs once (one pass for both layers)
    assert len(used) < per_set  # what a pass per set and repeat would have cost


def test_cav_is_the_ridge_classifier_of_the_activations():
    """The dual solution from the Gram matrix equals scikit-learn's primal ridge regression on the ±1 labels."""
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    acts = rng.normal(size=(30, 50)) + np.r_[np.ones((14, 1)), -np.ones((16, 1))] * rng.normal(size=50) * 0.3
    gram = acts @ acts.T
    positive, negative = np.arange(0, 14), np.arange(14, 30)
    order = rng.permutation(30)
    train, beta, acc = fit_cav(gram, positive, negative, order, ridge=0.1)
    direction = beta @ acts[train]

    x = acts[train]
    label = np.r_[np.ones(14), -np.ones(16)][order[int(0.33 * 30):]]
    centred = x - x.mean(0)
    lam = 0.1 * (centred**2).sum() / len(x)
    ridge = Ridge(alpha=lam, fit_intercept=True).fit(x, label)
    np.testing.assert_allclose(direction, ridge.coef_, rtol=1e-8, atol=1e-10)
    test = order[: int(0.33 * 30)]
    expected = ((ridge.predict(acts[test]) > 0) == (np.r_[np.ones(14), -np.ones(16)][test] > 0)).mean()
    assert acc == pytest.approx(expected)


def test_kernels_are_inner_products_of_captum_layer_activations(world, model, inputs):
    from captum.attr import LayerActivation, LayerGradientXActivation

    bank, by_class = inputs
    path = resolve_layer(model, "penultimate")
    rows = np.array([3, 7, 11, 40])
    kernel = layer_kernels(model, [path], bank.images, rows, by_class, world.classes, batch_size=3)[path]
    layer = model.get_submodule(path)
    acts = LayerActivation(model, layer).attribute(to_pixels(bank.images[rows], "cpu")).flatten(1).double()
    np.testing.assert_allclose(kernel.gram, (acts @ acts.T).numpy(), rtol=1e-5)
    wolf = world.classes[1]
    grads = LayerGradientXActivation(model, layer, multiply_by_inputs=False).attribute(to_pixels(by_class[wolf], "cpu"), target=1)
    np.testing.assert_allclose(kernel.grad_dot[wolf], (grads.flatten(1).double() @ acts.T).numpy(), rtol=1e-4, atol=1e-9)


def test_merge_judges_controls_like_concepts():
    """A control (or concept) is significant only when it is so in every repeat; the controls' rate is the
    procedure's, with the rate of single repeats kept beside it."""
    # repeat r: concept c significant in repeats 0-2; control 0 in repeat 1 only; control 1 in all three.
    plan = {("c", False): (True, True, True), ("random-control-0", True): (False, True, False),
            ("random-control-1", True): (True, True, True)}
    runs = [[{"concept": name, "class": "a", "layer": "penultimate", "score": 0.5 + 0.1 * r, "random_score": 0.5,
              "p_value": 0.01 if sig[r] else 0.5, "p_adjusted": 0.02 if sig[r] else 0.6, "cav_acc": 0.9,
              "significant": sig[r], "control": control} for (name, control), sig in plan.items()] for r in range(3)]
    records, controls = merge_repeats(runs)
    assert [r["concept"] for r in records] == ["c"]
    assert records[0]["significant"] and records[0]["significant_repeats"] == 3
    assert records[0]["score"] == pytest.approx(0.6) and records[0]["score_spread"] == pytest.approx(0.2)
    assert controls["n_tests"] == 2 and controls["n_significant"] == 1 and controls["n_unstable"] == 1
    assert controls["not_significant_rate"] == pytest.approx(0.5)
    assert controls["single_repeat_tests"] == 6 and controls["single_repeat_significant"] == 4
    assert controls["single_repeat_not_significant_rate"] == pytest.approx(2 / 6)


def test_activations_too_large_for_memory_go_through_a_memory_map(world, model, inputs, monkeypatch):
    from igcore.microscope import tcav

    bank, by_class = inputs
    paths = [resolve_layer(model, "penultimate"), resolve_layer(model, "middle")]
    rows = np.arange(0, 60, 3)
    in_memory = layer_kernels(model, paths, bank.images, rows, by_class, world.classes, batch_size=7)
    monkeypatch.setattr(tcav, "MAX_ACTIVATION_BYTES", 0)
    mapped = layer_kernels(model, paths, bank.images, rows, by_class, world.classes, batch_size=7)
    for path in paths:
        np.testing.assert_array_equal(mapped[path].gram, in_memory[path].gram)
        for c in world.classes:
            np.testing.assert_array_equal(mapped[path].grad_dot[c], in_memory[path].grad_dot[c])
