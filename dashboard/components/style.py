"""One visual language for every chart: a colour and a plain-English name per method, per concept kind."""

from __future__ import annotations

from typing import Any

# Consistent colours: the baseline is red-ish, IG is green-ish, references are grey/blue.
METHOD_COLORS: dict[str, str] = {
    "erm": "#d1495b",
    "ig_student": "#2e7d5b",
    "ig_direct": "#66a182",
    "ig_posterior": "#8cc084",
    "no_prior": "#edae49",
    "oracle": "#8d99ae",
    "true_concepts": "#00798c",
    "groupdro": "#9b5de5",
    "jtt": "#f15bb5",
    "dfr": "#5c6bc0",
}
_FALLBACK = ["#6d597a", "#b56576", "#355070", "#e56b6f", "#eaac8b"]

METHOD_LABELS: dict[str, str] = {
    "erm": "Baseline (ERM)",
    "ig_student": "IG student",
    "ig_direct": "IG direct (z* read by L_M)",
    "ig_posterior": "IG posterior predictive",
    "no_prior": "No prior (likelihood only)",
    "oracle": "Oracle (trained on D′ labels)",
    "true_concepts": "True concepts (reference)",
    "groupdro": "GroupDRO",
    "jtt": "JTT",
    "dfr": "DFR",
}

METHOD_SHORT: dict[str, str] = {
    "erm": "Baseline (ERM)",
    "ig_student": "IG student",
    "ig_direct": "IG direct",
    "ig_posterior": "IG posterior",
    "no_prior": "No prior",
    "oracle": "Oracle",
    "true_concepts": "True concepts",
}

METHOD_HELP: dict[str, str] = {
    "erm": "the ordinary classifier trained on D, put under the microscope",
    "ig_student": "a fresh network trained on D′ images labelled with z*",
    "ig_direct": "the learned human-likelihood model applying z* to each image",
    "no_prior": "the same search without the human prior: the ablation",
    "oracle": "trained on the test distribution's labels: an upper reference, not a competitor",
    "true_concepts": "logistic regression on the true concept annotations: a reference",
}

# Order in which methods are listed (unknown ones go last, alphabetically).
METHOD_ORDER = ["erm", "no_prior", "ig_direct", "ig_posterior", "ig_student", "groupdro", "jtt", "dfr", "true_concepts", "oracle"]

KIND_COLORS = {"core": "#2e7d5b", "context": "#d1495b", "distractor": "#8d99ae"}
KIND_LABELS = {"core": "object feature", "context": "background", "distractor": "distractor"}

HYPOTHESIS_COLORS = {"z_star": METHOD_COLORS["ig_student"], "z_baseline": METHOD_COLORS["erm"], "no_prior": METHOD_COLORS["no_prior"]}


#: How a sentence names a model's possessions ("lowers the baseline's confidence").
POSSESSIVE: dict[str, str] = {"erm": "the baseline's", "ig_student": "the IG student's", "oracle": "the oracle's"}


def possessive(name: str) -> str:
    """``the baseline's``, ``the IG student's``, ``GroupDRO's`` …"""
    return POSSESSIVE.get(name, f"{method_short(name)}'s")


def subject(name: str) -> str:
    """``the baseline``, ``the IG student``, ``GroupDRO`` … (a model named inside a sentence)."""
    return POSSESSIVE[name][:-2] if name in POSSESSIVE else method_short(name)


def method_color(name: str) -> str:
    if name in METHOD_COLORS:
        return METHOD_COLORS[name]
    return _FALLBACK[sum(map(ord, name)) % len(_FALLBACK)]


def method_label(name: str) -> str:
    return METHOD_LABELS.get(name, name.replace("_", " "))


def method_short(name: str) -> str:
    return METHOD_SHORT.get(name, METHOD_LABELS.get(name, name.replace("_", " ")))


def order_methods(names: list[str]) -> list[str]:
    known = [m for m in METHOD_ORDER if m in names]
    return known + sorted(m for m in names if m not in METHOD_ORDER)


def base_layout(**overrides: Any) -> dict[str, Any]:
    """Plotly layout shared by all charts: white background, readable font, compact margins."""
    layout: dict[str, Any] = {
        "template": "plotly_white",
        "font": {"family": "Inter, Segoe UI, Helvetica, Arial, sans-serif", "size": 13},
        "margin": {"l": 10, "r": 10, "t": 78, "b": 10},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.01, "xanchor": "left", "x": 0},
        "hoverlabel": {"font_size": 12},
    }
    layout.update(overrides)
    title = layout.get("title")
    if isinstance(title, dict):  # title above the legend, never on top of it
        layout["title"] = {"x": 0.0, "xanchor": "left", "y": 0.985, "yanchor": "top", **title}
    return layout
