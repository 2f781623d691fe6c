"""Texture synthesis of the Snow-and-Wolves world: background tiles (snow, grass, forest floor) and fur grain,
made once per world from its seed and cropped per image.

:func:`smooth_noise` (periodic Gaussian-filtered white noise) and :func:`ramp` (a colour map) are the two
primitives every tile is made of; other procedural images (``testkit/byod_data.py``'s birds) use them too.
"""

from __future__ import annotations

import numpy as np

#: Texture tiles per background.
TILE_VARIANTS = 4


def smooth_noise(rng: np.random.Generator, h: int, w: int, sy: float, sx: float) -> np.ndarray:
    """Periodic Gaussian-filtered white noise with per-axis widths in pixels, scaled to unit std."""
    white = rng.standard_normal((h, w))
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    kernel = np.exp(-2 * np.pi**2 * ((sy * fy) ** 2 + (sx * fx) ** 2))
    out = np.fft.ifft2(np.fft.fft2(white) * kernel).real
    return (out - out.mean()) / (out.std() + 1e-8)


def ramp(x: np.ndarray, *stops: tuple[float, tuple[float, float, float]]) -> np.ndarray:
    """Map a scalar field to RGB by linear interpolation between (position, colour) stops."""
    pos = np.array([p for p, _ in stops])
    cols = np.array([c for _, c in stops])
    return np.stack([np.interp(x, pos, cols[:, k]) for k in range(3)], axis=-1)


def _horizon(rng: np.random.Generator, far: np.ndarray, ground: np.ndarray, size: int, wave: float) -> np.ndarray:
    """Compose a tile: ``far`` scenery above a wavy, anti-aliased horizon at ~40 % of the image height."""
    h, w = far.shape[:2]
    line = 0.42 * size + wave * size * smooth_noise(rng, 1, w, 0, size / 5)[0]
    above = np.clip(line[None, :] - np.arange(h)[:, None], 0.0, 1.0)[..., None]
    return above * far + (1.0 - above) * ground


def _snow_tile(rng: np.random.Generator, h: int, w: int, size: int) -> np.ndarray:
    drift = smooth_noise(rng, h, w, size / 14, size / 4)
    ground = ramp(drift, (-2.0, (0.66, 0.73, 0.86)), (0.0, (0.86, 0.90, 0.96)), (1.5, (0.99, 0.99, 1.0)))
    grain = rng.random((h, w))
    ground[grain < 0.04] = (1.0, 1.0, 1.0)  # sparkles
    ground[grain > 0.985] = (0.62, 0.69, 0.82)  # blue-grey speckles
    hills = smooth_noise(rng, h, w, size / 10, size / 3)
    sky = ramp(hills, (-2.0, (0.72, 0.78, 0.88)), (2.0, (0.90, 0.92, 0.96)))
    return _horizon(rng, sky, ground, size, 0.05)


def _grass_tile(rng: np.random.Generator, h: int, w: int, size: int) -> np.ndarray:
    blades = smooth_noise(rng, h, w, size / 28, 0.45)
    patches = smooth_noise(rng, h, w, size / 8, size / 6)
    ground = ramp(
        blades + 0.5 * patches,
        (-2.5, (0.10, 0.28, 0.06)),
        (0.0, (0.28, 0.56, 0.16)),
        (2.5, (0.62, 0.80, 0.30)),
    )
    leaves = smooth_noise(rng, h, w, 1.0, 1.0) + 1.5 * smooth_noise(rng, h, w, size / 12, size / 10)
    bushes = ramp(leaves, (-3.0, (0.04, 0.16, 0.05)), (0.0, (0.13, 0.34, 0.11)), (3.0, (0.36, 0.58, 0.22)))
    return _horizon(rng, bushes, ground, size, 0.08)


def _forest_tile(rng: np.random.Generator, h: int, w: int, size: int) -> np.ndarray:
    soil = smooth_noise(rng, h, w, size / 10, size / 10) + 0.6 * smooth_noise(rng, h, w, 0.8, 0.8)
    ground = ramp(soil, (-2.5, (0.24, 0.15, 0.08)), (0.0, (0.42, 0.28, 0.15)), (2.5, (0.58, 0.42, 0.25)))
    leaf = smooth_noise(rng, h, w, size / 40, size / 30)
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
    bark = smooth_noise(rng, h, w, size / 6, 0.6)
    far = ramp(bark, (-2.5, (0.16, 0.11, 0.06)), (0.0, (0.33, 0.24, 0.14)), (2.5, (0.47, 0.36, 0.22)))
    for _ in range(w // max(size // 5, 1)):  # tree trunks in the distance
        x0, width = rng.uniform(0, w), rng.uniform(0.03, 0.08) * size
        far[:, np.abs(xx[0] - x0) < width] *= 0.62
    return _horizon(rng, far, ground, size, 0.06)


#: One tile maker per background, in the order of :data:`igcore.worlds.snowwolf.sampling.BACKGROUNDS`.
TILE_MAKERS = (_snow_tile, _grass_tile, _forest_tile)


def make_textures(
    rng: np.random.Generator, size: int, canvas: tuple[int, int], background_salience: float, noise_std: float
) -> tuple[np.ndarray, np.ndarray]:
    """Crop views of a world's textures, drawn from ``rng``.

    Returns the background crops (3, tiles, dy, dx, S, S) — tiles are (background, variant, mirrored) of
    size (S + S/4, 3S), pixel noise included — and the animal canvas crops (4, dy, dx, h, w) of the fur
    tile: unit-std fur grain, then RGB pixel noise. ``background_salience`` moves every background's mean
    colour towards their common mean (0: all alike).
    """
    th, tw = size + size // 4, 3 * size
    tiles = np.stack([[make(rng, th, tw, size) for _ in range(TILE_VARIANTS)] for make in TILE_MAKERS])
    means = tiles.mean(axis=(1, 2, 3), keepdims=True)
    tiles += (1.0 - background_salience) * (means.mean(axis=0, keepdims=True) - means)
    tiles += noise_std * rng.standard_normal(tiles.shape)
    tiles = np.stack([tiles, tiles[:, :, :, ::-1]], axis=2)  # (B, V, mirrored, th, tw, 3)
    tiles = np.moveaxis(tiles, -1, 0).reshape(3, -1, th, tw).astype(np.float32)
    crops = np.lib.stride_tricks.sliding_window_view(tiles, (size, size), axis=(2, 3))
    t = 4 * size
    grain = (smooth_noise(rng, t, t, 0.5, 0.5) + 0.6 * rng.standard_normal((t, t))) / 1.17
    fur = np.concatenate([grain[None], noise_std * rng.standard_normal((3, t, t))])
    return crops, np.lib.stride_tricks.sliding_window_view(fur.astype(np.float32), canvas, axis=(1, 2))
