"""Run store: one directory per run, written atomically, never overwritten.

Layout of ``RUNS_DIR/<run_id>/``::

    manifest.json     schema version, config, seed, package versions, per-stage wall time, status
    metrics.json      the contract of DESIGN.md §5
    tables/*.parquet  per-example tables (predictions, concept scores, ...)
    tensors/*.safetensors
    models/<name>/    model weights (safetensors) + config

A run is assembled in ``RUNS_DIR/.tmp-<run_id>-<random>/`` and renamed into place in one step, so a
reader never sees half a run; an existing run id is refused. Additions to a finished run (e.g. a
recomputed microscope stage) go through :meth:`RunStore.add_files`, which writes a temporary sibling
and renames it in, so existing files are never rewritten in place.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as _md
import json
import os
import platform
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from safetensors.numpy import load_file as _load_np
from safetensors.numpy import save_file as _save_np

from igcore.config import check_run_id
from igcore.errors import InputError

SCHEMA_VERSION = 1
PACKAGES = ("torch", "transformers", "captum", "numpy", "pandas", "pyarrow", "safetensors", "streamlit", "plotly")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = _md.version(name)
        except _md.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_json_default))
    os.replace(tmp, path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


class RunWriter:
    """Write side of one run, living in a temporary directory until :meth:`RunStore.create` commits it."""

    def __init__(self, path: Path, run_id: str, config: dict[str, Any]):
        self.path = path
        self.run_id = run_id
        self.manifest: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "run_id": run_id,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "status": "running",
            "config": config,
            "seed": config.get("seed"),
            "packages": package_versions(),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
            "stages": {},
        }
        self.metrics: dict[str, Any] = {}

    def record_stage(self, name: str, seconds: float, **info: Any) -> None:
        self.manifest["stages"][name] = {"seconds": round(seconds, 3), **info}
        self.flush()

    def flush(self) -> None:
        _write_json(self.path / "manifest.json", self.manifest)
        _write_json(self.path / "metrics.json", self.metrics)

    def table(self, name: str, df: pd.DataFrame) -> None:
        write_table(self.path, name, df)

    def tensors(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        write_tensors(self.path, name, arrays)

    def subdir(self, name: str) -> Path:
        p = self.path / name
        p.mkdir(parents=True, exist_ok=True)
        return p


def write_table(run_dir: Path, name: str, df: pd.DataFrame) -> Path:
    out = run_dir / "tables" / f"{name}.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(out, index=False)
    return out


def write_tensors(run_dir: Path, name: str, arrays: dict[str, np.ndarray]) -> Path:
    out = run_dir / "tensors" / f"{name}.safetensors"
    out.parent.mkdir(parents=True, exist_ok=True)
    _save_np({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(out))
    return out


@dataclass(frozen=True)
class Run:
    """Read side of a stored run."""

    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads((self.path / "manifest.json").read_text())

    @property
    def metrics(self) -> dict[str, Any]:
        return json.loads((self.path / "metrics.json").read_text())

    @property
    def complete(self) -> bool:
        try:
            return self.manifest.get("status") == "complete"
        except (OSError, json.JSONDecodeError):
            return False

    @property
    def config(self) -> dict[str, Any]:
        return self.manifest["config"]

    def table(self, name: str) -> pd.DataFrame:
        path = self.path / "tables" / f"{name}.parquet"
        if not path.is_file():
            raise InputError(f"run {self.run_id!r} has no table {name!r}; was the stage that writes it run?")
        return pd.read_parquet(path)

    def tensors(self, name: str) -> dict[str, np.ndarray]:
        path = self.path / "tensors" / f"{name}.safetensors"
        if not path.is_file():
            raise InputError(f"run {self.run_id!r} has no tensors {name!r}; was the stage that writes it run?")
        return _load_np(str(path))

    def has(self, relative: str) -> bool:
        return (self.path / relative).exists()


class RunStore:
    """A directory of runs: ``create`` (atomic), ``list``, ``load``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _ensure_root(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe-", delete=True)
            probe.close()
        except OSError as e:
            raise InputError(f"cannot write runs to {str(self.root)!r}: {e.strerror}; choose a writable --out") from None

    @contextmanager
    def create(self, run_id: str, config: dict[str, Any]) -> Iterator[RunWriter]:
        """Yield a writer on a temporary directory; on success rename it to ``root/run_id``.

        On failure the temporary directory is kept as ``.failed-<run_id>-*`` with status ``failed``
        (for debugging) and never appears in :meth:`list`.
        """
        check_run_id(run_id)
        self._ensure_root()
        final = self.root / run_id
        if final.exists():
            raise InputError(f"run {run_id!r} already exists in {str(self.root)!r}; runs are never overwritten")
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f".tmp-{run_id}-"))
        writer = RunWriter(tmp, run_id, config)
        writer.flush()
        try:
            yield writer
        except BaseException:
            writer.manifest["status"] = "failed"
            writer.flush()
            tmp.rename(tmp.with_name(tmp.name.replace(".tmp-", ".failed-", 1)))
            raise
        writer.manifest["status"] = "complete"
        writer.flush()
        try:
            os.rename(tmp, final)  # atomic; fails if a run with this id appeared meanwhile
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise InputError(f"run {run_id!r} already exists in {str(self.root)!r}; runs are never overwritten") from None

    def list(self) -> list[Run]:
        """All runs (complete or not), newest first. Temporary and failed directories are skipped."""
        if not self.root.is_dir():
            return []
        runs = [Run(p) for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        return sorted(runs, key=lambda r: r.path.stat().st_mtime, reverse=True)

    def load(self, run_id: str) -> Run:
        check_run_id(run_id)
        path = self.root / run_id
        if not (path / "manifest.json").is_file():
            raise InputError(f"no run {run_id!r} in {str(self.root)!r}; `python -m igcore list` shows the runs")
        return Run(path)


def load_run_dir(path: str | Path) -> Run:
    """Open a run from its directory path (CLI commands taking RUN_DIR)."""
    p = Path(path)
    if not (p / "manifest.json").is_file():
        raise InputError(f"{str(p)!r} is not a run directory (no manifest.json)")
    return Run(p)


@contextmanager
def add_files(run: Run, subdir: str) -> Iterator[Path]:
    """Add a new sub-directory ``subdir`` to a finished run atomically (temp sibling + rename).

    An existing ``subdir`` is kept as ``subdir.v<N>`` history rather than overwritten.
    """
    tmp = Path(tempfile.mkdtemp(dir=run.path, prefix=f".tmp-{subdir}-"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    target = run.path / subdir
    if target.exists():
        n = 1
        while (run.path / f"{subdir}.v{n}").exists():
            n += 1
        os.rename(target, run.path / f"{subdir}.v{n}")
    os.rename(tmp, target)
