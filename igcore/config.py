"""Run configuration: one nested dict of defaults, overridden by a TOML/JSON file and ``--set k=v``.

Every key the pipeline reads is listed in :data:`DEFAULTS` (and documented in README.md); an unknown
key is an input error, so a typo never silently runs the defaults.
"""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

from igcore.errors import InputError

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "device": "auto",  # auto | cpu | cuda
    "run_id": None,  # None -> generated; an existing id is refused
    "world": {
        "name": "snowwolf",
        "rho": 0.95,  # P(typical background | class) in train/val
        "image_size": 64,
        "n_classes": 2,
        "n_train": 4000,
        "n_val": 1000,
        "n_test_train": 3000,
        "n_test_eval": 1500,
        "n_concept_bank": 3000,
        "feature_p": 0.9,  # P(attribute takes its class's typical value)
        "background_salience": 1.0,  # 0 = all backgrounds share one mean colour (texture only)
        "animal_scale": 1.0,  # 0.6-1.2
        "noise_std": 0.03,  # per-pixel noise
    },
    "baseline": {
        "arch": "resnet-tiny",  # resnet-tiny | vit-tiny | path to a local checkpoint directory
        "epochs": 6,
        "batch_size": 128,
        "lr": 3e-3,
        "weight_decay": 1e-4,
    },
    "true_concepts": {"C": 1.0},
    # baseline microscope (igcore/microscope/): attributions, relevance mass, TCAV, surrogates, swaps, sanity
    "microscope": {
        "models": ["erm", "ig_student", "oracle"],  # those present in the run are examined
        "methods": [  # each runs on the architectures it applies to
            "integrated_gradients", "saliency", "gradient_shap", "occlusion", "grad_cam", "layer_integrated_gradients",
        ],
        "per_group": 8,  # test_eval images per group that get attribution maps
        "batch_size": 32,  # images per attribution call
        "params": {  # per-method parameters (igcore/microscope/<method>.py)
            "integrated_gradients": {"n_steps": 32, "internal_batch_size": 512, "baseline": "black"},
            "saliency": {"abs": True},
            "gradient_shap": {"n_samples": 8, "stdevs": 0.05, "n_noise_baselines": 3},
            "occlusion": {"window": 16, "stride": 8, "baseline": "gray", "forward_batch": 256},
            "grad_cam": {"relu": True, "interpolate_mode": "bilinear"},
            "layer_integrated_gradients": {
                "n_steps": 32, "internal_batch_size": 512, "baseline": "black", "interpolate_mode": "nearest",
            },
        },
        "tcav": {
            "models": ["erm"],
            "layers": ["penultimate", "middle"],  # aliases or dotted module paths
            "n_random": 5,  # random sets (>= 2) for the t-test
            "n_concept_images": 40,  # concept-bank images per concept / random set
            "n_inputs": 40,  # test_eval images per class whose predictions are tested
            "alpha": 0.05,
            "correction": "holm",  # holm | bonferroni | bh | none, over all concept x class x layer tests
        },
        "swaps": {"max_images": None, "keep_per_group": 2},  # None = every test_eval image
        "sanity": {"models": ["erm"], "n_images": 8, "threshold": 0.5},
        "surrogates": True,  # z_baseline / z_student (needs concept scores and igcore.search)
    },
    # peer methods (igcore/peers.py), off by default to keep the demo run short; the benchmark enables them
    "peers": [],
    "jtt": {"id_epochs": 1, "upweight": 20.0},
    "dfr": {"C": 1.0},
}


def _parse_value(text: str) -> Any:
    """``--set`` values: JSON when it parses (numbers, true/false/null, lists), else the raw string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _merge(base: dict[str, Any], override: dict[str, Any], prefix: str = "") -> None:
    for key, value in override.items():
        path = f"{prefix}{key}"
        if key not in base:
            raise InputError(f"unknown config key {path!r}; see README.md 'Config keys' for the valid keys")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise InputError(f"config key {path!r} is a section; set one of its keys, e.g. {path}.<key>=...")
            _merge(base[key], value, path + ".")
        else:
            base[key] = value


def load_config(path: str | Path | None = None, sets: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Defaults <- file (``.toml`` or ``.json``) <- ``key=value`` overrides, then validated."""
    config = copy.deepcopy(DEFAULTS)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"config file {str(path)!r} does not exist")
        try:
            text = path.read_text()
            data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"config file {str(path)!r} is not valid TOML/JSON: {e}") from None
        if not isinstance(data, dict):
            raise InputError(f"config file {str(path)!r} must hold a table of keys")
        _merge(config, data)
    for item in sets:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InputError(f"--set expects key=value, got {item!r}")
        nested: dict[str, Any] = {}
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _parse_value(raw.strip())
        _merge(config, nested)
    validate(config)
    return config


def get(config: dict[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        node = node[part]
    return node


def validate(config: dict[str, Any]) -> None:
    """Range and type checks with one-line messages."""
    w = config["world"]
    if not isinstance(config["seed"], int) or isinstance(config["seed"], bool):
        raise InputError(f"seed must be an integer, got {config['seed']!r}")
    if config["device"] not in ("auto", "cpu", "cuda"):
        raise InputError(f"device must be auto, cpu or cuda, got {config['device']!r}")
    rho = w["rho"]
    if not isinstance(rho, (int, float)) or isinstance(rho, bool) or not 0.5 <= rho <= 1.0:
        raise InputError(f"world.rho must be a number in [0.5, 1.0], got {rho!r}")
    for key in ("image_size", "n_classes", "n_train", "n_val", "n_test_train", "n_test_eval", "n_concept_bank"):
        v = w[key]
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise InputError(f"world.{key} must be a positive integer, got {v!r}")
    if w["image_size"] < 32:
        raise InputError(f"world.image_size must be at least 32 pixels, got {w['image_size']}")
    if w["n_classes"] < 2:
        raise InputError(f"world.n_classes must be at least 2, got {w['n_classes']}")
    b = config["baseline"]
    for key in ("epochs", "batch_size"):
        if not isinstance(b[key], int) or isinstance(b[key], bool) or b[key] <= 0:
            raise InputError(f"baseline.{key} must be a positive integer, got {b[key]!r}")
    for key in ("lr", "weight_decay"):
        if not isinstance(b[key], (int, float)) or b[key] < 0:
            raise InputError(f"baseline.{key} must be a non-negative number, got {b[key]!r}")
    peers = config["peers"]
    from_peers = ("groupdro", "jtt", "dfr")
    if not isinstance(peers, list) or any(p not in from_peers for p in peers):
        raise InputError(f"peers must be a list drawn from {list(from_peers)}, got {peers!r}")
    if "microscope" in config:
        from igcore.microscope.options import validate_microscope

        validate_microscope(config["microscope"])
    run_id = config["run_id"]
    if run_id is not None:
        check_run_id(str(run_id))


def check_run_id(run_id: str) -> str:
    """Run ids are single path components of safe characters (no separators, no ``..``)."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", run_id) or ".." in run_id:
        raise InputError(
            f"invalid run id {run_id!r}: use letters, digits, '.', '_' and '-' only (no '/', no '..')"
        )
    return run_id
