"""The generated blocks of the docs are what their generators write: declared once in bench/registry.py, exactly as
last written (a SHA-256 in docs/provenance/<generator>.json), rendered from the data they come from, and with the
structure the current generators write (their quick settings, for the cheap ones; the test session's tiny run for
the default run's report)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import bench_methods, code_tables
from bench.common import OUT_ENV, PROVENANCE_DIR, SETTINGS_ENV, read_record
from bench.docs import ROOT, blocks, pages, replace_block, shape
from bench.regenerate import copy_docs, registry_markdown, structure_differences, verify
from bench.regenerate import main as regenerate
from bench.registry import BY_NAME, GENERATORS

PYTHON = sys.executable


def page_blocks(root: Path = ROOT) -> dict[str, dict[str, str]]:
    return {str(p.relative_to(root)): blocks(p.read_text()) for p in pages(root)}


def test_every_block_has_exactly_one_generator_and_every_declared_block_is_there() -> None:
    declared: dict[str, str] = {}
    for g in GENERATORS:
        for output in (*g.blocks, *g.provenance_blocks, *g.files):
            assert output not in declared, f"{output} is declared by {declared[output]} and {g.name}"
            declared[output] = g.name
    found = {f"{page}#{name}" for page, named in page_blocks().items() for name in named}
    assert found - declared.keys() == set(), "blocks no generator declares (bench/registry.py)"
    assert {o for o in declared if "#" in o} - found == set(), "declared blocks missing from the pages"
    assert len({g.name for g in GENERATORS}) == len(GENERATORS)  # a script may serve several (bench_search)


@pytest.mark.parametrize("generator", GENERATORS, ids=lambda g: g.name)
def test_pages_hold_exactly_what_the_generator_last_wrote(generator) -> None:  # noqa: ANN001  (a registry entry)
    assert verify(generator) == []
    record = read_record(generator.name)
    assert record["generator"] == generator.name and generator.module.split(".")[-1] in record["command"]
    if generator.measures and not record.get("legacy"):
        assert {"commit", "date", "seconds", "settings"} <= record.keys()
        assert {"cpu", "cores_available", "torch_threads", "blas_threads", "env"} <= record["machine"].keys()


def test_a_hand_edit_inside_a_generated_block_is_caught(tmp_path: Path) -> None:
    copy_docs(tmp_path)
    world = BY_NAME["world"]
    assert verify(world, tmp_path) == []
    page = tmp_path / "docs" / "bench_world.md"
    body = blocks(page.read_text())["world"]
    page.write_text(replace_block(page.read_text(), "world", body.replace("|", "| 9 ", 1)))
    assert verify(world, tmp_path) == ["docs/bench_world.md#world: not what `world` wrote (edited by hand, or written by an older generator)"]
    (tmp_path / PROVENANCE_DIR / "world.json").unlink()
    assert "no record" in verify(world, tmp_path)[0]


def test_readme_results_table_and_results_page_are_rendered_from_the_csvs() -> None:
    """README's table and RESULTS.md equal what the current renderer makes of the committed CSVs."""
    rendered = bench_methods.render(bench_methods.Results.read(ROOT))
    found = page_blocks()
    for (page, name), body in rendered.items():
        assert found[page][name] == body.rstrip(), f"{page}#{name} differs from the rendering of {bench_methods.CSVS}"
    methods = bench_methods.Results.read(ROOT).methods
    ig = methods[(methods["method"] == "ig_student") & (methods["rho"] == 1.0)]["worst_group_acc"]
    assert f"**{bench_methods.fmt(ig.mean(), ig.std(), compact=True)}**" in found["README.md"]["methods-readme"]


def test_tables_of_the_code_are_the_code() -> None:
    found = page_blocks()
    assert found["docs/SCALE.md"]["ray-keys"] == code_tables.ray_keys()
    assert found["docs/microscope.md"]["attribution-methods"] == code_tables.attribution_methods()
    assert found["docs/ARCHITECTURE.md"]["generators-table"] == registry_markdown()


def test_quick_settings_of_the_cheap_generators_write_the_committed_structure(tmp_path: Path) -> None:
    """`python -m bench.regenerate --quick --out DIR --check` on the generators marked `ci` (seconds each)."""
    cheap = [g.name for g in GENERATORS if g.ci]
    assert {"code-tables", "world", "attribution"} <= set(cheap)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([PYTHON, "-m", "bench.regenerate", "--quick", "--check", "--out", str(tmp_path), "--only", *cheap],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = read_record("world", tmp_path)
    assert record["settings"] == "quick" and record["machine"]["env"].get("OMP_NUM_THREADS") == os.environ.get("OMP_NUM_THREADS", "1")
    assert "quick settings" in blocks((tmp_path / "docs" / "bench_world.md").read_text())["world-provenance"]
    # the code's tables come out exactly as committed
    assert page_blocks(tmp_path)["README.md"]["config-table"] == page_blocks()["README.md"]["config-table"]


def test_the_default_run_report_has_the_committed_structure(runs_dir: Path, tmp_path: Path) -> None:
    """The report of the test session's tiny run has the structure of the committed report of the default run."""
    copy_docs(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), OUT_ENV: str(tmp_path), SETTINGS_ENV: "quick"}
    done = subprocess.run([PYTHON, "-m", "bench.report_run", str(runs_dir / "tiny")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert structure_differences(BY_NAME["default-run"], tmp_path) == []
    report = blocks((tmp_path / "docs" / "DEFAULT_RUN.md").read_text())["default-run"]
    assert "| p | specific |" in report and "Its judgments:" in report


def test_an_undeclared_output_is_refused_and_a_missing_one_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.common import Report

    monkeypatch.setenv(OUT_ENV, str(tmp_path))
    report = Report("world", [])
    with pytest.raises(ValueError, match="does not declare 'docs/RESULTS.md#methods'"):
        report.block("docs/RESULTS.md", "methods", "x")
    report.block("docs/bench_world.md", "world", "| a |\n|---|\n| 1 |")
    with pytest.raises(RuntimeError, match="did not write docs/contact_sheet.png"):
        report.publish()


def test_regenerate_refuses_an_unknown_generator(capsys: pytest.CaptureFixture[str]) -> None:
    assert regenerate(["--only", "nope"]) == 2
    assert "no generator 'nope'" in capsys.readouterr().err
    assert regenerate(["--list"]) == 0
    listed = capsys.readouterr().out
    assert all(f"`{g.name}`" in listed for g in GENERATORS)


def test_provenance_records_are_json_with_their_outputs() -> None:
    for g in GENERATORS:
        record = json.loads((ROOT / PROVENANCE_DIR / f"{g.name}.json").read_text())
        assert set(record["outputs"]) >= {o for o in (*g.blocks, *g.provenance_blocks, *g.files) if not o.endswith("/")}


def test_shape_masks_numbers_and_repeats_but_not_structure() -> None:
    a = "## Seed 0\n\n| ρ | erm |\n|---|---|\n| 0.9 | 1.0 |\n| 0.95 | 2.0 |\n\n- `erm`: 0.5\n- `oracle`: 0.9\n"
    b = "## Seed 3\n\n| ρ | erm |\n|---|---|\n| 1.0 | 7.0 |\n\n- `erm`: 0.1\n- `oracle`: 0.2\n"
    assert shape(a) == shape(b)
    assert shape(a) != shape(b.replace("| ρ | erm |", "| ρ | erm | jtt |").replace("|---|---|", "|---|---|---|"))
    assert shape(a) != shape(b.replace("`oracle`", "`dfr`"))
    assert shape(a) != shape(b.replace("## Seed", "## Seeds"))
    # the settings' lists of ρ and seeds are one figure: quick settings run fewer
    assert shape("ρ ∈ {0.9, 0.95, 0.99, 1.0}, seeds {0, 1, 2}: the mean.") == shape("ρ ∈ {0.95}, seeds {0}: the mean.")
    assert shape("ρ ∈ {0.9, 0.95}: the mean.") != shape("ρ ∈ {0.9, 0.95}, seeds {0}: the mean.")
    # a commit is a value: the pipeline's comparison names the one it ran against
    assert shape("## This code against commit `c4023e0eeb56`") == shape("## This code against commit `9cb3a1f`")
    assert shape("## This code against commit `c4023e0eeb56`") != shape("## This code against `erm`")


def test_structure_differences_name_the_block(tmp_path: Path) -> None:
    copy_docs(tmp_path)
    page = tmp_path / "docs" / "bench_world.md"
    body = blocks(page.read_text())["world"]
    page.write_text(replace_block(page.read_text(), "world", body + "\n\n## A new section"))
    (problem,) = structure_differences(BY_NAME["world"], tmp_path)
    assert problem.startswith("docs/bench_world.md#world: structure differs")
    shutil.rmtree(tmp_path / "docs")


def test_a_provenance_block_is_compared_unless_the_page_predates_the_records(tmp_path: Path) -> None:
    """A regenerated provenance block must keep the committed one's structure, except beside a legacy record (numbers
    measured before generators published records, whose provenance block says so in other words)."""
    reference, out = tmp_path / "reference", tmp_path / "out"
    copy_docs(reference)
    copy_docs(out)
    page = out / "docs" / "bench_world.md"
    page.write_text(replace_block(page.read_text(), "world-provenance", "## Provenance\n\nMeasured somewhere."))
    (problem,) = structure_differences(BY_NAME["world"], out, reference)
    assert problem.startswith("docs/bench_world.md#world-provenance: structure differs")
    record = tmp_path / "reference" / PROVENANCE_DIR / "world.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "legacy": True}))
    assert structure_differences(BY_NAME["world"], out, reference) == []
    page.write_text(page.read_text().replace("<!-- world-provenance:start -->", "").replace("<!-- world-provenance:end -->", ""))
    assert structure_differences(BY_NAME["world"], out, reference) == ["docs/bench_world.md#world-provenance: not written"]


def test_pipeline_compares_with_the_commit_that_last_published_it() -> None:
    from bench.bench_pipeline import published_commit

    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert published_commit({"commit": head[:12]}) == head[:12]
    assert published_commit({"commit": "0" * 12}) == "HEAD~1"  # not in this clone's history
    assert published_commit(None) == published_commit({}) == "HEAD~1"


def test_pipeline_comparison_adds_a_column_per_variant() -> None:
    """``--variant``: this code's run under one more setting, its seconds per stage and its wall beside the other two."""
    from bench.bench_pipeline import render_comparison

    before, after = [(70.0, {"erm": 12.0, "microscope": 24.0}, 130.0)], [(66.0, {"erm": 11.0, "microscope": 24.0}, 120.0, 0.3)]
    variant = [(69.5, {"erm": 12.5, "microscope": 25.0}, 128.0, 0.25)]
    lines = render_comparison("abc", before, after, [("runtime.keep_freed_memory=false", variant)])
    table = [line for line in lines if line.startswith("|")]
    assert table[0] == "| stage | `abc` s | this code s | ratio | this code, `runtime.keep_freed_memory=false` s |"
    assert all(line.count("|") == 6 for line in table)
    assert table[2] == "| erm | 12.00 | 11.00 | 0.92 | 12.50 |"
    assert table[-4] == "| **wall (process)** | **70.0** | **66.0** | 0.94 | **69.5** |"
    assert table[-3] == "| wall (process), range over the runs | 70.0 | 66.0 | – | 69.5 |"  # one run each
    assert table[-2] == "| CPU seconds (process) | 130.0 | 120.0 | 0.92 | 128.0 |"
    assert table[-1] == "| process exit after the run's files were final, s | – | 0.30 | – | 0.25 |"  # not timed: –
    assert "one setting changed" in " ".join(lines)
    assert "one setting changed" not in " ".join(render_comparison("abc", before, after))
    assert "median of" not in " ".join(lines) and lines[-1].endswith("not met.")
    other = render_comparison("abc", before, after, default_config=False)[-1]
    assert "not the default config" in other and "met" not in other


def test_pipeline_comparison_takes_the_median_of_repeated_runs() -> None:
    """``--repeats``: every cell is the median of its column's runs; the wall time also has its range."""
    from bench.bench_pipeline import TARGET_S, render_comparison

    before = [(70.0, {"erm": 12.0}, 130.0, 1.5), (90.0, {"erm": 20.0}, 131.0, 1.9), (72.0, {"erm": 13.0}, 129.0, 1.4)]
    after = [(58.0, {"erm": 11.0}, 110.0, 0.3), (80.0, {"erm": 18.0}, 112.0, 0.5), (59.0, {"erm": 10.0}, 111.0, 0.2)]
    lines = render_comparison("abc", before, after, load=("0.5 0.6 0.7", "1.0 0.9 0.8"))
    table = [line for line in lines if line.startswith("|")]
    assert table[2] == "| erm | 13.00 | 11.00 | 0.85 |"
    assert table[3] == "| **wall (process)** | **72.0** | **59.0** | 0.82 |"
    assert table[4] == "| wall (process), range over the runs | 70.0–90.0 | 58.0–80.0 | – |"
    assert table[5] == "| CPU seconds (process) | 130.0 | 111.0 | 0.85 |"
    assert table[6] == "| process exit after the run's files were final, s | 1.50 | 0.30 | – |"
    text = " ".join(lines)
    assert "median of 3 runs, taken in turns" in text and "0.5 0.6 0.7" in text and "1.0 0.9 0.8" in text
    assert lines[-1].startswith("**The default run with this code:** 59.0 s (median of 3 runs, 58.0–80.0 s)")
    assert lines[-1].endswith(": met.") and TARGET_S == 60.0


def test_thread_bench_reports_every_policy_and_the_runs_own_wall_time() -> None:
    """With stages at once a run's wall time is not its stages' sum: the last row is the manifest's total."""
    from bench.bench_threads import POLICIES, TOTAL, markdown

    rows = [{"stage": stage, "policy": policy, "competing": busy, "seconds": seconds * (1.5 if busy else 1.0)}
            for policy in POLICIES for busy in (False, True) for stage, seconds in (("erm", 2.0), ("oracle", 2.0), (TOTAL, 2.5))]
    lines = markdown(rows)
    assert lines[0].count("busy / idle") == len(POLICIES) == 4 and "2 stages at once" in lines[0] and "the engine's default" in lines[0]
    assert lines[-1].startswith(f"| {TOTAL} | **2.50** |") and lines[-1].endswith("| 1.50× | 1.50× | 1.50× | 1.50× |")
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["erm", "oracle", TOTAL]


def test_thread_bench_verdict_reads_the_slowest_stage_of_the_default_policy() -> None:
    from bench.bench_threads import DEFAULT, TOTAL, verdict

    seconds = {("erm", False): 2.0, ("erm", True): 2.4, ("oracle", False): 1.0, ("oracle", True): 1.6,
               ("vocabulary", False): 0.01, ("vocabulary", True): 0.05, (TOTAL, False): 3.0, (TOTAL, True): 9.0}
    rows = [{"stage": stage, "policy": policy, "competing": busy, "seconds": value * (3 if policy != DEFAULT else 1)}
            for (stage, busy), value in seconds.items() for policy in (DEFAULT, "1 thread")]
    text = verdict(rows)  # the run's wall time and stages too short to time are not stages' slowdowns
    assert "1.60× its idle seconds (oracle)" in text and text.endswith(": not met.")
    rows = [r if (r["stage"], r["competing"]) != ("oracle", True) else {**r, "seconds": 1.4} for r in rows if r["policy"] == DEFAULT]
    assert "1.40× its idle seconds (oracle)" in verdict(rows) and verdict(rows).endswith(": met.")


def test_first_launch_says_how_the_demo_run_shared_the_cpus(tmp_path: Path) -> None:
    from bench.bench_first_launch import demo_schedule, render

    run = tmp_path / "20261207-demo"
    run.mkdir()
    stages = {"world": {"seconds": 2.0, "schedule": {"started_s": 0.0, "stages_at_once": 1, "others_busy_cpus": 0.0}},
              "erm": {"seconds": 9.0, "schedule": {"started_s": 2.0, "stages_at_once": 1, "others_busy_cpus": 0.7}},
              "concepts": {"seconds": 9.0, "schedule": {"started_s": 11.0, "stages_at_once": 2, "others_busy_cpus": 0.2}}}
    (run / "manifest.json").write_text(json.dumps({"stages": stages}))
    schedule = demo_schedule(tmp_path)
    assert schedule == {"at_once": 2, "others_max": 0.7, "busy_starts": 1, "stages": 3}
    marks = {"clone": 0.1, "install": 40.0, "server": 41.0, "heading": 44.0, "chart": 120.0, "complete": 130.0, "schedule": schedule}
    text = render(marks, warm_cache=False)
    assert "ran up to 2 stages at once" in text and "at most 0.70 CPUs busy" in text and "1 of its 3 stages" in text
    assert demo_schedule(tmp_path / "none") is None
