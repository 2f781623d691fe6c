"""The run's thread policy and malloc settings (igcore.runtime): applied when a run starts, recorded in its manifest (threads restored after)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_info

from igcore import baseline
from igcore.baseline import ImageClassifier
from igcore.config import load_config
from igcore.context import RunContext
from igcore.errors import InputError
from igcore.pipeline import run_pipeline
from igcore.runtime import HEAP_SETTINGS, RuntimeConfig, blas_env, thread_policy, training_precision, warm_kernels
from testkit.runs import tiny_sets


@pytest.fixture
def two_threads() -> None:
    """The caller runs with 2 intra-op threads (so that a policy of 1 is visible, and its restoring too)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_run_applies_and_records_the_thread_policy(tmp_path: Path, two_threads: None) -> None:
    seen: dict[str, int] = {}

    def on_stage(name: str, i: int, n: int) -> None:
        seen[name] = torch.get_num_threads()

    config = load_config(None, [*tiny_sets(), "runtime.threads=1", "run_id=threads"])
    run = run_pipeline(config, tmp_path, on_stage=on_stage, stages=["world"], progress=False)
    assert seen["world"] == 1 and seen["done"] == 1
    assert torch.get_num_threads() == 2  # the caller's setting is back
    recorded = json.loads((run / "manifest.json").read_text())["threads"]
    assert recorded["threads"] == 1 and recorded["torch_intra_op"] == 1
    # what torch has, whether or not this process could still set it (inter-op threads are set once per process)
    assert recorded["interop_threads"] == 1 and recorded["torch_inter_op"] == torch.get_num_interop_threads()
    assert all(n == 1 for n in recorded["blas"].values())


def test_a_run_keeps_freed_memory_and_records_what_is_in_effect(tmp_path: Path) -> None:
    """In a fresh process (the malloc settings last as long as it does): a run with ``runtime.keep_freed_memory=false``
    applies nothing and records ``{}``; the default run applies glibc's settings and records them."""
    script = (
        "import json, sys\n"
        "from igcore.config import load_config\n"
        "from igcore.pipeline import run_pipeline\n"
        "from testkit.runs import tiny_sets\n"
        "for i, keep in enumerate(('false', 'true')):\n"
        "    config = load_config(None, [*tiny_sets(), f'runtime.keep_freed_memory={keep}', f'run_id=heap{i}'])\n"
        "    run = run_pipeline(config, sys.argv[1], stages=['world'], progress=False)\n"
        "    print(json.dumps(json.loads((run / 'manifest.json').read_text())['heap']))\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=True).stdout
    without, with_ = (json.loads(line) for line in out.strip().splitlines()[-2:])
    assert without == {}
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert with_ == ({name: value for name, (_, value) in HEAP_SETTINGS.items()} if glibc else {})


def test_warming_the_kernels_draws_nothing_from_the_runs_generators_and_a_run_records_it(tmp_path: Path) -> None:
    """The warm-up step before stages train side by side (a race below torch: bench/thread_race.py) leaves torch's
    process-wide generator where it was, so no number of the run moves; the manifest says what it cost."""
    torch.manual_seed(5)
    expected = torch.rand(4)
    torch.manual_seed(5)
    assert warm_kernels(torch.device("cpu")) > 0
    assert torch.equal(torch.rand(4), expected)
    run = run_pipeline(load_config(None, [*tiny_sets(), "run_id=warm"]), tmp_path, stages=["world"], progress=False)
    assert json.loads((run / "manifest.json").read_text())["warm_seconds"] > 0


def test_the_default_leaves_one_core_free() -> None:
    expected = max(1, (os.cpu_count() or 1) - 1)
    assert RuntimeConfig().intra_op() == expected
    before = torch.get_num_threads()
    torch.set_num_threads(expected + 1)  # the caller's setting differs from the policy's, so applying it shows
    try:
        with thread_policy(RuntimeConfig()) as threads:
            assert threads["threads"] is None and torch.get_num_threads() == threads["torch_intra_op"] == expected
        assert torch.get_num_threads() == expected + 1  # and the caller's is back
    finally:
        torch.set_num_threads(before)


def test_zero_leaves_the_libraries_default(two_threads: None) -> None:
    with thread_policy(RuntimeConfig(threads=0, interop_threads=0)) as threads:
        assert threads["torch_intra_op"] == 2
    assert blas_env(0) == {}
    assert blas_env(3) == {"OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3", "OPENBLAS_NUM_THREADS": "3"}


def test_blas_pools_follow_the_policy_and_are_restored() -> None:
    before = {p["prefix"]: p["num_threads"] for p in threadpool_info()}
    with thread_policy(RuntimeConfig(threads=1)):
        assert all(p["num_threads"] == 1 for p in threadpool_info())
    assert {p["prefix"]: p["num_threads"] for p in threadpool_info()} == before


@pytest.mark.parametrize(
    ("setting", "message"),
    [("runtime.threads=-1", "runtime.threads must be greater than or equal to 0"),
     ("runtime.threads=many", "runtime.threads must be a valid integer"),
     ("runtime.interop_threads=100000", "runtime.interop_threads must be less than or equal to 1024"),
     ("runtime.thread=2", "unknown config key 'runtime.thread'")],
)
def test_bad_thread_settings_are_one_line_input_errors(setting: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as e:
        load_config(None, [setting])
    assert "\n" not in str(e.value)


# -- the arithmetic of the training steps ------------------------------------------------------------------------


@pytest.mark.parametrize("native, expected", [(True, "bfloat16"), (False, "float32")])
def test_auto_precision_is_bfloat16_only_where_the_cpu_computes_it(monkeypatch: pytest.MonkeyPatch, native: bool, expected: str) -> None:
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: native, raising=False)
    cpu = torch.device("cpu")
    assert training_precision("auto", cpu) == expected
    assert training_precision("float32", cpu) == "float32" and training_precision("bfloat16", cpu) == "bfloat16"


def _dtypes_seen(precision: str, side: int = 32) -> tuple[set[torch.dtype], set[torch.dtype], ImageClassifier]:
    """The dtypes of the first convolution's outputs during training steps and during evaluation."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (24, side, side, 3), dtype=np.uint8)
    labels = np.arange(24) % 2
    training, evaluating = set(), set()
    convs: list[torch.nn.Module] = []  # the model's own first convolution, not the copies the bfloat16 check makes

    def record(module: torch.nn.Module, args: object, out: torch.Tensor) -> None:
        if module is convs[0]:
            (training if module.training else evaluating).add(out.dtype)

    clf = ImageClassifier("resnet-tiny", 2, image_size=side, epochs=2, batch_size=8, device="cpu", progress=False, precision=precision)
    original = ImageClassifier.fit

    def fit_with_hook(self: ImageClassifier, *args: object, **kwargs: object) -> ImageClassifier:
        build = baseline.build_model

        def hooked(*a: object, **k: object) -> torch.nn.Module:
            model = build(*a, **k)
            convs.append(next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d)))
            convs[0].register_forward_hook(record)
            return model

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(baseline, "build_model", hooked)
            return original(self, *args, **kwargs)

    fit_with_hook(clf, images, labels, val=(images, labels))
    clf.logits(images)
    return training, evaluating, clf


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_training_steps_run_in_the_precision_and_everything_else_in_float32(precision: str) -> None:
    training, evaluating, clf = _dtypes_seen(precision)
    assert training == {getattr(torch, precision)}
    assert evaluating == {torch.float32}  # validation and scores
    assert all(p.dtype == torch.float32 for p in clf.module_.parameters())  # the weights stay float32
    assert all(np.isfinite(r["train_loss"]) for r in clf.history_)
    assert clf.logits(np.zeros((2, 32, 32, 3), np.uint8)).dtype == np.float32
    assert clf.precision_ == precision


def test_bfloat16_is_refused_where_a_strided_convolution_sees_one_pixel(tmp_path: Path) -> None:
    # resnet-tiny on 16 px images: the last stage's 3x3 stride-2 convolution gets a 1x1 input, whose bfloat16 weight
    # gradient oneDNN gets wrong (igcore.baseline.bfloat16_steps_agree): the fit trains in float32 and says so
    training, _, clf = _dtypes_seen("bfloat16", side=16)
    assert training == {torch.float32} and clf.precision_ == "float32"
    saved = json.loads((clf.save(tmp_path / "model") / "estimator.json").read_text())
    assert saved["params"]["precision"] == "bfloat16" and saved["precision"] == "float32"


class _SignFlipsInBfloat16(torch.nn.Module):
    """A model whose bfloat16 arithmetic is grossly wrong: its output changes sign under autocast."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(12, 2)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.linear(pixels.flatten(1))
        return -out if torch.is_autocast_enabled(pixels.device.type) else out


def test_bfloat16_steps_that_disagree_with_float32_are_refused() -> None:
    pixels, targets = torch.rand(8, 3, 2, 2), torch.arange(8) % 2

    def loss(logits: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(logits, targets)

    assert not baseline.bfloat16_steps_agree(_SignFlipsInBfloat16(), pixels, loss)
    assert baseline.bfloat16_steps_agree(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2)), pixels, loss)


def test_an_unknown_precision_is_an_input_error() -> None:
    clf = ImageClassifier("resnet-tiny", 2, image_size=16, epochs=1, batch_size=8, device="cpu", progress=False, precision="float16")
    with pytest.raises(InputError, match="precision 'float16' is not one of float32, bfloat16"):
        clf.fit(np.zeros((4, 16, 16, 3), np.uint8), np.array([0, 1, 0, 1]))


def test_a_run_records_the_precision_of_its_training_steps(tmp_path: Path) -> None:
    config = load_config(None, [*tiny_sets(), "runtime.precision=bfloat16", "run_id=precision"])
    run = run_pipeline(config, tmp_path, stages=["world", "erm"], progress=False)
    assert json.loads((run / "manifest.json").read_text())["precision"] == "bfloat16"
    assert json.loads((run / "models" / "erm" / "estimator.json").read_text())["params"]["precision"] == "bfloat16"
    assert not any("trained in float32" in note["note"] for note in json.loads((run / "manifest.json").read_text()).get("notes", []))
    # worlds are 32 px and more; a model that fell back (16 px, above) gets a note in the run that trained it
    notes: list[str] = []
    _, _, refused = _dtypes_seen("bfloat16", side=16)
    RunContext.note_precision(SimpleNamespace(note=notes.append), "erm", refused)  # type: ignore[arg-type]
    assert notes and notes[0].startswith("erm trained in float32, not bfloat16")
    with pytest.raises(InputError, match="runtime.precision"):
        load_config(None, ["runtime.precision=half"])


def test_the_bfloat16_check_leaves_a_stateful_objective_alone() -> None:
    # GroupDRO's loss moves its group weights at every call: the check must not call it (nor refuse bfloat16 because
    # two of its calls differ), so the weights after the fit are those of training alone
    from igcore.peers.groupdro import GroupDROClassifier

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)
    labels, groups = np.arange(24) % 2, np.arange(24) % 4
    fits = {}
    for precision, check in (("bfloat16", True), ("bfloat16", False)):
        with pytest.MonkeyPatch.context() as mp:
            if not check:
                mp.setattr(baseline, "bfloat16_steps_agree", lambda *a, **k: True)
            clf = GroupDROClassifier("resnet-tiny", 2, image_size=32, epochs=2, batch_size=8, device="cpu", progress=False,
                                     precision=precision).set_groups(groups)
            fits[check] = clf.fit(images, labels)
    assert fits[True].precision_ == "bfloat16"
    assert torch.equal(fits[True].q_, fits[False].q_)
