"""Write a Waterbirds-layout benchmark data set with CUB-layout attributes, segmentations and judgments.

    python -m testkit.byod_data OUT_DIR --n 4800 --size 96 --seed 0

The data set exercises the ``waterbirds`` loader end to end (``world.root=OUT_DIR``,
``world.cub_root=OUT_DIR/CUB_200_2011``) on a task with the shape of Waterbirds (Sagawa et al., 2020):

- **Two classes of birds**, ``landbird`` and ``waterbird``, told apart by seven visible features, each a
  CUB attribute pair: bill shape (cone / dagger), wing colour (brown / blue), crown colour (red / black),
  tail shape (forked / rounded), breast pattern (spotted / solid), eye colour (black / red) and leg
  colour (black / orange). Each feature takes its class's typical value with probability
  ``feature_p`` (0.88): no single feature decides, the majority of seven decides for ~99.9 % of birds.
- **Distractors** uncorrelated with class: size (small / medium) and pose (facing left / right).
- **Places** as textured backgrounds: land (bamboo forest, broadleaf forest, wild field) and water
  (ocean, natural lake, river), with Places365-style ``place_filename`` paths (``/b/bamboo_forest/...``)
  so that the loader's ``place::`` concepts come out. The bird covers ~15-30 % of the image; the
  background is large and its colour alone separates land from water, so a CNN trained by ERM on the
  train split (where place type agrees with class with probability ``rho`` = 0.95) learns the place.
- **Splits** as in Waterbirds: 0 train (``rho``-correlated), 1 val and 2 test (place-balanced within
  each class). Classes are balanced (Waterbirds is 77 % landbirds; balance keeps the minority groups
  large enough to measure at this size).
- **Annotations** in CUB's files: ``images.txt``, ``attributes/attributes.txt``,
  ``attributes/image_attribute_labels.txt`` (every ``is_present`` flipped with probability 0.04 to model
  annotator noise; certainty ids 2-4, and 1 "not visible" for the leg colour of birds drawn sitting,
  whose legs are hidden) and soft greyscale ``segmentations/*.png`` (the bird's alpha).
- ``vocabulary_bench.csv`` marks the distractors as kind ``distractor`` (``world.vocabulary``), and
  ``judgments_bench.csv`` rates every attribute and place concept as evidence for each class: simulated
  ratings, drawn from the rule the birds are drawn by (see the README written next to it).

Everything is a deterministic function of ``seed``: latents are drawn vectorised up front, and each
image is rendered (OpenCV shapes, 2x supersampled, anti-aliased) from its latents alone, so the thread
pool that renders and encodes the files cannot change a pixel.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from igcore.worlds.snowwolf.textures import ramp, smooth_noise

CLASSES = ("landbird", "waterbird")
SPECIES = ("001.Landbird", "002.Waterbird")  # image folders, CUB style
PLACE_NAMES = ("land", "water")
PLACES: tuple[tuple[str, ...], ...] = (
    ("/b/bamboo_forest", "/f/forest/broadleaf", "/f/field/wild"),
    ("/o/ocean", "/l/lake/natural", "/r/river"),
)
# (CUB attribute part, landbird-typical value, waterbird-typical value)
FEATURES: tuple[tuple[str, str, str], ...] = (
    ("has_bill_shape", "cone", "dagger"),
    ("has_wing_color", "brown", "blue"),
    ("has_crown_color", "red", "black"),
    ("has_tail_shape", "forked_tail", "rounded_tail"),
    ("has_breast_pattern", "spotted", "solid"),
    ("has_eye_color", "black", "red"),
    ("has_leg_color", "black", "orange"),
)
DISTRACTORS: tuple[tuple[str, str, str], ...] = (
    ("has_size", "small_(5_-_9_in)", "medium_(9_-_16_in)"),
    ("has_pose", "facing_left", "facing_right"),
)
LEGS = 6  # index of the leg-colour feature
NOT_VISIBLE = 1

_TILE_VARIANTS = 4
_SCALE = (1.0, 1.14)  # bird unit as a fraction of the image side: small, medium
_EXTENT = ((-0.36, 0.44), (-0.245, 0.30))  # the bird's x and y range in bird units (facing right)
_COLOURS = {  # BGR (OpenCV order) of feature values: index 0 landbird-typical, 1 waterbird-typical
    "wing": ((45, 85, 135), (175, 115, 60)),
    "crown": ((35, 30, 205), (25, 25, 25)),
    "eye": ((15, 15, 15), (30, 30, 225)),
    "legs": ((25, 25, 25), (30, 140, 250)),
}


def attribute_names() -> list[str]:
    """CUB-style attribute names in attr_id order: each feature's two values, then the distractors'."""
    return [f"{part}::{value}" for part, *values in (*FEATURES, *DISTRACTORS) for value in values]


# ---------------------------------------------------------------------------------------------------
# Latents


@dataclass
class Latents:
    """Every random choice, one row per image (drawn vectorised, in a fixed order)."""

    labels: np.ndarray  # (n,) 0 landbird / 1 waterbird
    split: np.ndarray  # (n,) 0 train / 1 val / 2 test
    place: np.ndarray  # (n,) 0 land / 1 water
    category: np.ndarray  # (n,) index into PLACES[place]
    features: np.ndarray  # (n, 7) 0 = landbird-typical value, 1 = waterbird-typical
    distractors: np.ndarray  # (n, 2) size 0 small / 1 medium; pose 0 left / 1 right
    legs_hidden: np.ndarray  # (n,) bird sitting: legs not drawn, leg colour not visible
    centre: np.ndarray  # (n, 2) bird position (x, y) within the range that keeps it inside the image, in [0, 1]
    body_tint: np.ndarray  # (n, 3) multiplicative jitter of the body colour
    spots: np.ndarray  # (n, 8, 2) breast-spot offsets in the unit disc
    tile: np.ndarray  # (n,) background texture variant
    offset: np.ndarray  # (n, 2) background crop offset (fraction of the free range)
    flip: np.ndarray  # (n,) background mirrored
    light: np.ndarray  # (n, 2) brightness gain and bias
    noise_seed: np.ndarray  # (n,) seed of the per-image pixel noise


def _assign_splits(
    n: int, rho: float, fractions: tuple[float, float], rng: np.random.Generator
) -> tuple[np.ndarray, ...]:
    """Labels, splits and place types with exact counts: train rho-correlated, val/test place-balanced per class."""
    n_train, n_val = round(fractions[0] * n), round(fractions[1] * n)
    labels, split, place = [], [], []
    for code, size in ((0, n_train), (1, n_val), (2, n - n_train - n_val)):
        for c in (0, 1):
            n_c = size // 2 + (c == 1) * (size % 2)
            n_typical = round(rho * n_c) if code == 0 else n_c // 2
            labels.append(np.full(n_c, c))
            split.append(np.full(n_c, code))
            place.append(np.where(np.arange(n_c) < n_typical, c, 1 - c))
    order = rng.permutation(n)
    return np.concatenate(labels)[order], np.concatenate(split)[order], np.concatenate(place)[order]


def sample_latents(
    n: int, seed: int, rho: float = 0.95, feature_p: float = 0.88, fractions: tuple[float, float] = (0.4, 0.1)
) -> Latents:
    """All latents of an ``n``-image data set, deterministic by ``seed``."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    labels, split, place = _assign_splits(n, rho, fractions, rng)
    atypical = rng.random((n, len(FEATURES))) >= feature_p
    features = (labels[:, None] ^ atypical).astype(np.uint8)
    return Latents(
        labels=labels.astype(np.int64),
        split=split.astype(np.int64),
        place=place.astype(np.int64),
        category=rng.integers(0, 3, n),
        features=features,
        distractors=rng.integers(0, 2, (n, len(DISTRACTORS))).astype(np.uint8),
        legs_hidden=rng.random(n) < 0.06,
        centre=np.stack([rng.random(n), rng.uniform(0.35, 1.0, n)], axis=1),
        body_tint=rng.normal(1.0, 0.06, (n, 3)).clip(0.8, 1.2),
        spots=rng.uniform(-0.75, 0.75, (n, 8, 2)),
        tile=rng.integers(0, _TILE_VARIANTS, n),
        offset=rng.random((n, 2)),
        flip=rng.integers(0, 2, n).astype(bool),
        light=np.stack([rng.normal(1.0, 0.08, n), rng.normal(0.0, 10.0, n)], axis=1),
        noise_seed=rng.integers(0, 2**31, n),
    )


def annotations(lat: Latents, seed: int, noise: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """CUB ``is_present`` (n, A) and ``certainty_id`` (n, A) for :func:`attribute_names`.

    The true value of every feature and distractor is one-hot over its two values; each ``is_present``
    is then flipped with probability ``noise``. Hidden legs are annotated "not visible" (certainty 1,
    is_present 0) before the noise.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 11]))
    n = len(lat.labels)
    values = np.concatenate([lat.features, lat.distractors], axis=1)  # (n, 9) index of the true value
    present = np.zeros((n, 2 * values.shape[1]), dtype=np.uint8)
    present[:, 0::2] = values == 0
    present[:, 1::2] = values == 1
    certainty = rng.choice(np.array([2, 3, 4]), size=present.shape, p=[0.1, 0.3, 0.6])
    hidden = np.flatnonzero(lat.legs_hidden)
    legs = [2 * LEGS, 2 * LEGS + 1]
    present[np.ix_(hidden, legs)] = 0
    certainty[np.ix_(hidden, legs)] = NOT_VISIBLE
    present ^= (rng.random(present.shape) < noise).astype(np.uint8)
    return present, certainty


# ---------------------------------------------------------------------------------------------------
# Backgrounds


def _ramp(x: np.ndarray, *stops: tuple[float, tuple[int, int, int]]) -> np.ndarray:
    """Scalar field to BGR (OpenCV's order) by linear interpolation between (position, RGB colour) stops."""
    return ramp(x, *((position, colour[::-1]) for position, colour in stops))


def _sky_over(rng: np.random.Generator, ground: np.ndarray, horizon: float, s: int) -> np.ndarray:
    h, w = ground.shape[:2]
    sky = _ramp(smooth_noise(rng, h, w, s / 6, s / 2), (-2, (150, 180, 215)), (2, (225, 235, 245)))
    line = horizon * h + 0.02 * s * smooth_noise(rng, 1, w, 0, s / 4)[0]
    above = np.clip(line[None, :] - np.arange(h)[:, None], 0, 1)[..., None]
    return above * sky + (1 - above) * ground


def _tile(place: int, category: int, rng: np.random.Generator, h: int, w: int, s: int) -> np.ndarray:
    """One BGR float texture tile of a place category."""
    if place == 0 and category == 0:  # bamboo forest: vertical stalks with nodes, leaves on top
        stalks = smooth_noise(rng, h, w, s, s / 30)
        base = _ramp(stalks, (-2.5, (35, 60, 20)), (0, (95, 140, 45)), (2.5, (190, 200, 90)))
        nodes = (np.sin(np.arange(h) / (s / 9) * np.pi)[:, None] > 0.97) & (stalks > 0.3)
        base[nodes] *= 0.6
        leaves = smooth_noise(rng, h, w, s / 25, s / 12) > 1.0
        return np.where(
            leaves[..., None], _ramp(smooth_noise(rng, h, w, 2, 2), (-2, (40, 90, 25)), (2, (120, 170, 60))), base
        )
    if place == 0 and category == 1:  # broadleaf forest: dark canopy blobs and trunks
        canopy = smooth_noise(rng, h, w, s / 14, s / 14) + 0.5 * smooth_noise(rng, h, w, 1.5, 1.5)
        base = _ramp(canopy, (-2.5, (15, 40, 15)), (0, (45, 95, 35)), (2.5, (110, 160, 70)))
        trunks = smooth_noise(rng, 1, w, 0, s / 20)[0] > 1.3
        base[:, trunks] = _ramp(smooth_noise(rng, h, int(trunks.sum()), s / 8, 1), (-2, (45, 30, 20)), (2, (95, 70, 45)))
        return base
    if place == 0:  # wild field: grass blades under a sky
        blades = smooth_noise(rng, h, w, s / 10, 0.7) + 0.6 * smooth_noise(rng, h, w, s / 6, s / 5)
        grass = _ramp(blades, (-2.5, (90, 110, 30)), (0, (160, 170, 60)), (2.5, (215, 205, 120)))
        return _sky_over(rng, grass, 0.3, s)
    if category == 0:  # ocean: horizontal swell and whitecaps under a sky
        swell = smooth_noise(rng, h, w, 1.2, s / 5) + 0.5 * smooth_noise(rng, h, w, s / 10, s / 3)
        water = _ramp(swell, (-2.5, (10, 35, 90)), (0, (25, 70, 150)), (2.0, (70, 130, 200)), (2.6, (235, 240, 245)))
        return _sky_over(rng, water, 0.3, s)
    if category == 1:  # natural lake: calm blue-green water, a tree line on the far shore
        ripples = smooth_noise(rng, h, w, 0.8, s / 3)
        water = _ramp(ripples, (-2.5, (30, 80, 110)), (0, (55, 120, 150)), (2.5, (120, 175, 195)))
        shore = (np.arange(h)[:, None] < h * 0.32 + 0.03 * s * smooth_noise(rng, 1, w, 0, s / 10)[0][None, :])[..., None]
        trees = _ramp(smooth_noise(rng, h, w, 2, 2), (-2, (20, 50, 25)), (2, (60, 100, 50)))
        return _sky_over(rng, np.where(shore, trees, water), 0.22, s)
    # river: flowing diagonal streaks between grassy banks
    yy, xx = np.mgrid[0:h, 0:w]
    flow = smooth_noise(rng, h, w, 1.0, s / 4)
    water = _ramp(flow, (-2.5, (25, 60, 110)), (0, (50, 95, 150)), (2.5, (150, 185, 215)))
    bank = np.abs((yy - 0.6 * h) + 0.25 * (xx - w / 2)) > 0.38 * h + 0.03 * s * smooth_noise(rng, h, w, s / 6, s / 6)
    grass = _ramp(smooth_noise(rng, h, w, s / 12, 1), (-2, (70, 110, 40)), (2, (140, 170, 80)))
    return np.where(bank[..., None], grass, water)


def make_tiles(size: int, seed: int) -> np.ndarray:
    """float32 (2, 3, variants, 1.5*size, 1.5*size, 3) BGR texture tiles per (place, category)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 13]))
    t = size * 3 // 2
    return np.array(
        [[[_tile(p, c, rng, t, t, size) for _ in range(_TILE_VARIANTS)] for c in range(3)] for p in range(2)],
        dtype=np.float32,
    )


# ---------------------------------------------------------------------------------------------------
# Birds


def _draw_bird(lat: Latents, i: int, size: int, ss: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Premultiplied BGR float (size, size, 3) and alpha float (size, size) of bird ``i``.

    Drawn with anti-aliased OpenCV shapes at ``ss``x resolution in bird units (1 unit = ``scale``
    pixels, bird facing right, y down), then area-downsampled.
    """
    big = size * ss
    canvas = np.zeros((big, big, 3), dtype=np.uint8)
    alpha = np.zeros((big, big), dtype=np.uint8)
    f = lat.features[i]
    small, facing_right = lat.distractors[i]
    unit = _SCALE[small]
    scale = big * unit
    sign = 1.0 if facing_right else -1.0
    # The centre latent is a position within the range that keeps the whole bird inside the image.
    (x0, x1), (y0, y1) = _EXTENT
    lo, hi = (-x0 * unit, 1 - x1 * unit) if facing_right else (x1 * unit, 1 + x0 * unit)
    cx = big * (lo + 0.02 + (hi - lo - 0.04) * lat.centre[i, 0])
    cy = big * (-y0 * unit + 0.02 + (1 - (y1 - y0) * unit - 0.04) * lat.centre[i, 1])
    shift = 4  # subpixel precision bits of OpenCV coordinates
    k = 1 << shift

    def pt(x: float, y: float) -> tuple[int, int]:
        return int(round((cx + sign * x * scale) * k)), int(round((cy + y * scale) * k))

    def length(r: float) -> int:
        return max(int(round(r * scale * k)), 1)

    def paint(colour: tuple[int, ...], draw) -> None:  # noqa: ANN001  (a callable drawing on one image)
        draw(canvas, tuple(int(c) for c in colour))
        draw(alpha, 255)

    def ellipse(x, y, a, b, angle, colour, start=0, end=360):  # noqa: ANN001, ANN202
        paint(
            colour,
            lambda img, c: cv2.ellipse(
                img, pt(x, y), (length(a), length(b)), sign * angle, start, end, c, -1, cv2.LINE_AA, shift
            ),
        )

    def polygon(points, colour):  # noqa: ANN001, ANN202
        poly = np.array([pt(x, y) for x, y in points], dtype=np.int32)
        paint(colour, lambda img, c: cv2.fillPoly(img, [poly], c, cv2.LINE_AA, shift))

    def line(p0, p1, width, colour):  # noqa: ANN001, ANN202
        paint(
            colour,
            lambda img, c: cv2.line(img, pt(*p0), pt(*p1), c, max(int(round(width * scale)), 1), cv2.LINE_AA, shift),
        )

    body = np.array([150, 165, 180]) * lat.body_tint[i]  # BGR buff-grey, jittered
    dark = (50, 55, 60)
    if not lat.legs_hidden[i]:
        legs = _COLOURS["legs"][f[6]]
        for dx in (-0.05, 0.04):
            line((dx, 0.12), (dx - 0.02, 0.28), 0.026, legs)
            line((dx - 0.02, 0.28), (dx + 0.05, 0.28), 0.02, legs)
    if f[3] == 0:  # forked tail
        polygon([(-0.17, -0.05), (-0.35, -0.14), (-0.27, -0.01), (-0.35, 0.10), (-0.17, 0.05)], dark)
    else:  # rounded fan
        ellipse(-0.25, 0.0, 0.10, 0.075, 0, dark)
    ellipse(0.0, 0.0, 0.21, 0.16, -12, body)
    ellipse(0.07, 0.05, 0.12, 0.10, -12, (200, 225, 235))  # breast
    if f[4] == 0:  # spotted breast
        for sx, sy in lat.spots[i]:
            ellipse(0.07 + 0.09 * sx, 0.05 + 0.07 * sy, 0.018, 0.018, 0, (30, 50, 90))
    wing = _COLOURS["wing"][f[1]]
    ellipse(-0.04, -0.03, 0.15, 0.075, -12, tuple(int(c * 0.6) for c in wing))  # edge
    ellipse(-0.03, -0.035, 0.135, 0.062, -12, wing)
    ellipse(0.18, -0.14, 0.095, 0.095, 0, body)  # head
    ellipse(0.18, -0.15, 0.093, 0.083, 0, _COLOURS["crown"][f[2]], 190, 350)  # crown cap
    ellipse(0.21, -0.14, 0.034, 0.034, 0, (240, 240, 240))  # eye ring
    ellipse(0.215, -0.14, 0.023, 0.023, 0, _COLOURS["eye"][f[5]])
    bill = (90, 170, 205)
    if f[0] == 0:  # cone: short and deep
        polygon([(0.255, -0.18), (0.255, -0.10), (0.355, -0.14)], bill)
    else:  # dagger: long and thin
        polygon([(0.255, -0.16), (0.255, -0.12), (0.43, -0.14)], bill)

    colour = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    cover = cv2.resize(alpha, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return colour, cover


def render(lat: Latents, i: int, tiles: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Image ``i`` as BGR uint8 (size, size, 3) and its soft mask uint8 (size, size)."""
    t = tiles.shape[3]
    oy, ox = (lat.offset[i] * (t - size)).astype(int)
    bg = tiles[lat.place[i], lat.category[i], lat.tile[i], oy : oy + size, ox : ox + size]
    if lat.flip[i]:
        bg = bg[:, ::-1]
    colour, cover = _draw_bird(lat, i, size)
    # The canvas was drawn on black with anti-aliased edges, so it is premultiplied by its coverage.
    img = bg * (1.0 - cover[..., None]) + colour
    img = img * lat.light[i, 0] + lat.light[i, 1]
    img += np.random.default_rng(int(lat.noise_seed[i])).normal(0.0, 4.0, img.shape)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8), np.clip(cover * 255 + 0.5, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------
# Files


#: The names under which :func:`_judgments` rates: simulated raters, not people.
SIMULATED_RATERS = ("simulated-1", "simulated-2", "simulated-3")


def _judgments(seed: int) -> list[tuple[str, str, str, int]]:
    """Simulated ratings 1-5 of every attribute and place concept as evidence for each class: three simulated raters
    apply the rule the birds are drawn by, each moving a rating one point towards the middle with probability 0.3
    (a random-number generator seeded by ``seed``). No person wrote them."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 17]))
    items: list[tuple[str, str, int]] = []
    for part, land, water in FEATURES:
        for value, typical_for in ((land, 0), (water, 1)):
            for c, cls in enumerate(CLASSES):
                items.append((f"{part}::{value}", cls, 5 if c == typical_for else 1))
    for part, *values in DISTRACTORS:
        for value in values:
            for cls in CLASSES:
                items.append((f"{part}::{value}", cls, 2))
    for p in range(2):
        for path in PLACES[p]:
            for cls in CLASSES:
                items.append((f"place::{path.split('/', 2)[2]}", cls, 1))
    rows = []
    for rater in SIMULATED_RATERS:
        for concept, cls, base in items:
            step = int(rng.random() < 0.3)  # raters differ by one point now and then, towards the middle
            rating = base - step if base >= 4 else base + step
            rows.append((rater, concept, cls, rating))
    return rows


_README = """# Benchmark data set for the `waterbirds` loader

Written by `testkit/byod_data.py` (seed {seed}, {n} images of {size} px; see that file's docstring for
how the birds, places and splits are made). Load it with

    python -m igcore run --set world.name=waterbirds --set world.root={root} \\
        --set world.cub_root={root}/CUB_200_2011 --set world.vocabulary={root}/vocabulary_bench.csv

- `metadata.csv`, `00?.*/`: Waterbirds layout (split 0 train with rho = {rho}, 1 val and 2 test
  place-balanced within each class).
- `CUB_200_2011/`: CUB-layout attribute files and soft segmentation masks.
- `vocabulary_bench.csv`: texts and kinds (size and pose are `distractor`s, places `context`).
- `judgments_bench.csv`: plausibility ratings `rater,concept,class,rating` (1-5).

## Who wrote the ratings

Nobody: they are **simulated**. `testkit/byod_data.py` draws them with a random-number generator from the
rule used to draw the birds, under three simulated rater names (`simulated-1`, `simulated-2`, `simulated-3`):
a bird feature is rated 5 (sometimes 4) as evidence for the class whose typical value it is and 1 (sometimes
2) for the other class; size and pose 2 for both classes; every place 1 for both classes (a place is not what
makes a bird a waterbird). They show the judgments format on this synthetic data set and say nothing about
what people believe.
"""


def write_dataset(
    out: str | Path,
    n: int = 4800,
    size: int = 96,
    seed: int = 0,
    rho: float = 0.95,
    feature_p: float = 0.88,
    noise: float = 0.04,
    workers: int | None = None,
    quality: int = 90,
) -> dict[str, float]:
    """Write the data set into ``out`` (created; existing files are overwritten) and return statistics.

    Returns ``{"seconds", "n", "mean_object_fraction", "min_object_fraction", "max_object_fraction"}``.
    """
    if n < 40 or size < 32:
        raise ValueError("need n >= 40 images of size >= 32 px")
    start = time.perf_counter()
    out = Path(out)
    cub = out / "CUB_200_2011"
    (cub / "attributes").mkdir(parents=True, exist_ok=True)
    lat = sample_latents(n, seed, rho, feature_p)
    present, certainty = annotations(lat, seed, noise)
    tiles = make_tiles(size, seed)

    per_category = np.zeros((2, 3), dtype=np.int64)
    filenames, place_files = [], []
    for i in range(n):
        label, place, cat = lat.labels[i], lat.place[i], lat.category[i]
        filenames.append(f"{SPECIES[label]}/{CLASSES[label].title()}_{i + 1:05d}.jpg")
        per_category[place, cat] += 1
        place_files.append(f"{PLACES[place][cat]}/{per_category[place, cat]:08d}.jpg")
    for folder in SPECIES:
        (out / folder).mkdir(parents=True, exist_ok=True)
        (cub / "segmentations" / folder).mkdir(parents=True, exist_ok=True)

    def work(i: int) -> float:
        img, mask = render(lat, i, tiles, size)
        cv2.imwrite(str(out / filenames[i]), img, [cv2.IMWRITE_JPEG_QUALITY, quality])
        cv2.imwrite(str(cub / "segmentations" / Path(filenames[i]).with_suffix(".png")), mask)
        return float((mask > 127).mean())

    with ThreadPoolExecutor(max_workers=workers) as pool:
        fractions = np.array(list(pool.map(work, range(n), chunksize=64)))

    with (out / "metadata.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["img_id", "img_filename", "y", "split", "place", "place_filename"])
        for i in range(n):
            w.writerow([i + 1, filenames[i], lat.labels[i], lat.split[i], lat.place[i], place_files[i]])
    (cub / "images.txt").write_text("".join(f"{i + 1} {filenames[i]}\n" for i in range(n)))
    names = attribute_names()
    (cub / "attributes" / "attributes.txt").write_text("".join(f"{k + 1} {a}\n" for k, a in enumerate(names)))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 19]))
    seconds = rng.uniform(1.0, 20.0, present.shape)  # CUB's "time" column: seconds the annotator took
    img_ids = np.repeat(np.arange(1, n + 1), len(names))
    attr_ids = np.tile(np.arange(1, len(names) + 1), n)
    table = np.column_stack([img_ids, attr_ids, present.ravel(), certainty.ravel()])
    with (cub / "attributes" / "image_attribute_labels.txt").open("w") as f:
        f.writelines(
            f"{a} {b} {c} {d} {t:.3f}\n"
            for (a, b, c, d), t in zip(table.tolist(), seconds.ravel().tolist(), strict=True)
        )

    with (out / "vocabulary_bench.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "kind"])
        from igcore.worlds.cub import attribute_text  # the loader's own derived texts
        from igcore.worlds.waterbirds import place_text

        for part, *values in FEATURES:
            for value in values:
                w.writerow([f"{part}::{value}", attribute_text(f"{part}::{value}"), "core"])
        for part, *values in DISTRACTORS:
            for value in values:
                w.writerow([f"{part}::{value}", attribute_text(f"{part}::{value}"), "distractor"])
        for p in range(2):
            for path in PLACES[p]:
                category = path.split("/", 2)[2]
                w.writerow([f"place::{category}", place_text(category), "context"])
    with (out / "judgments_bench.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["rater", "concept", "class", "rating"])
        w.writerows(_judgments(seed))
    (out / "README.md").write_text(_README.format(seed=seed, n=n, size=size, rho=rho, root=out))
    return {
        "seconds": time.perf_counter() - start,
        "n": n,
        "mean_object_fraction": float(fractions.mean()),
        "min_object_fraction": float(fractions.min()),
        "max_object_fraction": float(fractions.max()),
    }


_MEASURE = """
import json, resource, sys, time
from igcore.worlds import make_world
start = time.perf_counter()
w = make_world("waterbirds", root={root!r}, cub_root={cub!r}, image_size={size}, cache_dir={cache!r})
splits = [w.split(name) for name in ("train", "val", "test_train", "test_eval", "concept_bank")]  # held, as a run does
print(json.dumps({{"seconds": time.perf_counter() - start, "decode_seconds": w.load_info.seconds,
    "cache": w.load_info.cache, "n": w.load_info.n,
    "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}}))
"""


def measure_load(root: str | Path, image_size: int, cache_dir: str | Path) -> list[dict[str, float]]:
    """Construct the ``waterbirds`` world on ``root`` twice, each in a fresh process (decode, then cache hit).

    Returns per construction: seconds, decode seconds, cache outcome and peak RSS (GB, ``getrusage``)
    of the process, which holds every split the way a run does.
    """
    import json
    import subprocess

    root = Path(root).resolve()
    code = _MEASURE.format(
        root=str(root),
        cub=str(root / "CUB_200_2011"),
        size=image_size,
        cache=str(Path(cache_dir).resolve()),
    )
    out = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        out.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="output folder (the waterbirds world.root)")
    parser.add_argument("--n", type=int, default=4800, help="number of images (default 4800)")
    parser.add_argument("--size", type=int, default=96, help="image side in pixels (default 96)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rho", type=float, default=0.95, help="P(typical place | class) in train")
    parser.add_argument("--workers", type=int, default=None, help="rendering threads")
    parser.add_argument(
        "--measure-load",
        type=int,
        metavar="IMAGE_SIZE",
        help="afterwards, load the data set with the waterbirds world at this size twice (decode, then cache) "
        "and report time and peak memory; the cache goes to OUT_DIR/.cache",
    )
    args = parser.parse_args(argv)
    stats = write_dataset(args.out, n=args.n, size=args.size, seed=args.seed, rho=args.rho, workers=args.workers)
    print(
        f"wrote {stats['n']} images of {args.size} px to {args.out} in {stats['seconds']:.1f} s; bird covers "
        f"{100 * stats['mean_object_fraction']:.1f} % of the image on average "
        f"({100 * stats['min_object_fraction']:.1f}-{100 * stats['max_object_fraction']:.1f} %)"
    )
    if args.measure_load:
        for run in measure_load(args.out, args.measure_load, args.out / ".cache"):
            print(
                f"load at {args.measure_load} px ({run['cache']}): {run['seconds']:.1f} s, "
                f"{run['n'] / run['seconds']:.0f} img/s, peak RSS {run['peak_rss_gb']:.2f} GB"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
