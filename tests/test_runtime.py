"""The run's thread policy and malloc settings (igcore.runtime): applied when a run starts, recorded in its manifest (threads restored after)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from threadpoolctl import threadpool_info

from igcore.config import load_config
from igcore.errors import InputError
from igcore.pipeline import run_pipeline
from igcore.runtime import HEAP_SETTINGS, RuntimeConfig, blas_env, thread_policy
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
    assert recorded["interop_threads"] == 1 and recorded["torch_inter_op"] >= 1
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


def test_the_default_leaves_one_core_free(two_threads: None) -> None:
    expected = max(1, (os.cpu_count() or 1) - 1)
    assert RuntimeConfig().intra_op() == expected
    with thread_policy(RuntimeConfig()) as threads:
        assert threads["threads"] is None and torch.get_num_threads() == threads["torch_intra_op"] == expected


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
