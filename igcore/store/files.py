"""Filesystem primitives of the run store: atomic and durable writes, a rename that never replaces, an
exclusive lock, the writer's pid file, dotted metrics keys, and the Parquet / safetensors file layout."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import json
import os
import platform
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from safetensors.numpy import save_file as _save_np

WRITER_FILE = "writer.pid"  # in a run being written: which process writes it


def write_json(path: Path, data: Any) -> None:
    """Replace ``path`` atomically with ``data`` as JSON, durably (file and folder fsynced)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    with open(tmp, "w") as f:
        f.write(json.dumps(data, indent=2, sort_keys=False, default=_json_default))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
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
        fsync_dir(Path(folder))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


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


def write_writer_pid(tmp: Path) -> None:
    """Record in ``tmp`` which process writes it (read by :func:`writer_alive`)."""
    (tmp / WRITER_FILE).write_text(json.dumps({"pid": os.getpid(), "host": platform.node()}))


def writer_alive(tmp: Path) -> bool:
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


def rename_noreplace(src: Path, dst: Path) -> None:
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


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def pop_dotted(data: dict[str, Any], key: str) -> None:
    *parents, leaf = key.split(".")
    node: Any = data
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(leaf, None)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (``flock``) held while the block runs."""
    import fcntl

    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
