"""executor=ray: the per-image work as Ray Data pipelines on a local 2-worker Ray, against the local path.

The world is a small Waterbirds-layout data set written by the tests (:mod:`testkit.byod_fixtures`), decoded lazily
on the ray path (in the workers); the backbone is a tiny ResNet with random weights saved by the test
(``save_pretrained``). Nothing is downloaded.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray
import torch

from igcore.baseline import build_model
from igcore.config import RayConfig, load_config
from igcore.errors import InputError
from igcore.executors import LocalExecutor, RayExecutor
from igcore.features import FeatureExtractor
from igcore.pipeline import run_pipeline
from igcore.store import load_run_dir
from igcore.worlds import make_world
from igcore.worlds.images import LazyImages
from igcore.worlds.imageset import decoding
from testkit import byod_fixtures as fx

pytestmark = pytest.mark.slow  # starts a local Ray and runs pipelines on it

WORKERS = 2
SMALL_RUN = [
    "baseline.epochs=2", "baseline.batch_size=16", "concepts.epochs=2", "features.batch_size=8", "ray.batch_size=8",
    f"ray.workers={WORKERS}", "microscope.per_group=2", 'microscope.models=["erm"]', 'microscope.methods=["integrated_gradients","saliency"]',
    "microscope.params.integrated_gradients.n_steps=4", "microscope.tcav.n_random=2", "microscope.tcav.n_concept_images=4",
    "microscope.tcav.n_inputs=4", "microscope.tcav.repeats=1", "microscope.tcav.n_controls=1", 'microscope.tcav.layers=["penultimate"]',
    "microscope.sanity.n_images=1", "microscope.counterfactuals.attribution_per_group=1", "microscope.counterfactuals.n_steps=4",
    "microscope.counterfactuals.n_resamples=200", "search.n_ranked=4", "search.max_depth=3",
]


@pytest.fixture(scope="module")
def cluster():
    """One local Ray of 2 CPUs for the module, started the way the executor starts it (the runs join it)."""
    executor = RayExecutor(RayConfig(workers=WORKERS, object_store_mb=200), progress=False)
    executor.connect()
    assert ray.cluster_resources()["CPU"] == WORKERS
    yield executor
    executor.close()
    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ray")
    found = fx.make_waterbirds(root / "data", n=64)
    torch.manual_seed(0)  # a tiny ResNet with random weights: features are a fixed function of the pixels all the same
    build_model("resnet-tiny", 2, 40).save_pretrained(root / "backbone", safe_serialization=True)
    found["backbone"] = root / "backbone"
    found["cache"] = root / "cache"
    return found


def _world_sets(data: dict[str, Path]) -> list[str]:
    return ["world.name=waterbirds", f"world.root={data['root']}", f"world.cub_root={data['cub_root']}",
            f"world.cache_dir={data['cache']}", f"features.backbone={data['backbone']}"]


def test_ray_path_gives_the_local_paths_answers(cluster: RayExecutor, data: dict[str, Path], tmp_path: Path) -> None:
    sets = [*SMALL_RUN, *_world_sets(data)]
    local = load_run_dir(run_pipeline(load_config(None, [*sets, "run_id=local"]), tmp_path, progress=False))
    loads: list[tuple[int, int]] = []
    remote = load_run_dir(run_pipeline(load_config(None, [*sets, "run_id=ray", "executor=ray"]), tmp_path, progress=False,
                                       on_load=lambda done, total: loads.append((done, total))))
    assert local.complete and remote.complete and remote.manifest["executor"] == "ray"
    summary = remote.metrics["features"]
    # both actors start; on a data set this small the first one up may answer every batch
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


def test_a_killed_worker_is_restarted_and_its_batches_retried(cluster: RayExecutor, data: dict[str, Path]) -> None:
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
    assert killed and len(executor.stats["workers"]) >= WORKERS
    with pytest.raises(ProcessLookupError):
        os.kill(killed[0], 0)  # it really died; the results came from the restarted actor and the other one


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
    sets = [*SMALL_RUN, "world.name=waterbirds", f"world.root={broken}", f"world.cache_dir={tmp_path / 'cache'}",
            f"features.backbone={data['backbone']}", "executor=ray", "run_id=broken"]
    with pytest.raises(InputError, match=f"1 image file is missing or unreadable, first: .*{victim.name}"):
        run_pipeline(load_config(None, sets), tmp_path / "runs", progress=False)
    left = [p.name for p in (tmp_path / "runs").iterdir()]
    assert left and all(name.startswith(".failed-broken") for name in left)  # failed, never complete
