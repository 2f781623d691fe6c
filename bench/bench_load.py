"""Concurrent users: 10 browser sessions on one loopback dashboard server for 2 minutes.

One headless Debian chromium (Playwright) with one context per session; the sessions run at once. Each
clicks through every page in the sidebar in a loop and, on the Prior page, adds a rating under its own
rater name. Counted:

- errors: Python exceptions shown by Streamlit, error boxes, "could not be drawn" sections, "Page not
  found", JavaScript errors, HTTP responses >= 400 and failed requests;
- ratings: what each session submitted (and saw confirmed) against the rows of the SQLite judgments
  store, per rater and in order: a submitted rating missing from the store is lost, one stored more often
  than submitted is duplicated;
- page time: from the click on a sidebar link to the end of the script run (Streamlit's
  ``data-test-script-state`` back to ``notRunning``, no spinner or skeleton), p50 / p95 / max;
- at each pace of ``--think``: 0 is the stress test, every session clicking again as soon as a page is drawn;
  a pace of S seconds has each session read every page for a time drawn uniformly from [S/2, 3S/2] before the
  next click, as people do (the reading is not page time). Each pace has its own window of ``--seconds``
  and its own sessions, on the same server;
- where the machine's CPU went while every session ran: the browsers (chromium, every context), the dashboard
  server, the bench's own drivers (this process, Playwright's), the rest, idle. The browsers share the machine
  with the server here, where ten people would each bring their own: a page's time is the server's work and its
  browser's, both slowed by the other nine sessions';
- what each page costs with one session alone, before the load: its page time, the CPU seconds its visit took in
  the browser and in the server (to one second after its script run ended: plotly draws after it), the messages
  the server sent it (Streamlit sends every element as one) and its plotly charts with the times plotly drew them.
  Where the browser's seconds outweigh the server's, ten browsers on the server's machine make the load, not the
  dashboard's work.

Usage (from the repository root; heavy, so niced)::

    nice -n 10 .venv/bin/python -m bench.bench_load                    # tiny run in a temporary RUNS_DIR
    nice -n 10 .venv/bin/python -m bench.bench_load --runs-dir runs    # a copy of the newest complete run there
    nice -n 10 .venv/bin/python -m bench.bench_load --think 0,5        # without pauses, then reading each page ~5 s

Writes the "Concurrent users" section of docs/RELIABILITY.md (``--no-report``: print only).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.common import Report
from dashboard.pages import PAGES as PAGE_SPECS  # noqa: E402
from testkit.browser import CHROMIUM, CHROMIUM_ARGS, start_streamlit, stop

#: Sidebar link text -> page name, in the order clicked (a session starts on the default page, so it comes
#: last: every click changes the page).
PAGES = {p.title: p.name for p in sorted(PAGE_SPECS, key=lambda p: p.default)}
READY_JS = """(previous) => {
  const app = document.querySelector('[data-testid=stApp]');
  const title = document.querySelector('h1');
  return !!app && app.getAttribute('data-test-script-state') === 'notRunning'
    && !document.querySelector('[data-testid=stSkeleton], [data-testid=stSpinner]')
    && !!title && title.innerText !== previous;
}"""
#: Counts every time plotly draws a chart on the page (its ``plotly_afterplot`` event), hooking charts as they appear.
COUNT_DRAWS_JS = """
window.__igDraws = 0;
new MutationObserver(() => {
  document.querySelectorAll('.js-plotly-plot').forEach((chart) => {
    if (chart.on && !chart.__igCounted) { chart.__igCounted = true; chart.on('plotly_afterplot', () => { window.__igDraws += 1; }); }
  });
}).observe(document, {subtree: true, childList: true});
"""
#: Seconds a visit of :func:`alone` goes on after the script run ended: plotly draws the charts after it.
SETTLE_S = 1.0
PROBLEMS = {
    "exception": "[data-testid=stException]",
    "error box": "[data-testid=stAlertContentError]",
}
PROBLEM_TEXTS = ("could not be drawn", "Page not found")


@dataclass
class Session:
    """What one browser session did and saw."""

    rater: str
    times: dict[str, list[float]] = field(default_factory=dict)
    submitted: list[int] = field(default_factory=list)  # rating values, in order, confirmed by "Saved"
    unconfirmed: int = 0  # submissions whose confirmation did not show in time
    errors: list[str] = field(default_factory=list)
    loops: int = 0
    think: float = 0.0  # seconds a person reads a page before the next click (mean; uniform on [think/2, 3 think/2])


async def wait_idle(page, timeout_s: float, previous: str = "") -> None:  # noqa: ANN001  (a Playwright page)
    """Until the script run is over and the page has a title other than ``previous`` (after a click, the new
    page's run has really finished: not the old page seen before its rerun started)."""
    await page.wait_for_function(READY_JS, arg=previous, timeout=timeout_s * 1000, polling=100)


async def check_page(page, session: Session, name: str) -> None:  # noqa: ANN001
    for what, selector in PROBLEMS.items():
        loc = page.locator(selector)
        if await loc.count():
            session.errors.append(f"{name}: {what}: {(await loc.first.inner_text())[:200]}")
    for text in PROBLEM_TEXTS:
        loc = page.get_by_text(text)
        if await loc.count():
            session.errors.append(f"{name}: {text}: {(await loc.first.inner_text())[:200]}")


async def add_rating(page, session: Session, rng: random.Random, timeout_s: float) -> None:  # noqa: ANN001
    value = rng.randint(1, 5)
    # the Prior page has two forms with a name field (add a rating; rate unrated clauses): use the first
    form = page.locator("[data-testid=stForm]").filter(has=page.get_by_role("button", name="Add rating"))
    name = form.get_by_role("textbox", name="Your name")
    await name.fill(session.rater)
    await name.press("Tab")
    rating = form.get_by_role("spinbutton", name="Rating (1–5)")
    await rating.fill(str(value))
    await rating.press("Tab")
    await form.get_by_role("button", name="Add rating").click()
    try:
        await page.get_by_text(f"Saved: {session.rater} rates").first.wait_for(timeout=timeout_s * 1000)
        session.submitted.append(value)
    except Exception:  # noqa: BLE001  (a Playwright timeout: counted, then the store decides)
        session.unconfirmed += 1
        session.errors.append(f"prior: rating {len(session.submitted) + session.unconfirmed} of {session.rater} not confirmed in {timeout_s:.0f} s")
        return
    await wait_idle(page, timeout_s)


async def drive(browser, base: str, run_id: str, session: Session, until: float, seed: int, timeout_s: float, rate: bool = True) -> None:  # noqa: ANN001
    """Click through the pages until ``until`` (at least one round), adding a rating per round if ``rate``."""
    rng = random.Random(seed)
    ctx = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await ctx.new_page()
    page.on("pageerror", lambda e: session.errors.append(f"javascript: {str(e)[:200]}"))
    page.on("requestfailed", lambda r: session.errors.append(f"request failed: {r.url[:120]} ({r.failure})")
            if "/_stcore/" not in r.url or "stream" not in r.url else None)
    page.on("response", lambda r: session.errors.append(f"HTTP {r.status}: {r.url[:120]}") if r.status >= 400 else None)
    try:
        await page.goto(f"{base}/?v=1&run={run_id}", timeout=timeout_s * 1000)
        await wait_idle(page, timeout_s)
        while True:
            for label, name in PAGES.items():
                previous = await page.locator("h1").first.inner_text()
                started = time.perf_counter()
                await page.locator("[data-testid=stSidebarNav]").get_by_role("link", name=label, exact=True).click()
                await wait_idle(page, timeout_s, previous)
                session.times.setdefault(name, []).append(time.perf_counter() - started)
                await check_page(page, session, name)
                if name == "prior" and rate:
                    await add_rating(page, session, rng, timeout_s)
                    await check_page(page, session, "prior (after adding a rating)")
                if session.think > 0:  # reading the page: not page time
                    await asyncio.sleep(rng.uniform(session.think / 2, 3 * session.think / 2))
            session.loops += 1
            if time.monotonic() >= until:
                break
    except Exception as e:  # noqa: BLE001  (a page that never finished: an error of this session)
        session.errors.append(f"session stopped: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    finally:
        await ctx.close()


@dataclass
class PageCost:
    """What one page's visits cost with one session alone (:func:`alone`), one entry per visit."""

    times: list[float] = field(default_factory=list)  # click to the end of the script run, seconds
    browser: list[float] = field(default_factory=list)  # CPU seconds of every chromium process
    server: list[float] = field(default_factory=list)  # CPU seconds of the dashboard server
    messages: list[int] = field(default_factory=list)  # websocket messages the server sent
    charts: list[int] = field(default_factory=list)  # plotly charts on the page
    draws: list[int] = field(default_factory=list)  # times plotly drew a chart


async def alone(browser, base: str, run_id: str, rounds: int, timeout_s: float, server_pid: int, session: Session) -> dict[str, PageCost]:  # noqa: ANN001
    """One session clicking through the pages ``rounds`` times with nothing else running: per visit, its page time,
    the CPU seconds of the browser and of the server to :data:`SETTLE_S` after the script run, the server's messages
    and plotly's charts and draws. What goes wrong is counted in ``session.errors``, as :func:`drive` counts it."""
    costs = {name: PageCost() for name in PAGES.values()}
    ctx = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await ctx.new_page()
    page.on("pageerror", lambda e: session.errors.append(f"javascript: {str(e)[:200]}"))
    await page.add_init_script(COUNT_DRAWS_JS)
    received = Counter()
    page.on("websocket", lambda ws: ws.on("framereceived", lambda _frame: received.update(("messages",))))
    try:
        await page.goto(f"{base}/?v=1&run={run_id}", timeout=timeout_s * 1000)
        await wait_idle(page, timeout_s)
        for _ in range(rounds):
            for label, name in PAGES.items():
                previous = await page.locator("h1").first.inner_text()
                await page.evaluate("window.__igDraws = 0")
                messages, before, started = received["messages"], cpu_snapshot(server_pid), time.perf_counter()
                await page.locator("[data-testid=stSidebarNav]").get_by_role("link", name=label, exact=True).click()
                await wait_idle(page, timeout_s, previous)
                cost = costs[name]
                cost.times.append(time.perf_counter() - started)
                await asyncio.sleep(SETTLE_S)
                split = cpu_split(before, cpu_snapshot(server_pid))
                cost.browser.append(split["browsers"])
                cost.server.append(split["server"])
                cost.messages.append(received["messages"] - messages)
                cost.charts.append(await page.locator(".js-plotly-plot").count())
                cost.draws.append(await page.evaluate("window.__igDraws"))
                await check_page(page, session, name)
    except Exception as e:  # noqa: BLE001  (a page that never finished: an error, and the pages measured so far)
        session.errors.append(f"session stopped: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    finally:
        await ctx.close()
    return costs


def alone_table(costs: dict[str, PageCost]) -> list[str]:
    """:func:`alone`'s measurements as a table of medians per page, with a loop of every page summed up."""
    visited = {name: c for name, c in costs.items() if c.times}
    if not visited:
        return ["One session alone: no page was drawn."]
    rounds = min(len(c.times) for c in visited.values())
    lines = [
        f"What each page costs with one session alone, before the load (median of {rounds} visit{'s' if rounds > 1 else ''}; "
        f"CPU seconds to {SETTLE_S:g} s after the script run ended, when plotly has drawn):",
        "",
        "| page | page time s | browser CPU s | server CPU s | messages from the server | plotly charts | plotly draws |",
        "|---|---|---|---|---|---|---|",
    ]
    median = statistics.median
    for name, c in visited.items():
        lines.append(f"| {name} | {median(c.times):.2f} | {median(c.browser):.2f} | {median(c.server):.2f} | {median(c.messages):.0f} "
                     f"| {median(c.charts):.0f} | {median(c.draws):.0f} |")
    browser, server = (sum(median(getattr(c, key)) for c in visited.values()) for key in ("browser", "server"))
    lines += ["", f"One loop of the {len(visited)} pages: {browser:.1f} CPU seconds in the browser, {server:.1f} in the server "
                  f"({browser / server:.1f} to one)." if server > 0 else
                  f"One loop of the {len(visited)} pages: {browser:.1f} CPU seconds in the browser, none measured in the server."]
    return lines


#: The roles :func:`cpu_split` splits the machine's CPU into, in the order reported.
ROLES = {
    "browsers": "browsers (headless chromium, every context)",
    "server": "dashboard server (streamlit)",
    "drivers": "the bench's drivers (this Python, Playwright)",
    "rest": "the rest of the machine",
    "idle": "idle",
}


def cpu_snapshot(server_pid: int) -> tuple[dict[int, tuple[str, float]], float, float]:
    """The CPU seconds so far (user + system) of every process alive now with its role (:data:`ROLES`: the server's
    process tree, every other chromium process, this process and its other descendants), and the machine's busy and
    idle seconds. :func:`cpu_split` turns two snapshots into a window's split."""

    def is_browser(p: psutil.Process) -> bool:
        try:
            return "chrom" in p.name().lower()
        except psutil.Error:
            return False

    def tree(p: psutil.Process) -> list[psutil.Process]:
        try:
            return [p, *p.children(recursive=True)]
        except psutil.Error:
            return []

    server = tree(psutil.Process(server_pid))
    server_pids = {p.pid for p in server}
    roles = {p.pid: ("server", p) for p in server}
    # chromium's renderers are forked by its zygote and need not descend from the browser process Playwright started
    roles.update((p.pid, ("browsers", p)) for p in psutil.process_iter() if p.pid not in server_pids and is_browser(p))
    roles.update((p.pid, ("drivers", p)) for p in tree(psutil.Process()) if p.pid not in roles)
    used: dict[int, tuple[str, float]] = {}
    for pid, (role, p) in roles.items():
        try:
            t = p.cpu_times()
        except psutil.Error:  # exited since it was listed
            continue
        used[pid] = (role, t.user + t.system)
    machine = psutil.cpu_times()
    idle = machine.idle + getattr(machine, "iowait", 0.0)
    # Linux counts guest time inside user time: leave it out of the sum
    busy = sum(machine) - idle - getattr(machine, "guest", 0.0) - getattr(machine, "guest_nice", 0.0)
    return used, busy, idle


def cpu_split(before: tuple[dict[int, tuple[str, float]], float, float], after: tuple[dict[int, tuple[str, float]], float, float]) -> dict[str, float]:
    """CPU seconds by role between two :func:`cpu_snapshot`: each process alive at the end counts what it used since
    the start (all it used if it started since); what processes that exited in between used goes to "the rest"."""
    (used0, busy0, idle0), (used1, busy1, idle1) = before, after
    split = dict.fromkeys(ROLES, 0.0)
    for pid, (role, cpu) in used1.items():
        split[role] += cpu - used0.get(pid, (role, 0.0))[1]
    split["idle"] = idle1 - idle0
    split["rest"] = (busy1 - busy0) - split["browsers"] - split["server"] - split["drivers"]
    return split


async def load(base: str, run_id: str, paces: list[list[Session]], seconds: float, timeout_s: float,
               server_pid: int, alone_rounds: int) -> tuple[dict[str, PageCost], list[dict[str, float]]]:
    """Warm the server, measure each page with one session alone (:func:`alone`, ``alone_rounds`` loops), then for
    each pace run its ``sessions`` at once for ``seconds``; returns the pages' costs and per pace the CPU seconds by
    role (:func:`cpu_split`) over the window in which every session was running, with ``window`` its length."""
    from playwright.async_api import async_playwright

    splits: list[dict[str, float]] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        # warm-up, not counted: one visit of every page (imports, the run's caches), as a server that has
        # been up for a while, then each page alone; their errors count all the same
        warm = Session(rater="warm-up")
        await drive(browser, base, run_id, warm, time.monotonic(), -1, timeout_s, rate=False)
        costs = await alone(browser, base, run_id, alone_rounds, timeout_s, server_pid, warm)
        paces[0][0].errors += warm.errors
        for sessions in paces:
            started = time.monotonic()
            until = started + seconds
            before = cpu_snapshot(server_pid)
            split: dict[str, float] = {}

            async def sample(split: dict[str, float] = split, before: tuple = before, started: float = started,
                             until: float = until) -> None:  # at the end of the window: every session still runs
                await asyncio.sleep(max(0.0, until - time.monotonic()))
                split.update(cpu_split(before, cpu_snapshot(server_pid)), window=time.monotonic() - started)

            await asyncio.gather(sample(), *(drive(browser, base, run_id, s, until, i, timeout_s) for i, s in enumerate(sessions)))
            splits.append(split)
        await browser.close()
    return costs, splits


def stored_ratings(db: Path) -> dict[str, list[int]]:
    """User ratings per rater, in the order they were stored."""
    out: dict[str, list[int]] = {}
    if not db.is_file():  # no session reached the Prior page
        return out
    with sqlite3.connect(db) as conn:
        for rater, rating in conn.execute("SELECT rater, rating FROM ratings WHERE source = 'user' ORDER BY id"):
            out.setdefault(rater, []).append(int(rating))
    return out


def compare_ratings(sessions: list[Session], stored: dict[str, list[int]]) -> tuple[int, int, int]:
    """(lost, duplicated, unconfirmed but stored) over every session."""
    lost = duplicated = late = 0
    for s in sessions:
        have, want = Counter(stored.get(s.rater, [])), Counter(s.submitted)
        lost += sum((want - have).values())
        extra = sum((have - want).values())
        late_here = min(extra, s.unconfirmed)  # a submission that was saved but whose confirmation timed out
        late += late_here
        duplicated += extra - late_here
    return lost, duplicated, late


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def cpu_table(split: dict[str, float]) -> list[str]:
    """Where the machine's CPU went in the window every session ran (:func:`load`'s split), as a table."""
    cores = psutil.cpu_count() or 1
    total = split["window"] * cores
    lines = [
        f"Where the CPU went while every session ran ({split['window']:.0f} s × {cores} cores = {total:.0f} CPU-seconds):",
        "",
        "| process | CPU seconds | share of the machine |",
        "|---|---|---|",
    ]
    for key, label in ROLES.items():
        lines.append(f"| {label} | {split[key]:.0f} | {100 * split[key] / total:.0f}% |")
    return lines


#: The p95 page time the load benchmark holds the dashboard to (seconds).
TARGET_P95_S = 5.0


def pace_title(think: float) -> str:
    return ("Clicking on as soon as a page is drawn (no pause: the stress test)" if think <= 0 else
            f"Reading each page for about {think:g} s before the next click (uniform on {think / 2:g}–{3 * think / 2:g} s)")


def page_times(sessions: list[Session]) -> list[float]:
    return [t for s in sessions for ts in s.times.values() for t in ts]


def report(args: argparse.Namespace, paces: list[list[Session]], stored: dict[str, list[int]], run_id: str, seconds: float,
           splits: list[dict[str, float]], costs: dict[str, PageCost]) -> tuple[str, int]:
    """The section: each page's cost with one session alone, what every pace's sessions did, then the p95 page time
    of each pace against the target."""
    sessions = [s for pace in paces for s in pace]
    lines = [
        f"{len(paces[0])} browser sessions (one headless Debian chromium, one context each) on one loopback server "
        f"for {seconds:.0f} s at each pace, run `{run_id if args.runs_dir else 'tiny (testkit.runs.TINY)'}`; each clicks through the {len(PAGES)} pages "
        "in the sidebar and adds a rating on the Prior page under its own rater name. Before the clock starts, one "
        "uncounted visit of every page warms the server (imports, the run's caches). Each pace has its own sessions "
        "and window, one after the other on the same server.",
        "",
        *alone_table(costs),
    ]
    bad = 0
    for pace, split in zip(paces, splits, strict=True):
        text, pace_bad = pace_report(pace, stored, split)
        lines += ["", f"### {pace_title(pace[0].think)}", "", text]
        bad += pace_bad
    lines += ["", "**p95 page time:** " + "; ".join(
        (f"{percentile(page_times(pace), 95):.2f} s " if page_times(pace) else "no page drawn ")
        + ("without a pause" if pace[0].think <= 0 else f"reading each page about {pace[0].think:g} s")
        for pace in paces) + f", against a target of {TARGET_P95_S:g} s."]
    errors = [e for s in sessions for e in s.errors]
    if errors:
        lines += ["", "Errors (first 20):", "", *[f"- {e}" for e in errors[:20]]]
    return "\n".join(lines), bad


def pace_report(sessions: list[Session], stored: dict[str, list[int]], split: dict[str, float]) -> tuple[str, int]:
    lost, duplicated, late = compare_ratings(sessions, stored)
    errors = [e for s in sessions for e in s.errors]
    every = page_times(sessions)
    lines = [
        f"- errors (exceptions, error boxes, sections that could not be drawn, JavaScript errors, HTTP >= 400, failed requests): **{len(errors)}**",
        f"- ratings submitted and confirmed: {sum(len(s.submitted) for s in sessions)}; in the store: {sum(len(stored.get(s.rater, [])) for s in sessions)}; "
        f"**lost: {lost}, duplicated: {duplicated}**" + (f" (stored but not confirmed in time: {late})" if late else ""),
        f"- page loops completed: {sum(s.loops for s in sessions)} ({min(s.loops for s in sessions)}–{max(s.loops for s in sessions)} per session)",
        "",
        "Page time, click on the sidebar link to the end of the script run (seconds):",
        "",
        "| page | visits | p50 | p95 | max |",
        "|---|---|---|---|---|",
    ]
    for name in [*PAGES.values(), "all"]:
        ts = every if name == "all" else [t for s in sessions for t in s.times.get(name, [])]
        if ts:
            lines.append(f"| {'**all**' if name == 'all' else name} | {len(ts)} | {percentile(ts, 50):.2f} | {percentile(ts, 95):.2f} | {max(ts):.2f} |")
    lines += ["", *cpu_table(split)]
    return "\n".join(lines), len(errors) + lost + duplicated


def prepare_runs(args: argparse.Namespace, tmp: Path) -> tuple[Path, str]:
    """A private RUNS_DIR (a fresh judgments store) holding one complete run."""
    runs = tmp / "runs"
    runs.mkdir()
    if args.runs_dir:
        from igcore.store import RunStore

        run = next((r for r in RunStore(args.runs_dir).list() if r.complete), None)
        if run is None:
            raise SystemExit(f"no complete run in {args.runs_dir}")
        shutil.copytree(run.path, runs / run.run_id)
        return runs, run.run_id
    from testkit.runs import build_tiny_run

    build_tiny_run(runs, "tiny")
    return runs, "tiny"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--runs-dir", help="use a copy of the newest complete run there (default: build a tiny run)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one page may take before it counts as an error")
    parser.add_argument("--think", default="0", help="paces: comma-separated mean seconds a session reads each page "
                        "before the next click (0: none, the stress test), each with its own sessions and window")
    parser.add_argument("--alone-rounds", type=int, default=3, help="loops through the pages with one session alone before the load")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args(argv)
    try:
        thinks = [float(x) for x in args.think.split(",")]
    except ValueError:
        parser.error(f"--think takes comma-separated seconds, got {args.think!r}")
    if any(t < 0 for t in thinks):
        parser.error("--think seconds must be 0 or more")
    if args.alone_rounds < 1:
        parser.error(f"--alone-rounds must be 1 or more, got {args.alone_rounds}")
    report_to = Report("load", argv)
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        runs, run_id = prepare_runs(args, Path(tmp))
        server = start_streamlit(runs, Path(tmp) / "streamlit.log", timeout_s=120)
        try:
            paces = [[Session(rater=f"load-{p}-{i:02d}", think=think) for i in range(args.sessions)] for p, think in enumerate(thinks)]
            costs, splits = asyncio.run(load(server.url, run_id, paces, args.seconds, args.timeout, server.process.pid, args.alone_rounds))
            seconds = min(split["window"] for split in splits)
        finally:
            stop(server.process, timeout_s=20)
        stored = stored_ratings(runs / "judgments.sqlite")
        text, bad = report(args, paces, stored, run_id, seconds, splits, costs)
    print(text)
    if not args.no_report:
        report_to.block("docs/RELIABILITY.md", "load", text, title="Reliability")
        report_to.publish()
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
