"""The read side of a stored run: :class:`Run`, the only reader of run files (the CLI, the bench scripts and
the dashboard read runs through it; :mod:`igcore.store.listing` opens them)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from safetensors.numpy import load_file as _load_np

from igcore.errors import InputError
from igcore.schema import Manifest, Metrics, check_table, check_version


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
        records = (results.concepts or {}).get("vocabulary") or [c.model_dump() for c in world.vocabulary] + self._discovered()
        vocab = Vocabulary(tuple(Concept(c["id"], c["text"], c["kind"]) for c in records))
        return vocab, list(world.classes)

    def _discovered(self) -> list[dict[str, Any]]:
        """The discovered concepts of a run whose vocabulary stage did not run (``discover/<model>/info.json``, in
        ``discover.models`` order), so that they read as the vocabulary stage would have merged them."""
        from igcore.discover.params import FOLDER

        found = []
        for model in (self.config.get("discover") or {}).get("models") or []:
            raw = self.file_bytes(f"{FOLDER}/{model}/info.json")
            found += json.loads(raw)["concepts"] if raw is not None else []
        return found

    def judgments(self) -> Any:
        """The judgments the run's Prior_M was fitted on (:class:`igcore.prior.Judgments`, recorded by its ``ig``
        stage). A run made before runs recorded them gets what its config names, read afresh, with
        ``provenance.recorded`` False and a sentence saying so; :class:`InputError` if that cannot be read now."""
        from igcore.prior.sources import JUDGMENTS_FOLDER, PROVENANCE_FILE, Judgments, load_judgments

        raw = self.file_bytes(f"{JUDGMENTS_FOLDER}/{PROVENANCE_FILE}")
        if raw is not None:
            pairwise = self.table("pairwise", JUDGMENTS_FOLDER) if self.has(f"{JUDGMENTS_FOLDER}/tables/pairwise.parquet") else None
            return Judgments.recorded(self.table("ratings", JUDGMENTS_FOLDER), pairwise, raw)
        vocabulary, classes = self.vocabulary()
        try:
            judgments = load_judgments(self.config_model().prior, vocabulary, classes)
        except InputError as e:
            raise InputError(f"run {self.run_id!r} was made before runs recorded their judgments, and what its config names "
                             f"cannot be read now: {e}") from None
        why = ("This run was made before runs recorded the judgments they were solved with: these were read afresh from what its "
               "config names, and may differ from what it used." if "prior" in self.metrics else
               "This run has not fitted its prior yet (its `ig` stage has not run): these are the judgments its config names.")
        return replace(judgments, provenance=judgments.provenance.model_copy(update={"recorded": False, "unrecorded": why}))

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
