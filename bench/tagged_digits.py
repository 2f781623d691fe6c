"""A labels-only data set with a shortcut nobody annotated: handwritten digits with a tag in one corner.

The images are scikit-learn's copy of the UCI handwritten digits (``sklearn.datasets.load_digits``: 1,797
8 × 8 scans by 43 writers; Alpaydin and Kaynak, 1998), a data set this project uses nowhere else. The
class is whether the digit is even or odd. In D (``train`` and ``val``) a small orange square sits in the
top-left corner of most odd digits and of few even ones (``rho``: the share of images whose tag agrees with
their class); in D′ (``test``) it is on half of the images of each class, independent of the class. Nothing
annotates it: the manifest is ``path,label,split`` plus ``group`` (``tag`` / ``no_tag``), the column the
benchmark withholds from the run's vocabulary and keeps for evaluation by group, as a data set's metadata
would be. This is the kind of shortcut (a watermark, a scanner's tag, a ruler in the corner) that no
vocabulary written in advance anticipates; the generator is this project's, the digits are not.

Each scan appears ``copies`` times, each copy scaled up, turned and shifted at random (OpenCV) on a lightly
noisy dark ground; the scans are divided between D and D′ before copying, so no writer's stroke of one
scan is on both sides.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SIDE = 64  # px, the default world's image size
TAG = (slice(3, 10), slice(3, 10))  # the tag's rows and columns: a 7 × 7 px square in the top-left corner
TAG_RGB = (255, 140, 0)
TAG_TEXT = "an orange square in the top-left corner"  # what the tag is, for people (the run never sees it)
CLASSES = ("even", "odd")
TAGGED_CLASS = 1  # in D the tag goes with "odd"
SPLITS = (("train", 0.45), ("val", 0.10), ("test", 0.45))  # shares of the scans


@dataclass(frozen=True)
class TaggedDigits:
    """What the generator wrote: the manifest, and per manifest row the hidden truth (``tag`` 0/1) and class."""

    manifest: Path
    tag: np.ndarray
    labels: np.ndarray


def draw(scan: np.ndarray, rng: np.random.Generator, tagged: bool) -> np.ndarray:
    """One 64 × 64 RGB image of an 8 × 8 scan (values 0–16): scaled, turned and shifted at random, tag or not."""
    import cv2

    size = int(rng.integers(36, 48))
    digit = cv2.resize((scan / 16.0).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    angle, scale = float(rng.uniform(-12, 12)), 1.0
    centre = (SIDE / 2 + rng.uniform(-4, 4), SIDE / 2 + rng.uniform(-4, 4))
    canvas = np.zeros((SIDE, SIDE), np.float32)
    top = (SIDE - size) // 2
    canvas[top:top + size, top:top + size] = digit
    turn = cv2.getRotationMatrix2D((SIDE / 2, SIDE / 2), angle, scale)
    turn[:, 2] += np.array(centre) - SIDE / 2
    ink = np.clip(cv2.warpAffine(canvas, turn, (SIDE, SIDE), flags=cv2.INTER_LINEAR), 0, 1)
    ground = np.clip(0.12 + rng.normal(0, 0.03, (SIDE, SIDE)), 0, 1).astype(np.float32)
    grey = ground + (0.95 - ground) * ink
    image = (np.repeat(grey[..., None], 3, axis=2) * 255).astype(np.uint8)
    if tagged:
        image[TAG] = TAG_RGB
    return image


def export_tagged_digits(folder: Path, seed: int = 0, rho: float = 0.95, copies: int = 2) -> TaggedDigits:
    """Write the images and ``labels_only.csv`` (path,label,split,group) into ``folder``; return the hidden truth.

    Deterministic in ``seed`` (which scans go to which split, every copy's drawing, who gets a tag).
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    scans, digits = load_digits(return_X_y=True)
    scans = scans.reshape(-1, 8, 8)
    labels = (digits % 2).astype(np.int64)  # 0 even, 1 odd
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(scans))
    bounds = np.cumsum([0, *[round(share * len(scans)) for _, share in SPLITS[:-1]]])
    parts = {name: order[start:end] for (name, _), start, end in zip(SPLITS, bounds, [*bounds[1:], len(scans)], strict=True)}
    folder.mkdir(parents=True, exist_ok=True)
    rows, tags, classes = [], [], []
    for split, members in parts.items():
        for copy in range(copies):
            for i in members:
                y = int(labels[i])
                agree = rng.random() < (rho if split != "test" else 0.5)  # D′: the tag is independent of the class
                tagged = (y == TAGGED_CLASS) == agree if split != "test" else agree
                rel = f"{split}/{i:04d}-{copy}.png"
                path = folder / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(draw(scans[i], rng, tagged)).save(path)
                rows.append((rel, CLASSES[y], split, "tag" if tagged else "no_tag"))
                tags.append(int(tagged))
                classes.append(y)
    manifest = folder / "labels_only.csv"
    with manifest.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "split", "group"])
        w.writerows(rows)
    return TaggedDigits(manifest, np.array(tags, dtype=np.int64), np.array(classes, dtype=np.int64))
