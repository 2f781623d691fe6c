"""Run store: one directory per run, written atomically, never overwritten; the only reader of run files.

The files of a run and their keys and columns are described once, in :mod:`igcore.schema`. A run is
assembled in ``RUNS_DIR/.tmp-<run_id>-<random>/`` and renamed into place in one step, so a reader never
sees half a run; an existing run id is refused. Additions to a finished run (a recomputed microscope)
go through :func:`recompute_output`, which writes a temporary sibling and publishes it with a journal, so existing files are
never rewritten in place. :class:`Run` reads a stored run through typed accessors and checks its schema
version; the CLI, the bench scripts and the dashboard read runs only through it.

One job per module: :mod:`~igcore.store.files` (atomic writes, a rename that never replaces, locks),
:mod:`~igcore.store.writer` (one run being written), :mod:`~igcore.store.reader` (a stored run),
:mod:`~igcore.store.listing` (the runs directory: create, list, open, clean) and
:mod:`~igcore.store.journal` (publishing a recomputed stage).
"""

from __future__ import annotations

from igcore.store.files import WRITER_FILE, fsync_tree, write_table, write_tensors
from igcore.store.journal import JOURNAL, StageOutput, recompute_output, recover
from igcore.store.listing import Leftover, RunStore, load_run_dir
from igcore.store.reader import Run
from igcore.store.writer import PACKAGES, RunWriter, package_versions

__all__ = [
    "JOURNAL",
    "PACKAGES",
    "WRITER_FILE",
    "Leftover",
    "Run",
    "RunStore",
    "RunWriter",
    "StageOutput",
    "fsync_tree",
    "load_run_dir",
    "package_versions",
    "recompute_output",
    "recover",
    "write_table",
    "write_tensors",
]
