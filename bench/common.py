"""What every generator of the documentation shares: where it writes, and the record of where its numbers came from.

A generator (a script of ``bench/`` declared in :data:`bench.registry.GENERATORS`) writes through a
:class:`Report`: generated blocks of pages (``<!-- name:start -->`` … ``<!-- name:end -->``), data files, and, when
it publishes, on each page it wrote a provenance block ``<generator>-provenance`` and the machine-readable record
``docs/provenance/<generator>.json`` (the command, the commit, the machine with its thread settings, the date, the
wall time, and a SHA-256 of every output, by which the tests know a block is exactly what its generator wrote).

Reports are portable: they name the command with paths relative to the repository (a path outside it is shown
by its last component only), the machine by its CPU model and counts, and the software by package names and
versions, never by where this machine keeps them. Everything goes under :func:`output_root`: the repository,
or the folder given to ``python -m bench.regenerate --out DIR``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.docs import replace_block
from bench.registry import Generator, generator
from igcore.store import package_versions

ROOT = Path(__file__).resolve().parents[1]

#: Set by ``python -m bench.regenerate --out DIR``: the root under which generators write (default: the repository).
OUT_ENV = "IG_DOCS_OUT"
#: Set by ``python -m bench.regenerate``: ``full`` or ``quick``, the registry's settings the command runs with.
SETTINGS_ENV = "IG_DOCS_SETTINGS"
#: Where each generator's provenance record goes, relative to the root.
PROVENANCE_DIR = "docs/provenance"
#: Packages whose versions a report names.
REPORT_PACKAGES = ("torch", "transformers", "captum", "numpy", "pandas", "scikit-learn", "pydantic", "streamlit", "plotly")
#: Thread settings of the environment that a report names when set.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def output_root() -> Path:
    """Where outputs go: ``$IG_DOCS_OUT`` (``regenerate --out``) or the repository."""
    return Path(os.environ.get(OUT_ENV) or ROOT)


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (falls back to what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_average() -> str:
    """The machine's 1, 5 and 15 minute load averages as text ("n/a" where the OS has none): benches on a shared
    machine print it beside their timings."""
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def portable_path(text: str) -> str:
    """``text`` with an absolute path made relative to the repository, or cut to ``…/<name>`` outside it."""
    if not os.path.isabs(text):
        return text
    path = Path(text).resolve()
    try:
        return str(path.relative_to(ROOT)) or "."
    except ValueError:
        return f"…/{path.name}"


def portable_arg(arg: str) -> str:
    """One command-line argument made portable (``--set key=/abs/path`` included)."""
    key, sep, value = arg.partition("=")
    if sep and not os.path.isabs(arg):
        return f"{key}={portable_path(value)}"
    return portable_path(arg)


def command_line(module: str, argv: Sequence[str] | None = None) -> str:
    """``python -m bench.<script> args…`` as run from the repository root, with portable paths."""
    args = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(["python", "-m", module, *(portable_arg(a) for a in args)])


def git_commit() -> dict[str, Any]:
    """``{"commit": short hash or None, "code_changes": whether files outside the docs differ from it}``."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "--short=12", "HEAD")
    changes = git("status", "--porcelain", "--", ".", ":(exclude)docs", ":(exclude)README.md")
    return {"commit": commit, "code_changes": None if changes is None else bool(changes)}


def machine() -> dict[str, Any]:
    """The CPU, its cores, and the thread settings the numbers were measured with."""
    import torch
    from threadpoolctl import threadpool_info

    blas = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_name(), "cpus": os.cpu_count(), "cores_available": cores,
        "torch_threads": torch.get_num_threads(), "blas_threads": blas[0] if blas else None,
        "env": {k: os.environ[k] for k in THREAD_ENV if k in os.environ},
        "python": platform.python_version(), "system": platform.system(),
    }


def report_versions() -> str:
    """``torch 2.13.0, transformers 5.x, …`` for the packages a report depends on (those installed)."""
    versions = package_versions(REPORT_PACKAGES)
    return ", ".join(f"{name} {versions[name]}" for name in REPORT_PACKAGES if versions[name] != "not installed")


def sha256(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def settings_label(spec: Generator, settings: str | None) -> str:
    regenerate = f"`python -m bench.regenerate --only {spec.name}`"
    return {
        "full": f"the documented settings (regenerate with {regenerate})",
        "quick": "the quick settings (`python -m bench.regenerate --quick`): small data for checking the machinery; "
                 "these numbers are not results",
    }.get(settings or "", f"the settings of this command (the documented ones: {regenerate})")


def render_provenance(record: dict[str, Any]) -> str:
    """The provenance block of a page, from a generator's record (:meth:`Report.publish`)."""
    spec = generator(record["generator"])
    if record.get("legacy"):
        return (f"Measured before this page was generated by `python -m bench.regenerate`: `{record['command']}` on "
                f"{record['machine']['summary']}; the commit and the date were not recorded. These numbers describe older "
                f"code until `python -m bench.regenerate --only {spec.name}` runs on the current one.")
    m = record["machine"]
    env = ", ".join(f"`{k}={v}`" for k, v in m["env"].items())
    changes = {True: " with uncommitted changes", False: "", None: ""}[record.get("code_changes")]
    commit = f"commit `{record['commit']}`{changes}" if record.get("commit") else "a checkout without git history"
    return "\n".join([
        f"Generated by `{record['command']}` (from the repository root), at {settings_label(spec, record.get('settings'))}.",
        "",
        f"- Code: {commit}.",
        f"- Machine: {m['cpu']}, {m['cores_available']} of {m['cpus']} CPUs; torch threads {m['torch_threads']}, "
        f"BLAS threads {m['blas_threads'] if m['blas_threads'] is not None else 'unknown'}"
        + (f" ({env})" if env else "") + f"; {m['system']}, Python {m['python']}.",
        f"- Packages: {record['packages']}.",
        f"- Date: {record['date']}; wall time {record['seconds'] / 60:.1f} min.",
    ])


class Report:
    """What one generator writes, under :func:`output_root`, and the record of where it came from.

    Args:
        name: the generator's entry in :data:`bench.registry.GENERATORS`.
        argv: the command's arguments (default ``sys.argv[1:]``), named in the provenance.

    Writing an output that the entry does not declare raises; :meth:`publish` raises when a declared output
    was not written, then writes the provenance blocks and ``docs/provenance/<name>.json``.
    """

    def __init__(self, name: str, argv: Sequence[str] | None = None) -> None:
        self.spec = generator(name)
        self.root = output_root()
        self.command = command_line(self.spec.module, argv)
        self.started = time.time()
        self.outputs: dict[str, str] = {}

    # ------------------------------------------------------------------------------------------ outputs
    def _declared(self, output: str) -> None:
        folders = [f for f in self.spec.files if f.endswith("/")]
        declared = (*self.spec.blocks, *self.spec.provenance_blocks, *self.spec.files)
        if output not in declared and not any(output.startswith(f) for f in folders):
            raise ValueError(f"generator {self.spec.name!r} does not declare {output!r} in bench/registry.py")

    def block(self, page: str, name: str, body: str, title: str | None = None) -> None:
        """Replace block ``name`` of ``page`` (relative to the root) with ``body``."""
        output = f"{page}#{name}"
        self._declared(output)
        path = self.root / page
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(replace_block(path.read_text() if path.is_file() else "", name, body, title))
        self.outputs[output] = sha256(body.rstrip())

    def path(self, relative: str) -> Path:
        """Where to write the file ``relative`` (its folder created); hashed when the report is published."""
        self._declared(relative)
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        self.outputs[relative] = ""
        return path

    def write_text(self, relative: str, text: str) -> None:
        self.path(relative).write_text(text)

    # ------------------------------------------------------------------------------------------ provenance
    def record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"generator": self.spec.name, "command": self.command}
        if self.spec.measures:
            record |= {
                "settings": os.environ.get(SETTINGS_ENV), **git_commit(),
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self.started)),
                "seconds": round(time.time() - self.started, 1), "machine": machine(), "packages": report_versions(),
            }
        return record

    def publish(self) -> dict[str, Any]:
        """Write the provenance block on every page written and the record; returns the record."""
        record = self.record()
        if self.spec.measures:
            for page in self.spec.pages:
                self.block(page, f"{self.spec.name}-provenance", render_provenance(record))
        written = {o: h or file_digest(self.root / o) for o, h in self.outputs.items()}
        missing = [o for o in (*self.spec.blocks, *self.spec.provenance_blocks, *self.spec.files)
                   if o not in written and not (o.endswith("/") and any(w.startswith(o) for w in written))]
        if missing:
            raise RuntimeError(f"generator {self.spec.name!r} did not write {', '.join(missing)} (declared in bench/registry.py)")
        record["outputs"] = dict(sorted(written.items()))
        path = self.root / PROVENANCE_DIR / f"{self.spec.name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {', '.join(sorted({o.partition('#')[0] for o in written}))} and {path.relative_to(self.root)}", flush=True)
        return record


def file_digest(path: Path) -> str:
    return sha256(path.read_bytes())


def read_record(name: str, root: Path = ROOT) -> dict[str, Any] | None:
    """A generator's provenance record (None when it never published)."""
    path = root / PROVENANCE_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def default_run(runs: Path, sets: Sequence[str] = ()) -> Path:
    """A complete run of the default config (with ``sets``) under ``runs/default-run``: one already there with the
    same config (made earlier in the same ``python -m bench.regenerate``, whose runs folder is its own), else a new
    one. The report of the default run, the screenshots and the dashboard bench read the same run."""
    from igcore.config import load_config
    from igcore.pipeline import run_pipeline
    from igcore.store import RunStore

    folder = Path(runs) / "default-run"
    wanted = load_config(None, sets).public()
    wanted.pop("run_id", None)
    for run in RunStore(folder).list():
        stored = dict(run.config)
        stored.pop("run_id", None)
        if run.complete and stored == wanted:
            print(f"default run: reusing {portable_path(str(run.path))}", flush=True)
            return run.path
    return Path(run_pipeline(load_config(None, sets), folder, progress=False))


def lanes_sentence() -> str:
    """The microscope's lanes (``igcore.microscope.plan.LANES``) in words, for the pages that show its parts' seconds:
    "a, b and c beside d, e and f"."""
    from igcore.microscope.plan import LANES

    def listed(parts: tuple[str, ...]) -> str:
        return ", ".join(parts[:-1]) + f" and {parts[-1]}" if len(parts) > 1 else parts[0]

    return " beside ".join(listed(lane) for lane in LANES)
