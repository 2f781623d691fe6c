"""First launch: with no run in RUNS_DIR, compute the demo run and show its progress stage by stage.

The pipeline runs in a background thread owned by the server process (one demo job per RUNS_DIR),
not in the visitor's script thread: closing or reloading the tab does not kill the run, and every
session that opens the app meanwhile watches the same progress. The pipeline reports the decoding of a
world that reads files through ``on_load(done, total)`` and each stage through ``on_stage(name, i,
total)``; the worker only records those events, :func:`describe` turns them into a progress bar and a
checklist, which the page draws inside ``st.status``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import streamlit as st

from dashboard.runs import list_runs

LOG = logging.getLogger("dashboard")


@dataclass
class DemoJob:
    """One demo-run computation in a worker thread; sessions only read it."""

    root: str
    events: list[tuple[str, int, int, float]] = field(default_factory=list)  # (stage, i, total, time)
    loads: list[tuple[int, int, float]] = field(default_factory=list)  # (images decoded, of total, time)
    started: float = field(default_factory=time.perf_counter)
    done: bool = False
    error: str | None = None
    run_dir: str | None = None
    thread: threading.Thread | None = None

    def on_stage(self, name: str, i: int, total: int) -> None:
        self.events.append((name, i, total, time.perf_counter()))

    def on_load(self, done: int, total: int) -> None:
        self.loads.append((done, total, time.perf_counter()))

    def work(self) -> None:
        from igcore.config import load_config
        from igcore.errors import InputError
        from igcore.pipeline import run_pipeline

        try:
            config = load_config(None, _overrides())
            self.run_dir = str(run_pipeline(config, self.root, on_stage=self.on_stage, stages=_stages(), progress=False, on_load=self.on_load))
        except InputError as e:
            self.error = f"The demo run's settings are not valid: {e}"
        except Exception as e:  # noqa: BLE001  (shown to the visitor; the traceback goes to the log)
            LOG.exception("demo run failed")
            self.error = f"The demo run failed ({type(e).__name__}: {e}). The terminal running Streamlit has the details."
        finally:
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
            job.thread.start()
        return job


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
    """The job's progress in words: the images read (worlds that read files), then the stages, one line per
    finished step with its seconds. Pure: the same events give the same lines."""
    stage_text = stage_text or _stage_text
    events, loads = list(job.events), list(job.loads)
    finished: list[str] = []
    fraction, label = 0.0, "starting…"
    if loads:
        done, total, t = loads[-1]
        if done >= total or events:
            finished.append(f"✓ Read the world's {total} images ({t - job.started:.1f} s)")
        else:
            fraction, label = done / max(total, 1), f"Reading the world's images: {done} of {total}"
    for k, (name, i, total, t) in enumerate(events):
        if k > 0:
            prev = events[k - 1]
            finished.append(f"✓ {stage_text(prev[0])} ({t - prev[3]:.1f} s)")
        if name != "done":
            fraction, label = min(i / max(total, 1), 1.0), f"Stage {i + 1} of {total}: {stage_text(name)}"
        else:
            fraction, label = 1.0, "done"
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
    st.title("🔬 IG Microscope")
    st.markdown(_intro())
    job = _job(root)
    if job.done and job.error is None and job.run_dir and not os.path.isdir(job.run_dir):
        job = _job(root, restart=True)  # the runs folder was emptied since: compute again
    bar = st.progress(0.0, text="starting…")
    with st.status("Computing the demo run…", expanded=True) as status:
        shown = 0
        while True:
            finished = job.done
            now = describe(job)
            for line in now.finished[shown:]:
                status.write(line)
            shown = len(now.finished)
            status.update(label=now.label, expanded=True)
            bar.progress(now.fraction, text=now.label)
            if finished:
                break
            time.sleep(0.3)
        if job.error:
            status.update(label="The demo run did not finish", state="error")
        else:
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
