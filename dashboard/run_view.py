"""The dashboard's one view of a stored run: typed, cached accessors over :class:`igcore.store.Run`.

:class:`igcore.store.Run` is the only reader of run files; :class:`RunView` adds what the pages need on
top of it:

- caching: every accessor is keyed by ``(runs root, run id, run.stamp())``; the stamp changes when files
  are added to a run (runs are never rewritten, but a recomputed microscope or new attribution maps add
  files), so caches never serve stale data and never mix runs. Arrays and parsed models use
  ``st.cache_resource`` (one read-only copy shared by all sessions); tables use ``st.cache_data``;
- typed sections: the run schema's models (:mod:`igcore.schema`), never untyped keys;
- the facts pages state, derived once: which attribution methods the run has, z*'s place in the ranked
  list, each hypothesis's answer on every D′ image, which place categories each background covers;
- explanations: a section or file a run lacks raises :class:`NotComputed` with one sentence naming the
  stage of :data:`igcore.stages.STAGES` that would have written it (:func:`igcore.stages.writer_of`,
  :func:`igcore.stages.file_writer`) and why it did not ("This run has no z* because its `ig` stage was not run.");
- names: the names people gave the run's discovered concepts (:class:`igcore.discover.store.NameStore`, in the
  dashboard's database) are read once when a view is opened and are part of its identity, so every text a page
  shows — concept labels, clause records, field guides, the ranked list, the report — comes from one lookup
  (:attr:`RunView.vocabulary`, the run's vocabulary with those names applied), and every cache keyed by the view
  sees a new name at once and recomputes nothing otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from igcore.discover.names import apply_names
from igcore.errors import InputError
from igcore.hypothesis import Hypothesis, summary_sentence
from igcore.methods import order_methods
from igcore.prior.sources import Judgments
from igcore.schema import (
    ClauseDeletion,
    ClauseRecord,
    Hypotheses,
    Manifest,
    MethodMetrics,
    Metrics,
    MicroscopeSection,
    RankedRecord,
    SanityCheck,
    Surrogate,
    TCAVControls,
    TCAVRecord,
    WorldInfo,
    pred_column,
    true_column,
)
from igcore.stages import HYPOTHESIS_NAMES, PIPELINE_FILES, file_writer, writer_of
from igcore.store import Run, RunStore
from igcore.worlds.base import Vocabulary


@dataclass(frozen=True)
class HypothesisSpec:
    """A stored hypothesis (``hypotheses.<key>``): how pages name it and where its answers on D′ come from.

    Attributes:
        name: how pages name it ("z*").
        answers: the evaluated method whose answers are this hypothesis read by L_M (``ig_direct`` for z*).
        surrogate_of: the model it was fitted to imitate (``erm`` for z_baseline); its answers are that
            model's, except on the images the microscope lists as disagreements.
    """

    name: str
    answers: str | None = None
    surrogate_of: str | None = None


#: Every stored hypothesis the dashboard shows.
HYPOTHESES: dict[str, HypothesisSpec] = {
    "z_star": HypothesisSpec(HYPOTHESIS_NAMES["z_star"], answers="ig_direct"),
    "no_prior": HypothesisSpec(HYPOTHESIS_NAMES["no_prior"], answers="no_prior"),
    "z_baseline": HypothesisSpec(HYPOTHESIS_NAMES["z_baseline"], surrogate_of="erm"),
    "z_student": HypothesisSpec(HYPOTHESIS_NAMES["z_student"], surrogate_of="ig_student"),
}


class NotComputed(Exception):
    """A page section needs a part of the run that is not there; the message says which stage writes it."""


class Unavailable(NotComputed):
    """A part of the microscope the run's data cannot support (no object masks, no renderer); the message
    carries the engine's reason (``microscope.<model>.unavailable``)."""


def hypothesis_name(key: str) -> str:
    """How pages name ``hypotheses.<key>`` (``z_star`` -> ``z*``)."""
    return HYPOTHESES[key].name if key in HYPOTHESES else key


def _lookup(data: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def clause_records(clauses: list[ClauseRecord], deletion: list[ClauseDeletion] | None = None,
                   texts: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Typed clauses back to the ``metrics.json`` records ``{concept, kind, class, weight, text}``
    (what :func:`igcore.hypothesis.summary_sentence` and the charts read), each with ``specific`` from the
    clause-deletion test when the run has it for these clauses; ``texts`` (concept id -> text) replaces the
    recorded texts (:attr:`RunView.concept_texts`: people's names for discovered concepts)."""
    specific = {(d.concept, d.cls): d.specific for d in deletion or []}
    out = []
    for c in clauses:
        record = c.model_dump(by_alias=True)
        if texts and c.concept in texts:
            record["text"] = texts[c.concept]
        if (c.concept, c.cls) in specific:
            record["specific"] = specific[(c.concept, c.cls)]
        out.append(record)
    return out


@dataclass(frozen=True)
class RunView:
    """A hashable handle on one stored run; every accessor reads through a cache keyed by it.

    Open one with :meth:`open` (which validates the id through the run store), or a run still being written
    with :meth:`in_progress`. Accessors of sections a run may lack raise :class:`NotComputed` with the reason;
    :meth:`missing` asks without raising.

    Attributes:
        root: RUNS_DIR.
        run_id: the run's id (for a run in progress, the id it will be published under).
        stamp: :meth:`igcore.store.Run.stamp` when opened (part of every cache key).
        folder: the run's folder in ``root`` when it is not ``run_id``: the temporary folder of a run that is
            still being written (``.tmp-<id>-…``, renamed to ``run_id`` when complete).
        names: ``(component id, name)`` pairs people gave the run's discovered concepts, as the naming store held
            them when the view was opened (:func:`read_names`; an empty name: taken back, unnamed again); part of every cache key, so a new name is seen at
            once by every cache and nothing is recomputed while the names stay the same.
    """

    root: str
    run_id: str
    stamp: float
    folder: str = ""
    names: tuple[tuple[str, str], ...] = ()

    @classmethod
    def open(cls, root: str, run_id: str) -> RunView:
        """The run ``run_id`` of RUNS_DIR ``root`` with the names people gave its discovered concepts (raises
        igcore's InputError for unknown or unsafe ids)."""
        run = RunStore(root).load(run_id)
        return cls(root, run.run_id, run.stamp(), names=read_names(root, run))

    @classmethod
    def in_progress(cls, root: str, folder: str) -> RunView:
        """The run being written in ``root/folder`` (a pipeline's temporary folder), read-only.

        The pipeline writes ``manifest.json`` and ``metrics.json`` atomically after each stage; the files of a
        stage are read only once the manifest records the stage as finished (:meth:`_need_file`), so nothing
        half-written is read. The caller must keep the folder from being renamed while it reads (the first
        launch's gate, :mod:`dashboard.first_launch`).
        """
        run = Run(Path(root) / folder)
        return cls(root, run.info().run_id, run.stamp(), folder, read_names(root, run))

    @property
    def directory(self) -> str:
        """The run's folder name in RUNS_DIR."""
        return self.folder or self.run_id

    @property
    def computing(self) -> bool:
        """Whether the run is still being written (opened with :meth:`in_progress`)."""
        return bool(self.folder)

    @property
    def run(self) -> Run:
        """The engine's reader (for engine functions that take a run)."""
        return Run(Path(self.root) / self.directory)

    # -- JSON sections ---------------------------------------------------------------------------------
    # A page reads these dozens of times per script run, and the app opens one view per script run: kept on the view
    # after the first read (the process-wide cache's object, not a copy), so the rest skip the cache's key hashing.
    @cached_property
    def info(self) -> Manifest:
        """The manifest, typed."""
        return _manifest(self.root, self.directory, self.stamp)

    @cached_property
    def results(self) -> Metrics:
        """The metrics, typed (sections absent until their stage ran)."""
        return _results(self.root, self.directory, self.stamp)

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
    def has_backgrounds(self) -> bool:
        """Whether the data names backgrounds (more than one): a folder manifest without a group column has one,
        ``any``, and its groups are its classes."""
        return len(self.backgrounds) > 1

    @property
    def recorded_vocabulary(self) -> Vocabulary:
        """The concept vocabulary as the run recorded it (discovered concepts named as they were when it ran)."""
        return _vocabulary(self.root, self.directory, self.stamp)

    @property
    def vocabulary(self) -> Vocabulary:
        """The concept vocabulary with the names people gave its discovered concepts (:attr:`names`): the one
        place every page, chart, field guide and the report take a concept's text from ("unnamed concept k"
        until someone names it)."""
        return _named_vocabulary(self.root, self.directory, self.stamp, self.names)

    @property
    def name_map(self) -> dict[str, str]:
        """``{component id: name}`` people gave (what :func:`igcore.resolve.resolve` takes as ``names``)."""
        return dict(self.names)

    @property
    def renamed(self) -> list[str]:
        """Concepts whose text people changed since the run was solved (named, or named otherwise, on the
        Discover page): z* as stored was solved in other words, and re-solving it in these may change it."""
        if not self.names:
            return []
        recorded = {c.id: c.text for c in self.recorded_vocabulary.concepts}
        return [c.id for c in self.vocabulary.concepts if recorded.get(c.id) != c.text]

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
    def has_masks(self) -> bool:
        """Whether D′_eval has object masks (the world section says; a world from before it said has them)."""
        return bool(self.world.model_extra.get("has_masks", True))

    def place_categories(self) -> dict[str, list[str]]:
        """Per background, the place concepts (``place::<category>``) of the images on it, in their text,
        when a background covers anything other than itself; else empty. A Waterbirds-layout world keeps
        its ``place_names`` (default ``land``, ``water``) as backgrounds while its place concepts name the
        photographs' categories: this says which categories each background name stands for."""
        return _place_categories(self)

    @property
    def methods(self) -> dict[str, MethodMetrics]:
        """Evaluated methods (``methods.<name>``); empty when no method stage ran."""
        return self.results.methods

    @property
    def hypotheses(self) -> Hypotheses:
        return self.results.hypotheses

    def clauses(self, key: str) -> list[dict[str, Any]]:
        """The clause records of ``hypotheses.<key>`` (``z_star``, ``no_prior``, ``z_baseline``, ``z_student``),
        each with ``specific`` (the clause-deletion test's verdict) when the run has it."""
        clauses = getattr(self.hypotheses, key)
        if clauses is None:
            raise NotComputed(self.explain(f"hypotheses.{key}", hypothesis_name(key)))
        return clause_records(clauses, self.results.clause_deletion.get(key), self.concept_texts)

    def summary(self, records: Sequence[Mapping[str, Any]], subject: str, verb: str = "learned that") -> str:
        """The headline of a hypothesis's clause records (:func:`igcore.hypothesis.summary_sentence`) in this run's
        classes, saying that the background does not matter only where its vocabulary names backgrounds."""
        return summary_sentence(records, subject, self.classes, verb, names_background="context" in self.vocabulary.kinds())

    def hypothesis_text(self, key: str) -> str | None:
        """The engine's field guide of ``hypotheses.<key>`` (``<key>_text``), rendered again
        (:meth:`igcore.hypothesis.Hypothesis.render`) in the current names when one of its concepts was named
        since the run."""
        stored = getattr(self.hypotheses, f"{key}_text", None)
        clauses = getattr(self.hypotheses, key, None)
        if stored is None or not clauses or not set(self.renamed) & {c.concept for c in clauses}:
            return stored
        return rendered_text(self, key)

    @property
    def ranked(self) -> list[RankedRecord]:
        """``hypotheses.ranked``: the alternatives the search kept, best first (clause texts in the current names)."""
        ranked = self.hypotheses.ranked
        if not ranked:
            raise NotComputed(self.explain("hypotheses.ranked", "ranked list of hypotheses"))
        return _named_records(self, ranked) if self.renamed else ranked

    @property
    def z_star_rank(self) -> int:
        """Position of z* in :attr:`ranked` (the entry with z*'s clause structure), else the one with the
        highest posterior."""
        return _z_star_rank(self)

    def ranked_clauses(self, index: int) -> list[dict[str, Any]]:
        """Clause records of ``ranked[index]``; z*'s carry the clause-deletion verdicts of the stored z*."""
        deletion = self.results.clause_deletion.get("z_star") if index == self.z_star_rank else None
        return clause_records(self.ranked[index].clauses, deletion)

    def hypothesis_answers(self, key: str) -> np.ndarray:
        """Class index per D′_eval image that hypothesis ``key`` answers (read by L_M): z* from ``ig_direct``,
        a surrogate from its model's answers and the microscope's list of the images where they part."""
        spec = HYPOTHESES[key]
        preds = self.predictions()
        if spec.answers is not None:
            self.need(f"methods.{spec.answers}", f"answers of {spec.name}")
            return preds[pred_column(spec.answers)].to_numpy().copy()
        model = spec.surrogate_of or ""
        self.need(f"surrogates.{key}", spec.name)
        answers = preds[pred_column(model)].to_numpy().copy()
        misses = self.surrogate_disagreements(key)
        answers[misses["index"].to_numpy()] = misses["surrogate_pred"].to_numpy()
        return answers

    # -- the microscope --------------------------------------------------------------------------------
    @property
    def microscope(self) -> dict[str, MicroscopeSection]:
        """``microscope.<model>``, in :attr:`examined` order; empty when the microscope stage did not run."""
        found = self.results.microscope
        return {m: found[m] for m in order_methods(found)}

    @property
    def examined(self) -> list[str]:
        """Models the microscope examined, in the method registry's order (the baseline first)."""
        return list(self.microscope)

    def section(self, model: str) -> MicroscopeSection:
        """``microscope.<model>`` (an empty section when the model was not examined)."""
        return self.microscope.get(model) or MicroscopeSection()

    @property
    def attribution_methods(self) -> list[str]:
        """Attribution methods the microscope computed for any model (relevance or sanity checks); without
        that stage, every registered method that applies to all of the run's stored models (maps are then computed
        on demand, and a method for another architecture could not be)."""
        computed = list(dict.fromkeys(k for m in self.microscope.values() for k in (*m.relevance_on_animal, *m.sanity)))
        if computed:
            return computed
        from igcore.microscope import ATTRIBUTIONS  # torch: only for a run without the microscope stage

        families = self.model_families()
        return [name for name, method in ATTRIBUTIONS.items() if all(method.applies_to(f) for f in families)]

    def model_families(self) -> set[str]:
        """The architecture families (transformers ``model_type``) of the run's stored classifiers."""
        found = set()
        for name in self.run.model_names():
            raw = self.run.file_bytes(f"models/{name}/config.json")
            if raw is not None:
                found.add(json.loads(raw).get("model_type"))
        return found - {None}

    def tcav(self, model: str = "erm") -> list[TCAVRecord]:
        """TCAV records of ``model`` (``microscope.<model>.tcav``), aggregated over the engine's repeats."""
        tcav = self.section(model).tcav
        if not tcav:
            raise NotComputed(self.explain(f"microscope.{model}.tcav", f"TCAV scores for {_subject(model)}"))
        return list(tcav)

    def tcav_layers(self, model: str = "erm") -> list[str]:
        """The layers of ``model``'s TCAV scores, the one to show first (the penultimate layer) first."""
        return sorted({t.layer for t in self.tcav(model)}, key=lambda name: (name != "penultimate", name))

    def tcav_controls(self, model: str = "erm") -> TCAVControls | None:
        """``microscope.<model>.tcav_controls``: random image sets tested like concepts (None if not stored)."""
        return self.section(model).tcav_controls

    def unavailable(self, part: str) -> str | None:
        """The engine's reason why this run's data cannot support microscope part ``part`` (e.g. ``effects``,
        ``relevance_on_animal``, ``swaps``), or None when it can."""
        for m in self.microscope.values():
            if reason := m.unavailable.get(part):
                return str(reason)
        return None

    def with_evidence(self, field: str) -> list[str]:
        """The examined models whose ``microscope.<model>.<field>`` is there, in :attr:`examined` order (none: empty)."""
        return [m for m, s in self.microscope.items() if getattr(s, field) not in (None, {}, [])]

    def evidence(self, field: str, what: str, part: str | None = None) -> dict[str, Any]:
        """``microscope.<model>.<field>`` of every examined model that has it (:meth:`with_evidence`), in :attr:`examined`
        order.

        Raises :class:`Unavailable` with the engine's reason when the data cannot support the part
        (``part``, default ``field``), else :class:`NotComputed` naming the stage that writes it.
        """
        found = {m: getattr(self.microscope[m], field) for m in self.with_evidence(field)}
        if found:
            return found
        reason = self.unavailable(part or field)
        if reason:
            raise Unavailable(f"Not available for this data: {reason}.")
        raise NotComputed(self.explain(f"microscope.erm.{field}", what))

    def sanity(self, model: str, method: str) -> SanityCheck | None:
        """The model-randomisation sanity check of ``method``'s maps of ``model`` (None if not run)."""
        return self.section(model).sanity.get(method)

    def clause_deletion(self, key: str) -> list[ClauseDeletion]:
        """``clause_deletion.<key>``: per clause of hypothesis ``key``, how L_M's answers change when it is
        deleted, where its concept is present and where it is absent (empty for a hypothesis without clauses)."""
        records = self.results.clause_deletion.get(key)
        if records is None:
            raise NotComputed(self.explain(f"clause_deletion.{key}", f"clause-deletion test of {hypothesis_name(key)}"))
        return _named_records(self, records) if self.renamed else list(records)

    def surrogate(self, key: str) -> Surrogate | None:
        """``surrogates.<key>``: the fidelity of a readable stand-in (None when the run did not fit it)."""
        return self.results.surrogates.get(key)

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

    @property
    def judgments(self) -> Judgments:
        """The judgments the run was solved with, and where they came from (recorded in the run by its ``ig`` stage)."""
        return _judgments(self.root, self.directory, self.stamp)

    def judgments_note(self) -> str | None:
        """Where the prior's judgments came from and who wrote them (the run's recorded provenance), in plain
        sentences; None when the run has no prior yet."""
        if self.results.prior is None:
            return None
        try:
            return self.judgments.provenance.describe(added=False)
        except InputError as e:
            return str(e)

    # -- files -----------------------------------------------------------------------------------------
    def has(self, relative: str) -> bool:
        return self.run.has(relative)

    def table(self, name: str, folder: str = "") -> pd.DataFrame:
        """``[folder/]tables/<name>.parquet``."""
        relative = f"{folder}/tables/{name}.parquet" if folder else f"tables/{name}.parquet"
        self._need_file(relative, f"table `{name}`")
        return _table(self.root, self.directory, self.stamp, name, folder)

    def tensors(self, name: str, folder: str = "") -> dict[str, np.ndarray]:
        """``[folder/]tensors/<name>.safetensors`` (read-only arrays shared by all sessions)."""
        relative = f"{folder}/tensors/{name}.safetensors" if folder else f"tensors/{name}.safetensors"
        self._need_file(relative, f"tensors `{name}`")
        return _tensors(self.root, self.directory, self.stamp, name, folder)

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
        return _file_bytes(self.root, self.directory, self.stamp, "contact_sheet.png")

    # -- what is missing, and why ----------------------------------------------------------------------
    def missing(self, key: str, what: str) -> str | None:
        """None when ``metrics.json`` key ``key`` holds a value; else why not, naming its stage."""
        value = _lookup(_raw_metrics(self.root, self.directory, self.stamp), key)
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
        """Raise :class:`NotComputed` unless run file ``relative`` is there and finished: in a run that is not
        complete, a stage's files count only once the manifest records the stage (it may still be writing
        them), and the pipeline's own files only once the run is complete."""
        status = self.info.status
        writer = file_writer(relative)
        if status == "complete" or (writer is not None and writer.name in self.info.stages):
            if self.has(relative):
                return
        elif writer is None and relative not in PIPELINE_FILES and self.has(relative):
            return  # a file no stage declares (a recompute's): written atomically by its writer
        if relative not in PIPELINE_FILES:
            raise NotComputed(self._why(writer, what, f"`{relative}`"))
        if status == "complete":
            raise NotComputed(f"This run has no {what}: its pipeline finished without writing `{relative}`.")
        how = "it has not finished yet" if status == "running" else "it did not finish"
        raise NotComputed(f"This run has no {what}: the pipeline writes it last, and {how} (the run is {status}).")

    def _why(self, stage: Any, what: str, where: str) -> str:
        if stage is None:
            return f"This run has no {what}: no stage of this engine writes {where}."
        info = self.info
        if stage.name in info.stages:
            return f"This run has no {what}: its `{stage.name}` stage ran but did not write {where}."
        if info.status != "complete" and stage.name in info.stages_selected:
            how = "has not finished yet" if info.status == "running" else "did not finish"
            return f"This run has no {what} because its `{stage.name}` stage {how} (the run is {info.status})."
        return f"This run has no {what} because its `{stage.name}` stage was not run."


def _subject(model: str) -> str:
    from igcore.methods import method_spec

    return method_spec(model).subject


# ----------------------------------------------------------------------------------- cached loaders
# Module-level functions so Streamlit can hash their arguments; ``stamp`` (or the hashable RunView, which
# holds it) is part of every key, and ``directory`` is the run's folder in ``root`` (:attr:`RunView.directory`).


def _run(root: str, directory: str) -> Run:
    return Run(Path(root) / directory)


@st.cache_resource(show_spinner=False, max_entries=32)
def _manifest(root: str, directory: str, stamp: float) -> Manifest:
    return _run(root, directory).info()


@st.cache_resource(show_spinner=False, max_entries=32)
def _raw_metrics(root: str, directory: str, stamp: float) -> dict[str, Any]:
    return _run(root, directory).metrics


@st.cache_resource(show_spinner=False, max_entries=32)
def _results(root: str, directory: str, stamp: float) -> Metrics:
    return Metrics.model_validate(_raw_metrics(root, directory, stamp))


@st.cache_resource(show_spinner=False, max_entries=32)
def _judgments(root: str, directory: str, stamp: float) -> Judgments:
    return _run(root, directory).judgments()


@st.cache_resource(show_spinner=False, max_entries=32)
def _vocabulary(root: str, directory: str, stamp: float) -> Vocabulary:
    return _run(root, directory).vocabulary()[0]


@st.cache_resource(show_spinner=False, max_entries=64)
def _named_vocabulary(root: str, directory: str, stamp: float, names: tuple[tuple[str, str], ...]) -> Vocabulary:
    recorded = _vocabulary(root, directory, stamp)
    return apply_names(recorded, dict(names)) if names else recorded


def _named_records(run: RunView, records: list[Any]) -> list[Any]:
    """Copies of stored records (ranked hypotheses, clause-deletion rows) with their texts in the current names."""
    texts = run.concept_texts

    def named(r: Any) -> Any:
        if hasattr(r, "clauses"):
            return r.model_copy(update={"clauses": [named(c) for c in r.clauses]})
        return r.model_copy(update={"text": texts.get(r.concept, r.text)})

    return [named(r) for r in records]


@st.cache_data(show_spinner=False, max_entries=64)
def rendered_text(run: RunView, key: str) -> str:
    """``hypotheses.<key>`` rendered in the run's current names as the engine rendered it: a field guide
    (:meth:`Hypothesis.render`), or for a surrogate what its model behaves as if
    (:func:`igcore.microscope.surrogate.behaves_as_if`)."""
    from igcore.methods import method_spec
    from igcore.microscope.surrogate import behaves_as_if

    clauses = [{"concept": c.concept, "class": c.cls, "weight": c.weight} for c in getattr(run.hypotheses, key)]
    hypothesis = Hypothesis.from_json({"clauses": clauses, "bias": {}}, run.vocabulary, run.classes)
    model = HYPOTHESES[key].surrogate_of
    if model is None:
        return hypothesis.render(run.vocabulary, run.classes)
    return behaves_as_if(hypothesis, run.vocabulary, run.classes, method_spec(model).noun or model)


#: The dashboard's database in RUNS_DIR: what people write (ratings, labels, names), shared by every run.
DATABASE = "judgments.sqlite"


def database_path(root: str) -> str:
    """The dashboard's database of RUNS_DIR ``root`` (every run of this dashboard shares it; each world and run sees its own rows)."""
    return str(Path(root) / DATABASE)


def read_names(root: str, run: Run) -> tuple[tuple[str, str], ...]:
    """The names people gave ``run``'s discovered concepts in the dashboard's database, sorted; nothing when the run
    discovered none or nobody has written to the database yet (reading creates nothing)."""
    path = database_path(root)
    if not Path(path).is_file() or not (run.path / "discover").is_dir():
        return ()
    try:
        store = name_store(path, run)
    except InputError:  # discovery did not finish: nothing to name yet
        return ()
    return tuple(sorted(store.names().items()))


def name_store(path: str, run: Run) -> Any:
    """The :class:`igcore.discover.store.NameStore` of ``run``'s components in database ``path``, one per process and
    run (so reading the names is one query per script run)."""
    return _name_store(path, str(run.path), run.stamp())


@st.cache_resource(show_spinner=False, max_entries=16)
def _name_store(path: str, directory: str, stamp: float) -> Any:
    from igcore.discover import DiscoveryView

    return DiscoveryView(Run(Path(directory))).name_store(path)


@st.cache_data(show_spinner=False, max_entries=64)
def _table(root: str, directory: str, stamp: float, name: str, folder: str) -> pd.DataFrame:
    return _run(root, directory).table(name, folder)


@st.cache_resource(show_spinner=False, max_entries=16)
def _tensors(root: str, directory: str, stamp: float, name: str, folder: str) -> dict[str, np.ndarray]:
    arrays = _run(root, directory).tensors(name, folder)
    for a in arrays.values():
        a.setflags(write=False)
    return arrays


@st.cache_data(show_spinner=False, max_entries=32)
def _file_bytes(root: str, directory: str, stamp: float, relative: str) -> bytes:
    data = _run(root, directory).file_bytes(relative)
    if data is None:
        raise NotComputed(f"This run has no `{relative}`.")
    return data


@st.cache_data(show_spinner=False, max_entries=32)
def _z_star_rank(run: RunView) -> int:
    ranked = run.ranked
    want = {(c["concept"], c["class"]) for c in run.clauses("z_star")}
    for i, r in enumerate(ranked):
        if {(c.concept, c.cls) for c in r.clauses} == want:
            return i
    return int(np.argmax([r.posterior for r in ranked]))


PLACE_PREFIX = "place::"


@st.cache_data(show_spinner=False, max_entries=32)
def _place_categories(run: RunView) -> dict[str, list[str]]:
    places = [c for c in run.world.vocabulary if c.id.startswith(PLACE_PREFIX)]
    if not places:
        return {}
    covers: dict[str, set[str]] = {b: set() for b in run.backgrounds}
    for split in ("train", "val", "test_train", "test_eval"):
        if not run.has(f"tables/split_{split}.parquet"):
            continue
        table = run.split(split)
        for place in places:
            column = true_column(place.id)
            if column in table:
                for b in np.unique(table.loc[table[column] > 0, "background"]):
                    covers[run.backgrounds[int(b)]].add(place.text.removeprefix("place: "))
    if all(found <= {b} for b, found in covers.items()):
        return {}
    return {b: sorted(found) for b, found in covers.items()}
