"""The method registry (:mod:`igcore.methods`): every entry carries what people read about its method, and
the places that name, colour and order methods read it (the dashboard's style, the microscope's
surrogates, the config's default of ``microscope.models``)."""

from __future__ import annotations

import re

import pytest

from dashboard.components import style
from igcore.config import default_config
from igcore.methods import EXAMINED, METHODS, SURROGATES, MethodSpec, method_spec, order_methods
from igcore.stages import MODEL_NAMES


@pytest.mark.parametrize("spec", METHODS.values(), ids=lambda s: s.name)
def test_every_method_says_who_it_is(spec: MethodSpec) -> None:
    assert re.fullmatch(r"#[0-9a-f]{6}", spec.color)
    assert spec.label and spec.short and spec.help
    assert spec.kind in ("baseline", "ig", "ablation", "reference", "peer")
    assert spec.subject and spec.possessive == f"{spec.subject}'s"
    assert style.method_label(spec.name) == spec.label and style.method_color(spec.name) == spec.color
    assert style.subject(spec.name) == spec.subject and style.method_short(spec.name) == spec.short
    if spec.examined:
        assert spec.name in MODEL_NAMES, "the microscope examines trained models only"
    if spec.surrogate:
        assert re.fullmatch(r"z_[a-z]+", spec.surrogate)


def test_a_few_methods_say_who_they_are_in_words() -> None:
    """The registry's words as people read them (the parametrised test above checks every entry's shape)."""
    assert method_spec("erm").possessive == "the baseline's" and style.subject("erm") == "the baseline"
    assert style.method_short("groupdro") == "GroupDRO" and style.method_label("erm") == "Baseline (ERM)"


def test_colours_and_names_tell_methods_apart() -> None:
    for field in ("color", "label", "short"):
        values = [getattr(s, field) for s in METHODS.values()]
        assert len(set(values)) == len(values), field


def test_the_registry_is_the_one_source() -> None:
    assert default_config().microscope.models == list(EXAMINED) == ["erm", "ig_student", "oracle"]
    assert SURROGATES == {"erm": "z_baseline", "ig_student": "z_student"}
    assert style.subject("erm") == "the baseline" and style.possessive("ig_student") == "the IG student's"
    assert order_methods(["oracle", "zzz", "erm", "aaa", "ig_student"]) == ["erm", "ig_student", "oracle", "aaa", "zzz"]


def test_an_unregistered_method_still_has_a_name_and_a_colour() -> None:
    spec = method_spec("my_peer")
    assert spec.label == "my peer" and spec.subject == "my peer" and re.fullmatch(r"#[0-9a-f]{6}", spec.color)
    # the same colour in every process (a sum of the name's code points, not Python's per-process hash()): the fourth
    assert spec.color == "#e56b6f" and method_spec("my_peer") == spec
