"""Discovery in whole runs: the default run's discovered vocabulary, a labels-only manifest end to end, names
from the CLI and from the store, the read-side API the Discover page builds on."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from igcore.cli import main
from igcore.config import load_config
from igcore.discover import DiscoveryView, measure_together
from igcore.errors import InputError
from igcore.pipeline import run_pipeline
from igcore.resolve import resolve
from igcore.store import RunStore, load_run_dir
from testkit import byod_fixtures as fx

TINY = [
    "world.image_size=32", "baseline.epochs=2", "baseline.batch_size=16", "concepts.epochs=2",
    "microscope.per_group=1", 'microscope.methods=["saliency"]', "microscope.tcav.n_random=2",
    "microscope.tcav.n_concept_images=4", "microscope.tcav.n_inputs=3", 'microscope.tcav.layers=["penultimate"]',
    "microscope.sanity.n_images=2", "microscope.counterfactuals.n_resamples=100", "search.n_ranked=4", "search.max_depth=3",
]


def test_the_default_run_speaks_of_its_discovered_concepts(runs_dir: Path):
    run = RunStore(runs_dir).load("tiny")
    vocabulary, _ = run.vocabulary()
    found = [c for c in vocabulary.concepts if c.kind == "discovered"]
    section = run.metrics["discover"]["erm"]
    assert len(found) == section["k"] >= 2 and found[0].id == "discovered::erm/0" and found[0].text == "unnamed concept 0"
    assert run.tensors("concept_scores")["train"].shape[1] == len(vocabulary)
    first = section["components"][0]
    assert set(first["effects"]) == {"erm", "ig_student", "oracle"}
    for e in first["effects"].values():
        assert {"mean", "ci_low", "ci_high", "n"} <= set(e["overall"]) and e["rank"] >= 1 and e["by_group"]
    assert "snowy_ground" in first["resembles"]["concepts"] and first["resembles"]["backgrounds"]
    assert sorted(section["ranking"]["erm"]) == sorted(c.id for c in found)
    z_star = {c.concept for c in run.results().hypotheses.z_star}
    assert not any(c.startswith("discovered::") for c in z_star)  # nothing is named: z* cannot use them
    notes = " ".join(n.note for n in run.info().notes)
    assert "unnamed" in notes and "discovered" in notes
    stages = run.info().stages
    assert 0 < stages["discover"].seconds < run.info().total_seconds and 0 < stages["discover_effects"].seconds < run.info().total_seconds


def test_the_view_gives_components_exemplars_maps_crops_and_names(runs_dir: Path, tmp_path: Path):
    run = RunStore(runs_dir).load("tiny")
    view = DiscoveryView(run)
    assert view.sources == ["erm"]
    table = view.components("erm")
    k = len(table)
    assert list(table["id"]) == view.component_ids() and {"effect_erm", "rank_ig_student", "best_concept_auc"} <= set(table)
    component = table["id"][0]
    exemplars = view.exemplars(component, 5)
    score = view.scores("erm", "test_eval")[0][:, 0]
    assert len(exemplars) == 5 and score[exemplars[0]] == score.max()
    images = view.images(exemplars)
    assert view.maps(component, exemplars).shape == images.shape[:3]
    crops = view.crops(component, exemplars)
    assert crops.shape[0] == 5 and crops.shape[1] == crops.shape[2] and crops.dtype == np.uint8
    resembles = view.resemblance(component)
    assert list(resembles["auc"]) == sorted(resembles["auc"], reverse=True)
    assert set(view.effects("erm")["model"]) == {"erm", "ig_student", "oracle"}
    store = view.name_store(tmp_path / "judgments.sqlite")
    store.name("ana", component, "snowy ground")
    named = view.components("erm", store.names())
    assert named["text"][0] == "snowy ground" and bool(named["named"][0]) and not named["named"][1:].any() and len(named) == k
    solved = resolve(run, names=store.names())  # the re-solve speaks the named concept too
    assert component in solved.search.vocabulary_.ids and solved.language.vocabulary[component].text == "snowy ground"


def _labels_only(root: Path) -> Path:
    """The folder fixture's manifest reduced to path,label,split plus the group column (for evaluation)."""
    manifest = fx.make_folder(root, n=48, with_mask=False)
    rows = list(csv.DictReader(manifest.open()))
    out = manifest.parent / "labels_only.csv"
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "split", "group"])
        w.writerows([r["path"], r["label"], r["split"], r["group"]] for r in rows)
    return out


@pytest.mark.slow
def test_a_labels_only_manifest_runs_end_to_end_and_names_make_words_for_z_star(tmp_path: Path):
    manifest = _labels_only(tmp_path / "data")
    world = ["world.name=folder", f"world.manifest={manifest}", 'world.hide_concepts=["place::meadow","place::pond"]',
             f"world.cache_dir={tmp_path / 'cache'}"]
    sets = [*TINY, *world, "run_id=lo", "discover.tcav=true", "world.concept_bank=train+val"]
    run = load_run_dir(run_pipeline(load_config(None, sets), tmp_path / "runs", progress=False))
    assert run.complete
    vocabulary, classes = run.vocabulary()
    assert vocabulary.ids and all(c.kind == "discovered" for c in vocabulary.concepts)  # nothing annotated, nothing else
    metrics = run.metrics
    assert set(metrics["methods"]) >= {"erm", "ig_direct", "ig_student", "oracle"} and "true_concepts" not in metrics["methods"]
    assert metrics["hypotheses"]["z_star"] == []  # no named concept: z* can only state the class frequencies
    assert set(metrics["discover"]["erm"]["components"][0]["effects"]) == {"erm", "ig_student", "oracle"}
    notes = " ".join(n.note for n in run.info().notes)
    assert "unnamed" in notes and "true-concepts" in notes and "withheld" in notes
    tested = {r["concept"] for r in metrics["microscope"]["erm"]["tcav"]}  # discover.tcav: TCAV tests them like any concept
    assert tested and tested <= set(vocabulary.ids)
    # the Share page's report of it: what the models use comes from the discovered concepts, exemplars included
    from dashboard import export
    from dashboard.run_view import RunView

    html = export.report_html(RunView.open(str(tmp_path / "runs"), "lo"))
    assert "<h2>Concepts found in the models, not annotated</h2>" in html
    assert html.count("<h4>discovered::erm/") == export.REPORT_COMPONENTS and "its strongest place" in html
    # nothing in this vocabulary names a background, so the pages' headlines claim nothing about it
    from igcore.hypothesis import with_article

    view = RunView.open(str(tmp_path / "runs"), "lo")
    feature = {"concept": vocabulary.ids[0], "kind": "core", "class": classes[0], "weight": 2.0, "text": "a white bird"}
    assert view.summary([feature], "IG") == f"IG learned that {with_article(classes[0])} has a white bird (strong evidence)."

    # naming from the CLI: the name is the concept's text, and z* may use it
    names = tmp_path / "names.csv"
    names.write_text(f"component,text\n{vocabulary.ids[0]},a white bird\n")
    code = main(["run", "--out", str(tmp_path / "runs"), "--stages", "world,erm,discover,concepts,vocabulary,ig",
                 *[a for s in [*TINY, *world, f"discover.names={names}", "run_id=named"] for a in ("--set", s)], "--quiet"])
    assert code == 0
    named = load_run_dir(tmp_path / "runs" / "named")
    texts = {c.id: c.text for c in named.vocabulary()[0].concepts}
    assert texts[vocabulary.ids[0]] == "a white bird" and texts[vocabulary.ids[1]] == "unnamed concept 1"
    assert any("use 1 of the run's" in n.note for n in named.info().notes)
    info = json.loads((named.path / "discover" / "erm" / "info.json").read_text())
    assert info["concepts"][0]["text"] == "a white bird"
    assert np.array_equal(named.tensors("concept_scores")["train"], run.tensors("concept_scores")["train"])  # same seed


def test_an_unknown_hidden_concept_exits_2_before_any_work(tmp_path: Path, capsys):
    code = main(["run", "--out", str(tmp_path / "runs"), "--set", 'world.hide_concepts=["purple_sky"]', "--set", "world.n_train=40",
                 "--set", "world.n_val=20", "--set", "world.n_test_train=20", "--set", "world.n_test_eval=20",
                 "--set", "world.n_concept_bank=20", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "purple_sky" in err[0]
    assert not (tmp_path / "runs").exists()


def test_a_discovery_run_records_judgments_of_its_own_world(runs_dir: Path, tmp_path: Path):
    """The recorded judgments speak about the run's whole vocabulary (discovered concepts included), the world the
    dashboard's judgments store opens for the run, so what people add joins them; none is about an unnamed concept."""
    from igcore.prior import JudgmentsStore, vocabulary_fingerprint

    run = RunStore(runs_dir).load("tiny")
    vocabulary, classes = run.vocabulary()
    judgments = run.judgments()
    assert judgments.provenance.world == vocabulary_fingerprint(vocabulary, classes)
    assert not judgments.ratings["concept"].str.startswith("discovered::").any()
    store = JudgmentsStore(tmp_path / "judgments.sqlite", vocabulary, classes)
    store.add_ratings("ana", [("discovered::erm/0", classes[0], 5)])
    joined = judgments.joined(store)
    assert len(joined.ratings) == len(judgments.ratings) + 1 and joined.n_added() == 1
    solved = resolve(run, joined)  # a rating of an unnamed concept is left out of the re-solve (Prior_M is fitted without it)
    assert "discovered::erm/0" not in set(solved.judgments.ratings["concept"])
    assert len(solved.judgments.ratings) == len(judgments.ratings)


def test_a_run_stopped_after_discovery_speaks_of_its_discovered_concepts(runs_dir: Path, tmp_path: Path):
    """A run of only world, erm and discover (no vocabulary stage) reads its discovered concepts as the vocabulary stage
    would have merged them, so the Discover page's table can be built from it."""
    sets = [*TINY, "world.n_train=60", "world.n_val=20", "world.n_test_train=40", "world.n_test_eval=40",
            "world.n_concept_bank=20", "run_id=found"]
    run = load_run_dir(run_pipeline(load_config(None, sets), tmp_path / "runs", stages=["world", "erm", "discover"], progress=False))
    vocabulary, _ = run.vocabulary()
    full, _ = RunStore(runs_dir).load("tiny").vocabulary()
    view = DiscoveryView(run)
    discovered = [c.id for c in vocabulary.concepts if c.kind == "discovered"]
    assert discovered == view.component_ids() and discovered
    assert [c.id for c in vocabulary.concepts if c.kind != "discovered"] == [c.id for c in full.concepts if c.kind != "discovered"]
    table = view.components("erm")
    assert list(table["id"]) == discovered and set(table["text"]) == {f"unnamed concept {k}" for k in range(len(discovered))}


def test_components_named_alike_are_removed_together_and_the_page_shows_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """discover.names gives two components one name: discover_effects removes them at once too, per model; the
    Discover page lists the name with its effect, and names given alike on the page only are said to be unmeasured."""
    import streamlit as st

    from testkit.apptest import all_text, assert_clean, open_run_page

    names = tmp_path / "names.csv"
    names.write_text("component,text\ndiscovered::erm/0,snowy ground\ndiscovered::erm/1,Snowy  ground\n"
                     "discovered::erm/2,a coat\n")
    sets = [*TINY, "world.n_train=60", "world.n_val=20", "world.n_test_train=40", "world.n_test_eval=40",
            "world.n_concept_bank=20", 'microscope.models=["erm"]', "discover.k=4", f"discover.names={names}", "run_id=alike"]
    run = load_run_dir(run_pipeline(load_config(None, sets), tmp_path / "runs",
                                    stages=["world", "erm", "discover", "discover_effects"], progress=False))
    section = run.metrics["discover"]["erm"]
    assert [(g["text"], g["components"]) for g in section["named_alike"]] == [("snowy ground", ["discovered::erm/0", "discovered::erm/1"])]
    together = section["named_alike"][0]["effects"]["erm"]
    assert set(together) == {"overall", "by_group", "flip_rate"} and together["overall"]["n"] == 40
    table = DiscoveryView(run).alike("erm")
    assert list(table["text"]) == ["snowy ground"] and table.loc[0, "effect_erm"] == together["overall"]["mean"]
    # what is left to measure: groups of the current names that the run did not remove together, exactly
    view = DiscoveryView(run)
    assert view.alike_unmeasured("erm") == {}
    assert view.alike_unmeasured("erm", {"discovered::erm/3": "A coat"}) == {"a coat": ["discovered::erm/2", "discovered::erm/3"]}
    assert view.alike_unmeasured("erm", {"discovered::erm/2": "snowy ground"}) == {
        "snowy ground": ["discovered::erm/0", "discovered::erm/1", "discovered::erm/2"]}  # a larger group than the run's
    # measured again on the finished run (what the Discover page does for names given there): the run's numbers
    again = measure_together(run, {"snowy ground": ["discovered::erm/0", "discovered::erm/1"]})
    assert again == {"snowy ground": {"components": ["discovered::erm/0", "discovered::erm/1"], "effects": {"erm": together}}}
    with pytest.raises(InputError, match="two or more discovered components of one model"):
        measure_together(run, {"a coat": ["discovered::erm/2"]})
    with pytest.raises(InputError, match="no measured component discovered::erm/9"):
        measure_together(run, {"a coat": ["discovered::erm/2", "discovered::erm/9"]})

    monkeypatch.setenv("IG_RUNS_DIR", str(tmp_path / "runs"))
    at = open_run_page("alike", "discover")
    assert_clean(at)
    text = all_text(at)
    assert "Named alike, removed together" in text and "Named alike here but not measured" not in text
    shown = next(df.value for df in at.dataframe if "name" in df.value.columns and "components" in df.value.columns)
    assert list(shown["name"]) == ["snowy ground"] and shown.loc[0, "components"] == "discovered::erm/0, discovered::erm/1"
    at.text_input(key="w_discover_rater").input("ana").run()
    for component in ("discovered::erm/2", "discovered::erm/3"):  # two more given one name on the page
        at.selectbox(key="w_discover_comp").set_value(component).run()
        at.text_input(key="w_discover_text").input("a Coat")
        next(b for b in at.get("form_submit_button") if "Save the name" in b.label).click()
        at.run()
    assert "Named alike here but not measured together yet: “a Coat”" in all_text(at)
    at.button(key="w_discover_measure").click().run()  # measured on the run's models, shown beside the run's own
    assert_clean(at)
    text = all_text(at)
    assert "Named alike here, removed together" in text and "Named alike here but not measured" not in text
    tables = [df.value for df in at.dataframe if "name" in df.value.columns and "components" in df.value.columns]
    assert [list(t["name"]) for t in tables] == [["snowy ground"], ["a Coat"]]
    coat = measure_together(run, {"a Coat": ["discovered::erm/2", "discovered::erm/3"]})["a Coat"]["effects"]["erm"]
    assert tables[1].loc[0, "components"] == "discovered::erm/2, discovered::erm/3"
    assert tables[1].loc[0, "effect on erm"] == f"{coat['overall']['mean']:+.2f} [{coat['overall']['ci_low']:+.2f}, {coat['overall']['ci_high']:+.2f}]"
    # kept in the dashboard's database: a new session of a restarted server shows it without measuring again
    kept = DiscoveryView(run).name_store(tmp_path / "runs" / "judgments.sqlite").removed_together()
    assert kept == {("discovered::erm/2", "discovered::erm/3"): {"erm": coat}}
    st.cache_data.clear()
    st.cache_resource.clear()
    fresh = open_run_page("alike", "discover")
    assert_clean(fresh)
    text = all_text(fresh)
    assert "Named alike here, removed together" in text and "Named alike here but not measured" not in text
    assert [b for b in fresh.button if b.key == "w_discover_measure"] == []  # nothing left to measure
    shown = [df.value for df in fresh.dataframe if "name" in df.value.columns and "components" in df.value.columns]
    assert list(shown[1]["name"]) == ["a Coat"] and shown[1].loc[0, "effect on erm"] == tables[1].loc[0, "effect on erm"]
    # the Share page's report says what the page says: both tables, who named what, and why z* is not re-solved here
    from html import escape

    from dashboard import export
    from dashboard.run_view import RunView

    html = export.report_html(RunView.open(str(tmp_path / "runs"), "alike"))
    assert "<h2>Concepts found in the models, not annotated</h2>" in html
    run_names, people_names = (html.split(escape(heading))[1].split("</table>")[0] for heading in
                               ("Named alike by the run's names (discover.names), removed together:",
                                "Named alike by people on the dashboard, removed together:"))
    assert "<td>snowy ground</td>" in run_names and "a Coat" not in run_names
    assert f"<td>a Coat</td>\n      <td>discovered::erm/2, discovered::erm/3</td>\n      <td>{tables[1].loc[0, 'effect on erm']}</td>" in people_names
    named = html.split("Names people gave on the dashboard")[1].split("</table>")[0]
    assert named.count("<td>ana</td>") == 2 and named.count("<td>a Coat</td>") == 2
    assert "z* could not be re-solved in the names people gave" in html  # the run stopped before the concept model


def test_a_concept_model_whose_aucs_are_all_undefined_still_reports(tmp_path: Path):
    """A labels-only manifest keeps its ``place::`` concepts (from the group column); on a data set this small no
    held-out AUC of the concept model is defined. The stage reports None for their summary instead of failing the
    run with a traceback (numpy's minimum of nothing)."""
    manifest = _labels_only(tmp_path / "data")
    sets = [*TINY, "world.name=folder", f"world.manifest={manifest}", f"world.cache_dir={tmp_path / 'cache'}", "run_id=places"]
    run = load_run_dir(run_pipeline(load_config(None, sets), tmp_path / "runs", progress=False, stages=["world", "concepts"]))
    heldout = run.metrics["concepts"]["heldout_auc"]
    assert heldout and set(heldout) == {c.id for c in run.vocabulary()[0].concepts}
    info = run.manifest["stages"]["concepts"]
    assert all(v is None for v in heldout.values())  # the case this test is about
    assert info["mean_heldout_auc"] is None and info["min_heldout_auc"] is None
