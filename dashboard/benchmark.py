"""The benchmark's ρ sweep (``bench/bench_methods.py``), read with where it came from and which world it measured.

The sweep is not a run's result: it is a file the benchmark script wrote (``docs/results_methods.csv``)
next to its report (``docs/RESULTS.md``, which names the command and the machine). Its world is the CSV's
``world`` column when the script wrote one, else the world of the config the command ran (the default
config's, plus the command's ``--set world.name=…``). Pages show it only beside a run of that world.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard.run_view import NotComputed

#: The benchmark's raw results (written by ``bench/bench_methods.py``) and its report (the command, machine).
BENCH_CSV = Path(__file__).resolve().parents[1] / "docs" / "results_methods.csv"


@dataclass(frozen=True)
class Benchmark:
    """The rho sweep of ``bench/bench_methods.py``: one row per (rho, seed, method), and where it came from."""

    results: pd.DataFrame
    source: str
    command: str | None
    machine: str | None
    world: str


def benchmark(csv: str | Path = BENCH_CSV, report: str | Path | None = None) -> Benchmark:
    """The benchmark's results (``docs/results_methods.csv``) with its provenance, read from the report the
    same script wrote (``docs/RESULTS.md``). Raises :class:`NotComputed` when the file is absent or lacks
    the columns the chart needs."""
    csv = Path(csv)
    report = Path(report) if report is not None else csv.with_name("RESULTS.md")
    mtime = csv.stat().st_mtime if csv.is_file() else 0.0
    return _benchmark(str(csv), str(report), mtime)


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
def _benchmark(csv: str, report: str, mtime: float) -> Benchmark:
    path = Path(csv)
    if not path.is_file():
        raise NotComputed(f"No benchmark results at `{path.name}`: run `python bench/bench_methods.py` to write them.")
    df = pd.read_csv(path)
    need = {"rho", "seed", "method", "worst_group_acc"}
    if not need <= set(df.columns):
        raise NotComputed(f"`{path.name}` lacks the column(s) {', '.join(sorted(need - set(df.columns)))}; re-run `python bench/bench_methods.py`.")
    command = machine = None
    text = Path(report).read_text(encoding="utf-8") if Path(report).is_file() else ""
    if found := re.search(r"Produced end to end by `([^`]+)`", text):
        command = found.group(1).strip()
    if found := re.search(r"^Machine: ([^;\n]+)", text, flags=re.MULTILINE):
        machine = found.group(1).strip()
    return Benchmark(df, path.name, command, machine, _world_of(df, command))
