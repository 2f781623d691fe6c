"""Whole runs on users' data: the waterbirds and folder layouts on fixtures the tests write (nothing downloaded).

The session's runs on them (``byod_runs``, tests/conftest.py) are the first runs; a second run on the same data is
made here."""

from __future__ import annotations

from pathlib import Path

import pytest

from igcore.cli import main
from igcore.config import load_config
from igcore.pipeline import run_pipeline
from igcore.store import load_run_dir
from testkit import byod_fixtures as fx


@pytest.fixture(scope="module")
def waterbirds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return fx.make_waterbirds(tmp_path_factory.mktemp("wb") / "data", n=64)


@pytest.mark.slow
def test_waterbirds_run_completes_and_repeats(byod_runs: Path, byod_data: dict, tmp_path: Path) -> None:
    """The session's Waterbirds-layout run, and a second run of the same config on the same data and cache."""
    a = load_run_dir(byod_runs / "waterbirds")
    config = load_config(None, [*fx.TINY_SETS, *byod_data["waterbirds"], "run_id=b", f"world.cache_dir={byod_data['cache']}"])
    b = load_run_dir(run_pipeline(config, tmp_path / "runs", progress=False))
    assert a.complete and b.complete
    ma, mb = a.results(), b.results()
    assert ma.methods == mb.methods and ma.hypotheses.z_star == mb.hypotheses.z_star  # same seed, same metrics
    assert set(ma.methods) >= {"erm", "oracle", "true_concepts", "ig_direct", "no_prior", "ig_student"}
    assert ma.world.name == "waterbirds" and ma.world.groups == [
        "landbird/land", "landbird/water", "waterbird/land", "waterbird/water"]
    ids = [c.id for c in ma.world.vocabulary]
    assert "place::bamboo_forest" in ids and "has_bill_shape::hooked" in ids
    assert "has_eye_color::red" not in ids  # never present in the concept bank: dropped, with a note
    notes = [n.note for n in a.info().notes]
    assert any("has_eye_color::red" in n for n in notes)
    assert any("No ratings for this world's concepts" in n for n in notes)  # nobody rated these concepts
    assert any("carry over from the shipped" in n for n in notes)
    erm = a.metrics["microscope"]["erm"]
    assert "swaps" in erm["unavailable"] and "swap_flip_rate" not in erm  # photographs: no renderer
    assert erm["relevance_on_animal"]  # masks come from the CUB segmentations
    assert a.info().stages["world"].model_extra["load"]["cache"] == "miss"
    assert b.info().stages["world"].model_extra["load"]["cache"] == "hit"


@pytest.mark.slow
def test_folder_run_without_masks_says_what_is_missing(byod_runs: Path) -> None:
    run = load_run_dir(byod_runs / "folder")  # a CSV manifest without masks
    metrics = run.metrics
    assert metrics["world"]["has_masks"] is False and metrics["world"]["can_render"] is False
    erm = metrics["microscope"]["erm"]
    assert "object masks" in erm["unavailable"]["relevance_on_animal"] and "relevance_on_animal" not in erm
    assert set(metrics["methods"]["ig_student"]["group_acc"]) == {"sparrow/meadow", "sparrow/pond", "heron/meadow", "heron/pond"}
    assert set(run.tensors("test_eval")) == {"images"}  # no masks stored when the data has none


def test_judgments_naming_unknown_concepts_exit_2_before_training(waterbirds: dict[str, Path], tmp_path: Path, capsys) -> None:
    bad = tmp_path / "ratings.csv"
    bad.write_text("rater,concept,class,rating\ndev-1,has_glowing_horns,waterbird,5\n")
    code = main(["run", "--out", str(tmp_path / "runs"), "--set", "world.name=waterbirds", "--set", f"world.root={waterbirds['root']}",
                 "--set", f"world.cub_root={waterbirds['cub_root']}", "--set", f"prior.judgments={bad}",
                 "--set", f"world.cache_dir={tmp_path / 'cache'}", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "has_glowing_horns" in err[0]
    assert not (tmp_path / "runs").exists()


def test_judgments_naming_unknown_classes_exit_2(waterbirds: dict[str, Path], tmp_path: Path, capsys) -> None:
    bad = tmp_path / "ratings.csv"
    bad.write_text("rater,concept,class,rating\ndev-1,has_bill_shape::hooked,husky,5\n")
    code = main(["run", "--out", str(tmp_path / "runs"), "--set", "world.name=waterbirds", "--set", f"world.root={waterbirds['root']}",
                 "--set", f"world.cub_root={waterbirds['cub_root']}", "--set", f"prior.judgments={bad}",
                 "--set", f"world.cache_dir={tmp_path / 'cache'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "husky" in err[0]


def test_bad_data_set_exits_2_and_writes_nothing(tmp_path: Path, capsys) -> None:
    data = fx.make_waterbirds(tmp_path / "data", n=24, with_cub=False)
    (data["root"] / fx._filename(3, 1)).unlink()  # one image missing
    code = main(["run", "--out", str(tmp_path / "runs"), "--set", "world.name=waterbirds", "--set", f"world.root={data['root']}",
                 "--set", f"world.cache_dir={tmp_path / 'cache'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "missing or unreadable" in err[0]
    assert not (tmp_path / "runs").exists()
