"""Changing a finished run: a recomputed stage's outputs are published through a journal, under a lock, so a
process killed at any point leaves the old outputs or a journal the next opening replays."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from igcore.store.files import (
    WRITER_FILE,
    fsync_dir,
    fsync_tree,
    locked,
    pop_dotted,
    set_dotted,
    write_json,
    write_writer_pid,
)

if TYPE_CHECKING:
    from igcore.store.reader import Run

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
    write_writer_pid(tmp)  # so a folder left by a killed recompute is told from one being computed (leftovers)
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
    with locked(run.path / ".metrics.lock"):  # clean() removes a temporary folder only under this lock
        (tmp / WRITER_FILE).unlink()
        fsync_tree(tmp)
        n = 1
        while (run.path / f"{subdir}.v{n}").exists():
            n += 1
        journal = {"subdir": subdir, "tmp": tmp.name, "backup": f"{subdir}.v{n}", "owned": sorted(owned), "values": output.metrics}
        write_json(run.path / JOURNAL, journal)
        _replay(run.path, journal)


def recover(path: Path) -> None:
    """Finish a recomputed stage's publication that a killed process left half done (see :func:`recompute_output`)."""
    if not (path / JOURNAL).is_file():
        return
    with locked(path / ".metrics.lock"):
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
        fsync_dir(path)
    metrics = json.loads((path / "metrics.json").read_text())
    for key in journal["owned"]:
        pop_dotted(metrics, key)
    for key, value in journal["values"].items():
        set_dotted(metrics, key, value)
    write_json(path / "metrics.json", metrics)
    (path / JOURNAL).unlink()
    fsync_dir(path)
