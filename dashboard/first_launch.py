"""First launch: with no run in RUNS_DIR, compute the demo run and show its progress stage by stage.

The pipeline runs in a background thread owned by the server process (one demo job per RUNS_DIR),
not in the visitor's script thread: closing or reloading the tab does not kill the run, and every
session that opens the app meanwhile watches the same progress. The pipeline reports each stage
through ``on_stage(name, i, total)``; the worker only records those events, the page turns them into
a progress bar and a checklist inside ``st.status``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field

import streamlit as st

from dashboard.run_view import list_runs

LOG = logging.getLogger("dashboard")


@dataclass
class DemoJob:
    """One demo-run computation in a worker thread; sessions only read it."""

    root: str
    events: list[tuple[str, int, int, float]] = field(default_factory=list)  # (stage, i, total, time)
    started: float = field(default_factory=time.perf_counter)
    done: bool = False
    error: str | None = None
    run_dir: str | None = None
    thread: threading.Thread | None = None

    def on_stage(self, name: str, i: int, total: int) -> None:
        self.events.append((name, i, total, time.perf_counter()))

    def work(self) -> None:
        from igcore.config import load_config
        from igcore.errors import InputError
        from igcore.pipeline import run_pipeline

        try:
            config = load_config(None, _overrides())
            self.run_dir = str(run_pipeline(config, self.root, on_stage=self.on_stage, stages=_stages(), progress=False))
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


def first_launch(root: str) -> None:
    st.title("🔬 IG Microscope")
    st.markdown(
        "No runs yet, so the dashboard is computing the **demo run** now: a small world of huskies and wolves "
        "photographed mostly on grass and snow, a baseline that learns the shortcut, and Imitative Generalization "
        "learning what a wolf really looks like. This happens once; closing this tab does not stop it."
    )
    job = _job(root)
    if job.done and job.error is None and job.run_dir and not os.path.isdir(job.run_dir):
        job = _job(root, restart=True)  # the runs folder was emptied since: compute again
    bar = st.progress(0.0, text="starting…")
    with st.status("Computing the demo run…", expanded=True) as status:
        shown = 0
        while True:
            events = list(job.events)
            for k in range(shown, len(events)):
                name, i, total, t = events[k]
                if k > 0:
                    prev = events[k - 1]
                    status.write(f"✓ {_stage_text(prev[0])} ({t - prev[3]:.1f} s)")
                if name != "done":
                    text = f"Stage {i + 1} of {total}: {_stage_text(name)}"
                    status.update(label=text, expanded=True)
                    bar.progress(min(i / max(total, 1), 1.0), text=text)
            shown = len(events)
            if job.done:
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
