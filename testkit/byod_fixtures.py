"""Small on-disk data sets in the layouts users bring (Waterbirds + CUB, a folder manifest), made by the tests.

Every image is a flat background (green for land, blue for water) with a rectangular "bird" (brown for
landbirds, white for waterbirds), so tests can predict pixels and masks exactly. The files mix the
formats and quirks real data has: JPEG and PNG, greyscale, palette, 16-bit, RGBA with a transparent
background, a JPEG whose EXIF tag says "rotate 90°", non-square images, a mask stored at half the
image's resolution, and CUB text files with irregular spacing and a line with extra fields.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

LAND, WATER = (60, 140, 60), (40, 80, 200)
LANDBIRD, WATERBIRD = (150, 90, 40), (240, 240, 240)
RECT = (0.25, 0.75, 0.2, 0.6)  # bird rows [top, bottom) and columns [left, right), as fractions
SPECIES = ("002.Song_Sparrow", "001.Laysan_Albatross")  # folder per class y = 0, 1
CATEGORIES = (("/b/bamboo_forest", "/f/forest/broadleaf"), ("/o/ocean", "/l/lake/natural"))  # per place
ATTRIBUTES = (
    "has_bill_shape::curved_(up_or_down)",
    "has_bill_shape::hooked",
    "has_upper_tail_color::grey",
    "has_wing_color::blue",
    "has_size::small_(5_-_9_in)",
    "has_eye_color::red",  # never present: dropped from the vocabulary
    "has_shape::perching-like",  # always present: dropped from the vocabulary
)
EXIF_INDEX, RGBA_INDEX, HALF_MASK_INDEX, WIDE_INDEX = 5, 6, 9, 13  # image indices with a special role


def scene(height: int, width: int, place: int, label: int) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 (h, w, 3) background + bird rectangle, and its bool mask."""
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[:] = WATER if place else LAND
    mask = np.zeros((height, width), dtype=bool)
    top, bottom, left, right = RECT
    mask[round(top * height) : round(bottom * height), round(left * width) : round(right * width)] = True
    img[mask] = WATERBIRD if label else LANDBIRD
    return img, mask


def split_of(i: int, n: int) -> int:
    """First half train, next sixth val, the rest test (all four groups in each, given the group cycle)."""
    n_train, n_val = n // 2, n // 6
    return 0 if i < n_train else 1 if i < n_train + n_val else 2


def group_of(i: int) -> tuple[int, int]:
    """(label, place) cycling through the four groups."""
    return i % 2, (i // 2) % 2


def _save(img: np.ndarray, path: Path, i: int) -> None:
    """Save in a format that depends on the index: PNG RGB, JPEG, greyscale JPEG, palette PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = i % 4
    if kind == 0:
        Image.fromarray(img).save(path)
    elif kind == 1:
        Image.fromarray(img).save(path, quality=95)
    elif kind == 2:
        Image.fromarray(img).convert("L").save(path, quality=95)
    else:
        Image.fromarray(img).convert("P", palette=Image.Palette.ADAPTIVE, colors=8).save(path)


def _filename(i: int, label: int) -> str:
    ext = ".png" if i % 4 in (0, 3) or i == RGBA_INDEX else ".jpg"
    return f"{SPECIES[label]}/{SPECIES[label][4:]}_{i + 1:04d}{ext}"


def write_image(root: Path, rel: str, i: int, size: int, label: int, place: int) -> tuple[int, int]:
    """Write image ``i`` (with its special role, if any); returns the displayed (height, width)."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = (size, size * 3 // 2) if i == WIDE_INDEX else (size, size)
    if i == EXIF_INDEX:
        # Stored 3:2 landscape: top half red, bottom half blue; EXIF orientation 6 = displayed after a
        # 90° clockwise turn, i.e. portrait with the red half on the right.
        stored = np.zeros((size, size * 3 // 2, 3), dtype=np.uint8)
        stored[: size // 2] = (220, 20, 20)
        stored[size // 2 :] = (20, 20, 220)
        exif = Image.Exif()
        exif[0x0112] = 6
        Image.fromarray(stored).save(path, quality=95, exif=exif)
        return size * 3 // 2, size
    img, mask = scene(height, width, place, label)
    if i == RGBA_INDEX:
        rgba = np.zeros((height, width, 4), dtype=np.uint8)  # transparent black background
        rgba[mask, :3] = img[mask]
        rgba[mask, 3] = 255
        Image.fromarray(rgba, "RGBA").save(path)
    else:
        _save(img, path, i)
    return height, width


def write_mask(path: Path, i: int, shape: tuple[int, int], label: int, place: int) -> None:
    """Soft greyscale mask like CUB's: 255 on the bird, a 1-pixel fringe at 100 (below the threshold)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = shape
    if i == EXIF_INDEX:  # drawn on the displayed (upright) image: the red right half
        mask = np.zeros((height, width), dtype=np.uint8)
        mask[:, width // 2 :] = 255
    else:
        _, inside = scene(height, width, place, label)
        mask = np.where(inside, 255, 0).astype(np.uint8)
        ring = np.zeros_like(inside)
        ring[1:] |= inside[:-1]
        ring[:, 1:] |= inside[:, :-1]
        mask[ring & ~inside] = 100
    img = Image.fromarray(mask, "L")
    if i == HALF_MASK_INDEX:
        img = img.resize((width // 2, height // 2), Image.Resampling.NEAREST)
    img.save(path)


def attribute_present(i: int, attr: int) -> int:
    """Ground-truth CUB ``is_present`` of attribute ``attr`` (1-based) on image ``i`` (0-based)."""
    label, place = group_of(i)
    return int(
        {
            1: label == 0,
            2: label == 1,
            3: i % 3 == 0,
            4: (i // 3) % 2 == 0,
            5: i % 2 == 0,
            6: False,
            7: True,
        }[attr]
    )


#: (image index, attribute id) -> (is_present, certainty_id, expected concept after the certainty rule)
CERTAINTY_CASES = {
    (0, 3): (1, 1, 0),  # present but "not visible": absent
    (1, 3): (1, 2, 1),  # present, "guessing": present
    (2, 3): (1, 4, 1),  # present, "definitely"
    (3, 3): (0, 1, 0),
}


def make_waterbirds(
    root: Path,
    n: int = 48,
    size: int = 40,
    with_place_filename: bool = True,
    with_cub: bool = True,
    with_masks: bool = True,
) -> dict[str, Path]:
    """Write a Waterbirds-layout data set under ``root`` (and CUB files under ``root/CUB_200_2011``).

    Returns ``{"root": ..., "cub_root": ...}``. Image ``i`` has ``img_id`` i + 1, class/place from
    :func:`group_of`, split from :func:`split_of`.
    """
    root.mkdir(parents=True, exist_ok=True)
    cub = root / "CUB_200_2011"
    rows, shapes = [], []
    for i in range(n):
        label, place = group_of(i)
        rel = _filename(i, label)
        shapes.append(write_image(root, rel, i, size, label, place))
        row = {"img_id": i + 1, "img_filename": rel, "y": label, "split": split_of(i, n), "place": place}
        if with_place_filename:
            row["place_filename"] = f"{CATEGORIES[place][(i // 4) % 2]}/{i:08d}.jpg"
        row["comment"] = "ignored column"
        rows.append(row)
    with (root / "metadata.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    if not with_cub:
        return {"root": root, "cub_root": cub}

    (cub / "attributes").mkdir(parents=True, exist_ok=True)
    spacing = (" ", "  ", "\t", " \t ")
    lines = [f"{r['img_id']}{spacing[k % 4]}{r['img_filename']}" for k, r in enumerate(rows)]
    lines.append(f"{n + 1} 003.Extra_Bird/Extra_Bird_0001.jpg")  # in CUB, not in metadata: allowed
    (cub / "images.txt").write_text("\n".join(lines) + "\n")
    (cub / "attributes" / "attributes.txt").write_text(
        "".join(f"{k + 1} {name}\n" for k, name in enumerate(ATTRIBUTES))
    )
    out = []
    for i in range(n + 1):
        for attr in range(1, len(ATTRIBUTES) + 1):
            present = attribute_present(i, attr) if i < n else 1
            certainty = 3 + (i + attr) % 2
            if (i, attr) in CERTAINTY_CASES:
                present, certainty, _ = CERTAINTY_CASES[(i, attr)]
            sep = spacing[(i * 7 + attr) % 4]
            line = f"{i + 1}{sep}{attr}{sep}{present} {certainty}{sep}{(i * attr) % 17 + 0.5:.3f}"
            if (i, attr) == (4, 2):
                line = f" {i + 1} {attr} {present} {certainty} 0 12.250"  # leading space and extra field
            out.append(line)
    (cub / "attributes" / "image_attribute_labels.txt").write_text("\n".join(out) + "\n")
    if with_masks:
        for i, r in enumerate(rows):
            label, place = group_of(i)
            write_mask(cub / "segmentations" / Path(r["img_filename"]).with_suffix(".png"), i, shapes[i], label, place)
    return {"root": root, "cub_root": cub}


FOLDER_LABELS = ("sparrow", "heron")  # label per class index (the CSV writes the names)
FOLDER_GROUPS = ("meadow", "pond")


def make_folder(
    root: Path,
    n: int = 36,
    size: int = 40,
    with_group: bool = True,
    with_mask: bool = True,
    bom: bool = False,
    int_labels: bool = False,
) -> Path:
    """Write ``root/manifest.csv`` and its images (``imgs/``) and masks (``masks/``); returns the manifest path.

    Concept columns: ``striped`` (= i % 2 == 0) and ``long_neck`` (= the class is heron). One image is a
    16-bit greyscale PNG.
    """
    root.mkdir(parents=True, exist_ok=True)
    fields = ["path", "label", "split"] + (["group"] if with_group else []) + (["mask"] if with_mask else [])
    fields += ["striped", "long_neck"]
    rows = []
    for i in range(n):
        label, place = group_of(i)
        rel = f"imgs/{FOLDER_LABELS[label]}/{i:03d}.png"
        img, mask = scene(size, size, place, label)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        if i == 7:
            grey = np.asarray(Image.fromarray(img).convert("L"), dtype=np.uint16) * 257
            Image.fromarray(grey).save(root / rel)  # 16-bit greyscale
        else:
            Image.fromarray(img).save(root / rel)
        row = {
            "path": rel,
            "label": str(label) if int_labels else FOLDER_LABELS[label],
            "split": ("train", "val", "test")[split_of(i, n)],
            "striped": str(int(i % 2 == 0)),
            "long_neck": str(label),
        }
        if with_group:
            row["group"] = FOLDER_GROUPS[place]
        if with_mask:
            row["mask"] = f"masks/{i:03d}.png"
            (root / "masks").mkdir(exist_ok=True)
            Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), "L").save(root / row["mask"])
        rows.append(row)
    manifest = root / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8-sig" if bom else "utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return manifest


#: ``--set`` values that make runs on these data sets as small as the pipeline allows.
TINY_SETS = [
    "world.image_size=32", "baseline.epochs=2", "baseline.batch_size=16", "concepts.epochs=2",
    "microscope.per_group=1", 'microscope.methods=["saliency","grad_cam"]', "microscope.tcav.n_random=2",
    "microscope.tcav.n_concept_images=4", "microscope.tcav.n_inputs=3", 'microscope.tcav.layers=["penultimate"]',
    "microscope.sanity.n_images=2", "search.n_ranked=4", "search.max_depth=3",
]
#: The name under which :func:`simulated_ratings` rates (a simulated rater, not a person).
SIMULATED_RATER = "simulated-rater"


def simulated_ratings(concept_ids: list[str], classes: list[str]) -> list[tuple[str, str, str, int]]:
    """A ratings file for the Waterbirds-layout fixture, by a simulated rater who knows how it was drawn: the
    curved bill (attribute 1, present on class 0) is evidence for class 0, the hooked bill (attribute 2) for
    class 1; the place is evidence for neither; every other attribute is weak (2) for both classes.

    Returns ``(rater, concept, class, rating)`` rows, one per concept and class.
    """
    marks = {ATTRIBUTES[0]: classes[0], ATTRIBUTES[1]: classes[1]}  # concept id = CUB attribute name
    rows = []
    for concept in concept_ids:
        for cls in classes:
            rating = 1 if concept.startswith("place::") else (5 if marks[concept] == cls else 1) if concept in marks else 2
            rows.append((SIMULATED_RATER, concept, cls, rating))
    return rows
