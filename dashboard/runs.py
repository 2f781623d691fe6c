"""Which runs the dashboard can show: the runs folder and its listing for the run picker.

:func:`runs_root` is ``$IG_RUNS_DIR`` or ``<repository>/runs``, never a folder that depends on where
``streamlit run`` was started. :func:`list_runs` lists its runs newest first by the time each run was
created (its manifest's ``created``), not by when its folder last changed: adding files to an older run
(labels, a recomputed microscope) must not move it to the top.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from pydantic import ValidationError

from igcore.errors import InputError
from igcore.store import RunStore

RUNS_ENV = "IG_RUNS_DIR"
REPO = Path(__file__).resolve().parents[1]


def runs_root() -> Path:
    """RUNS_DIR: ``$IG_RUNS_DIR`` (a relative value is taken from the working directory, as any path given
    on a command line) or ``<repository>/runs`` — the same folder wherever the server is started."""
    value = os.environ.get(RUNS_ENV, "").strip()
    return Path(value).expanduser().resolve() if value else REPO / "runs"


@dataclass(frozen=True)
class RunInfo:
    """What the run picker shows about one run."""

    run_id: str
    complete: bool
    status: str
    created: str
    world: str

    @property
    def label(self) -> str:
        """The run id, marked when the run did not finish."""
        return self.run_id if self.complete else f"⚠ {self.run_id} ({self.status})"


@st.cache_data(ttl=5, show_spinner=False)
def list_runs(root: str) -> list[RunInfo]:
    """All runs in ``root``, newest first (by creation time; unreadable runs last); incomplete or unreadable
    ones are listed and marked."""
    out = []
    for run in RunStore(root).list():  # newest folder first: the order among runs created at the same time
        try:
            info = run.info()
        except (InputError, ValidationError):
            out.append(RunInfo(run.run_id, False, "unreadable", "", "?"))
            continue
        world = str((info.config.get("world") or {}).get("name", "?"))
        out.append(RunInfo(run.run_id, info.status == "complete", info.status, info.created, world))
    return sorted(out, key=lambda r: r.created, reverse=True)  # stable: ties keep the folder order


def newest_complete_first(runs: list[RunInfo]) -> list[RunInfo]:
    """``runs`` (newest first) with the complete ones first: the order in which a default run is sought."""
    return sorted(runs, key=lambda r: not r.complete)
