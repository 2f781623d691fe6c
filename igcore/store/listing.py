"""A directory of runs: creating one atomically, listing and opening runs (a journal left by a killed recompute is
replayed first), finding and cleaning leftovers."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from igcore.errors import InputError
from igcore.schema import check_run_id
from igcore.store.files import (
    WRITER_FILE,
    fsync_dir,
    fsync_tree,
    locked,
    rename_noreplace,
    write_writer_pid,
    writer_alive,
)
from igcore.store.journal import recover
from igcore.store.reader import Run
from igcore.store.writer import RunWriter


@dataclass(frozen=True)
class Leftover:
    """A folder in the runs directory that is not a run (see :meth:`RunStore.leftovers`)."""

    path: Path
    state: str  # writing | interrupted | failed


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
            raise InputError(f"run {run_id!r} already exists in {str(self.root)!r}; runs are never overwritten: give another run_id, "
                             "or leave run_id unset for a new name")
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f".tmp-{run_id}-"))
        write_writer_pid(tmp)
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
                rename_noreplace(tmp, writer.final_path)
                break
            except FileExistsError:  # another process took the id meanwhile: keep this run under a new one
                writer.final_path = self.root / f"{run_id}-{uuid.uuid4().hex[:6]}"
                writer.manifest["run_id"] = writer.final_path.name
                writer.note("store", f"run id {run_id!r} was taken by another run while this one was computed; "
                                     f"stored as {writer.final_path.name!r}")
                writer.flush()
        fsync_dir(self.root)

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
                    out.append(Leftover(p, "writing" if writer_alive(p) else "interrupted"))
                else:  # a run: the temporary folder of a recompute that is running or was killed
                    out += [Leftover(q, "writing" if writer_alive(q) else "interrupted")
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
                with locked(leftover.path.parent / ".metrics.lock"):
                    if not leftover.path.is_dir() or writer_alive(leftover.path):
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
        return _open(path)


def load_run_dir(path: str | Path) -> Run:
    """Open a run from its directory path (CLI commands taking RUN_DIR)."""
    p = Path(path)
    if not (p / "manifest.json").is_file():
        raise InputError(f"{str(p)!r} is not a run directory (no manifest.json)")
    return _open(p)


def _open(path: Path) -> Run:
    """The run at ``path``, after finishing a recompute a killed process left half published; its schema
    version is checked on opening."""
    recover(path)
    run = Run(path)
    run.manifest  # noqa: B018  (reading it checks the schema version)
    return run
