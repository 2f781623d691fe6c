"""The stage graph: one explicit order whatever is imported first, requirements checked before any work,
one writer per metrics section."""

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import igcore
from igcore.cli import main
from igcore.config import load_config
from igcore.errors import InputError
from igcore.peers import PEERS
from igcore.stages import MODEL_NAMES, STAGE_NAMES, STAGES, select_stages, with_prerequisites

ROOT = Path(__file__).resolve().parents[1]
#: The pipeline's order: its own stages, every registered peer method (after the student), the microscope last.
EXPECTED = ["world", "features", "erm", "oracle", "true_concepts", "discover", "concepts", "vocabulary", "ig", "student", *PEERS, "discover_effects",
            "microscope"]


def _modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(igcore.__path__, "igcore.") if not m.name.endswith("__main__")]
    dashboard = [f"dashboard.{m.name}" for m in pkgutil.iter_modules([str(ROOT / "dashboard")])
                 if m.name not in ("app",) and not m.ispkg]
    dashboard += [f"dashboard.components.{m.name}" for m in pkgutil.iter_modules([str(ROOT / "dashboard" / "components")])]
    return sorted(names) + sorted(dashboard)


#: Forks one child per module from a parent that has imported the third-party libraries (and nothing
#: of igcore or the dashboard): each child imports the module under test first, then reads the stage
#: order. A first child reports which third-party modules the project loads, so the parent preloads
#: them and each child only runs the project's own module code.
_DRIVER = """
import importlib, json, os, sys

def in_child(fn):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            out = fn()
        except BaseException as e:
            out = {"error": repr(e)}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data)

def ours(name):
    return name.split(".")[0] in ("igcore", "dashboard")

def third_party():
    for name in sys.argv[1:]:
        importlib.import_module(name)
    return sorted(m for m in sys.modules if not ours(m))

def first(name):
    def run():
        importlib.import_module(name)
        from igcore.stages import STAGES
        return [s.name for s in STAGES]
    return run

for module in in_child(third_party):
    try:
        importlib.import_module(module)
    except Exception:
        pass
assert not [m for m in sys.modules if ours(m)]
print(json.dumps({name: in_child(first(name)) for name in sys.argv[1:]}))
"""


@pytest.mark.slow  # one fresh import per module of the project: tens of seconds
def test_stage_order_is_the_same_whichever_module_is_imported_first():
    """For every igcore and dashboard module: a fresh interpreter state that imports it first sees the same order."""
    modules = _modules()
    assert "igcore.resolve" in modules and "igcore.microscope.runner" in modules and "dashboard.url_state" in modules
    proc = subprocess.run([sys.executable, "-c", _DRIVER, *modules], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(results) == sorted(modules)
    wrong = {name: order for name, order in results.items() if order != EXPECTED}
    assert wrong == {}


def test_stage_graph_is_consistent():
    assert list(PEERS)[:3] == ["groupdro", "jtt", "dfr"]
    assert list(STAGE_NAMES) == EXPECTED
    config = load_config(None, [f"peers={json.dumps(list(PEERS))}"])
    provided: set[str] = set()
    for stage in STAGES:  # every requirement is provided by an earlier stage, in the full order
        assert set(stage.requirements(config)) <= provided, stage.name
        provided |= set(stage.provides)
    peer_models = tuple(r.removeprefix("model:") for p in PEERS.values() for r in p.results if r.startswith("model:"))
    assert MODEL_NAMES == ("erm", "oracle", "ig_student", *peer_models) and peer_models[:2] == ("groupdro", "jtt")


def test_one_writer_per_metrics_section():
    seen: dict[str, str] = {}
    for stage in STAGES:
        for key in stage.writes:
            assert key not in seen, f"{key} is written by {seen.get(key)} and {stage.name}"
            seen[key] = stage.name
    # no section holds a key another stage writes, whichever of the two comes first in the pipeline
    nested = [(outer, inner) for outer in seen for inner in seen if inner.startswith(outer + ".") and seen[inner] != seen[outer]]
    assert nested == [], [f"{seen[o]} writes {o}, {seen[i]} writes {i} inside it" for o, i in nested]


def test_default_selection_follows_peers():
    names = [s.name for s in select_stages(load_config())]
    assert names == [n for n in EXPECTED if n != "features" and n not in PEERS]
    names = [s.name for s in select_stages(load_config(None, ['peers=["dfr"]']))]
    assert "dfr" in names and "jtt" not in names


@pytest.mark.parametrize(
    "stages, sets, message",
    [
        (["world", "student"], [], "stage 'student' needs 'ig'"),
        (["world", "concepts", "vocabulary", "ig", "student"], [], None),
        (["world", "concepts", "ig"], [], "stage 'ig' needs 'concepts', which no earlier selected stage provides; add stage 'vocabulary'"),
        (["erm"], [], "stage 'erm' needs 'splits'"),
        (["world", "erm", "microscope"], [], "needs 'model:ig_student'"),
        (["world", "erm", "microscope"], ['microscope.models=["erm"]'], "needs 'concepts'"),
        (["world", "erm", "microscope"], ['microscope.models=["erm"]', "microscope.surrogates=false"], None),
        (["world", "dfr"], [], "stage 'dfr' needs 'model:erm'"),
        (["world", "fly"], [], "unknown stage 'fly'"),
        (None, ['microscope.models=["erm","bogus"]'], "unknown model(s) in microscope.models 'bogus'; valid: erm, oracle"),
        (["world"], ['microscope.models=["nope"]'], "unknown model(s) in microscope.models 'nope'"),  # whatever the subset
        (None, ['microscope.tcav.models=["jtt"]'], "microscope.tcav.models names jtt, which microscope.models does not examine"),
        (None, ['microscope.sanity.models=["nope"]'], "unknown model(s) in microscope.sanity.models 'nope'"),
    ],
)
def test_subset_requirements(stages, sets, message):
    config = load_config(None, sets)  # the config knows no stages: which models a run can hold is the stage list's check
    if message is None:
        assert [s.name for s in select_stages(config, stages)] == [n for n in EXPECTED if n in stages]
    else:
        with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
            select_stages(config, stages)


@pytest.mark.parametrize(
    "backbone, checkpoint, expected",
    [
        (None, None, ["world", "erm"]),
        ("a-backbone", None, ["world", "features", "erm"]),  # ERM then trains on the frozen features
        ("a-backbone", "a-checkpoint", ["world", "erm"]),  # a user's model is scored on pixels
    ],
)
def test_the_baseline_command_selects_erm_with_what_it_needs(backbone, checkpoint, expected):
    """`python -m igcore baseline` runs ERM and the stages it requires under the settings, and the selection passes
    :func:`select_stages` (it used to be world and erm only, refused when a backbone was set)."""
    config = load_config()  # the folders are not read here: set past their validation, as a loaded config holds them
    config = config.model_copy(update={"features": config.features.model_copy(update={"backbone": backbone}),
                                       "baseline": config.baseline.model_copy(update={"checkpoint": checkpoint})})
    names = with_prerequisites(config, ["erm"])
    assert names == expected
    assert [s.name for s in select_stages(config, names)] == expected


def test_cli_subset_with_a_missing_requirement_exits_2_before_any_work(tmp_path, capsys):
    code = main(["run", "--out", str(tmp_path / "runs"), "--stages", "world,student"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0] == "error: stage 'student' needs 'ig', which no earlier selected stage provides; add stage 'ig'"
    assert not (tmp_path / "runs").exists()


def test_stages_command_lists_requirements(capsys):
    assert main(["stages"]) == 0
    out = capsys.readouterr().out
    for stage in STAGES:
        assert stage.name in out and stage.doc in out
    assert "reads when run: ig, discovered" in out  # the microscope's reads beyond what it requires
    assert main(["stages", "--set", "runtime.stages=1"]) == 0
    assert "up to 1 at once (runtime.stages)" in capsys.readouterr().out


def test_architecture_doc_lists_the_stages_as_the_code_does():
    """docs/ARCHITECTURE.md's stage table is exactly `python -m igcore stages --markdown`."""
    import re

    from igcore.stages import stages_markdown

    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    block = re.search(r"<!-- stages-table:start -->\n(.*?)\n<!-- stages-table:end -->", doc, re.S)
    assert block and block.group(1).strip() == stages_markdown(load_config()).strip()


def test_the_stage_table_says_when_each_optional_stage_runs():
    """`features` runs when `features.backbone` is set (not when named in `peers`), a peer when named in `peers`."""
    from igcore.stages import stages_markdown

    config = load_config()
    rows = {cells[2].strip(" `"): cells[3].strip() for cells in (line.split("|") for line in stages_markdown(config).splitlines()[2:])}
    assert rows["features"] == "when `features.backbone` is set"
    assert all(rows[name] == "when named in `peers`" for name in PEERS)
    # every stage but the optional ones runs by default, in pipeline order
    assert [name for name, when in rows.items() if when == "yes"] == [n for n in EXPECTED if n != "features" and n not in PEERS]
    features = next(s for s in STAGES if s.name == "features")
    with_backbone = config.model_copy(update={"features": config.features.model_copy(update={"backbone": "a-backbone"})})
    assert not features.enabled(config) and features.enabled(with_backbone)


def test_reports_in_docs_name_no_path_of_the_machine_that_wrote_them():
    """Scripts that write docs/ record relative paths and package versions, never this machine's folders."""
    import re

    offenders = []
    for path in sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "docs" / "provenance").glob("*.json")]):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"(?<![\w.])/(work|root|home|tmp|Users|private|var/folders|opt|mnt|srv)/", line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert offenders == []


def test_every_stage_says_which_files_and_keys_it_writes_and_how_people_call_them():
    """What the dashboard reads to explain a missing part comes from the stage entries (files, keys, labels)."""
    from igcore.stages import HYPOTHESIS_NAMES, PIPELINE_FILES, file_writer, writer_of

    assert file_writer("tables/split_train.parquet").name == "world"
    assert file_writer("tensors/concept_scores.safetensors").name == "vocabulary"
    assert file_writer("tensors/pseudo_labels.safetensors").name == "student"
    assert file_writer("microscope/tables/tcav.parquet").name == "microscope"
    assert file_writer("models/jtt/estimator.json").name == "jtt"  # a model's folder: the stage that provides it
    # the discover stage writes discover/<source>/; what each model's activations make of the components, discover_effects
    assert file_writer("discover/erm/tensors/components.safetensors").name == "discover"
    assert file_writer("discover/erm/tensors/patterns_ig_student.safetensors").name == "discover_effects"
    assert file_writer(PIPELINE_FILES[0]) is None and file_writer("notes.txt") is None
    assert writer_of("hypotheses.z_star").name == "ig" and writer_of("microscope.erm.tcav").name == "microscope"
    assert HYPOTHESIS_NAMES == {"z_star": "z*", "no_prior": "no-prior hypothesis", "z_baseline": "z_baseline", "z_student": "z_student"}
    for stage in STAGES:
        assert set(stage.labels) <= stage.writes, stage.name


def test_the_stage_list_names_functions_that_exist():
    """Stage functions are imported when a stage runs: every dotted path resolves to a callable."""
    import importlib

    for stage in STAGES:
        for path in (stage.function, stage.preflight):
            if path:
                module, _, name = path.partition(":")
                assert callable(getattr(importlib.import_module(module), name)), path


def test_a_z_star_against_the_prior_is_said_so(tmp_path: Path) -> None:
    """With the prior weighing nothing (``prior.strength=0``) at rho 0.99, z* takes whatever explains D, the
    background among it, though the shipped raters do not endorse such clauses: the run records each clause of z* a rater
    less likely than not to endorse, with its plausibility, and tells its reader in a note."""
    from igcore.pipeline import run_pipeline
    from igcore.resolve import resolve
    from igcore.store import load_run_dir
    from testkit.runs import SMALL_WORLD, tiny_sets

    sets = [*tiny_sets({**SMALL_WORLD, "world.rho": 0.99, "world.image_size": 32, "concepts.epochs": 2}), "prior.strength=0"]
    run = load_run_dir(run_pipeline(load_config(None, sets), tmp_path, stages=["world", "concepts", "vocabulary", "ig"], progress=False))
    implausible = run.metrics["hypotheses"]["z_star_implausible"]
    backgrounds = {c["id"] for c in run.metrics["world"]["vocabulary"] if c["kind"] == "context"}
    assert {c["concept"] for c in implausible} & backgrounds
    assert all(0 < c["plausibility"] < 0.5 for c in implausible)
    z_star = {(c["concept"], c["class"]) for c in run.metrics["hypotheses"]["z_star"]}
    assert {(c["concept"], c["class"]) for c in implausible} <= z_star
    notes = [n["note"] for n in run.manifest["notes"] if n["stage"] == "ig"]
    assert any("less likely than not to endorse" in n and str(len(implausible)) in n for n in notes)
    # the re-solve of the stored run (what the dashboard's Prior and Discover pages show) reports the same clauses
    assert resolve(run).implausible == implausible
