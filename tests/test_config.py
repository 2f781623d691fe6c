"""The config schema: defaults, overrides, one-line errors for every bad value, the generated docs."""

import json
import re
from pathlib import Path

import pytest

from igcore.cli import main
from igcore.config import (
    Config,
    build_config,
    config_markdown,
    config_text,
    default_config,
    describe_config,
    load_config,
)
from igcore.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_and_overrides(tmp_path):
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text('seed = 3\n[world]\nrho = 0.9\n')
    cfg = load_config(cfg_file, ["world.n_train=100", "baseline.arch=vit-tiny"])
    assert cfg.seed == 3
    assert cfg.world.rho == 0.9
    assert cfg.world.n_train == 100
    assert cfg.baseline.arch == "vit-tiny"
    assert default_config().world.n_train == 2000  # defaults untouched


def test_json_config_and_later_sets_win(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"world": {"image_size": 48}, "seed": 5}))
    cfg = load_config(p, ["seed=6"])
    assert cfg.world.image_size == 48 and cfg.seed == 6


def test_free_form_params_merge_key_by_key():
    """Setting one attribution parameter keeps every other method's and parameter's default."""
    cfg = load_config(None, ["microscope.params.integrated_gradients.n_steps=4"])
    defaults = default_config().microscope.params
    assert cfg.microscope.params["integrated_gradients"] == {**defaults["integrated_gradients"], "n_steps": 4}
    assert cfg.microscope.params["occlusion"] == defaults["occlusion"]


def test_stored_config_round_trips():
    cfg = load_config(None, ["world.rho=0.99", 'peers=["dfr"]', "seed=4"])
    again = build_config(cfg.public(), stored=True)
    assert again == cfg and isinstance(again, Config)


def test_stored_config_keeps_files_that_are_gone(tmp_path):
    ratings = tmp_path / "r.csv"
    ratings.write_text("rater,concept,class,rating\n")
    cfg = load_config(None, [f"prior.judgments={ratings}"])
    ratings.unlink()
    assert build_config(cfg.public(), stored=True).prior.judgments == str(ratings)
    with pytest.raises(InputError, match="does not exist"):
        build_config(cfg.public())


@pytest.mark.parametrize(
    "sets, message",
    [
        # the cases named in the "One explicit pipeline" issue
        (["run_id=123"], "run_id"),
        (["baseline.lr=NaN"], "baseline.lr must be a finite number"),
        (["baseline.lr=-Infinity"], "baseline.lr must be a finite number"),
        (["concepts.lr=-1"], "concepts.lr must be greater than 0"),
        (["baseline.arch=5"], "baseline.arch must be a valid string"),
        (['baseline.arch=["resnet-tiny"]'], "baseline.arch must be a valid string"),
        (["true_concepts.C=0"], "true_concepts.C"),
        (["true_concepts.C=NaN"], "true_concepts.C"),
        (["jtt.id_epochs=0"], "jtt.id_epochs"),
        (["jtt.upweight=-2"], "jtt.upweight"),
        (["jtt.upweight=Infinity"], "jtt.upweight"),
        (["dfr.C=-1"], "dfr.C"),
        (['microscope.methods=["lime"]'], "unknown attribution method 'lime'"),
        (["microscope.params.lime.n_steps=3"], "unknown attribution method 'lime'"),
        (["microscope.params.occlusion.window=0"], "microscope.params.occlusion.window must be greater than or equal to 1"),
        (["microscope.params.occlusion.baseline=pink"], "microscope.params.occlusion.baseline must be 'black', 'gray' or 'white'"),
        (["microscope.params.gradient_shap.stdevs=-0.1"], "microscope.params.gradient_shap.stdevs must be greater than or equal to 0"),
        (["microscope.params.saliency.bogus=1"], "unknown config key 'microscope.params.saliency.bogus'; valid keys here: abs"),
        (['peers=["groupdro","magic"]'], "unknown peer method(s) 'magic'"),
        (['peers=["dfr","dfr"]'], "must not repeat"),
        (["prior.encoder=bert"], "unknown text encoder 'bert'"),
        (["prior.min_plausibility=0.5"], "prior.min_plausibility"),
        (["prior.min_plausibility=0"], "prior.min_plausibility"),
        (["microscope.tcav.correction=fdr"], "unknown correction 'fdr'"),
        # ranges, types and names
        (["world.rho=0.3"], "world.rho"),
        (["world.rho=1.5"], "world.rho"),
        (["world.n_train=0"], "world.n_train"),
        (["world.n_test_eval=-5"], "world.n_test_eval"),
        (["world.n_train=1.5"], "world.n_train"),
        (['world.n_train="100"'], "world.n_train"),
        (["world.colour=red"], "unknown config key 'world.colour'"),
        (["world.name=mars"], "unknown world 'mars'"),
        (["nonsense=1"], "unknown config key 'nonsense'"),
        (["search.nonsense=1"], "unknown config key 'search.nonsense'"),
        (["world=3"], "section"),
        (["microscope.tcav=3"], "section"),
        (["seed"], "key=value"),
        (["seed=true"], "seed must be a valid integer"),
        (["seed=-1"], "seed"),
        (["device=tpu"], "device"),
        (["run_id=../evil"], "invalid run id"),
        (["search.dtype=float16"], "search.dtype"),
        (["ig.posterior_predictive=1"], "ig.posterior_predictive"),
    ],
)
def test_bad_values_raise_one_line_input_error(sets, message):
    with pytest.raises(InputError) as e:
        load_config(None, sets)
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "sets",
    [["run_id=123"], ["baseline.lr=NaN"], ["concepts.lr=-1"], ["baseline.arch=5"], ["true_concepts.C=0"],
     ["jtt.upweight=0"], ["dfr.C=0"], ['microscope.models=["bogus"]']],
)
def test_cli_exits_2_before_any_work(sets, tmp_path, capsys):
    """A bad value stops `run` with one line and writes nothing (no run directory, no temporary folder)."""
    code = main(["run", "--out", str(tmp_path / "runs"), *(a for s in sets for a in ("--set", s))])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ")
    assert not (tmp_path / "runs").exists()


def test_missing_malformed_and_unreadable_files(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("seed = = 1")
    with pytest.raises(InputError, match="not valid TOML"):
        load_config(bad)
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    with pytest.raises(InputError, match="table of keys"):
        load_config(listing)
    binary = tmp_path / "junk.toml"
    binary.write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(InputError, match="UTF-8"):
        load_config(binary)
    locked = tmp_path / "locked.toml"
    locked.write_text("seed = 1\n")

    def deny(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_text", deny)
    with pytest.raises(InputError, match="cannot be read"):
        load_config(locked)


def test_every_key_has_a_meaning():
    rows = describe_config(default_config())
    assert len(rows) > 60
    missing = [key for key, _, _, doc in rows if not doc.strip()]
    assert missing == []


def test_config_command_prints_every_key_with_its_meaning(capsys):
    assert main(["config", "--set", "world.rho=0.9"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^world\.rho = 0\.9 +# .*\(default 0\.99\)$", out, re.M)
    assert len(out.strip().splitlines()) == len(describe_config(default_config()))
    assert config_text(default_config()).splitlines()[0].startswith("seed = 0")


def test_readme_table_is_generated_from_the_schema():
    """README's table of keys is exactly what `python -m igcore config --markdown` prints."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- config-table:start -->\n(.*?)\n<!-- config-table:end -->", readme, re.S)
    assert block, "README.md lacks the generated config table markers"
    assert block.group(1).strip() == config_markdown().strip()
