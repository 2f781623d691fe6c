"""Run store: one directory per run, written atomically, never overwritten; the only reader of run files.

The files of a run and their keys and columns are described once, in :mod:`igcore.schema`. A run is
assembled in ``RUNS_DIR/.tmp-<run_id>-<random>/`` and renamed into place in one step, so a reader never
sees half a run; an existing run id is refused. Additions to a finished run (a recomputed microscope)
go through :func:`add_files`, which writes a temporary sibling and renames it in, so existing files are
never rewritten in place. :class:`Run` reads a stored run through typed accessors and checks its schema
version; the CLI, the bench scripts and the dashboard read runs only through it.
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
from collections.abc import Collection, Iterator
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
from igcore.schema import SCHEMA_VERSION, Manifest, Metrics, check_table, check_version

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
        self.final_path: Path = path  # where the run will live once complete (set by RunStore.create)
        self._owners: dict[str, str] = {}  # metrics key -> the stage that wrote it

    def write_metrics(self, owner: str, values: dict[str, Any]) -> None:
        """Set ``metrics.json`` keys (dotted: ``hypotheses.z_star``); each key has one writer and is written once."""
        for key, value in values.items():
            if key in self._owners:
                raise RuntimeError(f"metrics key {key!r} was already written by stage {self._owners[key]!r}; one writer per section")
            _set_dotted(self.metrics, key, value)
            self._owners[key] = owner

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
    """Read side of a stored run: raw JSON, typed views (:mod:`igcore.schema`), tables, tensors, models.

    Every accessor reads the files anew (runs are small JSON plus lazily read arrays); callers that
    read often (the dashboard) cache by the run's stamp (:meth:`stamp`).
    """

    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    # -- JSON ------------------------------------------------------------------------------------------
    def _json(self, name: str) -> dict[str, Any]:
        try:
            data = json.loads((self.path / name).read_text())
        except FileNotFoundError:
            raise InputError(f"run {self.run_id!r} has no {name}; it is not a complete run directory") from None
        except (OSError, ValueError) as e:
            raise InputError(f"run {self.run_id!r}: {name} cannot be read ({e}); the run is damaged") from None
        if not isinstance(data, dict):
            raise InputError(f"run {self.run_id!r}: {name} does not hold a JSON object; the run is damaged")
        return data

    @property
    def manifest(self) -> dict[str, Any]:
        """``manifest.json`` as stored (schema version checked)."""
        data = self._json("manifest.json")
        check_version(data.get("schema_version"), self.run_id)
        return data

    @property
    def metrics(self) -> dict[str, Any]:
        """``metrics.json`` as stored."""
        return self._json("metrics.json")

    def info(self) -> Manifest:
        """The manifest, typed."""
        return Manifest.model_validate(self.manifest)

    def results(self) -> Metrics:
        """The metrics, typed (sections absent until their stage ran)."""
        return Metrics.model_validate(self.metrics)

    @property
    def status(self) -> str:
        """``complete`` | ``running`` | ``failed``, or ``unreadable`` when the manifest cannot be read."""
        try:
            return str(self.manifest.get("status", "unreadable"))
        except InputError:
            return "unreadable"

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    @property
    def config(self) -> dict[str, Any]:
        return self.manifest["config"]

    def config_model(self) -> Any:
        """The run's config as a validated :class:`igcore.config.Config`."""
        from igcore.config import build_config

        return build_config(self.config, stored=True)

    def stamp(self) -> float:
        """Changes whenever files are added to the run or its metrics are replaced (a cache key)."""
        stamps = []
        for sub in ("", "metrics.json", "microscope", "tables", "tensors", "models"):
            try:
                stamps.append((self.path / sub).stat().st_mtime)
            except OSError:
                continue
        return max(stamps, default=0.0)

    # -- world --------------------------------------------------------------------------------------------
    def vocabulary(self) -> tuple[Any, list[str]]:
        """The world's vocabulary and class names as the run recorded them."""
        from igcore.worlds.base import Concept, Vocabulary

        world = self.results().world
        if world is None:
            raise InputError(f"run {self.run_id!r} has no world section; its world stage did not finish")
        vocab = Vocabulary(tuple(Concept(c.id, c.text, c.kind) for c in world.vocabulary))  # type: ignore[arg-type]
        return vocab, list(world.classes)

    # -- tables and tensors -----------------------------------------------------------------------------
    def table(self, name: str, folder: str = "") -> pd.DataFrame:
        """``[folder/]tables/<name>.parquet`` (required columns checked, see :data:`igcore.schema.TABLES`)."""
        path = self.path / folder / "tables" / f"{name}.parquet"
        if not path.is_file():
            raise InputError(f"run {self.run_id!r} has no table {name!r}; was the stage that writes it run?")
        df = pd.read_parquet(path)
        if not folder:
            check_table(name, df.columns, self.run_id)
        return df

    def tensors(self, name: str, folder: str = "") -> dict[str, np.ndarray]:
        path = self.path / folder / "tensors" / f"{name}.safetensors"
        if not path.is_file():
            raise InputError(f"run {self.run_id!r} has no tensors {name!r}; was the stage that writes it run?")
        return _load_np(str(path))

    def has(self, relative: str) -> bool:
        return (self.path / relative).exists()

    def file_bytes(self, relative: str) -> bytes | None:
        path = self.path / relative
        return path.read_bytes() if path.is_file() else None

    # -- models -------------------------------------------------------------------------------------------
    def model_names(self) -> list[str]:
        """Names of the image classifiers stored in the run (``models/<name>/estimator.json``)."""
        root = self.path / "models"
        return sorted(p.name for p in root.iterdir() if (p / "estimator.json").is_file()) if root.is_dir() else []

    def model_dir(self, name: str) -> Path:
        path = self.path / "models" / name
        if not (path / "estimator.json").is_file():
            raise InputError(f"run {self.run_id!r} has no model {name!r}; it has: {', '.join(self.model_names()) or '(none)'}")
        return path

    def load_model(self, name: str, device: str = "auto") -> Any:
        """The stored :class:`igcore.baseline.ImageClassifier` ``name``."""
        from igcore.baseline import ImageClassifier

        return ImageClassifier.load(self.model_dir(name), device=device)


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
        writer.final_path = final
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
        stamped = []
        for p in self.root.iterdir():
            try:  # a folder removed between listing and stat is skipped, not an error
                if p.is_dir() and not p.name.startswith("."):
                    stamped.append((p.stat().st_mtime, Run(p)))
            except OSError:
                continue
        return [run for _, run in sorted(stamped, key=lambda t: t[0], reverse=True)]

    def load(self, run_id: str) -> Run:
        check_run_id(run_id)
        path = self.root / run_id
        if not (path / "manifest.json").is_file():
            raise InputError(f"no run {run_id!r} in {str(self.root)!r}; `python -m igcore list` shows the runs")
        run = Run(path)
        run.manifest  # noqa: B018  (schema version checked on opening)
        return run


def load_run_dir(path: str | Path) -> Run:
    """Open a run from its directory path (CLI commands taking RUN_DIR)."""
    p = Path(path)
    if not (p / "manifest.json").is_file():
        raise InputError(f"{str(p)!r} is not a run directory (no manifest.json)")
    run = Run(p)
    run.manifest  # noqa: B018  (schema version checked on opening)
    return run


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


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def _pop_dotted(data: dict[str, Any], key: str) -> None:
    *parents, leaf = key.split(".")
    node: Any = data
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(leaf, None)


def replace_metrics(run: Run, owned: Collection[str], values: dict[str, Any]) -> None:
    """Replace the ``metrics.json`` keys ``owned`` by one stage with ``values`` (a recomputed stage).

    Keys the stage owns but no longer produces are removed. Read, change and atomic replace happen under
    an exclusive lock on the run, so two recomputes at once cannot lose one another's keys.
    """
    stray = sorted(set(values) - set(owned))
    if stray:
        raise RuntimeError(f"metrics key(s) {', '.join(stray)} are not owned by the recomputed stage")
    with _locked(run.path / ".metrics.lock"):
        metrics = run.metrics
        for key in owned:
            _pop_dotted(metrics, key)
        for key, value in values.items():
            _set_dotted(metrics, key, value)
        _write_json(run.path / "metrics.json", metrics)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (``flock``) held while the block runs."""
    import fcntl

    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
