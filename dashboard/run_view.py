"""The dashboard's one view of a stored run: typed, cached accessors over :class:`igcore.store.Run`.

:class:`igcore.store.Run` is the only reader of run files; this module adds two things the dashboard
needs on top of it:

- caching: every accessor is keyed by ``(runs root, run id, run.stamp())``; the stamp changes when files
  are added to a run (runs are never rewritten, but a recomputed microscope or new attribution maps add
  files), so caches never serve stale data and never mix runs. Arrays and parsed models use
  ``st.cache_resource`` (one read-only copy shared by all sessions); tables use ``st.cache_data``;
- explanations: a section or file a run lacks raises :class:`NotComputed` with one sentence naming the
  stage of :data:`igcore.stages.STAGES` that would have written it and why it did not
  ("This run has no z* because its `ig` stage was not run.").
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st
from pydantic import ValidationError

from igcore.errors import InputError
from igcore.schema import ClauseRecord, Hypotheses, Manifest, MethodMetrics, Metrics, RankedRecord, WorldInfo
from igcore.stages import STAGES, Stage, provider_of
from igcore.store import Run, RunStore
from igcore.worlds.base import Vocabulary

RUNS_ENV = "IG_RUNS_DIR"

#: Run files the dashboard reads (path prefixes) -> the stage result (``Stage.provides``) of the stage
#: that writes them.
FILE_RESULTS: tuple[tuple[str, str], ...] = (
    ("contact_sheet.png", "splits"),
    ("tables/split_", "splits"),
    ("tensors/test_eval.", "splits"),
    ("tensors/concept_bank.", "splits"),
    ("tensors/concept_scores.", "concepts"),
    ("tensors/pseudo_labels.", "pseudo_labels"),
    ("microscope/", "microscope"),
)

#: Written by the pipeline itself after its last stage (every evaluated method's answers, one column each).
PIPELINE_FILES: tuple[str, ...] = ("tables/predictions.parquet",)

#: Stored hypotheses (``hypotheses.<key>``) and how the dashboard names them.
HYPOTHESIS_NAMES: dict[str, str] = {
    "z_star": "z*",
    "no_prior": "no-prior hypothesis",
    "z_baseline": "z_baseline",
    "z_student": "z_student",
}


class NotComputed(Exception):
    """A page section needs a part of the run that is not there; the message says which stage writes it."""


class Unavailable(NotComputed):
    """A part of the microscope the run's data cannot support (no object masks, no renderer); the message
    carries the engine's reason (``microscope.<model>.unavailable``)."""


#: Where the microscope models are listed first: the baseline, the IG student, the oracle reference.
MODEL_ORDER: tuple[str, ...] = ("erm", "ig_student", "oracle")


def runs_dir() -> Path:
    """RUNS_DIR: ``$IG_RUNS_DIR`` or ``runs/`` (relative to the working directory)."""
    return Path(os.environ.get(RUNS_ENV) or "runs").resolve()


def writer_of(key: str) -> Stage | None:
    """The stage that writes ``metrics.json`` key ``key`` (dotted; the longest declared prefix wins).

    ``hypotheses.z_star`` -> ``ig``; ``microscope.erm.tcav`` -> ``microscope`` (it owns ``microscope``).
    """
    parts = key.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        for stage in STAGES:
            if prefix in stage.writes:
                return stage
    return None


def file_writer(relative: str) -> Stage | None:
    """The stage that writes run file ``relative`` (see :data:`FILE_RESULTS`)."""
    result = next((r for prefix, r in FILE_RESULTS if relative.startswith(prefix)), None)
    name = provider_of(result) if result else None
    return next((s for s in STAGES if s.name == name), None)


def _lookup(data: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def clause_records(clauses: list[ClauseRecord]) -> list[dict[str, Any]]:
    """Typed clauses back to the ``metrics.json`` records ``{concept, kind, class, weight, text}``
    (what :func:`igcore.hypothesis.summary_sentence` and the charts read)."""
    return [c.model_dump(by_alias=True) for c in clauses]


@dataclass(frozen=True)
class RunInfo:
    """What the run picker shows about one run."""

    run_id: str
    complete: bool
    status: str
    created: str
    world: str


@st.cache_data(ttl=5, show_spinner=False)
def list_runs(root: str) -> list[RunInfo]:
    """All runs in ``root``, newest first; incomplete or unreadable ones are listed and marked."""
    out = []
    for run in RunStore(root).list():
        try:
            info = run.info()
        except (InputError, ValidationError):
            out.append(RunInfo(run.run_id, False, "unreadable", "", "?"))
            continue
        world = str((info.config.get("world") or {}).get("name", "?"))
        out.append(RunInfo(run.run_id, info.status == "complete", info.status, info.created, world))
    return out


@dataclass(frozen=True)
class RunView:
    """A hashable handle on one stored run; every accessor reads through a cache keyed by it.

    Open one with :meth:`open` (which validates the id through the run store). Accessors of sections a
    run may lack raise :class:`NotComputed` with the reason; :meth:`missing` asks without raising.
    """

    root: str
    run_id: str
    stamp: float

    @classmethod
    def open(cls, root: str, run_id: str) -> RunView:
        """The run ``run_id`` of RUNS_DIR ``root`` (raises igcore's InputError for unknown or unsafe ids)."""
        run = RunStore(root).load(run_id)
        return cls(root, run.run_id, run.stamp())

    @property
    def run(self) -> Run:
        """The engine's reader (for engine functions that take a run)."""
        return Run(Path(self.root) / self.run_id)

    # -- JSON sections ---------------------------------------------------------------------------------
    @property
    def info(self) -> Manifest:
        """The manifest, typed."""
        return _manifest(self.root, self.run_id, self.stamp)

    @property
    def results(self) -> Metrics:
        """The metrics, typed (sections absent until their stage ran)."""
        return _results(self.root, self.run_id, self.stamp)

    @property
    def world(self) -> WorldInfo:
        world = self.results.world
        if world is None:
            raise NotComputed(self.explain("world", "world description"))
        return world

    @property
    def classes(self) -> list[str]:
        return list(self.world.classes)

    @property
    def groups(self) -> list[str]:
        return list(self.world.groups)

    @property
    def backgrounds(self) -> list[str]:
        return list(self.world.backgrounds)

    @property
    def vocabulary(self) -> Vocabulary:
        """The concept vocabulary as the run recorded it."""
        return _vocabulary(self.root, self.run_id, self.stamp)

    @property
    def concept_ids(self) -> list[str]:
        return self.vocabulary.ids

    @property
    def concept_texts(self) -> dict[str, str]:
        return {c.id: c.text for c in self.vocabulary.concepts}

    @property
    def concept_kinds(self) -> dict[str, str]:
        return {c.id: c.kind for c in self.vocabulary.concepts}

    @property
    def methods(self) -> dict[str, MethodMetrics]:
        """Evaluated methods (``methods.<name>``); empty when no method stage ran."""
        return self.results.methods

    @property
    def hypotheses(self) -> Hypotheses:
        return self.results.hypotheses

    def clauses(self, key: str) -> list[dict[str, Any]]:
        """The clause records of ``hypotheses.<key>`` (``z_star``, ``no_prior``, ``z_baseline``, ``z_student``)."""
        clauses = getattr(self.hypotheses, key)
        if clauses is None:
            raise NotComputed(self.explain(f"hypotheses.{key}", HYPOTHESIS_NAMES.get(key, key)))
        return clause_records(clauses)

    def hypothesis_text(self, key: str) -> str | None:
        """The engine's field guide of ``hypotheses.<key>`` as stored (``<key>_text``)."""
        return getattr(self.hypotheses, f"{key}_text", None)

    @property
    def ranked(self) -> list[RankedRecord]:
        """``hypotheses.ranked``: the alternatives the search kept, best first."""
        ranked = self.hypotheses.ranked
        if not ranked:
            raise NotComputed(self.explain("hypotheses.ranked", "ranked list of hypotheses"))
        return ranked

    @property
    def microscope(self) -> dict[str, dict[str, Any]]:
        """``microscope.<model>``; empty when the microscope stage did not run."""
        return self.results.microscope

    def tcav(self, model: str = "erm") -> list[dict[str, Any]]:
        """TCAV records of ``model`` (``microscope.<model>.tcav``), aggregated over the engine's repeats."""
        tcav = (self.microscope.get(model) or {}).get("tcav")
        if not tcav:
            raise NotComputed(self.explain(f"microscope.{model}.tcav", f"TCAV scores for {_who(model)}"))
        return list(tcav)

    def tcav_controls(self, model: str = "erm") -> dict[str, Any] | None:
        """``microscope.<model>.tcav_controls``: random image sets tested like concepts (None if not stored)."""
        return (self.microscope.get(model) or {}).get("tcav_controls")

    @property
    def examined(self) -> list[str]:
        """Models the microscope examined, the baseline, the IG student and the oracle first."""
        names = list(self.microscope)
        return [m for m in MODEL_ORDER if m in names] + [m for m in names if m not in MODEL_ORDER]

    def unavailable(self, part: str) -> str | None:
        """The engine's reason why this run's data cannot support microscope part ``part`` (e.g. ``effects``,
        ``relevance_on_animal``, ``swaps``), or None when it can."""
        for m in self.examined:
            reason = (self.microscope[m].get("unavailable") or {}).get(part)
            if reason:
                return str(reason)
        return None

    def evidence(self, field: str, what: str, part: str | None = None) -> dict[str, Any]:
        """``microscope.<model>.<field>`` of every examined model that has it, in :attr:`examined` order.

        Raises :class:`Unavailable` with the engine's reason when the data cannot support the part
        (``part``, default ``field``), else :class:`NotComputed` naming the stage that writes it.
        """
        found = {m: self.microscope[m][field] for m in self.examined if self.microscope[m].get(field) not in (None, {}, [])}
        if found:
            return found
        reason = self.unavailable(part or field)
        if reason:
            raise Unavailable(f"Not available for this data: {reason}.")
        raise NotComputed(self.explain(f"microscope.erm.{field}", what))

    def sanity(self, model: str, method: str) -> dict[str, Any] | None:
        """The model-randomisation sanity check of ``method``'s maps of ``model`` (None if not run)."""
        return ((self.microscope.get(model) or {}).get("sanity") or {}).get(method)

    def clause_deletion(self, key: str) -> list[dict[str, Any]]:
        """``clause_deletion.<key>``: per clause of hypothesis ``key``, how L_M's answers change when it is
        deleted, where its concept is present and where it is absent (empty for a hypothesis without clauses)."""
        records = self.results.clause_deletion.get(key)
        if records is None:
            raise NotComputed(self.explain(f"clause_deletion.{key}", f"clause-deletion test of {HYPOTHESIS_NAMES.get(key, key)}"))
        return list(records)

    def counterfactual_strip(self) -> dict[str, np.ndarray]:
        """``microscope/tensors/counterfactuals``: D′_eval rows (``index``) and their ``original``,
        ``background``, ``object`` and ``double`` swaps."""
        reason = self.unavailable("effects")
        if reason and not self.has("microscope/tensors/counterfactuals.safetensors"):
            raise Unavailable(f"Not available for this data: {reason}.")
        return self.microscope_tensors("counterfactuals")

    def surrogate_disagreements(self, surrogate: str = "z_baseline") -> pd.DataFrame:
        """The D′_eval images where ``surrogate`` and the model it stands for answer differently."""
        table = self.microscope_table("surrogate_disagreements")
        return table[table["surrogate"] == surrogate].reset_index(drop=True)

    def masks(self) -> np.ndarray | None:
        """D′_eval object masks, or None when the data has none (a folder data set without a mask column)."""
        return self.test_eval().get("masks")

    def shipped_judgments_note(self) -> str | None:
        """One line on where the prior's judgments came from when they are the ones shipped with IG
        Microscope (written by its developers as a worked example); None when a run used its own."""
        prior = self.results.prior or {}
        settings = self.info.config.get("prior") or {}
        ratings = prior.get("judgments") == "shipped ratings"
        pairwise = not settings.get("database") and not settings.get("pairwise") and settings.get("fit_pairwise", True)
        if not (ratings or pairwise):
            return None
        which = "ratings and pairwise preferences" if ratings and pairwise else "ratings" if ratings else "pairwise preferences (about a field guide's shape)"
        return (
            f"The prior learned from the {which} shipped in `assets/judgments/`: written by the project's developers "
            "as a worked example, not collected from other people in a study."
        )

    @property
    def surrogates(self) -> dict[str, Any]:
        return self.results.surrogates

    # -- files -----------------------------------------------------------------------------------------
    def has(self, relative: str) -> bool:
        return self.run.has(relative)

    def table(self, name: str, folder: str = "") -> pd.DataFrame:
        """``[folder/]tables/<name>.parquet``."""
        relative = f"{folder}/tables/{name}.parquet" if folder else f"tables/{name}.parquet"
        self._need_file(relative, f"table `{name}`")
        return _table(self.root, self.run_id, self.stamp, name, folder)

    def tensors(self, name: str, folder: str = "") -> dict[str, np.ndarray]:
        """``[folder/]tensors/<name>.safetensors`` (read-only arrays shared by all sessions)."""
        relative = f"{folder}/tensors/{name}.safetensors" if folder else f"tensors/{name}.safetensors"
        self._need_file(relative, f"tensors `{name}`")
        return _tensors(self.root, self.run_id, self.stamp, name, folder)

    def predictions(self) -> pd.DataFrame:
        """Every evaluated method's answer on D′_eval (``pred_<method>``, ``p_<method>_<class>``)."""
        return self.table("predictions")

    def split(self, name: str) -> pd.DataFrame:
        """Per-example metadata of a split (``split_<name>``)."""
        return self.table(f"split_{name}")

    def test_eval(self) -> dict[str, np.ndarray]:
        """D′_eval images uint8 (N, H, W, 3) and, when the data has them, object masks uint8 (N, H, W)."""
        return self.tensors("test_eval")

    def concept_bank(self) -> dict[str, np.ndarray]:
        """Concept-bank images uint8 (N, H, W, 3) and their concept annotations uint8 (N, K)."""
        return self.tensors("concept_bank")

    def concept_scores(self, split: str = "test_eval") -> np.ndarray:
        """The concept model's probabilities (N, K) on ``split``."""
        return self.tensors("concept_scores")[split]

    def microscope_table(self, name: str) -> pd.DataFrame:
        return self.table(name, "microscope")

    def microscope_tensors(self, name: str) -> dict[str, np.ndarray]:
        return self.tensors(name, "microscope")

    def contact_sheet(self) -> bytes:
        """``contact_sheet.png``: example images of every split and group."""
        self._need_file("contact_sheet.png", "contact sheet")
        return _file_bytes(self.root, self.run_id, self.stamp, "contact_sheet.png")

    # -- what is missing, and why ----------------------------------------------------------------------
    def missing(self, key: str, what: str) -> str | None:
        """None when ``metrics.json`` key ``key`` holds a value; else why not, naming its stage."""
        value = _lookup(_raw_metrics(self.root, self.run_id, self.stamp), key)
        if value not in (None, [], {}):
            return None
        return self.explain(key, what)

    def need(self, key: str, what: str) -> None:
        """Raise :class:`NotComputed` unless ``metrics.json`` key ``key`` holds a value."""
        message = self.missing(key, what)
        if message:
            raise NotComputed(message)

    def explain(self, key: str, what: str) -> str:
        """Why this run has no ``what`` (``metrics.json`` key ``key``), from the stage that writes it."""
        return self._why(writer_of(key), what, f"`{key}`")

    def _need_file(self, relative: str, what: str) -> None:
        if self.has(relative):
            return
        status = self.info.status
        if relative not in PIPELINE_FILES:
            raise NotComputed(self._why(file_writer(relative), what, f"`{relative}`"))
        if status == "complete":
            raise NotComputed(f"This run has no {what}: its pipeline finished without writing `{relative}`.")
        how = "it has not finished yet" if status == "running" else "it did not finish"
        raise NotComputed(f"This run has no {what}: the pipeline writes it last, and {how} (the run is {status}).")

    def _why(self, stage: Stage | None, what: str, where: str) -> str:
        if stage is None:
            return f"This run has no {what}: no stage of this engine writes {where}."
        info = self.info
        if stage.name in info.stages:
            return f"This run has no {what}: its `{stage.name}` stage ran but did not write {where}."
        if info.status != "complete" and stage.name in info.stages_selected:
            how = "has not finished yet" if info.status == "running" else "did not finish"
            return f"This run has no {what} because its `{stage.name}` stage {how} (the run is {info.status})."
        return f"This run has no {what} because its `{stage.name}` stage was not run."


def _who(model: str) -> str:
    return {"erm": "the baseline", "ig_student": "the IG student", "oracle": "the oracle"}.get(model, f"`{model}`")


# ----------------------------------------------------------------------------------- the benchmark
#: The benchmark's raw results (written by ``bench/bench_methods.py``) and its report (the command, machine).
BENCH_CSV = Path(__file__).resolve().parents[1] / "docs" / "results_methods.csv"
BENCH_REPORT = BENCH_CSV.with_name("RESULTS.md")


@dataclass(frozen=True)
class Benchmark:
    """The rho sweep of ``bench/bench_methods.py``: one row per (rho, seed, method), and where it came from."""

    results: pd.DataFrame
    source: str
    command: str | None
    machine: str | None


def benchmark(csv: str | Path = BENCH_CSV, report: str | Path | None = None) -> Benchmark:
    """The benchmark's results (``docs/results_methods.csv``) with its provenance, read from the report the
    same script wrote (``docs/RESULTS.md``). Raises :class:`NotComputed` when the file is absent or lacks
    the columns the chart needs."""
    csv = Path(csv)
    report = Path(report) if report is not None else csv.with_name("RESULTS.md")
    mtime = csv.stat().st_mtime if csv.is_file() else 0.0
    return _benchmark(str(csv), str(report), mtime)


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
    return Benchmark(df, path.name, command, machine)


# ----------------------------------------------------------------------------------- cached loaders
# Module-level functions so Streamlit can hash their arguments; ``stamp`` is part of every key.


def _run(root: str, run_id: str) -> Run:
    return Run(Path(root) / run_id)


@st.cache_resource(show_spinner=False, max_entries=32)
def _manifest(root: str, run_id: str, stamp: float) -> Manifest:
    return _run(root, run_id).info()


@st.cache_resource(show_spinner=False, max_entries=32)
def _raw_metrics(root: str, run_id: str, stamp: float) -> dict[str, Any]:
    return _run(root, run_id).metrics


@st.cache_resource(show_spinner=False, max_entries=32)
def _results(root: str, run_id: str, stamp: float) -> Metrics:
    return Metrics.model_validate(_raw_metrics(root, run_id, stamp))


@st.cache_resource(show_spinner=False, max_entries=32)
def _vocabulary(root: str, run_id: str, stamp: float) -> Vocabulary:
    return _run(root, run_id).vocabulary()[0]


@st.cache_data(show_spinner=False, max_entries=64)
def _table(root: str, run_id: str, stamp: float, name: str, folder: str) -> pd.DataFrame:
    return _run(root, run_id).table(name, folder)


@st.cache_resource(show_spinner=False, max_entries=16)
def _tensors(root: str, run_id: str, stamp: float, name: str, folder: str) -> dict[str, np.ndarray]:
    arrays = _run(root, run_id).tensors(name, folder)
    for a in arrays.values():
        a.setflags(write=False)
    return arrays


@st.cache_data(show_spinner=False, max_entries=32)
def _file_bytes(root: str, run_id: str, stamp: float, relative: str) -> bytes:
    data = _run(root, run_id).file_bytes(relative)
    if data is None:
        raise NotComputed(f"This run has no `{relative}`.")
    return data
