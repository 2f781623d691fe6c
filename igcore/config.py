"""Run configuration: one declarative schema (pydantic), overridden by a TOML/JSON file and ``--set k=v``.

Every key the pipeline reads is declared here once, with its type, default, bounds and one line of
documentation; ``python -m igcore config`` prints the effective config with each key's meaning, and
README's table of keys is generated from this schema. The world's keys are declared by the world
itself (:class:`~igcore.worlds.base.WorldParams` subclasses), so ``world.*`` accepts exactly the
parameters of the chosen ``world.name``. Names in lists (models, attribution methods, peers, the text
encoder, the architecture) are checked against their registries. Everything is validated before any
work; a problem is one line (:class:`~igcore.errors.InputError`) naming the key.
"""

from __future__ import annotations

import copy
import json
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SerializeAsAny, ValidationInfo, field_validator, model_validator

from igcore.discover.params import DiscoverParams
from igcore.errors import InputError
from igcore.settings import REQUIRED, PathText, Settings, describe, validated
from igcore.worlds.base import WorldParams

RUN_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"


def check_run_id(run_id: str) -> str:
    """Run ids are single path components of safe characters (no separators, no ``..``)."""
    if not isinstance(run_id, str) or not re.fullmatch(RUN_ID_PATTERN, run_id) or ".." in run_id:
        raise InputError(f"invalid run id {run_id!r}: use letters, digits, '.', '_' and '-' only (no '/', no '..')")
    return run_id


def _unknown(kind: str, names: Sequence[str], valid: Sequence[str]) -> str | None:
    bad = [n for n in names if n not in valid]
    return f"unknown {kind} {', '.join(map(repr, bad))}; valid: {', '.join(valid)}" if bad else None


def _stored(info: ValidationInfo) -> bool:
    """Validating a stored run's config: files it named may be gone since, and that is not an error."""
    return bool(info.context and info.context.get("stored"))


def _unique(names: list[str]) -> list[str]:
    if len(set(names)) != len(names):
        raise ValueError(f"names must not repeat, got {names!r}")
    return names


class BaselineConfig(Settings):
    """The image classifier every method trains with the same budget (ERM, oracle, student, peers)."""

    arch: str = Field("resnet-tiny", description="resnet-tiny | vit-tiny | a local save_pretrained checkpoint directory")
    epochs: int = Field(8, ge=1, le=1000, description="training epochs (the epoch with the best val accuracy is kept)")
    batch_size: int = Field(64, ge=1, le=65536, description="images per optimisation step")
    lr: float = Field(3e-3, gt=0, le=10, description="peak learning rate of the one-cycle AdamW schedule")
    weight_decay: float = Field(1e-4, ge=0, le=10, description="AdamW weight decay")
    checkpoint: PathText | None = Field(
        None, description="a user's trained transformers image classifier (save_pretrained folder) used as the baseline, without training"
    )
    label_map: dict[str, str] | None = Field(None, description="checkpoint label -> world class, when the names differ")

    @field_validator("checkpoint")
    @classmethod
    def _checkpoint_folder(cls, path: str | None, info: ValidationInfo) -> str | None:
        if path is not None and not _stored(info) and not Path(path).expanduser().is_dir():
            raise ValueError(f"folder {path!r} does not exist; give a folder written by save_pretrained")
        return path

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, arch: str, info: ValidationInfo) -> str:
        from igcore.baseline import check_architecture

        return arch if _stored(info) else check_architecture(arch)


class FeaturesConfig(Settings):
    """Frozen pretrained features (the PCBM / DFR recipe): every model the run trains is a linear head on them."""

    backbone: PathText | None = Field(
        None, description="a local pretrained transformers vision checkpoint; its pooled features are extracted once per image"
    )
    batch_size: int = Field(64, ge=1, le=4096, description="images per forward pass of the backbone")

    @field_validator("backbone")
    @classmethod
    def _backbone_folder(cls, path: str | None, info: ValidationInfo) -> str | None:
        if path is not None and not _stored(info) and not (Path(path).expanduser() / "config.json").is_file():
            raise ValueError(f"{path!r} is not a save_pretrained folder (no config.json)")
        return path


class TrueConceptsConfig(Settings):
    C: float = Field(1.0, gt=0, description="inverse L2 strength of the true-concepts logistic regression (a reference)")


class PriorConfig(Settings):
    """Prior_M (igcore/prior): log Prior(z) = strength * (sum w log p - coef_weight sum w^2 - coef_length |z|
    - coef_class_length sum_c n_c^2 - coef_empty_class #empty classes)."""

    judgments: PathText | None = Field(None, description="ratings CSV rater,concept,class,rating (1-5) replacing assets/judgments/ratings.csv")
    pairwise: PathText | None = Field(None, description="pairwise CSV rater,hypothesis_a,hypothesis_b,preferred replacing the shipped one")
    database: PathText | None = Field(None, description="SQLite judgments store (the dashboard's); when set it replaces both CSVs")
    encoder: str = Field("minilm", description="clause text encoder: minilm (all-MiniLM-L6-v2 from local files) | hashing (char n-grams)")
    features: str = Field("concept", description="text features of a clause: concept | clause | concept+clause")
    ridge_alpha: float = Field(0.1, ge=0, description="ridge penalty of the text -> mean rating regression")
    shrinkage: float = Field(1.0, ge=0, description="pseudo-raters given to the text model when combining with rated means")
    endorse_threshold: int = Field(4, ge=2, le=5, description="a rating >= this endorses a clause (plausibility = P(endorse))")
    min_plausibility: float = Field(1e-3, gt=0, lt=0.5, description="plausibilities clipped to [min, 1 - min]")
    strength: float = Field(100.0, ge=0, description="nats of data log-likelihood one unit of the prior bracket is worth")
    fit_pairwise: bool = Field(True, description="fit the coef_* terms by Bradley-Terry on the pairwise judgments")
    coef_length: float = Field(0.4, ge=0, description="cost per clause (used when not fitted)")
    coef_weight: float = Field(0.025, ge=0, description="cost per unit w^2 (used when not fitted)")
    coef_class_length: float = Field(0.0, ge=0, description="cost per unit sum_c n_c^2 (used when not fitted)")
    coef_empty_class: float = Field(7.0, ge=0, description="cost per class without a clause (used when not fitted)")
    bt_l2: float = Field(0.1, ge=0, description="L2 on the Bradley-Terry parameters")

    @field_validator("judgments", "pairwise")
    @classmethod
    def _readable_file(cls, path: str | None, info: ValidationInfo) -> str | None:
        if path is None or _stored(info):
            return path
        p = Path(path)
        if not path.strip() or not p.is_file():
            raise ValueError(f"file {path!r} does not exist")
        try:
            with p.open("rb"):
                pass
        except OSError as e:
            raise ValueError(f"file {path!r} cannot be read ({e.strerror})") from None
        return path

    @field_validator("database")
    @classmethod
    def _database_path(cls, path: str | None, info: ValidationInfo) -> str | None:
        if path is not None and not _stored(info) and (not path.strip() or not Path(path).parent.is_dir()):
            raise ValueError(f"{path!r} is not a file path in an existing folder")
        return path

    @field_validator("encoder")
    @classmethod
    def _known_encoder(cls, name: str) -> str:
        from igcore.prior.encoders import ENCODERS

        if problem := _unknown("text encoder", [name], ENCODERS):
            raise ValueError(problem)
        return name

    @field_validator("features")
    @classmethod
    def _known_features(cls, name: str) -> str:
        from igcore.prior.model import FEATURES

        if problem := _unknown("clause features", [name], FEATURES):
            raise ValueError(problem)
        return name


class SearchConfig(Settings):
    """z* search (igcore/search.py): exact MAP of the weights + beam search over clause sets."""

    beam_width: int = Field(4, ge=1, description="clause sets kept per round")
    n_ranked: int = Field(12, ge=1, description="ranked alternatives reported (the metrics contract wants >= 10)")
    max_clauses: int | None = Field(None, ge=1, description="largest |z| in the ranked list; null = no cap")
    max_depth: int = Field(10, ge=0, description="rounds of the structure search")
    patience: int = Field(1, ge=0, description="extra rounds after one that found nothing better (0 = stop at the first local optimum)")
    max_moves: int | None = Field(16, ge=1, description="removals / additions tried per beam state; null = all")
    max_iter: int = Field(500, ge=1, description="projected L-BFGS iterations per MAP problem")
    tol: float = Field(1e-8, ge=0, description="projected-gradient tolerance, times N")
    history: int = Field(10, ge=1, description="L-BFGS memory")
    bias_l2: float = Field(1e-4, ge=0, description="tiny Gaussian prior on the class biases")
    flat_weight_l2: float = Field(1e-2, ge=0, description="no_prior ablation: vanishing Gaussian weight prior (keeps the MLE finite)")
    dtype: Literal["float64", "float32"] = Field("float64", description="float64 | float32 (float32 GEMMs, float64 reductions)")
    max_batch: int = Field(128, ge=1, description="MAP problems solved together")
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads during the search; null = 1 if N*K < 4e6, else min(default, CPUs - 1)")
    presolve_rows: int | None = Field(50000, ge=1, description="N > 2x this: warm-start each solve on a subsample of this many rows; null = off")


class TCAVConfig(Settings):
    models: list[str] = Field(["erm"], description="models whose layers are tested (a subset of microscope.models)")
    layers: list[str] = Field(["penultimate", "middle"], min_length=1, description="aliases (penultimate, middle) or dotted module paths")
    n_random: int = Field(20, ge=2, description="random concept sets for the t-test")
    repeats: int = Field(3, ge=1, description="draws of the concept and random images; significant = significant in every repeat")
    n_controls: int = Field(10, ge=0, description="random image sets tested like concepts (their significance rate is the false-positive rate)")
    n_concept_images: int = Field(80, ge=4, description="concept-bank images per concept / random set")
    n_inputs: int = Field(100, ge=1, description="test_eval images per class whose predictions are tested")
    alpha: float = Field(0.05, gt=0, lt=1, description="significance level")
    correction: str = Field("bh", description="multiple-testing correction over all concept x class x layer tests: bh | holm | bonferroni | none")

    @field_validator("correction")
    @classmethod
    def _known_correction(cls, name: str) -> str:
        from igcore.microscope.tcav import CORRECTIONS

        if problem := _unknown("correction", [name], list(CORRECTIONS)):
            raise ValueError(problem)
        return name


class SwapsConfig(Settings):
    max_images: int | None = Field(None, ge=1, description="test_eval images swapped; null = every image")
    keep_per_group: int = Field(2, ge=0, description="swapped images per group kept for the dashboard")


class CounterfactualsConfig(Settings):
    max_images: int | None = Field(None, ge=1, description="D' images whose background and object are swapped; null = every test_eval image")
    attribution_per_group: int = Field(8, ge=0, description="images per group whose double swap is attributed with integrated gradients (0 = off)")
    n_steps: int = Field(32, ge=2, description="integrated-gradients steps of the swap attribution")
    n_resamples: int = Field(2000, ge=100, description="bootstrap resamples of every confidence interval")
    examples_per_group: int = Field(2, ge=0, description="counterfactual examples per group kept for the dashboard and docs")


class SanityConfig(Settings):
    models: list[str] | None = Field(None, description="models whose maps get the cascading-randomisation check; null = every examined model")
    n_images: int = Field(8, ge=1, description="images per check")
    threshold: float = Field(0.5, ge=-1, le=1, description="a method is trustworthy when |Spearman| to the trained maps falls below this")


_POSITIVE_PARAMS = ("n_steps", "n_samples", "window", "stride", "internal_batch_size", "forward_batch")


class MicroscopeConfig(Settings):
    """The baseline microscope (igcore/microscope/): attributions, relevance mass, TCAV, surrogates, swaps, sanity."""

    models: list[str] = Field(["erm", "ig_student", "oracle"], description="models examined (each needs the stage that trains it)")
    methods: list[str] = Field(
        ["integrated_gradients", "saliency", "gradient_shap", "occlusion", "grad_cam", "layer_integrated_gradients"],
        description="attribution methods; each runs on the architectures it applies to",
    )
    per_group: int = Field(8, ge=1, description="test_eval images per group that get attribution maps")
    batch_size: int = Field(32, ge=1, description="images per attribution call")
    params: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {
            "integrated_gradients": {"n_steps": 32, "internal_batch_size": 512, "baseline": "black"},
            "saliency": {"abs": True},
            "gradient_shap": {"n_samples": 8, "stdevs": 0.05, "n_noise_baselines": 3},
            "occlusion": {"window": 16, "stride": 8, "baseline": "gray", "forward_batch": 256},
            "grad_cam": {"relu": True, "interpolate_mode": "bilinear"},
            "layer_integrated_gradients": {"n_steps": 32, "internal_batch_size": 512, "baseline": "black", "interpolate_mode": "nearest"},
        },
        description="per-method parameters {method: {parameter: value}} (igcore/microscope/<method>.py)",
    )
    tcav: TCAVConfig = Field(default_factory=TCAVConfig)
    swaps: SwapsConfig = Field(default_factory=SwapsConfig)
    sanity: SanityConfig = Field(default_factory=SanityConfig)
    counterfactuals: CounterfactualsConfig = Field(default_factory=CounterfactualsConfig)
    surrogates: bool = Field(True, description="fit z_baseline / z_student (surrogate hypotheses in the language of z*)")
    surrogate_l1: float = Field(20.0, ge=0, le=1e6, description="sparsity cost on every surrogate clause (readable, concept-agnostic)")

    @field_validator("models")
    @classmethod
    def _unique_models(cls, value: list[str]) -> list[str]:
        return _unique(value)

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, methods: list[str]) -> list[str]:
        from igcore.microscope.registry import ATTRIBUTIONS

        if problem := _unknown("attribution method", methods, list(ATTRIBUTIONS)):
            raise ValueError(problem)
        return _unique(methods)

    @field_validator("params")
    @classmethod
    def _known_params(cls, params: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        from igcore.microscope.registry import ATTRIBUTIONS

        for method, values in params.items():
            if problem := _unknown("attribution method", [method], list(ATTRIBUTIONS)):
                raise ValueError(problem)
            ATTRIBUTIONS[method].resolve(values)  # unknown parameter names -> InputError (a ValueError)
            for key, value in values.items():
                if key in _POSITIVE_PARAMS and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                    raise ValueError(f"{method}.{key} must be a positive integer, got {value!r}")
                if isinstance(value, float) and not math.isfinite(value):
                    raise ValueError(f"{method}.{key} must be a finite number, got {value!r}")
        return params

    @model_validator(mode="after")
    def _models_known(self) -> MicroscopeConfig:
        from igcore.stages import MODEL_NAMES

        sanity = self.sanity.models or []
        for key, names in (("models", self.models), ("tcav.models", self.tcav.models), ("sanity.models", sanity)):
            if problem := _unknown(f"model(s) in microscope.{key}", names, MODEL_NAMES):
                raise ValueError(problem)
        for key, names in (("tcav.models", self.tcav.models), ("sanity.models", sanity)):
            if outside := [n for n in names if n not in self.models]:
                raise ValueError(f"microscope.{key} names {', '.join(outside)}, which microscope.models does not examine")
        return self


class ConceptsConfig(Settings):
    """The concept model (igcore/concepts.py), trained on the concept bank only."""

    epochs: int = Field(8, ge=1, le=1000, description="training epochs")
    lr: float = Field(3e-3, gt=0, le=10, description="peak learning rate")
    holdout: float = Field(0.2, gt=0, lt=1, description="fraction of the concept bank held out for model selection and AUC")


class IGConfig(Settings):
    posterior_predictive: bool = Field(False, description="label D' with the posterior predictive over the ranked list instead of L_M(.|x', z*)")


class JTTConfig(Settings):
    id_epochs: int = Field(1, ge=1, description="epochs of the identification model whose errors are upweighted")
    upweight: float = Field(20.0, ge=1, description="weight of the identification model's training errors")


class DFRConfig(Settings):
    C: float = Field(1.0, gt=0, description="inverse L1 strength of the last-layer logistic regression")


class RayConfig(Settings):
    """The ``executor=ray`` path: per-image work as Ray Data pipelines (docs/SCALE.md)."""

    address: str | None = Field(
        None, description="an existing Ray cluster (e.g. auto, ray://head:10001); null = $RAY_ADDRESS, else a local cluster here"
    )
    workers: int = Field(2, ge=1, le=4096, description="actors in the pool that holds the backbone (local cluster: its CPUs)")
    threads_per_worker: int = Field(1, ge=1, le=256, description="torch threads (and CPUs reserved) per worker")
    batch_size: int = Field(64, ge=1, le=4096, description="images per map_batches call (one backbone forward pass)")
    object_store_mb: int = Field(512, ge=100, le=1_048_576, description="object store of a local cluster, MiB (bounds the data in flight)")
    max_retries: int = Field(3, ge=0, le=100, description="restarts of a dead worker actor, and retries of its batches, before the run fails")


def _default_world() -> WorldParams:
    from igcore.worlds import world_params_class

    return world_params_class("snowwolf")()


class Config(Settings):
    """A whole run's configuration."""

    seed: int = Field(0, ge=0, le=2**32 - 1, description="seeds the world, training and search (same seed => same metrics)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto (CUDA when present) | cpu | cuda")
    run_id: str | None = Field(None, description="name of the run directory; null = generated; an existing id is refused")
    world: SerializeAsAny[WorldParams] = Field(default_factory=_default_world)
    baseline: BaselineConfig = Field(default_factory=BaselineConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    true_concepts: TrueConceptsConfig = Field(default_factory=TrueConceptsConfig)
    prior: PriorConfig = Field(default_factory=PriorConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    microscope: MicroscopeConfig = Field(default_factory=MicroscopeConfig)
    concepts: ConceptsConfig = Field(default_factory=ConceptsConfig)
    ig: IGConfig = Field(default_factory=IGConfig)
    discover: DiscoverParams = Field(default_factory=DiscoverParams)
    peers: list[str] = Field([], description="peer methods to run: groupdro, jtt, dfr")
    jtt: JTTConfig = Field(default_factory=JTTConfig)
    dfr: DFRConfig = Field(default_factory=DFRConfig)
    executor: Literal["local", "ray"] = Field("local", description="where per-image work runs: local (this process) | ray (Ray Data, ray.*)")
    ray: RayConfig = Field(default_factory=RayConfig)

    @field_validator("run_id")
    @classmethod
    def _safe_run_id(cls, run_id: str | None) -> str | None:
        return None if run_id is None else check_run_id(run_id)

    @field_validator("peers")
    @classmethod
    def _known_peers(cls, peers: list[str]) -> list[str]:
        from igcore.peers import PEERS

        if problem := _unknown("peer method(s)", peers, PEERS):
            raise ValueError(problem)
        return _unique(peers)

    @model_validator(mode="after")
    def _peers_train_images(self) -> Config:
        if self.peers and self.features.backbone:
            raise ValueError(
                f"peers ({', '.join(self.peers)}) train whole image models and cannot be compared with linear heads on "
                "frozen features; run them without features.backbone"
            )
        return self

    @model_validator(mode="after")
    def _ray_streams_features(self) -> Config:
        # The ray path streams images through the frozen backbone once; models train on the cached features.
        if self.executor == "ray" and not self.features.backbone:
            raise ValueError(
                "executor=ray streams images through a frozen backbone and trains on its features; "
                "set features.backbone=<save_pretrained folder> (or use executor=local to train whole image models)"
            )
        if self.executor == "ray" and self.baseline.checkpoint:
            raise ValueError("executor=ray does not score a user's baseline.checkpoint; run it with executor=local")
        return self

    def public(self) -> dict[str, Any]:
        """JSON-ready dict (what the manifest stores)."""
        return self.model_dump(mode="json")


# ------------------------------------------------------------------------------------------------ loading


def _parse_value(text: str) -> Any:
    """``--set`` values: JSON when it parses (numbers, true/false/null, lists), else the raw string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``override`` merged into a copy of ``base``, recursively through sections (dicts)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        path = f"{prefix}{key}"
        if isinstance(out.get(key), dict):
            if not isinstance(value, Mapping):
                raise InputError(f"config key {path!r} is a section; set one of its keys, e.g. {path}.<key>=...")
            out[key] = _deep_merge(out[key], value, path + ".")
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_sets(sets: Sequence[str], only_prefix: str | None = None) -> dict[str, Any]:
    """``["a.b=1", ...]`` as a nested dict (later keys win). ``only_prefix`` restricts the keys allowed."""
    nested: dict[str, Any] = {}
    for item in sets:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise InputError(f"--set expects key=value, got {item!r}")
        if only_prefix is not None and not key.startswith(only_prefix + "."):
            raise InputError(f"only {only_prefix}.* keys can be set here, got {key!r}")
        parts = key.split(".")
        node = nested
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = _parse_value(raw.strip())
    return nested


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A TOML (``.toml``) or JSON config file as a dict; unreadable or malformed files are one-line errors."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"config file {str(p)!r} does not exist")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise InputError(f"config file {str(p)!r} cannot be read ({e.strerror}); check its permissions") from None
    except UnicodeDecodeError:
        raise InputError(f"config file {str(p)!r} is not UTF-8 text") from None
    try:
        data = tomllib.loads(text) if p.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"config file {str(p)!r} is not valid {'TOML' if p.suffix.lower() == '.toml' else 'JSON'}: {e}") from None
    if not isinstance(data, dict):
        raise InputError(f"config file {str(p)!r} must hold a table of keys")
    return data


def build_config(data: Mapping[str, Any], stored: bool = False) -> Config:
    """Validate a nested dict of config keys (a file, overrides or a stored run's config) into a :class:`Config`.

    The ``world`` section is validated by the parameters class of the world it names; other sections
    start from their defaults (free-form dicts such as ``microscope.params`` are merged key by key).
    ``stored=True`` (a finished run's config) skips the checks that files it names still exist.
    """
    from igcore.worlds import world_params_class

    data = dict(data)
    world = data.pop("world", {})
    if isinstance(world, WorldParams):
        world_params = world
    else:
        if not isinstance(world, Mapping):
            raise InputError("config key 'world' is a section; set one of its keys, e.g. world.<key>=...")
        name = world.get("name", "snowwolf")
        if not isinstance(name, str):
            raise InputError(f"world.name must be a world's name, got {name!r}")
        world_params = validated(world_params_class(name), world, "world", stored=stored)
    defaults = Config.model_construct().model_dump(exclude={"world"})
    return validated(Config, {**_deep_merge(defaults, data), "world": world_params}, stored=stored)


def load_config(path: str | Path | None = None, sets: Sequence[str] = ()) -> Config:
    """Defaults <- file (``.toml`` or ``.json``) <- ``key=value`` overrides, validated (one-line errors)."""
    data: dict[str, Any] = read_config_file(path) if path is not None else {}
    data = _deep_merge(data, parse_sets(sets)) if sets else data
    return build_config(data)


def default_config() -> Config:
    return build_config({})


# --------------------------------------------------------------------------------------------- describing


def _toml_value(value: Any) -> str:
    if value is REQUIRED:
        return repr(value)
    return "null" if value is None else json.dumps(value)


def describe_config(config: Config) -> list[tuple[str, Any, Any, str]]:
    """``(key, value, default, meaning)`` for every key of ``config``."""
    return describe(config)


def config_text(config: Config) -> str:
    """The effective config, one ``key = value  # meaning`` line per key (what ``igcore config`` prints)."""
    rows = describe_config(config)
    width = min(48, max(len(f"{k} = {_toml_value(v)}") for k, v, _, _ in rows))
    lines = []
    for key, value, default, doc in rows:
        left = f"{key} = {_toml_value(value)}"
        if default is REQUIRED:
            changed = " (required)"
        else:
            changed = "" if value == default else f" (default {_toml_value(default)})"
        lines.append(f"{left:<{width}}  # {doc}{changed}")
    return "\n".join(lines)


def _markdown_cell(value: Any) -> str:
    shown = _toml_value(value)
    return "see `python -m igcore config`" if len(shown) > 40 else f"`{shown}`"


def config_markdown(config: Config | None = None) -> str:
    """README's tables of keys (generated; ``python -m igcore config --markdown``): the run's keys, then the
    ``world.*`` keys of every registered world."""
    from igcore.worlds import WORLDS

    config = config or default_config()
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for key, _value, default, doc in describe_config(config):
        if not key.startswith("world."):
            lines.append(f"| `{key}` | {_markdown_cell(default)} | {doc.replace('|', '&#124;')} |")
    lines += ["", "| world | key | default | meaning |", "|---|---|---|---|"]
    for name, spec in sorted(WORLDS.items(), key=lambda item: item[0] != "snowwolf"):
        for key, field in spec.params.model_fields.items():
            default = "(required)" if field.is_required() else _markdown_cell(field.get_default(call_default_factory=True))
            lines.append(f"| {name} | `world.{key}` | {default} | {(field.description or '').replace('|', '&#124;')} |")
    return "\n".join(lines)
