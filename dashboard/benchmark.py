"""The benchmark's ρ sweep (``bench/bench_methods.py``), read with where it came from and which world it measured.

The sweep is not a run's result: it is a file the benchmark script wrote (``docs/results_methods.csv``)
next to its provenance record (``docs/provenance/methods.json``: the command, the machine, the commit, the
date; written by ``bench.common.Report``). Its world is the CSV's ``world`` column when the script wrote one,
else the world of the config the command ran (the default config's, plus the command's
``--set world.name=…``). Pages show it only beside a run of that world.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard.run_view import NotComputed

#: The benchmark's raw results (written by ``bench/bench_methods.py``).
BENCH_CSV = Path(__file__).resolve().parents[1] / "docs" / "results_methods.csv"
#: Where its provenance record lies, relative to the CSV's folder (``bench.common.PROVENANCE_DIR``).
RECORD = Path("provenance") / "methods.json"
#: The command that regenerates it.
REGENERATE = "python -m bench.regenerate --only methods"


@dataclass(frozen=True)
class Benchmark:
    """The rho sweep of ``bench/bench_methods.py``: one row per (rho, seed, method), and where it came from."""

    results: pd.DataFrame
    source: str
    command: str | None
    machine: str | None
    world: str
    date: str | None = None


def benchmark(csv: str | Path = BENCH_CSV, record: str | Path | None = None) -> Benchmark:
    """The benchmark's results (``docs/results_methods.csv``) with its provenance, read from the record the
    same script wrote (``docs/provenance/methods.json``). Raises :class:`NotComputed` when the file is absent
    or lacks the columns the chart needs."""
    csv = Path(csv)
    record = Path(record) if record is not None else csv.parent / RECORD
    stamps = [p.stat().st_mtime if p.is_file() else 0.0 for p in (csv, record)]
    return _benchmark(str(csv), str(record), *stamps)


def machine_of(record: dict) -> str | None:
    """The machine a provenance record names, in a few words (``bench.common.machine``'s fields)."""
    m = record.get("machine") or {}
    if "summary" in m:  # a record of numbers measured before records named the thread settings
        return str(m["summary"])
    if "cpu" not in m:
        return None
    threads = f", torch threads {m['torch_threads']}" if m.get("torch_threads") else ""
    return f"{m['cpu']}, {m.get('cores_available', m.get('cpus'))} CPUs{threads}"


def _world_of(df: pd.DataFrame, command: str | None) -> str:
    """The world the sweep measured: its ``world`` column, else the one its command's config names."""
    if "world" in df.columns and df["world"].nunique() == 1:
        return str(df["world"].iloc[0])
    if command and (found := re.search(r"world\.name=([A-Za-z0-9_]+)", command)):
        return found.group(1)
    from igcore.config import Config

    # the default world's name, without validating a whole config (which loads every stage, and torch)
    return str(Config.model_fields["world"].get_default(call_default_factory=True).name)


@st.cache_data(show_spinner=False, max_entries=4)
def _benchmark(csv: str, record: str, csv_mtime: float, record_mtime: float) -> Benchmark:
    path = Path(csv)
    if not path.is_file():
        raise NotComputed(f"No benchmark results at `{path.name}`: run `{REGENERATE}` to write them.")
    df = pd.read_csv(path)
    need = {"rho", "seed", "method", "worst_group_acc"}
    if not need <= set(df.columns):
        raise NotComputed(f"`{path.name}` lacks the column(s) {', '.join(sorted(need - set(df.columns)))}; run `{REGENERATE}`.")
    fields = json.loads(Path(record).read_text(encoding="utf-8")) if Path(record).is_file() else {}
    command = fields.get("command")
    return Benchmark(df, path.name, command, machine_of(fields), _world_of(df, command), fields.get("date"))
