"""IG Microscope dashboard: router (st.navigation), shared sidebar (run picker), first-launch demo run.

Start it with::

    streamlit run dashboard/app.py --server.address 127.0.0.1

It has no login, so it serves only on loopback (``dashboard/.streamlit/config.toml`` says so wherever it is
started from); if its server listens on an address other machines can reach, every page refuses to show
anything unless ``IG_ALLOW_REMOTE=1`` is set, and then warns that there is no login (:mod:`dashboard.safe`).
Runs are read from ``$IG_RUNS_DIR`` (default ``<repository>/runs``). With no run there, the app computes
the demo run with the default config, showing the pipeline's progress stage by stage. Two knobs for quick
trials and tests: ``IG_DEMO_SET="world.n_train=400;baseline.epochs=1"`` (config overrides, ``;``
separated) and ``IG_DEMO_STAGES="world;erm"`` (a subset of the pipeline's stages).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import streamlit as st

from dashboard import safe, session
from dashboard import state as codec
from dashboard.first_launch import first_launch
from dashboard.run_view import RunInfo, RunView, list_runs
from igcore.errors import InputError

HERE = Path(__file__).resolve().parent
LOG = logging.getLogger("dashboard")

PAGES = [
    st.Page(HERE / "app_pages" / "overview.py", title="Overview", icon=":material/insights:", url_path="overview", default=True),
    st.Page(HERE / "app_pages" / "hypotheses.py", title="Hypotheses", icon=":material/lightbulb:", url_path="hypotheses"),
    st.Page(HERE / "app_pages" / "microscope.py", title="Baseline microscope", icon=":material/biotech:", url_path="microscope"),
    st.Page(HERE / "app_pages" / "compare.py", title="Compare", icon=":material/compare:", url_path="compare"),
    st.Page(HERE / "app_pages" / "prior.py", title="Prior", icon=":material/tune:", url_path="prior"),
    st.Page(HERE / "app_pages" / "label.py", title="Label with z*", icon=":material/how_to_vote:", url_path="label"),
    st.Page(HERE / "app_pages" / "share.py", title="Share & export", icon=":material/share:", url_path="share"),
]


def _run_label(info: RunInfo) -> str:
    return info.run_id if info.complete else f"⚠ {info.run_id} ({info.status})"


def _pick_run(root: str, runs: list[RunInfo], wanted: str | None, notes: list[str]) -> RunView | None:
    """The run named in the URL if it is usable, else the newest complete run that opens (with a note)."""
    if wanted:
        try:
            return RunView.open(root, wanted)
        except InputError:
            shown = codec.shorten_code(wanted)
            if not codec.valid_run_id(wanted):  # the codec refuses these already; kept for any other caller
                notes.append(f"{shown} is not a valid run id (run ids are plain names, without '/' or '..'); showing the newest run instead.")
            elif (Path(root) / wanted).is_dir():  # the folder itself, not the listing (cached for a few seconds)
                notes.append(f"The folder {shown} in the runs folder cannot be opened as a run (it has no manifest); showing the newest run instead.")
            else:
                notes.append(f"There is no run {shown} in this dashboard's runs folder; showing the newest run instead.")
    # complete runs first, newest first; a run removed since the (cached) listing is skipped
    for info in sorted(runs, key=lambda r: not r.complete):
        if info.run_id == wanted:
            continue
        try:
            return RunView.open(root, info.run_id)
        except InputError:
            continue
    return None


def _on_run_change() -> None:
    # A new run resets the selections that only make sense within one run.
    session.set_view(run=st.session_state["w_run"], hyp=0, img=None, method=None, group="all", correct="all")


def sidebar(ctx: session.PageContext) -> None:
    """Title, run picker and the selected run's world in one line."""
    with st.sidebar:
        st.markdown("### 🔬 IG Microscope")
        st.caption("What the model *should* have learned (z*) vs what it *did* learn (the baseline).")
        if not ctx.runs or ctx.run is None:
            return
        ids = [r.run_id for r in ctx.runs]
        labels = {r.run_id: _run_label(r) for r in ctx.runs}
        session.bind("w_run", ctx.run.run_id)
        st.selectbox("Run", ids, key="w_run", format_func=labels.get, on_change=_on_run_change, help="Runs in the runs folder, newest first. ⚠ marks runs that did not finish.")
        info = ctx.run.info
        if info.status != "complete":
            st.warning(f"This run is **{info.status}**: some parts may be missing.", icon="⚠️")
        world = info.config.get("world") or {}
        rho = f" · ρ = {world['rho']}" if "rho" in world else ""
        st.caption(f"World **{world.get('name', '?')}**{rho} · seed {info.seed}")


def guard_exposure() -> None:
    """Serve only on loopback unless opted in (``IG_ALLOW_REMOTE=1``); with the opt-in, warn on every page."""
    exposed = safe.exposed_addresses()
    if not exposed:
        return
    if not safe.remote_allowed():
        LOG.warning("refusing to serve: listening on %s, which other machines can reach; see dashboard/safe.py", ", ".join(exposed))
        st.error(safe.refusal(exposed), icon="🔒")
        st.stop()
    st.warning(safe.remote_warning(exposed), icon="🌐")


def main() -> None:
    st.set_page_config(page_title="IG Microscope", page_icon="🔬", layout="wide")
    guard_exposure()
    page = st.navigation(PAGES)
    root = str(safe.runs_root())
    runs = list_runs(root)
    if not runs:
        first_launch(root)  # computes the demo run, then reruns; stops here otherwise
        return
    decoded = codec.decode(session.read_params())
    notes = list(decoded.notes)
    run = _pick_run(root, runs, decoded.state.run, notes)
    view = decoded.state if run is None else replace(decoded.state, run=run.run_id)
    ctx = session.PageContext(root=root, runs=runs, run=run, view=view, notes=notes)
    session.store_context(ctx)
    sidebar(ctx)
    page.run()


main()
