"""What the Snow-and-Wolves world contains and how each image is drawn at random: the classes, the six
animal attributes and their class codewords, the backgrounds, lighting and position, the per-image latents
of a split, and the concept annotations they imply.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from igcore.errors import InputError
from igcore.worlds.base import Vocabulary
from igcore.worlds.snowwolf.textures import TILE_VARIANTS

#: The smallest animal relative to the largest (the renderer's scale range).
MIN_SCALE = 0.82

VOCABULARY_PATH = Path(__file__).resolve().parents[3] / "assets" / "snowwolf_vocabulary.csv"  # the shipped judgments' too

#: (attribute, wolf-typical concept id, husky-typical concept id); latent value 1 = wolf-typical.
ATTRIBUTES: tuple[tuple[str, str, str], ...] = (
    ("eyes", "amber_eyes", "blue_eyes"),
    ("tail", "straight_tail", "curled_tail"),
    ("face", "plain_face", "facial_mask"),
    ("coat", "grizzled_coat", "black_white_coat"),
    ("snout", "long_snout", "short_snout"),
    ("ears", "rounded_ears", "pointed_ears"),
)
BACKGROUNDS: tuple[tuple[str, str], ...] = (
    ("snow", "snowy_ground"),
    ("grass", "grassy_ground"),
    ("forest", "forest_floor"),
)
LIGHTING = ("bright_light", "dim_light")
POSITION = ("animal_left", "animal_right")
CLASS_NAMES = ("husky", "wolf", "fox", "coyote", "jackal", "dingo")
TYPICAL_BACKGROUND = (1, 0, 2, 0, 1, 2)  # husky→grass, wolf→snow, extra classes cycle


def load_vocabulary() -> Vocabulary:
    """The world's vocabulary (shipped with its judgments), checked to hold every concept the world annotates."""
    vocabulary = Vocabulary.from_csv(VOCABULARY_PATH)
    needed = [c for _, w, h in ATTRIBUTES for c in (w, h)] + [c for _, c in BACKGROUNDS] + [*LIGHTING, *POSITION]
    missing = [c for c in needed if c not in vocabulary.ids]
    if missing:
        raise InputError(f"{VOCABULARY_PATH}: the snowwolf vocabulary lacks concepts {', '.join(missing)}")
    return vocabulary


def codewords(n_classes: int) -> np.ndarray:
    """Attribute codeword per class (uint8 (C, 6), 1 = wolf-typical).

    husky = all husky-typical, wolf = all wolf-typical; each further class greedily takes the codeword
    that maximises its minimum (then total) Hamming distance to the codewords already chosen.
    """
    n_attr = len(ATTRIBUTES)
    words = np.array([[(w >> k) & 1 for k in range(n_attr)] for w in range(2**n_attr)], dtype=np.uint8)
    chosen = [0, 2**n_attr - 1]
    while len(chosen) < n_classes:
        dist = (words[:, None, :] != words[chosen][None, :, :]).sum(-1)
        score = dist.min(1) * 100 + dist.sum(1)
        score[chosen] = -1
        chosen.append(int(np.argmax(score)))
    return words[chosen[:n_classes]]


def sample_latents(
    name: str,
    n: int,
    rng: np.random.Generator,
    *,
    n_classes: int,
    rho: float,
    feature_p: float,
    codewords: np.ndarray,
    typical_background: np.ndarray,
    image_size: int,
    canvas: tuple[int, int],
    max_scale: float,
) -> dict[str, np.ndarray]:
    """Every random choice of ``n`` images of split ``name``, drawn in a fixed order from the split's own
    generator: class, background, attributes, lighting, pose, position on the image, colour jitter and
    texture offsets (the renderer's ``canvas`` and ``max_scale`` bound where the animal may stand)."""
    n_bg, n_attr = len(BACKGROUNDS), len(ATTRIBUTES)
    if name in ("train", "val"):
        labels = rng.integers(0, n_classes, n)
        typical = typical_background[labels]
        other = (typical + rng.integers(1, n_bg, n)) % n_bg  # uniform over the atypical backgrounds
        background = np.where(rng.random(n) < rho, typical, other)
    elif name in ("test_train", "test_eval"):
        groups = rng.permutation(np.arange(n) % (n_classes * n_bg))  # balanced groups
        labels, background = groups // n_bg, groups % n_bg
    else:  # concept bank: no class; attributes and background independent
        labels = np.full(n, -1, dtype=np.int64)
        background = rng.integers(0, n_bg, n)
    if name == "concept_bank":
        attributes = (rng.random((n, n_attr)) < 0.5).astype(np.uint8)
    else:
        flips = (rng.random((n, n_attr)) >= feature_p).astype(np.uint8)
        attributes = codewords[labels] ^ flips

    size = image_size
    h_canvas, w_canvas = canvas
    position = rng.integers(0, 2, n)  # 0 left, 1 right: the canvas centre's half of the image
    centre = (size - w_canvas) / 2
    left_hi, right_lo = max(int(np.floor(centre)) - 2, 0), min(int(np.ceil(centre)) + 2, size - w_canvas)
    x0 = np.where(position == 0, rng.integers(0, left_hi + 1, n), rng.integers(right_lo, size - w_canvas + 1, n))
    y_lo = max(size - h_canvas - int(round(0.12 * size)), 0)
    return {
        "labels": labels.astype(np.int64),
        "background": background.astype(np.int64),
        "attributes": attributes.astype(np.uint8),
        "lighting": rng.integers(0, 2, n).astype(np.uint8),  # 0 bright, 1 dim
        "position": position.astype(np.uint8),
        "facing": rng.integers(0, 2, n).astype(np.uint8),  # 0 faces right, 1 faces left
        "x0": x0.astype(np.int64),
        "y0": rng.integers(y_lo, size - h_canvas + 1, n).astype(np.int64),
        "subpixel": rng.random((n, 2)).astype(np.float32),
        "scale": (max_scale * rng.uniform(MIN_SCALE, 1.0, n)).astype(np.float32),
        # pose: body length, head raise, stride, tail swing
        "pose": (rng.uniform(-1, 1, (n, 4)) * np.array([0.05, 0.08, 0.12, 0.1])).astype(np.float32),
        "fur_jitter": (rng.normal(1.0, 0.08, (n, 1)) * rng.normal(1.0, 0.02, (n, 3))).astype(np.float32),
        "fur_offset": rng.integers(0, 1 << 30, (n, 2)).astype(np.int64),
        "bg_variant": rng.integers(0, TILE_VARIANTS, n).astype(np.int64),
        "bg_offset": rng.integers(0, 1 << 30, (n, 2)).astype(np.int64),
        "bg_flip": rng.integers(0, 2, n).astype(np.uint8),
        "bg_jitter": (rng.normal(1.0, 0.05, (n, 1)) * rng.normal(1.0, 0.015, (n, 3))).astype(np.float32),
        "light_jitter": rng.normal(0.0, 0.03, n).astype(np.float32),
    }


def concept_annotations(latents: dict[str, np.ndarray], vocabulary: Vocabulary) -> np.ndarray:
    """uint8 (N, K) annotations of the images ``latents`` describe, in vocabulary order, one-hot within every
    attribute pair and group (background, lighting, position)."""
    n = len(latents["labels"])
    idx = vocabulary.index
    out = np.zeros((n, len(vocabulary)), dtype=np.uint8)
    for k, (_, wolf_id, husky_id) in enumerate(ATTRIBUTES):
        out[:, idx(wolf_id)] = latents["attributes"][:, k]
        out[:, idx(husky_id)] = 1 - latents["attributes"][:, k]
    rows = np.arange(n)
    for ids, value in (
        ([c for _, c in BACKGROUNDS], latents["background"]),
        (LIGHTING, latents["lighting"]),
        (POSITION, latents["position"]),
    ):
        out[rows, np.array([idx(c) for c in ids])[value]] = 1
    return out
