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
        "n_train": 2000,
        "n_val": 1000,
        "n_test_train": 3000,
        "n_test_eval": 1500,
        "n_concept_bank": 3000,
        "feature_p": 0.9,  # P(attribute takes its class's typical value)
        "background_salience": 1.0,  # 0 = all backgrounds share one mean colour (texture only)
        "animal_scale": 1.2,  # 0.6-1.2 (1.2: features legible at 64 px)
        "noise_std": 0.03,  # per-pixel noise
    },
    "baseline": {
        "arch": "resnet-tiny",  # resnet-tiny | vit-tiny | path to a local checkpoint directory
        "epochs": 8,
        "batch_size": 64,
        "lr": 3e-3,
        "weight_decay": 1e-4,
    },
    "true_concepts": {"C": 1.0},
    # Prior_M (igcore/prior.py): log Prior(z) = strength * (sum w log p - coef_weight sum w^2
    #   - coef_length |z| - coef_class_length sum_c n_c^2 - coef_empty_class #empty classes)
    "prior": {
        "judgments": None,  # ratings CSV rater,concept,class,rating (1-5) replacing assets/judgments/ratings.csv
        "pairwise": None,  # pairwise CSV rater,hypothesis_a,hypothesis_b,preferred replacing the shipped one
        "database": None,  # SQLite judgments store (dashboard edits); when set it replaces both CSVs
        "encoder": "minilm",  # minilm (all-MiniLM-L6-v2, local files) | hashing (char n-grams)
        "features": "concept",  # text features of a clause: concept | clause | concept+clause
        "ridge_alpha": 0.1,  # ridge penalty of the text -> mean rating regression
        "shrinkage": 1.0,  # pseudo-raters given to the text model when combining with rated means
        "endorse_threshold": 4,  # a rating >= this endorses a clause (plausibility = P(endorse))
        "min_plausibility": 0.001,  # plausibilities clipped to [min, 1 - min]
        "strength": 100.0,  # nats of data log-likelihood one unit of the prior bracket is worth
        "fit_pairwise": True,  # fit the coef_* below by Bradley-Terry on the pairwise judgments
        "coef_length": 0.4,  # per clause (used when not fitted)
        "coef_weight": 0.025,  # per unit w^2 (used when not fitted)
        "coef_class_length": 0.0,  # per unit sum_c n_c^2 (used when not fitted)
        "coef_empty_class": 7.0,  # per class without a clause (used when not fitted)
        "bt_l2": 0.1,  # L2 on the Bradley-Terry parameters
    },
    # z* search (igcore/search.py): exact MAP of the weights + beam search over clause sets
    "search": {
        "beam_width": 4,  # clause sets kept per round
        "n_ranked": 12,  # ranked alternatives reported (the metrics contract wants >= 10)
        "max_clauses": None,  # largest |z| in the ranked list; None = no cap
        "max_depth": 10,  # rounds of the structure search
        "patience": 1,  # extra rounds after one that found nothing better (0 = stop at the first local optimum)
        "max_moves": 16,  # removals / additions tried per beam state; None = all
        "max_iter": 500,  # projected L-BFGS iterations per MAP problem
        "tol": 1e-8,  # projected-gradient tolerance, times N
        "history": 10,  # L-BFGS memory
        "bias_l2": 0.0001,  # tiny Gaussian prior on the class biases
        "flat_weight_l2": 0.01,  # no_prior ablation: vanishing Gaussian weight prior (keeps the MLE finite)
        "dtype": "float64",  # float64 | float32 (float32 GEMMs, float64 reductions)
        "max_batch": 128,  # MAP problems solved together
        "num_threads": None,  # torch CPU threads during the search; None = 1 if N*K < 4e6, else min(default, CPUs - 1)
        "presolve_rows": 50000,  # N > 2x this: warm-start each solve on a subsample of this many rows; None = off
    },
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
            "n_random": 10,  # random sets (>= 2) for the t-test
            "n_concept_images": 80,  # concept-bank images per concept / random set
            "n_inputs": 100,  # test_eval images per class whose predictions are tested
            "alpha": 0.05,
            "correction": "bh",  # bh (Benjamini-Hochberg) | holm | bonferroni | none, over all concept x class x layer tests
        },
        "swaps": {"max_images": None, "keep_per_group": 2},  # None = every test_eval image
        "sanity": {"models": ["erm"], "n_images": 8, "threshold": 0.5},
        "surrogates": True,  # z_baseline / z_student (needs concept scores and igcore.search)
        "surrogate_l1": 20.0,  # same sparsity cost on every surrogate clause (readable, concept-agnostic)
    },
    # concept model (igcore/concepts.py): trained on the concept bank only
    "concepts": {"epochs": 8, "lr": 3e-3, "holdout": 0.2},
    # IG labelling of D′: L_M(·|x′, z*) or the posterior predictive over the ranked list
    "ig": {"posterior_predictive": False},
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
    c = config["concepts"]
    if not isinstance(c["epochs"], int) or isinstance(c["epochs"], bool) or c["epochs"] <= 0:
        raise InputError(f"concepts.epochs must be a positive integer, got {c['epochs']!r}")
    if not isinstance(c["holdout"], (int, float)) or not 0 < c["holdout"] < 1:
        raise InputError(f"concepts.holdout must be a fraction in (0, 1), got {c['holdout']!r}")
    if not isinstance(config["ig"]["posterior_predictive"], bool):
        raise InputError("ig.posterior_predictive must be true or false")
    peers = config["peers"]
    from_peers = ("groupdro", "jtt", "dfr")
    if not isinstance(peers, list) or any(p not in from_peers for p in peers):
        raise InputError(f"peers must be a list drawn from {list(from_peers)}, got {peers!r}")
    if "microscope" in config:
        from igcore.microscope.options import validate_microscope

        validate_microscope(config["microscope"])
    _validate_prior_search(config)
    run_id = config["run_id"]
    if run_id is not None:
        check_run_id(str(run_id))


def _validate_prior_search(config: dict[str, Any]) -> None:
    """Checks of the ``prior`` and ``search`` sections (igcore/prior.py, igcore/search.py)."""

    def number(section: str, key: str, lo: float, hi: float = float("inf"), integer: bool = False, none_ok: bool = False) -> None:
        v = config[section][key]
        if v is None and none_ok:
            return
        ok_type = isinstance(v, int) if integer else isinstance(v, (int, float))
        if isinstance(v, bool) or not ok_type or not lo <= v <= hi:
            kind = "an integer" if integer else "a number"
            rng = f">= {lo}" if hi == float("inf") else f"in [{lo}, {hi}]"
            raise InputError(f"{section}.{key} must be {kind} {rng}{' or null' if none_ok else ''}, got {v!r}")

    p = config["prior"]
    for key in ("judgments", "pairwise", "database"):
        if p[key] is not None and (not isinstance(p[key], str) or not p[key].strip()):
            raise InputError(f"prior.{key} must be a file path or null, got {p[key]!r}")
    for key in ("judgments", "pairwise"):
        if p[key] is not None and not Path(p[key]).is_file():
            raise InputError(f"prior.{key} file {p[key]!r} does not exist")
    if p["encoder"] not in ("minilm", "hashing"):
        raise InputError(f"prior.encoder must be minilm or hashing, got {p['encoder']!r}")
    if p["features"] not in ("concept", "clause", "concept+clause"):
        raise InputError(f"prior.features must be concept, clause or concept+clause, got {p['features']!r}")
    for key in ("ridge_alpha", "shrinkage", "strength", "coef_length", "coef_weight", "coef_class_length",
                "coef_empty_class", "bt_l2"):
        number("prior", key, 0.0)
    number("prior", "endorse_threshold", 2, 5, integer=True)
    number("prior", "min_plausibility", 1e-12, 0.49)
    if not isinstance(p["fit_pairwise"], bool):
        raise InputError(f"prior.fit_pairwise must be true or false, got {p['fit_pairwise']!r}")
    s = config["search"]
    number("search", "beam_width", 1, integer=True)
    number("search", "n_ranked", 1, integer=True)
    number("search", "max_depth", 0, integer=True)
    number("search", "patience", 0, integer=True)
    for key in ("max_iter", "history", "max_batch"):
        number("search", key, 1, integer=True)
    for key in ("max_clauses", "max_moves", "num_threads", "presolve_rows"):
        number("search", key, 1, integer=True, none_ok=True)
    for key in ("tol", "bias_l2", "flat_weight_l2"):
        number("search", key, 0.0)
    if s["dtype"] not in ("float64", "float32"):
        raise InputError(f"search.dtype must be float64 or float32, got {s['dtype']!r}")


def check_run_id(run_id: str) -> str:
    """Run ids are single path components of safe characters (no separators, no ``..``)."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", run_id) or ".." in run_id:
        raise InputError(
            f"invalid run id {run_id!r}: use letters, digits, '.', '_' and '-' only (no '/', no '..')"
        )
    return run_id
