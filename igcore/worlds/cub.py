"""CUB-200-2011 per-image attribute annotations and segmentations (Wah et al., 2011), joined by ``img_id``.

Files read under ``cub_root``:

- ``images.txt`` — ``img_id path`` (path relative to ``images/``, e.g. ``001.Black_footed_Albatross/x.jpg``);
- ``attributes/attributes.txt`` — ``attr_id name`` (e.g. ``1 has_bill_shape::curved_(up_or_down)``);
- ``attributes/image_attribute_labels.txt`` — ``img_id attr_id is_present certainty_id time``. The real
  file is separated by runs of spaces and has a handful of lines with extra fields; only the first four
  fields of each line are read, whatever the spacing;
- ``segmentations/<path with .png>`` — soft greyscale object masks, used when that folder exists.

**Certainty rule.** CUB's ``certainty_id`` is 1 not visible, 2 guessing, 3 probably, 4 definitely. An
attribute counts as present (1) when ``is_present`` is 1 *and* the certainty is not 1; everything else,
including a pair with no row at all, is absent (0). Why: the concept bank teaches a model to see each
concept *in the pixels*; an attribute the annotator marked "not visible" is not in the pixels, and
labelling it present would teach the model to hallucinate it from context (often the class itself).
Guesses (2) are kept: they are the annotator's best reading of what is visible, and dropping them would
bias the bank against hard images. No class-level denoising (the majority vote over each species used
by Koh et al., 2020) is applied: it would copy class labels into the concept annotations, and the
concept bank must stay independent of the task labels.

**Texts.** Concept ids are the attribute names exactly as written; the display text is derived:
``has_bill_shape::curved_(up_or_down)`` → "bill shape: curved (up or down)".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from igcore.errors import InputError
from igcore.worlds.base import Concept
from igcore.worlds.imageset import readable_words

NOT_VISIBLE = 1  # CUB certainty_id meaning "not visible"
_LABEL_COLUMNS = ("img_id", "attr_id", "is_present", "certainty_id")


@dataclass
class CubAnnotations:
    """Attributes of the metadata rows, in metadata order.

    concepts:   uint8 (N, A) presence after the certainty rule, columns in ``attributes.txt`` order
    attributes: one core :class:`Concept` per column
    mask_files: segmentation path per row, or None when ``segmentations/`` does not exist
    """

    concepts: np.ndarray
    attributes: list[Concept]
    mask_files: list[Path] | None


def attribute_text(name: str) -> str:
    """Readable text of a CUB attribute name: ``has_upper_tail_color::grey`` → "upper tail color: grey"."""
    part, sep, value = name.partition("::")
    part = readable_words(part.removeprefix("has_"))
    return f"{part}: {readable_words(value)}" if sep else part


def _read_table(path: Path, names: tuple[str, ...], what: str, fix: str):  # -> pd.DataFrame
    """A whitespace-separated table: first ``len(names)`` fields of every line, extra fields ignored."""
    import pandas as pd

    if not path.is_file():
        raise InputError(f"cub_root: {what} {path} does not exist; {fix}")
    try:
        # usecols = names with index_col=False: the C parser cuts lines with extra fields instead of refusing them
        df = pd.read_csv(
            path,
            sep=r"\s+",
            header=None,
            names=list(names),
            usecols=list(names),
            index_col=False,
            engine="c",
            dtype=str if "name" in names or "path" in names else None,
            encoding="utf-8-sig",
        )
    except pd.errors.EmptyDataError:
        raise InputError(f"cub_root: {what} {path} is empty; {fix}") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cub_root: {what} {path} cannot be read ({reason}); {fix}") from None
    return df


def _ints(df, column: str, path: Path, fix: str) -> np.ndarray:
    import pandas as pd

    if pd.api.types.is_integer_dtype(df[column].dtype):  # the common case: the parser already read integers
        return df[column].to_numpy(dtype=np.int64)
    values = pd.to_numeric(df[column], errors="coerce")
    bad = values.isna() | (values != values.round())
    if bad.any():
        line = int(np.flatnonzero(bad.to_numpy())[0]) + 1
        raise InputError(
            f"cub_root: {path} line {line}: {column} must be an integer, got {df[column].iloc[line - 1]!r}; {fix}"
        )
    return values.to_numpy().astype(np.int64)


def read_cub(cub_root: Path, img_ids: np.ndarray) -> CubAnnotations:
    """Attributes (and segmentation paths) of the images ``img_ids`` (the metadata's ``img_id`` column)."""
    cub_root = Path(cub_root)
    if not cub_root.is_dir():
        raise InputError(
            f"cub_root {cub_root} is not a folder; point world.cub_root at CUB_200_2011 (it holds images.txt)"
        )

    fix_images = "it must list 'img_id path' per line (CUB_200_2011/images.txt)"
    images_path = cub_root / "images.txt"
    images = _read_table(images_path, ("img_id", "path"), "images.txt", fix_images)
    if images["path"].isna().any():
        line = int(np.flatnonzero(images["path"].isna().to_numpy())[0]) + 1
        raise InputError(f"cub_root: {images_path} line {line} has no path; {fix_images}")
    cub_ids = _ints(images, "img_id", images_path, fix_images)
    if len(np.unique(cub_ids)) < len(cub_ids):
        raise InputError(f"cub_root: {images_path} lists an img_id more than once; each image must have one id")
    position = {int(i): k for k, i in enumerate(cub_ids)}
    unknown = [int(i) for i in img_ids if int(i) not in position]
    if unknown:
        raise InputError(
            f"cub_root: {len(unknown)} img_id(s) of metadata.csv are not in {images_path} (first: {unknown[0]}); "
            "metadata.csv and cub_root must come from the same CUB release"
        )

    fix_attrs = "it must list 'attr_id name' per line (CUB_200_2011/attributes/attributes.txt)"
    attrs_path = cub_root / "attributes" / "attributes.txt"
    attrs = _read_table(attrs_path, ("attr_id", "name"), "attributes.txt", fix_attrs)
    if attrs["name"].isna().any():
        line = int(np.flatnonzero(attrs["name"].isna().to_numpy())[0]) + 1
        raise InputError(f"cub_root: {attrs_path} line {line} has no attribute name; {fix_attrs}")
    attr_ids = _ints(attrs, "attr_id", attrs_path, fix_attrs)
    names = attrs["name"].tolist()
    repeated = [str(v) for v, n in Counter([*names, *attr_ids.tolist()]).items() if n > 1]
    if repeated:
        raise InputError(
            f"cub_root: {attrs_path} repeats attribute ids or names ({', '.join(repeated[:3])}); each must be unique"
        )

    fix_labels = "it must hold 'img_id attr_id is_present certainty_id time' per line"
    labels_path = cub_root / "attributes" / "image_attribute_labels.txt"
    labels = _read_table(labels_path, _LABEL_COLUMNS, "image_attribute_labels.txt", fix_labels)
    cols = {c: _ints(labels, c, labels_path, fix_labels) for c in _LABEL_COLUMNS}

    # Map ids to rows/columns through lookup arrays (ids are small positive integers in CUB).
    img_lookup = _lookup(cub_ids)
    row_of = np.full(len(cub_ids), -1, dtype=np.int64)  # CUB image position -> metadata row
    row_of[[position[int(i)] for i in img_ids]] = np.arange(len(img_ids))
    cub_pos = _find(img_lookup, cols["img_id"])
    if (cub_pos < 0).any():
        k = int(np.flatnonzero(cub_pos < 0)[0])
        raise InputError(
            f"cub_root: {int((cub_pos < 0).sum())} attribute row(s) in {labels_path} name img_ids that images.txt "
            f"does not list (first: line {k + 1}, img_id {cols['img_id'][k]}); the files must come from the same CUB release"
        )
    column = _find(_lookup(attr_ids), cols["attr_id"])
    if (column < 0).any():
        k = int(np.flatnonzero(column < 0)[0])
        raise InputError(
            f"cub_root: {int((column < 0).sum())} attribute row(s) in {labels_path} name attr_ids that attributes.txt "
            f"does not list (first: line {k + 1}, attr_id {cols['attr_id'][k]}); the files must come from the same CUB release"
        )
    for col, allowed in (("is_present", (0, 1)), ("certainty_id", (1, 2, 3, 4))):
        bad = ~np.isin(cols[col], allowed)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"cub_root: {labels_path} line {k + 1}: {col} must be one of {', '.join(map(str, allowed))}, got {cols[col][k]}"
            )

    concepts = np.zeros((len(img_ids), len(attr_ids)), dtype=np.uint8)
    row = row_of[cub_pos]
    present = (cols["is_present"] == 1) & (cols["certainty_id"] != NOT_VISIBLE) & (row >= 0)
    concepts[row[present], column[present]] = 1

    seg = cub_root / "segmentations"
    mask_files = None
    if seg.is_dir():
        paths = images["path"].tolist()
        mask_files = [seg / Path(paths[position[int(i)]]).with_suffix(".png") for i in img_ids]
    attributes = [Concept(n, attribute_text(n), "core") for n in names]
    return CubAnnotations(concepts, attributes, mask_files)


def _lookup(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted ids, their positions in ``ids``) for :func:`_find`."""
    order = np.argsort(ids, kind="stable")
    return ids[order], order


def _find(table: tuple[np.ndarray, np.ndarray], ids: np.ndarray) -> np.ndarray:
    """Positions of ``ids`` in the id array of a :func:`_lookup` table; -1 for ids it does not hold."""
    sorted_ids, order = table
    at = np.clip(np.searchsorted(sorted_ids, ids), 0, max(len(sorted_ids) - 1, 0))
    found = (len(sorted_ids) > 0) & (sorted_ids[at] == ids) if len(sorted_ids) else np.zeros(len(ids), dtype=bool)
    return np.where(found, order[at], -1)
