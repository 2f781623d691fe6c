"""The run's thread policy, in one place: torch intra-op and inter-op threads and the BLAS pools of numpy/scipy.

Torch's default is one intra-op thread per core. When another process keeps a core busy, every parallel
region waits at its barrier for the thread that shares that core, and a stage runs several times slower
than with one thread (the measurements, stage by stage, are in docs/PERFORMANCE.md, written by
``bench/bench_threads.py``). A run therefore applies ``runtime.*`` (:class:`RuntimeConfig`) when it starts
(:func:`thread_policy`, restored when it ends; by default one thread fewer than the machine has cores) and records what is in effect in its manifest
(``manifest["threads"]``). By default two stages run at once on two cores, one thread each, and a second stage
starts only while other processes leave its core free (:class:`Concurrency`); Ray workers apply the same policy with ``ray.threads_per_worker`` threads
(:mod:`igcore.executors`). The run's per-image work has no DataLoader worker processes: batches are cut in
the run's process (``executor=local``) or by the Ray workers (``executor=ray``).

Before stages train side by side, :func:`warm_kernels` initialises torch's kernels in one thread: two threads that
do it at once sometimes give other weights (``bench/thread_race.py``, docs/PERFORMANCE.md).

The run's process also keeps the memory it frees for reuse (:func:`keep_freed_memory`, ``runtime.keep_freed_memory``):
glibc's malloc returns a freed block of more than a few megabytes to the kernel at once, so a training loop that
allocates tensors of the same shapes at every step pays for fresh zero-filled pages every time (system time, measured
in docs/PERFORMANCE.md). PyTorch's CPU performance guide recommends a caching allocator (jemalloc,
tcmalloc) for the same reason; these are glibc's own settings for it, applied from inside the process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from pydantic import Field

from igcore.settings import Settings

if TYPE_CHECKING:
    import torch

#: The arithmetic a training step may run in (``runtime.precision`` adds ``auto``: :func:`training_precision`).
PRECISIONS = ("float32", "bfloat16")

#: Environment variables that size the BLAS/OpenMP pools of a process started later (Ray workers).
BLAS_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class RuntimeConfig(Settings):
    """``runtime.*``: threads of the run's process."""

    threads: int | None = Field(
        None, ge=0, le=1024,
        description="torch intra-op and BLAS threads of the run's process; null = CPUs - 1 (at least 1); 0 = the libraries' default (one per core)",
    )

    def intra_op(self) -> int:
        """The intra-op thread count to apply (0: leave the libraries' default): ``threads``, or one core fewer than
        the machine has, so that a process busy on one core does not stall every parallel region."""
        return self.threads if self.threads is not None else max(1, (os.cpu_count() or 1) - 1)
    interop_threads: int = Field(
        1, ge=0, le=1024, description="torch inter-op threads (settable once per process); 0 = torch's default"
    )
    stages: int | None = Field(
        None, ge=1, le=64,
        description="stages that run at once, each in its own thread, a stage starting once the results it reads exist; "
                    "null = up to 2 on a machine with 2 or more CPUs, as many as the CPUs other processes leave free "
                    "hold (igcore.runtime.Concurrency), else 1; 1 = one stage after the other",
    )

    keep_freed_memory: bool = Field(
        True, description="keep freed memory in the run's process for reuse instead of returning it to the kernel at "
                          "once (glibc's malloc settings; igcore.runtime.keep_freed_memory): less system time, a larger peak RSS",
    )

    precision: Literal["float32", "auto", "bfloat16"] = Field(
        "float32", description="arithmetic of the training steps (forward and backward; weights, optimiser and every "
                               "evaluation stay float32): auto = bfloat16 where the device computes it natively (a CPU "
                               "with AMX tiles, a CUDA GPU with bfloat16), else float32; opt-in (docs/ARCHITECTURE.md); "
                               "igcore.runtime.training_precision",
    )

    def concurrent_stages(self) -> int:
        """How many stages run at once at most: ``stages``, or two where the machine has two cores (the default run's
        stages use one thread each, so a second stage fills the second core; docs/PERFORMANCE.md). With ``stages``
        null, fewer while other processes keep the CPUs busy (:class:`Concurrency`)."""
        return self.stages if self.stages is not None else min(2, os.cpu_count() or 1)

    def stage_threads(self) -> int:
        """Intra-op threads of each stage's thread (0: the libraries' default): the process's threads shared among the
        stages that run at once, at least one each."""
        threads = self.intra_op()
        return max(1, threads // self.concurrent_stages()) if threads else 0


def _cpu_clock() -> tuple[float, float, float]:
    """(wall seconds, CPU-seconds the machine has been busy, CPU-seconds of this process), from psutil."""
    import psutil

    machine = psutil.cpu_times()
    # busy = everything but idle and I/O wait; guest time is already inside user time on Linux (steal is busy: the
    # hypervisor gave the CPU to someone else)
    busy = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0) - getattr(machine, "guest", 0.0) - getattr(machine, "guest_nice", 0.0)
    own = psutil.Process().cpu_times()
    return time.monotonic(), busy, own.user + own.system


class CpuGauge:
    """How many CPUs other processes keep busy: the machine's busy CPU-seconds minus this process's own, over the
    wall time since the previous reading (psutil). The kernel counts CPU time in ticks of 10 ms, so a reading spans at
    least ``min_window`` seconds: one sooner repeats the previous reading (the first waits for the rest).

    Args:
        min_window: the shortest span a reading averages over.
        clock: ``() -> (wall s, machine busy CPU-s, own CPU-s)`` (:func:`_cpu_clock`; tests give their own).
    """

    def __init__(self, min_window: float = 0.25, clock: Callable[[], tuple[float, float, float]] | None = None) -> None:
        self.min_window, self._clock = min_window, clock or _cpu_clock
        self._last = self._clock()
        self._reading: float | None = None

    def others_busy(self) -> float:
        """CPUs other processes kept busy since the previous reading (0 when idle, 1.0 for one busy core)."""
        now = self._clock()
        if now[0] - self._last[0] < self.min_window:
            if self._reading is not None:
                return self._reading
            time.sleep(self.min_window - (now[0] - self._last[0]))
            now = self._clock()
        wall = now[0] - self._last[0]
        self._reading = max(0.0, ((now[1] - self._last[1]) - (now[2] - self._last[2])) / wall)
        self._last = now
        return self._reading


class Concurrency:
    """How many of a run's stages (and the microscope's lanes) run at once now.

    ``runtime.stages`` set: always that many. ``runtime.stages`` null (the default): up to
    :meth:`RuntimeConfig.concurrent_stages`, as many as the CPUs that other processes leave free hold, each stage
    taking :meth:`RuntimeConfig.stage_threads` threads (the nearest whole number, at least one). On an idle machine
    with two CPUs that is two stages at once; with another process busy on one core, one stage after the other, so
    no stage shares its core with both another stage and the other process (the busy-core measurements are in
    docs/PERFORMANCE.md). Like ``make --load-average``, it is decided when a stage is about to start: a
    stage already running keeps running. Where the CPU times cannot be read (psutil fails), up to the limit at once.
    """

    def __init__(self, runtime: RuntimeConfig, gauge: CpuGauge | None = None, cpus: int | None = None) -> None:
        self.limit = runtime.concurrent_stages()
        self.cpus = cpus or os.cpu_count() or 1
        self.threads = runtime.stage_threads() or self.cpus  # 0: the libraries' default, one thread per core
        self.adaptive = runtime.stages is None and self.limit > 1
        self.gauge: CpuGauge | None = None
        if self.adaptive:
            try:
                self.gauge = gauge or CpuGauge()
            except Exception:  # noqa: BLE001  (no readable CPU times here, e.g. a sandbox without /proc/stat)
                self.adaptive = False  # then the fixed default: up to `limit` at once, as before the gauge
        self.others = 0.0  # CPUs other processes kept busy at the last decision

    def at_once(self) -> int:
        """How many stages (or lanes) may run at once now."""
        if self.gauge is None:
            return self.limit
        self.others = self.gauge.others_busy()
        return max(1, min(self.limit, int((self.cpus - self.others) / self.threads + 0.5)))


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 matrix products in hardware: a CPU with Intel AMX tiles (oneDNN's bfloat16
    convolutions run on them; on CPUs without, bfloat16 is emulated and slower than float32) or a CUDA GPU that
    supports bfloat16."""
    import torch

    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        is_amx = getattr(torch.cpu, "_is_amx_tile_supported", None)  # torch's own CPU-capability probe
        return bool(is_amx and is_amx())
    return False


def training_precision(setting: str, device: torch.device) -> str:
    """The arithmetic of the run's training steps: ``setting`` (``runtime.precision``), ``auto`` resolved for ``device``.

    Mixed-precision training (Micikevicius et al., 2018; Kalamkar et al., 2019 for bfloat16): the forward and
    backward passes of a training step run under ``torch.autocast`` in bfloat16 while the weights, the optimiser's
    state and every evaluation (validation, scores, the microscope) stay float32. bfloat16 keeps float32's exponent
    range, so no loss scaling is needed. ``auto`` takes it only where the hardware computes it natively
    (:func:`native_bfloat16`); the measured gain is in docs/PERFORMANCE.md (the pipeline page's last column runs
    ``runtime.precision=auto``). Not the default: float32 is (docs/ARCHITECTURE.md says why)."""
    if setting == "auto":
        return "bfloat16" if native_bfloat16(device) else "float32"
    return setting


def blas_env(threads: int) -> dict[str, str]:
    """The environment that gives a new process's BLAS/OpenMP pools ``threads`` threads (``{}`` for 0: the default)."""
    return {name: str(threads) for name in BLAS_ENV} if threads else {}


def threads_in_effect() -> dict[str, Any]:
    """What this process runs with: torch intra-op and inter-op threads and each BLAS pool's size."""
    import torch
    from threadpoolctl import threadpool_info

    return {
        "torch_intra_op": torch.get_num_threads(),
        "torch_inter_op": torch.get_num_interop_threads(),
        "blas": {f"{pool['internal_api']}:{pool['prefix']}": pool["num_threads"] for pool in threadpool_info()},
        "cpu_count": os.cpu_count(),
    }


def apply_threads(threads: int, interop_threads: int = 0) -> None:
    """Give torch ``threads`` intra-op threads and every BLAS pool as many (0: leave them), and torch
    ``interop_threads`` inter-op threads when this process has not started its inter-op pool yet (torch
    allows setting it once, before any inter-op work; otherwise the current size stays and is what
    :func:`threads_in_effect` reports)."""
    import torch
    from threadpoolctl import threadpool_limits

    if threads:
        torch.set_num_threads(threads)
        threadpool_limits(limits=threads)
    if interop_threads and torch.get_num_interop_threads() != interop_threads:
        try:
            torch.set_num_interop_threads(interop_threads)
        except RuntimeError:  # the pool already runs: torch refuses a second setting
            pass


#: glibc ``mallopt`` settings of :func:`keep_freed_memory` (parameter numbers from ``malloc.h``), in bytes: blocks up
#: to 32 MiB (glibc's ceiling for its own adaptive threshold) come from the heap rather than fresh mappings, and the
#: heap keeps up to 1 GiB of free memory at its top, growing by 256 MiB at a time, instead of trimming it at each free.
HEAP_SETTINGS = {"M_MMAP_THRESHOLD": (-3, 32 << 20), "M_TRIM_THRESHOLD": (-1, 1 << 30), "M_TOP_PAD": (-2, 256 << 20)}


_HEAP_APPLIED: dict[str, int] | None = None  # what keep_freed_memory set in this process, once it has run


def keep_freed_memory() -> dict[str, int]:
    """Apply :data:`HEAP_SETTINGS` to this process's malloc, once (they last as long as the process); returns what was
    set, ``{}`` where the C library is not glibc (macOS, musl: nothing to set) or refuses a setting. The manifest
    records what is in effect (:func:`heap_in_effect`); docs/PERFORMANCE.md measures the run with and without."""
    global _HEAP_APPLIED
    if _HEAP_APPLIED is None:
        _HEAP_APPLIED = _mallopt(HEAP_SETTINGS)
    return _HEAP_APPLIED


def exit_now(code: int) -> NoReturn:
    """End the process with ``code`` at once, without the interpreter's teardown. For an exit while a run's threads
    are still inside torch's C++ kernels (a run interrupted by Ctrl+C, a server stopped during its first launch):
    the teardown stops such a thread when it next takes the GIL, and its forced unwinding through those frames aborts
    the process ("terminate called without an active exception", SIGABRT) after the run's folder was already left
    as it should be. Logging and the standard streams are flushed first; exit handlers do not run."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def heap_in_effect() -> dict[str, int]:
    """The :data:`HEAP_SETTINGS` this process runs with: those :func:`keep_freed_memory` applied, if it has run."""
    return dict(_HEAP_APPLIED or {})


def _mallopt(settings: dict[str, tuple[int, int]]) -> dict[str, int]:
    if not sys.platform.startswith("linux"):
        return {}
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # no C library by that name, or one without mallopt
        return {}
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return {name: value for name, (param, value) in settings.items() if mallopt(param, value) == 1}


@contextmanager
def thread_policy(settings: RuntimeConfig) -> Iterator[dict[str, Any]]:
    """Apply ``settings`` for the duration of a run; yields :func:`threads_in_effect` plus the configured values
    (what the manifest records). Intra-op and BLAS threads are restored afterwards (a caller such as the
    dashboard or a test keeps its own setting)."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    threads = settings.intra_op()
    with threadpool_limits(limits=threads or None):
        apply_threads(threads, settings.interop_threads)
        try:
            yield {"threads": settings.threads, "interop_threads": settings.interop_threads, **threads_in_effect()}
        finally:
            torch.set_num_threads(before)


#: Held by whatever seeds and draws from the process-wide random generators of torch and numpy (model
#: initialisation, captum's stochastic attributions, the sanity checks' re-initialisation): stages that run at
#: once in threads (``runtime.stages``) take turns, so each draws the numbers a one-stage-at-a-time run draws.
_GLOBAL_RNG = threading.RLock()


@contextmanager
def global_rng(seed: int | None = None) -> Iterator[None]:
    """The process-wide random generators of torch (and numpy) to this thread alone for the block, torch's seeded
    with ``seed`` when given. Code that draws from them (rather than from a generator of its own) runs inside."""
    import torch

    with _GLOBAL_RNG:
        if seed is not None:
            torch.manual_seed(seed)
        yield


def warm_kernels(device: torch.device) -> float:
    """One training step, and one evaluation, of a small throwaway network in this thread; returns its seconds.

    Run before stages train side by side in threads (:func:`igcore.pipeline.run_stages`). On some CPUs (an Intel
    Xeon; not the AMD EPYC that wrote the current page) two threads that each train a network at once in a fresh
    process sometimes end with other weights than the same two trained one after the other, diverging at the second
    optimisation step: a race below this project, reproduced in plain PyTorch and in the engine by
    ``python -m bench.thread_race``, where this step in one thread before the threads start made every try agree,
    although its network has other shapes than the training's (docs/PERFORMANCE.md has the counts of the machine that
    last ran it; docs/ARCHITECTURE.md both machines'). So what the threads race
    on is a one-time initialisation in torch's CPU kernels or oneDNN, not one shape's kernel; this step does it
    alone. The network holds the kinds of layer the project's models use (convolutions with and without stride,
    batch and layer normalisation, pooling, attention, GELU and ReLU, a linear head, both losses, AdamW), and the
    step draws from torch's random generators only inside :func:`torch.random.fork_rng`, so the run's numbers
    do not move."""
    import torch
    from torch import nn

    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):  # everything random is drawn on the CPU, then moved
        torch.manual_seed(0)
        convolutional = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ).to(device)
        attention = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation="gelu", batch_first=True).to(device)
        head = nn.Linear(8, 2).to(device)
        parameters = [*convolutional.parameters(), *attention.parameters(), *head.parameters()]
        optimizer = torch.optim.AdamW(parameters, lr=1e-3)
        images = torch.rand(4, 3, 16, 16).to(device)

        def logits() -> torch.Tensor:
            features = convolutional(images)
            return head(attention(features[:, None, :].expand(-1, 3, -1)).mean(1))

        out = logits()
        loss = nn.functional.cross_entropy(out, torch.tensor([0, 1, 0, 1], device=device))
        loss = loss + nn.functional.binary_cross_entropy_with_logits(out, torch.ones_like(out))
        loss.backward()
        optimizer.step()
        for module in (convolutional, attention, head):
            module.eval()
        with torch.no_grad():
            logits()
    return time.perf_counter() - start


@lru_cache(maxsize=1)
def _blas_pools() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()  # the pools loaded now (numpy's and scipy's): found once, cheap to limit afterwards


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """The BLAS pools of numpy and scipy limited to one thread for the block (restored afterwards), for small
    interactive linear algebra such as refitting Prior_M after one new rating: its multi-threaded BLAS calls gain
    nothing at that size and leave the pools' idle workers spinning on the cores that the re-solve of z* right after
    needs (the warm re-solve's timing, docs/bench_search.md). Call it after scipy is imported."""
    with _blas_pools().limit(limits=1, user_api="blas"):
        yield
