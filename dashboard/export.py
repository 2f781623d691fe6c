"""Assemble the HTML report of a run from stored results (used by the Share page, tests and the bench)."""

from __future__ import annotations

from typing import Any

from dashboard import data, engine
from dashboard.components import charts, images, report, text
from dashboard.session import NotComputed


def _engine_text(clauses: Any, metrics: dict[str, Any]) -> str | None:
    try:
        return engine.render_text(clauses, metrics) if clauses else None
    except (NotComputed, ValueError):
        return None


def report_html(ref: data.RunRef, link: str | None = None, root: str | None = None) -> str:
    """The self-contained HTML report of run ``ref``."""
    metrics = ref.metrics
    world = metrics.get("world", {})
    classes = world.get("classes", [])
    hyps = metrics.get("hypotheses", {})
    methods = metrics.get("methods", {})
    micro = metrics.get("microscope", {}) or {}
    inp = report.ReportInput(run_id=ref.run_id, link=link)
    if hyps.get("z_star"):
        inp.z_star_sentence = text.summary_sentence(hyps["z_star"], "IG", classes)
        inp.z_star_text = hyps.get("z_star_text") or _engine_text(hyps["z_star"], metrics)
        inp.z_star_clauses = list(hyps["z_star"])
    if hyps.get("z_baseline"):
        inp.z_baseline_sentence = text.summary_sentence(hyps["z_baseline"], "The baseline", classes)
        inp.z_baseline_text = hyps.get("z_baseline_text") or _engine_text(hyps["z_baseline"], metrics)
    if methods:
        inp.table_html = charts.accuracy_table(methods).to_html(index=False, float_format=lambda v: f"{v:.1f}%", na_rep="–", escape=True)
        inp.figures.append(("Accuracy per method", charts.accuracy_bars(methods), "Average (solid) and worst-group (hatched) accuracy on D′."))
        inp.figures.append(("Accuracy per group", charts.group_heatmap(methods, world.get("groups")), "Methods × animal/background groups on D′."))
    for key, label in (("z_star", "z*"), ("z_baseline", "z_baseline")):
        if hyps.get(key):
            inp.figures.append((f"Clauses of {label}", charts.clause_weights(hyps[key], f"Clauses of {label}"), "Green = animal features, red = background."))
    tcav = (micro.get("erm") or {}).get("tcav") or []
    vocab = world.get("vocabulary", [])
    if tcav:
        texts = {v["id"]: v["text"] for v in vocab}
        inp.figures.append(("TCAV of the baseline", charts.tcav_bars(tcav, {v["id"]: v["kind"] for v in vocab}, texts), "★ = significant."))
        have = {k: hyps[k] for k in ("z_star", "z_baseline") if hyps.get(k)}
        if have and classes:
            inp.figures.append(("Concept weights vs TCAV", charts.weights_vs_tcav(have, tcav, classes[-1], classes, texts), "Weights of z* and z_baseline against the baseline's TCAV scores."))
    if any(m.get("relevance_on_animal") for m in micro.values()):
        inp.figures.append(("Relevance on the animal", charts.relevance_bars(micro), "Share of positive attribution inside the animal's outline."))
    if any(m.get("swap_flip_rate") is not None for m in micro.values()):
        inp.figures.append(("Background swaps", charts.swap_bars(micro), "How often the answer flips when only the background changes."))
    sheet = data.file_bytes(ref, "contact_sheet.png")
    if sheet:
        inp.images.append((sheet, "Contact sheet of the world"))
    preds, test = data.table(ref, "predictions"), data.tensors(ref, "test_eval")
    if preds is not None and test is not None and {"pred_erm", "pred_ig_student"} <= set(preds.columns):
        groups = world.get("groups", [])
        for i in preds.loc[preds["pred_erm"] != preds["pred_ig_student"], "index"].to_numpy()[:6]:
            cap = f"#{i} {groups[int(preds.at[i, 'group'])]}: baseline says {classes[int(preds.at[i, 'pred_erm'])]}, IG student says {classes[int(preds.at[i, 'pred_ig_student'])]}"
            inp.images.append((images.png_bytes(images.overlay(test["images"][i], None, test["masks"][i], factor=3)), cap))
    if root is not None:
        try:
            ratings = engine.judgments_store(root, metrics).ratings()
            inp.user_ratings = ratings[ratings["source"] == "user"].to_dict("records")
        except NotComputed:
            pass
    return report.build_report(inp)
