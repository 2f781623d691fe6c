"""The load benchmark's CPU split: each process's CPU goes to its role (bench/bench_load.py)."""

from __future__ import annotations

import subprocess
import sys
import time
from unittest.mock import patch

from bench.bench_load import ROLES, cpu_snapshot, cpu_split, cpu_table

SPIN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\nprint('done', flush=True)\ninput()"


def test_a_busy_server_process_counts_as_the_server_and_the_split_covers_the_machine() -> None:
    server = subprocess.Popen([sys.executable, "-c", SPIN.format(s=0.6)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    helper = subprocess.Popen([sys.executable, "-c", SPIN.format(s=0.4)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        before, started = cpu_snapshot(server.pid), time.monotonic()
        assert server.stdout is not None and helper.stdout is not None
        assert server.stdout.readline().strip() == "done" and helper.stdout.readline().strip() == "done"
        after = cpu_snapshot(server.pid)
        split = cpu_split(before, after)
        window = time.monotonic() - started
    finally:
        for p in (server, helper):
            p.kill()
            p.wait()
    # the server's spin is the server's; this test's own child (not chromium) is one of the bench's drivers, never a
    # browser (chromium of other tests running beside this one is the machine's, so the browsers' total is not asserted)
    assert 0.45 <= split["server"] <= 0.9
    assert split["drivers"] >= 0.3
    roles = {pid: role for pid, (role, _) in after[0].items()}
    assert roles[server.pid] == "server" and roles[helper.pid] == "drivers"
    # every role together is the machine's CPU over the window (rounding of the clock ticks aside)
    import psutil

    # ("rest" is what the roles leave of the machine's busy time, so the sum holds by construction; a role counted
    # twice would show as a negative rest)
    assert abs(sum(split.values()) - window * psutil.cpu_count()) <= 0.25 * window * psutil.cpu_count() + 0.2
    assert all(split[role] >= 0 for role in ROLES if role != "rest") and split["rest"] >= -0.1


def test_the_cpu_table_gives_each_role_its_seconds_and_share() -> None:
    split = {"browsers": 1.5, "server": 1.0, "drivers": 0.5, "rest": 0.25, "idle": 0.75, "window": 2.0}
    with patch("psutil.cpu_count", return_value=2):
        table = cpu_table(split)
    assert table[0] == "Where the CPU went while every session ran (2 s × 2 cores = 4 CPU-seconds):"
    assert table[4:] == [
        "| browsers (headless chromium, every context) | 2 | 38% |",
        "| dashboard server (streamlit) | 1 | 25% |",
        "| the bench's drivers (this Python, Playwright) | 0 | 12% |",
        "| the rest of the machine | 0 | 6% |",
        "| idle | 1 | 19% |",
    ]


def test_a_process_that_exits_in_the_window_does_not_take_its_earlier_cpu_with_it() -> None:
    """Each process counts what it used in the window; one that exited (the warm-up's renderer) leaves only the
    machine's total, which goes to the rest, and one that started in the window counts everything it used."""
    before = ({1: ("browsers", 10.0), 2: ("server", 5.0), 4: ("browsers", 30.0)}, 100.0, 0.0)
    after = ({1: ("browsers", 12.0), 2: ("server", 6.0), 3: ("browsers", 1.0)}, 110.0, 10.0)
    assert cpu_split(before, after) == {"browsers": 3.0, "server": 1.0, "drivers": 0.0, "rest": 6.0, "idle": 10.0}


def test_the_report_gives_each_pace_its_own_sessions_ratings_and_p95() -> None:
    """``--think 0,5``: a section per pace (its page times, its raters' ratings) and both p95s against the target."""
    from argparse import Namespace

    from bench.bench_load import TARGET_P95_S, Session, report

    def pace(index: int, think: float, seconds: float) -> list[Session]:
        return [Session(rater=f"load-{index}-{i:02d}", think=think, times={"overview": [seconds] * 20},
                        submitted=[3, 4], loops=1) for i in range(2)]

    paces = [pace(0, 0.0, 8.0), pace(1, 5.0, 2.0)]
    stored = {"load-0-00": [3, 4], "load-0-01": [3, 4], "load-1-00": [3, 4], "load-1-01": [3]}  # one rating lost at pace 5
    split = {"browsers": 10.0, "server": 1.0, "drivers": 1.0, "rest": 0.0, "idle": 0.0, "window": 6.0}
    text, bad = report(Namespace(runs_dir=None), paces, stored, "tiny", 120.0, [split, split], {})
    assert bad == 1  # the lost rating
    no_pause, reading = text.split("### ")[1:]
    assert no_pause.startswith("Clicking on as soon as a page is drawn") and "in the store: 4; **lost: 0" in no_pause
    assert reading.startswith("Reading each page for about 5 s") and "in the store: 3; **lost: 1" in reading
    assert "| overview | 40 | 8.00 | 8.00 | 8.00 |" in no_pause and "| overview | 40 | 2.00 | 2.00 | 2.00 |" in reading
    assert text.splitlines()[-1] == (f"**p95 page time:** 8.00 s without a pause; 2.00 s reading each page about 5 s, "
                                     f"against a target of {TARGET_P95_S:g} s.")

    # a pace whose sessions drew no page says so (and its errors count), rather than failing the report
    stopped = [Session(rater="load-2-00", think=1.0, errors=["session stopped: TimeoutError"])]
    text, bad = report(Namespace(runs_dir=None), [paces[0], stopped], stored, "tiny", 120.0, [split, split], {})
    assert "; no page drawn reading each page about 1 s, against a target of 5 s." in text and bad == 1
    assert text.endswith("- session stopped: TimeoutError")


def test_each_page_alone_is_a_row_of_medians_and_a_loop_sums_them() -> None:
    """The table of one session alone: per page the median of its visits; the loop's sentence adds the pages' medians
    and compares the browser's seconds with the server's; a page never drawn is left out."""
    from bench.bench_load import PageCost, alone_table

    costs = {
        "overview": PageCost(times=[1.0, 3.0, 2.0], browser=[0.9, 0.5, 0.7], server=[0.1, 0.3, 0.2], messages=[80, 84, 82],
                             charts=[5, 5, 5], draws=[10, 10, 11]),
        "label": PageCost(times=[0.2, 0.4, 0.3], browser=[0.3, 0.3, 0.1], server=[0.1, 0.1, 0.0], messages=[17, 17, 17],
                          charts=[0, 0, 0], draws=[0, 0, 0]),
        "share": PageCost(),
    }
    lines = alone_table(costs)
    assert lines[0].startswith("What each page costs with one session alone, before the load (median of 3 visits;")
    assert "| overview | 2.00 | 0.70 | 0.20 | 82 | 5 | 10 |" in lines
    assert "| label | 0.30 | 0.30 | 0.10 | 17 | 0 | 0 |" in lines
    assert not any(line.startswith("| share") for line in lines)
    assert lines[-1] == "One loop of the 2 pages: 1.0 CPU seconds in the browser, 0.3 in the server (3.3 to one)."
    assert alone_table({"share": PageCost()}) == ["One session alone: no page was drawn."]


def test_the_report_opens_with_the_pages_alone() -> None:
    from argparse import Namespace

    from bench.bench_load import PageCost, Session, report

    sessions = [Session(rater="load-0-00", times={"overview": [1.0]}, loops=1)]
    split = {"browsers": 1.0, "server": 1.0, "drivers": 0.0, "rest": 0.0, "idle": 0.0, "window": 1.0}
    costs = {"overview": PageCost(times=[1.0], browser=[0.5], server=[0.25], messages=[9], charts=[1], draws=[2])}
    text, _ = report(Namespace(runs_dir=None), [sessions], {}, "tiny", 1.0, [split], costs)
    head, pace = text.split("### ")
    assert "| overview | 1.00 | 0.50 | 0.25 | 9 | 1 | 2 |" in head and "(median of 1 visit;" in head
    assert pace.startswith("Clicking on as soon as a page is drawn")
