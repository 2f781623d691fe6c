"""Unit tests of the dashboard's pure parts: the URL codec, the engine's summary sentence as the
dashboard uses it, images, charts and the report."""

from __future__ import annotations

import numpy as np
import pytest

from dashboard import state
from dashboard.components import charts, images, report, text
from dashboard.components.figures import KeyFigure
from igcore.hypothesis import summary_sentence
from igcore.schema import MethodMetrics, RankedRecord

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
        ({"v": "2", "hyp": "1"}, "newer version"),
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
    assert any("could not be read" in n for n in decoded.notes)
    assert "<script>" not in " ".join(decoded.notes) or "`<script>`" in " ".join(decoded.notes)


def test_choose_helpers_note_only_real_changes() -> None:
    notes: list[str] = []
    assert state.choose("b", ["a", "b"], "a", "x", notes) == "b" and not notes
    assert state.choose("z", ["a", "b"], "a", "x", notes) == "a" and "does not exist" in notes[0]
    assert state.choose_index(5, 3, 0, "image", notes) == 0 and "out of range" in notes[-1]


def test_summary_sentences() -> None:
    ig = summary_sentence(Z_STAR, "IG", ["husky", "wolf"])
    assert ig == "IG learned that a husky has ice-blue eyes; a wolf has amber eyes; the background does not matter."
    base = summary_sentence(Z_BASE, "The baseline", ["husky", "wolf"])
    assert base == "The baseline learned that snowy ground ⇒ wolf; animal features matter less (a wolf has amber eyes)."
    assert summary_sentence([], "IG", ["husky", "wolf"]) == "IG learned no rule at all (empty hypothesis)."
    mixed = [*Z_STAR, {"concept": "grassy_ground", "kind": "context", "class": "husky", "weight": 0.5, "text": "green grass"}]
    assert summary_sentence(mixed, "This hypothesis", ["husky", "wolf"], verb="says that").endswith(
        "; the background also counts (green grass ⇒ husky).")
    many = [{"concept": f"c{i}", "kind": "core", "class": "wolf", "weight": float(i + 1), "text": f"c{i}"} for i in range(5)]
    assert summary_sentence(many, "IG", ["husky", "wolf"]) == "IG learned that a wolf has c4, c3 and c2; the background does not matter (plus 2 weaker clauses)."


def test_clause_line_and_label() -> None:
    assert text.clause_line(Z_STAR[0]) == "Amber eyes suggests **wolf** (weight +2.00)"
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


def test_charts_build_from_metrics() -> None:
    methods = {
        "erm": method(0.5, 0.1, {"wolf/grass": 0.1, "wolf/snow": 0.9}),
        "ig_student": method(0.9, 0.85, {"wolf/grass": 0.9, "wolf/snow": 0.85}),
    }
    assert len(charts.accuracy_bars(methods).data) == 2
    assert charts.group_heatmap(methods, ["wolf/grass", "wolf/snow"]).data[0].z[0][0] == 0.1
    assert list(charts.accuracy_table(methods)["worst group"]) == ["wolf/grass", "wolf/snow"]
    ranked = [
        RankedRecord.model_validate({"clauses": Z_STAR, "log_prior": -1, "log_likelihood": -10, "log_posterior": -11, "posterior": 0.7}),
        RankedRecord.model_validate({"clauses": Z_BASE, "log_prior": -5, "log_likelihood": -8, "log_posterior": -13, "posterior": 0.3}),
    ]
    fig = charts.posterior_scatter(ranked, selected=1)
    assert len(fig.data) == 2 and list(fig.data[0].customdata[1])[0] == 1
    tcav = [{"concept": "snowy_ground", "class": "wolf", "score": 0.9, "p_value": 0.01, "significant": True}]
    assert charts.tcav_bars(tcav, {"snowy_ground": "context"}, {"snowy_ground": "snowy ground"}).data
    assert charts.weights_vs_tcav({"z_star": Z_STAR, "z_baseline": Z_BASE}, tcav, "wolf", ["husky", "wolf"], {}).data


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
    )
    html = report.build_report(inp)
    assert html.startswith("<!DOCTYPE html>")
    assert "IG learned that a husky has ice-blue eyes" in html
    assert "data:image/png;base64," in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "r&lt;1&gt;" in html and "caption &lt;i&gt;" in html
    assert "its `microscope` stage was not run." in html and "TCAV &lt;b&gt;" in html  # a missing figure says why
    assert html.count("<script type='text/javascript'>") == 1  # plotly.js embedded once
    assert "<script src=" not in html  # nothing loaded from the network
