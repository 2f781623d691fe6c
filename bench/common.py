"""Helpers shared by the benchmark scripts (run as ``python bench/<name>.py`` from the repository root).

Reports written to docs/ are portable: they name the command with paths relative to the repository (a
path outside it is shown by its last component only), the machine by its CPU model and count, and the
software by package names and versions, never by where this machine keeps them.
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from igcore.store import package_versions

ROOT = Path(__file__).resolve().parents[1]

#: Packages whose versions a report names.
REPORT_PACKAGES = ("torch", "transformers", "captum", "numpy", "pandas", "scikit-learn", "pydantic", "streamlit", "plotly")


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (falls back to what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


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


def command_line(script: str, argv: Sequence[str] | None = None) -> str:
    """``python bench/<script> args…`` as run from the repository root, with portable paths."""
    args = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(["python", f"bench/{Path(script).name}", *(portable_arg(a) for a in args)])


def report_versions() -> str:
    """``torch 2.13.0, transformers 5.x, …`` for the packages a report depends on (those installed)."""
    versions = package_versions(REPORT_PACKAGES)
    return ", ".join(f"{name} {versions[name]}" for name in REPORT_PACKAGES if versions[name] != "not installed")


def provenance(script: str, argv: Sequence[str] | None = None) -> list[str]:
    """Markdown lines naming the command, the machine and the software that produced a report."""
    threads = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ}
    env = " with " + ", ".join(f"`{k}={v}`" for k, v in threads.items()) if threads else ""
    return [
        f"Produced by `{command_line(script, argv)}` (from the repository root){env}.",
        f"Machine: {cpu_name()}, {os.cpu_count()} CPUs, Python {platform.python_version()}. "
        f"Packages: {report_versions()}.",
    ]


def write_section(path: Path, name: str, body: str, title: str) -> None:
    """Replace the ``<!-- name:start -->…<!-- name:end -->`` section of the Markdown file ``path`` with
    ``body`` (appended when absent; the file is created with ``title`` as its heading), so several bench
    scripts can each own one section of one report."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    text = path.read_text() if path.exists() else f"# {title}\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
