"""Run configuration: one declarative schema (pydantic), overridden by a TOML/JSON file and ``--set k=v``.

Every key the pipeline reads is declared once, with its type, default, bounds and one line of
documentation; ``python -m igcore config`` prints the effective config with each key's meaning, and
README's table of keys is generated from this schema. Names in lists (attribution methods, peers, the
text encoder, the architecture) are checked against their registries. Everything is validated before any
work; a problem is one line (:class:`~igcore.errors.InputError`) naming the key.

One job per module: :mod:`~igcore.config.schema` (the :class:`Config` composed of the sections its parts
declare), :mod:`~igcore.config.sets` (``--set`` parsing and merging), :mod:`~igcore.config.loading`
(files, validation) and :mod:`~igcore.config.render` (the config for people).
"""

from __future__ import annotations

from igcore.baseline_params import BaselineConfig
from igcore.concepts_params import ConceptsConfig
from igcore.config.loading import build_config, default_config, load_config, read_config_file
from igcore.config.render import config_markdown, config_text, describe_config
from igcore.config.schema import Config, IGConfig, RayConfig, TrueConceptsConfig
from igcore.config.sets import deep_merge, parse_sets
from igcore.discover.params import DiscoverParams
from igcore.features_params import FeaturesConfig
from igcore.microscope.params import CounterfactualsConfig, MicroscopeConfig, SanityConfig, SwapsConfig, TCAVConfig
from igcore.peers import DFRConfig, JTTConfig
from igcore.prior.params import PriorConfig
from igcore.schema import RUN_ID_PATTERN, check_run_id
from igcore.search.params import SearchConfig

__all__ = [
    "RUN_ID_PATTERN",
    "BaselineConfig",
    "ConceptsConfig",
    "Config",
    "CounterfactualsConfig",
    "DFRConfig",
    "DiscoverParams",
    "FeaturesConfig",
    "IGConfig",
    "JTTConfig",
    "MicroscopeConfig",
    "PriorConfig",
    "RayConfig",
    "SanityConfig",
    "SearchConfig",
    "SwapsConfig",
    "TCAVConfig",
    "TrueConceptsConfig",
    "build_config",
    "check_run_id",
    "config_markdown",
    "config_text",
    "deep_merge",
    "default_config",
    "describe_config",
    "load_config",
    "parse_sets",
    "read_config_file",
]
