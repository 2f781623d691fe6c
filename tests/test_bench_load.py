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
