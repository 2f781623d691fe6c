"""Every world that needs no files meets the split contract; the snowwolf world: determinism, split statistics,
annotations, counterfactuals, argument checks."""

from __future__ import annotations

import numpy as np
import pytest

from igcore.errors import InputError
from igcore.worlds import SPLITS, WORLDS, make_world
from igcore.worlds import snowwolf as sw
from igcore.worlds.preview import contact_sheet, counterfactual_strip
from igcore.worlds.snowwolf.render import Renderer
from igcore.worlds.snowwolf.sampling import MIN_SCALE, sample_latents

SMALL = {"n_train": 96, "n_val": 32, "n_test_train": 48, "n_test_eval": 60, "n_concept_bank": 48}


@pytest.fixture(scope="module")
def world() -> sw.SnowWolfWorld:
    return make_world("snowwolf", seed=3, **SMALL)


@pytest.fixture(scope="module")
def stats_world() -> sw.SnowWolfWorld:
    """Larger splits for statistical checks (rho, decorrelation, accuracy of the true concepts)."""
    return make_world(
        "snowwolf", seed=5, rho=0.8, n_train=2000, n_val=8, n_test_train=8, n_test_eval=1500, n_concept_bank=1500
    )


#: Registered worlds that can be built from their keys alone (loaders of people's files are tested on fixtures).
PROCEDURAL = [name for name, spec in WORLDS.items() if not any(f.is_required() for f in spec.params.model_fields.values())]


@pytest.mark.parametrize("name", PROCEDURAL)
def test_every_world_without_files_meets_the_split_contract(name: str) -> None:
    """What the pipeline relies on from any world (igcore/worlds/base.py), checked on a small build of each."""
    keys = {k: v for k, v in SMALL.items() if k in WORLDS[name].params.model_fields}
    world, again = make_world(name, seed=1, **keys), make_world(name, seed=1, **keys)
    n_classes, n_bg, size = len(world.classes), len(world.backgrounds), world.image_size
    assert world.name == name and n_classes >= 2 and n_bg >= 1 and len(world.group_names()) == n_classes * n_bg
    for split in SPLITS:
        s = world.split(split)
        n = len(s)
        assert n > 0 and s.images.shape == (n, size, size, 3) and s.images.dtype == np.uint8
        assert s.concepts.shape == (n, len(world.vocabulary)) and s.concepts.dtype == np.uint8
        assert s.background.min() >= 0 and s.background.max() < n_bg
        assert s.masks is None or (s.masks.shape == (n, size, size) and s.masks.dtype == bool)
        labelled = s.labels >= 0
        assert split == "concept_bank" or labelled.all()
        assert s.labels.max() < n_classes
        assert np.array_equal(s.groups[labelled], s.labels[labelled] * n_bg + s.background[labelled])
        assert np.array_equal(s.images, again.split(split).images)  # deterministic by seed
    if world.can_render:
        test = world.split("test_eval")
        other = world.render_on_background(test, (test.background + 1) % n_bg)
        assert other.images.shape == test.images.shape and np.array_equal(other.labels, test.labels)


def test_registered() -> None:
    assert "snowwolf" in WORLDS
    w = make_world("snowwolf", **SMALL)
    assert w.classes == ["husky", "wolf"] and w.backgrounds == ["snow", "grass", "forest"]
    assert len(w.vocabulary) == 19 and w.image_size == 64
    assert w.group_names() == [f"{c}/{b}" for c in w.classes for b in w.backgrounds]


def test_deterministic_by_seed(world: sw.SnowWolfWorld) -> None:
    again = make_world("snowwolf", seed=3, **SMALL)
    for name in SPLITS:
        a, b = world.split(name), again.split(name)
        for field in ("images", "labels", "concepts", "background", "masks", "groups"):
            assert np.array_equal(getattr(a, field), getattr(b, field)), (name, field)
        assert a.latents.keys() == b.latents.keys()
        assert all(np.array_equal(a.latents[k], b.latents[k]) for k in a.latents)
    other = make_world("snowwolf", seed=4, **SMALL)
    assert not np.array_equal(world.split("train").images, other.split("train").images)
    # splits are independent draws, not copies of each other
    assert not np.array_equal(world.split("train").images[:32], world.split("val").images[:32])


@pytest.mark.parametrize("name", SPLITS)
def test_shapes_and_dtypes(world: sw.SnowWolfWorld, name: str) -> None:
    s = world.split(name)
    n = SMALL[{"train": "n_train", "val": "n_val"}.get(name, f"n_{name}")]
    assert s.name == name and len(s) == n
    assert s.images.shape == (n, 64, 64, 3) and s.images.dtype == np.uint8
    assert s.masks.shape == (n, 64, 64) and s.masks.dtype == bool
    assert s.concepts.shape == (n, 19) and s.concepts.dtype == np.uint8
    for arr in (s.labels, s.background, s.groups):
        assert arr.shape == (n,) and arr.dtype == np.int64
    area = s.masks.mean(axis=(1, 2))
    assert area.min() > 0.03 and area.max() < 0.3  # the animal is there, the background dominates
    assert world.split(name) is s  # cached


def test_concepts_one_hot(world: sw.SnowWolfWorld) -> None:
    ids = world.vocabulary.ids
    for name in SPLITS:
        s = world.split(name)
        groups = [[w, h] for _, w, h in sw.ATTRIBUTES]
        groups += [[c for _, c in sw.BACKGROUNDS], list(sw.LIGHTING), list(sw.POSITION)]
        for group in groups:
            assert np.all(s.concepts[:, [ids.index(c) for c in group]].sum(1) == 1), group
        bg_cols = [ids.index(c) for _, c in sw.BACKGROUNDS]
        assert np.array_equal(s.concepts[:, bg_cols].argmax(1), s.background)
        # the position annotation matches where the animal actually is
        x = (s.masks.sum(1) * np.arange(64)).sum(1) / s.masks.sum((1, 2))
        assert np.array_equal(x > 32, s.concepts[:, ids.index("animal_right")] == 1)


def test_train_background_follows_rho(stats_world: sw.SnowWolfWorld) -> None:
    s = stats_world.split("train")
    typical = stats_world.typical_background[s.labels] == s.background
    assert abs(typical.mean() - 0.8) < 0.04
    assert np.array_equal(s.groups, s.labels * 3 + s.background)
    for c in range(2):  # atypical backgrounds are uniform over the other two
        counts = np.bincount(s.background[(s.labels == c) & ~typical], minlength=3)
        others = np.delete(counts, stats_world.typical_background[c])
        assert abs(others[0] - others[1]) < 0.3 * others.sum()


@pytest.mark.parametrize("name", ["test_train", "test_eval"])
def test_test_splits_have_balanced_groups(world: sw.SnowWolfWorld, name: str) -> None:
    s = world.split(name)
    counts = np.bincount(s.groups, minlength=6)
    assert counts.max() - counts.min() <= 1


def test_concept_bank_is_decorrelated(stats_world: sw.SnowWolfWorld) -> None:
    s = stats_world.split("concept_bank")
    assert np.all(s.labels == -1) and np.all(s.groups == -1)
    kinds = stats_world.vocabulary.kinds()
    core = s.concepts[:, kinds == "core"].astype(float)
    context = s.concepts[:, kinds != "core"].astype(float)
    assert np.all(np.abs(core.mean(0) - 0.5) < 0.06)
    corr = np.corrcoef(np.hstack([core[:, ::2], context]).T)[:6]  # one column per attribute pair
    np.fill_diagonal(corr[:, :6], 0.0)
    assert np.nanmax(np.abs(corr)) < 0.12


def test_true_core_concepts_decide_the_class(stats_world: sw.SnowWolfWorld) -> None:
    s = stats_world.split("test_eval")
    ids = stats_world.vocabulary.ids
    wolfish = s.concepts[:, [ids.index(w) for _, w, _ in sw.ATTRIBUTES]].astype(int)
    votes = wolfish.sum(1)
    correct = np.where(votes == 3, 0.5, (votes > 3) == (s.labels == 1))
    assert correct.mean() >= 0.98  # jointly near-certain
    single = (wolfish == (s.labels == 1)[:, None]).mean(0)
    assert np.all(np.abs(single - 0.9) < 0.04)  # but no single concept decides


def test_counterfactual_keeps_the_animal(world: sw.SnowWolfWorld) -> None:
    s = world.split("test_eval")
    new_bg = (s.background + 1) % 3
    cf = world.render_on_background(s, new_bg)
    assert np.array_equal(cf.masks, s.masks)
    assert np.array_equal(cf.images[s.masks], s.images[s.masks])
    outside = ~s.masks
    diff = np.abs(cf.images.astype(int) - s.images.astype(int)).sum(-1)
    assert (diff[outside] > 30).mean() > 0.5  # the background really changed
    assert np.array_equal(cf.background, new_bg) and np.array_equal(cf.labels, s.labels)
    assert np.array_equal(cf.groups, s.labels * 3 + new_bg)
    core = world.vocabulary.kinds() == "core"
    assert np.array_equal(cf.concepts[:, core], s.concepts[:, core])
    same = world.render_on_background(s, s.background)
    assert np.array_equal(same.images, s.images)  # rendering is a pure function of the latents
    with pytest.raises(InputError):
        world.render_on_background(s, np.full(len(s), 3))
    with pytest.raises(InputError):
        world.render_on_background(s, new_bg[:-1])


def test_windowed_rendering_matches_full_canvas(monkeypatch: pytest.MonkeyPatch) -> None:
    """Body parts are evaluated on canvas windows only; no window may clip a part, at any pose extreme."""
    w = make_world("snowwolf", animal_scale=0.6, **SMALL)
    renderer = w.renderer
    lat = sample_latents(
        "test_eval", w.sizes["test_eval"], np.random.default_rng(0), n_classes=w.n_classes, rho=w.rho, feature_p=w.feature_p,
        codewords=w.codewords, typical_background=w.typical_background, image_size=w.image_size,
        canvas=renderer.canvas, max_scale=renderer.max_scale,
    )
    n, rng = len(lat["labels"]), np.random.default_rng(1)
    lat["pose"] = (rng.choice([-1, 1], (n, 4)) * np.array([0.05, 0.08, 0.12, 0.1])).astype(np.float32)
    lat["scale"] = (renderer.max_scale * rng.choice([MIN_SCALE, 1.0], n)).astype(np.float32)
    lat["subpixel"] = rng.choice([0.0, 0.999], (n, 2)).astype(np.float32)
    out = [(np.empty((n, 64, 64, 3), np.uint8), np.empty((n, 64, 64), bool)) for _ in range(2)]
    renderer.draw(lat, *out[0])
    monkeypatch.setattr(Renderer, "window", lambda self, u, v: (slice(None), slice(None)))
    renderer.draw(lat, *out[1])
    assert np.array_equal(out[0][0], out[1][0]) and np.array_equal(out[0][1], out[1][1])


def test_more_classes() -> None:
    w = make_world("snowwolf", n_classes=3, **SMALL)
    assert w.classes == ["husky", "wolf", "fox"] and len(w.group_names()) == 9
    assert len({tuple(c) for c in w.codewords}) == 3
    s = w.split("test_eval")
    assert set(np.unique(s.labels)) == {0, 1, 2}
    counts = np.bincount(s.groups, minlength=9)
    assert counts.max() - counts.min() <= 1
    assert w.split("train").labels.max() == 2
    assert len(make_world("snowwolf", n_classes=6, **SMALL).classes) == 6


def test_other_image_sizes() -> None:
    for size in (32, 96):
        s = make_world("snowwolf", image_size=size, n_val=4, **{k: v for k, v in SMALL.items() if k != "n_val"})
        assert s.split("val").images.shape == (4, size, size, 3)


@pytest.mark.parametrize(
    "params",
    [
        {"rho": 0.4},
        {"rho": 1.01},
        {"rho": "high"},
        {"image_size": 16},
        {"image_size": 64.0},
        {"n_classes": 1},
        {"n_classes": 7},
        {"n_train": 0},
        {"n_val": -5},
        {"n_test_train": 1.5},
        {"n_test_eval": None},
        {"n_concept_bank": True},
        {"feature_p": 0.5},
        {"feature_p": 1.1},
        {"seed": -1},
        {"seed": "0"},
        {"background_salience": 1.5},
        {"animal_scale": 2.0},
        {"noise_std": -0.1},
        {"colour": "red"},
    ],
)
def test_bad_arguments_raise_input_error(params: dict[str, object]) -> None:
    """Each bad value is refused with a line that names its key; a key the world does not have, as unknown (only
    ``colour``: a bound of a real parameter must not pass as an unknown key)."""
    key = next(iter(params))
    match = rf"unknown config key 'world\.{key}'" if key == "colour" else rf"^(world\.)?{key}\b"
    with pytest.raises(InputError, match=match) as e:
        make_world("snowwolf", **params)
    assert "\n" not in str(e.value)


def test_unknown_split(world: sw.SnowWolfWorld) -> None:
    with pytest.raises(InputError, match="unknown split"):
        world.split("test")


def test_preview_sheets(world: sw.SnowWolfWorld, tmp_path) -> None:
    from PIL import Image

    sheet = contact_sheet(world, tmp_path / "sheet.png", per_split=4)
    strip = counterfactual_strip(world, tmp_path / "strip.png", n=3)
    for path in (sheet, strip):
        with Image.open(path) as img:
            assert img.size[0] > 3 * 128 and img.size[1] > 128
