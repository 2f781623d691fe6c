"""The renderer of the Snow-and-Wolves world: per-image latents to pixels and object masks.

Rendering is a pure function of the latents, vectorised over a chunk of images: each body part is a
signed-distance shape (:mod:`~igcore.worlds.snowwolf.raster`) evaluated on an animal canvas for all images at
once and anti-aliased from its distance in pixels; backgrounds, fur grain and pixel noise are crops of the
world's textures (:mod:`~igcore.worlds.snowwolf.textures`), so re-rendering the same latents on another
background reproduces the animal's pixels exactly.
"""

from __future__ import annotations

import numpy as np

from igcore.worlds.base import SPLITS
from igcore.worlds.snowwolf.raster import capsule, ellipse, ring, union
from igcore.worlds.snowwolf.sampling import ATTRIBUTES, MIN_SCALE
from igcore.worlds.snowwolf.textures import TILE_VARIANTS, make_textures

_U_RANGE = (-1.65, 2.05)  # animal extent in body units (facing right, v pointing down)
_V_RANGE = (-1.72, 1.30)
_BASE_SCALE = 0.18  # largest animal: pixels per body unit, as a fraction of the image size


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

class Renderer:
    """Draws a world's images: the canvas that holds its largest animal, and its textures (made on first use).

    Args:
        image_size: side of the square images in pixels.
        animal_scale: animal size relative to the default.
        seed: the world's seed (the textures are a function of it).
        background_salience, noise_std: the world's texture parameters (:func:`make_textures`).
    """

    def __init__(self, image_size: int, animal_scale: float, seed: int, background_salience: float, noise_std: float) -> None:
        self.image_size = image_size
        self.seed = seed
        self.background_salience = background_salience
        self.noise_std = noise_std
        #: pixels per body unit of the largest animal, and the canvas (in pixels) that holds it
        self.max_scale = _BASE_SCALE * animal_scale * image_size
        self.canvas = (
            int(np.ceil((_V_RANGE[1] - _V_RANGE[0]) * self.max_scale)) + 4,
            int(np.ceil((_U_RANGE[1] - _U_RANGE[0]) * self.max_scale)) + 4,
        )
        self._tiles: np.ndarray | None = None
        self._fur: np.ndarray | None = None

    def textures(self) -> tuple[np.ndarray, np.ndarray]:
        """The background and fur crops of :func:`make_textures`, made once from the seed."""
        if self._tiles is None or self._fur is None:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, len(SPLITS)]))
            self._tiles, self._fur = make_textures(rng, self.image_size, self.canvas, self.background_salience, self.noise_std)
        return self._tiles, self._fur

    def window(self, u: tuple[float, float], v: tuple[float, float]) -> tuple[slice, slice]:
        """Canvas rows/columns that can contain body-unit box ``u`` × ``v`` for any scale and subpixel shift."""
        h, w = self.canvas
        out = []
        for (lo, hi), rng_, n_px in ((v, _V_RANGE, h), (u, _U_RANGE, w)):
            mid = 0.5 * (rng_[0] + rng_[1])
            ends = [n_px / 2 + (x - mid) * s for x in (lo, hi) for s in (MIN_SCALE * self.max_scale, self.max_scale)]
            out.append(slice(max(int(np.floor(min(ends))) - 1, 0), min(int(np.ceil(max(ends))) + 2, n_px)))
        return out[0], out[1]

    def draw(self, lat: dict[str, np.ndarray], images: np.ndarray, masks: np.ndarray) -> None:
        """Draw a chunk of latents into ``images`` uint8 (n, S, S, 3) and ``masks`` bool (n, S, S).

        Work arrays are channel-first (3, n, ...) so that every numpy loop runs over long rows.
        """
        tiles, fur = self.textures()
        n = len(lat["labels"])
        rows = np.arange(n)

        # Background: a crop of the image's (possibly mirrored) tile, with a per-image tint.
        tile = (lat["background"] * TILE_VARIANTS + lat["bg_variant"]) * 2 + lat["bg_flip"]
        oy = lat["bg_offset"][:, 0] % tiles.shape[2]
        ox = lat["bg_offset"][:, 1] % tiles.shape[3]
        # (fancy indexing of a window view returns the crops channel-last in memory: make them channel-first)
        image = np.ascontiguousarray(tiles[:, tile, oy, ox])
        image *= lat["bg_jitter"].T[:, :, None, None]

        # Animal: drawn on a canvas in its own frame (facing right), mirrored when it faces left.
        rgb, alpha, shadow = self._animal(lat, fur)
        left = np.flatnonzero(lat["facing"] == 1)
        rgb[:, left] = rgb[:, left, :, ::-1]
        alpha[left] = alpha[left, :, ::-1]
        shadow[left] = shadow[left, :, ::-1]
        windows = np.lib.stride_tricks.sliding_window_view(image, self.canvas, axis=(2, 3), writeable=True)
        region = np.ascontiguousarray(windows[:, rows, lat["y0"], lat["x0"]])
        region *= 1.0 - 0.35 * shadow
        # Inside the mask (coverage >= 0.5) the animal is opaque: its pixels never depend on the background.
        rgb -= region
        rgb *= np.minimum(2.0 * alpha, 1.0)
        region += rgb
        windows[:, rows, lat["y0"], lat["x0"]] = region  # windows of one image never overlap
        masks[:] = False
        mask_windows = np.lib.stride_tricks.sliding_window_view(masks, self.canvas, axis=(1, 2), writeable=True)
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

    def _animal(self, lat: dict[str, np.ndarray], fur: np.ndarray) -> tuple[np.ndarray, ...]:
        """Colour (3, n, h, w), coverage (n, h, w) and ground shadow (n, h, w) of the animals on the canvas.

        Each group of parts is evaluated only on the canvas window that can contain it (:meth:`window`).
        """
        n = len(lat["labels"])
        h, w = self.canvas

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
        win = self.window((-1.05, 0.8), (-0.1, 1.2))
        U, V = uv(win)
        hind_far_knee = (-0.62 * bl + 0.5 * stride, 0.6)
        far_legs = union(
            cover(capsule(U, V, (0.45 * bl, 0.1), (0.4 * bl - stride, 1.06), 0.13, 0.09)),
            cover(capsule(U, V, (-0.5 * bl, 0.05), hind_far_knee, 0.18, 0.1)),
            cover(capsule(U, V, hind_far_knee, (-0.55 * bl + stride, 1.06), 0.1, 0.09)),
        )
        layer(win, coat_rgb, far_legs, 0.72)

        # Straight bushy tail hanging down behind the hind legs.
        win = self.window((-1.6, -0.75), (-0.35, 0.95))
        U, V = uv(win)
        tail = cover(capsule(U, V, (-0.95 * bl, -0.2), (-1.22 * bl + swing, 0.72), 0.11, 0.19))
        layer(win, top_rgb, tail * wolfish["tail"], 1.08)

        # Far ear, behind the head.
        hx, hy = 1.08 * bl, -0.72 + hd  # head centre
        pointed = 1.0 - wolfish["ears"]
        win = self.window((0.6, 1.3), (-1.7, -0.5))
        U, V = uv(win)
        ear = np.where(
            pointed == 1,
            capsule(U, V, (hx - 0.17, hy - 0.16), (hx - 0.25, hy - 0.8), 0.14, 0.02),
            capsule(U, V, (hx - 0.19, hy - 0.18), (hx - 0.22, hy - 0.33), 0.13, 0.11),
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

        win = self.window((-1.25, 1.2), (-0.55, 0.6))
        U, V = uv(win)
        add(
            win,
            union(
                cover(ellipse(U, V, 0.0, 0.0, 1.0 * bl, 0.4)),
                cover(ellipse(U, V, 0.55 * bl, 0.04, 0.42, 0.43)),
                cover(ellipse(U, V, -0.62 * bl, 0.0, 0.42, 0.38)),
            ),
        )
        win = self.window((-1.1, 1.05), (-0.2, 1.25))
        U, V = uv(win)
        hind_knee = (-0.78 * bl - 0.5 * stride, 0.62)
        add(
            win,
            union(
                cover(capsule(U, V, (0.6 * bl, 0.1), (0.66 * bl + stride, 1.1), 0.15, 0.095)),
                cover(capsule(U, V, (-0.62 * bl, 0.05), hind_knee, 0.2, 0.11)),
                cover(capsule(U, V, hind_knee, (-0.7 * bl - stride, 1.1), 0.1, 0.095)),
            ),
        )
        win = self.window((0.25, 2.0), (-1.1, 0.3))
        U, V = uv(win)
        add(
            win,
            union(
                cover(capsule(U, V, (0.62 * bl, -0.12), (0.98 * bl, -0.58 + hd), 0.3, 0.22)),
                cover(ellipse(U, V, hx, hy, 0.3, 0.27)),
                cover(capsule(U, V, (hx + 0.1, hy + 0.06), snout_tip, *snout_r)),
            ),
        )
        win = self.window((-1.25, 2.0), (-1.1, 1.25))
        layer(win, coat_rgb, body[:, win[0], win[1]])

        # Curled tail: a ring over the back (its hole shows the background).
        win_curl = self.window((-1.15, -0.25), (-1.05, -0.25))
        U, V = uv(win_curl)
        curl = cover(ring(U, V, -0.72 * bl, -0.66, 0.26, 0.11))
        layer(win_curl, top_rgb, curl * (1.0 - wolfish["tail"]), 1.15)

        # Head details: near ear, white facial mask, nose, eye with a dark rim.
        win_head = self.window((0.6, 2.0), (-1.7, -0.3))
        U, V = uv(win_head)
        ear = np.where(
            pointed == 1,
            capsule(U, V, (hx - 0.04, hy - 0.18), (hx - 0.04, hy - 0.86), 0.15, 0.02),
            capsule(U, V, (hx - 0.06, hy - 0.2), (hx - 0.07, hy - 0.36), 0.14, 0.12),
        )
        layer(win_head, top_rgb, cover(ear), 0.92)
        snout = capsule(U, V, (hx + 0.1, hy + 0.06), snout_tip, *snout_r)
        ex, ey = hx + 0.12, hy - 0.05  # eye centre
        region = union(cover((hy - 0.03) - V), cover(ellipse(U, V, ex, ey, 0.3, 0.25)), cover(snout))
        face = np.minimum(cover(np.minimum(ellipse(U, V, hx, hy, 0.3, 0.27), snout)), region)
        layer(win_head, _MASK_WHITE, face * (1.0 - wolfish["face"]))
        layer(win_head, _DARK, cover(ellipse(U, V, snout_tip[0], snout_tip[1], 0.1, 0.09)))
        layer(win_head, _DARK, cover(ellipse(U, V, ex, ey, 0.2, 0.18)))
        eye = np.where(wolfish["eyes"][None] == 1, _EYE[1], _EYE[0])
        layer(win_head, eye, cover(ellipse(U, V, ex, ey, 0.145, 0.13)))

        # Soft ground shadow under the feet (applied to the background only).
        win = self.window((-1.9, 1.8), (0.9, 1.4))
        U, V = uv(win)
        shadow = np.zeros((n, h, w), dtype=np.float32)
        shadow[:, win[0], win[1]] = 0.8 * cover(ellipse(U, V, -0.05, 1.12, 1.25, 0.14))

        acc /= np.maximum(alpha, 1e-6)  # un-premultiply: the silhouette's coverage is applied when pasting
        acc += noise
        return acc, alpha, shadow
