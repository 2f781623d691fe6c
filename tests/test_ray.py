"""executor=ray: every stage's per-image work as Ray Data pipelines on a local 2-worker Ray, against the local path:
the same features, predictions, attribution maps, counterfactual effects, discovery activations and metrics as
executor=local, with a user's checkpoint as the baseline; a killed worker restarted, an unreadable image refused.

One Ray session for the module, and one pair of runs (local and ray) that every comparison reads (started the way the executor starts it; the runs join it). The data set is
a small Waterbirds-layout one written by the tests (:mod:`testkit.byod_fixtures`, decoded lazily in the
workers on the ray path); the backbone and the checkpoint are tiny ResNets with random weights saved here.
Nothing is downloaded.

Tolerance: results agree to ``rtol=1e-4, atol=1e-4`` (float32 arithmetic in batches of other sizes on
other processes); a stochastic method (GradientSHAP) draws each image's randomness from its row, so its maps
agree to the same tolerance rather than only in distribution.
"""

from __future__ import annotations

import functools
import os
import signal
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
from igcore.errors import InputError
from igcore.executors import LocalExecutor, RayExecutor
from igcore.features import FeatureExtractor
from igcore.microscope.attribution import AttributionCache, PredictAndAttribute, compute_maps, unpack_maps
from igcore.pipeline import run_pipeline
from igcore.stages import stage_named
from igcore.store import Run, load_run_dir
from igcore.worlds import make_world
from igcore.worlds.images import LazyImages
from igcore.worlds.imageset import decoding
from testkit import byod_fixtures as fx

pytestmark = [pytest.mark.slow, pytest.mark.ray]  # starts a local Ray and runs pipelines on it

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
       "seconds", "cpu_seconds", "timings", "part_timings"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayExecutor]:
    """One local Ray of 2 CPUs for the module, started the way the executor starts it (the runs join it)."""
    executor = RayExecutor(RayConfig(workers=WORKERS, object_store_mb=200), progress=False)
    executor.connect()
    assert ray.cluster_resources()["CPU"] == WORKERS
    yield executor
    executor.close()
    assert not ray.is_initialized()
    # closed for good: a stage thread still mapping after Ctrl+C starts no cluster, neither through the executor nor
    # through Ray's auto-init (whose processes outlived an interrupted run before)
    with pytest.raises(RuntimeError, match="closed"):
        executor.connect()
    with pytest.raises(ray.exceptions.RaySystemError):
        ray.put(1)
    assert not ray.is_initialized()


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
def loads() -> list[tuple[int, int]]:
    """The ray run's progress while it loads images: ``(done, total)`` after each batch."""
    return []


@pytest.fixture(scope="module")
def runs(cluster: RayExecutor, data: dict[str, Path], loads: list[tuple[int, int]],
         tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """The same run (a user's checkpoint as the baseline, the oracle trained on the backbone's features) with
    executor=local and executor=ray; the ray run reports its loading progress into ``loads``."""
    out = tmp_path_factory.mktemp("runs")
    sets = [*RUN, "world.name=waterbirds", f"world.root={data['root']}", f"world.cub_root={data['cub_root']}",
            f"world.cache_dir={data['cache']}", f"features.backbone={data['backbone']}", f"baseline.checkpoint={data['checkpoint']}"]
    on_load = {"local": None, "ray": lambda done, total: loads.append((done, total))}
    return {name: load_run_dir(run_pipeline(load_config(None, [*sets, f"run_id={name}", f"executor={name}"]), out, progress=False,
                                            on_load=on_load[name]))
            for name in ("local", "ray")}


def test_ray_path_gives_the_local_paths_answers(runs: dict[str, Run], loads: list[tuple[int, int]]) -> None:
    local, remote = runs["local"], runs["ray"]
    assert local.complete and remote.complete and remote.manifest["executor"] == "ray"
    summary = remote.metrics["features"]
    # at most ray.workers processes; on a data set this small the first one up may answer every batch
    assert summary["executor"] == "ray" and 1 <= summary["workers"] <= WORKERS and summary["peak_rss_mb_per_worker"] > 0
    assert remote.info().stages["world"].model_extra["load"]["cache"] == "lazy"  # nothing decoded up front
    n = sum(remote.metrics["world"]["sizes"].values())
    assert loads[-1] == (n, n) and len(loads) >= n // 8  # progress after every batch of 8, to the end

    for name in ("features", "concept_scores"):
        a, b = local.tensors(name), remote.tensors(name)
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_allclose(b[key], a[key], rtol=1e-4, atol=1e-5, err_msg=f"{name}.{key}")
    assert np.array_equal(local.tensors("test_eval")["images"], remote.tensors("test_eval")["images"])
    pa, pb = local.table("predictions"), remote.table("predictions")
    assert list(pa.columns) == list(pb.columns)
    for column in pa.columns:
        np.testing.assert_allclose(pb[column].to_numpy(float), pa[column].to_numpy(float), atol=1e-4, err_msg=column)
    for table in ("relevance_summary", "effects"):
        ta, tb = local.table(table, "microscope"), remote.table(table, "microscope")
        pd.testing.assert_frame_equal(tb, ta, check_exact=False, atol=1e-4)
    assert remote.metrics["hypotheses"]["z_star"] == local.metrics["hypotheses"]["z_star"]


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
    # and declares it, so the cluster is started in the pipeline's thread before it (igcore.pipeline.run_pipeline)
    assert all(stage_named(name).per_image for name, work in used.items() if work), used

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
    names = grid_splits()
    joined = np.concatenate([splits[s].images for s in names])  # one pipeline for every split, cut back
    ends = np.cumsum([len(splits[s].images) for s in names])[:-1]
    for executor in (LocalExecutor(progress=False), RayExecutor(RayConfig(workers=WORKERS), progress=False)):
        grids = dict(zip(names, np.split(executor.map_batches(work, joined, 8), ends), strict=True))
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


def test_a_worker_killed_mid_run_leaves_the_results_whole(cluster: RayExecutor, data: dict[str, Path]) -> None:
    """A worker is killed (SIGKILL) as soon as it has sent its first results; Ray retries whatever batches it still held
    (``max_retries``) on a worker that lives, and every image's features come back as a run without the kill gives.
    Whether the dead worker held a batch at that moment is up to Ray's scheduler, so only the whole result is asserted."""
    with decoding("lazy"):
        world = make_world("waterbirds", seed=0, root=str(data["root"]), cub_root=str(data["cub_root"]))
    images = world.split("train").images
    assert isinstance(images, LazyImages)
    make = lambda: FeatureExtractor(data["backbone"], 4, "cpu")  # noqa: E731
    expected = LocalExecutor(progress=False).map_batches(make, images, 4)
    killed: list[int] = []
    executor = RayExecutor(RayConfig(workers=WORKERS, max_retries=2), progress=False)

    def kill_one(done: int, total: int) -> None:
        if not killed:  # the first results are in: kill the worker that sent them, once
            pid = next(iter(executor.stats["workers"]))
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    executor.on_progress = kill_one
    found = executor.map_batches(make, images, 4)
    np.testing.assert_allclose(found, expected, rtol=1e-4, atol=1e-5)
    assert killed, "a worker was killed during the run"
    with pytest.raises(ProcessLookupError):
        os.kill(killed[0], 0)  # it really died


def test_ray_without_a_backbone_is_refused_in_one_line() -> None:
    with pytest.raises(InputError, match="executor=ray streams images through a frozen backbone.*features.backbone"):
        load_config(None, ["executor=ray"])


def test_an_unreadable_image_fails_the_ray_run(cluster: RayExecutor, data: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "data"
    fx.make_waterbirds(broken, n=24, with_cub=False)
    victim = broken / pd.read_csv(broken / "metadata.csv")["img_filename"][0]  # image 0: in the train split
    victim.write_bytes(b"not an image")
    with decoding("lazy"):  # the world is built (files exist); the bad bytes are found by a worker
        train = make_world("waterbirds", root=str(broken), cache_dir=str(tmp_path / "cache")).split("train").images
    make = lambda: FeatureExtractor(data["backbone"], 4, "cpu")  # noqa: E731
    with pytest.raises(InputError, match=f"1 image file is missing or unreadable, first: .*{victim.name}"):
        RayExecutor(RayConfig(workers=WORKERS), progress=False).map_batches(make, train, 4)
    sets = [*RUN, "world.name=waterbirds", f"world.root={broken}", f"world.cache_dir={tmp_path / 'cache'}",
            f"features.backbone={data['backbone']}", "executor=ray", "run_id=broken"]
    with pytest.raises(InputError, match=f"1 image file is missing or unreadable, first: .*{victim.name}"):
        run_pipeline(load_config(None, sets), tmp_path / "runs", progress=False)
    left = [p.name for p in (tmp_path / "runs").iterdir()]
    assert left and all(name.startswith(".failed-broken") for name in left)  # failed, never complete
