"""Snow and Wolves: a procedural world of huskies and wolves photographed on snow, grass and forest floor.

The world is a benchmark for shortcut learning (DESIGN.md section 4). Six binary animal attributes (eye
colour, tail, face, coat, snout, ears) carry the class: each equals its class's codeword value with
probability ``feature_p``, so no single attribute decides but the six together decide with ~99 %
accuracy. The background is large and salient and, in ``train``/``val``, agrees with the class with
probability ``rho`` (wolf on snow, husky on grass): the shortcut a baseline learns. ``test_train`` and
``test_eval`` (D') have balanced groups; the ``concept_bank`` draws every attribute 50/50, independently of
any class and of the background.

Rendering is a pure function of per-image latents (geometry, pose, attributes, colour jitter, lighting,
texture offsets), vectorised over the batch: each body part is a signed-distance shape evaluated on an
animal canvas for all images at once and anti-aliased from its distance in pixels. Backgrounds, fur
grain and pixel noise are crops of texture tiles made once per world from the seed, so re-rendering
the same latents on another background (a counterfactual) reproduces the animal's pixels exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from igcore.errors import InputError
from igcore.worlds.base import SPLITS, Split, Vocabulary, WorldParams
from igcore.worlds.images import ProgressFn
from igcore.worlds.registry import register_world

VOCABULARY_PATH = Path(__file__).resolve().parents[2] / "assets" / "snowwolf_vocabulary.csv"  # the shipped judgments' too

# (attribute, wolf-typical concept id, husky-typical concept id); latent value 1 = wolf-typical.
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

_TILE_VARIANTS = 4  # texture tiles per background
_CHUNK = 64  # images rendered at once: small enough for the work arrays to stay in cache
_U_RANGE = (-1.65, 2.05)  # animal extent in body units (facing right, v pointing down)
_V_RANGE = (-1.72, 1.30)
_BASE_SCALE = 0.18  # largest animal: pixels per body unit, as a fraction of the image size
_MIN_SCALE = 0.82  # smallest animal relative to the largest


def _rgb(*values: float) -> np.ndarray:
    """Constant colour shaped (3, 1, 1, 1) to broadcast over channel-first (3, n, h, w) arrays."""
    return np.array(values, dtype=np.float32).reshape(3, 1, 1, 1)


# Colours (RGB in [0, 1]).
_EYE = {1: _rgb(0.98, 0.60, 0.05), 0: _rgb(0.40, 0.82, 1.00)}  # amber / ice-blue
_COAT = {  # (top, underside, grain amplitude)
    1: ((0.50, 0.44, 0.37), (0.80, 0.74, 0.63), 0.10),  # grizzled grey-brown
    0: ((0.10, 0.10, 0.12), (0.93, 0.92, 0.90), 0.04),  # black-and-white
}
_MASK_WHITE = _rgb(0.96, 0.96, 0.97)
_DARK = _rgb(0.06, 0.05, 0.05)
# Lighting (index 0 bright sun, 1 dim overcast): contrast gain around mid-grey, brightness bias, tint.
_LIGHT_GAIN = np.array([1.12, 0.72], dtype=np.float32)
_LIGHT_BIAS = np.array([0.07, -0.17], dtype=np.float32)
_LIGHT_TINT = np.array([(1.04, 1.0, 0.93), (0.94, 0.98, 1.06)], dtype=np.float32)


def _codewords(n_classes: int) -> np.ndarray:
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


# ---------------------------------------------------------------------------------------------------
# Texture tiles (made once per world)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, sy: float, sx: float) -> np.ndarray:
    """Periodic Gaussian-filtered white noise with per-axis widths in pixels, scaled to unit std."""
    white = rng.standard_normal((h, w))
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    kernel = np.exp(-2 * np.pi**2 * ((sy * fy) ** 2 + (sx * fx) ** 2))
    out = np.fft.ifft2(np.fft.fft2(white) * kernel).real
    return (out - out.mean()) / (out.std() + 1e-8)


def _ramp(x: np.ndarray, *stops: tuple[float, tuple[float, float, float]]) -> np.ndarray:
    """Map a scalar field to RGB by linear interpolation between (position, colour) stops."""
    pos = np.array([p for p, _ in stops])
    cols = np.array([c for _, c in stops])
    return np.stack([np.interp(x, pos, cols[:, k]) for k in range(3)], axis=-1)


def _horizon(rng: np.random.Generator, far: np.ndarray, ground: np.ndarray, size: int, wave: float) -> np.ndarray:
    """Compose a tile: ``far`` scenery above a wavy, anti-aliased horizon at ~40 % of the image height."""
    h, w = far.shape[:2]
    line = 0.42 * size + wave * size * _smooth_noise(rng, 1, w, 0, size / 5)[0]
    above = np.clip(line[None, :] - np.arange(h)[:, None], 0.0, 1.0)[..., None]
    return above * far + (1.0 - above) * ground


def _snow_tile(rng: np.random.Generator, h: int, w: int, size: int) -> np.ndarray:
    drift = _smooth_noise(rng, h, w, size / 14, size / 4)
    ground = _ramp(drift, (-2.0, (0.66, 0.73, 0.86)), (0.0, (0.86, 0.90, 0.96)), (1.5, (0.99, 0.99, 1.0)))
    grain = rng.random((h, w))
    ground[grain < 0.04] = (1.0, 1.0, 1.0)  # sparkles
    ground[grain > 0.985] = (0.62, 0.69, 0.82)  # blue-grey speckles
    hills = _smooth_noise(rng, h, w, size / 10, size / 3)
    sky = _ramp(hills, (-2.0, (0.72, 0.78, 0.88)), (2.0, (0.90, 0.92, 0.96)))
    return _horizon(rng, sky, ground, size, 0.05)


def _grass_tile(rng: np.random.Generator, h: int, w: int, size: int) -> np.ndarray:
    blades = _smooth_noise(rng, h, w, size / 28, 0.45)
    patches = _smooth_noise(rng, h, w, size / 8, size / 6)
    ground = _ramp(
        blades + 0.5 * patches,
        (-2.5, (0.10, 0.28, 0.06)),
        (0.0, (0.28, 0.56, 0.16)),
        (2.5, (0.62, 0.80, 0.30)),
    )
    leaves = _smooth_noise(rng, h, w, 1.0, 1.0) + 1.5 * _smooth_noise(rng, h, w, size / 12, size / 10)
    bushes = _ramp(leaves, (-3.0, (0.04, 0.16, 0.05)), (0.0, (0.13, 0.34, 0.11)), (3.0, (0.36, 0.58, 0.22)))
    return _horizon(rng, bushes, ground, size, 0.08)


def _forest_tile(rng: np.random.Generator, h: int, w: int, size: int) -> np.ndarray:
    soil = _smooth_noise(rng, h, w, size / 10, size / 10) + 0.6 * _smooth_noise(rng, h, w, 0.8, 0.8)
    ground = _ramp(soil, (-2.5, (0.24, 0.15, 0.08)), (0.0, (0.42, 0.28, 0.15)), (2.5, (0.58, 0.42, 0.25)))
    leaf = _smooth_noise(rng, h, w, size / 40, size / 30)
    hue = rng.integers(0, 3, (h, w))
    leaf_cols = np.array([(0.78, 0.45, 0.12), (0.55, 0.20, 0.08), (0.30, 0.17, 0.07)])
    ground = np.where((leaf > 1.1)[..., None], leaf_cols[hue], ground)
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    for _ in range(w // 6):  # twigs: thin dark segments
        x0, y0 = rng.uniform(0, w), rng.uniform(0.35 * h, h)
        ang, length = rng.uniform(-0.6, 0.6), rng.uniform(0.06, 0.16) * size
        dx, dy = np.cos(ang) * length, np.sin(ang) * length
        t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / (dx * dx + dy * dy), 0, 1)
        dist = np.hypot(xx - x0 - t * dx, yy - y0 - t * dy)
        ground[dist < 0.6] = (0.17, 0.10, 0.05)
    bark = _smooth_noise(rng, h, w, size / 6, 0.6)
    far = _ramp(bark, (-2.5, (0.16, 0.11, 0.06)), (0.0, (0.33, 0.24, 0.14)), (2.5, (0.47, 0.36, 0.22)))
    for _ in range(w // max(size // 5, 1)):  # tree trunks in the distance
        x0, width = rng.uniform(0, w), rng.uniform(0.03, 0.08) * size
        far[:, np.abs(xx[0] - x0) < width] *= 0.62
    return _horizon(rng, far, ground, size, 0.06)


_TILE_MAKERS = (_snow_tile, _grass_tile, _forest_tile)


# ---------------------------------------------------------------------------------------------------
# Signed distances (body units, negative inside); U is (n, 1, w), V is (n, h, 1), parameters scalars or (n, 1, 1)


def _ellipse(U: np.ndarray, V: np.ndarray, cu, cv, a, b) -> np.ndarray:
    du, dv = (U - cu) / a, (V - cv) / b
    return (np.sqrt(du * du + dv * dv) - 1.0) * np.minimum(a, b)


def _capsule(U: np.ndarray, V: np.ndarray, p0, p1, r0, r1) -> np.ndarray:
    """Segment p0→p1 whose radius tapers linearly from r0 to r1 (legs, neck, snout, ears, tail)."""
    du, dv = p1[0] - p0[0], p1[1] - p0[1]
    pu, pv = U - p0[0], V - p0[1]
    t = np.clip((pu * du + pv * dv) / (du * du + dv * dv), 0.0, 1.0)
    eu, ev = pu - t * du, pv - t * dv
    return np.sqrt(eu * eu + ev * ev) - (r0 + (r1 - r0) * t)


def _ring(U: np.ndarray, V: np.ndarray, cu, cv, radius: float, half_width: float) -> np.ndarray:
    du, dv = U - cu, V - cv
    return np.abs(np.sqrt(du * du + dv * dv) - radius) - half_width


def _union(*covers: np.ndarray) -> np.ndarray:
    """Coverage of a union of shapes (pointwise maximum, broadcasting)."""
    out = covers[0]
    for c in covers[1:]:
        out = np.maximum(out, c)
    return out


class SnowWolfParams(WorldParams):
    """The ``world.*`` keys of the Snow-and-Wolves world."""

    name: Literal["snowwolf"] = Field("snowwolf", description="the data source: snowwolf (procedural) or a loader of your own data (see docs/BYOD.md)")
    rho: float = Field(0.99, ge=0.5, le=1.0, description="P(typical background | class) in train/val; 0.99 = nearly every wolf on snow (the story)")
    image_size: int = Field(64, ge=32, le=512, description="side of the square RGB images in pixels")
    n_classes: int = Field(2, ge=2, le=len(CLASS_NAMES), description="2 (husky, wolf) up to 6 (adds fox, coyote, jackal, dingo)")
    n_train: int = Field(2000, ge=1, description="images in train (D)")
    n_val: int = Field(1000, ge=1, description="images in val (D's distribution, model selection)")
    n_test_train: int = Field(3000, ge=1, description="images in test_train (D', unlabelled for the engine)")
    n_test_eval: int = Field(1500, ge=1, description="images in test_eval (D' labels, evaluation only)")
    n_concept_bank: int = Field(3000, ge=1, description="images in the concept bank (concepts decorrelated from class and background)")
    feature_p: float = Field(0.9, gt=0.5, le=1.0, description="P(an attribute takes its class's typical value); 0.5 carries no signal")
    background_salience: float = Field(
        1.0, ge=0.0, le=1.0, description="1 keeps the backgrounds' own colours, 0 gives every background the same mean colour"
    )
    animal_scale: float = Field(1.2, ge=0.6, le=1.2, description="animal size relative to the default (1.2: features legible at 64 px)")
    noise_std: float = Field(0.03, ge=0.0, le=0.2, description="per-pixel Gaussian noise baked into the textures")


@register_world("snowwolf", SnowWolfParams)
class SnowWolfWorld:
    """Huskies and wolves (and optionally more canids) on snow, grass and forest floor.

    Args:
        params: the validated ``world.*`` keys (:class:`SnowWolfParams`).
        seed: every split and texture is a deterministic function of it.
        progress: unused: rendering happens split by split, when a split is first asked for.
    """

    name = "snowwolf"
    can_render = True  # procedural: the same animal can be re-drawn on any background (counterfactuals)

    def __init__(self, params: SnowWolfParams, seed: int = 0, progress: ProgressFn | None = None) -> None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise InputError(f"seed must be a non-negative integer, got {seed!r}")
        self.params = params
        self.seed = int(seed)
        self.rho = params.rho
        self.image_size = params.image_size
        self.n_classes = params.n_classes
        self.sizes = {
            split: getattr(params, key)
            for split, key in zip(SPLITS, ("n_train", "n_val", "n_test_train", "n_test_eval", "n_concept_bank"), strict=True)
        }
        self.feature_p = params.feature_p
        self.background_salience = params.background_salience
        self.animal_scale = params.animal_scale
        self.noise_std = params.noise_std

        self.classes = list(CLASS_NAMES[: self.n_classes])
        self.backgrounds = [b for b, _ in BACKGROUNDS]
        self.vocabulary = Vocabulary.from_csv(VOCABULARY_PATH)
        needed = [c for _, w, h in ATTRIBUTES for c in (w, h)] + [c for _, c in BACKGROUNDS] + [*LIGHTING, *POSITION]
        missing = [c for c in needed if c not in self.vocabulary.ids]
        if missing:
            raise InputError(f"{VOCABULARY_PATH}: the snowwolf vocabulary lacks concepts {', '.join(missing)}")
        self.codewords = _codewords(self.n_classes)
        self.typical_background = np.array(TYPICAL_BACKGROUND[: self.n_classes], dtype=np.int64)

        # Canvas (in pixels) that holds the largest animal, and the per-world textures.
        self._max_scale = _BASE_SCALE * self.animal_scale * self.image_size
        self._canvas = (
            int(np.ceil((_V_RANGE[1] - _V_RANGE[0]) * self._max_scale)) + 4,
            int(np.ceil((_U_RANGE[1] - _U_RANGE[0]) * self._max_scale)) + 4,
        )
        self._tiles: np.ndarray | None = None
        self._fur: np.ndarray | None = None
        self._cache: dict[str, Split] = {}
        self.notes: list[str] = []

    # -- public API ---------------------------------------------------------------------------------

    def split(self, name: str) -> Split:
        """Split ``name`` (one of :data:`SPLITS`), generated on first use and cached."""
        if name not in SPLITS:
            raise InputError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
        if name not in self._cache:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, SPLITS.index(name)]))
            self._cache[name] = self._make_split(name, self._sample_latents(name, rng))
        return self._cache[name]

    def render_on_background(self, split: Split, background: np.ndarray) -> Split:
        """The same animals (attributes, pose, position, colours, lighting, noise) on ``background``.

        Pixels inside the animal mask are identical to the original's; only the background (and the
        soft anti-aliased fringe just outside the mask) changes.
        """
        background = np.asarray(background)
        if background.shape != (len(split),) or not np.issubdtype(background.dtype, np.integer):
            raise InputError(f"background must be an integer array of shape ({len(split)},), got {background.shape}")
        if len(background) and (background.min() < 0 or background.max() >= len(self.backgrounds)):
            raise InputError(f"background indices must be in [0, {len(self.backgrounds) - 1}]")
        if "attributes" not in split.latents:
            raise InputError(f"split {split.name!r} has no snowwolf latents; only snowwolf splits can be re-rendered")
        latents = dict(split.latents)
        latents["background"] = background.astype(np.int64)
        return self._make_split(f"{split.name}/counterfactual", latents)

    def group_names(self) -> list[str]:
        """``class/background`` in group-id order (``label * n_backgrounds + background``)."""
        return [f"{c}/{b}" for c in self.classes for b in self.backgrounds]

    # -- sampling -----------------------------------------------------------------------------------

    def _sample_latents(self, name: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Every random choice of a split, drawn in a fixed order from the split's own generator."""
        n, n_bg, n_attr = self.sizes[name], len(self.backgrounds), len(ATTRIBUTES)
        if name in ("train", "val"):
            labels = rng.integers(0, self.n_classes, n)
            typical = self.typical_background[labels]
            other = (typical + rng.integers(1, n_bg, n)) % n_bg  # uniform over the atypical backgrounds
            background = np.where(rng.random(n) < self.rho, typical, other)
        elif name in ("test_train", "test_eval"):
            groups = rng.permutation(np.arange(n) % (self.n_classes * n_bg))  # balanced groups
            labels, background = groups // n_bg, groups % n_bg
        else:  # concept bank: no class; attributes and background independent
            labels = np.full(n, -1, dtype=np.int64)
            background = rng.integers(0, n_bg, n)
        if name == "concept_bank":
            attributes = (rng.random((n, n_attr)) < 0.5).astype(np.uint8)
        else:
            flips = (rng.random((n, n_attr)) >= self.feature_p).astype(np.uint8)
            attributes = self.codewords[labels] ^ flips

        size = self.image_size
        h_canvas, w_canvas = self._canvas
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
            "scale": (self._max_scale * rng.uniform(_MIN_SCALE, 1.0, n)).astype(np.float32),
            # pose: body length, head raise, stride, tail swing
            "pose": (rng.uniform(-1, 1, (n, 4)) * np.array([0.05, 0.08, 0.12, 0.1])).astype(np.float32),
            "fur_jitter": (rng.normal(1.0, 0.08, (n, 1)) * rng.normal(1.0, 0.02, (n, 3))).astype(np.float32),
            "fur_offset": rng.integers(0, 1 << 30, (n, 2)).astype(np.int64),
            "bg_variant": rng.integers(0, _TILE_VARIANTS, n).astype(np.int64),
            "bg_offset": rng.integers(0, 1 << 30, (n, 2)).astype(np.int64),
            "bg_flip": rng.integers(0, 2, n).astype(np.uint8),
            "bg_jitter": (rng.normal(1.0, 0.05, (n, 1)) * rng.normal(1.0, 0.015, (n, 3))).astype(np.float32),
            "light_jitter": rng.normal(0.0, 0.03, n).astype(np.float32),
        }

    def _make_split(self, name: str, latents: dict[str, np.ndarray]) -> Split:
        labels, background = latents["labels"], latents["background"]
        n = len(labels)
        size = self.image_size
        images = np.empty((n, size, size, 3), dtype=np.uint8)
        masks = np.empty((n, size, size), dtype=bool)
        for start in range(0, n, _CHUNK):
            chunk = slice(start, start + _CHUNK)
            self._render({k: v[chunk] for k, v in latents.items()}, images[chunk], masks[chunk])
        groups = np.where(labels >= 0, labels * len(self.backgrounds) + background, -1)
        # The left/right annotation says where the animal's body actually is (mask centroid), which at
        # large animal scales can differ from the half its canvas was placed in.
        area = np.maximum(masks.sum((1, 2)), 1)
        centroid_x = (masks.sum(1) * np.arange(masks.shape[2])).sum(1) / area
        latents["position"] = (centroid_x > masks.shape[2] / 2).astype(np.uint8)
        return Split(name, images, labels, self._concepts(latents), background, masks, groups, latents)

    def _concepts(self, latents: dict[str, np.ndarray]) -> np.ndarray:
        """uint8 (N, K) annotations in vocabulary order, one-hot within every attribute pair/group."""
        n = len(latents["labels"])
        idx = self.vocabulary.index
        out = np.zeros((n, len(self.vocabulary)), dtype=np.uint8)
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

    # -- rendering ----------------------------------------------------------------------------------

    def _textures(self) -> tuple[np.ndarray, np.ndarray]:
        """Crop views of the per-world textures, made once from the seed.

        Returns the background crops (3, tiles, dy, dx, S, S) — tiles are (background, variant, mirrored)
        of size (S + S/4, 3S), pixel noise included — and the animal canvas crops (4, dy, dx, h, w) of the
        fur tile: unit-std fur grain, then RGB pixel noise.
        """
        if self._tiles is None or self._fur is None:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, len(SPLITS)]))
            size = self.image_size
            th, tw = size + size // 4, 3 * size
            tiles = np.stack([[make(rng, th, tw, size) for _ in range(_TILE_VARIANTS)] for make in _TILE_MAKERS])
            means = tiles.mean(axis=(1, 2, 3), keepdims=True)
            tiles += (1.0 - self.background_salience) * (means.mean(axis=0, keepdims=True) - means)
            tiles += self.noise_std * rng.standard_normal(tiles.shape)
            tiles = np.stack([tiles, tiles[:, :, :, ::-1]], axis=2)  # (B, V, mirrored, th, tw, 3)
            tiles = np.moveaxis(tiles, -1, 0).reshape(3, -1, th, tw).astype(np.float32)
            self._tiles = np.lib.stride_tricks.sliding_window_view(tiles, (size, size), axis=(2, 3))
            t = 4 * size
            grain = (_smooth_noise(rng, t, t, 0.5, 0.5) + 0.6 * rng.standard_normal((t, t))) / 1.17
            fur = np.concatenate([grain[None], self.noise_std * rng.standard_normal((3, t, t))])
            self._fur = np.lib.stride_tricks.sliding_window_view(fur.astype(np.float32), self._canvas, axis=(1, 2))
        return self._tiles, self._fur

    def _window(self, u: tuple[float, float], v: tuple[float, float]) -> tuple[slice, slice]:
        """Canvas rows/columns that can contain body-unit box ``u`` × ``v`` for any scale and subpixel shift."""
        h, w = self._canvas
        out = []
        for (lo, hi), rng_, n_px in ((v, _V_RANGE, h), (u, _U_RANGE, w)):
            mid = 0.5 * (rng_[0] + rng_[1])
            ends = [n_px / 2 + (x - mid) * s for x in (lo, hi) for s in (_MIN_SCALE * self._max_scale, self._max_scale)]
            out.append(slice(max(int(np.floor(min(ends))) - 1, 0), min(int(np.ceil(max(ends))) + 2, n_px)))
        return out[0], out[1]

    def _render(self, lat: dict[str, np.ndarray], images: np.ndarray, masks: np.ndarray) -> None:
        """Draw a chunk of latents into ``images`` uint8 (n, S, S, 3) and ``masks`` bool (n, S, S).

        Work arrays are channel-first (3, n, ...) so that every numpy loop runs over long rows.
        """
        tiles, fur = self._textures()
        n = len(lat["labels"])
        rows = np.arange(n)

        # Background: a crop of the image's (possibly mirrored) tile, with a per-image tint.
        tile = (lat["background"] * _TILE_VARIANTS + lat["bg_variant"]) * 2 + lat["bg_flip"]
        oy = lat["bg_offset"][:, 0] % tiles.shape[2]
        ox = lat["bg_offset"][:, 1] % tiles.shape[3]
        # (fancy indexing of a window view returns the crops channel-last in memory: make them channel-first)
        image = np.ascontiguousarray(tiles[:, tile, oy, ox])
        image *= lat["bg_jitter"].T[:, :, None, None]

        # Animal: drawn on a canvas in its own frame (facing right), mirrored when it faces left.
        rgb, alpha, shadow = self._render_animal(lat, fur)
        left = np.flatnonzero(lat["facing"] == 1)
        rgb[:, left] = rgb[:, left, :, ::-1]
        alpha[left] = alpha[left, :, ::-1]
        shadow[left] = shadow[left, :, ::-1]
        windows = np.lib.stride_tricks.sliding_window_view(image, self._canvas, axis=(2, 3), writeable=True)
        region = np.ascontiguousarray(windows[:, rows, lat["y0"], lat["x0"]])
        region *= 1.0 - 0.35 * shadow
        # Inside the mask (coverage >= 0.5) the animal is opaque: its pixels never depend on the background.
        rgb -= region
        rgb *= np.minimum(2.0 * alpha, 1.0)
        region += rgb
        windows[:, rows, lat["y0"], lat["x0"]] = region  # windows of one image never overlap
        masks[:] = False
        mask_windows = np.lib.stride_tricks.sliding_window_view(masks, self._canvas, axis=(1, 2), writeable=True)
        mask_windows[rows, lat["y0"], lat["x0"]] = alpha >= 0.5

        # Lighting (global contrast, brightness, colour temperature), folded into one affine map to 0..255.
        light = lat["lighting"]
        gain = _LIGHT_GAIN[light][:, None] * _LIGHT_TINT[light]  # (n, 3)
        bias = 0.5 + _LIGHT_BIAS[light][:, None] + lat["light_jitter"][:, None] - 0.5 * gain
        image *= 255.0 * gain.T[:, :, None, None]
        image += 255.0 * bias.T[:, :, None, None] + 0.5  # + 0.5: the uint8 cast below truncates
        np.clip(image, 0.0, 255.0, out=image)
        for c in range(3):  # channel by channel: much faster than one strided transposing copy
            np.copyto(images[..., c], image[c], casting="unsafe")

    def _render_animal(self, lat: dict[str, np.ndarray], fur: np.ndarray) -> tuple[np.ndarray, ...]:
        """Colour (3, n, h, w), coverage (n, h, w) and ground shadow (n, h, w) of the animals on the canvas.

        Each group of parts is evaluated only on the canvas window that can contain it (:meth:`_window`).
        """
        n = len(lat["labels"])
        h, w = self._canvas

        def col(x: np.ndarray) -> np.ndarray:  # per-image scalar, broadcastable over the canvas
            return np.asarray(x, dtype=np.float32).reshape(n, 1, 1)

        def pick(flag: np.ndarray, yes: float, no: float) -> np.ndarray:  # per-image choice of a constant
            return np.where(flag == 1, np.float32(yes), np.float32(no))

        s = col(lat["scale"])
        # Body origin in canvas pixels: the animal's extent is centred on the canvas, plus a subpixel shift.
        ou = w / 2 - 0.5 * (_U_RANGE[0] + _U_RANGE[1]) * s + col(lat["subpixel"][:, 0] - 0.5)
        ov = h / 2 - 0.5 * (_V_RANGE[0] + _V_RANGE[1]) * s + col(lat["subpixel"][:, 1] - 0.5)
        U_all = ((np.arange(w, dtype=np.float32)[None, None, :] + 0.5) - ou) / s
        V_all = ((np.arange(h, dtype=np.float32)[None, :, None] + 0.5) - ov) / s

        def cover(d: np.ndarray) -> np.ndarray:  # anti-aliased coverage from a distance in body units
            d = d * -s
            d += 0.5
            return np.clip(d, 0.0, 1.0, out=d)

        attr = {a: lat["attributes"][:, k] for k, (a, _, _) in enumerate(ATTRIBUTES)}
        wolfish = {a: col(v) for a, v in attr.items()}
        bl, hd, stride, swing = (col(lat["pose"][:, k]) for k in range(4))
        bl = bl + np.float32(1.0)

        # Coat colour field: dark top with a darker saddle, light underside rising to the throat, grain.
        coat = attr["coat"]
        top = np.where(coat[:, None] == 1, _COAT[1][0], _COAT[0][0]).astype(np.float32)
        under = np.where(coat[:, None] == 1, _COAT[1][1], _COAT[0][1]).astype(np.float32)
        top, under = (c * lat["fur_jitter"] for c in (top, under))
        amp = np.where(coat == 1, _COAT[1][2], _COAT[0][2]).astype(np.float32)
        fur = np.ascontiguousarray(
            fur[:, lat["fur_offset"][:, 0] % fur.shape[1], lat["fur_offset"][:, 1] % fur.shape[2]]
        )
        grain, noise = fur[0] * amp[:, None, None], fur[1:]
        split_line = 0.1 - 0.55 * np.clip(U_all - 0.35 * bl, 0.0, 0.6)
        softness = col(np.where(coat == 1, 0.2, 0.06))
        t = np.clip((V_all - split_line) / softness + 0.5, 0.0, 1.0)
        saddle = np.clip((-0.12 - V_all) / 0.2, 0.0, 1.0) * np.clip((0.5 * bl - U_all) / 0.3, 0.0, 1.0)
        top_rgb = top.T[:, :, None, None] + grain
        coat_rgb = top_rgb + t * (under - top).T[:, :, None, None] - 0.12 * saddle

        acc = np.zeros((3, n, h, w), dtype=np.float32)
        alpha = np.zeros((n, h, w), dtype=np.float32)

        def layer(win: tuple[slice, slice], colour: np.ndarray, coverage: np.ndarray, shade: float = 1.0) -> None:
            """Premultiplied 'over' compositing of one part onto canvas window ``win``, in place."""
            rs, cs = win
            a = acc[:, :, rs, cs]
            if colour.shape[2] > 1:  # a colour field over the whole canvas
                colour = colour[:, :, rs, cs]
            a += (colour * shade - a) * coverage
            al = alpha[:, rs, cs]
            al += (1.0 - al) * coverage

        def uv(win: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
            return U_all[:, :, win[1]], V_all[:, win[0], :]

        # Far legs (shaded): behind everything.
        win = self._window((-1.05, 0.8), (-0.1, 1.2))
        U, V = uv(win)
        hind_far_knee = (-0.62 * bl + 0.5 * stride, 0.6)
        far_legs = _union(
            cover(_capsule(U, V, (0.45 * bl, 0.1), (0.4 * bl - stride, 1.06), 0.13, 0.09)),
            cover(_capsule(U, V, (-0.5 * bl, 0.05), hind_far_knee, 0.18, 0.1)),
            cover(_capsule(U, V, hind_far_knee, (-0.55 * bl + stride, 1.06), 0.1, 0.09)),
        )
        layer(win, coat_rgb, far_legs, 0.72)

        # Straight bushy tail hanging down behind the hind legs.
        win = self._window((-1.6, -0.75), (-0.35, 0.95))
        U, V = uv(win)
        tail = cover(_capsule(U, V, (-0.95 * bl, -0.2), (-1.22 * bl + swing, 0.72), 0.11, 0.19))
        layer(win, top_rgb, tail * wolfish["tail"], 1.08)

        # Far ear, behind the head.
        hx, hy = 1.08 * bl, -0.72 + hd  # head centre
        pointed = 1.0 - wolfish["ears"]
        win = self._window((0.6, 1.3), (-1.7, -0.5))
        U, V = uv(win)
        ear = np.where(
            pointed == 1,
            _capsule(U, V, (hx - 0.17, hy - 0.16), (hx - 0.25, hy - 0.8), 0.14, 0.02),
            _capsule(U, V, (hx - 0.19, hy - 0.18), (hx - 0.22, hy - 0.33), 0.13, 0.11),
        )
        layer(win, top_rgb, cover(ear), 0.7)

        # Torso, near legs, neck, head and snout: one layer in the coat colour field, whose coverage is
        # accumulated from three smaller windows.
        long_snout = wolfish["snout"]
        snout_tip = (hx + 0.1 + pick(long_snout, 0.62, 0.24), hy + 0.14)
        snout_r = (pick(long_snout, 0.14, 0.17), pick(long_snout, 0.08, 0.14))
        body = np.zeros((n, h, w), dtype=np.float32)

        def add(win: tuple[slice, slice], coverage: np.ndarray) -> None:
            view = body[:, win[0], win[1]]
            np.maximum(view, coverage, out=view)

        win = self._window((-1.25, 1.2), (-0.55, 0.6))
        U, V = uv(win)
        add(
            win,
            _union(
                cover(_ellipse(U, V, 0.0, 0.0, 1.0 * bl, 0.4)),
                cover(_ellipse(U, V, 0.55 * bl, 0.04, 0.42, 0.43)),
                cover(_ellipse(U, V, -0.62 * bl, 0.0, 0.42, 0.38)),
            ),
        )
        win = self._window((-1.1, 1.05), (-0.2, 1.25))
        U, V = uv(win)
        hind_knee = (-0.78 * bl - 0.5 * stride, 0.62)
        add(
            win,
            _union(
                cover(_capsule(U, V, (0.6 * bl, 0.1), (0.66 * bl + stride, 1.1), 0.15, 0.095)),
                cover(_capsule(U, V, (-0.62 * bl, 0.05), hind_knee, 0.2, 0.11)),
                cover(_capsule(U, V, hind_knee, (-0.7 * bl - stride, 1.1), 0.1, 0.095)),
            ),
        )
        win = self._window((0.25, 2.0), (-1.1, 0.3))
        U, V = uv(win)
        add(
            win,
            _union(
                cover(_capsule(U, V, (0.62 * bl, -0.12), (0.98 * bl, -0.58 + hd), 0.3, 0.22)),
                cover(_ellipse(U, V, hx, hy, 0.3, 0.27)),
                cover(_capsule(U, V, (hx + 0.1, hy + 0.06), snout_tip, *snout_r)),
            ),
        )
        win = self._window((-1.25, 2.0), (-1.1, 1.25))
        layer(win, coat_rgb, body[:, win[0], win[1]])

        # Curled tail: a ring over the back (its hole shows the background).
        win_curl = self._window((-1.15, -0.25), (-1.05, -0.25))
        U, V = uv(win_curl)
        curl = cover(_ring(U, V, -0.72 * bl, -0.66, 0.26, 0.11))
        layer(win_curl, top_rgb, curl * (1.0 - wolfish["tail"]), 1.15)

        # Head details: near ear, white facial mask, nose, eye with a dark rim.
        win_head = self._window((0.6, 2.0), (-1.7, -0.3))
        U, V = uv(win_head)
        ear = np.where(
            pointed == 1,
            _capsule(U, V, (hx - 0.04, hy - 0.18), (hx - 0.04, hy - 0.86), 0.15, 0.02),
            _capsule(U, V, (hx - 0.06, hy - 0.2), (hx - 0.07, hy - 0.36), 0.14, 0.12),
        )
        layer(win_head, top_rgb, cover(ear), 0.92)
        snout = _capsule(U, V, (hx + 0.1, hy + 0.06), snout_tip, *snout_r)
        ex, ey = hx + 0.12, hy - 0.05  # eye centre
        region = _union(cover((hy - 0.03) - V), cover(_ellipse(U, V, ex, ey, 0.3, 0.25)), cover(snout))
        face = np.minimum(cover(np.minimum(_ellipse(U, V, hx, hy, 0.3, 0.27), snout)), region)
        layer(win_head, _MASK_WHITE, face * (1.0 - wolfish["face"]))
        layer(win_head, _DARK, cover(_ellipse(U, V, snout_tip[0], snout_tip[1], 0.1, 0.09)))
        layer(win_head, _DARK, cover(_ellipse(U, V, ex, ey, 0.2, 0.18)))
        eye = np.where(wolfish["eyes"][None] == 1, _EYE[1], _EYE[0])
        layer(win_head, eye, cover(_ellipse(U, V, ex, ey, 0.145, 0.13)))

        # Soft ground shadow under the feet (applied to the background only).
        win = self._window((-1.9, 1.8), (0.9, 1.4))
        U, V = uv(win)
        shadow = np.zeros((n, h, w), dtype=np.float32)
        shadow[:, win[0], win[1]] = 0.8 * cover(_ellipse(U, V, -0.05, 1.12, 1.25, 0.14))

        acc /= np.maximum(alpha, 1e-6)  # un-premultiply: the silhouette's coverage is applied when pasting
        acc += noise
        return acc, alpha, shadow
