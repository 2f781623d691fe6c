"""Computing attribution maps in batches, and caching them in the run.

Maps are cached under ``<run>/microscope/attributions/<model>/<method>-<key>/part-*.safetensors``
where ``key`` hashes the method's resolved parameters (and the target rule). Each part holds the
test_eval indices it covers (``indices``), the target classes (``targets``) and the (N, H, W) float32
``maps``; new work is written as a new part (temporary file + ``os.replace``), so existing files are
never rewritten and nothing already computed is computed again.
"""

from __future__ import annotations

import functools
import json
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from igcore.architectures import architecture_of
from igcore.baseline import ImageClassifier, to_pixels
from igcore.errors import InputError
from igcore.executors import Executor, Images, LocalExecutor
from igcore.microscope.registry import get_method, params_key
from igcore.runtime import global_rng

#: What the maps explain: the model's own predicted class (the question "why did it say that?").
TARGET_RULE = "predicted"


@dataclass(frozen=True)
class AttributionMaps:
    """Maps for some test_eval images.

    Attributes:
        indices: test_eval row of each map (N,).
        targets: class each map explains (N,), the model's prediction.
        maps: float32 (N, H, W), attributions summed over colour channels.
        computed: how many of the maps were computed by this call (the rest came from the cache).
    """

    indices: np.ndarray
    targets: np.ndarray
    maps: np.ndarray
    computed: int = 0


def compute_maps(
    module: torch.nn.Module,
    images: np.ndarray,
    targets: np.ndarray,
    method: str,
    params: Mapping[str, Any] | None = None,
    *,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    seed: int = 0,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Attribution maps of ``module`` for uint8 images (N, H, W, 3), explaining ``targets``.

    Args:
        module: a :class:`~igcore.baseline.PixelClassifier` ([0, 1] images → logits).
        images: uint8 (N, H, W, 3).
        targets: class per image (N,).
        method: a registered attribution method that applies to the module's architecture.
        params: method parameters (defaults from the registry for the rest).
        batch_size: images per call of the method.
        device: where to compute.
        seed: seeds the random draws of stochastic methods (GradientSHAP).
        rows: the row of each image in its data set (default ``0..N-1``): a stochastic method runs image by
            image with the seed ``(seed, row)``, so a map is the same whatever batch (or worker) computed it.

    Returns:
        float32 (N, H, W) maps.
    """
    spec = get_method(method)
    arch = architecture_of(module)
    if not spec.applies_to(arch):
        raise InputError(f"attribution method {method!r} does not apply to {arch} models (it needs {', '.join(spec.architectures)})")
    resolved = spec.resolve(params, int(images.shape[1]))
    module.eval()
    rows = np.arange(len(images), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    step = 1 if spec.stochastic else batch_size
    out = []
    for start in range(0, len(images), step):
        x = to_pixels(images[start : start + step], device).requires_grad_()
        t = torch.as_tensor(np.asarray(targets[start : start + step]), dtype=torch.long, device=x.device)
        if not spec.stochastic:  # draws nothing: no random state to seed, nothing to wait for
            maps = spec.fn(module, x, t, **resolved)
        else:  # one image at a time, from the process-wide generators seeded for it (captum draws from them)
            drawn = seed * 100_003 + int(rows[start])
            with global_rng(), torch.random.fork_rng(devices=[]), _numpy_seeded(drawn):
                torch.manual_seed(drawn)
                maps = spec.fn(module, x, t, **resolved)
        out.append(maps.detach().float().cpu().numpy())
    h, w = images.shape[1:3]
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, h, w), np.float32)


@contextmanager
def _numpy_seeded(seed: int) -> Iterator[None]:
    """numpy's global RNG seeded for the block and restored after it: captum's GradientShap draws its
    path points with ``np.random.uniform``, so without this the maps differ from run to run."""
    state = np.random.get_state()
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        np.random.set_state(state)


class AttributionCache:
    """Append-only store of attribution maps keyed by (model, method, parameters)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def entry(self, model: str, method: str, params: Mapping[str, Any]) -> Path:
        return self.root / model / f"{method}-{params_key(method, {**params, '_target': TARGET_RULE})}"

    def load(self, model: str, method: str, params: Mapping[str, Any]) -> dict[int, tuple[int, np.ndarray]]:
        """{test_eval index: (target, map)} of everything cached for this key."""
        found: dict[int, tuple[int, np.ndarray]] = {}
        entry = self.entry(model, method, params)
        if not entry.is_dir():
            return found
        for part in sorted(entry.glob("part-*.safetensors")):
            data = load_file(str(part))
            for i, t, m in zip(data["indices"].tolist(), data["targets"].tolist(), data["maps"], strict=True):
                found.setdefault(int(i), (int(t), m))
        return found

    def add(
        self, model: str, method: str, params: Mapping[str, Any], indices: np.ndarray, targets: np.ndarray, maps: np.ndarray
    ) -> Path:
        entry = self.entry(model, method, params)
        entry.mkdir(parents=True, exist_ok=True)
        meta = {"model": model, "method": method, "params": json.dumps(dict(params), sort_keys=True), "target": TARGET_RULE}
        final = entry / f"part-{uuid.uuid4().hex[:12]}.safetensors"
        tmp = entry / f".{final.name}.tmp"
        save_file(
            {
                "indices": np.ascontiguousarray(indices, dtype=np.int64),
                "targets": np.ascontiguousarray(targets, dtype=np.int64),
                "maps": np.ascontiguousarray(maps, dtype=np.float32),
            },
            str(tmp),
            metadata=meta,
        )
        os.replace(tmp, final)
        return final

    def keys(self) -> list[dict[str, str]]:
        """Metadata of every cached (model, method, parameters) entry."""
        out = []
        for part in sorted(self.root.glob("*/*/part-*.safetensors")):
            with safe_open(str(part), "np") as f:
                meta = dict(f.metadata() or {})
            meta["entry"] = str(part.parent.relative_to(self.root))
            if meta not in out:
                out.append(meta)
        return out


class PredictAndAttribute:
    """The per-image work of :func:`maps_for`, run by an executor: the model's answer on each image and the map
    that explains it.

    ``fn(pixels, rows)`` returns float32 (B, 1 + H·W): the target class in the first column, the flattened map
    after it (:func:`unpack_maps` splits them). It holds the classifier, so on ``executor=ray`` the model's
    weights (a trained head or a user's checkpoint) travel to each worker with it.
    """

    def __init__(self, classifier: ImageClassifier, method: str, params: Mapping[str, Any], batch_size: int, seed: int) -> None:
        self.classifier, self.method, self.params = classifier, method, dict(params)
        self.batch_size, self.seed = batch_size, seed

    def __call__(self, pixels: np.ndarray, rows: np.ndarray) -> np.ndarray:
        targets = self.classifier.predict(pixels)
        maps = compute_maps(self.classifier.module_, pixels, targets, self.method, self.params,
                            batch_size=self.batch_size, device=self.classifier.device_, seed=self.seed, rows=rows)
        return np.concatenate([targets[:, None].astype(np.float32), maps.reshape(len(maps), -1)], axis=1)


def unpack_maps(packed: np.ndarray, side: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The targets (N,) and maps (N, H, W) of :class:`PredictAndAttribute`'s output."""
    return packed[:, 0].astype(np.int64), packed[:, 1:].reshape(len(packed), *side).astype(np.float32)


def maps_for(
    cache: AttributionCache,
    model_name: str,
    classifier: ImageClassifier,
    images: Images,
    indices: Sequence[int] | np.ndarray,
    method: str,
    params: Mapping[str, Any] | None = None,
    *,
    batch_size: int = 32,
    seed: int = 0,
    executor: Executor | None = None,
) -> AttributionMaps:
    """Maps of ``classifier`` (called ``model_name`` in the run) for ``images[indices]``, cached.

    ``images`` is the whole test_eval array (or its lazily decoded rows); only indices missing from the cache
    are computed, by ``executor`` (default: this process), each seeded from its index.
    """
    resolved = get_method(method).resolve(params, int(images.shape[1]))
    indices = np.asarray(indices, dtype=np.int64)
    if len(indices) and (indices.min() < 0 or indices.max() >= len(images)):
        raise InputError(f"image indices must be in [0, {len(images) - 1}]")
    cached = cache.load(model_name, method, resolved)
    missing = np.array(sorted({int(i) for i in indices} - set(cached)), dtype=np.int64)
    if len(missing):
        executor = executor or LocalExecutor(progress=False)
        work = functools.partial(PredictAndAttribute, classifier, method, resolved, batch_size, seed)
        packed = executor.map_batches(work, images, batch_size, desc=f"{method} {model_name}", rows=missing, loading=False)
        targets, maps = unpack_maps(packed, tuple(images.shape[1:3]))
        cache.add(model_name, method, resolved, missing, targets, maps)
        for i, t, m in zip(missing.tolist(), targets.tolist(), maps, strict=True):
            cached[i] = (int(t), m)
    h, w = images.shape[1:3]
    maps_out = np.stack([cached[int(i)][1] for i in indices]) if len(indices) else np.zeros((0, h, w), np.float32)
    targets_out = np.array([cached[int(i)][0] for i in indices], dtype=np.int64)
    return AttributionMaps(indices, targets_out, maps_out.astype(np.float32), int(len(missing)))


def attribution_maps(
    run: Any,
    model: str,
    method: str,
    indices: Sequence[int] | np.ndarray,
    params: Mapping[str, Any] | None = None,
    *,
    device: str = "auto",
    batch_size: int = 32,
) -> AttributionMaps:
    """Load (or compute and cache) maps of run model ``model`` for test_eval ``indices``.

    The dashboard's entry point. ``run`` is a :class:`~igcore.store.Run` or a run directory. Parameters
    default to the settings the run's microscope last used for that method (``microscope/info.json``,
    else the run's config, else the registry defaults), so the dashboard hits the maps already computed.

    Raises:
        InputError: unknown run, model or method, a method that does not apply to the model, or
            indices outside test_eval.
    """
    from igcore.store import Run, load_run_dir

    run = run if isinstance(run, Run) else load_run_dir(run)
    model_dir = run.path / "models" / model
    if not model_dir.is_dir():
        have = sorted(p.name for p in (run.path / "models").glob("*") if p.is_dir()) if run.has("models") else []
        raise InputError(f"run {run.run_id!r} has no model {model!r}; it has: {', '.join(have) or '(none)'}")
    get_method(method)
    if params is None:
        params = run_method_params(_latest_settings(run), method)
    cache = AttributionCache(run.path / "microscope" / "attributions")
    side = (run.config.get("world") or {}).get("image_size")  # parameters that follow the image size, resolved as the run did
    resolved = get_method(method).resolve(params, int(side) if side else None)
    cached = cache.load(model, method, resolved)
    idx = np.asarray(indices, dtype=np.int64)
    if all(int(i) in cached for i in idx):  # no model, no images needed
        h, w = next(iter(cached.values()))[1].shape if cached else (0, 0)
        maps = np.stack([cached[int(i)][1] for i in idx]) if len(idx) else np.zeros((0, h, w), np.float32)
        return AttributionMaps(idx, np.array([cached[int(i)][0] for i in idx], dtype=np.int64), maps, 0)
    classifier = ImageClassifier.load(model_dir, device=device)
    images = run.tensors("test_eval")["images"]
    seed = int(run.config.get("seed", 0) or 0)
    return maps_for(cache, model, classifier, images, idx, method, resolved, batch_size=batch_size, seed=seed)


def _latest_settings(run: Any) -> Mapping[str, Any]:
    """The microscope settings last used for the run (``microscope/info.json`` after a recompute), else its config."""
    info = run.path / "microscope" / "info.json"
    if info.is_file():
        try:
            return {"microscope": json.loads(info.read_text())["settings"]}
        except (OSError, ValueError, KeyError):
            pass
    return run.config


def run_method_params(config: Mapping[str, Any], method: str) -> dict[str, Any]:
    """The parameters of ``method`` in a run's config (``microscope.params.<method>``), if any."""
    section = config.get("microscope", {}) if isinstance(config, Mapping) else {}
    return dict(section.get("params", {}).get(method, {}))
