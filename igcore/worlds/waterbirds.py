"""Waterbirds (Sagawa et al., 2020, "Distributionally Robust Neural Networks"): CUB birds pasted on Places.

``root/metadata.csv`` has one row per image with columns ``img_id, img_filename, y, split, place``
(``place_filename`` optional, any other column ignored); images are ``root/<img_filename>``.

- ``y`` indexes ``class_names`` (default landbird, waterbird); ``split`` is 0 train (D), 1 val, 2 test
  (D′, divided by seed into ``test_train`` and ``test_eval``, see :mod:`igcore.worlds.imageset`).
- **Backgrounds and groups.** ``backgrounds`` are the ``place_names`` (default land, water), indexed by
  the ``place`` column; groups are (class, place), named ``class/place``, e.g. ``waterbird/land`` (the
  names the Waterbirds literature uses). Two place values keep four groups however many scene
  categories there are.
- **Place concepts** (kind ``context``). With a ``place_filename`` column, each image's Places365
  category is a one-hot concept ``place::<category>``, the category being the path under Places365's
  one-letter folder (``/b/bamboo_forest/00000019.jpg`` → ``place::bamboo_forest``, ``/l/lake/natural/x.jpg``
  → ``place::lake/natural``). Without it, ``place::<place name>`` (``place::land``, ``place::water``).
  Text: "place: bamboo forest", "place: lake (natural)".
- **Bird concepts** (kind ``core``) come from CUB's per-image attributes when ``cub_root`` is given
  (see :mod:`igcore.worlds.cub` for the files, the certainty rule and the derived texts), and so do
  the object masks (``cub_root/segmentations``); without ``cub_root`` the vocabulary holds only the
  place concepts and ``Split.masks`` is None.
- ``vocabulary`` (CSV ``id,text,kind``) overrides the derived text and kind of any concept it lists.

Unlike the ``folder`` world, image paths may lead outside ``root`` (a Waterbirds copy often links its
species folders to a shared CUB download): ``root`` is a folder the user chose, not a file from elsewhere.
Photographs cannot be re-drawn on another background: ``can_render`` is False.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from igcore.errors import InputError
from igcore.settings import PathText
from igcore.worlds.base import Concept, Vocabulary
from igcore.worlds.cub import read_cub
from igcore.worlds.images import ProgressFn
from igcore.worlds.imageset import (
    ImageSetParams,
    ImageSetWorld,
    ImageTable,
    NameList,
    apply_vocabulary,
    distinct,
    int_column,
    place_category,
    read_csv,
    readable_words,
)
from igcore.worlds.registry import register_world

REQUIRED = ("img_id", "img_filename", "y", "split", "place")
_FIX = "metadata.csv needs columns img_id,img_filename,y,split,place (place_filename optional), one row per image"


def place_text(category: str) -> str:
    """``lake/natural`` → "place: lake (natural)"; ``bamboo_forest`` → "place: bamboo forest"."""
    main, *rest = category.split("/")
    detail = f" ({', '.join(readable_words(r) for r in rest)})" if rest else ""
    return f"place: {readable_words(main)}{detail}"


class WaterbirdsParams(ImageSetParams):
    """The ``world.*`` keys of the Waterbirds loader."""

    name: Literal["waterbirds"] = Field("waterbirds", description="Waterbirds layout: metadata.csv + images (docs/BYOD.md)")
    root: PathText = Field(description="the folder holding metadata.csv and the images")
    cub_root: PathText | None = Field(None, description="CUB_200_2011 folder (images.txt, attributes/, segmentations/) for bird concepts and masks")
    class_names: NameList = Field(["landbird", "waterbird"], min_length=2, description="one name per value of y, in order")
    place_names: NameList = Field(["land", "water"], min_length=1, description="one name per value of place, in order: the backgrounds")

    @field_validator("class_names", "place_names")
    @classmethod
    def _distinct(cls, names: list[str], info: ValidationInfo) -> list[str]:
        return distinct(names, str(info.field_name))


@register_world("waterbirds", WaterbirdsParams)
class WaterbirdsWorld(ImageSetWorld):
    """Waterbirds-layout data (``metadata.csv``), optionally with CUB-200-2011 attributes and masks.

    Args:
        params: the ``world.*`` keys (:class:`WaterbirdsParams`): ``root`` holds ``metadata.csv`` and the
            images; ``cub_root`` (optional) the CUB_200_2011 attributes and segmentations, joined by
            ``img_id``; ``class_names`` / ``place_names`` name the values of ``y`` / ``place``.
        seed: decides the D′ division and the order of every split.
        progress: ``progress(done, total)`` callback while decoding (not a config key).
    """

    name = "waterbirds"

    def __init__(self, params: WaterbirdsParams, seed: int = 0, progress: ProgressFn | None = None) -> None:
        root = Path(params.root).expanduser()
        if not root.is_dir():
            raise InputError(
                f"waterbirds: world.root {root} is not a folder; point it at the folder that holds metadata.csv"
            )
        self.params, self.root = params, root
        classes, places = list(params.class_names), list(params.place_names)
        table, backgrounds = self._table(root, params.cub_root, classes, places, params.vocabulary)
        self._build(table, classes, backgrounds, params, seed=seed, progress=progress)

    def _table(
        self,
        root: Path,
        cub_root: str | Path | None,
        classes: list[str],
        places: list[str],
        vocabulary: str | Path | None,
    ) -> tuple[ImageTable, list[str]]:
        meta_path = root / "metadata.csv"
        df = read_csv(meta_path, REQUIRED, "waterbirds: metadata", _FIX)
        what = f"waterbirds: {meta_path}"
        img_ids = int_column(df, "img_id", what)
        if len(np.unique(img_ids)) < len(img_ids):
            repeated = int(img_ids[np.flatnonzero(np.diff(np.sort(img_ids)) == 0)[0]])
            raise InputError(f"{what}: img_id {repeated} appears more than once; every row needs its own img_id")
        y = int_column(df, "y", what)
        split = int_column(df, "split", what)
        place = int_column(df, "place", what)

        bad = sorted(set(np.unique(split).tolist()) - {0, 1, 2})
        if bad:
            raise InputError(
                f"{what}: split must be 0 (train), 1 (val) or 2 (test); found {', '.join(map(str, bad))} "
                f"in {int(np.isin(split, bad).sum())} row(s)"
            )
        distinct = np.unique(y)
        if len(distinct) != len(classes):
            raise InputError(
                f"{what}: class_names has {len(classes)} name(s) ({', '.join(classes)}) but y has {len(distinct)} "
                f"distinct value(s) ({', '.join(map(str, distinct.tolist()))}); give one class name per y value"
            )
        if distinct.min() < 0 or distinct.max() >= len(classes):
            raise InputError(
                f"{what}: y must be 0..{len(classes) - 1} (an index into class_names), found {', '.join(map(str, distinct.tolist()))}"
            )
        out = sorted(set(np.unique(place).tolist()) - set(range(len(places))))
        if out:
            raise InputError(
                f"{what}: place must be 0..{len(places) - 1} (an index into place_names {', '.join(places)}), found "
                f"{', '.join(map(str, out))}; give one place name per place value"
            )

        names = df["img_filename"].tolist()
        empty = [i for i, n in enumerate(names) if not n]
        if empty:
            raise InputError(
                f"{what}: img_filename is empty in {len(empty)} row(s) (first: row {empty[0] + 1}); every row needs its image path"
            )

        # Concepts: CUB attributes (core), then one-hot place concepts (context).
        concepts_blocks: list[np.ndarray] = []
        vocab: list[Concept] = []
        mask_files = None
        notes: list[str] = []
        if cub_root is not None and str(cub_root) != "":
            cub = read_cub(Path(cub_root).expanduser(), img_ids)
            concepts_blocks.append(cub.concepts)
            vocab.extend(cub.attributes)
            mask_files = cub.mask_files
        else:
            notes.append(
                "no cub_root: the vocabulary holds place concepts only (give world.cub_root for bird attributes)"
            )
        if "place_filename" in df.columns:
            categories = [place_category(p) for p in df["place_filename"]]
            empty = [i for i, c in enumerate(categories) if not c]
            if empty:
                raise InputError(
                    f"{what}: place_filename has no category folder in {len(empty)} row(s) (first: row {empty[0] + 1}, "
                    f"{df['place_filename'].iloc[empty[0]]!r}); use paths like /b/bamboo_forest/00000019.jpg or drop the column"
                )
        else:
            categories = [places[p] for p in place]
        unique = sorted(set(categories))
        index = {c: k for k, c in enumerate(unique)}
        onehot = np.zeros((len(df), len(unique)), dtype=np.uint8)
        onehot[np.arange(len(df)), [index[c] for c in categories]] = 1
        concepts_blocks.append(onehot)
        vocab.extend(Concept(f"place::{c}", place_text(c), "context") for c in unique)
        ids = [c.id for c in vocab]
        if len(set(ids)) < len(ids):
            raise InputError(
                f"{what}: concept ids collide ({', '.join(sorted({i for i in ids if ids.count(i) > 1}))}); rename them"
            )
        vocab = apply_vocabulary(vocab, vocabulary, self.name)

        table = ImageTable(
            files=[root / n for n in names],
            display=names,
            mask_files=mask_files,
            labels=y,
            split=split,
            background=place,
            concepts=np.concatenate(concepts_blocks, axis=1),
            vocabulary=Vocabulary(tuple(vocab)),
            latents={"img_id": img_ids},
            notes=notes,
        )
        return table, places
