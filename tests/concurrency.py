"""Running one test function at once in several threads or processes (the stores' concurrency tests).

``target(arg0, barrier, *rest)`` is called once per tuple of ``args``; the barrier lets all of them start
their racing step together. A worker's exception fails the test, with the child's traceback for processes.
"""

from __future__ import annotations

import multiprocessing
import threading
import traceback
from collections.abc import Callable
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
