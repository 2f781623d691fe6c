"""The dashboard's number-reading parts do not import torch: every dashboard module imports without it,
and every page of the registry that does not run models (:attr:`dashboard.pages.PageSpec.runs_models`)
renders a complete run without loading it. Each check runs in a fresh interpreter, so nothing another
test imported can hide an import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dashboard.pages import PAGES

ROOT = Path(__file__).resolve().parents[1]
#: Heavy libraries a number-reading part must not load.
HEAVY = ("torch", "transformers", "captum")


def dashboard_modules() -> list[str]:
    """Every module of the dashboard (pages and the router are scripts, not modules: see the page test)."""
    names = [".".join(p.relative_to(ROOT).with_suffix("").parts) for p in (ROOT / "dashboard").rglob("*.py")]
    names = [n.removesuffix(".__init__") for n in names]
    return sorted(n for n in names if not n.startswith("dashboard.app_pages") and n != "dashboard.app")


def _fresh(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=600)


def test_modules_import_without_torch() -> None:
    """Every dashboard module, imported one after another in one fresh interpreter, loads none of :data:`HEAVY`. An
    earlier module cannot hide a later one's import: whatever a module imports is loaded when it is imported, so
    the first module whose import loads a heavy library is the one named."""
    modules = dashboard_modules()
    assert "dashboard.run_view" in modules and "dashboard.components.charts" in modules
    code = f"""
import importlib, sys
for module in {modules!r}:
    importlib.import_module(module)
    print(module, sorted(m for m in {HEAVY!r} if m in sys.modules), flush=True)
"""
    out = _fresh(code)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [line for line in out.stdout.splitlines() if line.split(" ", 1)[0] in modules]
    assert [line.split(" ", 1)[0] for line in lines] == modules, out.stdout
    loaded = [line for line in lines if not line.endswith("[]")]
    assert not loaded, loaded  # the first module listed is the one that imported it


def test_pages_that_read_numbers_render_without_torch(runs_dir: Path) -> None:
    """Each page that does not run models, opened on the complete tiny run, loads none of :data:`HEAVY`."""
    pages = [p.name for p in PAGES if not p.runs_models]
    assert pages, "the registry has number-reading pages"
    code = f"""
import sys
from streamlit.testing.v1 import AppTest
for page in {pages!r}:
    at = AppTest.from_file({str(ROOT / "dashboard" / "app.py")!r}, default_timeout=300)
    at.query_params.update({{"v": "2", "run": "tiny"}})
    if page != "overview":
        at.switch_page(f"app_pages/{{page}}.py")
    at.run()
    assert not at.exception, (page, [e.value for e in at.exception])
    assert not at.error, (page, [e.value for e in at.error])  # drawn whole, not stopped on an error box before its imports
    assert not [w.value for w in at.warning if "could not be drawn" in str(w.value)], page  # no section failed in its guard
    assert not [i.value for i in at.info if "This run has no" in str(i.value)], page  # every section of the complete run
    print(page, sorted(m for m in {HEAVY!r} if m in sys.modules), flush=True)
"""
    out = _fresh(code, {"IG_RUNS_DIR": str(runs_dir)})
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [line for line in out.stdout.splitlines() if line.split(" ", 1)[0] in pages]
    assert [line.split(" ", 1)[0] for line in lines] == pages, out.stdout
    loaded = [line for line in lines if not line.endswith("[]")]
    assert not loaded, loaded  # the first page listed is the one that imported it
