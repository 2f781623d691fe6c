"""Racing and killing writers of the stores (the judgments and labels stores' tests, the crash bench).

:func:`run_threads` / :func:`run_processes` call ``target(arg0, barrier, *rest)`` once per tuple of ``args``;
the barrier lets all of them start their racing step together. A worker's exception fails the test, with
the child's traceback for processes. :func:`start_rating_writer` starts a process that adds ratings until
it is killed, saying which ones it committed.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROCESSES = multiprocessing.get_context("forkserver")
PROCESSES.set_forkserver_preload(["igcore.prior", "igcore.labels", "pandas"])


def _in_child(target: Callable[..., None], errors: Any, *args: Any) -> None:
    """Run ``target`` in a worker process; its traceback goes back to the test (a child's stderr does not)."""
    try:
        target(*args)
    except BaseException:
        errors.put(traceback.format_exc())
        raise


def run_processes(target: Callable[..., None], args: list[tuple[Any, ...]]) -> None:
    barrier, errors = PROCESSES.Barrier(len(args)), PROCESSES.SimpleQueue()
    procs = [PROCESSES.Process(target=_in_child, args=(target, errors, a[0], barrier, *a[1:])) for a in args]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    failures = []
    while not errors.empty():
        failures.append(errors.get())
    assert failures == [] and [p.exitcode for p in procs] == [0] * len(procs)


def run_threads(target: Callable[..., None], args: list[tuple[Any, ...]]) -> None:
    barrier = threading.Barrier(len(args))
    errors: list[BaseException] = []

    def run(*a: Any) -> None:
        try:
            target(a[0], barrier, *a[1:])
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=run, args=a) for a in args]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []


#: A process adding ratings ``<prefix>-0``, ``<prefix>-1``... to a judgments store until it is killed.
RATING_WRITER = """
import sys
from igcore.prior import JudgmentsStore
from igcore.worlds.base import Vocabulary

store = JudgmentsStore(sys.argv[1], Vocabulary.from_csv(sys.argv[2]), ["husky", "wolf"])
print("ready", flush=True)
i = 0
while True:
    store.add_rating(f"{sys.argv[3]}-{i}", "amber_eyes", "wolf", 1 + i % 5)
    print(i, flush=True)  # only after add_rating returned, i.e. after COMMIT
    i += 1
"""


def start_rating_writer(database: Path, vocabulary_csv: Path, prefix: str) -> subprocess.Popen:
    """:data:`RATING_WRITER` on ``database``, once it is ready: it prints ``i`` after committing rating
    ``<prefix>-<i>`` (stdout and stderr are pipes of text)."""
    proc = subprocess.Popen([sys.executable, "-c", RATING_WRITER, str(database), str(vocabulary_csv), prefix],
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if proc.stdout.readline() != "ready\n":
        proc.kill()
        raise RuntimeError(f"the rating writer did not start: {proc.stderr.read() if proc.stderr else ''}")
    return proc
