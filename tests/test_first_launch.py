"""First launch: the dashboard shows the Overview of the demo run as soon as its stages exist, says what is
still being computed while the microscope finishes behind it (a link to any other page says so too, with a link
to the Overview, never "page not found"), and the run stays atomic on disk (nothing is
published before it is complete; the pages read its temporary folder, which is not renamed under them)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import igcore.stages.microscope as microscope_stage
from dashboard.first_launch import DemoJob, Gate, _jobs
from dashboard.pages import PAGES
from igcore.store import RunStore
from testkit.apptest import all_text, assert_clean
from testkit.runs import SMALL_WORLD, tiny_sets

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "dashboard" / "app.py"
#: The demo run of these tests: the tiny config with a smaller world (the smallest the CLI's tests run on), the baseline
#: and the microscope on it (what the mechanism needs), the microscope cut to what the Overview shows of it (the
#: counterfactual effects) and one attribution method.
STAGES = "world;erm;microscope"
SETS = [*tiny_sets(), *tiny_sets(SMALL_WORLD), "world.image_size=32", 'microscope.models=["erm"]', "microscope.surrogates=false", 'microscope.methods=["saliency"]',
        "microscope.tcav.repeats=1", "microscope.tcav.n_controls=0", "microscope.counterfactuals.max_images=60",
        "microscope.counterfactuals.attribution_per_group=0", "microscope.counterfactuals.n_resamples=200"]
PENDING = "Still being computed:** the `microscope` stage"


def open_app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=600)
    if page:
        at.switch_page(f"app_pages/{page}.py")
    return at.run()


def test_overview_shows_while_the_microscope_computes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "runs"
    monkeypatch.setenv("IG_RUNS_DIR", str(root))
    monkeypatch.setenv("IG_DEMO_SET", ";".join(SETS))
    monkeypatch.setenv("IG_DEMO_STAGES", STAGES)
    started, release = threading.Event(), threading.Event()
    real = microscope_stage.stage_microscope

    def held(ctx):  # noqa: ANN001, ANN202  (the stage function, held until the test has looked)
        started.set()
        assert release.wait(timeout=600)
        return real(ctx)

    monkeypatch.setattr(microscope_stage, "stage_microscope", held)  # the stage list imports it by name when it runs
    try:
        at = open_app()  # the first launch's progress, then (a rerun) the Overview once only the microscope is left
        assert started.is_set()
        assert_clean(at)
        shown = all_text(at)
        assert at.title[0].value == "What should it have learned, and what did it learn?"
        assert PENDING in shown and "put the models under the microscope" in shown
        # what exists is shown (the baseline's accuracy); what the microscope computes says it is not done yet
        assert "Worst-group accuracy on D′" in shown and at.get("plotly_chart")
        assert "This run has no counterfactual effects because its `microscope` stage has not finished yet" in shown
        # atomic on disk: nothing published yet, the run lives in its temporary folder
        assert RunStore(root).list() == []
        [tmp] = [p for p in root.iterdir() if p.name.startswith(".tmp-")]
        run_id = at.query_params["run"]
        assert tmp.name.startswith(f".tmp-{run_id}-")  # the link names the id the run will be published under
        hypotheses = open_app("hypotheses")  # the other page that reads only stored numbers
        assert_clean(hypotheses)
        assert PENDING in all_text(hypotheses)
        for page in (p for p in PAGES if not p.partial):  # a link straight to a page that needs the whole run
            waiting = open_app(page.name)
            assert_clean(waiting)
            shown = all_text(waiting)
            assert waiting.title[0].value == page.title and PENDING in shown, shown
            assert f"The {page.title} page needs the whole demo run, which is still being computed" in shown
            assert [link.proto.label for link in waiting.get("page_link")] == ["Open the Overview"]
    finally:
        release.set()
    job = _jobs()[1][str(root)]
    job.thread.join(timeout=600)
    assert job.done and job.error is None
    at.run()  # what the page's watcher does once the job is done: the complete run, from its published folder
    assert_clean(at)
    assert [r.run_id for r in RunStore(root).list()] == [run_id] and at.query_params["run"] == run_id
    shown = all_text(at)
    assert PENDING not in shown and "counterfactual effects because" not in shown
    assert not [p for p in root.iterdir() if p.name.startswith(".tmp-")]


def test_gate_holds_the_rename_until_readers_leave() -> None:
    gate = Gate(timeout_s=30)
    assert gate.enter()
    closed = threading.Event()
    closer = threading.Thread(target=lambda: (gate.close(), closed.set()))
    closer.start()
    deadline = time.monotonic() + 5
    while not gate.closed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gate.closed and not closed.is_set()  # closing waits for the reader inside
    assert not gate.enter()  # and lets no new one in
    gate.leave()
    closer.join(timeout=5)
    assert closed.is_set()


def started(selected: list[str], upto: str) -> DemoJob:
    """A job whose pipeline of ``selected`` stages has started stage ``upto``, every earlier one finished."""
    job = DemoJob("unused", folder=".tmp-demo-x", selected=selected)
    for i, name in enumerate(selected[: selected.index(upto) + 1]):
        job.events.append((name, i, len(selected), 0.0))
        if name != upto:
            job.finished.append((name, 1.0, 0.0))
    return job


def test_pages_show_the_run_only_while_stages_behind_are_left() -> None:
    assert not DemoJob("unused", folder=".tmp-demo-x", selected=["world", "microscope"]).showable  # not started
    assert not started(["world", "erm", "microscope"], "erm").showable
    job = started(["world", "erm", "microscope"], "microscope")
    assert job.showable
    job.gate.close()
    assert not job.showable  # being published
    # a stage that runs after the microscope and is not behind must finish before the run is shown
    assert not started(["world", "microscope", "later"], "microscope").showable
    assert not started(["world", "microscope", "later"], "later").showable
    # stages run at once: the microscope started while erm still trains
    job = started(["world", "erm", "microscope"], "microscope")
    job.finished = [f for f in job.finished if f[0] != "erm"]
    assert not job.showable
    job.on_finish("erm", 3.0)
    assert job.showable


#: A server process's last moments, in small: the first launch's demo run starts, and the process exits while the run
#: trains its baseline beside the other stages (what Ctrl+C or SIGTERM on the server does once Streamlit has stopped).
#: On the tiny settings with every default stage this aborted 3 times in 3 before the fix; with only world, erm and the
#: microscope it did not (short single-stage kernels), so the test runs them all.
EXIT_WHILE_COMPUTING = """
import sys, time
from dashboard.first_launch import _job
job = _job(sys.argv[1])
deadline = time.time() + 300
while not any(name == "erm" for name, *_ in job.events) and time.time() < deadline:
    time.sleep(0.05)
if not any(name == "erm" for name, *_ in job.events):
    sys.exit(3)  # the demo run never reached erm: nothing to stop
time.sleep(1.5)  # inside the training steps of erm, oracle and the concept model (torch's C++ kernels)
print("erm started", flush=True)
sys.exit(0)
"""


def test_stopping_the_server_while_the_demo_run_computes_is_a_clean_exit(tmp_path: Path) -> None:
    """Python's finalisation stopped the run's threads inside torch's C++ code, which aborted the server after
    Streamlit's "Stopping..." ("terminate called without an active exception", SIGABRT; seen by hand with a real
    server). The first launch ends the process before that (dashboard.first_launch._exit_before_the_run_is_torn_down):
    exit status 0, one line that says what was left, and the run's folder an interrupted leftover that
    ``igcore clean`` removes."""
    root = tmp_path / "runs"
    env = {**os.environ, "IG_DEMO_SET": ";".join(tiny_sets()), "PYTHONPATH": str(ROOT)}
    env.pop("IG_DEMO_STAGES", None)
    done = subprocess.run([sys.executable, "-c", EXIT_WHILE_COMPUTING, str(root)], capture_output=True, text=True,
                          timeout=600, env=env, cwd=ROOT)
    assert "erm started" in done.stdout, done.stderr[-2000:]
    assert done.returncode == 0, done.stderr[-2000:]
    assert "terminate called" not in done.stderr
    [line] = [line for line in done.stderr.splitlines() if "demo run was still computing" in line]
    [left] = RunStore(root).leftovers()
    assert left.path.name in line and left.state == "interrupted"
