"""L_M and the clause-deletion test: deleting a clause changes answers where its concept is present, not elsewhere."""

import numpy as np
import pytest

from igcore.likelihood import SPECIFIC_ALPHA, ClauseLikelihood, clause_contributions, clause_deletion, predict_proba
from igcore.worlds.base import Concept, Vocabulary
from testkit.hypotheses import from_pairs

VOCAB = Vocabulary((Concept("stripes", "stripes", "core"), Concept("spots", "spots", "core"), Concept("snow", "snow", "context")))
CLASSES = ["cat", "dog"]


def test_clause_deletion_is_specific_to_the_images_showing_the_concept():
    rng = np.random.default_rng(0)
    present = rng.random((400, 3)) < 0.5
    scores = np.where(present, 0.9, 0.05) + rng.normal(0, 0.02, (400, 3))
    scores = np.clip(scores, 0, 1)
    z = from_pairs([("stripes", "cat", 3.0), ("spots", "dog", 3.0)], bias={"cat": 0.0, "dog": 0.0})
    records = clause_deletion(z, scores, present, VOCAB, CLASSES)
    assert [(r["concept"], r["class"]) for r in records] == [("stripes", "cat"), ("spots", "dog")]
    for r in records:
        assert r["present"]["n"] + r["absent"]["n"] == 400
        assert r["present"]["mean_drop"] > 0.2 > abs(r["absent"]["mean_drop"]) * 5
        assert r["present"]["answer_change_rate"] > r["absent"]["answer_change_rate"]
        assert r["specific"] is True and r["text"] == r["concept"] and r["p_value"] < SPECIFIC_ALPHA
    # the rates are computed from L_M itself: an image showing stripes and not spots flips to dog without the clause
    only_stripes = present[:, 0] & ~present[:, 1]
    without = predict_proba(scores, from_pairs([("spots", "dog", 3.0)]), VOCAB, CLASSES)
    full = predict_proba(scores, z, VOCAB, CLASSES)
    changed = without.argmax(1) != full.argmax(1)
    assert changed[only_stripes].mean() > 0.9  # (ties at a clipped score of 0 keep the first class)
    assert records[0]["present"]["answer_change_rate"] == pytest.approx(changed[present[:, 0]].mean())


def test_a_clause_on_a_concept_that_is_everywhere_has_no_absent_images():
    scores = np.full((10, 3), 0.9)
    z = from_pairs([("snow", "dog", 1.0)])
    (r,) = clause_deletion(z, scores, np.ones((10, 3), bool), VOCAB, CLASSES)
    assert r["absent"] == {"n": 0, "answer_change_rate": None, "mean_drop": None} and r["specific"] is None and r["p_value"] is None


def test_a_clause_whose_deletion_changes_nothing_is_not_specific():
    """A weak clause beside a strong one of the same class: deleting it lowers its class's probability where its
    concept is present (a drop), yet changes no answer anywhere, so it is not specific (0 of n vs 0 of n is no
    evidence); nor is one that changes a single answer where the concept is present."""
    rng = np.random.default_rng(2)
    present = rng.random((600, 3)) < 0.5
    scores = np.clip(np.where(present, 0.9, 0.05) + rng.normal(0, 0.02, (600, 3)), 0, 1)
    z = from_pairs([("stripes", "cat", 6.0), ("spots", "cat", 0.2)], bias={"cat": 0.0, "dog": 3.0})
    records = {r["concept"]: r for r in clause_deletion(z, scores, present, VOCAB, CLASSES)}
    weak = records["spots"]
    assert weak["present"]["answer_change_rate"] == weak["absent"]["answer_change_rate"] == 0.0
    assert weak["present"]["mean_drop"] > weak["absent"]["mean_drop"]  # the old rule (drop larger, rate no lower) said specific
    assert weak["p_value"] == 1.0 and weak["specific"] is False
    assert records["stripes"]["specific"] is True  # the strong clause decides answers where stripes are present
    # one answer in hundreds changes where the concept is present, none where it is absent: chance, not specificity
    from igcore.likelihood import change_test

    assert change_test(1, 748, 0, 752) > SPECIFIC_ALPHA
    assert change_test(150, 750, 3, 750) < SPECIFIC_ALPHA


def test_clause_contributions_are_the_terms_of_the_logits():
    """Each class's logit is its bias plus the contributions (weight × concept score) of its clauses."""
    scores = np.random.default_rng(1).random((20, 3))
    z = from_pairs([("stripes", "cat", 2.0), ("snow", "cat", 0.5), ("spots", "dog", 1.5)], bias={"cat": 0.3, "dog": -0.2})
    parts = clause_contributions(scores, z, VOCAB)
    assert parts.shape == (20, 3)
    logits = ClauseLikelihood(VOCAB, CLASSES).logits(scores, z)
    for c, cls in enumerate(CLASSES):
        mine = [j for j, clause in enumerate(z.clauses) if clause.cls == cls]
        assert logits[:, c] == pytest.approx(z.bias[cls] + parts[:, mine].sum(1))
    stripes = next(j for j, clause in enumerate(z.clauses) if clause.concept == "stripes")
    assert parts[:, stripes] == pytest.approx(2.0 * scores[:, 0])
