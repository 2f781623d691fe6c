"""Decode a user's image files (and object masks) into one uint8 array, in parallel, with a disk cache.

Used by the loaders of real data (:mod:`igcore.worlds.waterbirds`, :mod:`igcore.worlds.folder`). The
decisions, in one place:

- **Modes.** Any mode PIL opens becomes RGB. Images with transparency (RGBA, LA, P with a transparent
  colour) are composited on white: the colour under a transparent pixel is undefined (often black or
  left-over paint), so dropping alpha would show pixels nobody meant to show; white is how viewers
  display such images. 16-bit greyscale is scaled to 8 bits (``/ 257``) rather than clipped.
- **Orientation.** The EXIF orientation tag is applied (:func:`PIL.ImageOps.exif_transpose`), so the
  pixels are what a person sees in an image viewer. A mask is read in the same *displayed* frame.
- **Geometry** (``resize``). ``"stretch"`` (default) resizes the whole image to ``size × size``,
  ignoring the aspect ratio, as the Waterbirds reference code does (its square ``Resize``), without
  that code's centre crop: no part of the object is ever cut off, at the cost of a mild squash
  (CUB photographs are mostly 4:3). ``"crop"`` resizes the shorter side to ``size`` and takes the
  centre square: no distortion, but objects near the long edges can be cut. Resampling is PIL's
  antialiased bilinear filter; JPEGs are first decoded at a reduced DCT scale (``draft``) that stays at
  least ``size`` on both sides, which makes decoding of large photographs several times faster.
- **Masks** get exactly the same geometry: the crop box is computed in the image's normalised
  coordinates and applied to the mask at the mask's own resolution (so a mask stored at another size
  than its image still lines up), resampled bilinearly as greyscale, then thresholded at > 127 (CUB's
  segmentations are soft greyscale).
- **Cache.** Decoded arrays are saved as ``.npy`` files under ``cache_dir`` (default
  ``$XDG_CACHE_HOME/ig-microscope`` or ``~/.cache/ig-microscope``), keyed by a SHA-256 of the ordered
  (absolute path, size, mtime) of every image and mask file, the output size, the resize policy and
  :data:`CACHE_VERSION`. Changing, touching, adding or reordering a file gives a new key; an entry is
  written atomically (temporary file, then rename) and only counts as a hit once its marker file
  exists. A cache directory that cannot be written is not an error: the arrays are just not saved.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

from igcore.errors import InputError

ResizePolicy = Literal["stretch", "crop"]
RESIZE_POLICIES: tuple[str, ...] = ("stretch", "crop")
ProgressFn = Callable[[int, int], None]

#: Part of every cache key: bump it when decoding changes (modes, geometry, resampling, threshold).
CACHE_VERSION = 1
_ORIENTATION = 0x0112  # EXIF tag
_CHUNK = 32  # images decoded per task: few enough futures, fine-grained enough progress


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/ig-microscope``, or ``~/.cache/ig-microscope`` when XDG_CACHE_HOME is unset."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ig-microscope"


def default_workers() -> int:
    """Threads for decoding: PIL releases the GIL while it decodes and resizes, so threads scale with
    cores; a few more than cores hide file-system latency."""
    return min(32, (os.cpu_count() or 1) + 4)


@dataclass
class LoadInfo:
    """How a load went (for notes, benchmarks and tests)."""

    n: int
    cache: Literal["hit", "miss", "unwritable", "lazy"]
    seconds: float
    key: str
    cache_dir: Path
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------
# One image


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB version of ``img``: transparency composited on white, 16-bit greyscale scaled to 8 bits."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        scaled = np.asarray(img, dtype=np.float32) / 257.0
        img = Image.fromarray(np.clip(scaled + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode in ("LA", "La", "PA", "RGBa") or (img.mode == "L" and "transparency" in img.info):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        white = Image.new("RGB", img.size, (255, 255, 255))
        white.paste(img, mask=img.getchannel("A"))
        return white
    return img if img.mode == "RGB" else img.convert("RGB")


def _box(width: float, height: float, policy: str) -> tuple[float, float, float, float]:
    """Source region (left, top, right, bottom) that the policy maps onto the output square."""
    if policy == "crop":
        side = min(width, height)
        left, top = (width - side) / 2, (height - side) / 2
        return left, top, left + side, top + side
    return 0.0, 0.0, float(width), float(height)


def _open(path: Path, size: int) -> tuple[Image.Image, tuple[int, int], float]:
    """Open ``path`` upright; returns the image, its full-resolution displayed size and the draft scale.

    A JPEG without an orientation tag is decoded at a reduced DCT scale that keeps both sides >= ``size``
    (``scale`` < 1 then); a rotated one is decoded in full so that the geometry stays exact.
    """
    img = Image.open(path)
    full = img.size
    orientation = img.getexif().get(_ORIENTATION, 1)
    scale = 1.0
    if orientation == 1:
        if img.format == "JPEG":
            drafted = img.draft("RGB", (size, size))
            if drafted is not None:
                scale = drafted[1][2] / full[0]
    else:
        with img:  # the transposed copy is independent of the file
            img = ImageOps.exif_transpose(img)
        full = img.size
    return img, full, scale


def decode(
    path: Path, size: int, policy: str = "stretch"
) -> tuple[np.ndarray, tuple[float, float, float, float], tuple[int, int]]:
    """One image as uint8 (size, size, 3), with the source box and displayed size that :func:`decode_mask` needs.

    Raises whatever PIL raises for a missing or unreadable file (the caller collects those).
    """
    img, (width, height), scale = _open(path, size)
    box = _box(width, height, policy)
    with img:
        rgb = _to_rgb(img)
        out = np.asarray(rgb.resize((size, size), Image.Resampling.BILINEAR, box=tuple(b * scale for b in box)))
    return out, box, (width, height)


def decode_mask(
    path: Path, size: int, box: tuple[float, float, float, float], image_size: tuple[int, int]
) -> np.ndarray:
    """The mask of an image decoded by :func:`decode` (its ``box`` and displayed ``image_size``), bool (size, size)."""
    with Image.open(path) as raw:
        mask = ImageOps.exif_transpose(raw)
        if mask.mode != "L":
            mask = _to_rgb(mask).convert("L") if mask.mode in ("P", "RGBA", "LA", "PA") else mask.convert("L")
        sx, sy = mask.size[0] / image_size[0], mask.size[1] / image_size[1]  # a mask stored at another resolution
        mbox = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
        resized = np.asarray(mask.resize((size, size), Image.Resampling.BILINEAR, box=mbox))
    return resized > 127


# ---------------------------------------------------------------------------------------------------
# Many images, with a cache


def _stat_key(
    files: Sequence[Path], mask_files: Sequence[Path] | None, size: int, policy: str
) -> tuple[str, list[int], list[int]]:
    """Cache key over every file's (absolute path, size, mtime); also the indices of missing images and masks."""
    h = hashlib.sha256(json.dumps([CACHE_VERSION, size, policy, mask_files is not None]).encode())
    missing: tuple[list[int], list[int]] = ([], [])
    for i, path in enumerate(files):
        for kind, p in enumerate((path,) if mask_files is None else (path, mask_files[i])):
            try:
                st = os.stat(p)
            except OSError:
                missing[kind].append(i)
                continue
            h.update(f"{os.path.abspath(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32], missing[0], missing[1]


def _read_cache(stem: Path, n: int, size: int, with_masks: bool) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Arrays of a finished cache entry, or None when there is none (or it does not fit)."""
    marker = stem.with_suffix(".json")
    if not marker.exists():
        return None
    try:
        images = np.load(stem.with_suffix(".images.npy"))
        masks = None
        if with_masks:
            packed = np.load(stem.with_suffix(".masks.npy"))
            masks = np.unpackbits(packed, axis=-1, count=size).view(bool)
    except (OSError, ValueError):
        return None
    if images.shape != (n, size, size, 3) or images.dtype != np.uint8:
        return None
    if masks is not None and masks.shape != (n, size, size):
        return None
    return images, masks


def _write_cache(stem: Path, images: np.ndarray, masks: np.ndarray | None, meta: dict) -> bool:
    """Save an entry atomically (marker last); False when the cache directory cannot be written."""
    tmp = f".{uuid.uuid4().hex}.tmp.npy"
    try:
        stem.parent.mkdir(parents=True, exist_ok=True)
        parts = [(".images.npy", images)] + ([] if masks is None else [(".masks.npy", np.packbits(masks, axis=-1))])
        for suffix, array in parts:
            target = stem.with_suffix(suffix)
            scratch = target.with_name(target.name + tmp)
            np.save(scratch, array)
            os.replace(scratch, target)
        marker = stem.with_suffix(".json")
        scratch = marker.with_name(marker.name + tmp)
        scratch.write_text(json.dumps(meta))
        os.replace(scratch, marker)
        return True
    except OSError:
        return False


def load_images(
    files: Sequence[Path],
    size: int,
    *,
    policy: str = "stretch",
    mask_files: Sequence[Path] | None = None,
    display: Sequence[str] | None = None,
    workers: int | None = None,
    cache_dir: Path | None = None,
    progress: ProgressFn | None = None,
    desc: str = "images",
) -> tuple[np.ndarray, np.ndarray | None, LoadInfo]:
    """Decode ``files`` (and ``mask_files``, one per image) into uint8 (N, size, size, 3) and bool (N, size, size).

    The arrays are in the order of ``files``. Each is allocated once and filled in place by a thread
    pool, so peak memory is the output plus one decoded photograph per thread. A second call with the
    same files (unchanged on disk), size and policy reads the arrays from the cache instead.

    Args:
        files: image paths.
        size: side of the square output.
        policy: ``"stretch"`` or ``"crop"`` (see the module docstring).
        mask_files: one mask path per image, or None for no masks.
        display: how to name each file in error messages (default: the path).
        workers: decoding threads (default :func:`default_workers`).
        cache_dir: where the cache lives (default :func:`default_cache_dir`).
        progress: called as ``progress(done, total)`` while decoding (e.g. by the dashboard); a tqdm bar
            is shown on a terminal as well.
        desc: label of the progress bar.

    Raises:
        InputError: naming how many image (or mask) files are missing or unreadable, and the first.
    """
    if policy not in RESIZE_POLICIES:
        raise InputError(f"resize must be one of {', '.join(RESIZE_POLICIES)}, got {policy!r}")
    start = time.perf_counter()
    n = len(files)
    names = list(display) if display is not None else [str(f) for f in files]
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key, missing, missing_masks = _stat_key(files, mask_files, size, policy)
    if missing:
        _raise_unreadable("image", missing, names)
    if missing_masks and mask_files is not None:
        _raise_unreadable("mask", missing_masks, [str(mask_files[i]) for i in range(n)])
    stem = cache_dir / f"{desc.replace(' ', '_')}-{key}"
    cached = _read_cache(stem, n, size, mask_files is not None)
    if cached is not None:
        if progress:
            progress(n, n)
        return cached[0], cached[1], LoadInfo(n, "hit", time.perf_counter() - start, key, cache_dir)

    images = np.empty((n, size, size, 3), dtype=np.uint8)
    masks = np.empty((n, size, size), dtype=bool) if mask_files is not None else None
    decode_into(files, size, policy, images, masks, mask_files=mask_files, names=names, workers=workers,
                progress=progress, desc=desc)
    meta = {"n": n, "size": size, "policy": policy, "version": CACHE_VERSION, "created": time.time()}
    written = _write_cache(stem, images, masks, meta)
    info = LoadInfo(n, "miss" if written else "unwritable", time.perf_counter() - start, key, cache_dir)
    if not written:
        info.notes.append(
            f"the image cache directory {cache_dir} cannot be written; images will be decoded again next time"
        )
    return images, masks, info


def decode_into(
    files: Sequence[Path],
    size: int,
    policy: str,
    images: np.ndarray,
    masks: np.ndarray | None = None,
    *,
    mask_files: Sequence[Path] | None = None,
    names: Sequence[str] | None = None,
    workers: int | None = None,
    progress: ProgressFn | None = None,
    desc: str = "images",
    bar: bool = True,
) -> None:
    """Decode ``files[i]`` into ``images[i]`` (and ``mask_files[i]`` into ``masks[i]``) with a thread pool.

    The one decoding loop of the engine: :func:`load_images` fills a whole data set with it and
    :class:`LazyImages` the rows it is asked for, both through :func:`decode` / :func:`decode_mask`, so
    a lazily decoded image is bit-for-bit the eagerly decoded one.

    Raises:
        InputError: naming how many image (or mask) files are missing or unreadable, and the first.
    """
    n = len(files)
    errors: dict[int, str] = {}
    mask_errors: dict[int, str] = {}

    def work(lo: int, hi: int) -> int:
        # PIL raises many exception types for bad files (OSError, SyntaxError, ValueError, DecompressionBomb...);
        # every one of them means "unreadable" and is reported together with the others.
        for i in range(lo, hi):
            try:
                images[i], box, shown = decode(files[i], size, policy)
            except Exception as exc:  # noqa: BLE001
                errors[i] = f"{type(exc).__name__}: {exc}"
                continue
            if masks is not None and mask_files is not None:
                try:
                    masks[i] = decode_mask(mask_files[i], size, box, shown)
                except Exception as exc:  # noqa: BLE001
                    mask_errors[i] = f"{type(exc).__name__}: {exc}"
        return hi - lo

    done = 0
    with (
        ThreadPoolExecutor(max_workers=workers or default_workers()) as pool,
        tqdm(total=n, desc=f"decoding {desc}", unit="img", disable=None if bar else True, leave=False) as shown_bar,
    ):
        futures = [pool.submit(work, lo, min(lo + _CHUNK, n)) for lo in range(0, n, _CHUNK)]
        for future in as_completed(futures):
            step = future.result()
            done += step
            shown_bar.update(step)
            if progress:
                progress(done, n)
    shown_names = list(names) if names is not None else [str(f) for f in files]
    if errors:
        _raise_unreadable("image", sorted(errors), shown_names, errors)
    if mask_errors and mask_files is not None:
        _raise_unreadable("mask", sorted(mask_errors), [str(p) for p in mask_files], mask_errors)


def _raise_unreadable(kind: str, bad: list[int], names: Sequence[str], errors: dict[int, str] | None = None) -> None:
    """One line: how many ``kind`` files are missing or unreadable, and the first (with PIL's reason)."""
    first = bad[0]
    why = f" ({errors[first]})" if errors else " (no such file)"
    count = f"{len(bad)} {kind} files are" if len(bad) > 1 else f"1 {kind} file is"
    raise InputError(f"{count} missing or unreadable, first: {names[first]}{why}; fix or remove those rows")


def permute_rows(array: np.ndarray, order: np.ndarray) -> None:
    """Reorder ``array`` in place so that ``array[i]`` becomes the old ``array[order[i]]``.

    Follows the permutation's cycles with one row of scratch space, so a multi-GB image array is
    reordered without a second copy of it.
    """
    n = len(order)
    if n != len(array):
        raise ValueError("order must have one entry per row")
    seen = np.zeros(n, dtype=bool)
    for start in range(n):
        if seen[start] or order[start] == start:
            seen[start] = True
            continue
        scratch = array[start].copy()
        i = start
        while True:
            seen[i] = True
            j = int(order[i])
            if j == start:
                array[i] = scratch
                break
            array[i] = array[j]
            i = j


# ---------------------------------------------------------------------------------------------------
# Images decoded on demand (streaming executors)


@dataclass(frozen=True)
class ImageFiles:
    """The files of a data set and how to decode them: what a worker needs to decode any row itself.

    ``files[i]`` (and ``mask_files[i]``) is decoded with :func:`decode` (:func:`decode_mask`) at ``size``
    with ``policy``: the same function the eager path (:func:`load_images`) uses.
    """

    files: tuple[Path, ...]
    size: int
    policy: str = "stretch"
    mask_files: tuple[Path, ...] | None = None
    display: tuple[str, ...] | None = None
    workers: int | None = None

    def check(self) -> None:
        """Refuse missing image or mask files with one line (as :func:`load_images` does), without decoding."""
        if self.policy not in RESIZE_POLICIES:
            raise InputError(f"resize must be one of {', '.join(RESIZE_POLICIES)}, got {self.policy!r}")
        _, missing, missing_masks = _stat_key(self.files, self.mask_files, self.size, self.policy)
        if missing:
            _raise_unreadable("image", missing, self.display or [str(f) for f in self.files])
        if missing_masks and self.mask_files is not None:
            _raise_unreadable("mask", missing_masks, [str(p) for p in self.mask_files])


class LazyImages:
    """Rows of an :class:`ImageFiles` that behave like the uint8 (N, size, size, 3) array (or the bool
    (N, size, size) masks, ``kind="masks"``) of the eager path, decoding only what is read.

    Indexing (``x[i]``, ``x[a:b]``, ``x[index_array]``) decodes those rows and returns a numpy array, so
    code written for arrays — a per-group sample for attributions, chunks of 256 through a model — reads
    just what it uses. :meth:`view` selects rows without decoding (how a world hands out its splits);
    ``np.asarray(x)`` decodes every row (what storing the pixels in a run does). :attr:`paths` is what a
    streaming executor sends to its workers instead of pixels.
    """

    def __init__(self, source: ImageFiles, rows: np.ndarray, kind: Literal["images", "masks"] = "images") -> None:
        if kind == "masks" and source.mask_files is None:
            raise ValueError("these images have no mask files")
        self.source, self.kind = source, kind
        self.rows = np.asarray(rows, dtype=np.int64)

    # -- array-like ---------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        side = self.source.size
        return (len(self.rows), side, side, 3) if self.kind == "images" else (len(self.rows), side, side)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.kind == "images" else bool)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int | slice | np.ndarray | Sequence[int]) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            return self._decode(self.rows[[int(index)]])[0]
        return self._decode(self.rows[index])

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out = self._decode(self.rows)
        return out if dtype is None else out.astype(dtype)

    def astype(self, dtype: Any) -> np.ndarray:
        return np.asarray(self).astype(dtype)

    # -- lazy ---------------------------------------------------------------------------------------
    def view(self, index: slice | np.ndarray) -> LazyImages:
        """The rows ``index`` of this one, still undecoded."""
        return LazyImages(self.source, self.rows[index], self.kind)

    @property
    def paths(self) -> list[str]:
        """The image file of every row, in row order."""
        return [str(self.source.files[r]) for r in self.rows]

    def _decode(self, rows: np.ndarray) -> np.ndarray:
        src, n = self.source, len(rows)
        images = np.empty((n, src.size, src.size, 3), dtype=np.uint8)
        masks = np.empty((n, src.size, src.size), dtype=bool) if self.kind == "masks" else None
        files = [src.files[r] for r in rows]
        decode_into(
            files, src.size, src.policy, images, masks,
            mask_files=None if masks is None or src.mask_files is None else [src.mask_files[r] for r in rows],
            names=None if src.display is None else [src.display[r] for r in rows],
            workers=src.workers, bar=n > 4 * _CHUNK,
        )
        return images if masks is None else masks
