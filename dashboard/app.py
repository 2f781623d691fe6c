"""IG Microscope dashboard: router (st.navigation), shared sidebar (run picker), first-launch demo run.

Start it with::

    streamlit run dashboard/app.py --server.address 127.0.0.1

It has no login, so it serves only on loopback (``dashboard/.streamlit/config.toml`` says so wherever it is
started from); if its server listens on an address other machines can reach, every page refuses to show
anything unless ``IG_ALLOW_REMOTE=1`` is set, and then warns that there is no login (:mod:`dashboard.exposure`).
The pages are the entries of :data:`dashboard.pages.PAGES`.
Runs are read from ``$IG_RUNS_DIR`` (default ``<repository>/runs``). With no run there, the app computes
the demo run with the default config, showing the pipeline's progress stage by stage, and shows the Overview
and Hypotheses pages as soon as their stages exist, while the microscope finishes behind them; the other pages
say meanwhile what they wait for (:mod:`dashboard.first_launch`). Two knobs for quick
trials and tests: ``IG_DEMO_SET="world.n_train=400;baseline.epochs=1"`` (config overrides, ``;``
separated) and ``IG_DEMO_STAGES="world;erm"`` (a subset of the pipeline's stages).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import streamlit as st

from dashboard import exposure, first_launch, session, url_state
from dashboard.pages import PAGES
from dashboard.run_view import RunView
from dashboard.runs import RunInfo, list_runs, newest_complete_first, runs_root
from igcore.errors import InputError

LOG = logging.getLogger("dashboard")


def navigation(partial: bool = False) -> list[st.Page]:
    """One ``st.Page`` per registry entry; with ``partial`` (the demo run is still being computed), a page that cannot
    show a run in progress is a note on what it still waits for, with a link to the Overview
    (:func:`dashboard.first_launch.waiting_page`), so a link to it is never "page not found"."""
    pages = [st.Page(p.file, title=p.title, icon=p.icon, url_path=p.url_path, default=p.default) for p in PAGES]
    if not partial:
        return pages
    overview = next(page for page, spec in zip(pages, PAGES, strict=True) if spec.default)
    return [page if spec.partial else first_launch.waiting_page(spec, overview) for page, spec in zip(pages, PAGES, strict=True)]


def _pick_run(root: str, runs: list[RunInfo], wanted: str | None, notes: list[str], problem: str | None = None) -> RunView | None:
    """The run named in the URL if it is usable, else the newest complete run that opens, with a note that
    names it when the link asked for another (``problem``: why the codec refused the link's run id)."""
    if wanted:
        try:
            return RunView.open(root, wanted)
        except InputError:
            shown = url_state.shorten_code(wanted)
            if not url_state.valid_run_id(wanted):  # the codec refuses these already; kept for any other caller
                problem = f"{shown} is not a valid run id (run ids are plain names, without '/' or '..')"
            elif (Path(root) / wanted).is_dir():  # the folder itself, not the listing (cached for a few seconds)
                problem = f"The folder {shown} in the runs folder cannot be opened as a run (it has no manifest)"
            else:
                problem = f"There is no run {shown} in this dashboard's runs folder"
    for info in newest_complete_first(runs):  # a run removed since the (cached) listing is skipped
        if info.run_id == wanted:
            continue
        try:
            run = RunView.open(root, info.run_id)
        except InputError:
            continue
        if problem:
            which = "the newest complete run" if info.complete else "the newest run that opens (no complete run does)"
            notes.append(f"{problem}; showing {which}, {url_state.shorten_code(run.run_id)}, instead.")
        return run
    if problem:
        notes.append(f"{problem}, and no other run opens.")
    return None


def _on_run_change() -> None:
    # A new run resets the selections that only make sense within one run: every view key but the model under the
    # microscope goes back to its default.
    model = session.context().view.model
    session.set_view(**{**url_state.ViewState().to_dict(), "run": st.session_state["w_run"], "model": model})


def sidebar(ctx: session.PageContext) -> None:
    """Title, run picker and the selected run's world in one line."""
    with st.sidebar:
        st.markdown("### 🔬 IG Microscope")
        st.caption("What the model *should* have learned (z*) vs what it *did* learn (the baseline).")
        if ctx.run is not None and ctx.run.computing:
            st.caption(f"Run `{ctx.run.run_id}` is being computed; the other pages open when it is complete.")
        if not ctx.runs or ctx.run is None:
            return
        ids = [r.run_id for r in ctx.runs]
        labels = {r.run_id: r.label for r in ctx.runs}
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
    exposed = exposure.exposed_addresses()
    if not exposed:
        return
    if not exposure.remote_allowed():
        LOG.warning("refusing to serve: listening on %s, which other machines can reach; see dashboard/exposure.py", ", ".join(exposed))
        st.error(exposure.refusal(exposed), icon="🔒")
        st.stop()
    st.warning(exposure.remote_warning(exposed), icon="🌐")


def main() -> None:
    st.set_page_config(page_title="IG Microscope", page_icon="🔬", layout="wide")
    guard_exposure()
    root = str(runs_root())
    runs = list_runs(root)
    if runs:
        show(root, runs, st.navigation(navigation()))
        return
    with first_launch.partial_run(root) as partial:  # the demo run while its last stages are computed
        if partial is None:
            st.navigation(navigation())
            first_launch.first_launch(root)  # computes the demo run, then reruns; stops here otherwise
            return
        show(root, [], st.navigation(navigation(partial=True)), partial)


def show(root: str, runs: list[RunInfo], page: st.Page, partial: RunView | None = None) -> None:
    """The page for the run the URL names (else the newest complete one), or for ``partial``, a run in progress."""
    decoded = url_state.decode(session.read_params())
    notes = list(decoded.notes)
    if partial is None:
        run = _pick_run(root, runs, decoded.state.run, notes, decoded.run_problem)
    else:
        run = partial
        if decoded.run_problem or decoded.state.run not in (None, partial.run_id):
            problem = decoded.run_problem or f"There is no run {url_state.shorten_code(decoded.state.run or '')} yet"
            notes.append(f"{problem}; showing the demo run being computed, {url_state.shorten_code(partial.run_id)}, instead.")
    view = decoded.state if run is None else replace(decoded.state, run=run.run_id)
    computing = first_launch.watcher(root) if partial is not None else None
    ctx = session.PageContext(root=root, runs=runs, run=run, view=view, notes=notes, computing=computing)
    session.store_context(ctx)
    sidebar(ctx)
    page.run()


main()
