"""What every loader of a user's photographs shares: the split semantics, the concept bank, the checks.

A loader (:mod:`~igcore.worlds.waterbirds`, :mod:`~igcore.worlds.folder`) parses its files into an
:class:`ImageTable` (one row per image, in file order) and hands it to :meth:`ImageSetWorld._build`,
which turns it into the world contract of :mod:`igcore.worlds.base`:

- **D** (``train``) is the data set's train split; ``val`` its validation split.
- **D′** is the test split, divided deterministically by ``seed`` into ``test_train`` (unlabelled for
  the engine) and ``test_eval`` (labels for evaluation only). The division is stratified by group,
  (class, background): every group with at least two test images is in both halves, with
  ``round(test_eval_fraction × n)`` of its images in ``test_eval``.
- The **concept bank** is annotated data disjoint from D′: the ``val`` split by default, or ``train``,
  or ``train+val`` (``concept_bank``). It keeps its class labels (its ``labels``/``groups`` arrays are
  filled) because they exist, but the concept model never reads them. Concepts that never or always
  occur in the bank cannot be learned from it and are dropped from the vocabulary (and from every
  split's concept matrix), each drop recorded in :attr:`ImageSetWorld.notes`. A data set without any
  concept annotation (labels only) has an empty vocabulary.
- Every split is shuffled by ``seed`` (file order is usually sorted by class, and code that takes "the
  first k images" should see a mix).

Memory: all images are decoded once into one array, reordered in place so that train, val,
test_train and test_eval are contiguous, and every :class:`~igcore.worlds.base.Split` holds *views*
(slices) of it; the concept bank is a slice too (``train+val`` is one contiguous block). A data set the
size of Waterbirds (11,788 images) at 224 px holds 1.8 GB of pixels and 0.6 GB of masks once.

**Lazy mode** (:func:`decoding`, what ``executor=ray`` builds): no pixel is decoded at construction.
The files are checked (each one exists), the splits are the same rows in the same order, and their
``images`` / ``masks`` are :class:`~igcore.worlds.images.LazyImages` views that decode with the same
function as the eager path when read, so a streaming executor decodes every image in its workers and
the engine only ever decodes the samples it looks at.

Bad input raises :class:`~igcore.errors.InputError` at construction, before any image is decoded where
the problem is in a table, with one line that says what is wrong and how to fix it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import BeforeValidator, Field, StringConstraints, field_validator

from igcore.errors import InputError
from igcore.settings import PathText
from igcore.worlds.base import SPLITS, Concept, Split, Vocabulary, WorldParams
from igcore.worlds.images import (
    RESIZE_POLICIES,
    ImageFiles,
    LazyImages,
    LoadInfo,
    ProgressFn,
    default_cache_dir,
    load_images,
    permute_rows,
)

if TYPE_CHECKING:
    import pandas as pd

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}  # how a loader labels each row's split in ImageTable.split
CONCEPT_BANKS: dict[str, tuple[str, ...]] = {"val": ("val",), "train": ("train",), "train+val": ("train", "val")}
_ORDER = ("train", "val", "test_train", "test_eval")  # contiguous blocks of the image array, in this order

DecodeMode = Literal["eager", "lazy"]
_DECODE: ContextVar[DecodeMode] = ContextVar("igcore_image_decoding", default="eager")


@contextmanager
def decoding(mode: DecodeMode) -> Iterator[None]:
    """Worlds of photographs built inside decode ``eager`` (every image at construction, cached) or ``lazy``
    (on demand: :class:`~igcore.worlds.images.LazyImages`). The pipeline builds lazily for ``executor=ray``."""
    if mode not in ("eager", "lazy"):
        raise ValueError(f"decoding mode must be eager or lazy, got {mode!r}")
    token = _DECODE.set(mode)
    try:
        yield
    finally:
        _DECODE.reset(token)


@dataclass
class ImageTable:
    """What a loader parsed from its files: one row per image, in the order of the user's table.

    files:      absolute image paths
    display:    each path as the user wrote it (for error messages)
    mask_files: one mask path per image, or None when the data has no masks
    labels:     int64 class index into the world's classes
    split:      int64 code from :data:`SPLIT_CODES`
    background: int64 index into the world's backgrounds
    concepts:   uint8 (N, K) 0/1 annotation of ``vocabulary``
    latents:    extra per-image arrays passed through to every split (e.g. ``img_id``)
    notes:      remarks of the loader, placed first in the world's notes
    """

    files: list[Path]
    display: list[str]
    mask_files: list[Path] | None
    labels: np.ndarray
    split: np.ndarray
    background: np.ndarray
    concepts: np.ndarray
    vocabulary: Vocabulary
    latents: dict[str, np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------
# Helpers for the loaders


def read_csv(path: Path, required: Sequence[str], what: str, fix: str) -> pd.DataFrame:
    """Read a CSV as strings (cells stripped, no NA guessing, a UTF-8 BOM tolerated), checking ``required`` columns.

    ``what`` names the file in messages, ``fix`` says what a valid file looks like.
    """
    import pandas as pd

    if path.is_dir():
        raise InputError(f"{what} {path} is a folder, not a CSV file; {fix}")
    if not path.is_file():
        raise InputError(f"{what} {path} does not exist; {fix}")
    with path.open("rb") as f:
        head = f.read(65536)
    if b"\0" in head:
        raise InputError(f"{what} {path} is a binary file, not CSV text; {fix}")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise InputError(f"{what} {path} is empty; {fix}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} {path} is not UTF-8 text ({exc.reason} at byte {exc.start}); {fix}") from None
    except pd.errors.ParserError as exc:
        reason = str(exc).strip().splitlines()[-1]
        raise InputError(f"{what} {path} cannot be parsed as CSV ({reason}); {fix}") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        found = ", ".join(df.columns[:8]) + (", ..." if len(df.columns) > 8 else "")
        raise InputError(f"{what} {path} lacks column(s) {', '.join(missing)} (found: {found}); {fix}")
    if len(df) == 0:
        raise InputError(f"{what} {path} has a header but no rows; {fix}")
    return df.apply(lambda col: col.str.strip())


def int_column(df: pd.DataFrame, column: str, what: str) -> np.ndarray:
    """Column ``column`` as int64, or an InputError naming the first non-integer cell (1-based data row)."""
    import pandas as pd

    values = pd.to_numeric(df[column], errors="coerce")
    bad = values.isna() | (values != values.round())
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"{what}: column {column} must hold integers; row {row + 1} has {df[column].iloc[row]!r}")
    return values.to_numpy().astype(np.int64)


def apply_vocabulary(concepts: list[Concept], path: str | Path | None, source: str) -> list[Concept]:
    """Override the derived text and kind of ``concepts`` from a vocabulary CSV (``id,text,kind``).

    Concepts the CSV does not list keep their derived text and kind; an id the data does not have is
    refused (a misspelt id would otherwise silently change nothing).
    """
    if path is None:
        return concepts
    override = {c.id: c for c in Vocabulary.from_csv(_existing(Path(path), "vocabulary CSV", source)).concepts}
    known = {c.id for c in concepts}
    unknown = [cid for cid in override if cid not in known]
    if unknown:
        raise InputError(
            f"{source}: vocabulary {path} names {len(unknown)} concept(s) this data set does not have "
            f"(first: {unknown[0]!r}); fix the spelling or remove those rows"
        )
    return [override.get(c.id, c) for c in concepts]


def _existing(path: Path, what: str, source: str) -> Path:
    if not path.is_file():
        raise InputError(f"{source}: {what} {path} does not exist")
    return path


def readable_words(text: str) -> str:
    """``curved_(up_or_down)`` → ``curved (up or down)``: underscores to spaces, parentheticals kept as words."""
    return " ".join(text.replace("_", " ").replace("(", " (").split()).replace("( ", "(").replace(" )", ")")


def place_category(place_filename: str) -> str:
    """Places365 category of a ``place_filename`` such as ``/b/bamboo_forest/00000019.jpg``.

    The category is the path between Places365's one-letter index folder and the file, so that nested
    categories keep their Places365 name (``/l/lake/natural/x.jpg`` → ``lake/natural``, not the ambiguous
    ``natural``); a path without the index folder uses every folder above the file.
    """
    parts = [p for p in place_filename.replace("\\", "/").split("/") if p]
    folders = parts[:-1]
    if len(folders) > 1 and len(folders[0]) == 1:
        folders = folders[1:]
    return "/".join(folders)


def _names(value: Any) -> Any:
    """A list of names also from a comma-separated string (``--set world.class_names=a,b``)."""
    return [v.strip() for v in value.split(",")] if isinstance(value, str) else value


class ImageSetParams(WorldParams):
    """The ``world.*`` keys every loader of a user's photographs shares."""

    vocabulary: PathText | None = Field(None, description="CSV id,text,kind overriding concept texts and kinds (image-set worlds)")
    image_size: int = Field(64, ge=16, le=1024, description="side of the square images the photographs are resized to")
    test_eval_fraction: float = Field(0.5, gt=0, lt=1, description="share of each group's test images kept for evaluation (test_eval)")
    concept_bank: str = Field("val", description="annotated images the concept model learns from: val | train | train+val (never D')")
    resize: str = Field("stretch", description="stretch (whole image to a square) | crop (shorter side, centre square)")
    workers: int | None = Field(None, ge=1, description="image-decoding threads; null = a few more than the CPUs")
    cache_dir: PathText | None = Field(None, description="decoded-image cache; null = $XDG_CACHE_HOME/ig-microscope")

    @field_validator("concept_bank")
    @classmethod
    def _known_bank(cls, value: str) -> str:
        if value not in CONCEPT_BANKS:
            raise ValueError(f"concept_bank must be one of {', '.join(CONCEPT_BANKS)}, got {value!r}")
        return value

    @field_validator("resize")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        if value not in RESIZE_POLICIES:
            raise ValueError(f"resize must be one of {', '.join(RESIZE_POLICIES)}, got {value!r}")
        return value


NameList = Annotated[list[Annotated[str, StringConstraints(min_length=1)]], BeforeValidator(_names)]


def distinct(names: list[str] | None, what: str) -> list[str] | None:
    if names is not None and len(set(names)) < len(names):
        raise ValueError(f"{what} repeats a name ({', '.join(names)}); names must be distinct")
    return names


# ---------------------------------------------------------------------------------------------------
# The world


class ImageSetWorld:
    """Base of the worlds that load photographs; subclasses parse their files and call :meth:`_build`.

    Attributes (besides the world contract):
        files: absolute image paths in the user's table order (``latents["source_row"]`` indexes it).
        notes: one-line remarks about what was done with the data (dropped concepts, thin groups).
        load_info: how the images were loaded (cache hit or miss, seconds).
    """

    name = "imageset"
    can_render = False  # photographs: the object cannot be re-drawn on another background

    classes: list[str]
    backgrounds: list[str]
    vocabulary: Vocabulary
    image_size: int
    notes: list[str]
    files: list[Path]
    load_info: LoadInfo

    def _build(
        self,
        table: ImageTable,
        classes: list[str],
        backgrounds: list[str],
        params: ImageSetParams,
        *,
        seed: int,
        progress: ProgressFn | None,
    ) -> None:
        """Check the table, assign D/D′/concept bank, drop unlearnable concepts, then decode the images."""
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise InputError(f"{self.name}: seed must be a non-negative integer, got {seed!r}")
        concept_bank, test_eval_fraction = params.concept_bank, params.test_eval_fraction
        self.classes, self.backgrounds, self.image_size = list(classes), list(backgrounds), params.image_size
        self.seed, self.concept_bank = int(seed), concept_bank
        self.notes = list(table.notes)
        self.files = list(table.files)
        groups = table.labels * len(backgrounds) + table.background
        self._check_train(table, groups)

        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0xB10D]))
        blocks = self._blocks(table, groups, test_eval_fraction, rng)
        order = np.concatenate([blocks[name] for name in _ORDER])
        bounds = np.cumsum([0] + [len(blocks[name]) for name in _ORDER])
        self._slices = {name: slice(int(bounds[k]), int(bounds[k + 1])) for k, name in enumerate(_ORDER)}
        bank = CONCEPT_BANKS[concept_bank]
        self._slices["concept_bank"] = slice(self._slices[bank[0]].start, self._slices[bank[-1]].stop)
        if len(blocks["val"]) == 0 and "val" in bank:
            raise InputError(
                f"{self.name}: the concept bank is the val split, which has no rows; add validation rows "
                "or set concept_bank to train or train+val"
            )
        if concept_bank != "val":
            self.notes.append(
                f"the concept bank is {concept_bank}: its concepts are as correlated with class and "
                "background as D's are"
            )

        keep = self._learnable(table, order[self._slices["concept_bank"]])
        self.vocabulary = Vocabulary(tuple(c for c, k in zip(table.vocabulary.concepts, keep, strict=True) if k))

        if _DECODE.get() == "lazy":
            start = time.perf_counter()
            source = ImageFiles(
                tuple(table.files), self.image_size, params.resize,
                None if table.mask_files is None else tuple(table.mask_files),
                tuple(table.display), params.workers,
            )
            source.check()
            cache_dir = Path(params.cache_dir).expanduser() if params.cache_dir is not None else default_cache_dir()
            self.load_info = LoadInfo(len(table.files), "lazy", time.perf_counter() - start, "", cache_dir)
            images: np.ndarray | LazyImages = LazyImages(source, order)
            masks: np.ndarray | LazyImages | None = None if table.mask_files is None else LazyImages(source, order, "masks")
        else:
            images, masks, self.load_info = load_images(
                table.files,
                self.image_size,
                policy=params.resize,
                mask_files=table.mask_files,
                display=table.display,
                workers=params.workers,
                cache_dir=Path(params.cache_dir).expanduser() if params.cache_dir is not None else None,
                progress=progress,
                desc=self.name,
            )
            permute_rows(images, order)
            if masks is not None:
                permute_rows(masks, order)
        self.notes.extend(self.load_info.notes)
        self._images, self._masks = images, masks
        self._labels = table.labels[order].astype(np.int64)
        self._background = table.background[order].astype(np.int64)
        self._groups = groups[order].astype(np.int64)
        self._concepts = np.ascontiguousarray(table.concepts[order][:, keep], dtype=np.uint8)
        self._latents = {"source_row": order.astype(np.int64)} | {k: v[order] for k, v in table.latents.items()}
        self._cache: dict[str, Split] = {}

    # -- world contract -------------------------------------------------------------------------------

    def split(self, name: str) -> Split:
        """Split ``name`` (one of :data:`~igcore.worlds.base.SPLITS`): views into the world's arrays, no copies."""
        if name not in SPLITS:
            raise InputError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
        if name not in self._cache:
            s = self._slices[name]
            self._cache[name] = Split(
                name,
                _rows(self._images, s),
                self._labels[s],
                self._concepts[s],
                self._background[s],
                None if self._masks is None else _rows(self._masks, s),
                self._groups[s],
                {k: v[s] for k, v in self._latents.items()},
            )
        return self._cache[name]

    def group_names(self) -> list[str]:
        """``class/background`` in group-id order (``label * n_backgrounds + background``)."""
        return [f"{c}/{b}" for c in self.classes for b in self.backgrounds]

    # -- steps of _build -----------------------------------------------------------------------------

    def _check_train(self, table: ImageTable, groups: np.ndarray) -> None:
        """Refuse data whose train split (D) lacks a class or a group; a split with no rows at all."""
        for code, what in ((SPLIT_CODES["train"], "train (D)"), (SPLIT_CODES["test"], "test (D′)")):
            if not (table.split == code).any():
                raise InputError(
                    f"{self.name}: the {what} split has no rows; the engine needs both train and test rows"
                )
        train = table.split == SPLIT_CODES["train"]
        counts = np.bincount(table.labels[train], minlength=len(self.classes))
        if (counts == 0).any():
            missing = [c for c, n in zip(self.classes, counts, strict=True) if n == 0]
            raise InputError(
                f"{self.name}: class(es) {', '.join(missing)} have no images in the train split (D); "
                "every class needs training examples (check the label and split columns)"
            )
        names = self.group_names()
        counts = np.bincount(groups[train], minlength=len(names))
        if (counts == 0).any():
            missing = [g for g, n in zip(names, counts, strict=True) if n == 0]
            raise InputError(
                f"{self.name}: group(s) {', '.join(missing)} have no images in the train split (D); every "
                "(class, background) group needs training examples: add some, or merge the background values"
            )

    def _blocks(
        self, table: ImageTable, groups: np.ndarray, fraction: float, rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """Table rows of train, val, test_train and test_eval (each shuffled); the test split stratified by group."""
        rows = {name: np.flatnonzero(table.split == code) for name, code in SPLIT_CODES.items()}
        test_rows = rows["test"]
        evaluate, train_part, thin = [], [], []
        names = self.group_names()
        for g in range(len(names)):
            members = rng.permutation(test_rows[groups[test_rows] == g])
            if len(members) == 0:
                continue
            n_eval = (
                len(members) if len(members) == 1 else min(max(round(fraction * len(members)), 1), len(members) - 1)
            )
            if len(members) == 1:
                thin.append(names[g])
            evaluate.append(members[:n_eval])
            train_part.append(members[n_eval:])
        absent = [names[g] for g in range(len(names)) if not (groups[test_rows] == g).any()]
        if absent:
            self.notes.append(f"group(s) {', '.join(absent)} have no test images: D′ cannot measure them")
        if thin:
            self.notes.append(f"group(s) {', '.join(thin)} have one test image, kept in test_eval (none in test_train)")
        return {
            "train": rng.permutation(rows["train"]),
            "val": rng.permutation(rows["val"]),
            "test_train": rng.permutation(np.concatenate(train_part)),
            "test_eval": rng.permutation(np.concatenate(evaluate)),
        }

    def _learnable(self, table: ImageTable, bank_rows: np.ndarray) -> np.ndarray:
        """Mask of concepts that both occur and are absent somewhere in the concept bank; notes for the others."""
        counts = table.concepts[bank_rows].sum(axis=0, dtype=np.int64)
        ids = np.array(table.vocabulary.ids, dtype=object)
        for what, bad in (("never occur", counts == 0), ("always occur", counts == len(bank_rows))):
            if bad.any():
                listed = ", ".join(ids[bad][:12]) + (f", ... ({int(bad.sum())} in all)" if bad.sum() > 12 else "")
                self.notes.append(
                    f"dropped {int(bad.sum())} concept(s) that {what} in the concept bank ({self.concept_bank}), "
                    f"so no concept model can learn them: {listed}"
                )
        keep = (counts > 0) & (counts < len(bank_rows))
        if len(keep) and not keep.any():
            raise InputError(
                f"{self.name}: no concept both occurs and is absent in the concept bank ({self.concept_bank}); "
                "annotate concepts on those images or choose another concept_bank"
            )
        return keep


def _rows(array: np.ndarray | LazyImages, s: slice) -> Any:
    """Rows ``s`` of the world's pixels: a view of the array, or an undecoded view of lazy images."""
    return array.view(s) if isinstance(array, LazyImages) else array[s]


def resolve_inside(folder: Path, relative: Sequence[str], what: str) -> list[Path]:
    """Absolute paths of ``relative`` under ``folder``, refusing any that resolve outside it (``..``, symlinks)."""
    base = folder.resolve()
    out, escaped = [], []
    for rel in relative:
        path = (folder / rel).resolve()
        if not path.is_relative_to(base):
            escaped.append((rel, path))
        out.append(path)
    if escaped:
        rel, path = escaped[0]
        raise InputError(
            f"{what}: {len(escaped)} path(s) resolve outside {base} (first: {rel} -> {path}); "
            "images and masks must live under the manifest's folder"
        )
    return out
