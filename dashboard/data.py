"""Cached read access to the run store for the dashboard (engine results in, nothing computed here).

Every loader is keyed by ``(runs root, run id, stamp)`` where the stamp changes when files are added
to a run (runs are never rewritten, but the microscope stage may add files later), so caches never
serve stale data and never mix runs. Large arrays use ``st.cache_resource`` (shared, not copied);
small JSON/tables use ``st.cache_data``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

RUNS_ENV = "IG_RUNS_DIR"


def runs_dir() -> Path:
    """RUNS_DIR: ``$IG_RUNS_DIR`` or ``runs/`` (relative to the working directory)."""
    return Path(os.environ.get(RUNS_ENV) or "runs").resolve()


@dataclass(frozen=True)
class RunInfo:
    """What the run picker shows about one run."""

    run_id: str
    complete: bool
    status: str
    created: str
    world: str


def _stamp(path: Path) -> float:
    """Changes whenever a file or folder is added at the top of a run (or its metrics are rewritten)."""
    try:
        stamps = [path.stat().st_mtime]
        metrics = path / "metrics.json"
        if metrics.exists():
            stamps.append(metrics.stat().st_mtime)
        for sub in ("microscope", "tables", "tensors"):
            p = path / sub
            if p.exists():
                stamps.append(p.stat().st_mtime)
        return max(stamps)
    except OSError:
        return 0.0


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@st.cache_data(ttl=5, show_spinner=False)
def list_runs(root: str) -> list[RunInfo]:
    """All runs in ``root``, newest first; incomplete or unreadable ones are listed and marked."""
    from igcore.store import RunStore

    out = []
    for run in RunStore(root).list():
        manifest = _read_json(run.path / "manifest.json")
        status = str(manifest.get("status", "unreadable"))
        world = str((manifest.get("config") or {}).get("world", {}).get("name", "?")) if manifest else "?"
        out.append(RunInfo(run.run_id, status == "complete", status, str(manifest.get("created", "")), world))
    return out


def open_run(root: str, run_id: str) -> RunRef:
    """Validate ``run_id`` through the store (raises igcore's InputError for unknown/unsafe ids)."""
    from igcore.store import RunStore

    run = RunStore(root).load(run_id)
    return RunRef(root, run.run_id, _stamp(run.path))


@dataclass(frozen=True)
class RunRef:
    """A hashable handle on one run, used as the cache key of every loader below."""

    root: str
    run_id: str
    stamp: float

    @property
    def path(self) -> Path:
        return Path(self.root) / self.run_id

    def has(self, relative: str) -> bool:
        return (self.path / relative).exists()

    @property
    def metrics(self) -> dict[str, Any]:
        return _metrics(self.root, self.run_id, self.stamp)

    @property
    def manifest(self) -> dict[str, Any]:
        return _manifest(self.root, self.run_id, self.stamp)

    def run(self) -> Any:
        """The engine's :class:`igcore.store.Run` (for engine functions that take a run)."""
        from igcore.store import Run

        return Run(self.path)


@st.cache_data(show_spinner=False, max_entries=32)
def _metrics(root: str, run_id: str, stamp: float) -> dict[str, Any]:
    return _read_json(Path(root) / run_id / "metrics.json")


@st.cache_data(show_spinner=False, max_entries=32)
def _manifest(root: str, run_id: str, stamp: float) -> dict[str, Any]:
    return _read_json(Path(root) / run_id / "manifest.json")


def table(ref: RunRef, name: str, folder: str = "") -> pd.DataFrame | None:
    """``[folder/]tables/<name>.parquet`` of the run, or None when the run has no such table."""
    return _table(ref.root, ref.run_id, ref.stamp, name, folder)


@st.cache_data(show_spinner=False, max_entries=64)
def _table(root: str, run_id: str, stamp: float, name: str, folder: str) -> pd.DataFrame | None:
    path = Path(root) / run_id / folder / "tables" / f"{name}.parquet"
    if not path.is_file():
        return None
    return pd.read_parquet(path)


def tensors(ref: RunRef, name: str, folder: str = "") -> dict[str, np.ndarray] | None:
    """``[folder/]tensors/<name>.safetensors`` (read-only arrays shared by all sessions), or None."""
    return _tensors(ref.root, ref.run_id, ref.stamp, name, folder)


@st.cache_resource(show_spinner=False, max_entries=16)
def _tensors(root: str, run_id: str, stamp: float, name: str, folder: str) -> dict[str, np.ndarray] | None:
    from safetensors.numpy import load_file

    path = Path(root) / run_id / folder / "tensors" / f"{name}.safetensors"
    if not path.is_file():
        return None
    arrays = load_file(str(path))
    for a in arrays.values():
        a.setflags(write=False)
    return arrays


def file_bytes(ref: RunRef, relative: str) -> bytes | None:
    return _file_bytes(ref.root, ref.run_id, ref.stamp, relative)


@st.cache_data(show_spinner=False, max_entries=32)
def _file_bytes(root: str, run_id: str, stamp: float, relative: str) -> bytes | None:
    path = Path(root) / run_id / relative
    return path.read_bytes() if path.is_file() else None
