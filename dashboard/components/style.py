"""One visual language for every chart: a colour and a plain-English name per method (from the method
registry, :mod:`igcore.methods`) and per concept kind, and the plotly layout every chart shares."""

from __future__ import annotations

from typing import Any

from igcore.discover.names import KIND as DISCOVERED
from igcore.methods import method_spec, order_methods

KIND_COLORS = {"core": "#2e7d5b", "context": "#d1495b", "distractor": "#8d99ae", DISCOVERED: "#7b5ea7"}
KIND_LABELS = {"core": "object feature", "context": "background", "distractor": "distractor", DISCOVERED: "discovered in a model"}
#: How a chart coloured by concept kind is read (its caption), from the same two tables.
KIND_COLOR_WORDS = {"core": "green", "context": "red", "distractor": "grey", DISCOVERED: "purple"}
KIND_LEGEND = ", ".join(f"{KIND_COLOR_WORDS[k]} = {KIND_LABELS[k]}" for k in KIND_COLORS)

#: Each stored hypothesis drawn in the colour of the model it stands for.
HYPOTHESIS_COLORS = {"z_star": method_spec("ig_student").color, "z_baseline": method_spec("erm").color, "no_prior": method_spec("no_prior").color}


def method_color(name: str) -> str:
    """The method's colour (:mod:`igcore.methods`)."""
    return method_spec(name).color


def method_label(name: str) -> str:
    """The method's full name, for legends and tables."""
    return method_spec(name).label


def method_short(name: str) -> str:
    """The method's short name, for crowded axes and tiles."""
    return method_spec(name).short


def method_help(name: str) -> str:
    """One line on what the method is."""
    return method_spec(name).help


def possessive(name: str) -> str:
    """``the baseline's``, ``the IG student's``, ``GroupDRO's`` …"""
    return method_spec(name).possessive


def subject(name: str) -> str:
    """``the baseline``, ``the IG student``, ``GroupDRO`` … (a model named inside a sentence)."""
    return method_spec(name).subject


def attribution_label(name: str) -> str:
    """An attribution method as people read it, the same on axes, selectors and captions ("grad cam")."""
    return name.replace("_", " ")


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


__all__ = [
    "HYPOTHESIS_COLORS",
    "KIND_COLORS",
    "KIND_LABELS",
    "attribution_label",
    "base_layout",
    "method_color",
    "method_help",
    "method_label",
    "method_short",
    "order_methods",
    "possessive",
    "subject",
]
