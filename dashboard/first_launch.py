"""First launch: with no run in RUNS_DIR, compute the demo run, show its progress stage by stage, and show
the Overview as soon as its stages exist while the microscope finishes behind it.

The pipeline runs in a background thread owned by the server process (one demo job per RUNS_DIR),
not in the visitor's script thread: closing or reloading the tab does not kill the run, and every
session that opens the app meanwhile watches the same progress. The pipeline reports the decoding of a
world that reads files through ``on_load(done, total)``, each stage as it starts through ``on_stage(name, i,
total)`` and as it finishes through ``on_finish(name, seconds)`` (stages run at once: igcore.pipeline); the
worker only records those events, :func:`describe` turns them into a progress bar and a
checklist, which the page draws inside ``st.status``.

The run stays atomic on disk: the pipeline assembles it in a temporary folder (``.tmp-<id>-…``) and renames
it into place when complete. Once every stage but those in :data:`BEHIND` has finished, the pages that read
only stored numbers (:attr:`dashboard.pages.PageSpec.partial`) show the run from that folder
(:meth:`dashboard.run_view.RunView.in_progress`): the manifest and metrics are replaced atomically after
each stage, a stage's files are read only once the manifest records it, and a :class:`Gate` keeps the
folder from being renamed while a script run reads it (the job closes the gate before the pipeline
publishes the run). Each page says what is still being computed (:func:`still_computing`) and reruns by
itself when it is done; a link to any other page meanwhile says which evidence that is and offers the Overview
(:func:`waiting_page`).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

from dashboard import session
from dashboard.pages import PAGES, PageSpec
from dashboard.run_view import RunView
from dashboard.runs import list_runs
from igcore.store import WRITER_FILE

LOG = logging.getLogger("dashboard")
#: Stages that may finish behind the pages: the pages show the run once every other selected stage has finished.
BEHIND = ("microscope",)
#: Seconds between two looks at the job while a page shows a run in progress.
POLL_S = 2.0
#: Seconds the job waits for script runs still reading the run in progress before it publishes it anyway.
GATE_TIMEOUT_S = 120.0


class Gate:
    """Keeps a run in progress from being renamed while script runs read it.

    Readers :meth:`enter` (False once the gate is closed: read the published run instead) and :meth:`leave`;
    the job closes it (:meth:`close`) before the pipeline renames the folder, waiting for the readers inside (at
    most ``timeout_s``) and letting no new one in. Closed stays closed.
    """

    def __init__(self, timeout_s: float = GATE_TIMEOUT_S) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._closed = False
        self.timeout_s = timeout_s

    @property
    def closed(self) -> bool:
        return self._closed

    def enter(self) -> bool:
        with self._cond:
            if self._closed:
                return False
            self._readers += 1
            return True

    def leave(self) -> None:
        with self._cond:
            self._readers -= 1
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            if not self._cond.wait_for(lambda: self._readers == 0, timeout=self.timeout_s):
                LOG.warning("publishing the demo run while %d script run(s) still read it", self._readers)


def writing_folder(root: str) -> str | None:
    """The temporary folder in ``root`` that this process is writing a run into (its ``writer.pid``), if any."""
    try:
        candidates = sorted(p for p in Path(root).iterdir() if p.name.startswith(".tmp-") and p.is_dir())
    except OSError:
        return None
    for path in candidates:
        try:
            if json.loads((path / WRITER_FILE).read_text()).get("pid") == os.getpid():
                return path.name
        except (OSError, ValueError, AttributeError):
            continue
    return None


@dataclass
class DemoJob:
    """One demo-run computation in a worker thread; sessions only read it."""

    root: str
    events: list[tuple[str, int, int, float]] = field(default_factory=list)  # (stage, i, total, time) as each starts
    finished: list[tuple[str, float, float]] = field(default_factory=list)  # (stage, seconds, time) as each finishes
    loads: list[tuple[int, int, float]] = field(default_factory=list)  # (images decoded, of total, time)
    started: float = field(default_factory=time.perf_counter)
    done: bool = False
    error: str | None = None
    run_dir: str | None = None
    thread: threading.Thread | None = None
    folder: str | None = None  # the run's temporary folder in root while the pipeline writes it
    gate: Gate = field(default_factory=Gate)
    selected: list[str] = field(default_factory=list)  # the pipeline's stages, in order (set before it starts)

    def on_stage(self, name: str, i: int, total: int) -> None:
        if self.folder is None:  # the pipeline made its temporary folder before the first stage
            self.folder = writing_folder(self.root)
        if name == "done":  # the pipeline publishes the run next
            self.gate.close()
        self.events.append((name, i, total, time.perf_counter()))

    def on_finish(self, name: str, seconds: float) -> None:
        self.finished.append((name, seconds, time.perf_counter()))

    @property
    def moves(self) -> int:
        """How often the job has moved on (a stage started or finished): pages redraw when it changes."""
        return len(self.events) + len(self.finished)

    def on_load(self, done: int, total: int) -> None:
        self.loads.append((done, total, time.perf_counter()))

    @property
    def showable(self) -> bool:
        """Whether pages may show the run in progress: every stage not in :data:`BEHIND` has finished (stages may
        run at once, so the last one started says nothing of the others), and the run is not being published."""
        events = list(self.events)
        if self.gate.closed or self.folder is None or not events or events[-1][0] == "done":
            return False
        finished = {name for name, *_ in self.finished}
        return all(name in BEHIND or name in finished for name in self.selected)

    def work(self) -> None:
        from igcore.config import load_config
        from igcore.errors import InputError
        from igcore.pipeline import run_pipeline
        from igcore.stages import select_stages

        try:
            config = load_config(None, _overrides())
            self.selected = [s.name for s in select_stages(config, _stages())]
            self.run_dir = str(run_pipeline(config, self.root, on_stage=self.on_stage, stages=_stages(), progress=False, on_load=self.on_load,
                                            on_finish=self.on_finish))
        except InputError as e:
            self.error = f"The demo run's settings are not valid: {e}"
        except Exception as e:  # noqa: BLE001  (shown to the visitor; the traceback goes to the log)
            LOG.exception("demo run failed")
            self.error = f"The demo run failed ({type(e).__name__}: {e}). The terminal running Streamlit has the details."
        finally:
            self.gate.close()
            self.done = True


@st.cache_resource
def _jobs() -> tuple[threading.Lock, dict[str, DemoJob]]:
    return threading.Lock(), {}


def _overrides() -> list[str]:
    raw = os.environ.get("IG_DEMO_SET", "")
    return [part.strip() for part in raw.split(";") if part.strip()]


def _stages() -> list[str] | None:
    raw = os.environ.get("IG_DEMO_STAGES", "")
    names = [part.strip() for part in raw.split(";") if part.strip()]
    return names or None


def _job(root: str, restart: bool = False) -> DemoJob:
    lock, jobs = _jobs()
    with lock:
        job = jobs.get(root)
        if job is None or (restart and job.done):
            job = DemoJob(root)
            job.thread = threading.Thread(target=job.work, name="ig-demo-run", daemon=True)
            jobs[root] = job
            atexit.register(_exit_before_the_run_is_torn_down, job)
            job.thread.start()
        return job


def _exit_before_the_run_is_torn_down(job: DemoJob) -> None:
    """At the server's exit (Ctrl+C, SIGTERM) with the demo run still computing, end the process here
    (:func:`igcore.runtime.exit_now`): the teardown would abort it in the run's threads after Streamlit's
    "Stopping...". The run's folder stays an interrupted leftover, as after a kill: ``python -m igcore clean`` removes
    it, and the next launch computes the demo run again."""
    if job.thread is None or not job.thread.is_alive():
        return
    from igcore.runtime import exit_now

    print(f"The demo run was still computing; {job.folder or 'its folder'} in {job.root} is left as an interrupted "
          "leftover (`python -m igcore clean` removes it).", file=sys.stderr)
    exit_now(0)


def _stage_text(name: str) -> str:
    from igcore.stages import stage_named

    return stage_named(name).doc


@dataclass(frozen=True)
class Progress:
    """What the page shows of a demo job at one moment: the bar, its label, and the steps finished so far."""

    fraction: float
    label: str
    finished: list[str]


def describe(job: DemoJob, stage_text: Callable[[str], str] | None = None) -> Progress:
    """The job's progress in words: the images read (worlds that read files), then one line per finished stage
    with its seconds, in the order they finished; the label names the stages running now (several when stages
    run at once). Pure: the same events give the same lines."""
    stage_text = stage_text or _stage_text
    events, ends, loads = list(job.events), list(job.finished), list(job.loads)
    finished: list[str] = []
    fraction, label = 0.0, "starting…"
    if loads:
        done, total, t = loads[-1]
        if done >= total or events:
            finished.append(f"✓ Read the world's {total} images ({t - job.started:.1f} s)")
        else:
            fraction, label = done / max(total, 1), f"Reading the world's images: {done} of {total}"
    finished += [f"✓ {stage_text(name)} ({seconds:.1f} s)" for name, seconds, _ in ends]
    if events and events[-1][0] == "done":
        return Progress(1.0, "done", finished)
    over = {name for name, *_ in ends}
    running = [(name, i, total) for name, i, total, _ in events if name not in over]
    if running:
        total = running[0][2]
        fraction = min(len(ends) / max(total, 1), 1.0)
        label = "; ".join(f"Stage {i + 1} of {total}: {stage_text(name)}" for name, i, total in running)
    return Progress(fraction, label, finished)


def _intro() -> str:
    """What the demo run is, from its config (the world's name and ρ when it has one)."""
    from igcore.config import load_config
    from igcore.errors import InputError

    try:
        world = load_config(None, _overrides()).world
    except InputError:
        return "No runs yet, so the dashboard is computing the **demo run** now."
    rho = getattr(world, "rho", None)
    shortcut = (f" with ρ = {rho:g}: in the labelled set D, {100 * rho:g}% of each class's images show that class's usual background"
                if rho is not None else "")
    return (
        f"No runs yet, so the dashboard is computing the **demo run** now: the world `{world.name}`{shortcut}. A baseline learns "
        "whatever separates the classes in D, the background included; Imitative Generalization uses a prior learned from human "
        "judgments to prefer a hypothesis about the objects themselves. This happens once; closing this tab does not stop it."
    )


def first_launch(root: str) -> None:
    """The demo run's progress, until the pages can show it (:attr:`DemoJob.showable`) or it is done; then a rerun."""
    st.title("🔬 IG Microscope")
    st.markdown(_intro())
    job = _job(root)
    if job.done and job.error is None and job.run_dir and not os.path.isdir(job.run_dir):
        job = _job(root, restart=True)  # the runs folder was emptied since: compute again
    bar = st.progress(0.0, text="starting…")
    with st.status("Computing the demo run…", expanded=True) as status:
        shown = 0
        while True:
            finished, showable = job.done, job.showable
            now = describe(job)
            for line in now.finished[shown:]:
                status.write(line)
            shown = len(now.finished)
            status.update(label=now.label, expanded=True)
            bar.progress(now.fraction, text=now.label)
            if finished or showable:
                break
            time.sleep(0.3)
        if job.error:
            status.update(label="The demo run did not finish", state="error")
        elif finished:
            bar.progress(1.0, text="done")
            status.update(label="Demo run ready", state="complete", expanded=False)
    if job.error:
        st.error(job.error)
        if st.button("Try again", type="primary"):
            _job(root, restart=True)
            st.rerun()
        return
    list_runs.clear()
    st.rerun()


@contextmanager
def partial_run(root: str) -> Iterator[RunView | None]:
    """The demo run of ``root`` while its last stages are computed, if the pages may show it (None otherwise);
    the folder is not renamed before the ``with`` block ends (:class:`Gate`)."""
    lock, jobs = _jobs()
    with lock:
        job = jobs.get(root)
    if job is None or not job.showable or job.folder is None or not job.gate.enter():
        yield None
        return
    try:
        yield RunView.in_progress(root, job.folder)
    finally:
        job.gate.leave()


def pending_sentence(run: RunView, seconds: float | None = None) -> str:
    """What of ``run`` (in progress) is still being computed, from its manifest: the selected stages not yet
    finished, each with what it computes."""
    info = run.info
    pending = [name for name in info.stages_selected if name not in info.stages]
    what = "; ".join(f"the `{name}` stage ({_stage_text(name)})" for name in pending) or "the run's last files"
    running = f", running for {seconds:.0f} s" if seconds is not None else ""
    return (
        f"**Still being computed:** {what}{running}. Everything shown is final; each section that needs what is still "
        "being computed says so and fills in by itself when it is done. The other pages open then."
    )


@st.fragment(run_every=POLL_S)
def still_computing(root: str, run: RunView, seen: int) -> None:
    """Under a page's title, while it shows a run in progress: what is still being computed; reruns the whole
    app when the job has moved on (``seen``: the job's stage events when the page was drawn)."""
    lock, jobs = _jobs()
    with lock:
        job = jobs.get(root)
    if job is None or job.done or job.moves != seen:
        list_runs.clear()
        st.rerun()
    seconds = time.perf_counter() - job.events[-1][3] if job.events else None
    st.info(pending_sentence(run, seconds), icon="⏳")


def waiting_page(spec: PageSpec, overview: st.Page) -> st.Page:
    """Page ``spec`` while the demo run is still being computed and it cannot show a run in progress (it is not
    :attr:`~dashboard.pages.PageSpec.partial`): its title, what it shows, what is still being computed (redrawn
    until the page itself can open, :func:`still_computing`) and a link to the Overview. A link straight to the
    page finds this instead of "page not found"."""

    def draw() -> None:
        ctx = session.context()
        st.title(spec.title)
        ready = " and ".join(f"the {p.title}" for p in PAGES if p.partial)
        st.info(f"The {spec.title} page needs the whole demo run, which is still being computed; it opens here by itself when "
                f"the run is complete. Meanwhile {ready} show what is already computed.", icon="🧩")
        if ctx.run is not None and ctx.computing is not None:
            ctx.computing(ctx.run)
        st.page_link(overview, label="Open the Overview", icon=":material/insights:")

    draw.__name__ = f"waiting_{spec.name}"  # one page function per entry
    return st.Page(draw, title=spec.title, icon=spec.icon, url_path=spec.url_path)


def watcher(root: str) -> Callable[[RunView], None]:
    """What a page calls under its title to say what is still being computed (:func:`still_computing`)."""
    lock, jobs = _jobs()
    with lock:
        job = jobs.get(root)
    seen = job.moves if job is not None else 0
    return lambda run: still_computing(root, run, seen)
