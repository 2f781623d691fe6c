"""AppTest tests of the dashboard: every page renders every section of a complete run, the view state
round-trips through the URL, a run that lacks a section says which stage would have written it, runs on
users' data (the waterbirds layout with masks, a folder without masks) render every page and show the
engine's reason for each part their data cannot support, and every kind of bad input ends in a friendly
note and a safe default view.

The ``runs_dir`` fixture (conftest) holds a real tiny run with every default stage, so a section the
engine stops writing fails these tests instead of turning into a note."""

from __future__ import annotations

import json
import os
import re
from html import escape
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import BYOD_RUNS
from streamlit.testing.v1 import AppTest

from dashboard import export, url_state
from dashboard.benchmark import benchmark
from dashboard.components import charts, tables, text, widgets
from dashboard.components.figures import effects_caption, key_figures
from dashboard.components.style import possessive
from dashboard.first_launch import DemoJob, describe
from dashboard.pages import PAGES as PAGE_SPECS
from dashboard.run_view import NotComputed, RunView, writer_of
from igcore.discover import DiscoveryView
from igcore.hypothesis import summary_sentence
from igcore.schema import MethodMetrics, SanityCheck
from igcore.stages import STAGES, Stage
from testkit import byod_fixtures as fx
from testkit.apptest import all_text, assert_clean
from testkit.runs import tiny_sets

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "dashboard" / "app.py"
#: Every page of the registry (a new page is opened by these tests the moment it is registered).
PAGES = [p.name for p in PAGE_SPECS]
V = str(url_state.CODEC_VERSION)
TIMEOUT = 120
#: Every key figure, in order (Overview, the PNG zip and the report share them).
KEY_FIGURES = ["accuracy", "groups", "effects", "clauses_z_star", "clauses_z_baseline", "tcav", "weights_tcav", "relevance"]


def open_app(page: str = "overview", params: dict[str, str] | None = None) -> AppTest:
    """Open the app directly on ``page`` with URL ``params`` (as a shared link would)."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params.update(params or {})
    if page != "overview":
        at.switch_page(f"app_pages/{page}.py")  # the registry's file stem, so this works before the first run
    return at.run()


def assert_complete(at: AppTest) -> None:
    """Clean, and no section says the run lacks something (the tiny run has every default stage)."""
    assert_clean(at)
    missing = [i.value for i in at.info if "This run has no" in str(i.value)]
    assert not missing, missing


def metrics(runs_dir: Path, run: str = "tiny") -> dict:
    return json.loads((runs_dir / run / "metrics.json").read_text())


def plotly_charts(at: AppTest) -> list:
    return list(at.get("plotly_chart"))


# ------------------------------------------------------------------------------------------ pages
@pytest.mark.parametrize("page", PAGES)
def test_page_renders(runs_dir: Path, page: str) -> None:
    at = open_app(page)
    assert_complete(at)
    assert at.title, "every page has a title"
    assert at.query_params.get("v") == V
    assert at.query_params.get("run") == "tiny"
    # the sidebar run picker lists the runs and marks the incomplete one
    picker = at.sidebar.selectbox(key="w_run")
    assert picker.value == "tiny"
    assert picker.options[1] == "⚠ tiny-incomplete (running)"  # newest first, the incomplete run marked


def methods_of(m: dict) -> dict[str, MethodMetrics]:
    return {k: MethodMetrics.model_validate(v) for k, v in m["methods"].items()}


def view(runs_dir: Path, run: str = "tiny") -> RunView:
    return RunView.open(str(runs_dir), run)


def effects_of(runs_dir: Path, run: str = "tiny") -> dict:
    """``microscope.<model>.effects``, typed, in the method registry's order (the baseline first)."""
    return view(runs_dir, run).evidence("effects", "counterfactual effects")


def test_overview_elements(runs_dir: Path) -> None:
    at = open_app("overview")
    assert_complete(at)
    m = metrics(runs_dir)
    text_ = all_text(at)
    # accuracy bars, group heat map, counterfactual effects, the benchmark's rho sweep, stage times
    assert len(plotly_charts(at)) >= 5
    assert at.dataframe, "the accuracy table"
    run = view(runs_dir)
    assert summary_sentence(run.clauses("z_star"), "IG", run.classes) in text_
    assert summary_sentence(run.clauses("z_baseline"), "The baseline", run.classes) in text_
    assert len(at.metric) == 4  # worst-group accuracy of erm, ig_student, ig_direct, no_prior
    # the demo's story: what the prior added on this run, the benchmark beside it, whether the baseline uses the background
    story = text.prior_sentence(methods_of(m))
    assert story and f"**{story}**" in text_
    assert "The benchmark's numbers, not this run's: `docs/results_methods.csv`, measured on the snowwolf world" in text_
    assert f"**{text.effects_sentence(effects_of(runs_dir), 'background')}**" in text_
    # the shipped judgments are said to be the developers' worked example
    assert "written by the project's developers as a worked example" in text_
    z = m["surrogates"]["z_baseline"]
    assert f"{100 * z['fidelity_ci_low']:.1f}–{100 * z['fidelity_ci_high']:.1f}%" in text_  # fidelity with its interval


def test_prior_sentence_states_the_difference() -> None:
    def method(wga: float, group: str) -> MethodMetrics:
        return MethodMetrics(avg_acc=0.9, worst_group_acc=wga, worst_group=group, group_acc={group: wga}, group_n={group: 1})

    assert text.prior_sentence({"ig_student": method(0.96, "a/x"), "no_prior": method(0.82, "b/y")}) == (
        "With the human prior, the worst group (a/x) is right 96% of the time; without it, the worst group (b/y) is right 82%: "
        "the prior adds 14 points.")
    assert text.prior_sentence({"ig_student": method(0.5, "a/x"), "no_prior": method(0.6, "a/x")}).endswith("the prior costs 10 points.")
    assert text.prior_sentence({"ig_student": method(0.5, "a/x"), "no_prior": method(0.5, "a/x")}).endswith("the prior makes no difference.")
    assert text.prior_sentence({"ig_student": method(0.5, "a/x")}) is None


def test_benchmark_is_read_with_its_provenance(tmp_path: Path) -> None:
    bench = benchmark()
    assert bench.world == "snowwolf"  # the default config's world: the command names no other
    assert {"rho", "seed", "method", "worst_group_acc"} <= set(bench.results.columns)
    assert {"erm", "no_prior", "ig_student"} <= set(bench.results["method"])
    record = json.loads((ROOT / "docs" / "provenance" / "methods.json").read_text())
    assert bench.command == record["command"] and "bench_methods" in bench.command  # the field the bench wrote
    fig = charts.rho_sweep(bench.results, ["erm", "no_prior", "ig_student"], 0.99)
    erm = bench.results[bench.results["method"] == "erm"].groupby("rho")["worst_group_acc"].mean()
    assert list(fig.data[0].y) == pytest.approx(list(erm.to_numpy()))  # mean over seeds, per rho
    with pytest.raises(NotComputed, match="run `python -m bench.regenerate --only methods`"):
        benchmark(tmp_path / "results_methods.csv")
    (tmp_path / "other.csv").write_text("rho,seed\n0.9,0\n")
    with pytest.raises(NotComputed, match="lacks the column"):
        benchmark(tmp_path / "other.csv")
    (tmp_path / "birds.csv").write_text("rho,seed,method,worst_group_acc,world\n0.9,0,erm,0.5,waterbirds\n")
    assert benchmark(tmp_path / "birds.csv").world == "waterbirds"  # the CSV's own column wins
    # provenance comes from the record's fields, never from a page's prose
    assert benchmark(tmp_path / "birds.csv").command is None
    (tmp_path / "provenance").mkdir()
    (tmp_path / "provenance" / "methods.json").write_text(json.dumps({
        "generator": "methods", "command": "python -m bench.bench_methods --set world.name=folder", "date": "2030-01-02 03:04 UTC",
        "machine": {"cpu": "Some CPU", "cpus": 8, "cores_available": 4, "torch_threads": 4}}))
    (tmp_path / "RESULTS.md").write_text("Produced end to end by `python bench/bench_methods.py --set world.name=elsewhere`\n")
    read = benchmark(tmp_path / "birds.csv")
    assert (read.command, read.machine, read.date) == (
        "python -m bench.bench_methods --set world.name=folder", "Some CPU, 4 CPUs, torch threads 4", "2030-01-02 03:04 UTC")


def test_hypotheses_elements_and_selection_roundtrip(runs_dir: Path) -> None:
    ranked = metrics(runs_dir)["hypotheses"]["ranked"]
    assert len(ranked) >= 3, "the tiny run's search keeps several hypotheses"
    star = view(runs_dir).z_star_rank
    at = open_app("hypotheses")
    assert_complete(at)
    assert plotly_charts(at), "prior-vs-likelihood scatter"
    assert "In the engine's words:" in all_text(at)
    pick = at.selectbox(key="w_hyp")
    assert pick.value == star and at.query_params["hyp"] == str(star + 1)  # z*, numbered from 1 as on the page
    target = 2 if star != 2 else 1  # a position in the list (from 0): hypothesis #target+1
    pick.select(target).run()
    assert_clean(at)
    assert at.query_params["hyp"] == str(target + 1)
    assert f"Hypothesis #{target + 1} as a field guide" in all_text(at)
    # the URL restores the selection in a fresh session
    again = open_app("hypotheses", dict(at.query_params))
    assert_clean(again)
    assert again.selectbox(key="w_hyp").value == target
    assert again.query_params["hyp"] == str(target + 1)
    assert f"Hypothesis #{target + 1} as a field guide" in all_text(again)
    # an old link (v=1 counted from 0) still shows what it showed
    old = open_app("hypotheses", {"v": "1", "run": "tiny", "hyp": str(target)})
    assert f"Hypothesis #{target + 1} as a field guide" in all_text(old) and old.query_params["hyp"] == str(target + 1)


def test_microscope_state_roundtrip(runs_dir: Path) -> None:
    m = metrics(runs_dir)
    group = m["world"]["groups"][-1]
    at = open_app("microscope", {"v": V, "run": "tiny", "group": group, "correct": "wrong", "img": "3"})
    assert_clean(at)
    assert at.query_params["group"] == group
    assert at.query_params["correct"] == "wrong"
    assert at.query_params["img"] == "3"
    assert at.selectbox(key="w_group").value == group
    text_ = all_text(at)
    assert "Image **#3**" in text_
    # effects, swap attribution, relevance per image, relevance on the object, TCAV
    assert len(plotly_charts(at)) >= 5
    methods = m["microscope"]["erm"]["sanity"]
    assert sum(text_.count(phrase) for phrase in ("maps pass the sanity check", "maps fail the sanity check")) >= len(methods)
    at.selectbox(key="w_group").select("all").run()
    assert at.query_params["group"] == "all"
    again = open_app("microscope", dict(at.query_params))
    assert again.selectbox(key="w_group").value == "all"
    assert again.query_params["img"] == "3"


def image_captions(at: AppTest) -> list[str]:
    """The captions of every ``st.image`` on the page."""
    return [c for el in at.get("image") for c in el.captions if c]


def test_microscope_shows_the_counterfactual_evidence(runs_dir: Path) -> None:
    """The headline: effects with their intervals in a computed sentence per swap, how the swaps were made,
    the swap attribution and the counterfactual strip; relevance explained as secondary."""
    at = open_app("microscope")
    assert_complete(at)
    text_ = all_text(at)
    effects = effects_of(runs_dir)
    assert list(effects) == ["erm", "ig_student", "oracle"]
    for kind in ("background", "object"):
        assert f"**{text.effects_sentence(effects, kind)}**" in text_
        assert effects["erm"][kind].how in text_  # how the swap was made, in the engine's words
    parts = text.swap_parts_sentence(view(runs_dir).evidence("swap_attribution", "swap attribution"))
    assert parts and parts in text_ and "log-odds" in parts
    assert "Left to right: original, background swapped, object swapped, both swapped." in text_
    strip = RunView.open(str(runs_dir), "tiny").counterfactual_strip()
    assert any(c.startswith(f"#{int(strip['index'][0])} · ") for c in image_captions(at)), image_captions(at)
    assert "where the gradients are, not which evidence wins" in text_
    specs = [c.proto.spec for c in plotly_charts(at)]
    assert any("Does it use the background?" in s for s in specs) and any("Where the evidence sits" in s for s in specs)


def test_microscope_tcav_shows_repeats_and_controls(runs_dir: Path) -> None:
    run = view(runs_dir)
    at = open_app("microscope")
    assert_complete(at)
    text_ = all_text(at)
    tcav = [t for t in run.tcav() if t.layer == "penultimate"]
    status = [t.status for t in tcav]
    assert (f"**{status.count('significant')}** of {len(tcav)} concept/class scores are significant in every one of "
            f"{tcav[0].repeats} repeats, **{status.count('unstable')}** only in some (unstable)") in text_
    assert text.tcav_controls_sentence(run.tcav_controls()) in text_
    assert "came out not significant in" in text_
    spec = next(c.proto.spec for c in plotly_charts(at) if "TCAV:" in c.proto.spec)
    assert '"error_x"' in spec  # whiskers: the range over repeats
    table = next(d.value for d in at.dataframe if "lowest" in d.value.columns)
    assert len(table) == len(tcav) and bool((table["lowest"] <= table["highest"]).all())
    assert set(table["verdict"]) <= {label for label, *_ in charts.TCAV_STATUS.values()}


def test_every_map_carries_its_own_models_verdict(runs_dir: Path) -> None:
    """The verdict under a map is that model's sanity check of that method (the IG student's, not the baseline's)."""
    m = metrics(runs_dir)
    at = open_app("microscope", {"v": V, "run": "tiny", "model": "ig_student", "method": "saliency", "img": "0"})
    assert_complete(at)
    captions = [str(c.value) for c in at.caption]
    sanity = {k: SanityCheck.model_validate(v) for k, v in m["microscope"]["ig_student"]["sanity"].items()}
    for method, entry in sanity.items():
        assert text.sanity_verdict(entry, "the IG student's") in captions, method
    assert not any("the baseline's maps" in c for c in captions)
    gallery = f"Maps: **saliency** of IG student · {text.sanity_verdict(sanity['saliency'], possessive('ig_student'))}"
    assert gallery in all_text(at)
    compare = open_app("compare", {"v": V, "run": "tiny", "method": "saliency"})
    assert_complete(compare)
    captions = [str(c.value) for c in compare.caption]
    for model in ("erm", "ig_student"):
        want = text.sanity_verdict(SanityCheck.model_validate(m["microscope"][model]["sanity"]["saliency"]), possessive(model))
        assert want in captions, (model, want)


def test_compare_and_share_elements(runs_dir: Path) -> None:
    m = metrics(runs_dir)
    at = open_app("compare", {"v": V, "run": "tiny", "method": "saliency"})
    assert_complete(at)
    text_ = all_text(at)
    assert "z* (Imitative Generalization)" in text_
    assert at.query_params["method"] == "saliency"  # the compare view's method round-trips
    # clause weights of z*, z_baseline and no_prior, the effects, the swap attribution, weights vs TCAV
    assert len(plotly_charts(at)) == 6
    for kind in ("background", "object"):
        assert f"**{text.effects_sentence(effects_of(runs_dir), kind)}**" in text_
    # surrogate fidelity with its interval, and the D′ images where z_baseline and the baseline part ways
    assert text.fidelity_sentence(view(runs_dir).surrogate("z_baseline"), "z_baseline", "the baseline's") in text_
    misses = RunView.open(str(runs_dir), "tiny").surrogate_disagreements("z_baseline")
    assert len(misses) == m["surrogates"]["z_baseline"]["n_disagree"] > 0
    captions = [c for c in image_captions(at) if "z_baseline says" in c]
    assert len(captions) == min(6, len(misses))
    classes = m["world"]["classes"]
    first = misses.iloc[0]
    assert any(f"baseline says {classes[int(first.model_pred)]}, z_baseline says {classes[int(first.surrogate_pred)]}" in c for c in captions)
    share = open_app("share")
    assert_complete(share)
    assert len(share.get("download_button")) >= 2  # report + chart PNGs
    codes = [c.value for c in share.code]
    assert any(f"/hypotheses?v={V}&run=tiny" in c for c in codes)
    assert any(c.startswith(f"/?v={V}&run=tiny") for c in codes), "Overview is the default page, served at the root"
    # one link per registered page but the Share page itself, each with the keys its page reads
    assert len(codes) == len(PAGE_SPECS) - 1
    for spec in PAGE_SPECS:
        if spec.name != "share":
            link = next(c for c in codes if c.startswith(f"/{spec.path}?"))
            assert all(f"{k}=" in link for k in spec.keys if getattr(url_state.ViewState(), k) is not None), (spec.name, link)


def test_share_links_carry_every_key_of_every_page(runs_dir: Path) -> None:
    """Every view key, set by a link, is in the Share page's link to each page that reads it."""
    run = view(runs_dir)
    component = DiscoveryView(run.run).component_ids()[1]
    with_tcav = [m for m in run.examined if run.section(m).tcav]
    values = {"hyp": "2", "img": "3", "model": "ig_student", "method": "saliency", "group": run.groups[1], "correct": "wrong",
              "comp": component, "tcav": with_tcav[-1], "layer": run.tcav_layers(with_tcav[-1])[-1], "cls": run.classes[0]}
    assert set(values) == set(url_state.KEYS) - {"run"}
    at = open_app("share", {"v": V, "run": "tiny", **values})
    assert_clean(at)
    codes = [c.value for c in at.code]
    for spec in PAGE_SPECS:
        if spec.name != "share":
            link = url_state.decode(parse_qs(urlsplit(next(c for c in codes if c.startswith(f"/{spec.path}?"))).query)).state
            assert {k: str(getattr(link, k)) for k in spec.keys} == {k: values[k] for k in spec.keys}, spec.name


def test_hypotheses_show_clause_deletion(runs_dir: Path) -> None:
    m = metrics(runs_dir)
    at = open_app("hypotheses")
    assert_complete(at)
    text_ = all_text(at)
    assert "Does each clause do what it says? (clause deletion)" in text_
    assert "written by the project's developers as a worked example" in text_
    specs = [c.proto.spec for c in plotly_charts(at)]
    for key, name in (("z_star", "z*"), ("z_baseline", "z_baseline")):
        records = m["clause_deletion"][key]
        assert records, f"the tiny run's {name} has clauses"
        title = f"{name}: {sum(r['specific'] for r in records)} of {len(records)} clauses specific"
        assert any(title in s for s in specs), title
        clauses = {f"{r['text']} → {r['class']}" for r in records}
        table = next(d.value for d in at.dataframe if "specific" in d.value.columns and set(d.value["clause"]) == clauses)
        for r in records:
            row = table[table["clause"] == f"{r['text']} → {r['class']}"].iloc[0]
            assert row["answers changed, concept present"] == pytest.approx(100 * r["present"]["answer_change_rate"], abs=0.05)
            assert row["answers changed, concept absent"] == pytest.approx(100 * r["absent"]["answer_change_rate"], abs=0.05)
            assert row["specific"] == ("yes" if r["specific"] else "no")


def test_state_survives_page_switch(runs_dir: Path) -> None:
    """Streamlit clears query params when the sidebar switches pages; the session keeps the view."""
    at = open_app("microscope", {"v": V, "run": "tiny", "correct": "wrong"})
    at.query_params.clear()
    at.switch_page("app_pages/overview.py").run()
    at.query_params.clear()
    at.switch_page("app_pages/microscope.py").run()
    assert_clean(at)
    assert at.query_params["correct"] == "wrong"


def test_share_links_carry_the_session_view(runs_dir: Path) -> None:
    """Selections made on other pages appear in the Share page's links (the URL only holds the page's keys)."""
    at = open_app("microscope", {"v": V, "run": "tiny", "img": "4", "correct": "wrong"})
    at.switch_page("app_pages/share.py").run()
    assert_clean(at)
    assert "img" not in at.query_params  # the share page's own URL stays short
    codes = [c.value for c in at.code]
    assert any("/microscope?" in c and "img=4" in c and "correct=wrong" in c for c in codes), codes


@pytest.mark.parametrize("page", PAGES)
def test_incomplete_run_says_what_is_still_running(runs_dir: Path, page: str) -> None:
    """A run whose pipeline is still running (only the world stage done): each missing section names the
    stage that will write it."""
    at = open_app(page, {"v": V, "run": "tiny-incomplete"})
    assert_clean(at)
    assert at.query_params.get("run") == "tiny-incomplete"
    assert any("running" in str(w.value) for w in at.sidebar.warning)
    notes = [str(i.value) for i in at.info if "This run has no" in str(i.value)]
    if page in ("prior", "share"):  # they only need the world (and the judgments database)
        assert not notes, notes
    else:
        assert notes and all("has not finished yet (the run is running)" in n for n in notes), notes
    if page == "overview":
        assert "This run has no z* because its `ig` stage has not finished yet (the run is running)." in notes[0]


# ------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"v": V, "run": "no-such-run"}, "There is no run `no-such-run`"),
        ({"v": V, "run": "../../etc/passwd"}, "is not a valid run id"),
        ({"v": V, "run": "tiny/../tiny"}, "is not a valid run id"),
        ({"v": V, "run": "a/b"}, "is not a valid run id"),
        ({"v": V, "run": "junk"}, "cannot be opened as a run"),
    ],
)
def test_bad_run_id(runs_dir: Path, params: dict[str, str], expected: str) -> None:
    at = open_app("overview", params)
    assert_clean(at)
    assert expected in all_text(at)
    assert at.query_params["run"] == "tiny"  # safe default: the newest complete run, and the note says which it is
    assert "showing the newest complete run, `tiny`, instead." in all_text(at)
    assert at.sidebar.selectbox(key="w_run").value == "tiny"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"v": "0", "hyp": "1"}, "older version"),
        ({"v": "9", "hyp": "1"}, "newer version"),
        ({"v": "one", "hyp": "1"}, "is not valid"),
        ({"hyp": "1"}, "no format version"),
        ({"v": V, "hyp": "abc"}, "could not be read"),
        ({"v": V, "hyp": "-3"}, "could not be read"),
        ({"v": V, "hyp": "999999"}, "out of range"),
    ],
)
def test_bad_query_values(runs_dir: Path, params: dict[str, str], expected: str) -> None:
    star = view(runs_dir).z_star_rank + 1
    at = open_app("hypotheses", params)
    assert_complete(at)
    assert expected in all_text(at)
    assert at.query_params.get("hyp") == str(star)  # safe default: z*, numbered as the page numbers it
    assert f"Hypothesis #{star} as a field guide" in all_text(at)
    if expected == "out of range":  # the note says what the page shows instead
        assert f"showing #{star} (z*) instead" in all_text(at)


@pytest.mark.parametrize(
    "params",
    [
        {"v": V, "img": "123456"},
        {"v": V, "group": "zebra/moon"},
        {"v": V, "correct": "maybe"},
        {"v": V, "model": "<script>"},
        {"v": V, "method": "no_such_method"},
        {"v": V, "tcav": "no_such_model"},
        {"v": V, "layer": "layer9"},
        {"v": V, "layer": "../x"},
    ],
)
def test_bad_microscope_values(runs_dir: Path, params: dict[str, str]) -> None:
    at = open_app("microscope", params)
    assert_clean(at)
    notes = [str(i.value) for i in at.info]
    reasons = ("could not be read", "does not exist", "out of range", "has no TCAV scores in this run", "is not a TCAV layer of erm")
    assert any(r in n for n in notes for r in reasons), notes
    assert not any("`None`" in n for n in notes), notes  # a note names what is shown instead
    assert at.query_params.get("correct", "all") in ("all", "correct", "wrong")
    assert at.query_params.get("group", "all") != "zebra/moon"
    assert "tcav" not in at.query_params and "layer" not in at.query_params  # a refused choice leaves the link


def test_tcav_model_and_layer_travel_in_the_link(runs_dir: Path) -> None:
    """The microscope's TCAV model is a view key: a link opens on it, choosing another changes the URL, and the
    Share page's link to the microscope carries the choice."""
    run = view(runs_dir)
    with_tcav = [m for m in run.examined if run.section(m).tcav]
    assert len(with_tcav) > 1, "the tiny run has TCAV scores of more than one model"
    other = with_tcav[1]
    layer = run.tcav_layers(other)[0]
    at = open_app("microscope", {"v": V, "run": "tiny", "tcav": other, "layer": layer})
    assert_complete(at)
    assert at.radio(key="w_tcav_model").value == other
    assert at.query_params["tcav"] == other and at.query_params["layer"] == layer
    shown = [t for t in run.tcav(other) if t.layer == layer]
    assert f"of {len(shown)} concept/class scores are significant" in all_text(at)
    at.radio(key="w_tcav_model").set_value(with_tcav[0]).run()
    assert_clean(at)
    assert at.query_params["tcav"] == with_tcav[0] and at.query_params["layer"] == layer  # the layer stays: the model has it
    at.switch_page("app_pages/share.py").run()
    link = next(c.value for c in at.code if "/microscope?" in c.value)
    assert f"tcav={with_tcav[0]}" in link and f"layer={layer}" in link, link


def test_compare_class_travels_in_the_link(runs_dir: Path) -> None:
    """The Compare page's class is a view key: a link opens on it, choosing another changes the URL, the Share page's
    link carries it, and a class the run does not have is refused with a note."""
    classes = view(runs_dir).classes
    at = open_app("compare", {"v": V, "run": "tiny", "cls": classes[0]})
    assert_complete(at)
    assert at.selectbox(key="w_cmp_class").value == classes[0] and at.query_params["cls"] == classes[0]
    assert f"weight towards “{classes[0]}”" in all_text(at)
    at.selectbox(key="w_cmp_class").set_value(classes[-1]).run()
    assert_clean(at)
    assert at.query_params["cls"] == classes[-1] and f"weight towards “{classes[-1]}”" in all_text(at)
    at.switch_page("app_pages/share.py").run()
    assert any("/compare?" in c.value and f"cls={classes[-1]}" in c.value for c in at.code)
    at = open_app("compare", {"v": V, "run": "tiny", "cls": "zebra"})
    assert_complete(at)
    assert f"The class `zebra` does not exist in this run; showing the last class (`{classes[-1]}`) instead." in all_text(at)
    assert "cls" not in at.query_params


def test_rating_outside_range_is_refused(fresh_runs_dir: Path) -> None:
    at = open_app("prior")
    assert_clean(at)
    before = int(at.metric[0].value)
    at.text_input(key="w_rater").input("tester")
    at.number_input(key="w_rating").set_value(7)
    submit = [b for b in at.button if b.label == "Add rating"][0]
    submit.click().run()
    assert not at.exception
    assert any("from 1 (implausible) to 5" in str(e.value) for e in at.error)
    assert int(at.metric[0].value) == before  # nothing saved


def test_rating_add_and_reset(fresh_runs_dir: Path) -> None:
    at = open_app("prior")
    before = int(at.metric[0].value)
    at.text_input(key="w_rater").input("<b>ana</b>")
    at.number_input(key="w_rating").set_value(5)
    [b for b in at.button if b.label == "Add rating"][0].click().run()
    assert_clean(at)
    assert int(at.metric[0].value) == before + 1
    assert any("Saved" in str(s.value) for s in at.success)
    # the report escapes the rater's name
    html = export.report_html(RunView.open(str(fresh_runs_dir), "tiny"))
    assert "&lt;b&gt;ana&lt;/b&gt;" in html and "<b>ana</b>" not in html
    at.button(key="w_reset").click().run()
    assert_clean(at)
    assert int(at.metric[0].value) == before


def test_resolve_z_star(fresh_runs_dir: Path) -> None:
    at = open_app("prior")
    [b for b in at.button if "Re-solve" in b.label][0].click().run()
    assert_complete(at)
    text = all_text(at)
    assert "Re-solved in" in text and "**After** (the current ratings): IG learned that" in text
    assert len(at.metric) == 6  # 3 about the judgments, 3 about what changed


def test_first_launch_computes_demo_run(tmp_path: Path, runs_dir: Path) -> None:
    empty = tmp_path / "empty-runs"
    os.environ["IG_RUNS_DIR"] = str(empty)
    os.environ["IG_DEMO_SET"] = ";".join(tiny_sets())
    os.environ["IG_DEMO_STAGES"] = "world"
    try:
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
        assert not at.exception, [e.value for e in at.exception]
        runs = [p for p in empty.iterdir() if p.is_dir() and not p.name.startswith(".")]
        assert len(runs) == 1 and (runs[0] / "manifest.json").is_file()
        at.run()  # the next script run shows the demo run
        assert_clean(at)
        assert at.query_params["run"] == runs[0].name
        # the demo ran only the world stage: each missing section names the stage that would write it
        notes = [str(i.value) for i in at.info]
        assert any("This run has no z* because its `ig` stage was not run." in n for n in notes), notes
        assert any("This run has no z_baseline because its `microscope` stage was not run." in n for n in notes), notes
    finally:
        os.environ["IG_RUNS_DIR"] = str(runs_dir)
        os.environ.pop("IG_DEMO_SET", None)
        os.environ.pop("IG_DEMO_STAGES", None)


# ------------------------------------------------------------------------------------------ run view
@pytest.mark.parametrize("stage", [s for s in STAGES if s.writes], ids=lambda s: s.name)
def test_every_written_key_names_its_stage(stage: Stage) -> None:
    """The run view finds the writer of each metrics key from igcore.stages (a new stage that writes keys is covered
    at once; one that writes none, as discover, whose results reach metrics through the vocabulary stage, has nothing
    to check)."""
    for key in stage.writes:
        assert writer_of(key) is stage
        assert writer_of(f"{key}.some.sub.key") is stage


def test_run_view_reads_every_section(runs_dir: Path) -> None:
    run = RunView.open(str(runs_dir), "tiny")
    m = metrics(runs_dir)
    assert run.classes == m["world"]["classes"] and run.groups == m["world"]["groups"]
    assert set(run.methods) >= {"erm", "oracle", "true_concepts", "ig_direct", "no_prior", "ig_student"}
    for key in ("z_star", "no_prior", "z_baseline", "z_student"):  # the stored records, with the deletion test's verdicts
        verdicts = {(r["concept"], r["class"]): r["specific"] for r in m["clause_deletion"].get(key, [])}
        assert run.clauses(key) == [{**c, **({"specific": verdicts[(c["concept"], c["class"])]} if verdicts else {})}
                                    for c in m["hypotheses"][key]]
    assert len(run.ranked) == len(m["hypotheses"]["ranked"])
    assert [t.model_dump(by_alias=True, exclude_unset=True) for t in run.tcav()] == m["microscope"]["erm"]["tcav"]
    assert run.examined == ["erm", "ig_student", "oracle"]  # the method registry's order
    assert run.attribution_methods == list(m["microscope"]["erm"]["relevance_on_animal"])
    star = run.ranked[run.z_star_rank]
    assert {(c.concept, c.cls) for c in star.clauses} == {(c["concept"], c["class"]) for c in m["hypotheses"]["z_star"]}
    # each hypothesis's answers: z* read by L_M is ig_direct; z_baseline is the baseline's answers but where they part
    preds = run.predictions()
    assert (run.hypothesis_answers("z_star") == preds["pred_ig_direct"].to_numpy()).all()
    base = run.hypothesis_answers("z_baseline")
    assert int((base != preds["pred_erm"].to_numpy()).sum()) == m["surrogates"]["z_baseline"]["n_disagree"]
    n = m["world"]["sizes"]["test_eval"]
    assert len(run.predictions()) == n and run.test_eval()["images"].shape[0] == n
    assert run.concept_scores().shape == (n, len(m["concepts"]["vocabulary"]))  # the world's concepts, then the discovered ones
    assert not run.test_eval()["images"].flags.writeable  # shared between sessions: read-only
    assert run.contact_sheet()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run.missing("hypotheses.z_star", "z*") is None
    assert run.missing("methods.groupdro", "GroupDRO") == "This run has no GroupDRO because its `groupdro` stage was not run."
    assert run.missing("methods.nonsense", "nonsense") == "This run has no nonsense: no stage of this engine writes `methods.nonsense`."


def test_a_run_without_the_microscope_offers_only_the_maps_its_models_can_give(fresh_runs_dir: Path) -> None:
    """A finished run of world and erm only: the Microscope page computes maps on demand, so it offers the registered
    methods that apply to the run's ResNet, not the ViT-only ones, and draws its sections without an error."""
    from igcore.config import load_config
    from igcore.microscope import ATTRIBUTIONS
    from igcore.pipeline import run_pipeline

    run_pipeline(load_config(None, [*tiny_sets(), "world.image_size=32", "baseline.epochs=1", "run_id=no-microscope"]),
                 fresh_runs_dir, stages=["world", "erm"], progress=False)
    run = RunView.open(str(fresh_runs_dir), "no-microscope")
    assert run.model_families() == {"resnet"}
    assert run.attribution_methods == [m for m, spec in ATTRIBUTIONS.items() if spec.applies_to("resnet")]
    assert len(run.attribution_methods) < len(ATTRIBUTIONS)  # the registry has a ViT-only method
    at = open_app("microscope", {"v": V, "run": "no-microscope"})
    assert_clean(at)


def test_run_view_explains_missing_files(runs_dir: Path) -> None:
    run = RunView.open(str(runs_dir), "tiny-incomplete")
    with pytest.raises(NotComputed, match=r"its `vocabulary` stage has not finished yet \(the run is running\)"):
        run.concept_scores()
    with pytest.raises(NotComputed, match=r"the pipeline writes it last, and it has not finished yet"):
        run.predictions()
    with pytest.raises(NotComputed, match=r"its `microscope` stage has not finished yet"):
        run.microscope_table("relevance")
    assert run.test_eval()["images"].shape[0] == run.world.sizes["test_eval"]


def test_the_effects_caption_names_the_images_the_effects_were_measured_on(runs_dir: Path) -> None:
    """The caption states how many D′ images were swapped, and says they were sampled only when they were."""
    run = view(runs_dir)
    precision = [s.precision for s in run.microscope.values() if s.precision is not None]
    assert precision and all(p.effects_all_images for p in precision)  # the tiny run swaps every image
    caption = effects_caption(run)
    assert f"over {max(p.effects_images for p in precision)} D′ images and per group" in caption and "rounds" not in caption


def test_key_figures_of_a_complete_run(runs_dir: Path) -> None:
    """The Overview, the PNG zip and the report share these figures; a complete run has all of them."""
    figures = key_figures(RunView.open(str(runs_dir), "tiny"))
    assert [f.key for f in figures] == KEY_FIGURES
    assert all(f.figure is not None and f.missing is None and f.caption for f in figures), [f.missing for f in figures]


def test_report_of_a_complete_run(runs_dir: Path) -> None:
    m = metrics(runs_dir)
    run = view(runs_dir)
    html = export.report_html(run)
    assert escape(summary_sentence(run.clauses("z_star"), "IG", run.classes)) in html
    assert escape(summary_sentence(run.clauses("z_baseline"), "The baseline", run.classes)) in html
    assert html.count("<figure><h2>") == len(KEY_FIGURES) and "This run has no" not in html
    assert escape(text.prior_sentence(methods_of(m))) in html
    for kind in ("background", "object"):
        assert escape(text.effects_sentence(effects_of(runs_dir), kind)) in html
    assert "<figure class='sheet'>" in html  # the contact sheet at full width
    assert escape("written by the project's developers as a worked example") in html
    # the concepts discovered in erm, as the Discover page shows them: the one erm relies on most, its exemplars
    table = DiscoveryView(run.run).components("erm", run.name_map)
    models = tables.effect_models(table)
    assert models == ["erm", "ig_student", "oracle"]
    assert "<h2>Concepts found in the models, not annotated</h2>" in html
    assert escape(text.most_relied_sentence(table, models, bold=False)) in html
    most = table.sort_values("rank_erm")["id"].head(export.REPORT_COMPONENTS)
    assert re.findall(r"<h4>(discovered::erm/\d+) · ", html) == list(most)
    assert html.count("its strongest place</figcaption>") == export.REPORT_COMPONENTS * min(
        widgets.EXEMPLARS, int(run.run.config_model().discover.exemplars))


# ------------------------------------------------------------------------------------------ first launch
def test_first_launch_reports_reading_the_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A demo world that reads files reports the images it decodes before the stages start."""
    manifest = fx.make_folder(tmp_path / "data", n=24, with_mask=False)
    monkeypatch.setenv("IG_DEMO_SET", f"world.name=folder;world.manifest={manifest};world.cache_dir={tmp_path / 'cache'}")
    monkeypatch.setenv("IG_DEMO_STAGES", "world")
    job = DemoJob(str(tmp_path / "runs"))
    job.work()  # what the worker thread runs
    assert job.error is None and job.run_dir and Path(job.run_dir).is_dir()
    done, total, _ = job.loads[-1]
    assert done == total > 0
    assert [d for d, *_ in job.loads] == sorted(d for d, *_ in job.loads)
    progress = describe(job, stage_text=str)
    assert progress.finished[0].startswith(f"✓ Read the world's {total} images (")
    assert progress.finished[1].startswith("✓ world (") and progress.fraction == 1.0


# ------------------------------------------------------------------------------------------ any world
#: The dashboard's own files (the Prior page belongs to other work). What the pages show on other worlds,
#: the engine's sentences included, is checked by tests/test_dashboard_consistency.py.
OWN_FILES = [p for p in sorted((ROOT / "dashboard").rglob("*.py")) if p.name != "prior.py"]
#: Words of the default world that no text, colour or layout may assume.
WORLD_WORDS = re.compile(r"husk|wol(f|ves)|snow|animal", re.IGNORECASE)


def test_dashboard_assumes_no_world() -> None:
    for path in OWN_FILES:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            line = line.replace("relevance_on_animal", "")  # the engine's metrics key (relevance on the object's mask)
            assert not WORLD_WORDS.search(line), f"{path.relative_to(ROOT)}:{n}: {line.strip()}"


@pytest.mark.parametrize("run_id", BYOD_RUNS)
@pytest.mark.parametrize("page", PAGES)
def test_byod_run_renders_every_page(byod_runs_dir: Path, page: str, run_id: str) -> None:
    at = open_app(page, {"v": V, "run": run_id})
    assert_complete(at)  # no exception, no error box, nothing "could not be drawn", no section missing
    assert at.query_params["run"] == run_id
    shown = all_text(at)
    # the engine's notes may name the shipped Snow-and-Wolves files a run borrowed from: that is provenance
    notes = [n["note"] for n in json.loads((byod_runs_dir / run_id / "manifest.json").read_text())["notes"]]
    for wording in notes:
        shown = shown.replace(wording, "")
    found = WORLD_WORDS.search(shown)
    assert not found, shown[max(0, found.start() - 200) : found.end() + 100]


def test_byod_run_without_masks_says_why_parts_are_missing(byod_runs_dir: Path) -> None:
    reasons = metrics(byod_runs_dir, "folder")["microscope"]["erm"]["unavailable"]
    assert set(reasons) >= {"effects", "relevance_on_animal"}
    effects = f"Not available for this data: {reasons['effects']}."
    for page in ("overview", "microscope", "compare"):
        at = open_app(page, {"v": V, "run": "folder"})
        infos = [str(i.value) for i in at.info]
        assert any(effects in i for i in infos), (page, infos)
        assert sum(reasons["effects"] in i for i in infos) == 1, (page, infos)  # said once per page
    micro = open_app("microscope", {"v": V, "run": "folder"})
    assert any(f"Not available for this data: {reasons['relevance_on_animal']}." in str(i.value) for i in micro.info)
    assert "the cyan line outlines" not in all_text(micro)  # no masks, no outline
    assert micro.get("image"), "the gallery draws maps without masks"
    html = export.report_html(RunView.open(str(byod_runs_dir), "folder"))
    assert escape(effects) in html and escape(reasons["relevance_on_animal"]) in html


def test_byod_photographs_show_inpainted_counterfactuals(byod_runs_dir: Path) -> None:
    m = metrics(byod_runs_dir, "waterbirds")
    effects = effects_of(byod_runs_dir, "waterbirds")
    assert effects and "swaps" in m["microscope"]["erm"]["unavailable"]  # no renderer: swaps by inpainting
    at = open_app("compare", {"v": V, "run": "waterbirds"})
    assert_complete(at)
    shown = all_text(at)
    for kind in ("background", "object"):
        assert f"**{text.effects_sentence(effects, kind)}**" in shown
        assert effects["erm"][kind].how in shown
    # the strip, in the run's class names (the disagreements below end their captions with "truly a ...")
    assert any(re.fullmatch(r"#\d+ · [^·]+ · an? (landbird|waterbird)", c) for c in image_captions(at))
    assert "Left to right:" in shown
    overview = open_app("overview", {"v": V, "run": "waterbirds"})
    notes = "\n".join(n["note"] for n in json.loads((byod_runs_dir / "waterbirds" / "manifest.json").read_text())["notes"])
    assert "No ratings for this world's concepts" in notes and "No ratings for this world's concepts" in all_text(overview)
    hyp = open_app("hypotheses", {"v": V, "run": "waterbirds"})
    assert "pairwise preferences shipped in `assets/judgments/` for the demo world" in all_text(hyp)


def test_hypotheses_escape_a_clause_kind_from_the_run(fresh_runs_dir: Path) -> None:
    """The one run-supplied string placed in HTML (a clause's kind badge) is escaped: a metrics.json whose
    kind holds markup shows it as text."""
    path = fresh_runs_dir / "tiny" / "metrics.json"
    m = json.loads(path.read_text())
    evil = "<img src=x onerror=alert(1)>"
    m["hypotheses"]["ranked"][0]["clauses"][0]["kind"] = evil  # hyp=0: the page's field guide of z*
    path.write_text(json.dumps(m))
    at = open_app("hypotheses", {"v": V, "run": "tiny", "hyp": "0"})
    assert not at.exception
    html = [str(e.value) for e in at.markdown if "border-radius:4px" in str(e.value)]
    assert html and not any(evil in h for h in html)
    assert any(escape(evil) in h for h in html)


def test_hypotheses_warn_when_z_star_goes_against_the_prior(fresh_runs_dir: Path) -> None:
    """A run whose z* holds clauses a rater is less likely than not to endorse (``hypotheses.z_star_implausible``) says so on
    the Hypotheses page, each clause in the concept's words with its plausibility; a run without says nothing."""
    at = open_app("hypotheses", {"v": V, "run": "tiny"})
    assert not [w for w in at.warning if "less likely than not to endorse" in str(w.value)]
    path = fresh_runs_dir / "tiny" / "metrics.json"
    m = json.loads(path.read_text())
    m["hypotheses"]["z_star_implausible"] = [{"concept": "snowy_ground", "class": "wolf", "plausibility": 0.0123}]
    path.write_text(json.dumps(m))
    at = open_app("hypotheses", {"v": V, "run": "tiny"})
    assert not at.exception
    warned = [str(w.value) for w in at.warning if "less likely than not to endorse" in str(w.value)]
    assert len(warned) == 1 and "snowy ground is evidence for a wolf" in warned[0] and "0.01" in warned[0]


def test_the_server_warms_torchs_kernels_once_before_it_computes_with_models(runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sessions compute attribution maps (and effects) in their own threads; the server initialises torch's kernels
    once, in one thread, before the first of them (igcore.runtime.warm_kernels), and not again."""
    from dashboard import engine

    calls: list[object] = []
    monkeypatch.setattr("igcore.runtime.warm_kernels", lambda device: calls.append(device) or 0.0)
    engine.warm_kernels.clear()
    engine._attribution_maps.clear()
    run = view(runs_dir)
    maps, _ = engine.attribution_maps(run, "erm", "saliency", [0, 1])
    engine.attribution_maps(run, "erm", "saliency", [2])
    assert len(maps) == 2 and len(calls) == 1
    engine.warm_kernels.clear()
