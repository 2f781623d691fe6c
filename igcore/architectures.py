"""Image-classifier architectures, in one place: the families the microscope opens and the named architectures.

A *family* (``resnet``, ``vit``) is a transformers ``model_type`` whose image classifier the microscope knows
how to open: where its convolutional stages or encoder layers are (Grad-CAM, TCAV layers, the sanity
cascade) and where its patch embedding is (layer integrated gradients). A user's checkpoint must be of one
of these families. A *named architecture* (``resnet-tiny``, ``vit-tiny``) is a small transformers config the
project trains from scratch (``baseline.arch``); ``baseline.arch`` may also name a local ``save_pretrained``
folder.

Importing this module loads neither torch nor transformers: the factories import transformers when called,
so the config can check ``baseline.arch`` without them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from igcore.errors import InputError

if TYPE_CHECKING:
    from torch import nn
    from transformers import PreTrainedModel

#: transformers model types the microscope opens; each is also the attribute of the classifier that holds its body.
ARCHITECTURE_FAMILIES = ("resnet", "vit")

ModelFactory = Callable[[int, int], "PreTrainedModel"]

#: Named architectures: ``factory(num_labels, image_size)`` builds an untrained transformers image classifier.
ARCHITECTURES: dict[str, ModelFactory] = {}


def register_architecture(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator adding a model factory to :data:`ARCHITECTURES` under ``name`` (a ``baseline.arch`` value)."""

    def decorate(factory: ModelFactory) -> ModelFactory:
        ARCHITECTURES[name] = factory
        return factory

    return decorate


@register_architecture("resnet-tiny")
def resnet_tiny(num_labels: int, image_size: int) -> PreTrainedModel:
    """A 4-stage basic-block ResNet (He et al., 2016) with 0.3 M parameters; ~2,400 img/s training on 2 CPU cores."""
    from transformers import ResNetConfig, ResNetForImageClassification

    config = ResNetConfig(
        num_channels=3,
        embedding_size=16,
        hidden_sizes=[16, 32, 64, 128],
        depths=[1, 1, 1, 1],
        layer_type="basic",
        downsample_in_first_stage=False,
        num_labels=num_labels,
    )
    return ResNetForImageClassification(config)


@register_architecture("vit-tiny")
def vit_tiny(num_labels: int, image_size: int) -> PreTrainedModel:
    """A 4-layer ViT (Dosovitskiy et al., 2021) with 8×8 patches and width 96."""
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(
        image_size=image_size,
        patch_size=8,
        hidden_size=96,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=192,
        num_labels=num_labels,
    )
    return ViTForImageClassification(config)


def check_architecture(arch: str) -> str:
    """``arch`` if it names a registered architecture or a local checkpoint directory, else InputError."""
    if arch in ARCHITECTURES or (Path(arch).is_dir() and (Path(arch) / "config.json").is_file()):
        return arch
    raise InputError(
        f"unknown architecture {arch!r}: use one of {', '.join(sorted(ARCHITECTURES))} "
        "or a local checkpoint directory containing config.json"
    )


# -- opening a family's classifier -------------------------------------------------------------------


def architecture_of(module: nn.Module) -> str:
    """The family (``resnet`` or ``vit``) of a :class:`~igcore.baseline.PixelClassifier` (or its HF model)."""
    model: Any = getattr(module, "model", module)
    for family in ARCHITECTURE_FAMILIES:
        if hasattr(model, family):
            return family
    raise InputError(f"the microscope supports {', '.join(ARCHITECTURE_FAMILIES)} models; got {type(model).__name__}")


def last_conv_stage(module: nn.Module) -> nn.Module:
    """The last ResNet stage (the usual Grad-CAM layer)."""
    return module.model.resnet.encoder.stages[-1]


def patch_embedding(module: nn.Module) -> nn.Module:
    """The ViT patch embedding (the usual layer for layer integrated gradients)."""
    return module.model.vit.embeddings.patch_embeddings


def vit_layers(module: nn.Module) -> nn.ModuleList:
    """The ViT encoder layers (transformers keeps them under ``vit.layers`` or ``vit.encoder.layer``)."""
    vit = module.model.vit
    return vit.layers if hasattr(vit, "layers") else vit.encoder.layer
