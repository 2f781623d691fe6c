"""Loaders of users' data (waterbirds, folder): layouts, annotations, pixels, masks, splits, cache, bad input.

The data sets are written by :mod:`testkit.byod_fixtures` into temporary folders; nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from igcore.errors import InputError
from igcore.worlds import SPLITS, WORLDS, make_world
from igcore.worlds.cub import attribute_text
from igcore.worlds.images import permute_rows
from igcore.worlds.imageset import place_category
from testkit import byod_fixtures as fx

SIZE = 32
N = 48


@pytest.fixture(scope="module")
def wb_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return fx.make_waterbirds(tmp_path_factory.mktemp("waterbirds"), n=N)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def wb(wb_data: dict[str, Path], cache: Path):
    return make_world(
        "waterbirds", root=wb_data["root"], cub_root=wb_data["cub_root"], image_size=SIZE, cache_dir=cache
    )


@pytest.fixture(scope="module")
def folder_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fx.make_folder(tmp_path_factory.mktemp("folder"))


def by_img_id(world, name: str = "train") -> dict[int, tuple[str, int]]:
    """img_id -> (split, row) over every split but the concept bank."""
    out = {}
    for split in ("train", "val", "test_train", "test_eval"):
        for row, img_id in enumerate(world.split(split).latents["img_id"]):
            out[int(img_id)] = (split, row)
    return out


def image_of(world, img_id: int) -> tuple[np.ndarray, np.ndarray | None]:
    split, row = by_img_id(world)[img_id]
    s = world.split(split)
    return s.images[row], None if s.masks is None else s.masks[row]


# ---------------------------------------------------------------------------------------------------
# Layouts and the world contract


def test_registered_and_contract(wb) -> None:
    assert {"waterbirds", "folder", "snowwolf"} <= set(WORLDS)
    assert wb.classes == ["landbird", "waterbird"] and wb.backgrounds == ["land", "water"]
    assert wb.group_names() == ["landbird/land", "landbird/water", "waterbird/land", "waterbird/water"]
    assert wb.can_render is False and not hasattr(wb, "render_on_background")
    assert WORLDS["snowwolf"].factory.can_render is True


@pytest.mark.parametrize("name", SPLITS)
def test_shapes_dtypes_groups(wb, name: str) -> None:
    s = wb.split(name)
    n = {"train": 24, "val": 8, "test_train": 8, "test_eval": 8, "concept_bank": 8}[name]
    k = len(wb.vocabulary)
    assert s.name == name and len(s) == n
    assert s.images.shape == (n, SIZE, SIZE, 3) and s.images.dtype == np.uint8
    assert s.masks is not None and s.masks.shape == (n, SIZE, SIZE) and s.masks.dtype == bool
    assert s.concepts.shape == (n, k) and s.concepts.dtype == np.uint8
    for arr in (s.labels, s.background, s.groups):
        assert arr.shape == (n,) and arr.dtype == np.int64
    assert np.array_equal(s.groups, s.labels * 2 + s.background)
    assert np.array_equal(np.bincount(s.groups, minlength=4), [n // 4] * 4)  # every group in every split
    for img_id, label, place in zip(s.latents["img_id"], s.labels, s.background, strict=True):
        assert (label, place) == fx.group_of(int(img_id) - 1)
        assert fx.split_of(int(img_id) - 1, N) == {"train": 0, "val": 1, "concept_bank": 1}.get(name, 2)


def test_splits_are_views_of_one_array(wb) -> None:
    """No per-split copies: every split (the concept bank too) is a slice of the world's image array."""
    for name in SPLITS:
        assert np.shares_memory(wb.split(name).images, wb._images)
    assert np.shares_memory(wb.split("concept_bank").images, wb.split("val").images)
    ids = np.concatenate([wb.split(n).latents["img_id"] for n in ("train", "val", "test_train", "test_eval")])
    assert sorted(ids.tolist()) == list(range(1, N + 1))


def test_vocabulary_texts_kinds_and_dropped_concepts(wb) -> None:
    ids = wb.vocabulary.ids
    assert ids[:5] == list(fx.ATTRIBUTES[:5])  # CUB names exactly as written, in attributes.txt order
    assert wb.vocabulary["has_bill_shape::curved_(up_or_down)"].text == "bill shape: curved (up or down)"
    assert wb.vocabulary["has_size::small_(5_-_9_in)"].text == "size: small (5 - 9 in)"
    assert attribute_text("has_upper_tail_color::grey") == "upper tail color: grey"
    assert attribute_text("has_bill_shape::hooked") == "bill shape: hooked"
    assert {wb.vocabulary[c].kind for c in fx.ATTRIBUTES[:5]} == {"core"}
    places = [c for c in wb.vocabulary.concepts if c.id.startswith("place::")]
    assert [c.id for c in places] == [
        "place::bamboo_forest",
        "place::forest/broadleaf",
        "place::lake/natural",
        "place::ocean",
    ]
    assert {c.kind for c in places} == {"context"}
    assert wb.vocabulary["place::lake/natural"].text == "place: lake (natural)"
    # never / always present in the concept bank (val): dropped, with a note each
    assert "has_eye_color::red" not in ids and "has_shape::perching-like" not in ids
    assert any("never occur" in n and "has_eye_color::red" in n for n in wb.notes)
    assert any("always occur" in n and "has_shape::perching-like" in n for n in wb.notes)


def test_place_concepts_follow_place_filename(wb) -> None:
    place_cols = [k for k, c in enumerate(wb.vocabulary.ids) if c.startswith("place::")]
    for name in ("train", "test_eval"):
        s = wb.split(name)
        assert np.all(s.concepts[:, place_cols].sum(1) == 1)  # one-hot
        for img_id, row in zip(s.latents["img_id"], s.concepts, strict=True):
            i = int(img_id) - 1
            _, place = fx.group_of(i)
            expected = "place::" + place_category(f"{fx.CATEGORIES[place][(i // 4) % 2]}/x.jpg")
            assert row[wb.vocabulary.index(expected)] == 1
    assert place_category("/b/bamboo_forest/00000019.jpg") == "bamboo_forest"
    assert place_category("/l/lake/natural/00000065.jpg") == "lake/natural"


def test_annotations_and_certainty_rule(wb) -> None:
    """is_present with certainty 1 ("not visible") counts as absent; guesses and up count as present."""
    for name in ("train", "val", "test_eval"):
        s = wb.split(name)
        for img_id, row in zip(s.latents["img_id"], s.concepts, strict=True):
            i = int(img_id) - 1
            for attr in (1, 2, 4, 5):
                assert row[wb.vocabulary.index(fx.ATTRIBUTES[attr - 1])] == fx.attribute_present(i, attr)
            grey = row[wb.vocabulary.index("has_upper_tail_color::grey")]
            expected = fx.CERTAINTY_CASES.get((i, 3), (None, None, fx.attribute_present(i, 3)))[2]
            assert grey == expected, (img_id, grey)


def test_pixels_masks_and_geometry(wb) -> None:
    """Formats decode to the same RGB; masks line up with the bird (also a half-resolution mask, a wide image)."""
    top, bottom, left, right = (round(f * SIZE) for f in fx.RECT)
    expected_mask = np.zeros((SIZE, SIZE), dtype=bool)
    expected_mask[top:bottom, left:right] = True
    for i in range(16):
        if i in (fx.EXIF_INDEX, fx.RGBA_INDEX):
            continue
        img, mask = image_of(wb, i + 1)
        label, place = fx.group_of(i)
        iou = (mask & expected_mask).sum() / (mask | expected_mask).sum()
        assert iou > 0.85, (i, iou)
        bird = img[top + 2 : bottom - 2, left + 2 : right - 2].reshape(-1, 3).mean(0)
        ground = img[:, -4:].reshape(-1, 3).mean(0)
        want_bird = np.array(fx.WATERBIRD if label else fx.LANDBIRD, dtype=float)
        want_ground = np.array(fx.WATER if place else fx.LAND, dtype=float)
        if i % 4 == 2:  # greyscale JPEG: three equal channels holding the luminance
            assert np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2])
            want_bird = want_ground = None
        if want_bird is not None:
            assert np.abs(bird - want_bird).max() < 20, (i, bird)
            assert np.abs(ground - want_ground).max() < 20, (i, ground)


def test_exif_rotation_and_rgba(wb) -> None:
    img, mask = image_of(wb, fx.EXIF_INDEX + 1)
    half = SIZE // 2
    left, right = img[:, : half - 2].reshape(-1, 3).mean(0), img[:, half + 2 :].reshape(-1, 3).mean(0)
    assert left[2] > 150 and left[0] < 80, left  # blue on the left
    assert right[0] > 150 and right[2] < 80, right  # red on the right (rotated 90° clockwise)
    assert mask[:, half + 1 :].all() and not mask[:, : half - 1].any()  # mask drawn on the upright image
    img, mask = image_of(wb, fx.RGBA_INDEX + 1)
    top, _, _, right = (round(f * SIZE) for f in fx.RECT)
    assert np.all(img[: top - 1] == 255) and np.all(img[:, right + 1 :] == 255)  # transparent: white, not black
    assert np.abs(img[mask].mean(0) - fx.LANDBIRD).max() < 20  # the opaque bird keeps its colour


def test_crop_policy(wb_data: dict[str, Path], tmp_path: Path) -> None:
    """``crop`` keeps the centre square of the wide (3:2) image: the bird spans more of the width."""
    kw = {"root": wb_data["root"], "cub_root": wb_data["cub_root"], "image_size": SIZE, "cache_dir": tmp_path}
    stretch = image_of(make_world("waterbirds", **kw), fx.WIDE_INDEX + 1)[1]
    crop = image_of(make_world("waterbirds", resize="crop", **kw), fx.WIDE_INDEX + 1)[1]
    w = 60  # stored width; bird columns [12, 36) of 60; the crop keeps columns [10, 50)
    assert abs(stretch.any(0).sum() - SIZE * 24 / w) <= 1
    assert abs(crop.any(0).sum() - SIZE * 24 / 40) <= 1
    assert crop.any(0)[:2].sum() == 0 and crop.any(0)[3]


def test_layout_without_place_filename_cub_or_masks(tmp_path: Path) -> None:
    data = fx.make_waterbirds(tmp_path / "plain", n=24, with_place_filename=False, with_cub=False)
    w = make_world("waterbirds", root=data["root"], image_size=SIZE, cache_dir=tmp_path / "c")
    assert w.vocabulary.ids == ["place::land", "place::water"]
    assert w.vocabulary["place::water"].text == "place: water"
    assert any("no cub_root" in n for n in w.notes)
    s = w.split("train")
    assert s.masks is None and s.subset(np.array([0, 2])).masks is None
    assert np.array_equal(s.concepts[:, 1], s.background)
    data = fx.make_waterbirds(tmp_path / "nomask", n=24, with_masks=False)
    w = make_world(
        "waterbirds", root=data["root"], cub_root=data["cub_root"], image_size=SIZE, cache_dir=tmp_path / "c"
    )
    assert w.split("val").masks is None and len(w.vocabulary) > 2


# ---------------------------------------------------------------------------------------------------
# Splits: determinism, stratification, concept bank


def test_deterministic_by_seed_and_stratified(wb_data: dict[str, Path], cache: Path) -> None:
    kw = {"root": wb_data["root"], "cub_root": wb_data["cub_root"], "image_size": SIZE, "cache_dir": cache}
    a, b, c = (make_world("waterbirds", seed=s, **kw) for s in (7, 7, 8))
    for name in SPLITS:
        for field in ("images", "labels", "concepts", "background", "masks", "groups"):
            assert np.array_equal(getattr(a.split(name), field), getattr(b.split(name), field)), (name, field)
    ids = {w: set(w.split("test_eval").latents["img_id"].tolist()) for w in (a, c)}
    assert ids[a] != ids[c]  # another seed, another division of D′
    for w in (a, c):
        union = set(w.split("test_train").latents["img_id"]) | set(w.split("test_eval").latents["img_id"])
        assert union == {i + 1 for i in range(N) if fx.split_of(i, N) == 2}
        assert set(w.split("test_train").groups) == set(w.split("test_eval").groups) == {0, 1, 2, 3}


def test_test_eval_fraction_and_concept_bank_choice(wb_data: dict[str, Path], cache: Path) -> None:
    kw = {"root": wb_data["root"], "cub_root": wb_data["cub_root"], "image_size": SIZE, "cache_dir": cache}
    w = make_world("waterbirds", test_eval_fraction=0.25, concept_bank="train+val", **kw)
    assert len(w.split("test_eval")) == 4 and len(w.split("test_train")) == 12  # 1 of 4 per group
    bank = w.split("concept_bank")
    assert len(bank) == 32 and set(bank.latents["img_id"]) == set(w.split("train").latents["img_id"]) | set(
        w.split("val").latents["img_id"]
    )
    assert np.shares_memory(bank.images, w.split("train").images)
    assert any("concept bank is train+val" in n for n in w.notes)
    assert len(make_world("waterbirds", concept_bank="train", **kw).split("concept_bank")) == 24


# ---------------------------------------------------------------------------------------------------
# Cache and progress


def test_cache_hit_and_invalidation(tmp_path: Path) -> None:
    data = fx.make_waterbirds(tmp_path / "d", n=24)
    kw = {"root": data["root"], "cub_root": data["cub_root"], "image_size": SIZE, "cache_dir": tmp_path / "cache"}
    calls: list[tuple[int, int]] = []
    cold = make_world("waterbirds", progress=lambda done, total: calls.append((done, total)), **kw)
    assert cold.load_info.cache == "miss" and calls[-1] == (24, 24)
    warm = make_world("waterbirds", **kw)
    assert warm.load_info.cache == "hit"
    assert np.array_equal(cold.split("train").images, warm.split("train").images)
    assert np.array_equal(cold.split("test_eval").masks, warm.split("test_eval").masks)
    touched = data["root"] / fx._filename(3, fx.group_of(3)[0])
    os.utime(touched, ns=(1, 1))
    assert make_world("waterbirds", **kw).load_info.cache == "miss"  # a changed file is a new key
    assert make_world("waterbirds", **{**kw, "image_size": 40}).load_info.cache == "miss"


def test_unwritable_cache_is_a_note(tmp_path: Path) -> None:
    manifest = fx.make_folder(tmp_path / "f", n=24)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    w = make_world("folder", manifest=manifest, image_size=SIZE, cache_dir=blocker / "cache")
    assert w.load_info.cache == "unwritable" and any("cannot be written" in n for n in w.notes)


def test_permute_rows_matches_fancy_indexing() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (50, 4, 4, 3), dtype=np.uint8)
    order = rng.permutation(50)
    expected = a[order]
    permute_rows(a, order)
    assert np.array_equal(a, expected)


# ---------------------------------------------------------------------------------------------------
# Folder manifests


def test_folder_layout(folder_manifest: Path, cache: Path) -> None:
    w = make_world("folder", manifest=folder_manifest, image_size=SIZE, cache_dir=cache)
    assert w.classes == ["heron", "sparrow"] and w.backgrounds == ["meadow", "pond"]
    assert w.group_names()[0] == "heron/meadow" and w.can_render is False
    assert w.vocabulary.ids == ["striped", "long_neck", "place::meadow", "place::pond"]
    assert w.vocabulary["long_neck"].text == "long neck" and w.vocabulary["long_neck"].kind == "core"
    assert w.vocabulary["place::pond"].kind == "context"
    s = w.split("train")
    assert s.images.shape == (18, SIZE, SIZE, 3) and s.masks.shape == (18, SIZE, SIZE)
    heron = s.labels == 0
    assert np.all(s.concepts[heron, 1] == 1) and np.all(s.concepts[~heron, 1] == 0)
    assert np.array_equal(s.concepts[:, 3], s.background)
    # 16-bit greyscale image (row 7) scaled to 8 bits, not clipped to white
    row = int(np.flatnonzero(s.latents["source_row"] == 7)[0])
    assert s.images[row].std() > 10 and s.images[row].max() < 255


def test_folder_int_labels_class_names_bom_no_group(tmp_path: Path) -> None:
    manifest = fx.make_folder(tmp_path / "f", n=24, int_labels=True, bom=True, with_group=False, with_mask=False)
    w = make_world("folder", manifest=manifest, class_names=["sparrow", "heron"], image_size=SIZE, cache_dir=tmp_path)
    assert w.classes == ["sparrow", "heron"] and w.backgrounds == ["any"]
    assert w.group_names() == ["sparrow/any", "heron/any"]
    s = w.split("train")
    assert s.masks is None and np.array_equal(s.groups, s.labels)
    assert np.array_equal(s.concepts[:, w.vocabulary.index("long_neck")], s.labels)
    assert w.vocabulary.ids == ["striped", "long_neck"]  # the BOM did not leak into the first header


def test_vocabulary_csv_overrides_text_and_kind(wb_data: dict[str, Path], cache: Path, tmp_path: Path) -> None:
    vocab = tmp_path / "vocab.csv"
    vocab.write_text(
        "id,text,kind\nhas_size::small_(5_-_9_in),a small bird,distractor\nplace::ocean,open sea,context\n"
    )
    w = make_world(
        "waterbirds",
        root=wb_data["root"],
        cub_root=wb_data["cub_root"],
        vocabulary=vocab,
        image_size=SIZE,
        cache_dir=cache,
    )
    assert w.vocabulary["has_size::small_(5_-_9_in)"].text == "a small bird"
    assert w.vocabulary["has_size::small_(5_-_9_in)"].kind == "distractor"
    assert w.vocabulary["place::ocean"].text == "open sea"
    assert w.vocabulary["has_bill_shape::hooked"].text == "bill shape: hooked"  # not listed: derived


# ---------------------------------------------------------------------------------------------------
# Bad input: one-line InputError at construction, saying what is wrong and how to fix it


def _rewrite(path: Path, edit: Callable[[list[str]], list[str]]) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")


def _set_column(path: Path, column: str, value: Callable[[dict[str, str]], str]) -> None:
    import csv

    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r[column] = value(r)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _drop_columns(path: Path, *columns: str) -> None:
    import pandas as pd

    pd.read_csv(path, dtype=str).drop(columns=list(columns)).to_csv(path, index=False)


def _remove_images(root: Path, count: int) -> None:
    for i in (11, 12, 3)[:count]:
        (root / fx._filename(i, fx.group_of(i)[0])).unlink()


WATERBIRDS_BAD: dict[str, tuple[Callable[[Path, Path], dict | None], list[str]]] = {
    "missing root": (lambda r, c: {"root": r / "nope"}, ["world.root", "is not a folder"]),
    "no root given": (lambda r, c: {"root": None}, ["world.root must be a valid string"]),
    "missing metadata.csv": (lambda r, c: (r / "metadata.csv").unlink(), ["metadata.csv does not exist"]),
    "missing columns": (
        lambda r, c: _drop_columns(r / "metadata.csv", "y", "place"),
        ["lacks column(s) y, place", "metadata.csv needs columns img_id,img_filename,y,split,place"],
    ),
    "bad split values": (
        lambda r, c: _set_column(
            r / "metadata.csv", "split", lambda x: {"3": "3", "5": "7"}.get(x["img_id"], x["split"])
        ),
        ["split must be 0 (train), 1 (val) or 2 (test); found 3, 7 in 2 row(s)"],
    ),
    "non-integer y": (
        lambda r, c: _set_column(r / "metadata.csv", "y", lambda x: "bird" if x["img_id"] == "4" else x["y"]),
        ["column y must hold integers; row 4 has 'bird'"],
    ),
    "missing images": (
        lambda r, c: _remove_images(r, 2),
        [
            "2 image files are missing or unreadable, first: 001.Laysan_Albatross/Laysan_Albatross_0012.png (no such file)"
        ],
    ),
    "unreadable image": (
        lambda r, c: (r / fx._filename(8, 0)).write_bytes(b"not an image at all"),
        [
            "1 image file is missing or unreadable, first: 002.Song_Sparrow/Song_Sparrow_0009.png (UnidentifiedImageError"
        ],
    ),
    "missing mask": (
        lambda r, c: (c / "segmentations" / Path(fx._filename(2, 0)).with_suffix(".png")).unlink(),
        ["1 mask file is missing or unreadable", "Song_Sparrow_0003.png"],
    ),
    "attribute rows for unknown img_ids": (
        lambda r, c: _rewrite(c / "attributes" / "image_attribute_labels.txt", lambda ls: [*ls, "9999 1 1 3 2.0"]),
        ["1 attribute row(s)", "img_ids that images.txt does not list", "img_id 9999"],
    ),
    "unknown attr_id": (
        lambda r, c: _rewrite(c / "attributes" / "image_attribute_labels.txt", lambda ls: [*ls, "1 99 1 3 2.0"]),
        ["attr_ids that attributes.txt does not list", "attr_id 99"],
    ),
    "metadata img_id not in images.txt": (
        lambda r, c: _rewrite(c / "images.txt", lambda ls: ls[1:]),
        ["1 img_id(s) of metadata.csv are not in", "images.txt (first: 1)"],
    ),
    "missing attributes.txt": (
        lambda r, c: (c / "attributes" / "attributes.txt").unlink(),
        ["attributes.txt", "does not exist", "attr_id name"],
    ),
    "missing images.txt": (lambda r, c: (c / "images.txt").unlink(), ["images.txt", "does not exist"]),
    "bad certainty": (
        lambda r, c: _rewrite(c / "attributes" / "image_attribute_labels.txt", lambda ls: [*ls, "1 1 1 7 2.0"]),
        ["certainty_id must be one of 1, 2, 3, 4, got 7"],
    ),
    "class_names of the wrong length": (
        lambda r, c: {"class_names": ["a", "b", "c"]},
        ["class_names has 3 name(s) (a, b, c) but y has 2 distinct value(s)"],
    ),
    "group absent from train": (
        lambda r, c: _set_column(
            r / "metadata.csv", "place", lambda x: "1" if x["split"] == "0" and x["y"] == "1" else x["place"]
        ),
        ["group(s) waterbird/land have no images in the train split (D)"],
    ),
    "class absent from train": (
        lambda r, c: _set_column(
            r / "metadata.csv", "split", lambda x: "1" if x["split"] == "0" and x["y"] == "1" else x["split"]
        ),
        ["class(es) waterbird have no images in the train split (D)"],
    ),
    "binary metadata": (
        lambda r, c: (r / "metadata.csv").write_bytes(bytes(range(256)) * 8),
        ["metadata.csv is a binary file, not CSV text"],
    ),
    "unknown parameter": (lambda r, c: {"rho": 0.9}, ["unknown config key 'world.rho'", "valid keys here: name, hide_concepts, vocabulary"]),
    "bad concept_bank": (lambda r, c: {"concept_bank": "test"}, ["concept_bank must be one of val, train, train+val"]),
    "misspelt vocabulary id": (
        lambda r, c: [
            (r / "v.csv").write_text("id,text,kind\nhas_bil_shape::hooked,x,core\n"),
            {"vocabulary": r / "v.csv"},
        ][1],
        ["names 1 concept(s) this data set does not have (first: 'has_bil_shape::hooked')"],
    ),
}


@pytest.mark.parametrize("case", list(WATERBIRDS_BAD))
def test_waterbirds_bad_input(case: str, wb_data: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "wb"
    shutil.copytree(wb_data["root"], root)
    cub = root / "CUB_200_2011"
    edit, expected = WATERBIRDS_BAD[case]
    params = {"root": root, "cub_root": cub, "image_size": SIZE, "cache_dir": tmp_path / "cache"}
    extra = edit(root, cub)  # file edits return None (or a byte count); parameter changes return a dict
    params.update(extra if isinstance(extra, dict) else {})
    with pytest.raises(InputError) as err:
        make_world("waterbirds", **params)
    message = str(err.value)
    assert "\n" not in message
    for part in expected:
        assert part in message, (part, message)


def _symlink_out(root: Path) -> None:
    outside = root.parent / "outside.png"
    shutil.copy(root / "imgs" / "heron" / "001.png", outside)
    (root / "imgs" / "link.png").symlink_to(outside)
    _set_column(
        root / "manifest.csv", "path", lambda x: "imgs/link.png" if x["path"].endswith("004.png") else x["path"]
    )


FOLDER_BAD: dict[str, tuple[Callable[[Path], dict | None], list[str]]] = {
    "missing manifest": (lambda r: (r / "manifest.csv").unlink(), ["manifest.csv does not exist"]),
    "bad split values": (
        lambda r: _set_column(
            r / "manifest.csv", "split", lambda x: "training" if x["split"] == "train" else x["split"]
        ),
        ["split must be train, val or test; found 'training' in 18 row(s)"],
    ),
    "non-0/1 concept": (
        lambda r: _set_column(
            r / "manifest.csv", "striped", lambda x: "yes" if x["path"].endswith("002.png") else x["striped"]
        ),
        ["concept column 'striped' must hold 0 or 1; row 3 has 'yes'"],
    ),
    "missing label and path columns": (
        lambda r: _drop_columns(r / "manifest.csv", "path", "label"),
        ["lacks column(s) path, label", "a manifest needs columns path,label,split"],
    ),
    "empty CSV": (lambda r: (r / "manifest.csv").write_text(""), ["manifest.csv is empty"]),
    "header only": (lambda r: (r / "manifest.csv").write_text("path,label,split\n"), ["has a header but no rows"]),
    "binary junk": (
        lambda r: (r / "manifest.csv").write_bytes(os.urandom(64) + b"\0" + os.urandom(64)),
        ["is a binary file, not CSV text"],
    ),
    "not UTF-8": (
        lambda r: (r / "manifest.csv").write_bytes("path,label,split,caf\xe9\n".encode("latin-1")),
        ["is not UTF-8 text"],
    ),
    "parent path": (
        lambda r: _set_column(
            r / "manifest.csv", "path", lambda x: "../escape.png" if x["path"].endswith("005.png") else x["path"]
        ),
        ["1 path(s) resolve outside", "first: ../escape.png", "must live under the manifest's folder"],
    ),
    "symlink escape": (_symlink_out, ["1 path(s) resolve outside", "first: imgs/link.png"]),
    "unknown label": (
        lambda r: {"class_names": ["sparrow", "egret"]},
        ["label(s) 'heron' are neither in class_names (sparrow, egret) nor indices 0..1"],
    ),
    "empty mask cell": (
        lambda r: _set_column(r / "manifest.csv", "mask", lambda x: "" if x["path"].endswith("006.png") else x["mask"]),
        ["mask is empty in 1 row(s) (first: row 7)", "drop the mask column"],
    ),
    "unreadable mask": (
        lambda r: (r / "masks" / "003.png").write_bytes(b"junk"),
        ["1 mask file is missing or unreadable", "003.png"],
    ),
    "group absent from train": (
        lambda r: _set_column(
            r / "manifest.csv",
            "group",
            lambda x: "pond" if x["split"] == "train" and x["label"] == "heron" else x["group"],
        ),
        ["group(s) heron/meadow have no images in the train split (D)"],
    ),
}


@pytest.mark.parametrize("case", list(FOLDER_BAD))
def test_folder_bad_input(case: str, folder_manifest: Path, tmp_path: Path) -> None:
    root = tmp_path / "f"
    shutil.copytree(folder_manifest.parent, root)
    edit, expected = FOLDER_BAD[case]
    params = {"manifest": root / "manifest.csv", "image_size": SIZE, "cache_dir": tmp_path / "cache"}
    extra = edit(root)
    params.update(extra if isinstance(extra, dict) else {})
    with pytest.raises(InputError) as err:
        make_world("folder", **params)
    message = str(err.value)
    assert "\n" not in message
    for part in expected:
        assert part in message, (part, message)


# ---------------------------------------------------------------------------------------------------
# The benchmark generator writes what the loader reads


def test_bench_generator_round_trip(tmp_path: Path) -> None:
    from igcore.prior import load_judgments_csv
    from testkit.byod_data import CLASSES, SIMULATED_RATERS, attribute_names, write_dataset

    stats = write_dataset(tmp_path / "a", n=120, size=48, seed=3, workers=2)
    assert 0.15 <= stats["mean_object_fraction"] <= 0.30
    write_dataset(tmp_path / "b", n=120, size=48, seed=3, workers=1)
    for rel in ("metadata.csv", "CUB_200_2011/attributes/image_attribute_labels.txt", "judgments_bench.csv"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    first = (tmp_path / "a" / "metadata.csv").read_text().splitlines()[1].split(",")[1]
    assert (tmp_path / "a" / first).read_bytes() == (tmp_path / "b" / first).read_bytes()  # same pixels

    root = tmp_path / "a"
    w = make_world(
        "waterbirds",
        root=root,
        cub_root=root / "CUB_200_2011",
        vocabulary=root / "vocabulary_bench.csv",
        concept_bank="train+val",
        image_size=SIZE,
        cache_dir=tmp_path / "cache",
    )
    assert w.classes == list(CLASSES) and w.split("train").masks is not None
    assert set(attribute_names()) <= set(w.vocabulary.ids)
    assert {c.id for c in w.vocabulary.concepts if c.kind == "distractor"} == {
        "has_size::small_(5_-_9_in)",
        "has_size::medium_(9_-_16_in)",
        "has_pose::facing_left",
        "has_pose::facing_right",
    }
    assert "place::forest/broadleaf" in w.vocabulary.ids and "place::ocean" in w.vocabulary.ids
    train = w.split("train")
    typical = np.mean(train.labels == train.background)  # rho = 0.95 in train, balanced in test
    assert typical > 0.9 and abs(np.mean(w.split("test_eval").labels == w.split("test_eval").background) - 0.5) < 0.1
    ratings = load_judgments_csv(root / "judgments_bench.csv", w.vocabulary, w.classes)
    assert set(ratings["rater"]) == set(SIMULATED_RATERS)
    mean = ratings.groupby(["concept", "class"])["rating"].mean()
    assert mean[("has_wing_color::blue", "waterbird")] >= 4 and mean[("has_wing_color::blue", "landbird")] <= 2
    assert mean[("place::ocean", "waterbird")] <= 2
