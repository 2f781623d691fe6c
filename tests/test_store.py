"""Run store: atomic, never overwritten, crash-safe publication, the schema version checked on opening."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from igcore.errors import InputError
from igcore.schema import SCHEMA_VERSION
from igcore.store import JOURNAL, RunStore, load_run_dir, recompute_output, recover

ROOT = Path(__file__).resolve().parents[1]


def _run(store: RunStore, run_id: str, metrics: dict | None = None) -> None:
    with store.create(run_id, {"seed": 0}) as w:
        w.metrics.update(metrics or {})


def test_atomic_create_list_load(tmp_path):
    store = RunStore(tmp_path / "runs")
    with store.create("r1", {"seed": 1}) as w:
        # while running, the final directory does not exist yet, and the temporary one names its writer
        assert not (tmp_path / "runs" / "r1").exists()
        assert json.loads((w.path / "writer.pid").read_text())["pid"] == os.getpid()
        assert [x.state for x in store.leftovers()] == ["writing"]
        w.metrics["methods"] = {"erm": {"avg_acc": 0.5}}
        w.table("t", pd.DataFrame({"a": [1, 2]}))
        w.tensors("x", {"v": np.arange(3, dtype=np.float32)})
        w.record_stage("world", 1.23456)
    run = store.load("r1")
    assert run.complete and not (run.path / "writer.pid").exists()
    m = run.manifest
    assert m["schema_version"] == SCHEMA_VERSION and m["seed"] == 1
    assert m["stages"]["world"]["seconds"] == 1.235
    assert "torch" in m["packages"]
    assert run.metrics["methods"]["erm"]["avg_acc"] == 0.5
    assert run.table("t")["a"].tolist() == [1, 2]
    assert run.tensors("x")["v"].tolist() == [0, 1, 2]
    assert [r.run_id for r in store.list()] == ["r1"] and store.leftovers() == []


def test_existing_run_is_never_overwritten(tmp_path):
    store = RunStore(tmp_path)
    _run(store, "r1", {"x": 1})
    with pytest.raises(InputError, match="already exists"):
        with store.create("r1", {}):
            pass
    assert store.load("r1").metrics == {"x": 1}


def test_a_run_whose_id_is_taken_meanwhile_is_kept_under_a_new_id(tmp_path):
    """Found in review: the freshly computed run was deleted when the final rename collided."""
    store = RunStore(tmp_path)
    with store.create("same", {}) as w:
        w.metrics["mine"] = True
        _run(RunStore(tmp_path), "same", {"theirs": True})  # another process finishes first
    assert store.load("same").metrics == {"theirs": True}
    assert w.final_path.name.startswith("same-") and w.final_path.is_dir()
    kept = load_run_dir(w.final_path)
    assert kept.complete and kept.metrics == {"mine": True}
    assert "taken by another run" in kept.manifest["notes"][0]["note"]


def test_an_empty_folder_with_the_run_id_is_not_replaced(tmp_path):
    store = RunStore(tmp_path)
    with store.create("r", {}) as w:
        (tmp_path / "r").mkdir()  # someone made the folder meanwhile
    assert (tmp_path / "r").is_dir() and not any((tmp_path / "r").iterdir())
    assert w.final_path.name.startswith("r-") and load_run_dir(w.final_path).complete


def test_failed_run_is_kept_aside_listed_as_failed_and_cleaned(tmp_path):
    store = RunStore(tmp_path)
    with pytest.raises(RuntimeError):
        with store.create("bad", {}):
            raise RuntimeError("boom")
    assert store.list() == []
    (left,) = store.leftovers()
    assert left.state == "failed" and left.path.name.startswith(".failed-bad")
    assert json.loads((left.path / "manifest.json").read_text())["status"] == "failed"
    assert [x.path for x in store.clean()] == [left.path] and not left.path.exists()


def test_a_run_of_a_killed_writer_is_listed_as_interrupted_and_cleaned(tmp_path):
    """A process killed mid-run leaves .tmp-*; it is never listed as a run, and `clean` removes it."""
    code = (
        "import os, sys\n"
        "from igcore.store import RunStore\n"
        "with RunStore(sys.argv[1]).create('k', {}) as w:\n"
        "    print('started', flush=True)\n"
        "    os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9 and "started" in proc.stdout
    store = RunStore(tmp_path)
    assert store.list() == []
    (left,) = store.leftovers()
    assert left.state == "interrupted"
    store.clean()
    assert not any(tmp_path.iterdir()) or all(p.name.startswith(".probe") for p in tmp_path.iterdir())
    _run(store, "k")  # the next run succeeds
    assert store.load("k").complete


def test_a_folder_removed_while_listing_does_not_break_the_list(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    _run(store, "a")
    _run(store, "b")
    real_stat = Path.stat

    def vanishing(self, *args, **kwargs):
        if self.name == "a":
            raise FileNotFoundError(self)
        return real_stat(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", vanishing)
    assert [r.run_id for r in store.list()] == ["b"]


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", "", "x" * 200])
def test_bad_run_ids(tmp_path, bad):
    with pytest.raises(InputError, match="invalid run id"):  # refused for its name, not because no such run exists
        RunStore(tmp_path).load(bad)


def test_unwritable_root(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InputError, match="cannot write"):
        with RunStore(blocker / "runs").create("r", {}):
            pass


@pytest.mark.parametrize(
    "version, message", [(99, "upgrade IG Microscope"), (0, "recompute the run"), ("2", "no valid schema_version")]
)
def test_runs_of_other_schema_versions_are_refused_with_one_line(tmp_path, version, message):
    store = RunStore(tmp_path)
    _run(store, "r")
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    (tmp_path / "r" / "manifest.json").write_text(json.dumps({**manifest, "schema_version": version}))
    with pytest.raises(InputError, match=message) as e:
        store.load("r")
    assert "\n" not in str(e.value)


def test_version_1_runs_are_read(tmp_path):
    store = RunStore(tmp_path)
    _run(store, "r", {"methods": {}})
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    (tmp_path / "r" / "manifest.json").write_text(json.dumps({**manifest, "schema_version": 1}))
    assert store.load("r").info().schema_version == 1


def test_recompute_output_keeps_history_and_replaces_owned_keys(tmp_path):
    store = RunStore(tmp_path)
    _run(store, "r", {"methods": {"erm": 1}, "microscope": {"old": 1}, "hypotheses": {"z_star": [], "z_baseline": ["old"]}})
    run = store.load("r")
    owned = {"microscope", "hypotheses.z_baseline", "hypotheses.z_student"}
    for value in ("one", "two"):
        with recompute_output(run, "microscope", owned) as out:
            (out.path / "v.txt").write_text(value)
            out.metrics.update({"microscope": {"v": value}, "hypotheses.z_student": [value]})
    assert (run.path / "microscope" / "v.txt").read_text() == "two"
    assert (run.path / "microscope.v1" / "v.txt").read_text() == "one"
    metrics = run.metrics
    assert metrics["microscope"] == {"v": "two"} and metrics["methods"] == {"erm": 1}
    assert metrics["hypotheses"] == {"z_star": [], "z_student": ["two"]}  # z_baseline owned, no longer produced
    with pytest.raises(RuntimeError, match="not owned"):
        with recompute_output(run, "microscope", owned) as out:
            out.metrics["methods"] = {}
    with pytest.raises(InputError):
        load_run_dir(tmp_path / "missing")


@pytest.mark.parametrize("crash_after", ["backup", "move"])
def test_an_interrupted_publication_is_finished_on_the_next_opening(tmp_path, crash_after, monkeypatch):
    """A crash between the steps (found in review: between the two renames) never leaves a run without its folder."""
    import igcore.store.journal as store_module

    store = RunStore(tmp_path)
    _run(store, "r", {"microscope": {"v": "old"}})
    run = store.load("r")
    (run.path / "microscope").mkdir()
    (run.path / "microscope" / "v.txt").write_text("old")
    real_rename = os.rename
    calls = []

    def crashing_rename(src, dst):
        calls.append(dst)
        real_rename(src, dst)
        if (crash_after == "backup" and len(calls) == 1) or (crash_after == "move" and len(calls) == 2):
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(store_module.os, "rename", crashing_rename)
    with pytest.raises(KeyboardInterrupt):
        with recompute_output(run, "microscope", {"microscope"}) as out:
            (out.path / "v.txt").write_text("new")
            out.metrics["microscope"] = {"v": "new"}
    monkeypatch.setattr(store_module.os, "rename", real_rename)
    assert (run.path / JOURNAL).is_file()
    journal = (run.path / JOURNAL).read_text()
    reopened = store.load("r")  # replays the journal
    assert (reopened.path / "microscope" / "v.txt").read_text() == "new"
    assert (reopened.path / "microscope.v1" / "v.txt").read_text() == "old"
    assert reopened.metrics["microscope"] == {"v": "new"} and not (run.path / JOURNAL).exists()
    (run.path / JOURNAL).write_text(journal)  # a second process that crashed at the same point replays it again
    recover(run.path)
    assert not (run.path / JOURNAL).exists() and sorted(p.name for p in run.path.glob("microscope*")) == ["microscope", "microscope.v1"]
    assert (run.path / "microscope" / "v.txt").read_text() == "new" and (run.path / "microscope.v1" / "v.txt").read_text() == "old"
    assert store.load("r").metrics["microscope"] == {"v": "new"}  # replaying again changes nothing


def test_two_recomputes_at_once_lose_no_key(tmp_path):
    store = RunStore(tmp_path)
    _run(store, "r", {"a": 0, "b": 0})
    run = store.load("r")
    errors = []

    def recompute(key: str) -> None:
        try:
            for i in range(5):
                with recompute_output(run, f"part_{key}", {key}) as out:
                    out.metrics[key] = i + 1
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=recompute, args=(k,)) for k in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and run.metrics == {"a": 5, "b": 5}


def test_a_killed_recompute_leaves_a_listed_and_cleaned_folder_a_running_one_is_kept(tmp_path):
    """The temporary folder of a recompute killed before publishing is listed as interrupted and removed by
    `clean`; the folder of a recompute still computing is listed as writing and kept; the run is untouched."""
    store = RunStore(tmp_path)
    _run(store, "r", {"microscope": {"v": "old"}})
    code = (
        "import os, sys\n"
        "from igcore.store import RunStore, recompute_output\n"
        "run = RunStore(sys.argv[1]).load('r')\n"
        "with recompute_output(run, 'microscope', {'microscope'}) as out:\n"
        "    (out.path / 'half.txt').write_text('x')\n"
        "    print('started', flush=True)\n"
        "    os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9 and "started" in proc.stdout
    run = store.load("r")
    with recompute_output(run, "microscope", {"microscope"}) as out:  # a recompute of this process, still running
        (left,) = [x for x in store.leftovers() if x.state == "interrupted"]
        assert left.path.parent == run.path and left.path.name.startswith(".tmp-microscope-")
        assert {x.state for x in store.leftovers()} == {"interrupted", "writing"}
        assert [x.path for x in store.clean()] == [left.path] and not left.path.exists()
        assert out.path.is_dir()  # the running one is kept
        out.metrics["microscope"] = {"v": "new"}
    assert store.leftovers() == [] and store.load("r").metrics["microscope"] == {"v": "new"}
    assert [r.run_id for r in store.list()] == ["r"]
