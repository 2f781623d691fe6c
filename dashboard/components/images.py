"""Image helpers (pure numpy/PIL): crisp upscaling, attribution overlays with the object's outline,
PNG bytes and data URIs (how the pages and the HTML report inline images)."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

OUTLINE = np.array([0, 229, 255], dtype=np.float32)  # cyan: rare in photographs and drawn scenes alike


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling (keeps pixels crisp instead of blurring a 64×64 image)."""
    if factor <= 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def mask_outline(mask: np.ndarray) -> np.ndarray:
    """Boolean outline of a boolean mask: mask pixels with at least one 4-neighbour outside it."""
    m = np.asarray(mask).astype(bool)
    padded = np.pad(m, 1, constant_values=False)
    inner = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return m & ~inner


def _colormap(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> RGB in [0, 255] on a perceptually ordered dark-purple → orange → yellow ramp."""
    stops = np.array([[0.0, 13, 8, 135], [0.35, 156, 23, 158], [0.65, 237, 121, 83], [1.0, 240, 249, 33]], dtype=np.float32)
    v = np.clip(values, 0.0, 1.0)
    out = np.empty(v.shape + (3,), dtype=np.float32)
    for ch in range(3):
        out[..., ch] = np.interp(v, stops[:, 0], stops[:, ch + 1])
    return out


def normalise_map(attribution: np.ndarray) -> np.ndarray:
    """Positive relevance per pixel scaled to [0, 1] (channels summed; 99th percentile as the top)."""
    a = np.asarray(attribution, dtype=np.float32)
    if a.ndim == 3:
        a = a.sum(axis=-1) if a.shape[-1] in (1, 3) else a.sum(axis=0)
    a = np.clip(a, 0, None)
    top = float(np.percentile(a, 99)) if a.size else 0.0
    return a / top if top > 0 else np.zeros_like(a)


def overlay(image: np.ndarray, attribution: np.ndarray | None = None, mask: np.ndarray | None = None, *, factor: int = 3, alpha: float = 0.6) -> np.ndarray:
    """The image (uint8 HWC), optionally with a relevance heat map blended on top and the object's outline.

    Where relevance is low the photo shows through, so one can see *what* the model looked at.
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if attribution is not None:
        heat = normalise_map(attribution)
        if heat.shape != img.shape[:2]:
            heat = np.asarray(Image.fromarray((heat * 255).astype(np.uint8)).resize(img.shape[1::-1], Image.BILINEAR), dtype=np.float32) / 255
        a = (alpha * np.sqrt(heat))[..., None]
        img = img * 0.55  # dim the photo so the heat map reads
        img = img * (1 - a) + _colormap(heat) * a
    out = upscale(np.clip(img, 0, 255).astype(np.uint8), factor)
    if mask is not None:
        edge = mask_outline(upscale(np.asarray(mask).astype(bool), factor))
        out = out.copy()
        out[edge] = OUTLINE.astype(np.uint8)
    return out


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def data_uri(png: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(png).decode('ascii')}"
