"""Unit tests of the dashboard's pure parts: the URL codec, the engine's summary sentence as the
dashboard uses it, the computed sentences, images, charts, the report and the first launch's progress."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboard import url_state as state
from dashboard.components import charts, images, report, tables, text
from dashboard.components.figures import KeyFigure
from dashboard.explanations import Explanation, Reason
from dashboard.first_launch import DemoJob, Progress, describe
from igcore.hypothesis import summary_sentence
from igcore.schema import (
    ClauseDeletion,
    Effect,
    MethodMetrics,
    RankedRecord,
    SanityCheck,
    Surrogate,
    SwapAttribution,
    TCAVControls,
    TCAVRecord,
)

Z_STAR = [
    {"concept": "amber_eyes", "kind": "core", "class": "wolf", "weight": 2.0, "text": "amber eyes"},
    {"concept": "blue_eyes", "kind": "core", "class": "husky", "weight": 1.5, "text": "ice-blue eyes"},
]
Z_BASE = [
    {"concept": "snowy_ground", "kind": "context", "class": "wolf", "weight": 3.0, "text": "snowy ground"},
    {"concept": "amber_eyes", "kind": "core", "class": "wolf", "weight": 0.5, "text": "amber eyes"},
]


def test_codec_roundtrip() -> None:
    view = state.ViewState(run="r1", hyp=3, img=7, model="erm", method="saliency", group="wolf/grass", correct="wrong")
    decoded = state.decode(state.encode(view))
    assert decoded.state == view and not decoded.notes


def test_codec_empty_is_default_without_note() -> None:
    assert state.decode({}) == state.Decoded(state.ViewState(), [])
    assert state.decode({"embed": "true"}).notes == []


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"hyp": "1"}, "no format version"),
        ({"v": "0", "hyp": "1"}, "older version"),
        ({"v": "3", "hyp": "1"}, "newer version"),
        ({"v": "x1"}, "is not valid"),
    ],
)
def test_codec_version_problems_reset_everything(params: dict, fragment: str) -> None:
    decoded = state.decode(params)
    assert decoded.state == state.ViewState()
    assert len(decoded.notes) == 1 and fragment in decoded.notes[0]


@pytest.mark.parametrize(
    ("key", "value"),
    [("hyp", "abc"), ("hyp", "-1"), ("img", "1e9"), ("correct", "maybe"), ("model", "<script>"), ("run", "x" * 200)],
)
def test_codec_malformed_value_falls_back(key: str, value: str) -> None:
    decoded = state.decode({"v": "1", key: value, "hyp": "2"} if key != "hyp" else {"v": "1", key: value})
    assert getattr(decoded.state, key) == getattr(state.ViewState(), key)
    assert any("could not be read" in n or "is not a valid run id" in n for n in [*decoded.notes, decoded.run_problem or ""])
    assert "<script>" not in " ".join(decoded.notes) or "`<script>`" in " ".join(decoded.notes)


def test_choose_helpers_note_only_real_changes() -> None:
    notes: list[str] = []
    assert state.choose("b", ["a", "b"], "a", "x", notes) == "b" and not notes
    assert state.choose("z", ["a", "b"], "a", "x", notes) == "a" and "does not exist" in notes[0]
    assert state.choose_index(5, 3, 0, "image", notes) == 0 and "out of range" in notes[-1] and "showing `0` instead" in notes[-1]
    assert state.choose_index(4, 3, 2, "hypothesis number", notes, first=1, shown="#2 (z*)") == 2
    assert "numbered 1 to 3" in notes[-1] and "showing #2 (z*) instead" in notes[-1]
    assert state.choose_index(3, 3, 2, "hypothesis number", notes, first=1) == 3


def test_summary_sentences_keep_strength_and_specificity() -> None:
    ig = summary_sentence(Z_STAR, "IG", ["husky", "wolf"])
    assert ig == ("IG learned that a husky has ice-blue eyes (moderate); a wolf has amber eyes (strong evidence); "
                  "the background does not matter.")
    base = summary_sentence(Z_BASE, "The baseline", ["husky", "wolf"])
    assert base == ("The baseline learned that snowy ground ⇒ wolf (strong evidence); features of the object matter less "
                    "(a wolf has amber eyes (weak)).")
    assert summary_sentence([], "IG", ["husky", "wolf"]) == "IG learned no rule at all (empty hypothesis)."
    mixed = [*Z_STAR, {"concept": "grassy_ground", "kind": "context", "class": "husky", "weight": 0.5, "text": "green grass"}]
    assert summary_sentence(mixed, "This hypothesis", ["husky", "wolf"], verb="says that").endswith(
        "; the background also counts (green grass ⇒ husky (weak)).")
    many = [{"concept": f"c{i}", "kind": "core", "class": "wolf", "weight": float(i + 1), "text": f"c{i}"} for i in range(5)]
    assert summary_sentence(many, "IG", ["husky", "wolf"]) == (
        "IG learned that a wolf has c4 (strong evidence), c3 (strong evidence) and c2 (strong evidence); the background does not "
        "matter (plus 2 weaker clauses).")
    # a clause the deletion test found not specific says so wherever the sentence cites it
    marked = [{**Z_STAR[0], "specific": False}, {**Z_STAR[1], "specific": True}]
    assert summary_sentence(marked, "IG", ["husky", "wolf"]) == (
        "IG learned that a husky has ice-blue eyes (moderate); a wolf has amber eyes (strong evidence, not specific); "
        "the background does not matter.")
    assert "animal" not in summary_sentence([Z_BASE[0]], "The baseline", ["husky", "wolf"])  # no world's words


def test_summary_sentences_claim_about_the_background_only_what_the_vocabulary_can_tell() -> None:
    """A discovered concept may be a background (its name is free text): it is a sign of its own, never an object
    feature, and beside it the sentence only says that no annotated background counts; a world whose vocabulary names
    no background says nothing of the background at all."""
    snow = {"concept": "discovered::erm/4", "kind": "discovered", "class": "wolf", "weight": 2.5, "text": "snowy ground"}
    assert summary_sentence([snow], "IG", ["husky", "wolf"]) == (
        "IG learned that discovered concepts count: snowy ground ⇒ wolf (strong evidence); no annotated background counts.")
    assert summary_sentence([*Z_STAR, snow], "IG", ["husky", "wolf"]) == (
        "IG learned that a husky has ice-blue eyes (moderate); a wolf has amber eyes (strong evidence); discovered concepts "
        "count: snowy ground ⇒ wolf (strong evidence); no annotated background counts.")
    assert summary_sentence(Z_STAR, "IG", ["husky", "wolf"], names_background=False) == (
        "IG learned that a husky has ice-blue eyes (moderate); a wolf has amber eyes (strong evidence).")
    assert "the object itself plays no part" not in summary_sentence([snow], "IG", ["husky", "wolf"], names_background=False)


def test_clause_line_and_label() -> None:
    assert text.clause_line(Z_STAR[0]) == "Amber eyes suggests **wolf** (weight +2.00, strong evidence)"
    assert text.clause_line({**Z_BASE[1], "specific": False}) == "Amber eyes suggests **wolf** (weight +0.50, weak, not specific)"
    assert text.clause_name({**Z_BASE[1], "specific": False}) == "✗ amber eyes → wolf" and text.clause_name(Z_STAR[0]) == "amber eyes → wolf"
    record = RankedRecord.model_validate({"clauses": Z_STAR, "log_prior": -1, "log_likelihood": -2, "log_posterior": -3, "posterior": 0.625})
    assert text.hypothesis_label(2, record, True) == "#3 ★ z* · 2 clauses · posterior 0.625"


def test_overlay_draws_outline_and_keeps_shape() -> None:
    img = np.full((8, 8, 3), 100, np.uint8)
    mask = np.zeros((8, 8), bool)
    mask[2:6, 2:6] = True
    out = images.overlay(img, np.random.default_rng(0).normal(size=(8, 8)), mask, factor=2)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert (out == images.OUTLINE.astype(np.uint8)).all(axis=-1).sum() > 0
    assert images.png_bytes(out)[:8] == b"\x89PNG\r\n\x1a\n"


def method(avg: float, worst: float, group_acc: dict[str, float]) -> MethodMetrics:
    return MethodMetrics(avg_acc=avg, worst_group_acc=worst, worst_group=min(group_acc, key=group_acc.get), group_acc=group_acc, group_n=dict.fromkeys(group_acc, 10))


def test_stage_times_draw_a_timeline_where_the_stages_recorded_when_they_started() -> None:
    from igcore.schema import StageRecord

    timed = {"world": StageRecord(seconds=2.0, schedule={"started_s": 0.0}),
             "erm": StageRecord(seconds=5.0, schedule={"started_s": 2.0, "stages_at_once": 2, "others_busy_cpus": 0.1}),
             "concepts": StageRecord(seconds=4.0, schedule={"started_s": 2.0, "stages_at_once": 2, "others_busy_cpus": 0.1})}
    bar = charts.stage_times(timed).data[0]
    assert list(bar.base) == [0.0, 2.0, 2.0] and list(bar.x) == [2.0, 5.0, 4.0]  # erm and concepts overlap
    assert "2 stage(s) running" in bar.hovertext[1] and "0.1 CPU(s) busy" in bar.hovertext[1]
    assert "7 s in all" in charts.stage_times(timed).layout.title.text
    older = {"world": StageRecord(seconds=2.0), "erm": StageRecord(seconds=5.0)}  # a run from before the schedule
    assert charts.stage_times(older).data[0].base is None and list(charts.stage_times(older).data[0].x) == [2.0, 5.0]


def test_charts_build_from_metrics() -> None:
    methods = {
        "erm": method(0.5, 0.1, {"wolf/grass": 0.1, "wolf/snow": 0.9}),
        "ig_student": method(0.9, 0.85, {"wolf/grass": 0.9, "wolf/snow": 0.85}),
    }
    assert len(charts.accuracy_bars(methods).data) == 2
    assert charts.group_heatmap(methods, ["wolf/grass", "wolf/snow"]).data[0].z[0][0] == 0.1
    covered = charts.group_heatmap(methods, ["wolf/grass", "wolf/snow"], {"grass": ["meadow", "lawn"], "snow": ["glacier"]})
    assert list(covered.layout.xaxis.ticktext) == ["wolf/grass<br><sub>(meadow, lawn)</sub>", "wolf/snow<br><sub>(glacier)</sub>"]
    table = tables.accuracy_table({**methods, "x": method(0.43854, 0.4385, {"wolf/grass": 0.4385})})
    assert list(table["worst group"]) == ["wolf/grass", "wolf/snow", "wolf/grass"]
    assert table["average accuracy"].iloc[-1] == 43.9 and text.percent(0.43854) == "43.9%"  # one rounding everywhere
    ranked = [
        RankedRecord.model_validate({"clauses": Z_STAR, "log_prior": -1, "log_likelihood": -10, "log_posterior": -11, "posterior": 0.7}),
        RankedRecord.model_validate({"clauses": Z_BASE, "log_prior": -5, "log_likelihood": -8, "log_posterior": -13, "posterior": 0.3}),
    ]
    fig = charts.posterior_scatter(ranked, selected=1)
    assert len(fig.data) == 2 and list(fig.data[0].customdata[1])[0] == 1
    tcav = [TCAVRecord.model_validate({"concept": "snowy_ground", "class": "wolf", "score": 0.9, "p_value": 0.01, "significant": True})]
    assert charts.tcav_bars(tcav, {"snowy_ground": "context"}, {"snowy_ground": "snowy ground"}).data
    assert charts.weights_vs_tcav({"z_star": Z_STAR, "z_baseline": Z_BASE}, tcav, "wolf", ["husky", "wolf"], {}, {}).data


def test_weights_vs_tcav_names_each_concept_once_and_spreads_the_labels() -> None:
    concepts = [f"c{i}" for i in range(9)]
    tcav = [TCAVRecord.model_validate({"concept": c, "class": "b", "score": 0.5 + 0.01 * i}) for i, c in enumerate(concepts)]
    z1 = [{"concept": c, "kind": "core", "class": "b", "weight": float(i + 1), "text": c} for i, c in enumerate(concepts)]
    z2 = [{"concept": c, "kind": "core", "class": "b", "weight": 0.5, "text": c} for c in concepts]
    fig = charts.weights_vs_tcav({"z_star": z1, "z_baseline": z2}, tcav, "b", ["a", "b"], {}, {})
    named = [t for trace in fig.data for t in trace.text if t]
    assert len(named) == len(set(named)) == 6  # the six heaviest, each named once
    positions = [p for trace in fig.data for p, t in zip(trace.textposition, trace.text, strict=True) if t]
    assert len(set(positions)) > 1


def test_report_is_self_contained_and_escaped() -> None:
    inp = report.ReportInput(
        run_id="r<1>",
        z_star_sentence=summary_sentence(Z_STAR, "IG", ["husky", "wolf"]),
        z_star_clauses=Z_STAR,
        z_baseline_missing="This run has no z_baseline because its `microscope` stage was not run.",
        figures=[
            KeyFigure("accuracy", "Accuracy", charts.accuracy_bars({"erm": method(0.5, 0.1, {"wolf/grass": 0.1})}), "caption <i>"),
            KeyFigure("tcav", "TCAV <b>", None, "unused", "This run has no TCAV scores for the baseline because its `microscope` stage was not run."),
        ],
        images=[(images.png_bytes(np.zeros((4, 4, 3), np.uint8)), "an <img> caption")],
        user_ratings=[{"rater": "<script>alert(1)</script>", "concept": "amber_eyes", "class": "wolf", "rating": 5}],
        contact_sheet=images.png_bytes(np.zeros((4, 8, 3), np.uint8)),
    )
    html = report.build_report(inp)
    assert "<figure class='sheet'>" in html  # the contact sheet full width, apart from the small images
    assert "<td>strong evidence</td>" in html and "<td>object feature</td>" in html  # z*'s clauses with their strength
    assert html.startswith("<!DOCTYPE html>")
    assert "IG learned that a husky has ice-blue eyes" in html
    assert "data:image/png;base64," in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "r&lt;1&gt;" in html and "caption &lt;i&gt;" in html
    assert "its `microscope` stage was not run." in html and "TCAV &lt;b&gt;" in html  # a missing figure says why
    assert html.count("<script type='text/javascript'>") == 1  # plotly.js embedded once
    assert "<script src=" not in html  # nothing loaded from the network


def stat(mean: float, low: float, high: float, n: int = 10) -> dict:
    return {"mean": mean, "ci_low": low, "ci_high": high, "n": n}


EFFECTS = {
    model: {kind: Effect.model_validate(e) for kind, e in kinds.items()}
    for model, kinds in {
        "erm": {
            "background": {"overall": stat(-2.31, -2.52, -2.1), "by_group": {"a/x": stat(-3.0, -3.2, -2.8), "b/y": stat(-1.5, -1.7, -1.3)},
                           "flip_rate": 0.4, "how": "re-rendered on every other background"},
            "object": {"overall": stat(-0.04, -0.1, 0.02), "by_group": {"a/x": stat(0.0, -0.1, 0.1)}, "flip_rate": 0.0, "how": "pasted"},
        },
        "ig_student": {"background": {"overall": stat(-0.08, -0.12, -0.05), "by_group": {}}},
    }.items()
}


def test_effects_sentence_reads_every_model_with_its_interval() -> None:
    assert text.effects_sentence(EFFECTS, "background") == (
        "Swapping only the background lowers the baseline's confidence in its answer by 2.3 log-odds (95% CI 2.1–2.5); "
        "it lowers the IG student's by 0.08 log-odds (95% CI 0.05–0.12).")
    assert text.effects_sentence(EFFECTS, "object") == (
        "Swapping only the object does not clearly change the baseline's confidence in its answer (mean -0.04 log-odds, "
        "95% CI -0.10 to 0.02).")
    assert text.effect_phrase(Effect.model_validate({"overall": stat(0.5, 0.2, 0.8)}).overall, "the oracle's") == (
        "raises the oracle's confidence in its answer by 0.50 log-odds (95% CI 0.20–0.80)")
    assert text.effects_sentence({"erm": {}}, "background") is None


def test_effects_chart_has_error_bars_per_model_and_group() -> None:
    fig = charts.effects_chart(EFFECTS, ["a/x", "b/y"])
    background = [t for t in fig.data if t.xaxis == "x"]
    assert [t.name for t in background] == ["Baseline (ERM)", "IG student"]
    erm = background[0]
    assert list(erm.x) == ["all groups", "a/x", "b/y"] and list(erm.y) == [-2.31, -3.0, -1.5]
    assert erm.error_y.array[0] == pytest.approx(-2.1 + 2.31) and erm.error_y.arrayminus[0] == pytest.approx(-2.31 + 2.52)
    assert list(background[1].y) == [-0.08, None, None]  # a group the model has no number for stays empty
    assert len([t for t in fig.data if t.xaxis == "x2"]) == 1  # only the baseline has an object swap


def test_swap_attribution_is_shown_in_log_odds_not_as_an_unbounded_share() -> None:
    """The background share (background part / total) explodes when the parts pull apart (here 291%); people
    read the two parts in log-odds instead, each with its interval."""
    attribution = {"erm": SwapAttribution.model_validate({
        "background_share": stat(2.91, 0.76, 6.5),
        "background_log_odds": stat(2.1, 1.8, 2.4), "object_log_odds": stat(-1.4, -1.9, -0.9),
        "background_log_odds_by_group": {"a/x": stat(2.5, 0.5, 4.0)}, "object_log_odds_by_group": {"a/x": stat(-1.0, -2.0, 0.1)}})}
    fig = charts.swap_parts_chart(attribution, ["a/x"])
    background, objects = fig.data
    assert list(background.x) == ["all groups", "a/x"] and list(background.y) == [2.1, 2.5] and list(objects.y) == [-1.4, -1.0]
    assert "%" not in fig.to_json().split('"layout"')[1].split('"template"')[0]  # no percentage axis
    sentence = text.swap_parts_sentence(attribution)
    assert sentence == ("Integrated gradients split each model's change in the log-odds of its answer, from the double swap to the "
                        "original, by where the pixels are: the baseline +2.10 log-odds (95% CI +1.80 to +2.40) on the background "
                        "and -1.40 log-odds (95% CI -1.90 to -0.90) on the objects.")
    old = {"erm": SwapAttribution.model_validate({"background_log_odds": stat(2.1, 1.8, 2.4), "object_log_odds": stat(0.1, 0.0, 0.2)})}
    assert list(charts.swap_parts_chart(old, ["a/x"]).data[0].x) == ["all groups"]  # a run from before the per-group parts


def test_tcav_marks_significant_unstable_and_not() -> None:
    base = {"class": "b", "layer": "penultimate", "repeats": 3}
    tcav = [TCAVRecord.model_validate(t) for t in (
        {**base, "concept": "c1", "score": 0.9, "score_min": 0.8, "score_max": 1.0, "significant": True, "unstable": False, "significant_repeats": 3},
        {**base, "concept": "c2", "score": 0.6, "score_min": 0.2, "score_max": 0.9, "significant": False, "unstable": True, "significant_repeats": 1},
        {**base, "concept": "c3", "score": 0.5, "score_min": 0.4, "score_max": 0.6, "significant": False, "unstable": False, "significant_repeats": 0},
    )]
    assert [t.status for t in tcav] == ["significant", "unstable", "not significant"]
    fig = charts.tcav_bars(tcav, {"c1": "core", "c2": "context", "c3": "distractor"}, {})
    bars = fig.data[0]
    assert list(bars.text) == ["★", "◐", ""]
    assert list(bars.marker.opacity) == [1.0, 0.65, 0.25] and list(bars.marker.pattern.shape) == ["", "/", ""]
    assert list(bars.error_x.array) == pytest.approx([0.1, 0.3, 0.1]) and list(bars.error_x.arrayminus) == pytest.approx([0.1, 0.4, 0.1])
    table = tables.tcav_table(tcav, {"c1": "concept one"})
    assert list(table["significant in"]) == ["3 of 3 repeats", "1 of 3 repeats", "0 of 3 repeats"]
    assert table["concept"][0] == "concept one"


def test_tcav_controls_sentence() -> None:
    good = text.tcav_controls_sentence(TCAVControls.model_validate({"n_tests": 40, "n_significant": 1, "not_significant_rate": 0.975,
                                                                    "repeats": 3, "single_repeat_not_significant_rate": 0.858}))
    assert good == ("Random image sets, tested and judged exactly like concepts, came out not significant in 98% of 40 tests "
                    "(significant means: in every one of 3 repeats): the test rarely calls noise a concept. "
                    "One repeat alone would have passed 86% of them, which is why one repeat is not enough.")
    bad = text.tcav_controls_sentence(TCAVControls.model_validate({"n_tests": 20, "n_significant": 5, "not_significant_rate": 0.75}))
    assert bad.endswith("below the 95% a sound test reaches, so read the significant scores with care.")
    assert text.tcav_controls_sentence(None).startswith("No random image sets were tested")


def test_clause_deletion_chart_and_table() -> None:
    records = [ClauseDeletion.model_validate(r) for r in (
        {"concept": "c1", "class": "b", "weight": 1.2, "text": "one", "specific": True,
         "present": {"n": 40, "answer_change_rate": 0.5, "mean_drop": 0.2}, "absent": {"n": 60, "answer_change_rate": 0.0, "mean_drop": 0.01}},
        {"concept": "c2", "class": "a", "weight": 0.4, "text": "two", "specific": False,
         "present": {"n": 0, "answer_change_rate": None, "mean_drop": None}, "absent": {"n": 100, "answer_change_rate": 0.1, "mean_drop": 0.05}},
    )]
    fig = charts.clause_deletion_bars(records, "z*")
    assert [t.name for t in fig.data] == ["concept present", "concept absent"]
    assert list(fig.data[0].y) == ["✓ one → b", "✗ two → a"] and list(fig.data[0].x) == [0.5, None]
    table = tables.clause_deletion_table(records)
    assert table["answers changed, concept present"][0] == 50.0 and pd.isna(table["answers changed, concept present"][1])
    assert list(fig.data[0].text) == ["50.0% · drop 0.200", "no images"]
    assert list(table["specific"]) == ["yes", "no"] and table["images present / absent"][1] == "0 / 100"


def test_fidelity_and_sanity_words() -> None:
    summary = Surrogate(fidelity=0.9833, fidelity_ci_low=0.9616, fidelity_ci_high=0.9929, n_eval=300)
    assert text.fidelity_sentence(summary, "z_baseline", "the baseline's") == (
        "z_baseline reproduces 98.3% (95% CI 96.2–99.3%) of the baseline's 300 answers on D′.")
    assert text.fidelity_sentence(Surrogate(), "z_baseline", "the baseline's") is None
    assert text.fidelity_sentence(None, "z_baseline", "the baseline's") is None
    assert text.sanity_verdict(SanityCheck(trustworthy=False), "the IG student's") == "❌ the IG student's maps fail the sanity check: do not trust them"
    assert text.sanity_verdict(None, "the oracle's") == "sanity check not run for the oracle's maps"


def test_rho_sweep_is_mean_and_std_over_seeds() -> None:
    df = pd.DataFrame({"rho": [0.9, 0.9, 0.99, 0.99], "seed": [0, 1, 0, 1], "method": ["erm"] * 4, "worst_group_acc": [0.6, 0.8, 0.0, 0.2]})
    fig = charts.rho_sweep(df, ["erm", "ig_student"], run_rho=0.99, world="snowwolf")
    assert "on the snowwolf world" in fig.layout.title.text  # a benchmark says which world it measured
    assert len(fig.data) == 1 and list(fig.data[0].y) == pytest.approx([0.7, 0.1])
    assert list(fig.data[0].error_y.array) == pytest.approx([df["worst_group_acc"][:2].std(), df["worst_group_acc"][2:].std()])
    assert fig.layout.shapes[0].x0 == 0.99  # this run's rho


def test_demo_progress_in_words() -> None:
    job = DemoJob("unused", started=100.0)
    assert describe(job, str) == Progress(0.0, "starting…", [])
    job.loads += [(10, 40, 101.0)]
    assert describe(job, str) == Progress(0.25, "Reading the world's images: 10 of 40", [])
    job.loads += [(40, 40, 102.5)]
    job.events += [("world", 0, 2, 102.5)]
    now = describe(job, str)
    assert now.finished == ["✓ Read the world's 40 images (2.5 s)"] and now.label == "Stage 1 of 2: world" and now.fraction == 0.0
    job.finished += [("world", 7.5, 110.0)]
    job.events += [("erm", 1, 3, 110.0), ("oracle", 2, 3, 110.1)]  # two stages at once
    now = describe(job, str)
    assert now.label == "Stage 2 of 3: erm; Stage 3 of 3: oracle" and now.fraction == pytest.approx(1 / 3)
    job.finished += [("oracle", 0.8, 110.9)]
    assert describe(job, str).label == "Stage 2 of 3: erm"
    job.finished += [("erm", 1.0, 111.0)]
    job.events += [("done", 3, 3, 111.0)]
    assert describe(job, str) == Progress(1.0, "done", ["✓ Read the world's 40 images (2.5 s)", "✓ world (7.5 s)", "✓ oracle (0.8 s)",
                                                         "✓ erm (1.0 s)"])


def test_report_lists_the_findings_escaped() -> None:
    html = report.build_report(report.ReportInput(run_id="r", findings=["Swapping <b>only</b> the background …"]))
    assert "<h2>What this run shows</h2>" in html and "Swapping &lt;b&gt;only&lt;/b&gt; the background" in html


def explanation(answer: str, said: str, reasons: tuple[Reason, ...] = ()) -> Explanation:
    return Explanation("erm", 0, answer, "z_baseline", "fitted to its answers", said, reasons, tuple(c for c in ("cow", "horse") if c != answer))


def test_one_explanation_per_model() -> None:
    """A model's answer is explained by its own hypothesis: readings are probabilities, weak and non-specific
    clauses say so, and a hypothesis that answers differently does not lend its reasons."""
    spotted = Reason("coat pattern: spotted", 0.71, 1.2, 0.85, "moderate, not specific")
    assert text.explanation_sentence(explanation("cow", "cow", (spotted,))) == (
        "**Baseline (ERM)** says *cow*. z_baseline (fitted to its answers) gives the same answer, from: “coat pattern: spotted”, "
        "which the concept model reads at p = 0.71 (weight 1.20, moderate, not specific).")
    found = Reason("unnamed concept 3", 0.64, 2.1, 1.34, "strong evidence", discovered=True)  # no concept model reads it
    assert text.explanation_sentence(explanation("cow", "cow", (found,))).endswith(
        "from: “unnamed concept 3”, a discovered concept whose calibrated presence here is p = 0.64 (weight 2.10, strong evidence).")
    assert text.explanation_sentence(explanation("horse", "cow"), Surrogate(fidelity=0.983)) == (
        "**Baseline (ERM)** says *horse*. z_baseline (fitted to its answers) says *cow* here, so it does not explain this answer "
        "(z_baseline reproduces 98.3% of the baseline's answers on D′; this image is among the rest).")
    assert text.explanation_sentence(explanation("cow", "cow")) == (
        "**Baseline (ERM)** says *cow*. z_baseline (fitted to its answers) gives the same answer, but none of its clauses for *cow* "
        "fires on this image: it answers *cow* because its evidence for *horse* is weaker here.")


def test_place_legend_and_times() -> None:
    assert text.place_legend({}) is None
    legend = text.place_legend({"land": ["grass"], "water": ["brick", "gravel"]})
    assert legend and "**land** = grass; **water** = brick, gravel" in legend
    assert text.utc_time("2026-11-30T17:36:08+00:00") == "2026-11-30 17:36 UTC"


def test_clause_weights_draw_every_clause_whatever_its_kind() -> None:
    """A clause about a discovered concept is a bar like any other, in its own colour and legend entry."""
    clauses = [
        {"concept": "snowy_ground", "text": "snowy ground", "class": "wolf", "weight": 1.2, "kind": "context"},
        {"concept": "discovered::erm/3", "text": "unnamed concept 3", "class": "wolf", "weight": 0.8, "kind": "discovered"},
        {"concept": "pointed_ears", "text": "pointed ears", "class": "husky", "weight": 0.5, "kind": "core"},
    ]
    fig = charts.clause_weights(clauses, "z*")
    assert sum(len(bar.x) for bar in fig.data) == len(clauses)
    assert {bar.name for bar in fig.data} == {"background", "discovered in a model", "object feature"}
    tcav = [TCAVRecord.model_validate({"class": "wolf", "layer": "penultimate", "concept": "discovered::erm/3", "score": 0.9})]
    legend = {bar.name for bar in charts.tcav_bars(tcav, {"discovered::erm/3": "discovered"}, {}).data if bar.showlegend}
    assert "discovered in a model" in legend and "background" not in legend
