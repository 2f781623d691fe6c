"""The bad-input corpus (``tests/bad_inputs/``): every case ends in one clear line and changes nothing on disk.

``cli.json`` holds command lines (flags, config values and files, data files, judgments) with
placeholders; ``dashboard.json`` holds what a person can give the dashboard (query strings, the rating
form, the run picker). Small input files live in ``files/``; the two 100 MB lines are generated here.

- CLI: exit code 2 and exactly one line ``error: …`` on stderr that names the problem (the case's
  fragment) and is at most :data:`MAX_LINE` characters, no traceback; the runs folder, the input files
  and the data folder are byte-for-byte what they were (a ``--out`` that holds a real run, so
  ``microscope RUN_DIR`` cases are covered too; the folder world's decoded-image cache is not watched:
  the BOM case, which must work, fills it). Runs use a tiny config, so a case the engine wrongly
  accepted fails in seconds instead of training for minutes.
- Dashboard (AppTest): no exception, a note that names the problem and renders inertly (no link, image or
  HTML from the input: markdown-it), and neither the runs folder nor the judgments database changed.

A case with ``known_bug`` is an engine defect outside the dashboard, reported and expected to fail here
(strict: it fails this test the day it is fixed, so the mark is removed then).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from dashboard.runs import list_runs
from igcore.cli import main
from testkit import byod_fixtures as fx
from testkit.runs import SMALL_WORLD, set_args

CORPUS = Path(__file__).resolve().parent / "bad_inputs"
APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
MAX_LINE = 1000
TIMEOUT = 120
BIG = 100 * 1024 * 1024
#: Tiny runs: a wrongly accepted case trains for seconds. Snowwolf keys only for the snowwolf world.
TINY_WORLD = set_args(SMALL_WORLD)
TINY_MODELS = ["--set", "world.image_size=32", "--set", "baseline.epochs=1", "--set", "concepts.epochs=1",
               "--set", "microscope.per_group=1", "--set", "search.n_ranked=10"]


def _cases(name: str) -> list[Any]:
    params = []
    for case in json.loads((CORPUS / name).read_text())["cases"]:
        marks = [pytest.mark.xfail(strict=True, reason=case["known_bug"])] if "known_bug" in case else []
        if "generate" in case:
            marks.append(pytest.mark.slow)
        params.append(pytest.param(case, id=case["id"], marks=marks))
    return params


CLI_CASES = _cases("cli.json")
DASHBOARD_CASES = _cases("dashboard.json")


def test_the_corpus_is_broad() -> None:
    """At least 40 cases, spread over every kind of input the CLI and the dashboard take (two or more of each)."""
    ids = [p.values[0]["id"] for p in CLI_CASES + DASHBOARD_CASES]
    assert len(ids) == len(set(ids)) >= 40
    for prefix in ("flag-", "value-", "name-", "config-", "file-", "judgments-", "pairwise-", "query-", "rater-", "rating-", "picker-"):
        assert sum(i.startswith(prefix) for i in ids) >= 2, prefix


# ------------------------------------------------------------------------------------------ snapshots
def snapshot(*roots: Path) -> dict[str, Any]:
    """Every file and link under ``roots``: content hash (or size and mtime past 4 MB) — what a write changes."""
    out: dict[str, Any] = {}
    for root in roots:
        if not root.exists():
            out[str(root)] = None
            continue
        for p in sorted(root.rglob("*")):
            if p.is_symlink():
                out[str(p)] = ("link", os.readlink(p))
            elif p.is_file():
                st = p.stat()
                digest = hashlib.sha256(p.read_bytes()).hexdigest() if st.st_size <= 4 << 20 else (st.st_size, st.st_mtime_ns)
                out[str(p)] = digest
            elif p.is_dir():
                out[str(p)] = "dir"
    return out


# ------------------------------------------------------------------------------------------ CLI
@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, runs_dir: Path) -> dict[str, Path]:
    """Copies of the corpus files, a generated data folder, and a runs folder holding a complete run."""
    base = tmp_path_factory.mktemp("bad-inputs")
    files = Path(shutil.copytree(CORPUS / "files", base / "files"))
    folder = fx.make_folder(base / "folder", n=24).parent
    out = base / "runs"
    out.mkdir()
    shutil.copytree(runs_dir / "tiny", out / "tiny")
    return {"files": files, "folder": folder, "out": out}


def _generate(kind: str, where: Path, folder: Path | None) -> Path:
    """A file with one 100 MB line (not committed): a manifest row's path, or a judgment's concept."""
    if kind == "folder_100mb_line":
        assert folder is not None
        rows = (folder / "manifest.csv").read_text().splitlines()
        with (folder / "manifest.csv").open("w") as f:
            f.write(rows[0] + "\n")
            f.write("imgs/" + "a" * BIG + ".png," + rows[1].split(",", 1)[1] + "\n")
            f.write("\n".join(rows[2:]) + "\n")
        return folder / "manifest.csv"
    if kind == "judgments_100mb_line":
        path = where / "ratings.csv"
        with path.open("w") as f:
            f.write("rater,concept,class,rating\nr1,")
            f.write("c" * BIG)
            f.write(",wolf,5\n")
        return path
    raise ValueError(kind)


def _argv(case: dict[str, Any], places: dict[str, str]) -> list[str]:
    argv = [a.format(**places) for a in case["argv"]]
    command, rest = argv[0], argv[1:]
    folder_world = "world.name=folder" in rest
    if case.get("tiny") or command == "run":
        tiny = ([] if folder_world else TINY_WORLD) + TINY_MODELS
        rest = tiny + rest  # the case's own values come last, so they win
    if command == "run":
        rest = ["--out", places["out"], "--quiet", *rest]
    return [command, *rest]


@pytest.mark.parametrize("case", CLI_CASES)
def test_cli_case(case: dict[str, Any], pristine: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    if case.get("setup") == "a-file":
        (scratch / "a-file").write_text("a file where a folder is expected\n")
    folder = None
    if "manifest" in case:
        folder = Path(shutil.copytree(pristine["folder"], tmp_path / "folder"))
        if case["manifest"]:
            shutil.copy(pristine["files"] / case["manifest"], folder / "manifest.csv")
        for src, dst in case.get("copy", {}).items():
            shutil.copy(pristine["files"] / src, folder / dst)
        for link, target in case.get("symlink", {}).items():
            os.symlink(target, folder / link)
    generated = _generate(case["generate"], scratch, folder) if "generate" in case else None
    places = {"tmp": str(scratch), "cache": str(tmp_path / "cache"), "files": str(pristine["files"]), "folder": str(folder), "out": str(pristine["out"]),
              "run": str(pristine["out"] / "tiny"), "generated": str(generated)}
    argv = _argv(case, places)
    watched = [pristine["out"], pristine["files"], scratch] + ([folder] if folder else [])
    before = snapshot(*watched)
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.strip().splitlines()
    if case.get("ok"):
        assert code == 0 and not any(line.startswith("error:") for line in lines), err[-2000:]
    else:
        assert code == 2, (code, err[-2000:])
        assert len(lines) == 1 and lines[0].startswith("error: "), err[:2000]
        assert len(lines[0]) <= MAX_LINE, f"error line is {len(lines[0])} characters: {lines[0][:300]}…"
        assert case["expect"] in lines[0], lines[0]
    assert snapshot(*watched) == before, "the case changed files on disk"


# ------------------------------------------------------------------------------------------ dashboard
def _db_rows(root: Path) -> Any:
    path = root / "judgments.sqlite"
    if not path.exists():
        return None
    with sqlite3.connect(path) as conn:
        return [conn.execute(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in ("ratings", "pairwise", "backups")]


def dashboard_snapshot(root: Path) -> tuple[dict[str, Any], Any]:
    """The runs folder's files (the judgments database by its rows: SQLite may rewrite pages on a read)."""
    files = {k: v for k, v in snapshot(root).items() if "judgments.sqlite" not in Path(k).name}
    return files, _db_rows(root)


def open_app(page: str = "overview", params: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params.update(params or {})
    if page != "overview":
        at.switch_page(f"app_pages/{page}.py")
    return at.run()


@pytest.fixture(scope="module")
def dashboard_runs(runs_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private copy of the runs folder, each page visited once (the judgments database exists)."""
    root = Path(shutil.copytree(runs_dir, tmp_path_factory.mktemp("dashboard-bad-inputs") / "runs"))
    previous = os.environ.get("IG_RUNS_DIR")
    os.environ["IG_RUNS_DIR"] = str(root)
    try:
        for page in ("overview", "hypotheses", "microscope", "compare", "prior", "share"):
            at = open_app(page)
            assert not at.exception, [e.value for e in at.exception]
        assert (root / "judgments.sqlite").exists()
        yield root
    finally:
        os.environ["IG_RUNS_DIR"] = previous or ""
        if previous is None:
            os.environ.pop("IG_RUNS_DIR")


def inert(note: str) -> bool:
    html = MarkdownIt("commonmark", {"html": False}).render(note)
    return html.count("<p>") == 1 and not any(t in html for t in ("<a ", "<img", "<script", "<h1", "<ul", "<ol"))


@pytest.mark.parametrize("case", DASHBOARD_CASES)
def test_dashboard_case(case: dict[str, Any], dashboard_runs: Path) -> None:
    root = dashboard_runs
    if case["kind"] == "picker" and case.get("remove"):
        shutil.copytree(root / "tiny", root / case["select"])
    before = dashboard_snapshot(root) if not case.get("remove") else None
    if case["kind"] == "query":
        at = open_app(case["page"], case["params"])
    elif case["kind"] == "rating":
        at = open_app("prior")
        at.text_input(key="w_rater").input(case["rater"])
        at.number_input(key="w_rating").set_value(case["rating"])
        next(b for b in at.button if b.label == "Add rating").click().run()
    else:  # the run picker
        list_runs.clear()
        at = open_app("overview")
        if case.get("remove"):
            shutil.rmtree(root / case["select"])
            before = dashboard_snapshot(root)
        at.selectbox(key="w_run").set_value(case["select"]).run()
    assert not at.exception, [e.value for e in at.exception]
    notes = [str(n.value) for kind in (at.info, at.warning, at.error) for n in kind]
    named = [n for n in notes if case["expect"] in n]
    assert named, notes
    assert all(inert(n) for n in named), named
    assert not any("could not be drawn" in n for n in notes), notes
    assert at.title, "the page still renders (with a safe default)"
    assert dashboard_snapshot(root) == before, "the case changed the runs folder or the judgments"
