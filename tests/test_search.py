"""L_M and the z* search on a synthetic stand-in for the Snow-and-Wolves concept scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from igcore import prior as P
from igcore.errors import InputError
from igcore.likelihood import ClauseLikelihood, log_likelihood, predict_proba
from igcore.search import HypothesisSearch, MAPProblem, SolverState, search_from_config, solve_map
from igcore.worlds.base import Vocabulary
from testkit.hypotheses import from_pairs
from testkit.scores import CLASSES, world_scores

ROOT = Path(__file__).resolve().parents[1]
NON_CORE = {"snowy_ground", "grassy_ground", "forest_floor", "bright_light", "dim_light", "animal_left", "animal_right"}


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary.from_csv(ROOT / "assets" / "snowwolf_vocabulary.csv")


@pytest.fixture(scope="module")
def ratings(vocab: Vocabulary) -> pd.DataFrame:
    return P.load_judgments_csv(P.SHIPPED_RATINGS, vocab, CLASSES)


@pytest.fixture(scope="module")
def prior(vocab: Vocabulary, ratings: pd.DataFrame) -> P.PriorModel:
    """The default Prior_M: shipped judgments, the configured encoder (MiniLM; hashing if unavailable)."""
    from igcore.config import PriorConfig

    config = PriorConfig()
    return P.fit_prior(config, P.load_judgments(config, vocab, CLASSES), vocab, CLASSES)


@pytest.fixture(scope="module")
def data(vocab: Vocabulary) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    return {rho: world_scores(vocab, 1000, rho, seed=1) for rho in (0.95, 1.0)}


@pytest.fixture(scope="module")
def fitted(prior: P.PriorModel, data: dict, vocab: Vocabulary) -> HypothesisSearch:
    s, y = data[0.95]
    return HypothesisSearch(prior=prior).fit(s, y, vocab, CLASSES)


def _concepts(search: HypothesisSearch) -> set[str]:
    return {c.concept for c in search.z_star_.clauses}


# ---------------------------------------------------------------------------------- L_M
def test_likelihood_is_softmax_of_clause_sums(vocab: Vocabulary) -> None:
    z = from_pairs([("amber_eyes", "wolf", 2.0), ("blue_eyes", "husky", 1.0)], bias={"wolf": 0.5})
    s = np.zeros((2, len(vocab)))
    s[0, vocab.index("amber_eyes")] = 1.0
    s[1, vocab.index("blue_eyes")] = 0.5
    p = predict_proba(s, z, vocab, CLASSES)
    logits = np.array([[0.0, 2.5], [0.5, 0.5]])
    expect = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert np.allclose(p, expect)
    ll = log_likelihood(s, np.array([1, 0]), z, vocab, CLASSES)
    assert ll == pytest.approx(np.log(expect[0, 1]) + np.log(expect[1, 0]))


@pytest.mark.parametrize(
    ("scores", "labels", "fragment"),
    [
        (np.zeros((3, 5)), np.zeros(3, int), "shape"),
        (np.full((3, 19), 1.5), np.zeros(3, int), "[0, 1]"),
        (np.full((3, 19), np.nan), np.zeros(3, int), "NaN"),
        (np.zeros((3, 19)), np.array([0, 1, 2]), "class indices"),
        (np.zeros((3, 19)), np.zeros(2, int), "length 3"),
    ],
)
def test_bad_scores_or_labels(vocab: Vocabulary, scores: np.ndarray, labels: np.ndarray, fragment: str) -> None:
    with pytest.raises(InputError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        ClauseLikelihood(vocab, CLASSES).log_likelihood(scores, labels, from_pairs([]))
    with pytest.raises(InputError):
        HypothesisSearch(prior=None, max_depth=0).fit(scores, labels, vocab, CLASSES)


# ---------------------------------------------------------------------------------- the MAP solver
def test_binary_fast_path_matches_the_general_softmax() -> None:
    gen = torch.Generator().manual_seed(0)
    s = torch.rand(50, 4, dtype=torch.float64, generator=gen)
    y = torch.randint(0, 2, (50,), generator=gen)
    l1 = torch.rand(4, 2, dtype=torch.float64, generator=gen)
    x = torch.rand(3, 10, dtype=torch.float64, generator=gen)
    fast = MAPProblem(s, y, 2, l1, 0.3, 0.01)
    slow = MAPProblem(s, y, 2, l1, 0.3, 0.01)
    slow.sign = None
    f1, n1, g1 = fast.fg(x)
    f2, n2, g2 = slow.fg(x)
    assert torch.allclose(f1, f2) and torch.allclose(n1, n2) and torch.allclose(g1, g2)
    # and the hand-written gradient is the true one
    xr = x.clone().requires_grad_(True)
    f3, _, _ = slow.fg(xr, want_grad=False)
    (auto,) = torch.autograd.grad(f3.sum(), xr)
    assert torch.allclose(auto, g2)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_binary_margins_from_sign_scaled_scores_are_bit_identical(dtype: torch.dtype) -> None:
    """Newton-sized two-class problems take the margins from S with its rows multiplied by -sign (one pass over
    (B, N) less): F, the negative log-likelihood, the gradient and the curvature are those of the plain product, bit
    for bit (the search's results must not move)."""
    gen = torch.Generator().manual_seed(5)
    s = torch.rand(300, 7, dtype=torch.float64, generator=gen).to(dtype)
    y = torch.randint(0, 2, (300,), generator=gen)
    l1 = torch.rand(7, 2, dtype=torch.float64, generator=gen)
    fast, plain = MAPProblem(s, y, 2, l1, 0.3, 0.01), MAPProblem(s, y, 2, l1, 0.3, 0.01)
    assert fast.neg_s is not None
    plain.neg_s = None
    for b in (1, 5, 33):
        x = torch.randn(b, 16, dtype=torch.float64, generator=gen)
        for got, expected in zip(fast.fg_curvature(x), plain.fg_curvature(x), strict=True):
            assert torch.equal(got, expected)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_hessian_is_the_true_one(n_classes: int) -> None:
    """The Newton steps' Hessian (per-example curvature from the same pass as F) is autograd's Hessian of F."""
    gen = torch.Generator().manual_seed(2)
    s = torch.rand(60, 5, dtype=torch.float64, generator=gen)
    y = torch.randint(0, n_classes, (60,), generator=gen)
    problem = MAPProblem(s, y, n_classes, torch.rand(5, n_classes, dtype=torch.float64, generator=gen), 0.3, 0.01)
    x = torch.rand(2, 6 * n_classes, dtype=torch.float64, generator=gen)
    _, _, _, curvature = problem.fg_curvature(x)
    h = problem.hessian(curvature)
    assert torch.allclose(problem.hessian(curvature, single=True), h, rtol=1e-5, atol=1e-6)
    for b in range(2):
        auto = torch.autograd.functional.hessian(lambda v: problem.fg(v[None], want_grad=False)[0][0], x[b])
        assert torch.allclose(h[b], auto, atol=1e-9)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_resolve_from_a_repriced_solver_state(n_classes: int) -> None:
    """A re-solve under new penalties starts from the previous solves' state, repriced (the F and gradient a fresh
    evaluation gives there) and reaches the cold solve's minimiser in fewer evaluations; a problem without a state in
    the same batch starts from its own start."""
    gen = torch.Generator().manual_seed(3)
    s = torch.rand(400, 6, dtype=torch.float64, generator=gen)
    y = torch.randint(0, n_classes, (400,), generator=gen)
    l1 = 5 * torch.rand(6, n_classes, dtype=torch.float64, generator=gen)
    before = MAPProblem(s, y, n_classes, l1, 0.3, 1e-4)
    after = MAPProblem(s, y, n_classes, l1 * torch.linspace(0.5, 1.5, 6 * n_classes, dtype=torch.float64).view(6, n_classes), 0.2, 1e-3)
    assert after.newton and after.same_data(before)
    assert not after.same_data(MAPProblem(s, torch.roll(y, 1), n_classes, l1, 0.3, 1e-4))
    allowed = torch.ones(3, 6, n_classes, dtype=torch.bool)
    allowed[1, :2], allowed[2, 3:] = False, False
    w0, b0 = torch.zeros(3, 6, n_classes, dtype=torch.float64), torch.zeros(3, n_classes, dtype=torch.float64)
    first = solve_map(before, allowed, w0, b0)
    assert first.state is not None and bool(first.state.has_hessian.all())
    state = after.reprice(before, first.state)
    f, _, g = after.fg(state.x)
    assert torch.allclose(state.f, f, rtol=1e-12, atol=0) and torch.allclose(state.grad, g, rtol=0, atol=1e-9)
    cold = solve_map(after, allowed, w0, b0)
    warm = solve_map(after, allowed, w0, b0, state=state)
    assert warm.n_evals < cold.n_evals
    state.has_hessian[2] = False
    mixed = solve_map(after, allowed, w0, b0, state=state)
    for res in (warm, mixed):
        assert torch.allclose(res.objective, cold.objective, rtol=1e-10, atol=0)
        assert torch.allclose(res.weights, cold.weights, rtol=0, atol=1e-4) and bool(((res.weights > 0) == (cold.weights > 0)).all())


def test_solver_state_rows_gathered_from_several_batches() -> None:
    """A warm re-solve's carried state is gathered from the rows of several earlier batches (by reference, no per-row
    copies): each row is exactly its source row, and a set without a state gets zeros and no Hessian."""
    gen = torch.Generator().manual_seed(4)

    def state(b: int) -> SolverState:
        return SolverState(torch.rand(b, 6, dtype=torch.float64, generator=gen), torch.rand(b, dtype=torch.float64, generator=gen),
                           torch.rand(b, dtype=torch.float64, generator=gen), torch.rand(b, 6, dtype=torch.float64, generator=gen),
                           torch.rand(b, 6, 6, dtype=torch.float64, generator=gen), torch.rand(b, generator=gen) < 0.7)

    first, second = state(3), state(4)
    rows = [(second, 3), None, (first, 0), (second, 1), (first, 2), None]
    got = SolverState.gather(rows)
    for name in ("x", "f", "nll", "grad", "hessian", "has_hessian"):
        column = getattr(got, name)
        assert column.shape[0] == len(rows) and column.dtype == getattr(first, name).dtype
        for i, row in enumerate(rows):
            expected = getattr(row[0], name)[row[1]] if row is not None else torch.zeros_like(getattr(first, name)[0])
            assert torch.equal(column[i], expected), (name, i)


@pytest.mark.parametrize("method", ["newton", "lbfgs"])
def test_map_is_exact_against_scipy(vocab: Vocabulary, method: str) -> None:
    """Both solvers (projected Newton for K this small, projected L-BFGS above MAPProblem.newton's bounds) reach
    scipy's minimum."""
    from scipy.optimize import minimize

    s, y = world_scores(vocab, 300, 0.95, seed=3)
    st = torch.as_tensor(s, dtype=torch.float64)
    l1 = torch.rand(len(vocab), 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 20
    problem = MAPProblem(st, torch.as_tensor(y), 2, l1, 0.5, 1e-4)
    if method == "lbfgs":
        problem.NEWTON_MAX_ELEMENTS = 0
    assert problem.newton == (method == "newton")
    allowed = torch.ones(1, len(vocab), 2, dtype=torch.bool)
    res = solve_map(problem, allowed, torch.zeros(1, len(vocab), 2), torch.zeros(1, 2), tol=1e-10)

    def fun(v: np.ndarray) -> tuple[float, np.ndarray]:
        x = torch.as_tensor(v[None], dtype=torch.float64)
        f, _, g = problem.fg(x)
        return float(f[0]), g[0].numpy()

    kc = len(vocab) * 2
    ref = minimize(fun, np.zeros(kc + 2), jac=True, method="L-BFGS-B", bounds=[(0, None)] * kc + [(None, None)] * 2,
                   options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 5000})
    assert float(res.objective[0]) == pytest.approx(ref.fun, abs=1e-6)
    assert float(res.objective[0]) <= ref.fun + 1e-6
    assert (res.weights >= 0).all() and (res.weights == 0).any()  # exact zeros: the weighted L1 selects


# ---------------------------------------------------------------------------------- z*
@pytest.mark.parametrize("rho", [0.95, 1.0])
def test_z_star_uses_animal_features_not_the_background(prior: P.PriorModel, data: dict, vocab: Vocabulary, rho: float) -> None:
    s, y = data[rho]
    search = HypothesisSearch(prior=prior).fit(s, y, vocab, CLASSES)
    kinds = {c.concept: vocab[c.concept].kind for c in search.z_star_.clauses}
    assert set(kinds.values()) == {"core"}, search.z_star_.render(vocab, CLASSES)
    for cls in CLASSES:
        assert any(c.cls == cls for c in search.z_star_.clauses), search.z_star_.render(vocab, CLASSES)
    s_test, y_test = world_scores(vocab, 2000, rho, seed=7, balanced=True)
    assert (search.predict(s_test) == y_test).mean() > 0.95


def test_no_prior_learns_the_background_at_rho_1(data: dict, vocab: Vocabulary) -> None:
    s, y = data[1.0]
    search = HypothesisSearch(prior=None).fit(s, y, vocab, CLASSES)
    assert _concepts(search) & {"snowy_ground", "grassy_ground"}, search.z_star_.render(vocab, CLASSES)


def test_reversed_judgments_make_z_star_use_the_background(ratings: pd.DataFrame, data: dict, vocab: Vocabulary, tmp_path: Path) -> None:
    path = P.write_ratings_csv(ratings.assign(rating=6 - ratings["rating"]), tmp_path / "reversed.csv")
    reversed_prior = P.PriorModel(encoder="hashing").fit(P.load_judgments_csv(path, vocab, CLASSES), vocab, CLASSES)
    s, y = data[0.95]
    search = HypothesisSearch(prior=reversed_prior).fit(s, y, vocab, CLASSES)
    assert _concepts(search) & {"snowy_ground", "grassy_ground"}, search.z_star_.render(vocab, CLASSES)


def test_ranked_list(fitted: HypothesisSearch, vocab: Vocabulary) -> None:
    ranked = fitted.ranked_
    assert len(ranked) >= 10
    post = np.array([r.posterior for r in ranked])
    assert post.sum() == pytest.approx(1.0)
    lps = [r.log_posterior for r in ranked]
    assert lps == sorted(lps, reverse=True)
    assert np.all(np.diff(post) <= 1e-12)
    assert len({r.hypothesis.structure for r in ranked}) == len(ranked)
    assert ranked[0].hypothesis == fitted.z_star_
    lik = ClauseLikelihood(vocab, CLASSES)
    s, y = world_scores(vocab, 1000, 0.95, seed=1)
    for r in ranked[:3]:
        assert r.log_posterior == pytest.approx(r.log_prior + r.log_likelihood)
        assert r.log_likelihood == pytest.approx(lik.log_likelihood(s, y, r.hypothesis), rel=1e-6)
    records = fitted.ranked_records()
    assert set(records[0]) >= {"clauses", "log_prior", "log_likelihood", "log_posterior", "posterior"}
    assert set(records[0]["clauses"][0]) == {"concept", "kind", "class", "weight", "text"}


def test_predictions(fitted: HypothesisSearch, vocab: Vocabulary) -> None:
    s, _ = world_scores(vocab, 50, 0.5, seed=9, balanced=True)
    for p in (fitted.predict_proba(s), fitted.posterior_predictive(s)):
        assert p.shape == (50, 2)
        assert np.allclose(p.sum(1), 1.0)
    assert np.allclose(fitted.predict_proba(s), predict_proba(s, fitted.z_star_, vocab, CLASSES))


def test_warm_start_and_float32_agree(prior: P.PriorModel, data: dict, vocab: Vocabulary, fitted: HypothesisSearch) -> None:
    s, y = data[0.95]
    warm = HypothesisSearch(prior=prior, warm_start=True).fit(s, y, vocab, CLASSES)
    first = warm.n_evals_
    warm.fit(s, y, vocab, CLASSES)
    assert warm.z_star_.structure == fitted.z_star_.structure
    assert warm.n_evals_ < first  # every clause set starts at its own optimum
    f32 = HypothesisSearch(prior=prior, dtype="float32").fit(torch.as_tensor(s), y, vocab, CLASSES)
    assert f32.z_star_.structure == fitted.z_star_.structure


def test_warm_resolve_after_each_new_rating_equals_cold_solve(data: dict, vocab: Vocabulary) -> None:
    """Live prior editing: after each of several new ratings, one after the other, the warm re-solve gives the cold
    solve's z* and ranked list (same clause sets in the same order, the same weights and log posteriors)."""
    s, y = data[0.95]
    ratings = P.load_judgments_csv(P.SHIPPED_RATINGS, vocab, CLASSES)
    pairwise = P.load_pairwise_csv(P.SHIPPED_PAIRWISE, vocab, CLASSES)
    warm = HypothesisSearch(prior=P.PriorModel(encoder="hashing").fit(ratings, vocab, CLASSES, pairwise), warm_start=True)
    warm.fit(s, y, vocab, CLASSES)
    structures = set()
    for i, (concept, cls, rating) in enumerate([("snowy_ground", "wolf", 5), ("rounded_ears", "wolf", 5), ("long_snout", "wolf", 1)]):
        ratings = pd.concat([ratings, pd.DataFrame([[f"new{i}", concept, cls, rating]], columns=list(P.RATING_COLUMNS))])
        warm.prior = P.PriorModel(encoder="hashing").fit(ratings, vocab, CLASSES, pairwise)
        warm.fit(s, y, vocab, CLASSES)
        cold = HypothesisSearch(prior=warm.prior).fit(s, y, vocab, CLASSES)
        assert warm.n_solved_ == cold.n_solved_  # the same search path (the sets solved differ by their starts only)
        assert [r.hypothesis.structure for r in warm.ranked_] == [r.hypothesis.structure for r in cold.ranked_]
        assert np.allclose([r.log_posterior for r in warm.ranked_], [r.log_posterior for r in cold.ranked_], rtol=0, atol=1e-6)
        for a, b in zip(warm.ranked_, cold.ranked_, strict=True):
            wa, ba = a.hypothesis.to_matrix(vocab, CLASSES)
            wb, bb = b.hypothesis.to_matrix(vocab, CLASSES)
            assert np.allclose(wa, wb, rtol=0, atol=1e-4) and np.allclose(ba, bb, rtol=0, atol=1e-4)
        structures.add(tuple(r.hypothesis.structure for r in cold.ranked_))
    assert len(structures) > 1  # the edits moved the ranked list: the comparison is not of one fixed answer


def test_three_classes_and_config(vocab: Vocabulary) -> None:
    from igcore.config import SearchConfig

    rng = np.random.default_rng(0)
    s = rng.random((300, len(vocab))).astype(np.float32)
    y = np.argmax(s[:, :3] * 3 + rng.normal(size=(300, 3)), axis=1)
    search = search_from_config(SearchConfig(), None, device="cpu")
    search.max_depth = 1
    search.fit(s, y, vocab, ["a", "b", "c"])
    assert search.predict_proba(s).shape == (300, 3)
    assert {c.concept for c in search.z_star_.clauses} & set(vocab.ids[:3])


def test_search_parameter_errors(data: dict, vocab: Vocabulary) -> None:
    s, y = data[0.95]
    with pytest.raises(InputError, match="beam_width"):
        HypothesisSearch(beam_width=0).fit(s, y, vocab, CLASSES)
    with pytest.raises(InputError, match="dtype"):
        HypothesisSearch(dtype="half").fit(s, y, vocab, CLASSES)
