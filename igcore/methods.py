"""Who is who among a run's methods: one registry entry per method, with everything people read about it.

A run evaluates several methods on D′ (``metrics.json`` ``methods.<name>``): the baseline classifier, the
parts of Imitative Generalization, the likelihood-only ablation, references and peer methods. Each entry
here says, once, how the method is named in a chart legend and in a sentence, its colour, where it is
listed, what kind of method it is, whether the microscope examines it by default and which readable
surrogate hypothesis describes it. The dashboard's charts and sentences, the microscope's surrogates and
the config's default of ``microscope.models`` all read this registry; a method that is not registered
still works everywhere, named after its key (:func:`method_spec`).

Torch-free and import-light on purpose: the dashboard's pages that only read stored numbers import it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

#: What part a method plays in the comparison.
MethodKind = Literal["baseline", "ig", "ablation", "reference", "peer"]

#: Colours for methods without an entry (picked by a stable hash of the name).
FALLBACK_COLORS: tuple[str, ...] = ("#6d597a", "#b56576", "#355070", "#e56b6f", "#eaac8b")


@dataclass(frozen=True)
class MethodSpec:
    """Everything people read about one method.

    Attributes:
        name: the key in ``metrics.json`` ``methods`` and in prediction columns (``pred_<name>``).
        label: the full name in legends and tables ("Oracle (trained on D′ labels)").
        short: the name on crowded axes and tiles ("Oracle").
        color: ``#rrggbb``; the baseline is red-ish, IG green-ish, references grey/blue.
        kind: what part it plays (:data:`MethodKind`).
        help: one line on what it is, for tooltips.
        noun: how a sentence names it ("baseline" in "the baseline's confidence"; "GroupDRO").
        definite: whether English puts "the" before :attr:`noun`.
        examined: whether the microscope examines it by default (``microscope.models``).
        surrogate: the ``hypotheses`` key of the readable hypothesis fitted to its answers, if any.
    """

    name: str
    label: str
    short: str
    color: str
    kind: MethodKind
    help: str = ""
    noun: str = ""
    definite: bool = False
    examined: bool = False
    surrogate: str | None = None

    @property
    def subject(self) -> str:
        """The method named inside a sentence: "the baseline", "the IG student", "GroupDRO"."""
        noun = self.noun or self.short
        return f"the {noun}" if self.definite else noun

    @property
    def possessive(self) -> str:
        """"the baseline's", "GroupDRO's"."""
        return f"{self.subject}'s"


#: Every registered method, in the order they are listed (charts, tables, the microscope's models).
METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec("erm", "Baseline (ERM)", "Baseline (ERM)", "#d1495b", "baseline",
                   "the ordinary classifier trained on D, put under the microscope", "baseline", True, True, "z_baseline"),
        MethodSpec("no_prior", "No prior (likelihood only)", "No prior", "#edae49", "ablation",
                   "the same search without the human prior: the ablation"),
        MethodSpec("ig_direct", "IG direct (z* read by L_M)", "IG direct", "#66a182", "ig",
                   "L_M, the human-likelihood model, applying z* to the concept scores of each image"),
        MethodSpec("ig_posterior", "IG posterior predictive", "IG posterior", "#8cc084", "ig",
                   "L_M averaged over the ranked hypotheses, weighted by their posterior"),
        MethodSpec("ig_student", "IG student", "IG student", "#2e7d5b", "ig",
                   "a fresh network trained on D′ images labelled with z*", "IG student", True, True, "z_student"),
        MethodSpec("groupdro", "GroupDRO", "GroupDRO", "#9b5de5", "peer", "a peer method trained with D's group labels"),
        MethodSpec("jtt", "JTT", "JTT", "#f15bb5", "peer", "a peer method that upweights an identification model's errors"),
        MethodSpec("dfr", "DFR", "DFR", "#5c6bc0", "peer", "a peer method that re-trains ERM's last layer on group-balanced data"),
        MethodSpec("true_concepts", "True concepts (reference)", "True concepts", "#00798c", "reference",
                   "logistic regression on the true concept annotations: a reference"),
        MethodSpec("oracle", "Oracle (trained on D′ labels)", "Oracle", "#8d99ae", "reference",
                   "trained on the test distribution's labels: an upper reference, not a competitor", "oracle", True, True),
    )
}

#: The models the microscope examines by default (the config's ``microscope.models``).
EXAMINED: tuple[str, ...] = tuple(name for name, spec in METHODS.items() if spec.examined)
#: Method -> the ``hypotheses`` key of its surrogate (``erm`` -> ``z_baseline``).
SURROGATES: dict[str, str] = {name: spec.surrogate for name, spec in METHODS.items() if spec.surrogate}


def method_spec(name: str) -> MethodSpec:
    """The registry entry of ``name``, or one made from the name for a method that is not registered."""
    spec = METHODS.get(name)
    if spec is not None:
        return spec
    label = name.replace("_", " ")
    color = FALLBACK_COLORS[sum(map(ord, name)) % len(FALLBACK_COLORS)]
    return MethodSpec(name, label, label, color, "peer")


def order_methods(names: Iterable[str]) -> list[str]:
    """``names`` in registry order; methods that are not registered last, alphabetically."""
    names = list(dict.fromkeys(names))
    return [m for m in METHODS if m in names] + sorted(m for m in names if m not in METHODS)


__all__ = ["EXAMINED", "METHODS", "SURROGATES", "MethodKind", "MethodSpec", "method_spec", "order_methods"]
