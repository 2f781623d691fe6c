"""z: clauses, English rendering, metrics records, JSON round-trip and input validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from igcore.errors import InputError
from igcore.hypothesis import Clause, Hypothesis, clause_sentence, strength_word
from igcore.worlds.base import Vocabulary
from testkit.hypotheses import from_pairs

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["husky", "wolf"]


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary.from_csv(ROOT / "assets" / "snowwolf_vocabulary.csv")


@pytest.fixture()
def z() -> Hypothesis:
    return from_pairs(
        [("amber_eyes", "wolf", 2.5), ("straight_tail", "wolf", 1.2), ("blue_eyes", "husky", 3.0), ("curled_tail", "husky", 0.4)],
        bias={"husky": 0.3, "wolf": -0.3},
    )


def test_json_round_trip(z: Hypothesis, vocab: Vocabulary) -> None:
    again = Hypothesis.from_json(z.to_json(), vocab, CLASSES)
    assert again == z
    assert again.bias == {"husky": 0.3, "wolf": -0.3}
    # an already-parsed object and the bare-list form (used in pairwise.csv) parse too
    assert Hypothesis.from_json(json.loads(z.to_json()), vocab, CLASSES) == z
    bare = json.dumps([c.to_dict() for c in z.clauses])
    assert Hypothesis.from_json(bare, vocab, CLASSES).structure == z.structure


def test_canonical_order_and_equality() -> None:
    a = from_pairs([("amber_eyes", "wolf", 1.0), ("blue_eyes", "husky", 2.0)])
    b = from_pairs([("blue_eyes", "husky", 2.0), ("amber_eyes", "wolf", 1.0)])
    assert a == b and hash(a) == hash(b)
    assert a.to_json() == b.to_json()


def test_matrix_round_trip(z: Hypothesis, vocab: Vocabulary) -> None:
    w, b = z.to_matrix(vocab, CLASSES)
    assert w.shape == (len(vocab), 2)
    assert w[vocab.index("amber_eyes"), 1] == 2.5
    assert Hypothesis.from_matrix(w, b, vocab, CLASSES) == z


def test_records_follow_the_metrics_contract(z: Hypothesis, vocab: Vocabulary) -> None:
    records = z.to_records(vocab)
    assert len(records) == 4
    for r in records:
        assert set(r) == {"concept", "kind", "class", "weight", "text"}
    by_concept = {r["concept"]: r for r in records}
    assert by_concept["amber_eyes"] == {"concept": "amber_eyes", "kind": "core", "class": "wolf", "weight": 2.5, "text": "amber eyes"}
    assert by_concept["blue_eyes"]["text"] == "ice-blue eyes" and by_concept["blue_eyes"]["class"] == "husky"
    json.dumps(records)  # JSON-able


def test_render_reads_as_a_field_guide(z: Hypothesis, vocab: Vocabulary) -> None:
    text = z.render(vocab, CLASSES)
    assert "A wolf: amber eyes (strong evidence), a straight bushy tail hanging down (moderate)." in text
    assert "A husky: ice-blue eyes (strong evidence), a tail curled up over the back (weak)." in text
    assert "Not used: the background (snowy ground, green grass, a brown forest floor)" in text
    assert "the distractors (bright sunlight, dim overcast light" in text
    assert "\n" not in text


def test_render_lists_only_unused_context(vocab: Vocabulary) -> None:
    z = from_pairs([("snowy_ground", "wolf", 2.0)])
    text = z.render(vocab, CLASSES)
    assert "A wolf: snowy ground (strong evidence)." in text
    assert "A husky: no specific evidence" in text
    assert "the background (green grass, a brown forest floor)" in text
    assert "Not used: the background (snowy" not in text


def test_strength_words_and_sentence() -> None:
    assert strength_word(2.0) == "strong evidence"
    assert strength_word(1.5) == "moderate"
    assert strength_word(0.1) == "weak"
    assert clause_sentence("amber eyes", "wolf") == "amber eyes is evidence for a wolf"
    assert clause_sentence("x", "otter") == "x is evidence for an otter"


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ('{"clauses": [', "not valid JSON"),
        ("[1, 2]", "must be an object"),
        ('"just a string"', "must be an object with 'clauses'"),
        ('{"clauses": [{"concept": "wings", "class": "wolf", "weight": 1}]}', "unknown concept 'wings'"),
        ('{"clauses": [{"concept": "amber_eyes", "class": "cat", "weight": 1}]}', "unknown class 'cat'"),
        ('{"clauses": [{"concept": "amber_eyes", "class": "wolf", "weight": -1}]}', "must be >= 0"),
        ('{"clauses": [{"concept": "amber_eyes", "class": "wolf", "weight": NaN}]}', "must be finite"),
        ('{"clauses": [{"concept": "amber_eyes", "class": "wolf", "weight": "big"}]}', "must be a number"),
        ('{"clauses": [{"concept": "amber_eyes", "class": "wolf"}]}', "missing weight"),
        (
            '{"clauses": [{"concept": "amber_eyes", "class": "wolf", "weight": 1},'
            ' {"concept": "amber_eyes", "class": "wolf", "weight": 2}]}',
            "duplicate clause",
        ),
        ('{"clauses": [], "bias": {"cat": 1.0}}', "unknown class 'cat'"),
        ('{"clauses": [], "bias": {"wolf": "x"}}', "must be a finite number"),
        ('{"clauses": [], "extra": 1}', "unknown keys"),
    ],
)
def test_bad_hypothesis_json_is_an_input_error(payload: str, fragment: str, vocab: Vocabulary) -> None:
    with pytest.raises(InputError) as err:
        Hypothesis.from_json(payload, vocab, CLASSES)
    message = str(err.value)
    assert fragment in message
    assert "\n" not in message


@pytest.mark.parametrize("weight", [-0.5, float("inf"), float("nan")])
def test_clause_rejects_bad_weights(weight: float) -> None:
    with pytest.raises(InputError):
        Clause("amber_eyes", "wolf", weight)


def test_from_matrix_checks_shape(vocab: Vocabulary) -> None:
    with pytest.raises(InputError, match="shape"):
        Hypothesis.from_matrix(np.zeros((3, 2)), np.zeros(2), vocab, CLASSES)
