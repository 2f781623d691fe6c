"""The write side of one run: :class:`RunWriter` fills a temporary run directory (manifest, metrics, tables,
tensors); :meth:`igcore.store.RunStore.create` publishes it."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as _md
import os
import platform
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from igcore.schema import SCHEMA_VERSION
from igcore.store.files import set_dotted, write_json, write_table, write_tensors

#: Packages whose versions a run's manifest records.
PACKAGES = ("torch", "transformers", "captum", "numpy", "pandas", "pyarrow", "safetensors", "streamlit", "plotly")


def package_versions(packages: Sequence[str] = PACKAGES) -> dict[str, str]:
    """``{"python": version, package: version or "not installed"}`` (a manifest's ``packages``; bench reports)."""
    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = _md.version(name)
        except _md.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


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
        self.final_path: Path = path  # where the run will live once complete (set by RunStore.create)
        self._owners: dict[str, str] = {}  # metrics key -> the stage that wrote it
        self._lock = threading.RLock()  # stages running at once in threads write through one writer

    def write_metrics(self, owner: str, values: dict[str, Any]) -> None:
        """Set ``metrics.json`` keys (dotted: ``hypotheses.z_star``); each key has one writer and is written once."""
        with self._lock:
            for key, value in values.items():
                if key in self._owners:
                    raise RuntimeError(f"metrics key {key!r} was already written by stage {self._owners[key]!r}; one writer per section")
                set_dotted(self.metrics, key, value)
                self._owners[key] = owner

    def owner(self, key: str) -> str:
        """The stage that wrote ``metrics.json`` key ``key`` (dotted, as written)."""
        return self._owners[key]

    def note(self, stage: str, text: str) -> None:
        """A remark people should read about this run (``manifest.json`` ``notes``), from ``stage``."""
        with self._lock:
            self.manifest.setdefault("notes", []).append({"stage": stage, "note": text})

    def record_stage(self, name: str, seconds: float, **info: Any) -> None:
        with self._lock:
            self.manifest["stages"][name] = {"seconds": round(seconds, 3), **info}
            self.flush()

    def flush(self) -> None:
        with self._lock:
            write_json(self.path / "manifest.json", self.manifest)
            write_json(self.path / "metrics.json", self.metrics)

    def in_stage_order(self, stages: Sequence[str]) -> None:
        """Put the manifest's stage records, its notes and the ``metrics.json`` sections in the order of ``stages``
        (the pipeline's order), whatever order stages that ran at once finished in, so that a run's files do not
        depend on which thread came first."""
        with self._lock:
            rank = {name: i for i, name in enumerate(stages)}
            last = len(rank)
            records = self.manifest["stages"]
            self.manifest["stages"] = {name: records[name] for name in sorted(records, key=lambda n: rank.get(n, last))}
            if "notes" in self.manifest:
                self.manifest["notes"].sort(key=lambda note: rank.get(note["stage"], -1))  # stable: a stage's own order kept
            written = sorted(self._owners, key=lambda key: rank.get(self._owners[key], last))  # stable within a stage
            metrics: dict[str, Any] = {}
            for key in written:
                node = self.metrics
                for part in key.split("."):
                    node = node[part]
                set_dotted(metrics, key, node)
            self.metrics = metrics
            self.flush()

    def table(self, name: str, df: pd.DataFrame) -> None:
        write_table(self.path, name, df)

    def tensors(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        write_tensors(self.path, name, arrays)

    def subdir(self, name: str) -> Path:
        p = self.path / name
        p.mkdir(parents=True, exist_ok=True)
        return p
