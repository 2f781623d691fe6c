"""Any folder of images described by one CSV manifest: ``path,label,split[,group,mask,<concept columns>]``.

- ``path``: image file, relative to the manifest's folder. ``mask`` (optional): object mask image (white
  on the object), relative likewise; give one for every row or drop the column. A path that resolves
  outside the manifest's folder (``..``, an absolute path, a symlink pointing out) is refused: a
  manifest must not be able to read arbitrary files into the dashboard.
- ``label``: class, a name or an integer. With ``class_names`` unset the classes are the sorted distinct
  labels (integers sorted as numbers); with ``class_names`` each label must be one of the names or an
  integer index into them.
- ``split``: ``train`` (D), ``val`` or ``test`` (D′, divided by seed into ``test_train`` and
  ``test_eval``; see :mod:`igcore.worlds.imageset` for the D/D′/concept-bank semantics).
- ``group`` (optional): the background/context of the image (e.g. the place, the hospital, the
  scanner). Its distinct values are the world's ``backgrounds`` and give the groups (class, group),
  named ``class/group``; each value is also a one-hot context concept ``place::<value>`` (the name the
  project uses for context concepts of a place, so that judgments about ``place::`` concepts carry over
  between data sources). Without the column there is one background, ``any``, and groups are classes.
- Every further column is a 0/1 concept annotation named by its header (kind ``core``; text: the header
  with underscores as spaces). ``vocabulary`` (CSV ``id,text,kind``) overrides texts and kinds.
- A manifest of only ``path,label,split`` is valid: its vocabulary is empty, and the concepts the run
  speaks in are the ones discovered in its models (:mod:`igcore.discover`).

The CSV is read as UTF-8 (a byte-order mark is accepted). Photographs cannot be re-drawn on another
background: ``can_render`` is False.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from igcore.errors import InputError
from igcore.settings import PathText
from igcore.worlds.base import Concept, Vocabulary
from igcore.worlds.images import ProgressFn
from igcore.worlds.imageset import (
    SPLIT_CODES,
    ImageSetParams,
    ImageSetWorld,
    ImageTable,
    NameList,
    apply_vocabulary,
    distinct,
    read_csv,
    readable_words,
    resolve_inside,
)
from igcore.worlds.registry import register_world

REQUIRED = ("path", "label", "split")
RESERVED = (*REQUIRED, "group", "mask")
NO_GROUP = "any"
_FIX = "a manifest needs columns path,label,split (optional group, mask and 0/1 concept columns), one row per image"


def _sorted_names(values: Sequence[str]) -> list[str]:
    """Distinct values, sorted as integers when they all are integers, else as strings."""
    distinct = set(values)
    if all(re.fullmatch(r"[+-]?\d+", v) for v in distinct):
        return sorted(distinct, key=int)
    return sorted(distinct)


class FolderParams(ImageSetParams):
    """The ``world.*`` keys of the folder-manifest loader."""

    name: Literal["folder"] = Field("folder", description="a CSV manifest path,label,split[,group,mask,<concepts>] (docs/BYOD.md)")
    manifest: PathText = Field(description="the CSV manifest; paths inside it are relative to its folder")
    class_names: NameList | None = Field(None, min_length=2, description="class names in label-index order; null = the sorted distinct labels")

    @field_validator("class_names")
    @classmethod
    def _distinct(cls, names: list[str] | None) -> list[str] | None:
        return distinct(names, "class_names")


@register_world("folder", FolderParams)
class FolderWorld(ImageSetWorld):
    """Images listed in a CSV manifest, with labels, splits, optional groups, masks and concept columns.

    Args:
        params: the ``world.*`` keys (:class:`FolderParams`): ``manifest`` is the CSV; paths inside it
            are relative to its folder; ``class_names`` names the labels in index order.
        seed: decides the D′ division and the order of every split.
        progress: ``progress(done, total)`` callback while decoding (not a config key).
    """

    name = "folder"

    def __init__(self, params: FolderParams, seed: int = 0, progress: ProgressFn | None = None) -> None:
        self.params, self.manifest = params, Path(params.manifest).expanduser()
        names = None if params.class_names is None else list(params.class_names)
        table, classes, backgrounds = self._table(self.manifest, names, params.vocabulary)
        self._build(table, classes, backgrounds, params, seed=seed, progress=progress)

    def _table(
        self, manifest: Path, class_names: list[str] | None, vocabulary: str | Path | None
    ) -> tuple[ImageTable, list[str], list[str]]:
        df = read_csv(manifest, REQUIRED, "folder: manifest", _FIX)
        what = f"folder: {manifest}"
        for column in df.columns:
            base = re.fullmatch(r"(.+)\.\d+", column)
            if column == "" or column.startswith("Unnamed: ") or (base and base.group(1) in df.columns):
                raise InputError(f"{what}: column {column!r} is unnamed or repeated; every column needs its own header")

        # split
        split_names = df["split"].str.lower()
        bad = sorted(set(split_names) - set(SPLIT_CODES))
        if bad:
            rows = int(split_names.isin(bad).sum())
            raise InputError(
                f"{what}: split must be train, val or test; found {', '.join(map(repr, bad))} in {rows} row(s)"
            )
        split = split_names.map(SPLIT_CODES).to_numpy().astype(np.int64)

        # labels
        raw = df["label"].tolist()
        if any(v == "" for v in raw):
            raise InputError(f"{what}: label is empty in row {raw.index('') + 1}; every image needs its class label")
        labels, classes = self._labels(raw, class_names, what)

        # paths (images, masks) under the manifest's folder
        folder = manifest.parent
        paths = df["path"].tolist()
        if any(p == "" for p in paths):
            raise InputError(f"{what}: path is empty in row {paths.index('') + 1}; every row needs an image path")
        files = resolve_inside(folder, paths, what)
        mask_files = None
        if "mask" in df.columns:
            masks = df["mask"].tolist()
            empty = [i for i, m in enumerate(masks) if m == ""]
            if empty:
                raise InputError(
                    f"{what}: mask is empty in {len(empty)} row(s) (first: row {empty[0] + 1}); give a mask for every "
                    "image or drop the mask column"
                )
            mask_files = resolve_inside(folder, masks, what)

        # groups -> backgrounds and place:: context concepts
        vocab: list[Concept] = []
        blocks: list[np.ndarray] = []
        concept_columns = [c for c in df.columns if c not in RESERVED]
        if concept_columns:
            values = df[concept_columns]
            ok = values.isin(["0", "1"])
            if not ok.to_numpy().all():
                col = next(c for c in concept_columns if not ok[c].all())
                row = int(np.flatnonzero(~ok[col].to_numpy())[0])
                raise InputError(
                    f"{what}: concept column {col!r} must hold 0 or 1; row {row + 1} has {values[col].iloc[row]!r} "
                    "(every column other than path,label,split,group,mask is a concept annotation)"
                )
            blocks.append((values.to_numpy() == "1").astype(np.uint8))
            vocab.extend(Concept(c, readable_words(c), "core") for c in concept_columns)
        if "group" in df.columns:
            groups = df["group"].tolist()
            if any(g == "" for g in groups):
                raise InputError(
                    f"{what}: group is empty in row {groups.index('') + 1}; fill it or drop the group column"
                )
            backgrounds = _sorted_names(groups)
            index = {g: k for k, g in enumerate(backgrounds)}
            background = np.array([index[g] for g in groups], dtype=np.int64)
            onehot = np.zeros((len(df), len(backgrounds)), dtype=np.uint8)
            onehot[np.arange(len(df)), background] = 1
            blocks.append(onehot)
            vocab.extend(Concept(f"place::{g}", f"place: {readable_words(g)}", "context") for g in backgrounds)
        else:
            backgrounds = [NO_GROUP]
            background = np.zeros(len(df), dtype=np.int64)
        ids = [c.id for c in vocab]
        if len(set(ids)) < len(ids):
            clash = sorted({i for i in ids if ids.count(i) > 1})
            raise InputError(
                f"{what}: concept ids collide ({', '.join(clash)}): a concept column repeats a place::<group> name; rename it"
            )
        vocab = apply_vocabulary(vocab, vocabulary, self.name)

        table = ImageTable(
            files=files,
            display=paths,
            mask_files=mask_files,
            labels=labels,
            split=split,
            background=background,
            concepts=np.concatenate(blocks, axis=1) if blocks else np.zeros((len(df), 0), dtype=np.uint8),
            vocabulary=Vocabulary(tuple(vocab)),
        )
        return table, classes, backgrounds

    @staticmethod
    def _labels(raw: list[str], class_names: list[str] | None, what: str) -> tuple[np.ndarray, list[str]]:
        """Class index per row, and the class names (see the module docstring for the rules)."""
        if class_names is None:
            classes = _sorted_names(raw)
            index = {c: k for k, c in enumerate(classes)}
            return np.array([index[v] for v in raw], dtype=np.int64), classes
        index = {c: k for k, c in enumerate(class_names)}
        if all(v in index for v in raw):
            return np.array([index[v] for v in raw], dtype=np.int64), class_names
        as_int = [int(v) if re.fullmatch(r"[+-]?\d+", v) else None for v in raw]
        if all(v is not None and 0 <= v < len(class_names) for v in as_int):
            return np.array(as_int, dtype=np.int64), class_names
        unknown = _sorted_names([v for v in raw if v not in index])
        raise InputError(
            f"{what}: label(s) {', '.join(map(repr, unknown[:5]))} are neither in class_names ({', '.join(class_names)}) "
            f"nor indices 0..{len(class_names) - 1}; fix the labels or class_names"
        )
