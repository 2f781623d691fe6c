"""Counterfactual evidence: inpainted swaps, log-odds effects with intervals, the attribution of a double swap."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from igcore.baseline import ImageClassifier
from igcore.microscope.counterfactuals import (
    effects,
    log_odds,
    make_counterfactuals,
    mean_ci,
    mean_cis,
    paste,
    remove_objects,
    swap_attribution,
)
from igcore.worlds import make_world
from igcore.worlds.base import Split

SMALL = {"n_train": 40, "n_val": 20, "n_test_train": 20, "n_test_eval": 60, "n_concept_bank": 20, "image_size": 32}


@pytest.fixture(scope="module")
def world():
    return make_world("snowwolf", seed=1, **SMALL)


OBJECTS = ((0, 0, 255), (255, 0, 0))  # class 0 blue, class 1 red
PLACES = ((128, 128, 128), (0, 255, 0))  # place 0 grey, place 1 green


def colour_share(images: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return (np.abs(images.astype(int) - colour).max(-1) < 30).mean((1, 2))


class ColourReader:
    """A stand-in classifier that reads only the object's colour, or only the background's."""

    def __init__(self, reads: str) -> None:
        self.reads = reads

    def logits(self, images: np.ndarray) -> np.ndarray:
        pair = OBJECTS if self.reads == "object" else PLACES
        score = 20 * (colour_share(images, pair[1]) - colour_share(images, pair[0]))
        return np.stack([-score, score], 1)

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.logits(images).argmax(1)


def colour_split(n: int = 64, size: int = 32, seed: int = 0) -> tuple[Split, SimpleNamespace]:
    """Squares of a class colour on a place colour, every (class, place) group alike."""
    rng = np.random.default_rng(seed)
    labels, places = np.arange(n) % 2, (np.arange(n) // 2) % 2
    images = np.empty((n, size, size, 3), np.uint8)
    masks = np.zeros((n, size, size), bool)
    for i in range(n):
        images[i] = PLACES[places[i]]
        top, left = rng.integers(4, size // 2, 2)
        masks[i, top : top + size // 3, left : left + size // 3] = True
        images[i][masks[i]] = OBJECTS[labels[i]]
    split = Split("test_eval", images, labels, np.zeros((n, 1), np.uint8), places, masks, labels * 2 + places)
    world = SimpleNamespace(can_render=False, backgrounds=["grey", "green"],
                            group_names=lambda: ["0/grey", "0/green", "1/grey", "1/green"])
    return split, world


def test_log_odds_matches_the_definition():
    z = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    assert np.allclose(log_odds(z), np.log(p / (1 - p)))
    assert np.allclose(log_odds(np.array([[1.0, -2.0]])), [[3.0, -3.0]])


def test_mean_ci_covers_the_mean_and_narrows_with_more_data():
    rng = np.random.default_rng(0)
    small, large = mean_ci(rng.normal(1, 1, 30)), mean_ci(rng.normal(1, 1, 3000))
    for ci in (small, large):
        assert ci["ci_low"] < ci["mean"] < ci["ci_high"]
    assert (large["ci_high"] - large["ci_low"]) < (small["ci_high"] - small["ci_low"]) / 5
    assert 0.9 < large["ci_low"] and large["ci_high"] < 1.1
    assert mean_ci(np.array([2.0]))["ci_low"] == 2.0


@pytest.mark.parametrize("n", [1, 2, 40])
@pytest.mark.parametrize("batch_bytes", [64 * 2**20, 8 * 40 * 3 * 7])  # one batch; several (of 7 resamples at n = 40)
def test_mean_cis_is_mean_ci_of_every_row(monkeypatch, n, batch_bytes):
    import igcore.microscope.counterfactuals as cf

    monkeypatch.setattr(cf, "BOOTSTRAP_BYTES", batch_bytes)
    rows = np.random.default_rng(3).normal(0.5, 2.0, (4, n))
    rows[1] = 1.25  # a constant row: no interval to draw
    together = mean_cis(rows, seed=5, n_resamples=300)
    alone = [mean_ci(r, seed=5, n_resamples=300) for r in rows]
    assert [t["n"] for t in together] == [a["n"] for a in alone] == [n] * 4
    for t, a in zip(together, alone, strict=True):
        for key in ("mean", "ci_low", "ci_high"):
            assert t[key] == pytest.approx(a[key], rel=1e-12, abs=1e-12)
    if n > 2:  # the rows differ, so their intervals do: the rows were not mixed up
        assert len({t["ci_low"] for t in together}) == 4
    if n == 1:  # one image per row: no interval to draw, the value itself (mean_cis leaves such rows to mean_ci)
        assert all(t["ci_low"] == t["mean"] == t["ci_high"] == r[0] for t, r in zip(together, rows, strict=True))
    assert mean_cis(np.zeros((0, n))) == []


def test_inpainting_changes_only_the_object_region():
    img = np.zeros((1, 32, 32, 3), np.uint8)
    img[:] = (40, 160, 40)
    mask = np.zeros((1, 32, 32), bool)
    mask[0, 10:20, 12:22] = True
    img[mask] = (250, 250, 250)
    out = remove_objects(img, mask)
    far = np.ones((32, 32), bool)
    far[6:24, 8:26] = False  # beyond the dilated mask
    assert np.array_equal(out[0][far], img[0][far])
    assert np.abs(out[0][mask[0]].astype(int) - (40, 160, 40)).max() < 40  # the white object is gone
    pasted = paste(img, mask, out)
    assert np.array_equal(pasted[mask], img[mask]) and np.array_equal(pasted[~mask], out[~mask])


def test_counterfactuals_of_a_rendered_world(world):
    test = world.split("test_eval")
    rows = np.arange(24)
    cfs = make_counterfactuals(world, test, rows, seed=0)
    assert set(cfs) == {"background", "object", "double"}
    bg = cfs["background"]
    assert len(bg.index) == len(rows) * (len(world.backgrounds) - 1) and (bg.source == -1).all()
    obj, double = cfs["object"], cfs["double"]
    assert (test.labels[obj.source] != test.labels[obj.index]).all()  # the pasted object is of the other class
    assert (test.background[double.background_source] != test.background[double.index]).all()
    inside = test.masks[obj.source]
    assert np.array_equal(obj.images[inside], test.images[obj.source][inside])


def test_effects_tell_a_background_reader_from_an_object_reader():
    test, world = colour_split()
    cfs = make_counterfactuals(world, test, np.arange(len(test)), seed=0)
    assert set(cfs) == {"background", "object", "double"} and "inpainted" in cfs["background"].how
    names = world.group_names()
    background = effects(ColourReader("background"), test, cfs, names)
    animal = effects(ColourReader("object"), test, cfs, names)
    for found in (background, animal):
        assert set(found) == {"background", "object"}
        for e in found.values():
            o = e["overall"]
            assert o["ci_low"] <= o["mean"] <= o["ci_high"] and o["n"] == len(test)
            assert set(e["by_group"]) == set(names)
    # each reader loses its answer's log-odds under the swap of what it reads, and barely under the other
    assert background["background"]["overall"]["ci_high"] < -2 and abs(background["object"]["overall"]["mean"]) < 0.5
    assert animal["object"]["overall"]["ci_high"] < -2 and abs(animal["background"]["overall"]["mean"]) < 0.5
    assert background["background"]["flip_rate"] > 0.9 and animal["background"]["flip_rate"] < 0.1


def test_swap_attribution_is_complete(world):
    test = world.split("test_eval")
    clf = ImageClassifier(num_labels=2, image_size=32, epochs=1, batch_size=16, progress=False, device="cpu")
    train = world.split("train")
    clf.fit(train.images, train.labels)
    cfs = make_counterfactuals(world, test, np.arange(12), seed=0)
    out = swap_attribution(clf, test, cfs["double"], np.arange(6), n_steps=24, group_names=world.group_names())
    # the background and object masks split every image: the two parts are the whole map (the test of the parts
    # against the model's own change is the completeness check below)
    parts = out["background_log_odds"]["mean"] + out["object_log_odds"]["mean"]
    assert parts == pytest.approx(out["total_log_odds"]["mean"], abs=1e-6)
    # the parts per group, in log-odds: their image-weighted means give the overall parts
    for part in ("background_log_odds", "object_log_odds"):
        by_group = out[f"{part}_by_group"]
        assert sum(s["n"] for s in by_group.values()) == out[part]["n"] == 6
        weighted = sum(s["mean"] * s["n"] for s in by_group.values()) / 6
        assert weighted == pytest.approx(out[part]["mean"], abs=1e-9)
    # completeness: the attributions add up to the change in log-odds between the double swap and the original
    x, x0 = test.images[cfs["double"].index[:6]], cfs["double"].images[:6]
    answer = clf.predict(x)
    change = log_odds(clf.logits(x))[np.arange(6), answer] - log_odds(clf.logits(x0))[np.arange(6), answer]
    assert out["total_log_odds"]["mean"] == pytest.approx(float(change.mean()), abs=0.05 + 0.05 * abs(change.mean()))
    assert out["completeness_gap"] < 0.1
