"""Contact sheets: look at a world's images, split by split, before trusting any number computed on them.

Works with any :class:`~igcore.worlds.base.World` (it only uses the world contract).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from igcore.errors import InputError
from igcore.worlds.base import SPLITS, World

_PAD = 6
_BG = (255, 255, 255)
_INK = (20, 20, 20)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _caption(world: World, label: int, background: int) -> str:
    cls = world.classes[label] if label >= 0 else "-"
    return f"{cls}/{world.backgrounds[background]}"


#: Thumbnails larger than this (photographs at 224 px) are shrunk to it, so sheets stay a few MB at most.
MAX_TILE = 128


def _tile(img: np.ndarray, scale: int) -> Image.Image:
    """``img`` upscaled ``scale``× with nearest neighbour (pixels stay visible), or shrunk to :data:`MAX_TILE`."""
    tile = Image.fromarray(img)
    side = max(img.shape[0], img.shape[1]) * scale
    if side > MAX_TILE:
        factor = MAX_TILE / max(img.shape[0], img.shape[1])
        return tile.resize((max(1, round(img.shape[1] * factor)), max(1, round(img.shape[0] * factor))), Image.LANCZOS)
    return tile.resize((img.shape[1] * scale, img.shape[0] * scale), Image.NEAREST)


def _sheet(blocks: list[tuple[str, list[tuple[np.ndarray, str]]]], scale: int) -> Image.Image:
    """Draw titled rows of captioned images (see :func:`_tile`)."""
    font, title_font = _font(11), _font(14)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def text_size(text: str, f: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> tuple[int, int]:
        left, top, right, bottom = probe.textbbox((0, 0), text, font=f)
        return int(right - left), int(bottom - top)

    side = max((_tile(img, scale).height for _, items in blocks for img, _ in items), default=1)
    cell_w = max([side] + [text_size(c, font)[0] + 4 for _, items in blocks for _, c in items])
    caption_h = max(text_size("Ag/", font)[1], 1) + 4
    title_h = text_size("Ag", title_font)[1] + 8
    n_cols = max(len(items) for _, items in blocks)
    width = _PAD + n_cols * (cell_w + _PAD)
    height = _PAD + len(blocks) * (title_h + side + caption_h + 2 * _PAD)
    sheet = Image.new("RGB", (width, height), _BG)
    draw = ImageDraw.Draw(sheet)
    y = _PAD
    for title, items in blocks:
        draw.text((_PAD, y), title, fill=_INK, font=title_font)
        y += title_h
        for k, (img, caption) in enumerate(items):
            x = _PAD + k * (cell_w + _PAD)
            tile = _tile(img, scale)
            sheet.paste(tile, (x + (cell_w - tile.width) // 2, y))
            tw = text_size(caption, font)[0]
            draw.text((x + (cell_w - tw) // 2, y + side + 2), caption, fill=_INK, font=font)
        y += side + caption_h + 2 * _PAD
    return sheet


def spread_over_groups(groups: np.ndarray, k: int) -> np.ndarray:
    """Up to ``k`` row indices taking each group's rows in turn (first rows first), so every group shows."""
    by_group = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    picks: list[int] = []
    depth = 0
    while len(picks) < k and any(depth < len(rows) for rows in by_group):
        picks += [int(rows[depth]) for rows in by_group if depth < len(rows)][: k - len(picks)]
        depth += 1
    return np.array(picks, dtype=np.int64)


def contact_sheet(world: World, out_path: str | Path, per_split: int = 12, scale: int = 2) -> Path:
    """Write one PNG with a block per split: ``per_split`` of its images, spread over its groups, captioned
    ``class/background`` (real images for a user's data set, rendered ones for a procedural world).

    Args:
        world: any world; its splits are generated (or taken from its cache).
        out_path: PNG file to write (parent directories are created).
        per_split: images shown per split.
        scale: integer nearest-neighbour upscaling, so single pixels stay visible.

    Returns:
        The path written.
    """
    if per_split < 1 or scale < 1:
        raise InputError(f"per_split and scale must be positive integers, got {per_split} and {scale}")
    blocks = []
    for name in SPLITS:
        split = world.split(name)
        rows = spread_over_groups(split.groups, per_split)
        items = [(split.images[i], _caption(world, int(split.labels[i]), int(split.background[i]))) for i in rows]
        blocks.append((f"{name}  ({len(split)} images)", items))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    _sheet(blocks, scale).save(out_path)
    return out_path


def counterfactual_strip(
    world: World, out_path: str | Path, n: int = 8, split: str = "test_eval", scale: int = 2
) -> Path:
    """Write a PNG whose rows are the first ``n`` animals of ``split`` re-rendered on every background.

    The first row is the original; each further row is :meth:`World.render_on_background` with one
    background for all images, so the eye can check that only the background changes.
    """
    if n < 1 or scale < 1:
        raise InputError(f"n and scale must be positive integers, got {n} and {scale}")
    original = world.split(split)
    original = original.subset(np.arange(min(n, len(original))))
    rows = [("original", original)]
    for b, bg in enumerate(world.backgrounds):
        rows.append((f"on {bg}", world.render_on_background(original, np.full(len(original), b, dtype=np.int64))))
    blocks = [
        (title, [(s.images[i], _caption(world, int(s.labels[i]), int(s.background[i]))) for i in range(len(s))])
        for title, s in rows
    ]
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    _sheet(blocks, scale).save(out_path)
    return out_path
