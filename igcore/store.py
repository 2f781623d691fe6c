"""Run store: one directory per run, written atomically, never overwritten; the only reader of run files.

The files of a run and their keys and columns are described once, in :mod:`igcore.schema`. A run is
assembled in ``RUNS_DIR/.tmp-<run_id>-<random>/`` and renamed into place in one step, so a reader never
sees half a run; an existing run id is refused. Additions to a finished run (a recomputed microscope)
go through :func:`recompute_output`, which writes a temporary sibling and publishes it with a journal, so existing files are
never rewritten in place. :class:`Run` reads a stored run through typed accessors and checks its schema
version; the CLI, the bench scripts and the dashboard read runs only through it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as _dt
import errno
import functools
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

WRITER_FILE = "writer.pid"  # in a run being written: which process writes it
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
    """Replace ``path`` atomically with ``data`` as JSON, durably (file and folder fsynced)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    with open(tmp, "w") as f:
        f.write(json.dumps(data, indent=2, sort_keys=False, default=_json_default))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Flush every file and folder under ``root`` to disk, so a rename that publishes it publishes data."""
    for folder, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(folder))


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
        """The run's vocabulary (the columns of its concept scores: the world's concepts, then the discovered
        ones) and class names as the run recorded them."""
        from igcore.worlds.base import Concept, Vocabulary

        results = self.results()
        world = results.world
        if world is None:
            raise InputError(f"run {self.run_id!r} has no world section; its world stage did not finish")
        records = (results.concepts or {}).get("vocabulary") or [c.model_dump() for c in world.vocabulary]
        vocab = Vocabulary(tuple(Concept(c["id"], c["text"], c["kind"]) for c in records))
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
        """The stored classifier ``name`` (an :class:`igcore.baseline.ImageClassifier`, or a
        :class:`igcore.features.LinearHeadClassifier` when the run used frozen features)."""
        from igcore.baseline import ImageClassifier
        from igcore.features import LinearHeadClassifier

        path = self.model_dir(name)
        kind = json.loads((path / "estimator.json").read_text()).get("estimator")
        return (LinearHeadClassifier if kind == "LinearHeadClassifier" else ImageClassifier).load(path, device=device)


@dataclass(frozen=True)
class Leftover:
    """A folder in the runs directory that is not a run (see :meth:`RunStore.leftovers`)."""

    path: Path
    state: str  # writing | interrupted | failed


def _write_writer(tmp: Path) -> None:
    """Record in ``tmp`` which process writes it (read by :func:`_writer_alive`)."""
    (tmp / WRITER_FILE).write_text(json.dumps({"pid": os.getpid(), "host": platform.node()}))


def _writer_alive(tmp: Path) -> bool:
    """Whether the process that writes ``tmp`` (its ``writer.pid``) still runs on this machine."""
    try:
        info = json.loads((tmp / WRITER_FILE).read_text())
    except (OSError, ValueError):
        # No writer file: killed while publishing (the manifest says complete), or written by an engine
        # older than the writer file, which may still run: only the first is known to be dead.
        try:
            return json.loads((tmp / "manifest.json").read_text()).get("status") != "complete"
        except (OSError, ValueError):
            return False
    if info.get("host") != platform.node():
        return True  # another machine's writer: cannot tell, so never remove it
    try:
        os.kill(int(info["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, ValueError, TypeError):
        return True
    return True


def _rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst`` atomically, raising FileExistsError if ``dst`` exists (even an empty folder).

    Linux's ``renameat2(RENAME_NOREPLACE)`` makes the check and the rename one step; elsewhere (or on a
    file system without it) a check precedes ``os.rename``, which replaces at most an empty folder.
    """
    libc = _libc()
    if libc is not None:
        if libc.renameat2(-100, os.fsencode(src), -100, os.fsencode(dst), 1) == 0:  # AT_FDCWD, RENAME_NOREPLACE
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise FileExistsError(dst)
        if err not in (errno.ENOSYS, errno.EINVAL):
            raise OSError(err, os.strerror(err), str(src))
    if dst.exists():
        raise FileExistsError(dst)
    os.rename(src, dst)


@functools.cache
def _libc() -> Any:
    """glibc with ``renameat2``, or None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.renameat2  # noqa: B018
        return libc
    except (OSError, AttributeError, TypeError):
        return None


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
        """Yield a writer on a temporary directory; on success publish it as ``root/run_id``.

        The temporary directory ``.tmp-<run_id>-*`` records the writing process (``writer.pid``), so a
        directory left by a killed process is told apart from one being written (:meth:`leftovers`). On
        an exception it is kept as ``.failed-<run_id>-*`` with status ``failed``. Everything is fsynced
        before the rename that publishes the run. If a run with the same id appeared while this one was
        computed, this one is published under ``<run_id>-<random>`` (``writer.final_path``; a note in
        the manifest says so) rather than lost.
        """
        check_run_id(run_id)
        self._ensure_root()
        final = self.root / run_id
        if final.exists():
            raise InputError(f"run {run_id!r} already exists in {str(self.root)!r}; runs are never overwritten")
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f".tmp-{run_id}-"))
        _write_writer(tmp)
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
        (tmp / WRITER_FILE).unlink()
        fsync_tree(tmp)
        while True:
            try:
                _rename_noreplace(tmp, writer.final_path)
                break
            except FileExistsError:  # another process took the id meanwhile: keep this run under a new one
                writer.final_path = self.root / f"{run_id}-{uuid.uuid4().hex[:6]}"
                writer.manifest["run_id"] = writer.final_path.name
                writer.manifest.setdefault("notes", []).append(
                    {"stage": "store", "note": f"run id {run_id!r} was taken by another run while this one was computed; "
                                               f"stored as {writer.final_path.name!r}"}
                )
                writer.flush()
        _fsync_dir(self.root)

    def leftovers(self) -> list[Leftover]:
        """Folders that are not runs: runs being written, written by a process that died, or that failed."""
        if not self.root.is_dir():
            return []
        out = []
        for p in sorted(self.root.iterdir()):
            try:
                if not p.is_dir():
                    continue
                if p.name.startswith(".failed-"):
                    out.append(Leftover(p, "failed"))
                elif p.name.startswith(".tmp-"):
                    out.append(Leftover(p, "writing" if _writer_alive(p) else "interrupted"))
                else:  # a run: the temporary folder of a recompute that is running or was killed
                    out += [Leftover(q, "writing" if _writer_alive(q) else "interrupted")
                            for q in sorted(p.glob(".tmp-*")) if q.is_dir()]
            except OSError:
                continue
        return out

    def clean(self) -> list[Leftover]:
        """Remove failed and interrupted leftovers (never a run being written); returns what was removed."""
        removed = []
        for leftover in self.leftovers():
            if leftover.state == "writing":
                continue
            if leftover.path.parent == self.root:
                shutil.rmtree(leftover.path, ignore_errors=True)
            else:  # inside a run: under the lock a recompute publishes with, and only if still a leftover
                recover(leftover.path.parent)  # a half-published recompute is finished first: its folder is not left over
                with _locked(leftover.path.parent / ".metrics.lock"):
                    if not leftover.path.is_dir() or _writer_alive(leftover.path):
                        continue
                    shutil.rmtree(leftover.path, ignore_errors=True)
            removed.append(leftover)
        return removed

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
        recover(path)
        run = Run(path)
        run.manifest  # noqa: B018  (schema version checked on opening)
        return run


def load_run_dir(path: str | Path) -> Run:
    """Open a run from its directory path (CLI commands taking RUN_DIR)."""
    p = Path(path)
    if not (p / "manifest.json").is_file():
        raise InputError(f"{str(p)!r} is not a run directory (no manifest.json)")
    recover(p)
    run = Run(p)
    run.manifest  # noqa: B018  (schema version checked on opening)
    return run


@dataclass
class StageOutput:
    """What a recomputed stage writes: files under ``path`` (its new folder) and its metrics keys."""

    path: Path
    metrics: dict[str, Any]


JOURNAL = ".commit.json"  # in a run: a recomputed stage's outputs being published (replayed if interrupted)


@contextmanager
def recompute_output(run: Run, subdir: str, owned: Collection[str]) -> Iterator[StageOutput]:
    """Publish a recomputed stage of a finished run: a new ``subdir/`` and the metrics keys it ``owned``.

    The block writes into ``output.path`` (a temporary folder in the run) and fills ``output.metrics``.
    Then, under an exclusive lock on the run, a journal names the steps — keep the old ``subdir`` as
    ``subdir.v<N>``, move the new one in, replace the owned metrics keys — and the steps run. A process
    killed at any point leaves either the old outputs (the journal was not written yet; the temporary
    folder is a leftover) or a journal that the next opening of the run replays (:func:`recover`), so a
    run never lacks its ``subdir`` or holds metrics of one version beside files of another. Two
    recomputes at once are serialised by the lock; neither loses the other's keys.
    """
    tmp = Path(tempfile.mkdtemp(dir=run.path, prefix=f".tmp-{subdir}-"))
    _write_writer(tmp)  # so a folder left by a killed recompute is told from one being computed (leftovers)
    output = StageOutput(tmp, {})
    try:
        yield output
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    stray = sorted(set(output.metrics) - set(owned))
    if stray:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"metrics key(s) {', '.join(stray)} are not owned by the recomputed stage")
    with _locked(run.path / ".metrics.lock"):  # clean() removes a temporary folder only under this lock
        (tmp / WRITER_FILE).unlink()
        fsync_tree(tmp)
        n = 1
        while (run.path / f"{subdir}.v{n}").exists():
            n += 1
        journal = {"subdir": subdir, "tmp": tmp.name, "backup": f"{subdir}.v{n}", "owned": sorted(owned), "values": output.metrics}
        _write_json(run.path / JOURNAL, journal)
        _replay(run.path, journal)


def recover(path: Path) -> None:
    """Finish a recomputed stage's publication that a killed process left half done (see :func:`recompute_output`)."""
    if not (path / JOURNAL).is_file():
        return
    with _locked(path / ".metrics.lock"):
        try:
            journal = json.loads((path / JOURNAL).read_text())
        except FileNotFoundError:
            return  # another process finished it meanwhile
        _replay(path, journal)


def _replay(path: Path, journal: dict[str, Any]) -> None:
    """The journal's steps; each is skipped when already done, so replaying twice changes nothing."""
    target, tmp, backup = path / journal["subdir"], path / journal["tmp"], path / journal["backup"]
    if tmp.exists():
        if target.exists():
            os.rename(target, backup)
        os.rename(tmp, target)
        _fsync_dir(path)
    metrics = json.loads((path / "metrics.json").read_text())
    for key in journal["owned"]:
        _pop_dotted(metrics, key)
    for key, value in journal["values"].items():
        _set_dotted(metrics, key, value)
    _write_json(path / "metrics.json", metrics)
    (path / JOURNAL).unlink()
    _fsync_dir(path)


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
