"""A user's model under the microscope: a checkpoint trained outside the pipeline as the baseline, and frozen
pretrained features (linear heads). Checkpoints are built and saved by the tests; nothing is downloaded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from transformers import ViTImageProcessor

from igcore.baseline import ImageClassifier, inspect_checkpoint
from igcore.cli import main
from igcore.config import load_config
from igcore.errors import InputError
from igcore.executors import LocalExecutor
from igcore.features import FeatureExtractor, LinearHeadClassifier
from igcore.pipeline import run_pipeline
from igcore.store import load_run_dir
from igcore.worlds import make_world

SIZE = 32
SMALL = {"n_train": 120, "n_val": 60, "n_test_train": 60, "n_test_eval": 60, "n_concept_bank": 120, "image_size": SIZE}
TINY = [f"world.{k}={v}" for k, v in SMALL.items()] + [
    "baseline.epochs=2", "baseline.batch_size=32", "concepts.epochs=2", "microscope.per_group=1",
    'microscope.methods=["integrated_gradients","saliency","grad_cam","layer_integrated_gradients"]',
    "microscope.params.integrated_gradients.n_steps=4", "microscope.params.layer_integrated_gradients.n_steps=4",
    "microscope.tcav.n_random=2", "microscope.tcav.n_concept_images=6", "microscope.tcav.n_inputs=4", "microscope.tcav.repeats=1",
    "microscope.tcav.n_controls=1", 'microscope.tcav.layers=["penultimate"]', "microscope.sanity.n_images=2",
    "microscope.swaps.max_images=12", "microscope.counterfactuals.max_images=12", "microscope.counterfactuals.attribution_per_group=1",
    "microscope.counterfactuals.n_resamples=200", "search.n_ranked=4", "search.max_depth=3",
]


def save_checkpoint(folder: Path, arch: str, labels: list[str], size: int = 40) -> Path:
    """A classifier trained outside the pipeline for a few steps, saved with its image processor."""
    world = make_world("snowwolf", seed=7, **SMALL)
    train = world.split("train")
    clf = ImageClassifier(arch, num_labels=len(labels), image_size=size, epochs=1, batch_size=32, progress=False, device="cpu")
    clf.fit(np.stack([np.asarray(_resize(img, size)) for img in train.images]), train.labels)
    model = clf.module_.model
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {v: k for k, v in enumerate(labels)}
    model.save_pretrained(folder, safe_serialization=True)
    ViTImageProcessor(size={"height": size, "width": size}, image_mean=[0.5] * 3, image_std=[0.25] * 3).save_pretrained(folder)
    return folder


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))


@pytest.fixture(scope="module", params=["resnet-tiny", "vit-tiny"])
def checkpoint(request, tmp_path_factory) -> Path:
    return save_checkpoint(tmp_path_factory.mktemp(request.param) / "ckpt", request.param, ["Husky", "Wolf"])


def test_checkpoint_is_matched_to_the_world(checkpoint):
    found = inspect_checkpoint(checkpoint, ["husky", "wolf"])
    assert found.labels == {"Husky": "husky", "Wolf": "wolf"} and found.columns == (0, 1)
    assert found.spec.size == (40, 40) and found.spec.mean == (0.5, 0.5, 0.5) and found.spec.std == (0.25, 0.25, 0.25)
    swapped = inspect_checkpoint(checkpoint, ["wolf", "husky"])  # the world lists its classes the other way round
    assert swapped.columns == (1, 0)
    mapped = inspect_checkpoint(checkpoint, ["dog", "wild"], {"Husky": "dog", "Wolf": "wild"})
    assert mapped.labels == {"Husky": "dog", "Wolf": "wild"}


def test_checkpoint_outputs_follow_the_world_order(checkpoint):
    world = make_world("snowwolf", seed=7, **SMALL)
    images = world.split("test_eval").images[:8]
    a = ImageClassifier.from_checkpoint(inspect_checkpoint(checkpoint, ["husky", "wolf"]), device="cpu")
    b = ImageClassifier.from_checkpoint(inspect_checkpoint(checkpoint, ["wolf", "husky"]), device="cpu")
    assert np.allclose(a.logits(images), b.logits(images)[:, ::-1], atol=1e-5)
    assert a.source_ == {"trained": False, "checkpoint": "ckpt", "labels": {"Husky": "husky", "Wolf": "wolf"}}


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: (d / "config.json").unlink(), "has no config.json"),
        (lambda d: (d / "model.safetensors").rename(d / "pytorch_model.bin"), "no safetensors weights"),
        (lambda d: _relabel(d, ["cat", "dog"]), "do not match the classes husky, wolf"),
        (lambda d: _relabel(d, ["husky", "wolf", "fox"]), "has 3 output label(s)"),
    ],
)
def test_a_mismatched_checkpoint_is_refused_with_one_line_before_any_work(edit, message, tmp_path, capsys):
    folder = save_checkpoint(tmp_path / "ckpt", "resnet-tiny", ["husky", "wolf"])
    edit(folder)
    code = main(["run", "--out", str(tmp_path / "runs"), "--set", f"baseline.checkpoint={folder}", *(a for s in TINY for a in ("--set", s))])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "runs").exists()


def test_a_label_map_naming_unknown_labels_is_refused(tmp_path):
    folder = save_checkpoint(tmp_path / "ckpt", "resnet-tiny", ["cat", "dog"])
    with pytest.raises(InputError, match="label_map names label"):
        inspect_checkpoint(folder, ["husky", "wolf"], {"lion": "husky"})
    with pytest.raises(InputError, match="not a class of the world"):
        inspect_checkpoint(folder, ["husky", "wolf"], {"cat": "husky", "dog": "tiger"})


def _relabel(folder: Path, labels: list[str]) -> None:
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = {str(i): v for i, v in enumerate(labels)}
    config["label2id"] = {v: i for i, v in enumerate(labels)}
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.slow
def test_a_run_with_a_users_checkpoint_trains_no_baseline_and_fills_the_microscope(checkpoint, tmp_path):
    config = load_config(None, [*TINY, f"baseline.checkpoint={checkpoint}", "run_id=mine"])
    run = load_run_dir(run_pipeline(config, tmp_path, progress=False))
    erm_stage = run.manifest["stages"]["erm"]
    assert erm_stage["trained"] is False and erm_stage["checkpoint"] == "ckpt"
    assert run.metrics["baseline"]["trained"] is False and run.metrics["baseline"]["name"] == "ckpt"
    assert run.metrics["baseline"]["input_size"] == [40, 40]
    assert json.loads((run.path / "models" / "erm" / "estimator.json").read_text())["source"]["trained"] is False
    erm = run.metrics["microscope"]["erm"]
    for part in ("relevance_on_animal", "sanity", "tcav", "effects", "swap_flip_rate", "swap_attribution"):
        assert part in erm, part
    assert run.metrics["hypotheses"]["z_baseline"] is not None and run.metrics["surrogates"]["z_baseline"]["n_eval"] == 60
    loaded = run.load_model("erm", device="cpu")  # the run keeps its own copy, with the checkpoint's input spec
    assert loaded.module_.spec.size == (40, 40)


def test_feature_extraction_is_the_backbones_own_head_input(tmp_path):
    folder = save_checkpoint(tmp_path / "backbone", "resnet-tiny", ["a", "b"])
    world = make_world("snowwolf", seed=7, **SMALL)
    images = world.split("test_eval").images[:10]
    extractor = FeatureExtractor(folder, batch_size=4, device="cpu")
    feats = LocalExecutor(progress=False).map_batches(lambda: extractor, images, extractor.batch_size)  # the features stage's path
    assert feats.shape == (10, extractor.dim_) and feats.dtype == np.float32
    assert np.allclose(feats[:4], extractor(images[:4]), atol=1e-5)  # batching changes nothing
    head = LinearHeadClassifier(str(folder), num_labels=2, epochs=3, batch_size=8, progress=False, device="cpu", image_size=SIZE)
    head.fit(feats, np.arange(10) % 2)
    assert np.allclose(head.logits(feats), head.logits(images), atol=1e-4)  # features or images: one model


@pytest.mark.slow
def test_a_run_on_frozen_features_trains_linear_heads(tmp_path):
    backbone = save_checkpoint(tmp_path / "backbone", "resnet-tiny", ["a", "b"])
    config = load_config(None, [*TINY, f"features.backbone={backbone}", "run_id=feat"])
    run = load_run_dir(run_pipeline(config, tmp_path / "runs", progress=False))
    assert run.manifest["stages_selected"][:3] == ["world", "features", "erm"]
    feats = run.tensors("features")
    assert set(feats) == {"train", "val", "test_train", "test_eval", "concept_bank"} and feats["train"].shape[0] == 120
    assert run.metrics["features"]["dim"] == feats["train"].shape[1]
    for name in ("erm", "oracle", "ig_student", "concepts"):
        kind = json.loads((run.path / "models" / name / "estimator.json").read_text())["estimator"]
        assert kind == "LinearHeadClassifier", name
    assert isinstance(run.load_model("ig_student", device="cpu"), LinearHeadClassifier)
    assert "effects" in run.metrics["microscope"]["erm"]


def test_peers_are_refused_with_frozen_features(tmp_path):
    backbone = save_checkpoint(tmp_path / "backbone", "resnet-tiny", ["a", "b"])
    with pytest.raises(InputError, match="peers"):
        load_config(None, [f"features.backbone={backbone}", 'peers=["jtt"]'])
