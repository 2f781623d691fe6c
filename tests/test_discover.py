"""Concept discovery (igcore/discover/): factorisation and the choice of K, presence and maps, calibration,
the ablation hook and importance, names (CSV and store), hidden concepts, labels-only data end to end."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from igcore.baseline import PixelClassifier, build_model
from igcore.cli import main
from igcore.discover.calibrate import PresenceCalibration
from igcore.discover.factorize import ConceptFactorization, presence_scores, select_k
from igcore.discover.importance import (
    ablation_effects,
    fit_patterns,
    remove_component,
    remove_components,
    resample_maps,
)
from igcore.discover.layers import capture, resolve_site, variants
from igcore.discover.names import (
    alike,
    apply_names,
    concept_id,
    discovered_concepts,
    hypothesis_language,
    read_names_csv,
    unnamed_text,
)
from igcore.discover.params import DiscoverParams
from igcore.discover.store import NameStore
from igcore.errors import InputError
from igcore.worlds import make_world
from igcore.worlds.base import Concept, Vocabulary


def _planted(rank: int, n: int = 300, channels: int = 24, noise: float = 0.01, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Grids (n, 2, 2, C) = U W + noise with ``rank`` sparse non-negative components W (rows returned)."""
    rng = np.random.default_rng(seed)
    w = np.zeros((rank, channels))
    for k in range(rank):  # disjoint channel blocks: distinct, identifiable components
        w[k, k * (channels // rank) : (k + 1) * (channels // rank)] = rng.uniform(0.5, 1.5, channels // rank)
    u = rng.exponential(1.0, (n * 4, rank)) * (rng.random((n * 4, rank)) < 0.5)
    x = u @ w + noise * rng.random((n * 4, channels))
    return x.reshape(n, 2, 2, channels).astype(np.float32), w


# ----------------------------------------------------------------------------- factorisation and K


def test_k_is_the_first_candidate_that_explains_the_energy_and_components_are_recovered():
    grids, w = _planted(rank=4)
    selection, _ = select_k(grids.reshape(-1, grids.shape[-1]), [2, 3, 4, 6, 8], energy=0.99)
    assert selection.chosen == 4 and selection.candidates == [2, 3, 4]  # no candidate beyond the chosen one is fitted
    assert selection.explained[-1] >= 0.99 > selection.explained[-2]
    f = ConceptFactorization(k_candidates=(2, 3, 4, 6, 8), energy=0.99).fit(grids)
    assert f.k_ == 4 and f.selection_.chosen == 4 and f.n_positions_ == len(grids) * 4
    cos = (f.components_ / np.linalg.norm(f.components_, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=1, keepdims=True)).T
    assert np.all(cos.max(axis=1) > 0.99)  # every planted component found
    never, _ = select_k(grids.reshape(-1, grids.shape[-1]), [2, 3], energy=0.99)
    assert never.chosen == 3 and "largest" in never.rule


def _small_object(n: int = 400, channels: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Grids (n, 2, 2, C) of three background components on every position (noisy) and an object component on
    one position in twenty, holding about 5% of the energy; returns the object's direction too."""
    rng = np.random.default_rng(seed)
    w = np.zeros((4, channels))
    for k in range(4):
        w[k, k * (channels // 4) : (k + 1) * (channels // 4)] = rng.uniform(0.5, 1.5, channels // 4)
    u = np.zeros((n * 4, 4))
    u[:, :3] = rng.uniform(0, 2.0, (n * 4, 3)) * (rng.random((n * 4, 3)) < 0.5)
    on = rng.random(n * 4) < 0.05
    u[on, 3] = rng.uniform(1.5, 2.0, on.sum())
    x = (u @ w) * rng.uniform(0.6, 1.4, (n * 4, channels))
    return x.reshape(n, 2, 2, channels).astype(np.float32), w[3]


def test_the_default_energy_keeps_a_small_object_apart_from_the_background():
    """Why discover.energy defaults to 0.95: an object holding ~5% of the energy gets its own component at the
    default, while 0.9 stops before it and folds it into the background components."""
    grids, obj = _small_object()
    x = grids.reshape(-1, grids.shape[-1]).astype(np.float64)
    share = float((x[:, 18:] ** 2).sum() / (x**2).sum())
    assert 0.04 < share < 0.07

    def best_cos(f: ConceptFactorization) -> float:
        return float(((f.components_ / np.linalg.norm(f.components_, axis=1, keepdims=True)) @ (obj / np.linalg.norm(obj))).max())

    candidates = (2, 3, 4, 6, 8)
    default = ConceptFactorization(k_candidates=candidates).fit(grids)
    assert default.energy == DiscoverParams().energy == 0.95
    assert default.k_ == 4 and best_cos(default) > 0.99
    coarse = ConceptFactorization(k_candidates=candidates, energy=0.9).fit(grids)
    assert coarse.k_ == 3 and best_cos(coarse) < 0.5


def test_presence_and_maps_have_the_documented_shapes():
    grids, _ = _planted(rank=3, n=40)
    f = ConceptFactorization(k=3).fit(grids)
    maps = f.transform(grids[:7])
    assert maps.shape == (7, 2, 2, 3) and (maps >= 0).all()
    scores = presence_scores(maps)
    assert scores.shape == (7, 3) and np.allclose(scores, maps.max(axis=(1, 2)))
    assert f.selection_ is None  # K given: nothing selected
    with pytest.raises(ValueError, match="non-negative"):
        ConceptFactorization(k=2).fit(-grids)


def test_calibration_says_present_for_the_upper_population_and_is_monotone():
    rng = np.random.default_rng(1)
    absent, present = rng.lognormal(-3.0, 0.4, 600), rng.lognormal(0.0, 0.4, 400)
    scores = np.stack([np.concatenate([absent, present]), np.zeros(1000)], axis=1)
    cal = PresenceCalibration().fit(scores)
    p = cal.predict_proba(scores)
    truth = np.r_[np.zeros(600), np.ones(400)].astype(bool)
    assert ((p[:, 0] >= 0.5) == truth).mean() > 0.99
    assert abs(cal.upper_share_[0] - 0.4) < 0.05
    grid = np.sort(np.concatenate([absent, present]))
    assert np.all(np.diff(cal.predict_proba(np.stack([grid, grid], 1))[:, 0]) >= 0)  # monotone in the score
    threshold = cal.threshold()[0]
    assert absent.max() < threshold < present.min()  # between the two populations
    assert cal.predict_proba(np.array([[threshold, 0.0]]))[0, 0] == pytest.approx(0.5, abs=1e-6)  # "present" starts there
    assert (p[:, 1] < 0.5).all()  # a component that never fires is never present


# ----------------------------------------------------------------------------- layers, hook, importance


def _tiny(arch: str = "resnet-tiny", size: int = 32) -> SimpleNamespace:
    torch.manual_seed(0)
    return SimpleNamespace(module_=PixelClassifier(build_model(arch, 2, size)).eval(), device_=torch.device("cpu"))


def _images(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize("arch", ["resnet-tiny", "vit-tiny"])
def test_capture_is_non_negative_and_the_variants_hook_keeps_variant_zero_exact(arch):
    model, images = _tiny(arch), _images(6)
    site = resolve_site(model.module_, "last")
    grids = capture(model.module_, site, images)
    assert grids.ndim == 4 and grids.shape[0] == 6 and (grids >= 0).all()
    with torch.no_grad():
        plain = model.module_(torch.as_tensor(images).permute(0, 3, 1, 2).float() / 255)
        with variants(model.module_, site, lambda g: torch.stack([g, torch.zeros_like(g)])):
            both = model.module_(torch.as_tensor(images).permute(0, 3, 1, 2).float() / 255)
    assert both.shape == (12, 2)
    assert torch.allclose(both[:6], plain, atol=1e-5) and not torch.allclose(both[6:], plain)
    if arch == "vit-tiny":  # [relu(x), relu(-x)] is written back exactly
        out = torch.randn(3, 17, 8)
        assert torch.allclose(site.from_grid(site.to_grid(out), out), out)
    with pytest.raises(InputError, match="discover.layer"):
        resolve_site(model.module_, "no.such.layer")


def test_removing_a_component_leaves_no_trace_of_it_in_the_activations():
    rng = np.random.default_rng(0)
    u = rng.exponential(1.0, (200, 2, 2, 3)).astype(np.float32)
    p = rng.normal(size=(3, 16)).astype(np.float32)
    grids = 1.0 + np.einsum("nhwk,kc->nhwc", u, p) + 0.01 * rng.normal(size=(200, 2, 2, 16)).astype(np.float32)
    patterns = fit_patterns(grids, u)
    assert np.allclose(patterns.patterns, p, atol=0.02)
    centred = torch.as_tensor(u - patterns.map_mean)
    ablated = remove_component(torch.as_tensor(grids), centred[..., 1], torch.as_tensor(patterns.patterns[1])).numpy()
    after = fit_patterns(ablated, u)
    assert np.abs(after.patterns[1]).max() < 0.02  # component 1 is gone
    assert np.allclose(after.patterns[[0, 2]], patterns.patterns[[0, 2]], atol=1e-4)  # the others are untouched
    assert np.allclose(ablated.mean(axis=(0, 1, 2)), grids.mean(axis=(0, 1, 2)), atol=1e-3)  # and so is the mean
    assert resample_maps(u, (4, 4)).shape == (200, 4, 4, 3) and resample_maps(u, (1, 1)).shape == (200, 1, 1, 3)


def test_importance_ranks_first_the_component_the_model_reads():
    """A tiny ResNet whose head reads one planted direction of its last stage: removing that component
    changes its answers most, and the effect comes with an interval and per-group numbers."""
    model, images = _tiny(), _images(120, seed=3)
    site = resolve_site(model.module_, "last")
    grids = capture(model.module_, site, images)
    f = ConceptFactorization(k=4).fit(grids)
    maps = f.transform(grids)
    patterns = fit_patterns(grids, maps)
    planted = 2
    head = model.module_.model.classifier[-1]
    with torch.no_grad():
        direction = torch.as_tensor(patterns.patterns[planted])
        head.weight.zero_()
        head.weight[1] = 50 * direction / direction.norm() ** 2
        head.bias.zero_()
        head.bias[1] = -float(50 * (direction @ torch.as_tensor(grids.mean(axis=(0, 1, 2)))) / direction.norm() ** 2)
    groups = np.arange(len(images)) % 2
    other = (planted + 1) % 4
    ablations = ablation_effects(model, site, patterns, maps, images, groups, ["a", "b"], n_resamples=200,
                                 together=[[planted], [planted, other]])
    np.testing.assert_allclose(ablations.grids, grids, rtol=1e-5, atol=1e-6)  # the unchanged activations, read on the way
    effects = ablations.components
    means = [e["overall"]["mean"] for e in effects]
    assert int(np.argmin(means)) == planted
    e = effects[planted]
    assert e["overall"]["ci_high"] < 0 and set(e["by_group"]) == {"a", "b"} and 0 <= e["flip_rate"] <= 1
    alone, pair = ablations.together  # a group of one is the component itself; a pair removes both at once
    assert alone["overall"]["mean"] == pytest.approx(e["overall"]["mean"], abs=1e-5)
    assert pair["overall"]["mean"] != pytest.approx(e["overall"]["mean"], abs=1e-5) and pair["overall"]["ci_high"] < 0
    no_groups = ablation_effects(model, site, patterns, maps, images, groups, ["a", "b"], n_resamples=200)
    assert no_groups.together == [] and [x["overall"] for x in no_groups.components] == [x["overall"] for x in effects]


def test_removing_components_together_subtracts_each_ones_term():
    grid, maps, patterns = torch.rand(2, 3, 3, 5), torch.rand(2, 3, 3, 4), torch.rand(4, 5)
    both = remove_components(grid, maps[..., [0, 2]], patterns[[0, 2]])
    one_then_other = remove_component(remove_component(grid, maps[..., 0], patterns[0]), maps[..., 2], patterns[2])
    assert torch.allclose(both, one_then_other, atol=1e-6)


def test_components_given_one_name_are_alike_and_unnamed_ones_are_not():
    concepts = discovered_concepts("erm", 6, {concept_id("erm", 1): "Snowy  ground", concept_id("erm", 4): "snowy ground",
                                              concept_id("erm", 2): "a coat", concept_id("erm", 5): "snowy ground"})
    assert alike(concepts) == {"Snowy  ground": [1, 4, 5]}  # one name however spaced or cased; a name of one is no group
    assert alike(discovered_concepts("erm", 3)) == {}  # unnamed components share the word "unnamed", not a name


# ----------------------------------------------------------------------------- names


def _names_csv(path: Path, rows: list[list[str]], header: tuple[str, ...] = ("component", "text")) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_names_csv_is_read_and_names_become_the_concepts_texts(tmp_path):
    path = _names_csv(tmp_path / "n.csv", [["discovered::erm/3", "  snowy   ground "], ["discovered::erm/0", "a black-and-white coat"]])
    names = read_names_csv(path, ("erm",), 8)
    assert names == {"discovered::erm/3": "snowy ground", "discovered::erm/0": "a black-and-white coat"}
    concepts = discovered_concepts("erm", 4, names)
    assert [c.text for c in concepts] == ["a black-and-white coat", unnamed_text(1), unnamed_text(2), "snowy ground"]
    vocabulary = Vocabulary((Concept("amber_eyes", "amber eyes", "core"), *concepts))
    language = hypothesis_language(vocabulary)
    assert language.vocabulary.ids == ["amber_eyes", concept_id("erm", 0), concept_id("erm", 3)] and language.left_out == 2
    assert np.array_equal(language.of(np.arange(10).reshape(2, 5)), [[0, 1, 4], [5, 6, 9]])
    renamed = apply_names(vocabulary, {"discovered::erm/1": "green grass", "discovered::erm/3": None})
    assert renamed["discovered::erm/1"].text == "green grass" and renamed["discovered::erm/3"].text == unnamed_text(3)


@pytest.mark.parametrize(
    "rows, header, message",
    [
        ([["discovered::erm/3", "snow"], ["discovered::erm/3", "ice"]], None, "named twice"),
        ([["discovered::vit/3", "snow"]], None, "not a discovered concept id"),
        ([["amber_eyes", "snow"]], None, "not a discovered concept id"),
        ([["discovered::erm/40", "snow"]], None, "no such component"),
        ([["discovered::erm/3", ""]], None, "must be non-empty"),
        ([["discovered::erm/3", "unnamed concept 3"]], None, "how an unnamed concept is written"),
        ([["discovered::erm/3", "x" * 81]], None, "at most 80 characters"),
        ([["discovered::erm/3"]], ("component",), "lacks column(s) text"),
        ([["discovered::erm/3", "snow", "1"]], ("component", "text", "extra"), "besides component,text"),
    ],
)
def test_names_csv_errors_are_one_line(tmp_path, rows, header, message):
    path = _names_csv(tmp_path / "n.csv", rows, header or ("component", "text"))
    with pytest.raises(InputError) as err:
        read_names_csv(path, ("erm",), 16)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_cli_refuses_a_bad_names_file_before_any_work(tmp_path, capsys):
    path = _names_csv(tmp_path / "n.csv", [["discovered::erm/99", "snow"]])
    code = main(["run", "--out", str(tmp_path / "runs"), "--set", f"discover.names={path}", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "discovered::erm/99" in err[0]
    assert not (tmp_path / "runs").exists()
    code = main(["run", "--out", str(tmp_path / "runs"), "--set", f"discover.names={tmp_path / 'missing.csv'}", "--quiet"])
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_taking_back_a_name_the_run_was_given_makes_the_concept_unnamed(tmp_path):
    """A run named by ``discover.names`` records its names in its vocabulary; a name taken back in the store must
    override that one, not fall through to it."""
    components = [concept_id("erm", k) for k in range(2)]
    recorded = Vocabulary(tuple(discovered_concepts("erm", 2, {"discovered::erm/1": "snowy ground"})))
    store = NameStore(tmp_path / "judgments.sqlite", "run-a", components)
    assert [c.text for c in apply_names(recorded, store.names()).concepts] == ["unnamed concept 0", "snowy ground"]
    store.unname("ana", "discovered::erm/1")
    assert [c.text for c in apply_names(recorded, store.names()).concepts] == ["unnamed concept 0", "unnamed concept 1"]


def test_name_store_keeps_history_and_survives_reopening(tmp_path):
    path = tmp_path / "judgments.sqlite"
    components = [concept_id("erm", k) for k in range(3)]
    store = NameStore(path, "run-a", components)
    store.name("ana", "discovered::erm/1", "snowy ground")
    store.name("ben", "discovered::erm/1", "snow")
    store.name("ana", "discovered::erm/2", "green grass")
    store.unname("ben", "discovered::erm/2")
    again = NameStore(path, "run-a", components)  # a reload: another process, the same file
    assert again.names() == {"discovered::erm/1": "snow", "discovered::erm/2": ""}  # "": the name was taken back
    history = again.history("discovered::erm/1")
    assert list(history["text"]) == ["snowy ground", "snow"] and list(history["rater"]) == ["ana", "ben"]
    assert list(again.history()["text"]) == ["snowy ground", "snow", "green grass", ""]
    assert NameStore(path, "run-b", components).names() == {}  # names belong to their run
    for call, message in [
        (lambda: store.name("ana", "discovered::erm/7", "x"), "not a discovered concept of run"),
        (lambda: store.name(" ", "discovered::erm/1", "x"), "rater"),
        (lambda: store.name("ana", "discovered::erm/1", "  "), "non-empty"),
    ]:
        with pytest.raises(InputError, match=message):
            call()
    with sqlite3.connect(path) as conn:  # one table, in the shared judgments file
        assert conn.execute("SELECT COUNT(*) FROM concept_names").fetchone()[0] == 4


def test_name_store_keeps_components_removed_together_per_set_of_components(tmp_path):
    """What removing components together did is kept per run and set of components (their order and the words do not
    matter), the latest measurement of a set wins, and it survives reopening the file."""
    path = tmp_path / "judgments.sqlite"
    components = [concept_id("erm", k) for k in range(3)]
    store = NameStore(path, "run-a", components)
    assert store.removed_together() == {}
    first = {"erm": {"overall": {"mean": -1.0}, "flip_rate": 0.1}}
    store.record_together(["discovered::erm/2", "discovered::erm/0"], first)
    store.record_together(["discovered::erm/0", "discovered::erm/2"], {"erm": {"overall": {"mean": -1.5}, "flip_rate": 0.2}})
    store.record_together(["discovered::erm/0", "discovered::erm/1"], first)
    again = NameStore(path, "run-a", components)
    assert again.removed_together() == {("discovered::erm/0", "discovered::erm/1"): first,
                                        ("discovered::erm/0", "discovered::erm/2"): {"erm": {"overall": {"mean": -1.5}, "flip_rate": 0.2}}}
    assert NameStore(path, "run-b", components).removed_together() == {}
    with pytest.raises(InputError, match="not a discovered concept of run"):
        store.record_together(["discovered::erm/0", "discovered::erm/9"], first)


# ----------------------------------------------------------------------------- hidden concepts


BACKGROUND = ["snowy_ground", "grassy_ground", "forest_floor"]
SMALL = {"n_train": 40, "n_val": 20, "n_test_train": 20, "n_test_eval": 20, "n_concept_bank": 40, "image_size": 32}


def test_hidden_concepts_leave_the_vocabulary_and_every_split_but_not_the_groups():
    full = make_world("snowwolf", seed=2, **SMALL)
    hidden = make_world("snowwolf", seed=2, hide_concepts=BACKGROUND, **SMALL)
    assert [c for c in full.vocabulary.ids if c not in BACKGROUND] == hidden.vocabulary.ids
    keep = [i for i, c in enumerate(full.vocabulary.ids) if c not in BACKGROUND]
    for name in ("train", "test_eval", "concept_bank"):
        a, b = full.split(name), hidden.split(name)
        assert np.array_equal(a.images, b.images) and np.array_equal(a.groups, b.groups)
        assert np.array_equal(b.concepts, a.concepts[:, keep])
    swapped = hidden.render_on_background(hidden.split("test_eval"), np.zeros(20, dtype=np.int64))
    assert swapped.concepts.shape[1] == len(hidden.vocabulary)
    assert hidden.group_names() == full.group_names() and any("withheld" in n for n in hidden.notes)
    with pytest.raises(InputError, match="hide_concepts names 'purple_sky'"):
        make_world("snowwolf", seed=2, hide_concepts=["purple_sky"], **SMALL)


def test_judgments_about_hidden_concepts_are_left_out():
    from igcore.config import PriorConfig
    from igcore.prior import load_judgments

    world = make_world("snowwolf", seed=2, hide_concepts=BACKGROUND, **SMALL)
    judgments = load_judgments(PriorConfig(), world.vocabulary, world.classes, drop=BACKGROUND)
    assert len(judgments.ratings) and not set(judgments.ratings["concept"]) & set(BACKGROUND)
    assert any("left out" in n for n in judgments.notes)
    if judgments.pairwise is not None:
        assert not any(c in text for c in BACKGROUND for text in judgments.pairwise["hypothesis_a"])


def test_recorded_judgments_leave_out_what_is_dropped_and_say_so():
    from igcore.config import PriorConfig
    from igcore.prior import load_judgments

    world = make_world("snowwolf", seed=2, **SMALL)
    judgments = load_judgments(PriorConfig(), world.vocabulary, world.classes)
    assert judgments.without((), world.vocabulary, world.classes) is judgments  # nothing dropped: the same judgments
    kept = judgments.without(BACKGROUND, world.vocabulary, world.classes)
    rated = judgments.ratings["concept"].isin(BACKGROUND)
    assert rated.any() and len(kept.ratings) == (~rated).sum() and not kept.ratings["concept"].isin(BACKGROUND).any()
    assert any(f"{int(rated.sum())} rating(s)" in n for n in kept.notes)
    assert kept.provenance.world == judgments.provenance.world
    if kept.pairwise is not None:
        assert not any(c in text for c in BACKGROUND for col in ("hypothesis_a", "hypothesis_b") for text in kept.pairwise[col])



class _Rows(SimpleNamespace):
    """The fields of a Split that :func:`resemblance` reads."""

    def __len__(self) -> int:
        return len(self.groups)


def test_resemblance_aucs_are_scikit_learns_one_column_at_a_time():
    """One multilabel call per component gives each column's roc_auc_score exactly (ties and constant columns too)."""
    from sklearn.metrics import roc_auc_score

    from igcore.discover.discovery import resemblance
    from igcore.worlds.base import Concept, Vocabulary

    rng = np.random.default_rng(3)
    n = 90
    concepts = (rng.random((n, 4)) < [0.3, 0.5, 0.0, 0.1]).astype(np.uint8)  # the third never present: left out
    split = _Rows(concepts=concepts, background=rng.integers(0, 2, n), groups=rng.integers(0, 4, n))
    scores = np.round(rng.random((n, 3)), 1)  # ties
    vocabulary = Vocabulary(tuple(Concept(f"c{j}", f"concept {j}", "core") for j in range(4)))
    found = resemblance(scores, split, vocabulary, ["snow", "grass"], ["a", "b", "c", "d"])
    assert len(found) == scores.shape[1]  # one record per component
    for k, record in enumerate(found):
        expected = {f"c{j}": roc_auc_score(concepts[:, j], scores[:, k]) for j in (0, 1, 3)}
        assert record["concepts"] == expected and list(record["concepts"]) == list(expected)
        assert record["backgrounds"] == {b: roc_auc_score(split.background == i, scores[:, k]) for i, b in enumerate(["snow", "grass"])}
        assert record["groups"] == {g: roc_auc_score(split.groups == i, scores[:, k]) for i, g in enumerate("abcd")}
        best = max(expected, key=expected.__getitem__)
        assert record["best_concept"] == {"name": best, "auc": expected[best]}


def test_the_discovery_bench_reads_stages_at_once_from_the_run() -> None:
    """The timing section says how many stages ran at once as the run's manifest recorded it, not as a fixed text."""
    from bench.bench_discover import stages_at_once_sentence

    assert "up to 2 at a time" in stages_at_once_sentence(2) and "add up to more" in stages_at_once_sentence(2)
    assert "up to 3 at a time" in stages_at_once_sentence(3)
    assert "one at a time" in stages_at_once_sentence(1) and "add up" not in stages_at_once_sentence(1)


def test_the_discovery_bench_summarises_what_erm_holds_of_each_hidden_concept() -> None:
    """The probe sentence: the backgrounds' range apart, the other concepts' median, range, best and worst, means over seeds."""
    from bench.bench_discover import probe_sentence

    def result(probe: dict[str, float]) -> dict:
        return {"probe": probe, "hidden_texts": {"coat": "a coat", "tail": "a tail", "eyes": "eyes", "ears": "ears"}, "hidden_background": ["snow"]}

    res = [(0, result({"coat": 1.0, "tail": 0.7, "eyes": 0.6, "ears": 0.5, "snow": 1.0})),
           (1, result({"coat": 0.9, "tail": 0.7, "eyes": 0.7, "ears": 0.5, "snow": 0.9}))]
    text = probe_sentence(res)
    assert "backgrounds 0.95–0.95" in text and "the other 4 concepts median 0.67 (0.50–0.95)" in text
    assert "best a coat 0.95, a tail 0.70, eyes 0.65" in text and "worst ears 0.50" in text
    assert probe_sentence([(0, result({"snow": 1.0}))]) == ""


def test_the_discovery_bench_puts_the_students_epoch_rule_beside_the_val_rule() -> None:
    """The sentence reports ig_student under its rule, retrained under the val rule, and L_M's own answers, per seed."""
    from bench.bench_discover import student_rule_sentence

    res = [(0, {"student_wga": 0.5, "val_student_wga": 0.25, "direct_wga": 0.6}),
           (1, {"student_wga": 0.7, "val_student_wga": 0.35, "direct_wga": 0.4})]
    text = student_rule_sentence(res)
    assert "its worst group 60.0 ± 14.1 % (per seed 50.0, 70.0)" in text
    assert "D's labels: 30.0 ± 7.1 % (per seed 25.0, 35.0)" in text
    assert "imitates): 50.0 ± 14.1 % (per seed 60.0, 40.0)" in text


def test_the_discovery_bench_says_less_when_the_run_with_discovery_was_faster() -> None:
    from bench.bench_discover import whole_run_sentence

    assert whole_run_sentence(99.4, 94.0) == "the whole run took 5 s more with discovery than without."
    assert whole_run_sentence(71.0, 74.0).startswith("the whole run took 3 s less with discovery than without:")
    assert "-" not in whole_run_sentence(71.0, 74.0)


def test_the_discovery_bench_tabulates_each_factorisation_over_seeds() -> None:
    """One row per variant in VARIANTS' order: K and named counts as mean ± sd, seeds with any, what they were named after
    with the seeds that named it, and the worst group over the seeds that have any (a seed without any is not a zero)."""
    from bench.bench_discover import VARIANTS, variants_table

    first, second = list(VARIANTS)[:2]

    def result(v1: dict, v2: dict) -> dict:
        rest = {label: {"k": 4, "named_other": 0, "concepts": [], "bound_d": None} for label in VARIANTS}
        return {"hidden_texts": {"coat": "a coat", "light": "bright light"}, "variants": {**rest, first: v1, second: v2}}

    res = [(0, result({"k": 8, "named_other": 0, "concepts": [], "bound_d": None},
                      {"k": 32, "named_other": 2, "concepts": ["coat", "light"], "bound_d": 0.5})),
           (1, result({"k": 12, "named_other": 1, "concepts": ["coat"], "bound_d": 0.3},
                      {"k": 32, "named_other": 1, "concepts": ["coat"], "bound_d": 0.7}))]
    lines = variants_table(res)
    assert len(lines) == 2 + len(VARIANTS)
    assert lines[2] == f"| {first} | 10.0 ± 2.8 | 0.5 ± 0.7 | 1 of 2 | a coat (1) | 30.0 ± 0.0 |"
    assert lines[3] == f"| {second} | 32.0 ± 0.0 | 1.5 ± 0.7 | 2 of 2 | a coat (2), bright light (1) | 60.0 ± 14.1 |"
    assert lines[4].endswith("| 0 of 2 | – | – |")


def test_the_tagged_digits_put_the_tag_with_the_class_in_d_only(tmp_path) -> None:
    """bench/tagged_digits.py: in D the tag goes with "odd" at rate rho, in D′ it is on half of each class; no scan is
    on both sides; the manifest is labels-only with the tag in the group column; the tag's pixels are the tag's colour."""
    from PIL import Image

    from bench.tagged_digits import CLASSES, TAG, TAG_RGB, export_tagged_digits

    data = export_tagged_digits(tmp_path / "d", seed=3, rho=0.9, copies=1)
    rows = list(csv.DictReader(data.manifest.open()))
    assert list(rows[0]) == ["path", "label", "split", "group"] and len(rows) == len(data.tag) == len(data.labels)
    split = np.array([r["split"] for r in rows])
    assert [r["label"] for r in rows] == [CLASSES[y] for y in data.labels]
    assert [r["group"] for r in rows] == ["tag" if t else "no_tag" for t in data.tag]
    d, test = np.isin(split, ["train", "val"]), split == "test"
    agree = (data.tag == data.labels)[d].mean()  # odd with the tag, even without
    assert 0.85 < agree < 0.95
    for y in (0, 1):
        assert 0.4 < data.tag[test & (data.labels == y)].mean() < 0.6
    scans = {s: {r["path"].split("/")[1].split("-")[0] for r in rows if r["split"] == s} for s in ("train", "val", "test")}
    assert not (scans["train"] & scans["test"]) and not (scans["val"] & scans["test"]) and not (scans["train"] & scans["val"])
    for r, tagged in list(zip(rows, data.tag, strict=True))[:40]:
        corner = np.asarray(Image.open(data.manifest.parent / r["path"]))[TAG]
        assert (corner == TAG_RGB).all() == bool(tagged)
    again = export_tagged_digits(tmp_path / "again", seed=3, rho=0.9, copies=1)
    assert np.array_equal(again.tag, data.tag)  # deterministic in the seed


def test_the_discovery_bench_counts_the_tag_only_when_erm_relies_on_it_more_than_the_oracle() -> None:
    """Part (d): met when erm's top component is the tag (AUC >= 0.9), its interval excludes 0 and it is >= 3x the
    oracle's effect; the report gives one row per seed and rho and one acceptance count per rho."""
    from bench.bench_discover import tag_met, tag_report, tag_together_met
    from bench.tagged_digits import TAG_TEXT

    def stat(mean: float, half: float = 0.01) -> dict:
        return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half}

    def named(erm: float, oracle: float, half: float = 0.01) -> dict:
        """The tag's components removed together (the simulated namer's name given to two of them)."""
        return {TAG_TEXT: {"components": ["discovered::erm/1", "discovered::erm/3"],
                           "effects": {"erm": {"overall": stat(erm, half)}, "oracle": {"overall": stat(oracle)}}}}

    def result(top_auc: float, erm: tuple[float, float, float], oracle: float, aligned: int = 2,
               together: dict | None = None) -> dict:
        return {"k": 8, "aligned": aligned, "best": 1, "best_auc": 0.99, "best_rank": 1, "top": 1, "top_auc": top_auc,
                "top_erm": dict(zip(("mean", "ci_low", "ci_high"), erm, strict=True)),
                "top_oracle": {"mean": oracle, "ci_low": oracle - 0.01, "ci_high": oracle + 0.01}, "slice_auc": 0.7,
                "erm_wga": 0.0, "oracle_wga": 0.9, "sections": {"a": True, "b": True}, "page_problems": [], "seconds": 20.0,
                "named": {TAG_TEXT: 2} if together else {}, "together": together or {}, "together_seconds": 1.0}

    good = result(0.99, (-0.6, -0.7, -0.5), -0.1)
    assert tag_met(good)
    assert not tag_met(result(0.85, (-0.6, -0.7, -0.5), -0.1))  # the top component is not the tag
    assert not tag_met(result(0.99, (-0.6, -0.7, 0.1), -0.1))  # its interval holds 0
    assert not tag_met(result(0.99, (-0.6, -0.7, -0.5), -0.25))  # the oracle relies on it almost as much
    # the tag's components removed together: met when erm's interval excludes 0 and its effect is >= 3x the oracle's
    assert tag_together_met(named(-2.0, -0.1)[TAG_TEXT])
    assert not tag_together_met(named(-2.0, -0.8)[TAG_TEXT]) and not tag_together_met(named(-0.2, 0.0, half=0.5)[TAG_TEXT])
    assert not tag_together_met(None)  # fewer than two components got the tag's name
    text = "\n".join(tag_report([(0, 0.99, result(0.99, (-0.6, -0.7, -0.5), -0.1, together=named(-2.0, -0.1))),
                                 (1, 0.99, result(0.99, (-0.6, -0.7, -0.5), -0.1, together=named(-2.0, -0.8))),
                                 (0, 0.95, result(0.5, (-0.3, -0.4, -0.2), -0.2, aligned=0))]))
    assert text.count("\n| 0 | 0.99 | 8 | 2 | 1 | 0.990 |") == 1 and "| 0 | 0.95 | 8 | 0 | – | best 0.990 |" in text
    assert "**2 of 2 seeds**" in text and text.count("**0 of 1 seeds**") == 2  # the top component; the tag named together
    assert f"| 0 | 0.99 | {TAG_TEXT} (2) | {TAG_TEXT} | -2.00 [-2.01, -1.99] | -0.10 [-0.11, -0.09] | 20.0 | 1.0 |" in text
    assert "given to two or more components in 2 of 2 seeds" in text and "**1 of 2 seeds**" in text
    assert "| 0 | 0.95 | none | – | – | – | – | – |" in text and "in 0 of 1 seeds" in text
    assert "drew every section with no error on every run" in text


def test_the_discovery_bench_lists_each_shared_simulated_name_with_its_effect_removed_together() -> None:
    from bench.bench_discover import alike_rows

    def stat(mean: float) -> dict:
        return {"overall": {"mean": mean, "ci_low": mean - 0.1, "ci_high": mean + 0.1}}

    groups = [{"text": "snowy ground", "components": ["discovered::erm/1", "discovered::erm/4"],
               "effects": {"erm": stat(-1.2), "ig_student": stat(-0.3)}}]
    lines = alike_rows([(0, {"alike": groups}), (1, {"alike": []})])
    assert lines[2:] == ["| 0 | snowy ground | 2 | -1.20 [-1.30, -1.10] | -0.30 [-0.40, -0.20] | 4.0 |"]  # seed 1: no shared name
