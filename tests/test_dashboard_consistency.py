"""The dashboard says one true thing on every world.

Every page of the registry is opened (AppTest) on three worlds — the Snow-and-Wolves run, a
Waterbirds-layout run (its ``place_names`` left at land/water while its photographs' places are Places365
categories) and a folder run without masks — together with the HTML report, and these invariants are
checked on everything they show:

1. **z\\* reads the same everywhere**: the Overview, Compare and the report state the same sentence for z\\*,
   the Hypotheses page says the same of its default selection, and the field guide is the run's own.
2. **z_baseline reads the same everywhere** (Overview, Compare, the report).
3. **Worst-group figures agree**: the Overview's tiles, the accuracy table, the report's table, the
   sentence on what the prior added and the Hypotheses page's z\\* accuracy are the stored numbers, rounded
   the same way.
4. **Each image's answers per model agree**: every "model says X" about a D′ image (Compare's rows and
   stand-in disagreements, the Microscope's inspected image and gallery, the Hypotheses page's
   disagreements, the report's images) is that model's (or that hypothesis's) stored answer.
5. **No page names another world's concepts or classes**, and a world other than Snow and Wolves shows none
   of its words.
6. **Every percentage lies in [0, 100]**, in text, tables and chart labels.
7. **Groups say what they hold**: where the backgrounds stand for other place categories, the Overview
   says which; the benchmark's ρ sweep appears only beside a run of the world it measured.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import export, url_state
from dashboard.benchmark import benchmark
from dashboard.components.style import method_label, method_short
from dashboard.components.text import percent, prior_sentence
from dashboard.pages import PAGES
from dashboard.run_view import RunView
from igcore.hypothesis import summary_sentence
from igcore.schema import pred_column
from testkit.apptest import assert_clean

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "dashboard" / "app.py"
WORLDS = ("snowwolf", "waterbirds", "folder")
#: Words of the Snow-and-Wolves world that another world's pages must not use.
SNOWWOLF_WORDS = re.compile(r"husk|wol(f|ves)|snow|animal", re.IGNORECASE)
#: A percentage as pages write it ("43.9%", "−140%", "95% CI").
PERCENT = re.compile(r"([-−]?\d+(?:\.\d+)?)\s?%")


@dataclass
class Rendered:
    """What a world's pages and report show: text in document order per page, metric tiles, tables, charts."""

    run: RunView
    text: dict[str, list[str]] = field(default_factory=dict)  # page -> strings in document order
    metrics: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # page -> (label, value)
    tables: dict[str, list] = field(default_factory=dict)  # page -> DataFrames
    charts: dict[str, list[dict]] = field(default_factory=dict)  # page -> plotly figure dicts
    report: str = ""
    notes: list[str] = field(default_factory=list)  # the engine's notes (provenance may name shipped files)

    def everything(self) -> Iterator[tuple[str, str]]:
        """(where, text) of every string shown, chart labels and the report included."""
        for page, strings in self.text.items():
            for s in strings:
                yield page, s
            for label, value in self.metrics[page]:
                yield page, f"{label}: {value}"
            for df in self.tables[page]:
                yield page, " ".join(map(str, df.columns)) + " " + " ".join(str(v) for v in df.astype(str).to_numpy().ravel())
            for fig in self.charts[page]:
                yield from ((page, s) for s in chart_strings(fig))
        yield "report", self.report


def chart_strings(fig: dict) -> list[str]:
    """The words a chart shows: trace names, labels and texts, titles, tick texts and annotations (not its
    hover templates, whose ``%{y:.1%}`` are formats, not numbers)."""
    out: list[str] = []
    for trace in fig.get("data", []):
        for key in ("name", "text", "x", "y"):  # category labels are strings; numbers are skipped
            value = trace.get(key)
            if isinstance(value, str):
                out.append(value)
            elif isinstance(value, list):
                out += [v for v in value if isinstance(v, str)]
    layout = fig.get("layout", {})
    for value in layout.values():
        if isinstance(value, dict):
            title = value.get("title")
            if isinstance(title, dict) and isinstance(title.get("text"), str):
                out.append(title["text"])
            out += [t for t in value.get("ticktext") or [] if isinstance(t, str)]
    title = layout.get("title")
    if isinstance(title, dict) and isinstance(title.get("text"), str):
        out.append(title["text"])
    out += [a["text"] for a in layout.get("annotations", []) if isinstance(a.get("text"), str)]
    return out


def walk(at: AppTest) -> tuple[list[str], list[tuple[str, str]], list, list[dict]]:
    """Texts in document order (titles, markdown, captions, alerts, image captions, code), metric tiles,
    tables and charts of one script run (sidebar included)."""
    texts: list[str] = []
    metrics: list[tuple[str, str]] = []
    tables: list = []
    charts: list[dict] = []
    for root in (at.sidebar, at.main):
        for node in root:
            kind = getattr(node, "type", "")
            if kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success", "code"):
                texts.append(str(node.value))
            elif kind == "image":
                texts += [c for c in node.captions if c]
            elif kind == "metric":
                metrics.append((str(node.label), str(node.value)))
            elif kind == "dataframe":
                tables.append(node.value)
            elif kind == "plotly_chart":
                charts.append(json.loads(node.proto.spec))
    return texts, metrics, tables, charts


def open_page(page: str, run_id: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=300)
    at.query_params.update({"v": str(url_state.CODEC_VERSION), "run": run_id})
    if page != "overview":
        at.switch_page(f"app_pages/{page}.py")
    return at.run()


@pytest.fixture(scope="module")
def rendered(runs_dir: Path, byod_runs: Path) -> dict[str, Rendered]:
    """Every page of every world, opened once for all the invariants."""
    where = {"snowwolf": (runs_dir, "tiny"), "waterbirds": (byod_runs, "waterbirds"), "folder": (byod_runs, "folder")}
    out: dict[str, Rendered] = {}
    previous = os.environ["IG_RUNS_DIR"]
    try:
        for world, (root, run_id) in where.items():
            os.environ["IG_RUNS_DIR"] = str(root)
            run = RunView.open(str(root), run_id)
            r = Rendered(run)
            for spec in PAGES:
                at = open_page(spec.name, run_id)
                assert_clean(at)
                assert not [i.value for i in at.info if "This run has no" in str(i.value)], (world, spec.name)
                r.text[spec.name], r.metrics[spec.name], r.tables[spec.name], r.charts[spec.name] = walk(at)
            r.report = html.unescape(re.sub(r"<script.*?</script>", " ", export.report_html(run), flags=re.DOTALL))
            r.notes = [n.note for n in run.info.notes]
            out[world] = r
    finally:
        os.environ["IG_RUNS_DIR"] = previous
    return out


def joined(r: Rendered, page: str) -> str:
    return "\n".join(r.text[page])


# ---------------------------------------------------------------------------------------- 1, 2: hypotheses
@pytest.mark.parametrize("world", WORLDS)
def test_z_star_reads_the_same_everywhere(rendered: dict[str, Rendered], world: str) -> None:
    r = rendered[world]
    run = r.run
    sentence = summary_sentence(run.clauses("z_star"), "IG", run.classes)
    for page in ("overview", "compare"):
        assert f"**{sentence}**" in joined(r, page), page
    assert html.unescape(sentence) in r.report
    # the Hypotheses page opens on z* and says the same of it
    star = run.z_star_rank
    assert f"Hypothesis #{star + 1} as a field guide" in joined(r, "hypotheses")
    same = summary_sentence(run.clauses("z_star"), "This hypothesis", run.classes, verb="says that")
    assert f"{same} — this is **z\\***" in joined(r, "hypotheses")
    guide = run.hypothesis_text("z_star")
    assert guide and all(guide in joined(r, page) for page in ("overview", "compare"))


@pytest.mark.parametrize("world", WORLDS)
def test_z_baseline_reads_the_same_everywhere(rendered: dict[str, Rendered], world: str) -> None:
    r = rendered[world]
    sentence = summary_sentence(r.run.clauses("z_baseline"), "The baseline", r.run.classes)
    for page in ("overview", "compare"):
        assert f"**{sentence}**" in joined(r, page), page
    assert sentence in r.report


# ---------------------------------------------------------------------------------------- 3: numbers
@pytest.mark.parametrize("world", WORLDS)
def test_worst_group_figures_agree(rendered: dict[str, Rendered], world: str) -> None:
    r = rendered[world]
    methods = r.run.methods
    tiles = dict(r.metrics["overview"])
    shown = [m for m in ("erm", "ig_student", "ig_direct", "no_prior") if m in methods]
    assert [method_short(m) for m in shown] == list(tiles)
    for m in shown:
        assert tiles[method_short(m)] == percent(methods[m].worst_group_acc), m
    table = next(df for df in r.tables["overview"] if "worst-group accuracy" in df.columns)
    for _, row in table.iterrows():
        name = next(m for m in methods if method_label(m) == row["method"])
        assert row["worst-group accuracy"] == round(100 * methods[name].worst_group_acc, 1)
        assert row["worst group"] == methods[name].worst_group
        assert (f"<td>{row['method']}</td><td>{round(100 * methods[name].avg_acc, 1):.1f}%</td>"
                f"<td>{round(100 * methods[name].worst_group_acc, 1):.1f}%</td>") in re.sub(r">\s+<", "><", r.report)
    assert f"**{prior_sentence(methods)}**" in joined(r, "overview")
    # the Hypotheses page's z* accuracy is ig_direct's: L_M reading z*
    hyp = dict(r.metrics["hypotheses"])
    assert hyp["z* accuracy on D′"] == percent(methods["ig_direct"].avg_acc)


# ---------------------------------------------------------------------------------------- 4: answers
#: "who says X" about the image last named ("#12 · …") in document order, per kind of statement.
SAYS = [
    (re.compile(r"^[✓✗] \*\*(?P<who>[^*]+)\*\*: (?P<answer>.+)$"), "label"),
    (re.compile(r"^\*\*(?P<who>[^*]+)\*\* says \*(?P<answer>[^*]+)\*\."), "label"),
    (re.compile(r"\) says \*(?P<answer>[^*]+)\* here, so it does not explain"), "hypothesis"),
]


def claims(r: Rendered) -> list[tuple[str, int, str, str]]:
    """(page, image, model or hypothesis, answer) for every answer a page or the report states about a D′ image."""
    run = r.run
    by_label = {method_label(m): m for m in run.methods}
    out: list[tuple[str, int, str, str]] = []
    for page in ("compare", "microscope", "hypotheses"):
        image = None
        described = None
        for s in r.text[page]:
            if m := re.match(r"^#(\d+) · ", s):  # an image with its caption: the statements after it are about it
                image = int(m.group(1))
            if m := re.search(r"#(\d+) · [^:]+: baseline says (\w[^,]*), z_baseline says (.+)$", s):
                out += [(page, int(m.group(1)), "erm", m.group(2)), (page, int(m.group(1)), "z_baseline", m.group(3))]
            if m := re.search(r"#(\d+) · true: [^·]+ · this: [^·]+ · z\*: (.+)$", s):
                out.append((page, int(m.group(1)), "z_star", m.group(2)))
            if m := re.match(r"^Image \*\*#(\d+)\*\* · ", s):
                for who, answer in re.findall(r"(?:· |, )([^,·*]+?) says \*\*([^*]+)\*\*", s):
                    out.append((page, int(m.group(1)), by_label[who.strip()], answer))
            if image is None:
                continue
            for pattern, kind in SAYS:
                if (m := pattern.search(s)) is None:
                    continue
                if kind == "label" and m.group("who") in by_label:
                    described = by_label[m.group("who")]
                    out.append((page, image, described, m.group("answer").strip()))
                elif kind == "hypothesis" and described is not None:
                    out.append((page, image, {"erm": "z_baseline", "ig_student": "z_star"}[described], m.group("answer")))
    for m in re.finditer(r"#(\d+) [^:<]+: baseline says (\w+), IG student says (\w+)", r.report):
        out += [("report", int(m.group(1)), "erm", m.group(2)), ("report", int(m.group(1)), "ig_student", m.group(3))]
    return out


@pytest.mark.parametrize("world", WORLDS)
def test_each_images_answers_agree_everywhere(rendered: dict[str, Rendered], world: str) -> None:
    r = rendered[world]
    run = r.run
    preds = run.predictions()
    answers = {m: preds[pred_column(m)].to_numpy() for m in run.methods if pred_column(m) in preds}
    answers.update({k: run.hypothesis_answers(k) for k in ("z_star", "z_baseline")})
    found = claims(r)
    pages = {page for page, *_ in found}
    assert {"compare", "report"} <= pages, found  # the disagreements, wherever the worlds' models disagree
    for page, image, who, answer in found:
        assert run.classes[int(answers[who][image])] == answer, (page, image, who, answer)


# ---------------------------------------------------------------------------------------- 5: words
def _words(r: Rendered) -> set[str]:
    return {c.lower() for c in r.run.classes} | {c.text.lower() for c in r.run.world.vocabulary} | {b.lower() for b in r.run.backgrounds}


@pytest.mark.parametrize("world", WORLDS)
def test_no_page_names_another_worlds_concepts_or_classes(rendered: dict[str, Rendered], world: str) -> None:
    r = rendered[world]
    own = _words(r)
    foreign = {w for w in set().union(*(_words(o) for k, o in rendered.items() if k != world))
               if not any(re.search(rf"(?<![a-z]){re.escape(w)}(?![a-z])", o) for o in own)}  # "forest" in "forest (broadleaf)"
    assert foreign
    for where, text in r.everything():
        for note in r.notes:  # the engine's provenance notes may name the shipped files a run borrowed from
            text = text.replace(note, "")
        low = text.lower()
        named = [w for w in foreign if re.search(rf"(?<![a-z]){re.escape(w)}(?![a-z])", low)]
        assert not named, (where, named, text[:300])
        if world != "snowwolf":
            found = SNOWWOLF_WORDS.search(text)
            assert not found, (where, text[max(0, found.start() - 150): found.end() + 80])


# ---------------------------------------------------------------------------------------- 6: percentages
@pytest.mark.parametrize("world", WORLDS)
def test_every_percentage_lies_between_0_and_100(rendered: dict[str, Rendered], world: str) -> None:
    r = rendered[world]
    seen = 0
    for where, text in r.everything():
        for value in PERCENT.findall(text):
            seen += 1
            assert 0 <= float(value.replace("−", "-")) <= 100, (where, value, text[:300])
    assert seen > 20
    for page, frames in r.tables.items():
        for df in frames:
            for column in df.columns:
                if any(w in str(column) for w in ("accuracy", "agreement", "answers changed", "95% low", "95% high")) and df[column].dtype.kind == "f":
                    values = df[column].dropna()
                    assert ((values >= 0) & (values <= 100)).all(), (page, column)


# ---------------------------------------------------------------------------------------- 7: world-aware
def test_groups_say_which_places_they_hold(rendered: dict[str, Rendered]) -> None:
    birds = rendered["waterbirds"]
    covers = birds.run.place_categories()
    assert set(covers) == {"land", "water"} and covers["land"] != ["land"]  # the Waterbirds default names, other places
    legend = next(s for s in birds.text["overview"] if "stand for these place categories" in s)
    for background, places in covers.items():
        assert f"**{background}** = {', '.join(places)}" in legend
    heatmap = next(c for c in birds.charts["overview"] if "Accuracy per group" in c["layout"]["title"]["text"])
    assert any("bamboo forest" in t for t in heatmap["layout"]["xaxis"]["ticktext"])
    for world in ("snowwolf", "folder"):  # backgrounds that are only themselves need no legend
        assert rendered[world].run.place_categories() == {}
        assert not any("stand for these place categories" in s for s in rendered[world].text["overview"])


def test_the_benchmark_appears_only_beside_its_own_world(rendered: dict[str, Rendered]) -> None:
    measured = benchmark().world
    for world, r in rendered.items():
        sweep = [c for c in r.charts["overview"] if "shortcut gets stronger" in c["layout"]["title"]["text"]]
        if world == measured:
            assert len(sweep) == 1 and f"on the {measured} world" in sweep[0]["layout"]["title"]["text"]
        else:
            assert not sweep
            assert any("was measured on another world" in s for s in r.text["overview"])
