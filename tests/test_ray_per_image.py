"""executor=ray for every stage's per-image work: the same attribution maps, counterfactual effects, discovery
activations and metrics as executor=local, on a local 2-worker Ray, with a user's checkpoint as the baseline.

One Ray session for the module (started the way the executor starts it; the runs join it). The data set is
a small Waterbirds-layout one written by the tests (:mod:`testkit.byod_fixtures`, decoded lazily in the
workers on the ray path); the backbone and the checkpoint are tiny ResNets with random weights saved here.
Nothing is downloaded.

Tolerance: results agree to ``rtol=1e-4, atol=1e-4`` (float32 arithmetic in batches of other sizes on
other processes); a stochastic method (GradientSHAP) draws each image's randomness from its row, so its maps
agree to the same tolerance rather than only in distribution.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import ray
import torch
from transformers import ViTImageProcessor

from igcore.baseline import ImageClassifier, build_model
from igcore.config import RayConfig, load_config
from igcore.discover.discovery import discover, grid_splits
from igcore.discover.layers import LayerActivations
from igcore.discover.params import DiscoverParams
from igcore.executors import LocalExecutor, RayExecutor
from igcore.microscope.attribution import AttributionCache, PredictAndAttribute, compute_maps, unpack_maps
from igcore.pipeline import run_pipeline
from igcore.store import Run, load_run_dir
from igcore.worlds import make_world
from testkit import byod_fixtures as fx

pytestmark = pytest.mark.slow  # starts a local Ray and runs pipelines on it

WORKERS = 2
RTOL = ATOL = 1e-4
METHODS = ["integrated_gradients", "gradient_shap", "saliency"]
RUN = [
    "baseline.epochs=2", "baseline.batch_size=16", "concepts.epochs=2", "features.batch_size=8", "ray.batch_size=8",
    f"ray.workers={WORKERS}", "microscope.per_group=2", 'microscope.models=["erm","oracle"]', f"microscope.methods={METHODS}".replace("'", '"'),
    "microscope.batch_size=4", "microscope.params.integrated_gradients.n_steps=4", "microscope.params.gradient_shap.n_samples=2",
    "microscope.tcav.n_random=2", "microscope.tcav.n_concept_images=4", "microscope.tcav.n_inputs=4", "microscope.tcav.repeats=1",
    "microscope.tcav.n_controls=1", 'microscope.tcav.layers=["penultimate"]', 'microscope.sanity.models=["oracle"]',
    "microscope.sanity.n_images=1", "microscope.counterfactuals.attribution_per_group=1", "microscope.counterfactuals.n_steps=4",
    "microscope.counterfactuals.n_resamples=200", "search.n_ranked=4", "search.max_depth=3",
]
#: metrics that say how the work ran (where, how fast, on how many processes), not what it found
HOW = {"executor", "workers", "peak_rss_mb_per_worker", "extract_seconds", "images_per_second", "batch_size",
       "seconds", "cpu_seconds", "timings", "cpu_timings", "part_timings"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayExecutor]:
    executor = RayExecutor(RayConfig(workers=WORKERS, object_store_mb=200), progress=False)
    executor.connect()
    assert ray.cluster_resources()["CPU"] == WORKERS
    yield executor
    executor.close()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ray-per-image")
    found = fx.make_waterbirds(root / "data", n=48)
    torch.manual_seed(0)
    build_model("resnet-tiny", 2, 40).save_pretrained(root / "backbone", safe_serialization=True)
    found["backbone"] = root / "backbone"
    torch.manual_seed(1)  # a user's classifier: its own weights, labels and image processor (size 32: resized inside)
    model = build_model("resnet-tiny", 2, 32)
    model.config.id2label, model.config.label2id = {0: "landbird", 1: "waterbird"}, {"landbird": 0, "waterbird": 1}
    model.save_pretrained(root / "checkpoint", safe_serialization=True)
    ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.25] * 3).save_pretrained(root / "checkpoint")
    found["checkpoint"] = root / "checkpoint"
    found["cache"] = root / "cache"
    return found


@pytest.fixture(scope="module")
def runs(cluster: RayExecutor, data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """The same run (a user's checkpoint as the baseline) with executor=local and executor=ray."""
    out = tmp_path_factory.mktemp("runs")
    sets = [*RUN, "world.name=waterbirds", f"world.root={data['root']}", f"world.cub_root={data['cub_root']}",
            f"world.cache_dir={data['cache']}", f"features.backbone={data['backbone']}", f"baseline.checkpoint={data['checkpoint']}"]
    return {name: load_run_dir(run_pipeline(load_config(None, [*sets, f"run_id={name}", f"executor={name}"]), out, progress=False))
            for name in ("local", "ray")}


def _same(a: Any, b: Any, where: str = "metrics") -> None:
    """Two metrics trees equal: the same keys, numbers to the tolerance, everything else exactly (``HOW`` keys skipped)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) - HOW == set(b) - HOW, where
        for key in set(a) - HOW:
            _same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert b is not None and np.isclose(a, b, rtol=RTOL, atol=ATOL, equal_nan=True), f"{where}: {a} != {b}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def test_a_users_checkpoint_runs_on_ray_with_the_local_runs_maps_effects_and_metrics(runs: dict[str, Run]) -> None:
    local, remote = runs["local"], runs["ray"]
    assert local.complete and remote.complete
    assert remote.metrics["baseline"]["trained"] is False and remote.metrics["baseline"]["name"] == "checkpoint"
    # every stage that works image by image says so, with the executor that ran it and on how many images
    used = {name: s.model_extra.get("per_image") for name, s in remote.info().stages.items()}
    mine = {name: s.model_extra.get("per_image") for name, s in local.info().stages.items()}
    for stage in ("features", "erm", "microscope"):
        assert used[stage]["executor"] == "ray" and mine[stage]["executor"] == "local", stage
        assert used[stage]["images"] == mine[stage]["images"] > 0, stage

    # attribution maps: every (model, method) the microscope cached, the same images, targets and maps
    a, b = (AttributionCache(r.path / "microscope" / "attributions") for r in (local, remote))
    entries = sorted(k["entry"] for k in a.keys())
    assert entries == sorted(k["entry"] for k in b.keys()) and len(entries) == 2 * len(METHODS)
    for entry in entries:
        model, key = entry.split("/")
        method = key.rsplit("-", 1)[0]
        mine_maps, their_maps = a.load(model, method, _params(a, entry)), b.load(model, method, _params(b, entry))
        assert sorted(mine_maps) == sorted(their_maps) and mine_maps, entry
        for i, (target, m) in mine_maps.items():
            assert their_maps[i][0] == target, entry
            np.testing.assert_allclose(their_maps[i][1], m, rtol=RTOL, atol=ATOL, err_msg=f"{entry}[{i}]")

    # counterfactual effects (swaps, then each model's log-odds) and every other table of the microscope
    for table in ("effects", "relevance", "relevance_summary", "sanity", "tcav"):
        pd.testing.assert_frame_equal(remote.table(table, "microscope"), local.table(table, "microscope"),
                                      check_exact=False, rtol=RTOL, atol=ATOL, obj=table)
    # ... and every number of metrics.json, swap attribution and the checkpoint's scores included
    assert "swap_attribution" in remote.metrics["microscope"]["erm"]
    _same(local.metrics, remote.metrics)


def _params(cache: AttributionCache, entry: str) -> dict[str, Any]:
    import json

    meta = next(k for k in cache.keys() if k["entry"] == entry)
    return json.loads(meta["params"])


SIDE = 32


def _small_world_and_model() -> tuple[Any, ImageClassifier]:
    world = make_world("snowwolf", seed=3, n_train=40, n_val=8, n_test_train=24, n_test_eval=12, n_concept_bank=8, image_size=SIDE)
    train = world.split("train")
    clf = ImageClassifier("resnet-tiny", 2, image_size=SIDE, epochs=1, batch_size=20, progress=False, device="cpu")
    return world, clf.fit(train.images, train.labels)


def test_stochastic_maps_do_not_depend_on_the_batches_or_the_executor(cluster: RayExecutor) -> None:
    world, clf = _small_world_and_model()
    test = world.split("test_eval")
    rows = np.array([7, 2, 11, 5, 0])
    params = {"n_samples": 3, "stdevs": 0.1, "n_noise_baselines": 2}
    targets = clf.predict(test.images[rows])
    one = compute_maps(clf.module_, test.images[rows], targets, "gradient_shap", params, batch_size=5, seed=4, rows=rows)
    apart = np.concatenate([compute_maps(clf.module_, test.images[[r]], targets[[k]], "gradient_shap", params, batch_size=1, seed=4,
                                         rows=np.array([r])) for k, r in enumerate(rows)])
    np.testing.assert_array_equal(one, apart)  # each image drawn from its own row's seed
    other_seed = compute_maps(clf.module_, test.images[rows], targets, "gradient_shap", params, seed=5, rows=rows)
    assert not np.allclose(one, other_seed)  # the seed is used
    work = functools.partial(PredictAndAttribute, clf, "gradient_shap", params, 2, 4)
    for executor in (LocalExecutor(progress=False), RayExecutor(RayConfig(workers=WORKERS), progress=False)):
        found_targets, maps = unpack_maps(executor.map_batches(work, test.images, 2, rows=rows), (SIDE, SIDE))
        np.testing.assert_array_equal(found_targets, targets)
        np.testing.assert_allclose(maps, one, rtol=RTOL, atol=ATOL, err_msg=executor.name)


def test_discovery_reads_the_same_activations_on_either_executor(cluster: RayExecutor) -> None:
    """Discovery's per-image work (the layer's activations of every split it scores or factorises) on a
    2-worker Ray gives the local activations, hence the same components, presence, probabilities and maps."""
    world, clf = _small_world_and_model()
    splits = {name: world.split(name) for name in ("train", "val", "test_train", "test_eval")}
    params = DiscoverParams(k=3, images=20)
    work = functools.partial(LayerActivations, clf, params.layer)
    found = {}
    for executor in (LocalExecutor(progress=False), RayExecutor(RayConfig(workers=WORKERS), progress=False)):
        grids = {s: executor.map_batches(work, splits[s].images, 8) for s in grid_splits()}
        found[executor.name] = discover(clf, "erm", splits, params, vocabulary=world.vocabulary, backgrounds=world.backgrounds,
                                        group_names=world.group_names(), seed=0, grids=grids)
    here = discover(clf, "erm", splits, params, vocabulary=world.vocabulary, backgrounds=world.backgrounds,
                    group_names=world.group_names(), seed=0)  # read in this process, in one go
    local, remote = found["local"], found["ray"]
    for other in (remote, here):
        assert other.k == local.k == 3
        np.testing.assert_allclose(other.grids["test_eval"], local.grids["test_eval"], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(other.factorization.components_, local.factorization.components_, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(other.maps, local.maps, rtol=RTOL, atol=ATOL)
        for split in local.scores:
            np.testing.assert_allclose(other.scores[split], local.scores[split], rtol=RTOL, atol=ATOL, err_msg=split)
            np.testing.assert_allclose(other.probability[split], local.probability[split], rtol=RTOL, atol=ATOL, err_msg=split)
        _same(local.resemblance, other.resemblance, "resemblance")
