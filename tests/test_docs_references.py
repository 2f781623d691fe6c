"""The documentation names code that exists: every dotted name of the project's code and every file path that the
README and docs/ write in backticks resolves, so a renamed function or a moved module cannot leave a page describing
code that is gone (prose is checked by people; names and paths by this test)."""

from __future__ import annotations

import ast
import functools
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PACKAGES = ("igcore", "dashboard", "bench", "testkit")
#: `igcore.discover.measure_together` or `igcore.discover.measure_together(run, groups)`
DOTTED = re.compile(rf"`((?:{'|'.join(PACKAGES)})(?:\.[A-Za-z_]\w*)+)(?:\([^`]*\))?`")
#: `RunContext.classifier` or `Run.table("predictions")`: a class of the project named without its module
UNQUALIFIED = re.compile(r"`([A-Z][A-Za-z0-9]*\.[a-z_]\w*)(?:\([^`]*\))?`")
#: `igcore/discover/remeasure.py`, `docs/DISCOVER.md`, `tests/` (patterns with * < > {{ }} are not paths)
PATH = re.compile(r"`((?:igcore|dashboard|bench|testkit|tests|assets|docs|\.ci)/[\w./-]*)`")
SCRIPTS = "dashboard.app_pages"  # Streamlit page scripts: importing one would run the page, so they are read as text


def references(pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    return sorted({(m.group(1), page.name) for page in PAGES for m in pattern.finditer(page.read_text(encoding="utf-8"))})


def _defined_in_script(module: str, names: list[str]) -> bool:
    """A page script's top-level function, class or variable (read with ast, never run)."""
    path = ROOT / (module.replace(".", "/") + ".py")
    if not names:
        return True
    tree = ast.parse(path.read_text(encoding="utf-8"))
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    defined |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    defined |= {n.target.id for n in tree.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    return len(names) == 1 and names[0] in defined


def resolves(name: str) -> bool:
    """``name`` is a module of the project, or an attribute path in one (a dataclass or pydantic field counts)."""
    parts = name.split(".")
    if name.startswith(SCRIPTS + "."):
        return any(_defined_in_script(".".join(parts[:i]), parts[i:]) for i in range(len(parts), 2, -1)
                   if (ROOT / "/".join(parts[:i])).with_suffix(".py").is_file())
    for i in range(len(parts), 0, -1):
        module = ".".join(parts[:i])
        try:
            obj = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name is not None and not module.startswith(e.name):
                raise  # the module exists but imports something missing: a real error, not a stale name
            continue
        for attr in parts[i:]:
            fields = [k for k in getattr(obj, "__mro__", ()) if attr in getattr(k, "__annotations__", {})]
            if hasattr(obj, attr):
                obj = getattr(obj, attr)
            elif fields:  # a field without a default is an annotation only
                return attr == parts[-1]
            else:
                return False
        return True
    return False


@functools.cache
def class_modules() -> dict[str, list[str]]:
    """``{class name: [modules that define a class of that name]}`` over the project's packages (read with ast)."""
    found: dict[str, list[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                if isinstance(node, ast.ClassDef):
                    found.setdefault(node.name, []).append(module)
    return found


#: Classes of libraries the docs name without their module.
LIBRARY_CLASSES = {"LayerAttribution": "captum.attr"}


def resolves_unqualified(name: str) -> bool:
    """``Class.attribute``: some class of the project of that name (or the library class of
    :data:`LIBRARY_CLASSES`) has the attribute."""
    cls, attr = name.split(".")
    if cls in LIBRARY_CLASSES:
        return hasattr(getattr(importlib.import_module(LIBRARY_CLASSES[cls]), cls), attr)
    return any(resolves(f"{module}.{cls}.{attr}") for module in class_modules().get(cls, []))


@pytest.mark.parametrize(("name", "page"), references(UNQUALIFIED))
def test_a_method_or_field_of_a_class_in_the_docs_exists(name: str, page: str) -> None:
    assert resolves_unqualified(name), f"{page} names `{name}`, which no class of the project defines"


@pytest.mark.parametrize(("name", "page"), references(DOTTED))
def test_a_name_of_the_code_in_the_docs_exists(name: str, page: str) -> None:
    assert resolves(name), f"{page} names `{name}`, which the code does not define"


@pytest.mark.parametrize(("path", "page"), references(PATH))
def test_a_path_in_the_docs_exists(path: str, page: str) -> None:
    assert (ROOT / path).exists(), f"{page} names `{path}`, which the repository does not hold"


def test_a_stale_name_or_path_is_caught() -> None:
    assert resolves("igcore.discover.measure_together") and resolves("igcore.resolve.Resolution.implausible")
    assert not resolves("igcore.discover.measure_alone") and not resolves("igcore.no_such_module.thing")
    assert resolves("dashboard.app_pages.discover.show_together") and not resolves("dashboard.app_pages.discover.gone")
    assert resolves_unqualified("Run.judgments") and resolves_unqualified("DiscoveryView.alike_unmeasured")
    assert not resolves_unqualified("Run.of_run") and not resolves_unqualified("NoSuchClass.method")
    assert references(DOTTED) and references(PATH)
    assert not (ROOT / "igcore/discover/gone.py").exists()
