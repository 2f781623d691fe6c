"""Where per-image work runs: batches of images through a function that holds a model.

Every stage that works image by image (backbone features, attribution maps, the log-odds of counterfactual
images, a layer's activations for concept discovery) hands the executor a factory ``make_fn() -> fn``, the
images and, optionally, the rows of them to map; ``fn(pixels, rows) -> array`` maps a uint8 batch
(B, H, W, 3) and the row number of each image in ``images`` (B,) to a result with one row per image. The
rows are what makes a result independent of how the work was cut into batches: a stochastic method seeds
each image from its row (:func:`igcore.microscope.attribution.compute_maps`). The factory (not the
function) crosses process boundaries, so each worker builds its model once (a factory that holds a
trained model, a user's checkpoint included, ships its weights with it). Every executor returns the same
array in the same order (the order of ``rows``):

- :class:`LocalExecutor` runs in this process, batch by batch, with a progress bar (``executor=local``).
- :class:`RayExecutor` runs a Ray Data pipeline (``executor=ray``, docs/SCALE.md): a dataset with one
  row per image (its row number, and its file when the world decodes lazily), ``map_batches`` as tasks,
  ``ray.workers`` at a time, on Ray's worker processes, which build the model once per pipeline (and are
  reused by the next one), decode their own images with the engine's decode function
  (:func:`igcore.worlds.images.decode`) and run ``fn``; the driver only receives the results. The task of a
  dead worker is retried (``ray.max_retries``).

The images are a numpy array (worlds drawn in memory) or :class:`~igcore.worlds.images.LazyImages`
(photographs decoded on demand): the local executor decodes those one batch at a time, the ray
executor in its workers.
"""

from __future__ import annotations

import logging
import os
import resource
import shutil
import socket
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from igcore.errors import InputError
from igcore.runtime import apply_threads, blas_env
from igcore.worlds.images import LazyImages, ProgressFn, decode

if TYPE_CHECKING:
    from igcore.config import Config, RayConfig

#: ``fn(pixels, rows)``: uint8 (B, H, W, 3) images and their row numbers (B,) -> one result row per image.
BatchFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
Images = np.ndarray | LazyImages


def _rows(images: Images, rows: np.ndarray | None) -> np.ndarray:
    """The rows of ``images`` to map (all of them when None), checked."""
    if rows is None:
        return np.arange(len(images), dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    if len(rows) and (rows.min() < 0 or rows.max() >= len(images)):
        raise ValueError(f"rows must be in [0, {len(images) - 1}]")
    return rows


class Executor(Protocol):
    name: str
    stats: dict[str, Any]

    def map_batches(
        self, make_fn: Callable[[], BatchFn], images: Images, batch_size: int, desc: str = "", rows: np.ndarray | None = None,
        loading: bool = True,
    ) -> np.ndarray:
        """``fn(pixels, rows)`` over ``images[rows]`` (every image when ``rows`` is None) in batches of
        ``batch_size``, concatenated in the order of ``rows``. ``loading``: the call reads the world's images
        (the features stage), so its progress goes to ``on_progress`` (what the dashboard shows as reading the
        images); the later stages' per-image work does not report there."""
        ...

    def connect(self) -> None:
        """Start what the work runs on (a local Ray cluster, or join one), in the calling thread: the thread that
        stays for the whole run (the pipeline's), not a stage's thread that ends before later stages map."""
        ...

    def close(self) -> None:
        """Release what the executor started (a local Ray cluster)."""
        ...


_IMAGES: ContextVar[list[int] | None] = ContextVar("igcore_images_mapped", default=None)
_COUNTING = threading.Lock()


def count_images() -> list[int]:
    """Count from now on, in ``counter[0]``, the images the executors map in this context and in the threads started
    with a copy of it: a stage's share of the per-image work when stages run at once in threads (``runtime.stages``),
    which the executors' shared ``stats`` cannot tell apart."""
    counter = [0]
    _IMAGES.set(counter)
    return counter


def _count(n: int) -> None:
    counter = _IMAGES.get()
    if counter is not None:
        with _COUNTING:
            counter[0] += n


def _peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds() -> float:
    """CPU time (user + system) this process has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class LocalExecutor:
    """This process, one batch after another (``progress``: a tqdm bar; ``on_progress(done, total)``)."""

    name = "local"

    def __init__(self, progress: bool = True, on_progress: ProgressFn | None = None) -> None:
        self.progress, self.on_progress = progress, on_progress
        self.stats: dict[str, Any] = {"images": 0, "seconds": 0.0, "workers": {}}

    def map_batches(
        self, make_fn: Callable[[], BatchFn], images: Images, batch_size: int, desc: str = "", rows: np.ndarray | None = None,
        loading: bool = True,
    ) -> np.ndarray:
        start = time.perf_counter()
        every = rows is None
        rows = _rows(images, rows)
        fn = make_fn()
        parts = []
        for lo in tqdm(range(0, len(rows), batch_size), desc=desc, disable=not self.progress, leave=False):
            batch = rows[lo : lo + batch_size]
            pixels = images[lo : lo + batch_size] if every else images[batch]  # LazyImages decode just this batch
            parts.append(fn(pixels, batch))
            if self.on_progress and loading:
                self.on_progress(min(lo + batch_size, len(rows)), len(rows))
        self._record(len(rows), time.perf_counter() - start)
        return np.concatenate(parts) if parts else np.zeros((0,), np.float32)

    def _record(self, n: int, seconds: float) -> None:
        _count(n)
        self.stats["images"] += n
        self.stats["seconds"] += seconds
        self.stats["workers"] = {os.getpid(): round(_peak_rss_mb(), 1)}

    def connect(self) -> None:
        pass

    def close(self) -> None:
        pass


# ------------------------------------------------------------------------------------------------ Ray


class _FileRows:
    """Pixels of a batch of rows decoded from their files inside the worker (lazy worlds)."""

    def __init__(self, size: int, policy: str) -> None:
        self.size, self.policy = size, policy

    def open(self) -> _FileRows:
        return self

    def __call__(self, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, list[str]]:
        images = np.empty((len(batch["row"]), self.size, self.size, 3), dtype=np.uint8)
        errors = [""] * len(images)
        for i, path in enumerate(batch["path"]):
            try:
                images[i] = decode(Path(str(path)), self.size, self.policy)[0]
            except Exception as exc:  # noqa: BLE001 - PIL's many exception types all mean "unreadable"
                errors[i] = f"{type(exc).__name__}: {exc}"
        return images, errors


class _ArrayRows:
    """Pixels of a batch of rows read from one in-memory array put in the object store (worlds drawn in memory)."""

    def __init__(self, holder: list[Any]) -> None:
        self.holder = holder  # [ObjectRef]: a list, so Ray passes the reference rather than the array
        self.images: np.ndarray | None = None

    def open(self) -> _ArrayRows:
        import ray

        self.images = ray.get(self.holder[0])  # zero-copy view of the shared array
        return self

    def __call__(self, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, list[str]]:
        assert self.images is not None
        return self.images[batch["row"]], [""] * len(batch["row"])


#: In a Ray worker process: the function and the row reader built for the pipeline it last worked for, by the
#: object id of that pipeline's factory (one at a time, so an idle worker holds at most one model).
_BUILT: dict[str, tuple[BatchFn, _FileRows | _ArrayRows]] = {}


def _map_rows(batch: dict[str, np.ndarray], factory: list[Any], loader: _FileRows | _ArrayRows, threads: int) -> dict[str, np.ndarray]:
    """A Ray Data task: maps one batch of rows to results with the pipeline's function, built once per process.

    ``factory`` is ``[ObjectRef]`` of ``make_fn`` (a list, so Ray hands the reference over unresolved): a
    worker fetches and calls it only for the first batch of a pipeline it sees, and keeps the function for the
    pipeline's other batches. Worker processes outlive a pipeline and Ray reuses them for the next one, so torch
    is imported once per worker and run, not once per pipeline (an actor pool starts new processes for every
    pipeline: seconds each on a small machine, whatever the pipeline's size).

    Each output batch carries the positions it answers (the driver puts them in order), the decoding error of
    each row ("" when none: bad files are reported together, as by the local path), and this process's id,
    peak resident memory (what the run reports as memory per worker) and CPU time so far.
    """
    key = factory[0].hex()
    if key not in _BUILT:
        import ray

        apply_threads(threads, interop_threads=1)  # the run's thread policy, with this worker's share of the CPUs
        _BUILT.clear()
        _BUILT[key] = (ray.get(factory[0])(), loader.open())
    fn, rows_of = _BUILT[key]
    rows = np.asarray(batch["row"], dtype=np.int64)
    images, errors = rows_of(batch)
    out = np.zeros((len(rows), 0), np.float32) if any(errors) else np.asarray(fn(images, rows))
    return {
        "pos": np.asarray(batch["pos"], dtype=np.int64),
        "row": rows,
        "out": out,
        "error": np.asarray(errors, dtype=object),
        "pid": np.full(len(rows), os.getpid(), dtype=np.int64),
        "peak_rss_mb": np.full(len(rows), _peak_rss_mb(), dtype=np.float64),
        "cpu_seconds": np.full(len(rows), _cpu_seconds(), dtype=np.float64),
    }


def _loopback_only(on: bool) -> bool:
    """Make a local cluster's processes listen and talk on the loopback address (``on``); returns the old setting.

    On Linux Ray advertises a node by its network address even on one machine; its single-machine mode
    (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read into ``ray_constants.ENABLE_RAY_CLUSTER`` when Ray is
    imported) uses 127.0.0.1 instead, so a local cluster is reachable from this machine only. Set for
    the processes Ray starts (environment) and for this one (the constant); restored by :meth:`RayExecutor.close`.
    """
    from ray._private import ray_constants

    before = not ray_constants.ENABLE_RAY_CLUSTER
    os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0" if on else "1"
    ray_constants.ENABLE_RAY_CLUSTER = not on
    return before


def _igcore_root() -> str:
    """The folder that holds the ``igcore`` package (what workers put on their ``sys.path``)."""
    return str(Path(__file__).resolve().parent.parent)


#: Seconds a Ray address's host gets to accept a connection before the run says it cannot reach it.
REACH_TIMEOUT_S = 10.0
#: What to do about a Ray address the run cannot use (the end of both of its one-line errors).
RAY_ADDRESS_FIX = "fix ray.address or RAY_ADDRESS, or leave both unset for a local cluster"
#: The port of a Ray address given without one: Ray's GCS default, and the Ray Client's for a ``ray://`` address.
RAY_DEFAULT_PORT, RAY_CLIENT_PORT = 6379, 10001


def check_reachable(address: str, timeout_s: float = REACH_TIMEOUT_S) -> None:
    """InputError unless the host and port of a Ray ``address`` (``host:port`` or ``ray://host:port``) accept a TCP
    connection within ``timeout_s``. ``auto`` and ``local`` are Ray's to resolve. Without this, ``ray.init`` retries an
    address where nothing answers for minutes, printing only its own warnings."""
    target = address.removeprefix("ray://")
    if target in ("auto", "local"):
        return
    default = RAY_CLIENT_PORT if address.startswith("ray://") else RAY_DEFAULT_PORT
    host, _, port = target.rpartition(":") if target.rsplit("]", 1)[-1].count(":") == 1 else (target, "", str(default))
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except ValueError:
        raise InputError(f"ray.address={address!r} is not host:port (e.g. 10.0.0.5:6379, ray://head:10001 or auto)") from None
    except OSError as e:
        reason = f"no answer within {timeout_s:.0f} s" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise InputError(f"cannot reach the Ray cluster at ray.address={address!r} ({reason}); start it, {RAY_ADDRESS_FIX}") from None


class RayExecutor:
    """Ray Data: ``map_batches`` as tasks, ``settings.workers`` at a time, on worker processes that hold the model.

    Connects to ``settings.address`` or ``$RAY_ADDRESS`` when given (an existing cluster: the run
    directory, the backbone and the image files must be at the same paths on every node — shared
    storage), else starts a local cluster of ``workers × threads_per_worker`` CPUs on this machine (on
    the loopback address) with a bounded object store, no dashboard, logs in a temporary folder, and
    stops it in :meth:`close`.
    A Ray already initialised by the caller is used as it is and left running.
    """

    name = "ray"

    def __init__(self, settings: RayConfig, progress: bool = True, on_progress: ProgressFn | None = None) -> None:
        self.settings, self.progress, self.on_progress = settings, progress, on_progress
        self.stats: dict[str, Any] = {"images": 0, "seconds": 0.0, "workers": {}}
        self._started = False
        self._temp_dir: str | None = None
        self._loopback: bool | None = None  # Ray's single-machine setting before a local cluster changed it
        self._connecting = threading.Lock()  # stages running at once may ask for the cluster at the same time
        self._closed = False

    # -- the cluster ---------------------------------------------------------------------------------
    def connect(self) -> None:
        """Join the configured cluster, or start a bounded local one (once). Call it from a thread that outlives the
        work (:func:`igcore.pipeline.run_pipeline` does, before the stages): a driver that Ray initialised in a thread
        which then ended was terminated by Ray at its next map ("the connection to the plasma store is failed"),
        exit status 1 and no message, when a stage thread that started the cluster had finished."""
        with self._connecting:
            self._connect()

    def _connect(self) -> None:
        import ray

        if self._closed:  # a stage thread still mapping after the run ended (Ctrl+C) must not start a cluster again
            raise RuntimeError("the Ray executor was closed: the run is over")
        if ray.is_initialized():
            return
        s = self.settings
        address = s.address or os.environ.get("RAY_ADDRESS")
        quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
        if address:
            check_reachable(address)  # Ray retries an address where nothing answers for minutes
            # Another machine's workers import igcore from the package this driver ships them; the
            # cluster's own settings (CPUs, object store, dashboard) are its operator's.
            try:
                ray.init(address=address, runtime_env={"py_modules": [str(Path(__file__).resolve().parent)]}, **quiet)
            except ConnectionError as e:  # "auto" with no cluster running here
                raise InputError(f"no Ray cluster at ray.address={address!r} ({str(e).splitlines()[0]}); start one, "
                                 f"{RAY_ADDRESS_FIX}") from None
        else:
            self._loopback = _loopback_only(True)
            self._temp_dir = tempfile.mkdtemp(prefix="ig-ray-")
            path = os.pathsep.join(p for p in (_igcore_root(), os.environ.get("PYTHONPATH", "")) if p)
            ray.init(
                num_cpus=s.workers * s.threads_per_worker,
                object_store_memory=s.object_store_mb * 2**20,
                _temp_dir=self._temp_dir,
                runtime_env={"env_vars": {"PYTHONPATH": path, **blas_env(s.threads_per_worker)}},  # BLAS pools sized at start
                include_dashboard=False,
                **quiet,
            )
        self._started = True

    def close(self) -> None:
        """Stop the local cluster this executor started (a cluster it joined, or found running, stays). The executor
        does not connect again: after Ctrl+C, stage threads may still be mapping while the run ends."""
        with self._connecting:
            self._closed = True
        if not self._started:
            return
        import ray
        from ray._private import auto_init_hook

        # Stage threads still mapping (an interrupted run) meet a cluster that is gone. Ray Data would start a new
        # default cluster for them by itself (Ray's auto-init), whose processes outlived the run, and log its errors
        # with tracebacks that say nothing to the person who pressed Ctrl+C. The engine always starts Ray itself.
        auto_init_hook.enable_auto_connect = False
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        ray.shutdown()
        self._started = False
        if self._loopback is not None:
            _loopback_only(self._loopback)
        if self._temp_dir:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    # -- the work ----------------------------------------------------------------------------------
    def dataset(self, make_fn: Callable[[], BatchFn], images: Images, batch_size: int, rows: np.ndarray | None = None) -> Any:
        """The Ray Data pipeline (not yet executed): one dataset row per image of ``rows`` (its position in
        the output, its row in ``images``, and its file when lazy), mapped by :func:`_map_rows` tasks."""
        import pandas as pd
        import ray
        import ray.data

        self.connect()
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # importing ray.data set its own level
        # its progress module only says that the bars are off, which the executor chose (it draws its own bar)
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the executor draws one bar of its own
        context.print_on_execution_start = False
        rows = _rows(images, rows)
        n = len(rows)
        columns: dict[str, Any] = {"pos": np.arange(n, dtype=np.int64), "row": rows}
        if isinstance(images, LazyImages):
            columns["path"] = images.view(rows).paths
            loader: _FileRows | _ArrayRows = _FileRows(images.source.size, images.source.policy)
        else:
            loader = _ArrayRows([ray.put(np.ascontiguousarray(images))])
        table = pd.DataFrame(columns)
        s = self.settings
        # A block (row numbers and paths: bytes per image) is one task for a worker, which maps it batch by
        # batch: at least ~8 blocks per worker to balance the load, at most 16 batches per block so that
        # a large data set is not thousands of tasks for the driver to schedule (it shares the machine).
        per_block = batch_size * min(16, max(1, n // (batch_size * s.workers * 8)))
        blocks = [table.iloc[lo : lo + per_block] for lo in range(0, n, per_block)]
        with warnings.catch_warnings():
            # A task whose worker died is retried ray.max_retries times (Ray Data's default: forever). The bound
            # has no named parameter yet; the remote-args form is deprecated for removal in Ray 2.64, hence
            # requirements' bound.
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*is deprecated")
            return ray.data.from_pandas(blocks).map_batches(
                _map_rows,
                fn_kwargs={"factory": [ray.put(make_fn)], "loader": loader, "threads": s.threads_per_worker},
                batch_size=batch_size,
                batch_format="numpy",
                compute=ray.data.TaskPoolStrategy(size=s.workers),
                num_cpus=s.threads_per_worker,
                max_retries=s.max_retries,
            )

    def map_batches(
        self, make_fn: Callable[[], BatchFn], images: Images, batch_size: int, desc: str = "", rows: np.ndarray | None = None,
        loading: bool = True,
    ) -> np.ndarray:
        rows = _rows(images, rows)
        n = len(rows)
        if n == 0:
            return np.zeros((0,), np.float32)
        start = time.perf_counter()
        out: np.ndarray | None = None
        errors: dict[int, str] = {}
        done = 0
        workers: dict[int, float] = self.stats["workers"]  # pid -> peak RSS, MiB
        cpu_seconds: dict[int, float] = self.stats.setdefault("cpu_seconds", {})  # pid -> CPU seconds used
        with tqdm(total=n, desc=f"{desc} (ray, {self.settings.workers} workers)", unit="img",
                  disable=not self.progress, leave=False) as bar:
            for batch in self.dataset(make_fn, images, batch_size, rows).iter_batches(batch_size=None, batch_format="numpy"):
                positions = batch["pos"]
                failed = {int(r): str(e) for r, e in zip(batch["row"], batch["error"], strict=True) if e}
                errors.update(failed)
                if not failed:
                    if out is None:
                        out = np.empty((n, *batch["out"].shape[1:]), dtype=batch["out"].dtype)
                    out[positions] = batch["out"]
                for pid, rss, cpu in zip(batch["pid"], batch["peak_rss_mb"], batch["cpu_seconds"], strict=True):
                    workers[int(pid)] = max(workers.get(int(pid), 0.0), round(float(rss), 1))
                    cpu_seconds[int(pid)] = max(cpu_seconds.get(int(pid), 0.0), float(cpu))
                done += len(positions)
                bar.update(len(positions))
                if self.on_progress and loading:
                    self.on_progress(done, n)
        if errors:
            self._unreadable(images, errors)
        _count(n)
        self.stats["images"] += n
        self.stats["seconds"] += time.perf_counter() - start
        assert out is not None and done == n, "the Ray pipeline returned fewer rows than it was given"
        return out

    @staticmethod
    def _unreadable(images: Images, errors: dict[int, str]) -> None:
        """One line naming how many files could not be decoded, and the first (as the local path says it)."""
        bad = sorted(errors)
        names = images.paths if isinstance(images, LazyImages) else [str(i) for i in range(len(images))]
        if isinstance(images, LazyImages) and images.source.display is not None:
            names = [images.source.display[r] for r in images.rows]
        count = f"{len(bad)} image files are" if len(bad) > 1 else "1 image file is"
        raise InputError(f"{count} missing or unreadable, first: {names[bad[0]]} ({errors[bad[0]]}); fix or remove those rows")


def make_executor(config: Config, progress: bool = True, on_progress: ProgressFn | None = None) -> Executor:
    """The executor ``config.executor`` names (``ray``: with the ``ray.*`` settings)."""
    if config.executor == "ray":
        return RayExecutor(config.ray, progress, on_progress)
    return LocalExecutor(progress, on_progress)
