import json

import pytest

from igcore.config import DEFAULTS, load_config
from igcore.errors import InputError


def test_defaults_and_overrides(tmp_path):
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text('seed = 3\n[world]\nrho = 0.99\n')
    cfg = load_config(cfg_file, ["world.n_train=100", "baseline.arch=vit-tiny"])
    assert cfg["seed"] == 3
    assert cfg["world"]["rho"] == 0.99
    assert cfg["world"]["n_train"] == 100
    assert cfg["baseline"]["arch"] == "vit-tiny"
    assert DEFAULTS["world"]["n_train"] != 100  # defaults untouched


def test_json_config(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"world": {"image_size": 48}}))
    assert load_config(p)["world"]["image_size"] == 48


@pytest.mark.parametrize(
    "sets, message",
    [
        (["world.rho=0.3"], "world.rho"),
        (["world.rho=1.5"], "world.rho"),
        (["world.n_train=0"], "world.n_train"),
        (["world.n_test_eval=-5"], "world.n_test_eval"),
        (["world.colour=red"], "unknown config key"),
        (["nonsense=1"], "unknown config key"),
        (["world=3"], "section"),
        (["seed"], "key=value"),
        (["device=tpu"], "device"),
        (["run_id=../evil"], "invalid run id"),
    ],
)
def test_bad_values_raise_input_error(sets, message):
    with pytest.raises(InputError, match=message):
        load_config(None, sets)


def test_missing_and_malformed_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("seed = = 1")
    with pytest.raises(InputError, match="not valid"):
        load_config(bad)
