"""The load benchmark's CPU split: each process's CPU goes to its role (bench/bench_load.py)."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.bench_load import ROLES, cpu_snapshot, cpu_split, cpu_table

SPIN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\nprint('done', flush=True)\ninput()"


def test_a_busy_server_process_counts_as_the_server_and_the_split_covers_the_machine() -> None:
    server = subprocess.Popen([sys.executable, "-c", SPIN.format(s=0.6)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    helper = subprocess.Popen([sys.executable, "-c", SPIN.format(s=0.4)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        before, started = cpu_snapshot(server.pid), time.monotonic()
        assert server.stdout is not None and helper.stdout is not None
        assert server.stdout.readline().strip() == "done" and helper.stdout.readline().strip() == "done"
        split = cpu_split(before, cpu_snapshot(server.pid))
        window = time.monotonic() - started
    finally:
        for p in (server, helper):
            p.kill()
            p.wait()
    # the server's spin is the server's; this test's own child (not chromium) is one of the bench's drivers
    assert 0.45 <= split["server"] <= 0.9
    assert split["drivers"] >= 0.3
    assert split["browsers"] == 0.0
    # every role together is the machine's CPU over the window (rounding of the clock ticks aside)
    import psutil

    assert abs(sum(split.values()) - window * psutil.cpu_count()) <= 0.25 * window * psutil.cpu_count() + 0.2
    table = cpu_table({**split, "window": window})
    assert len([row for row in table if row.startswith("| ") and not row.startswith("| process")]) == len(ROLES)
    assert all(label in "\n".join(table) for label in ROLES.values())


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
    text, bad = report(Namespace(runs_dir=None), paces, stored, "tiny", 120.0, [split, split])
    assert bad == 1  # the lost rating
    no_pause, reading = text.split("### ")[1:]
    assert no_pause.startswith("Clicking on as soon as a page is drawn") and "in the store: 4; **lost: 0" in no_pause
    assert reading.startswith("Reading each page for about 5 s") and "in the store: 3; **lost: 1" in reading
    assert "| overview | 40 | 8.00 | 8.00 | 8.00 |" in no_pause and "| overview | 40 | 2.00 | 2.00 | 2.00 |" in reading
    assert text.splitlines()[-1] == (f"**p95 page time:** 8.00 s without a pause; 2.00 s reading each page about 5 s, "
                                     f"against a target of {TARGET_P95_S:g} s.")

    # a pace whose sessions drew no page says so (and its errors count), rather than failing the report
    stopped = [Session(rater="load-2-00", think=1.0, errors=["session stopped: TimeoutError"])]
    text, bad = report(Namespace(runs_dir=None), [paces[0], stopped], stored, "tiny", 120.0, [split, split])
    assert "; no page drawn reading each page about 1 s, against a target of 5 s." in text and bad == 1
    assert text.endswith("- session stopped: TimeoutError")
