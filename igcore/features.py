"""Frozen pretrained features: a backbone's pooled features of every image, extracted once, and linear heads.

With ``features.backbone`` set, every model a run trains (the baseline, the oracle, the concept model, the
IG student) is the backbone, frozen, with a linear head trained on its features — the recipe of
post-hoc concept bottleneck models (Yuksekgonul, Wang & Zou, 2023, "Post-hoc Concept Bottleneck Models")
and of last-layer retraining (Kirichenko, Izmailov & Wilson, 2023, "Last Layer Re-Training is Sufficient
for Robustness to Spurious Correlations"). One architecture for every model keeps the comparison fair,
and a run on real photographs becomes feasible on a CPU: the backbone runs once per image (the
``features`` stage, cached in the run), the heads train on small matrices.

The feature of an image is exactly what the backbone's image-classification head receives (ResNet: the
pooled last stage; ViT: the final [CLS] token), read with a forward hook on the head. A head's weights are
written into that same classification model, so the trained model is an ordinary transformers image
classifier: the microscope attributes through backbone and head alike, and the model saves and loads
with ``save_pretrained``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from igcore.baseline import (
    ImageClassifier,
    InputSpec,
    PixelClassifier,
    _processor_spec,
    build_model,
    head_inputs,
    head_of,
    resolve_device,
)
from igcore.errors import InputError
from igcore.runtime import global_rng
from igcore.worlds.images import LazyImages


def backbone_spec(directory: str | Path) -> InputSpec:
    """Normalisation and input size from the backbone's image processor (none: pixels in [0, 1] as they are)."""
    path = Path(directory).expanduser()
    if not (path / "preprocessor_config.json").is_file():
        return InputSpec((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), None)
    mean, std, size, _ = _processor_spec(path)
    return InputSpec(mean, std, size)


class FeatureExtractor:
    """Pooled features of images through a frozen backbone, batched, with a progress bar.

    ``extractor(images)`` maps a uint8 batch (N, H, W, 3) to float32 (N, D): the function an executor runs
    per batch (one extractor per worker holds the model; the image rows it is also given change nothing).

    Args:
        backbone: a local pretrained transformers vision checkpoint (``save_pretrained`` folder).
        batch_size: images per forward pass.
        device: ``auto`` | ``cpu`` | ``cuda``.
    """

    def __init__(self, backbone: str | Path, batch_size: int = 64, device: str = "auto") -> None:
        self.backbone = str(backbone)
        self.batch_size = batch_size
        self.device = device
        self.device_ = resolve_device(device)
        self.module_ = PixelClassifier(build_model(self.backbone, 2, 0), backbone_spec(backbone)).to(self.device_).eval()
        self.dim_ = head_of(self.module_.model).in_features

    def __call__(self, images: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        return head_inputs(self.module_, images, max(1, len(images)), self.device_).cpu().numpy()


class LinearHeadClassifier(ImageClassifier):
    """A frozen pretrained backbone with a linear head trained on its features.

    ``fit`` and ``logits`` take features (N, D) — the run's cached ones — or images (N, H, W, 3), whose
    features are extracted on the way. Soft and multi-label targets, sample weights and model selection on
    ``val`` work as for :class:`~igcore.baseline.ImageClassifier` (same ``batch_loss``); ``arch`` is the
    backbone folder. After ``fit``, ``module_`` is the whole classifier (backbone and trained head).
    """

    def _build(self) -> None:
        self.device_ = resolve_device(self.device)
        model = build_model(self.arch, self.num_labels, self.image_size)
        self.module_ = PixelClassifier(model, backbone_spec(self.arch)).to(self.device_).eval()
        self.head_ = head_of(model)

    def features(self, inputs: np.ndarray) -> torch.Tensor:
        """Features on the model's device: given ones as they are, images through the frozen backbone
        (lazily decoded images 256 at a time, so a whole split is never decoded at once)."""
        if not isinstance(inputs, LazyImages):
            inputs = np.asarray(inputs)
        if inputs.ndim == 2:
            return torch.as_tensor(inputs, dtype=torch.float32, device=self.device_)
        if inputs.ndim != 4:
            raise InputError(f"a linear-head model takes features (N, D) or images (N, H, W, 3), got shape {inputs.shape}")
        return head_inputs(self.module_, inputs, 256, self.device_)

    def fit(
        self,
        inputs: np.ndarray,
        targets: np.ndarray,
        val: tuple[np.ndarray, np.ndarray] | None = None,
        sample_weight: np.ndarray | None = None,
    ) -> LinearHeadClassifier:
        with global_rng(self.seed):  # the head's initial weights come from torch's process-wide generator
            self._build()
        self.source_ = {"trained": True, "head_on": Path(self.arch).name}
        generator = torch.Generator().manual_seed(self.seed)
        x_all = self.features(inputs)
        t = torch.as_tensor(targets)
        t_all = (t.float() if (self.multi_label or t.ndim == 2) else t.long()).to(self.device_)
        self.sample_weight_ = None if sample_weight is None else torch.as_tensor(sample_weight, dtype=torch.float32, device=self.device_)
        val_x = None if val is None else self.features(val[0])
        n = len(x_all)
        optimizer = torch.optim.AdamW(self.head_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        self.history_: list[dict[str, float]] = []
        best_score, best_state = -1.0, None
        bar = tqdm(total=self.epochs, desc=f"train {self.name} (linear head)", disable=not self.progress, leave=False)
        for epoch in range(self.epochs):
            order = torch.randperm(n, generator=generator).to(self.device_)
            total = 0.0
            for start in range(0, n, self.batch_size):
                idx = order[start : start + self.batch_size]
                loss = self.batch_loss(self.head_(x_all[idx]), t_all[idx], idx)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(idx)
            record = {"epoch": epoch + 1, "train_loss": total / max(n, 1)}
            if val is not None:
                record["val_score"] = self.score(val_x.cpu().numpy(), val[1])
                if record["val_score"] > best_score:
                    best_score, best_state = record["val_score"], copy.deepcopy(self.head_.state_dict())
            self.history_.append(record)
            bar.update(1)
        bar.close()
        if best_state is not None:
            self.head_.load_state_dict(best_state)
        self.best_epoch_ = max(self.history_, key=lambda r: r.get("val_score", 0.0))["epoch"] if val is not None else self.epochs
        self.module_.eval()
        return self

    @torch.no_grad()
    def logits(self, inputs: np.ndarray, batch_size: int = 512) -> np.ndarray:
        if not isinstance(inputs, LazyImages):
            inputs = np.asarray(inputs)
        if inputs.ndim == 4:
            return super().logits(inputs, batch_size)
        return self.head_(self.features(inputs)).float().cpu().numpy()

    @classmethod
    def load(cls, directory: str | Path, device: str = "auto") -> Any:
        est = super().load(directory, device)
        est.head_ = head_of(est.module_.model)
        return est
