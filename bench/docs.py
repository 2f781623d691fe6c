"""Reading the documentation as the regeneration machinery sees it: generated blocks, their structure, and the
numbers that stand outside them.

A page (``README.md``, ``docs/*.md``) is prose written by people plus **generated blocks**, each between
``<!-- name:start -->`` and ``<!-- name:end -->`` and written only by the generator that declares it in
:data:`bench.registry.GENERATORS`. Three readings of a page:

- :func:`blocks`: the blocks by name (their bodies, exactly as written).
- :func:`shape`: the structure of a block with its figures masked: headings, tables (header row and row labels),
  list keys, paragraph leads, images. Two runs of one generator at different settings (the quick settings of CI,
  the documented full ones) write the same shape; a generator that changed writes another.
- :func:`stray_numbers`: the figures in the prose outside the blocks that are not one of the few kinds of number
  that are no result (:class:`Allowed`). Every result belongs in a generated block.

Markdown is parsed with markdown-it (CommonMark with tables), so code, links and tables are what a renderer
sees.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]

#: ``<!-- name:start -->`` … ``<!-- name:end -->``, each marker on a line of its own (the one block format; names are
#: letters, digits, ``.``, ``_``, ``-``). A marker quoted inside a line (as here) is text, not a marker.
BLOCK = re.compile(r"^<!-- (?P<name>[\w.-]+):start -->\n(?:(?P<body>.*?)\n)?<!-- (?P=name):end -->$", re.S | re.M)
MARKER = re.compile(r"^<!-- ([\w.-]+):(start|end) -->$", re.M)
#: A figure: digits with optional thousands separators and decimals. Digits glued to a letter or an underscore on
#: the left (``float32``, ``CUB_200_2011``), joined by a hyphen to a word (``ResNet-18``) or followed by a letter
#: (``L6v2``, ``2nd``) are part of a name, not a figure; a unit glued to the digits (``45s``, ``3x``, ``64px``, ``512MB``)
#: does not make one.
NUMBER = re.compile(r"(?<![\w.,])(?<![A-Za-z]-)\d(?:[\d,]*\d)?(?:\.\d+)?(?!(?!(?:s|ms|x|px|min|[KMGT]i?B)\b)\w)")
_MASK = re.compile(r"[-+−]?\d(?:[\d,.]*\d)?")
#: A list of masked figures (``{#, #, #}``: the ρ values or seeds a setting runs) is one figure: settings differ in
#: how many they run, not in what the text says.
_MASKED_LIST = re.compile(r"#(?:, ?#)+")
#: A commit named in a code span is a value, not structure (``--compare REV`` names the commit it ran).
_COMMIT = re.compile(r"`[0-9a-f]{7,40}`")


def markdown() -> MarkdownIt:
    return MarkdownIt("commonmark").enable("table")


# ------------------------------------------------------------------------------------------------ blocks
def blocks(text: str) -> dict[str, str]:
    """``{name: body}`` of every generated block of a page. Raises ValueError on an unbalanced or repeated marker."""
    found: dict[str, str] = {}
    for m in BLOCK.finditer(text):
        if m["name"] in found:
            raise ValueError(f"block {m['name']!r} appears twice")
        found[m["name"]] = m["body"] or ""
    markers = [m.group(1) for m in MARKER.finditer(BLOCK.sub("", text))]
    if markers:
        raise ValueError(f"unbalanced block marker(s): {', '.join(sorted(set(markers)))}")
    return found


def replace_block(text: str, name: str, body: str, title: str | None = None) -> str:
    """``text`` with block ``name`` holding ``body`` (appended at the end when absent; a page without text starts
    with ``# title``)."""
    inner = f"{body.rstrip()}\n" if body.strip() else ""
    block = f"<!-- {name}:start -->\n{inner}<!-- {name}:end -->"
    pattern = re.compile(rf"^<!-- {re.escape(name)}:start -->\n.*?<!-- {re.escape(name)}:end -->$", re.S | re.M)
    if pattern.search(text):
        return pattern.sub(lambda _m: block, text, count=1)
    head = text.rstrip() if text.strip() else f"# {title or name}"
    return f"{head}\n\n{block}\n"


def outside_blocks(text: str) -> str:
    """``text`` with every generated block blanked out (line numbers kept)."""
    return BLOCK.sub(lambda m: "\n" * m.group(0).count("\n"), text)


# ------------------------------------------------------------------------------------------------- shape
def mask(text: str) -> str:
    """``text`` with every figure and commit replaced by ``#`` (a comma-separated list of them by one) and whitespace
    collapsed."""
    return " ".join(_MASKED_LIST.sub("#", _MASK.sub("#", _COMMIT.sub("`#`", text))).split())


def _collapse(items: Sequence[Any]) -> tuple[Any, ...]:
    """The distinct items in order of first appearance: a table with a row per seed, per ρ or per (class, layer)
    has the shape of one with fewer."""
    return tuple(dict.fromkeys(items))


def _lead(text: str) -> str:
    """What a paragraph or list item is about: its text up to the first colon, masked (empty without one early)."""
    head, sep, _ = text.partition(":")
    return mask(head) if sep and len(head) <= 80 else ""


def shape(body: str) -> tuple[tuple[Any, ...], ...]:
    """The structure of a block with its figures masked and repeats removed: ``("h2", title)``,
    ``("table", header cells, row labels)``, ``("list", item leads)``, ``("p", lead)``, ``("img", alt)``,
    ``("code",)``."""
    tokens = markdown().parse(body)
    out: list[tuple[Any, ...]] = []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t.type == "heading_open":
            out.append((t.tag, mask(tokens[i + 1].content)))
            i += 3
            continue
        if t.type == "table_open":
            end = next(j for j in range(i, len(tokens)) if tokens[j].type == "table_close")
            header, labels, row, in_head = [], [], [], False
            for tok in tokens[i:end]:
                if tok.type == "thead_open":
                    in_head = True
                elif tok.type == "thead_close":
                    in_head = False
                elif tok.type == "tr_open":
                    row = []
                elif tok.type == "inline":
                    row.append(mask(tok.content))
                elif tok.type == "tr_close":
                    if in_head:
                        header = row
                    elif row:
                        labels.append(row[0])
            out.append(("table", _collapse(header), _collapse(labels)))
            i = end + 1
            continue
        if t.type in ("bullet_list_open", "ordered_list_open"):
            depth, j, leads = 0, i, []
            while True:
                tok = tokens[j]
                depth += tok.nesting if tok.type.endswith("_list_open") or tok.type.endswith("_list_close") else 0
                if tok.type == "inline" and depth == 1 and tokens[j - 1].type == "paragraph_open" and tokens[j - 2].type == "list_item_open":
                    leads.append(_lead(tok.content))
                if depth == 0:
                    break
                j += 1
            out.append(("list", _collapse(leads)))
            i = j + 1
            continue
        if t.type == "paragraph_open":
            inline = tokens[i + 1]
            images = [c for c in inline.children or [] if c.type == "image"]
            out.append(("img", mask(images[0].content)) if images else ("p", _lead(inline.content)))
            i += 3
            continue
        if t.type in ("fence", "code_block"):
            out.append(("code",))
        i += 1
    return tuple(out)


# ------------------------------------------------------------------------------------------- stray numbers
@dataclass(frozen=True)
class Allowed:
    """What a number outside the generated blocks may be, besides code (inline code, code blocks, link targets,
    autolinks, HTML comments), which is not prose:

    1. part of a name: glued to a letter or underscore, or a hyphen after a word (:data:`NUMBER`); an ordered
       list's marker (not text at all);
    2. a version or a date: after ``version``, after a package of requirements.txt (``captum 0.9``), an ISO date,
       the year of a citation (``Barnes 2021``, ``Adebayo et al., 2018``);
    3. a constant of an interface, read from the code: the default of a config key named in the same sentence
       (igcore's config schema), the CLI's exit status for bad input after "exit", a port or address;
    4. the confidence level of an interval (``95% interval``, ``95% CI``): a parameter of the statistic.
    """

    defaults: Mapping[str, tuple[float, ...]]  # config key -> its default (every number in it)
    packages: frozenset[str]
    exit_status: int

    @classmethod
    @cache
    def from_code(cls) -> Allowed:
        return cls(config_defaults(), requirement_names(), _exit_status())


def config_defaults() -> dict[str, tuple[float, ...]]:
    """Every config key of igcore's schema (the run's and every registered world's) with the numbers in its default."""
    from igcore.config import default_config
    from igcore.settings import describe
    from igcore.worlds.registry import WORLDS

    rows = [(key, default) for key, _value, default, _doc in describe(default_config())]
    for spec in WORLDS.values():
        for key, f in spec.params.model_fields.items():
            if not f.is_required():
                rows.append((f"world.{key}", f.get_default(call_default_factory=True)))
    out: dict[str, tuple[float, ...]] = {}
    for key, default in rows:
        numbers = tuple(_numbers_in(default))
        if numbers:
            out[key] = tuple(dict.fromkeys(out.get(key, ()) + numbers))
    return out


def _numbers_in(value: Any) -> Iterator[float]:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int | float):
        yield float(value)
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _numbers_in(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _numbers_in(v)


def requirement_names() -> frozenset[str]:
    """The packages requirements.txt names (a version after one of them is a version)."""
    names = set()
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(re.split(r"[<>=\[ ;]", line, maxsplit=1)[0].lower())
    return frozenset(names | {"python"})


def _exit_status() -> int:
    from igcore.errors import EXIT_STATUS

    return EXIT_STATUS


@dataclass(frozen=True)
class Stray:
    """A number in prose outside the generated blocks that is none of :class:`Allowed`."""

    path: str
    line: int
    number: str
    sentence: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.number!r} in “{self.sentence}”"


@dataclass
class _Inline:
    """One inline run of a page (a paragraph, heading or table cell): its full text (code included) and which
    character ranges of it are prose."""

    line: int
    text: str = ""
    prose: list[tuple[int, int]] = field(default_factory=list)


_TAG = re.compile(r"<[^>]*>")


def _inlines(text: str) -> Iterator[_Inline]:
    """Runs of text with their prose parts: inline tokens (links' and images' words included, autolinks and code spans
    kept as text that is not prose), and raw HTML blocks read without their tags."""
    for tok in markdown().parse(text):
        if tok.type == "html_block":
            plain = _TAG.sub(" ", tok.content)
            yield _Inline(line=(tok.map[0] + 1) if tok.map else 0, text=plain, prose=[(0, len(plain))])
            continue
        if tok.type != "inline":
            continue
        run = _Inline(line=(tok.map[0] + 1) if tok.map else 0)
        in_autolink = False
        for child in tok.children or []:
            if child.type == "link_open":
                in_autolink = child.markup == "autolink"
            elif child.type == "link_close":
                in_autolink = False
            elif child.type == "text" and not in_autolink:
                run.prose.append((len(run.text), len(run.text) + len(child.content)))
                run.text += child.content
            elif child.type in ("code_inline", "text"):
                run.text += child.content
            elif child.type in ("softbreak", "hardbreak"):
                run.text += " "
            elif child.type == "image":  # its alt text is read as prose too
                run.prose.append((len(run.text), len(run.text) + len(child.content)))
                run.text += child.content
        yield run


_SENTENCE_END = re.compile(r"(?<=[.;!?])\s+(?=[A-Z(*`\"“])")
_KEY = re.compile(r"[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)+")
#: A paper's year: after its authors ("Fel et al., 2023", "Ghorbani et al. 2019") or alone in parentheses ("(2019)"); a
#: year followed by a word in lower case is a count ("The 2000 images").
_CITATION = re.compile(r"(?:[A-Z][\w'’-]+(?: et al\.)?,? (?:19|20)\d\d\b(?! [a-z])|\((?:19|20)\d\d\))")
_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
_ADDRESS = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b|\b[\w.-]+:\d{2,5}\b")
_CONFIDENCE = re.compile(r"\d+(?:\.\d+)?\s?% (?:\w+ )?(?:CI|interval|confidence)")
_VERSION = re.compile(r"\b(?:version|v)\s?$", re.I)


def _sentence(text: str, start: int) -> str:
    bounds = [0, *(m.end() for m in _SENTENCE_END.finditer(text)), len(text)]
    lo = max(b for b in bounds if b <= start)
    hi = min(b for b in bounds if b > start) if any(b > start for b in bounds) else len(text)
    return text[lo:hi].strip()


def _within(pattern: re.Pattern[str], text: str, start: int) -> bool:
    return any(m.start() <= start < m.end() for m in pattern.finditer(text))


def _allowed(run: _Inline, m: re.Match[str], allowed: Allowed) -> bool:
    text, start = run.text, m.start()
    value = float(m.group(0).replace(",", ""))
    before = text[max(0, start - 40):start]
    # 2. versions and dates
    package = re.search(r"([\w.-]+)\s$", before)
    if _VERSION.search(before) or (package and package.group(1).lower() in allowed.packages):
        return True
    if _within(_DATE, text, start) or _within(_CITATION, text, start):
        return True
    # 3. interface constants: addresses and ports, the exit status, config defaults named with their key
    if _within(_ADDRESS, text, start):
        return True
    if value == allowed.exit_status and re.search(r"\bexit(?:s| code| status)?(?: with code)?\s$", before):
        return True
    for key in _KEY.findall(_sentence(text, start)):
        for full, numbers in allowed.defaults.items():
            if (full == key or full.endswith("." + key)) and value in numbers:
                return True
    # 4. the confidence level of an interval
    return _within(_CONFIDENCE, text, start)


def stray_numbers(text: str, path: str = "", allowed: Allowed | None = None) -> list[Stray]:
    """The numbers in the prose of ``text`` outside its generated blocks that :class:`Allowed` does not cover."""
    allowed = allowed or Allowed.from_code()
    out = []
    for run in _inlines(outside_blocks(text)):
        for lo, hi in run.prose:
            for m in NUMBER.finditer(run.text, lo, hi):
                if not _allowed(run, m, allowed):
                    out.append(Stray(path, run.line, m.group(0), _sentence(run.text, m.start())))
    return out


def pages(root: Path = ROOT) -> list[Path]:
    """The documentation: README.md and every page of docs/."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]
