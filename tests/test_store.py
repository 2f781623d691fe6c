import json

import numpy as np
import pandas as pd
import pytest

from igcore.errors import InputError
from igcore.store import SCHEMA_VERSION, RunStore, add_files, load_run_dir


def test_atomic_create_list_load(tmp_path):
    store = RunStore(tmp_path / "runs")
    with store.create("r1", {"seed": 1}) as w:
        # while running, the final directory does not exist yet
        assert not (tmp_path / "runs" / "r1").exists()
        w.metrics["methods"] = {"erm": {"avg_acc": 0.5}}
        w.table("t", pd.DataFrame({"a": [1, 2]}))
        w.tensors("x", {"v": np.arange(3, dtype=np.float32)})
        w.record_stage("world", 1.23456)
    run = store.load("r1")
    assert run.complete
    m = run.manifest
    assert m["schema_version"] == SCHEMA_VERSION and m["seed"] == 1
    assert m["stages"]["world"]["seconds"] == 1.235
    assert "torch" in m["packages"]
    assert run.metrics["methods"]["erm"]["avg_acc"] == 0.5
    assert run.table("t")["a"].tolist() == [1, 2]
    assert run.tensors("x")["v"].tolist() == [0, 1, 2]
    assert [r.run_id for r in store.list()] == ["r1"]


def test_existing_run_is_never_overwritten(tmp_path):
    store = RunStore(tmp_path)
    with store.create("r1", {}) as w:
        w.metrics["x"] = 1
    with pytest.raises(InputError, match="already exists"):
        with store.create("r1", {}):
            pass
    assert store.load("r1").metrics == {"x": 1}


def test_failed_run_is_kept_aside_and_not_listed(tmp_path):
    store = RunStore(tmp_path)
    with pytest.raises(RuntimeError):
        with store.create("bad", {}):
            raise RuntimeError("boom")
    assert store.list() == []
    failed = [p for p in tmp_path.iterdir() if p.name.startswith(".failed-bad")]
    assert len(failed) == 1
    assert json.loads((failed[0] / "manifest.json").read_text())["status"] == "failed"


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", "", "x" * 200])
def test_bad_run_ids(tmp_path, bad):
    with pytest.raises(InputError):
        RunStore(tmp_path).load(bad)


def test_unwritable_root(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InputError, match="cannot write"):
        with RunStore(blocker / "runs").create("r", {}):
            pass


def test_add_files_keeps_history(tmp_path):
    store = RunStore(tmp_path)
    with store.create("r", {}):
        pass
    run = store.load("r")
    for value in ("one", "two"):
        with add_files(run, "microscope") as d:
            (d / "v.txt").write_text(value)
    assert (run.path / "microscope" / "v.txt").read_text() == "two"
    assert (run.path / "microscope.v1" / "v.txt").read_text() == "one"
    assert load_run_dir(run.path).run_id == "r"
    with pytest.raises(InputError):
        load_run_dir(tmp_path / "missing")
