"""Image classifiers built from transformers configs (no download), and their trainer.

One estimator, :class:`ImageClassifier`, trains every image model of the project: the ERM baseline,
the oracle, the IG student (soft targets) and the concept model (multi-label targets). Architectures
come from a small registry of transformers configs (:data:`igcore.architectures.ARCHITECTURES`) or a local checkpoint
directory saved with ``save_pretrained``. Model selection uses a held-out split from the *training*
distribution only (``val``), never D′.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from igcore.architectures import ARCHITECTURE_FAMILIES, ARCHITECTURES, check_architecture
from igcore.errors import InputError
from igcore.runtime import PRECISIONS, global_rng

if TYPE_CHECKING:
    from transformers import PreTrainedModel

# Per-channel statistics of the procedural worlds (close to ImageNet's; fixed so models are portable).
PIXEL_MEAN = (0.5, 0.5, 0.5)
PIXEL_STD = (0.25, 0.25, 0.25)

#: Images per forward pass when a classifier scores images (and per executor batch of :class:`BatchLogits`), and the
#: other forward-only passes' reference (occlusion, discovery's activations and ablations): on a CPU, a pass small
#: enough that a small model's activations stay in the core's cache runs faster than a larger one (128 images of
#: 64 px scored faster than 512 when this was set, one thread, the project's models), with the same logits (a model in
#: eval mode scores every image on its own).
LOGITS_BATCH = 128


@lru_cache(maxsize=1)
def model_library() -> ModuleType:
    """``transformers`` with its modelling code imported (what building, saving or loading a model needs).

    Imported on first use rather than with this module: it takes seconds (``transformers.modeling_utils`` pulls in
    torch's distributed and compiler packages), and what only reads a run's tables (the dashboard's pages, the
    world's drawing) needs none of it."""
    import transformers
    from transformers import modeling_utils  # noqa: F401  (the seconds: every model class imports it)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own tqdm bars report training; no per-save shard bars
    return transformers


def build_model(arch: str, num_labels: int, image_size: int) -> PreTrainedModel:
    """Model for ``arch``: a registered name, or a local directory written by ``save_pretrained``."""
    hf = model_library()
    if check_architecture(arch) in ARCHITECTURES:
        return ARCHITECTURES[arch](num_labels, image_size)
    config = hf.AutoConfig.from_pretrained(arch, local_files_only=True)
    if config.num_labels == num_labels:
        return hf.AutoModelForImageClassification.from_pretrained(arch, local_files_only=True, use_safetensors=True)
    # A new head of num_labels outputs on the checkpoint's body: the head's mismatch is the point, so
    # transformers' load report (a table of "MISMATCH ... Reinit") is not shown.
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return hf.AutoModelForImageClassification.from_pretrained(
            arch, local_files_only=True, use_safetensors=True, num_labels=num_labels, ignore_mismatched_sizes=True
        )
    finally:
        hf_logging.set_verbosity(verbosity)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' requested but no CUDA GPU is available; use --set device=auto")
    return torch.device(device)


@dataclass(frozen=True)
class InputSpec:
    """How a model wants its pixels: per-channel normalisation, an input size, the order of its outputs.

    The project's own models use :data:`PIXEL_MEAN` / :data:`PIXEL_STD` at the world's image size. A user's
    checkpoint brings its own from its image processor (``size``: resized to inside the model, so
    attributions stay at the world's resolution) and its own label order (``columns``: the checkpoint's
    output index of each world class).
    """

    mean: tuple[float, float, float] = PIXEL_MEAN
    std: tuple[float, float, float] = PIXEL_STD
    size: tuple[int, int] | None = None
    columns: tuple[int, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std), "size": None if self.size is None else list(self.size),
                "columns": None if self.columns is None else list(self.columns)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> InputSpec:
        if not data:
            return cls()
        return cls(tuple(data["mean"]), tuple(data["std"]), None if data.get("size") is None else tuple(data["size"]),
                   None if data.get("columns") is None else tuple(data["columns"]))


class PixelClassifier(nn.Module):
    """``[0, 1]`` float images (N, 3, H, W) → logits in the world's class order. The module captum attributes
    through: resizing and normalisation happen inside it (:class:`InputSpec`)."""

    def __init__(self, model: PreTrainedModel, spec: InputSpec | None = None):
        super().__init__()
        self.model = model
        self.spec = spec or InputSpec()
        self.register_buffer("mean", torch.tensor(self.spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.spec.std).view(1, 3, 1, 1), persistent=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        size = self.spec.size
        if size is not None and tuple(pixels.shape[-2:]) != size:
            pixels = nn.functional.interpolate(pixels, size=size, mode="bilinear", align_corners=False, antialias=True)
        logits = self.model(pixel_values=(pixels - self.mean) / self.std).logits
        return logits if self.spec.columns is None else logits[:, list(self.spec.columns)]


def bfloat16_steps_agree(
    module: nn.Module, pixels: torch.Tensor, loss: Callable[[torch.Tensor], torch.Tensor], min_cosine: float = 0.8
) -> bool:
    """Whether a training step of ``module`` in bfloat16 is sound at this input geometry, checked on a copy (the
    module's batch-norm statistics stay untouched): no strided convolution wider than 1×1 sees an input side of one
    pixel, and the gradient of ``loss(logits)`` for every parameter from two bfloat16 passes over one batch is
    bit-identical between them, finite, and points where float32's points (cosine >= ``min_cosine``).

    Why: oneDNN's bfloat16 convolutions have shapes they get wrong. Measured with torch 2.13 on a CPU with AMX: the
    weight gradient of a 3×3, stride-2 convolution whose input is 1×1 (the last ResNet stage of ``resnet-tiny`` on
    16 px images) reads memory it never wrote: different on most calls, sometimes NaN, sometimes right, where
    float32's is exact (at stride 1, or with inputs of 2 pixels and more, it was right in every trial). That is too
    intermittent for a check of results alone, hence the geometry rule. Other shapes have been reported to come out
    wrong but repeatable (pytorch/pytorch#169688), which the cosine catches when the error is gross; sound bfloat16
    gradients of the project's models agree with float32's to a cosine of about 0.93-0.99 at initialisation (8 bits
    of mantissa), hence the threshold. A fit that fails the check trains in float32 (``precision_``)."""
    probe = copy.deepcopy(module).train()
    too_small: list[bool] = []

    def check_geometry(conv: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        too_small.append(any(side == 1 < k and s > 1 for side, k, s in zip(args[0].shape[-2:], conv.kernel_size, conv.stride, strict=True)))

    hooks = [m.register_forward_pre_hook(check_geometry) for m in probe.modules() if isinstance(m, nn.Conv2d)]

    def gradients(bfloat16: bool) -> list[torch.Tensor]:
        probe.zero_grad(set_to_none=True)
        with torch.autocast(pixels.device.type, dtype=torch.bfloat16, enabled=bfloat16):
            logits = probe(pixels)
        loss(logits.float()).backward()
        return [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in probe.parameters()]

    exact = gradients(False)
    for hook in hooks:
        hook.remove()
    if any(too_small):
        return False
    first, second = gradients(True), gradients(True)
    for a, b, ref in zip(first, second, exact, strict=True):
        if not (torch.equal(a, b) and bool(torch.isfinite(a).all())):
            return False
        if float(ref.norm()) > 0 and float(nn.functional.cosine_similarity(a.flatten(), ref.flatten(), dim=0)) < min_cosine:
            return False
    return True


def to_pixels(images: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N, H, W, 3) → float (N, 3, H, W) in [0, 1] on ``device``."""
    t = torch.as_tensor(images).to(device)
    return t.permute(0, 3, 1, 2).float().div_(255.0)


def head_of(model: nn.Module) -> nn.Linear:
    """The linear layer of a transformers image-classification head (ResNet: ``Sequential(Flatten, Linear)``)."""
    head = model.classifier
    linear = head if isinstance(head, nn.Linear) else next((m for m in head.modules() if isinstance(m, nn.Linear)), None)
    if linear is None:
        raise InputError(f"{type(model).__name__} has no linear classification head to train")
    return linear


@torch.inference_mode()
def head_inputs(module: PixelClassifier, images: Any, batch_size: int, device: torch.device | str) -> torch.Tensor:
    """What the classification head of ``module`` reads for uint8 ``images`` (N, H, W, 3): the pooled
    representation (N, D) float32 on ``device``, ``batch_size`` images per forward pass. The penultimate
    features that DFR re-weights and a frozen backbone's features are both this."""
    head = head_of(module.model)
    captured: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda _m, inp, _out: captured.append(inp[0].flatten(1)))
    try:
        for start in range(0, len(images), batch_size):
            module(to_pixels(images[start : start + batch_size], device))
    finally:
        hook.remove()
    return torch.cat(captured).float() if captured else torch.zeros((0, head.in_features), device=device)


class ImageClassifier:
    """Estimator for image models: ``fit(images, targets)`` returns self; learned attributes end in ``_``.

    Targets may be hard labels (N,) int, soft labels (N, C) float (the IG student imitates L_M's
    probabilities), or multi-label 0/1 (N, K) with ``multi_label=True`` (the concept model). The epoch
    with the best score on ``val`` (accuracy, or mean per-label accuracy when multi-label) is kept.

    Args:
        arch: registered architecture name or local checkpoint directory.
        num_labels: number of classes (or concepts when ``multi_label``).
        epochs, batch_size, lr, weight_decay: AdamW with a one-cycle schedule.
        augment: random horizontal flips (the class never depends on the facing direction).
        device: ``auto`` | ``cpu`` | ``cuda``.
        precision: ``float32`` | ``bfloat16``: the arithmetic of the training steps' forward and backward passes
            (``torch.autocast``; weights, optimiser and every evaluation stay float32). The run passes
            :func:`igcore.runtime.training_precision` of ``runtime.precision``.
        seed: seeds initialisation and batch order.
        progress: show a tqdm bar (one tick per batch).
        name: label for the progress bar.
    """

    def __init__(
        self,
        arch: str = "resnet-tiny",
        num_labels: int = 2,
        *,
        image_size: int = 64,
        epochs: int = 6,
        batch_size: int = 128,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        multi_label: bool = False,
        augment: bool = True,
        device: str = "auto",
        precision: str = "float32",
        seed: int = 0,
        progress: bool = True,
        name: str = "model",
    ):
        self.arch = arch
        self.num_labels = num_labels
        self.image_size = image_size
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.multi_label = multi_label
        self.augment = augment
        self.device = device
        self.precision = precision
        self.seed = seed
        self.progress = progress
        self.name = name

    # -- training ---------------------------------------------------------------------------------
    def batch_loss(self, logits: torch.Tensor, targets: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Per-batch objective; ``index`` are the rows of the training set (for reweighting methods)."""
        if self.multi_label:
            return nn.functional.binary_cross_entropy_with_logits(logits, targets.float())
        losses = nn.functional.cross_entropy(logits, targets, reduction="none")
        if self.sample_weight_ is not None:
            w = self.sample_weight_[index]
            return (losses * w).sum() / w.sum()
        return losses.mean()

    def fit(
        self,
        images: np.ndarray,
        targets: np.ndarray,
        val: tuple[np.ndarray, np.ndarray] | None = None,
        sample_weight: np.ndarray | None = None,
    ) -> ImageClassifier:
        if self.precision not in PRECISIONS:
            raise InputError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        device = resolve_device(self.device)
        self.device_ = device
        self.source_: dict[str, Any] = {"trained": True}
        with global_rng(self.seed):  # the initial weights come from torch's process-wide generator
            self.module_ = PixelClassifier(build_model(self.arch, self.num_labels, self.image_size)).to(device)
        generator = torch.Generator().manual_seed(self.seed)
        x_all = torch.as_tensor(images).to(device)  # uint8, converted per batch
        t = torch.as_tensor(targets)
        t = t.float() if (self.multi_label or t.ndim == 2) else t.long()
        t_all = t.to(device)
        self.sample_weight_ = None if sample_weight is None else torch.as_tensor(sample_weight, dtype=torch.float32, device=device)
        n = len(x_all)
        self.precision_ = self.precision
        if self.precision == "bfloat16" and n:  # checked on the first batch; the stage says when it falls back
            first = torch.arange(min(n, self.batch_size), device=device)  # (RunContext.note_precision)
            # the base objective: a subclass's may keep state that every call moves (GroupDRO's group weights)
            loss = functools.partial(ImageClassifier.batch_loss, self, targets=t_all[first], index=first)
            if not bfloat16_steps_agree(self.module_, to_pixels(x_all[first], device), loss):
                self.precision_ = "float32"
        steps_per_epoch = max(1, (n + self.batch_size - 1) // self.batch_size)
        optimizer = torch.optim.AdamW(self.module_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        total_steps = self.epochs * steps_per_epoch
        schedule = (  # one-cycle needs a few steps of warm-up; tiny runs train at a constant rate
            torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=self.lr, total_steps=total_steps, pct_start=0.2)
            if total_steps >= 10
            else torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0)
        )
        self.history_: list[dict[str, float]] = []
        best_score, best_state = -1.0, None
        bar = tqdm(total=self.epochs * steps_per_epoch, desc=f"train {self.name}", disable=not self.progress, leave=False)
        for epoch in range(self.epochs):
            self.module_.train()
            order = torch.randperm(n, generator=generator).to(device)
            total = 0.0
            for start in range(0, n, self.batch_size):
                idx = order[start : start + self.batch_size]
                batch = x_all[idx]  # (B, H, W, 3) uint8
                if self.augment:  # flipped before conversion: a quarter of the bytes of the float images
                    flip = torch.rand(len(idx), generator=generator).to(device) < 0.5
                    batch[flip] = batch[flip].flip(2)
                x = to_pixels(batch, device)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.precision_ == "bfloat16"):
                    logits = self.module_(x)
                loss = self.batch_loss(logits.float(), t_all[idx], idx)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                total += float(loss.detach()) * len(idx)
                bar.update(1)
            record = {"epoch": epoch + 1, "train_loss": total / n}
            if val is not None:
                record["val_score"] = self.score(*val)
                if record["val_score"] > best_score:
                    best_score = record["val_score"]
                    best_state = copy.deepcopy(self.module_.state_dict())
            self.history_.append(record)
            bar.set_postfix({k: round(v, 4) for k, v in record.items() if k != "epoch"})
        bar.close()
        if best_state is not None:
            self.module_.load_state_dict(best_state)
        self.best_epoch_ = (
            max(self.history_, key=lambda r: r.get("val_score", 0.0))["epoch"] if val is not None else self.epochs
        )
        self.module_.eval()
        return self

    # -- inference --------------------------------------------------------------------------------
    @torch.no_grad()
    def logits(self, images: np.ndarray, batch_size: int = LOGITS_BATCH) -> np.ndarray:
        self.module_.eval()
        out = []
        for start in range(0, len(images), batch_size):
            out.append(self.module_(to_pixels(images[start : start + batch_size], self.device_)).float().cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, self.num_labels), np.float32)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        return self.proba(self.logits(images))

    def proba(self, logits: np.ndarray) -> np.ndarray:
        """Probabilities from this model's logits (sigmoid when multi-label, else softmax)."""
        z = torch.from_numpy(np.asarray(logits))
        return (torch.sigmoid(z) if self.multi_label else torch.softmax(z, 1)).numpy()

    def predict(self, images: np.ndarray) -> np.ndarray:
        proba = self.predict_proba(images)
        return (proba > 0.5).astype(np.int64) if self.multi_label else proba.argmax(1)

    def score(self, images: np.ndarray, targets: np.ndarray) -> float:
        """Accuracy (mean per-label accuracy when multi-label; argmax of soft targets otherwise)."""
        pred = self.predict(images)
        targets = np.asarray(targets)
        if not self.multi_label and targets.ndim == 2:
            targets = targets.argmax(1)
        return float((pred == targets).mean())

    # -- persistence ------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """``save_pretrained`` (config.json + model.safetensors) plus the estimator's parameters."""
        directory = Path(directory)
        self.module_.model.save_pretrained(directory, safe_serialization=True)
        init_params = inspect.signature(ImageClassifier.__init__).parameters
        params = {k: v for k, v in vars(self).items() if k in init_params}
        meta = {"estimator": type(self).__name__, "params": params, "history": self.history_, "best_epoch": self.best_epoch_,
                "precision": getattr(self, "precision_", self.precision),
                "input": self.module_.spec.to_dict(), "source": self.source_}
        (directory / "estimator.json").write_text(json.dumps(meta, indent=2))
        return directory

    @classmethod
    def load(cls, directory: str | Path, device: str = "auto") -> ImageClassifier:
        directory = Path(directory)
        meta_path = directory / "estimator.json"
        if not meta_path.is_file():
            raise InputError(f"{str(directory)!r} is not a saved model (no estimator.json)")
        meta: dict[str, Any] = json.loads(meta_path.read_text())
        params = {**meta["params"], "device": device}
        est = cls(**params)
        est.device_ = resolve_device(device)
        model = model_library().AutoModelForImageClassification.from_pretrained(directory, local_files_only=True, use_safetensors=True)
        est.module_ = PixelClassifier(model, InputSpec.from_dict(meta.get("input"))).to(est.device_).eval()
        est.history_, est.best_epoch_ = meta["history"], meta["best_epoch"]
        est.source_ = meta.get("source") or {"trained": True}
        est.sample_weight_ = None
        return est

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint, device: str = "auto", name: str = "erm") -> ImageClassifier:
        """A user's trained classifier, used as it is (no training): see :func:`inspect_checkpoint`."""
        est = cls(arch=str(checkpoint.path), num_labels=len(checkpoint.columns), device=device, name=name, progress=False)
        est.device_ = resolve_device(device)
        model = model_library().AutoModelForImageClassification.from_pretrained(checkpoint.path, local_files_only=True, use_safetensors=True)
        est.module_ = PixelClassifier(model, checkpoint.spec).to(est.device_).eval()
        est.history_, est.best_epoch_ = [], None
        est.source_ = {"trained": False, "checkpoint": checkpoint.name, "labels": checkpoint.labels}
        est.sample_weight_ = None
        return est


class BatchLogits:
    """A classifier's logits of each image: ``fn(pixels, rows)``, the per-image work an executor runs
    (:mod:`igcore.executors`). It holds the classifier, so on ``executor=ray`` its weights (a trained head, or
    a user's checkpoint) travel to each worker with it; the rows change nothing."""

    def __init__(self, classifier: ImageClassifier) -> None:
        self.classifier = classifier

    def __call__(self, pixels: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        return self.classifier.logits(pixels)


# ------------------------------------------------------------------------------------ users' checkpoints

@dataclass(frozen=True)
class Checkpoint:
    """A user's image classifier, checked against the world: where it is, its name, how it wants its
    input (:class:`InputSpec`), and which of its outputs is which world class."""

    path: Path
    name: str
    model_type: str
    spec: InputSpec
    labels: dict[str, str]  # checkpoint label -> world class

    @property
    def columns(self) -> tuple[int, ...]:
        assert self.spec.columns is not None
        return self.spec.columns


def _processor_spec(path: Path) -> tuple[tuple[float, ...], tuple[float, ...], tuple[int, int] | None, str]:
    """Normalisation and input size from the checkpoint's image processor (``preprocessor_config.json``)."""
    from transformers import AutoImageProcessor

    try:
        processor = AutoImageProcessor.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as e:
        raise InputError(f"baseline.checkpoint {str(path)!r}: its image processor cannot be read ({str(e).splitlines()[0][:160]})") from None
    mean = tuple(float(v) for v in getattr(processor, "image_mean", None) or (0.0, 0.0, 0.0))
    std = tuple(float(v) for v in getattr(processor, "image_std", None) or (1.0, 1.0, 1.0))
    if not getattr(processor, "do_normalize", True):
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    size = getattr(processor, "size", None) or {}
    if not isinstance(size, Mapping):
        size = dict(size)
    if "height" in size and "width" in size:
        hw: tuple[int, int] | None = (int(size["height"]), int(size["width"]))
    elif "shortest_edge" in size:
        hw = (int(size["shortest_edge"]), int(size["shortest_edge"]))
    else:
        hw = None
    return mean, std, hw, type(processor).__name__


def inspect_checkpoint(directory: str | Path, classes: Sequence[str], label_map: Mapping[str, str] | None = None) -> Checkpoint:
    """Check a user's checkpoint against the world's classes before any work; one-line InputError otherwise.

    It must be a local ``save_pretrained`` folder with ``config.json`` and safetensors weights, of an
    architecture the microscope can open (:data:`ARCHITECTURE_FAMILIES`), with exactly one output per world
    class. Its labels (``id2label``) are matched to the class names (case and spacing ignored), or mapped by
    ``label_map`` (checkpoint label -> class). Input size and normalisation come from its image processor
    (``preprocessor_config.json``); without one, pixels go in as they are, in [0, 1], at the world's size.
    """
    path = Path(directory).expanduser()
    where = f"baseline.checkpoint {str(path)!r}"
    if not (path / "config.json").is_file():
        raise InputError(f"{where} has no config.json; give a folder written by save_pretrained")
    if not ((path / "model.safetensors").is_file() or (path / "model.safetensors.index.json").is_file()):
        raise InputError(f"{where} has no safetensors weights (model.safetensors); re-save it with save_pretrained(safe_serialization=True)")
    try:
        config = model_library().AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as e:
        raise InputError(f"{where}: config.json cannot be read ({str(e).splitlines()[0][:160]})") from None
    if config.model_type not in ARCHITECTURE_FAMILIES:
        raise InputError(f"{where} is a {config.model_type!r} model; the microscope opens {', '.join(ARCHITECTURE_FAMILIES)} image classifiers")
    id2label = {int(k): str(v) for k, v in (config.id2label or {}).items()}
    if len(id2label) != len(classes):
        raise InputError(
            f"{where} has {len(id2label)} output label(s) ({', '.join(id2label.values())}) but the world has "
            f"{len(classes)} class(es) ({', '.join(classes)}); use a checkpoint with one output per class"
        )

    def norm(text: str) -> str:
        return " ".join(text.replace("_", " ").lower().split())

    if label_map:
        unknown = sorted(set(label_map) - set(id2label.values()))
        if unknown:
            raise InputError(f"baseline.label_map names label(s) {', '.join(unknown)} the checkpoint does not have; it has: {', '.join(id2label.values())}")
        bad = sorted(set(label_map.values()) - set(classes))
        if bad:
            raise InputError(f"baseline.label_map maps to {', '.join(bad)}, not a class of the world ({', '.join(classes)})")
        mapping = {label: label_map.get(label, "") for label in id2label.values()}
    else:
        by_name = {norm(c): c for c in classes}
        mapping = {label: by_name.get(norm(label), "") for label in id2label.values()}
    missing = [label for label, cls in mapping.items() if not cls]
    if missing or len(set(mapping.values())) != len(classes):
        raise InputError(
            f"{where}: labels {', '.join(id2label.values())} do not match the classes {', '.join(classes)}; "
            "map them with --set 'baseline.label_map={\"<label>\": \"<class>\", ...}'"
        )
    columns = tuple(next(i for i, label in id2label.items() if mapping[label] == cls) for cls in classes)
    if (path / "preprocessor_config.json").is_file():
        mean, std, size, _ = _processor_spec(path)
    else:
        mean, std, size = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), None
    name = str(getattr(config, "_name_or_path", "") or "") or path.name
    name = path.name if name in ("", ".") or "/" in name else name
    return Checkpoint(path, name, config.model_type, InputSpec(mean, std, size, columns), mapping)
