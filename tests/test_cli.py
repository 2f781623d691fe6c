"""CLI contract: one-line errors with exit code 2 for bad input; runs are reproducible and never overwritten."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from igcore.cli import main
from testkit.runs import SMALL_WORLD, set_args

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    *set_args(SMALL_WORLD), "--set", "world.image_size=32",
    "--set", "baseline.epochs=1", "--set", "concepts.epochs=1", "--set", "microscope.per_group=1",
    "--set", "search.n_ranked=10", "--quiet",
]


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--set", "world.name=mars"], "unknown world"),
        (["run", "--set", "world.rho=0.2"], "world.rho"),
        (["run", "--set", "world.rho=1.01"], "world.rho"),
        (["run", "--set", "world.n_train=0"], "world.n_train"),
        (["run", "--set", "world.n_test_eval=-3"], "world.n_test_eval"),
        (["run", "--set", "world.size=3"], "unknown config key"),
        (["run", "--config", "/nonexistent.toml"], "does not exist"),
        (["world", "--set", "world.name=mars"], "unknown world"),
        (["run", "--set", "baseline.arch=resnet-9000"], "unknown architecture"),
        # a key nobody set says what to give (its description)
        (["run", "--set", "world.name=folder"], "world.manifest is required: set it to the CSV manifest"),
        (["run", "--set", "world.name=waterbirds"], "world.root is required: set it to the folder holding metadata.csv"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, message, capsys, tmp_path):
    code, out, err = run_cli(args + ["--out", str(tmp_path)] if args[0] == "run" else args, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in err


def test_unknown_subcommand_exits_2_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["fly"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")


@pytest.mark.parametrize("command", ["run", "list", "clean"])
def test_unknown_option_points_to_its_commands_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--runs", "x"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: unrecognized arguments: --runs x (see `python -m igcore {command} --help`)"]


def test_unwritable_out(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run_cli(["run", "--out", str(blocker / "runs"), *TINY], capsys)
    assert code == 2 and "cannot write runs" in err


@pytest.mark.slow
def test_run_end_to_end_reproducible_and_never_overwritten(capsys, tmp_path):
    """A tiny full run twice with the same seed, two stages (and two models under the microscope) at once and one
    after the other, gives the same files (metrics.json byte for byte, every table and tensor, the microscope's
    included, the notes); reusing its id is refused."""
    code, out, _ = run_cli(["run", "--out", str(tmp_path), "--set", "run_id=a", "--set", "runtime.stages=2", *TINY], capsys)
    assert code == 0 and out.strip().splitlines()[-1] == str(tmp_path / "a")
    code, _, _ = run_cli(["run", "--out", str(tmp_path), "--set", "run_id=b", "--set", "runtime.stages=1", *TINY], capsys)
    assert code == 0
    assert (tmp_path / "a" / "metrics.json").read_text() == (tmp_path / "b" / "metrics.json").read_text()
    for folder in ("tables", "tensors", "discover/erm/tensors", "microscope/tables", "microscope/tensors"):
        files = sorted(p.name for p in (tmp_path / "a" / folder).iterdir() if p.suffix in (".parquet", ".safetensors"))
        assert files and files == sorted(p.name for p in (tmp_path / "b" / folder).iterdir() if p.suffix in (".parquet", ".safetensors"))
        for name in files:
            assert (tmp_path / "a" / folder / name).read_bytes() == (tmp_path / "b" / folder / name).read_bytes(), f"{folder}/{name}"
    a = json.loads((tmp_path / "a" / "metrics.json").read_text())
    notes = [json.loads((tmp_path / r / "manifest.json").read_text())["notes"] for r in "ab"]
    assert notes[0] == notes[1]
    for method in ("erm", "oracle", "true_concepts", "ig_direct", "no_prior", "ig_student"):
        assert 0.0 <= a["methods"][method]["worst_group_acc"] <= 1.0
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and list(manifest["stages"]) == manifest["stages_selected"]
    assert manifest["stages_at_once"] == 2
    ranked = a["hypotheses"]["ranked"]
    assert ranked and {"clauses", "log_prior", "log_likelihood", "log_posterior", "posterior"} <= set(ranked[0])

    before = (tmp_path / "a" / "metrics.json").read_text()
    code, _, err = run_cli(["run", "--out", str(tmp_path), "--set", "run_id=a", *TINY], capsys)
    assert code == 2 and "already exists" in err and "give another run_id" in err
    assert (tmp_path / "a" / "metrics.json").read_text() == before

    code, out, _ = run_cli(["list", "--out", str(tmp_path)], capsys)
    assert code == 0 and "a  complete" in out


def test_world_preview_writes_png(tmp_path):
    out = tmp_path / "sheet.png"
    proc = subprocess.run(
        [sys.executable, "-m", "igcore", "world", "--set", "world.n_train=20", "--set", "world.n_val=20",
         "--set", "world.n_test_train=20", "--set", "world.n_test_eval=20", "--set", "world.n_concept_bank=20",
         "--preview", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert proc.stdout.strip().splitlines()[-1] == str(out)


@pytest.mark.parametrize(
    "kind, content, message",
    [
        ("judgments", "rater,concept,rating\nr1,amber_eyes,5\n", "class"),
        ("judgments", "rater,concept,class,rating\nr1,amber_eyes,wolf,7\n", "rating must be an integer 1-5"),
        ("judgments", "rater,concept,class,rating\nr1,glowing_horns,wolf,5\n", "glowing_horns"),
        ("pairwise", "rater,hypothesis_a,hypothesis_b,preferred\nr1,{not json,[],a\n", "JSON"),
    ],
)
def test_bad_judgments_exit_2_before_training(kind, content, message, capsys, tmp_path):
    bad = tmp_path / f"{kind}.csv"
    bad.write_text(content)
    code, _, err = run_cli(["run", "--out", str(tmp_path / "runs"), "--set", f"prior.{kind}={bad}", *TINY], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing was written


def test_readme_lists_every_command_of_the_cli():
    """README's CLI section names every subcommand of `python -m igcore` (the parser is the list)."""
    from igcore.cli import build_parser

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## CLI"):readme.index("## Config keys")]
    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    assert "clean" in commands
    missing = [name for name in commands if f"python -m igcore {name}" not in section]
    assert missing == [], f"README's CLI section does not show: {missing}"


def test_python_m_igcore_freezes_the_collector_after_every_other_exit_handler():
    """``python -m igcore`` spares the interpreter's teardown its cyclic collection (igcore/__main__.py), and only
    once every exit handler has run: one registered during the command (Ray's shutdown, a weakref finalizer) runs
    before the freeze, and only a handler registered before the command even began sees the collector frozen."""
    code = (
        "import atexit, gc, runpy, sys\n"
        "import igcore.cli\n"
        "command = igcore.cli.main\n"
        "def main(argv=None):\n"
        "    atexit.register(lambda: print('during the command:', gc.get_freeze_count(), flush=True))\n"
        "    return command(argv)\n"
        "igcore.cli.main = main\n"
        "atexit.register(lambda: print('before it:', gc.get_freeze_count() > 0, flush=True))\n"
        "sys.argv = ['igcore', 'stages']\n"
        "runpy.run_module('igcore', run_name='__main__', alter_sys=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2:] == ["during the command: 0", "before it: True"]


def test_ctrl_c_during_a_run_exits_130_in_one_line_and_leaves_a_failed_folder(tmp_path):
    """Ctrl+C while stages train at once: the interpreter's teardown used to stop the stage threads inside torch's
    kernels and abort the process after "error: interrupted" (SIGABRT, "terminate called without an active exception";
    2 of 2 by hand with the defaults, and this test's settings did the same before the fix). ``python -m igcore`` now
    ends there (igcore.runtime.exit_now): exit status 130, the one line, and the run's folder marked failed."""
    import signal
    import time

    from igcore.store import RunStore
    from testkit.runs import tiny_sets

    args = [sys.executable, "-m", "igcore", "run", "--quiet", "--out", str(tmp_path), *(a for s in tiny_sets() for a in ("--set", s)),
            "--set", "run_id=stopped"]
    # SIGINT as a terminal delivers it: a pytest-xdist worker ignores SIGINT, and a child inherits that (Python then
    # installs no KeyboardInterrupt handler), so the child gets the default disposition back before it starts
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:  # the stages print as they start; erm trains beside oracle and the concept model
        lines.append(line)
        if "] erm" in line:
            break
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=120)[1]
    err = "".join(lines) + rest
    assert proc.returncode == 130, err[-2000:]
    assert "terminate called" not in err and "Traceback" not in err
    assert err.strip().splitlines()[-1] == "error: interrupted"
    assert [left.state for left in RunStore(tmp_path).leftovers()] == ["failed"] and RunStore(tmp_path).list() == []


def test_a_reader_that_stops_reading_ends_the_cli_without_a_traceback(tmp_path):
    """``python -m igcore list | head -1``: what is left to print has nowhere to go. The CLI used to end in a
    BrokenPipeError traceback; it now stops quietly with the shell's status for that (igcore.cli.OUTPUT_CLOSED)."""
    from igcore.cli import OUTPUT_CLOSED

    proc = subprocess.Popen([sys.executable, "-m", "igcore", "list", "--out", str(tmp_path)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before the CLI writes a line
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == OUTPUT_CLOSED and err == "", err
