"""Which clause to ask people about next: unrated clauses ordered by how likely an answer changes z*.

A real vocabulary is large (CUB: 312 attributes, 624 clauses for two classes) and Prior_M generalises
only weakly to clauses nobody rated, so nobody rates them all. This module orders the unrated clauses
(concept x class) so that the answers most likely to change z* are asked first, and says when further
answers have stopped changing it. It works on a fitted :class:`~igcore.search.HypothesisSearch` whose
prior is a fitted :class:`~igcore.prior.PriorModel`, plus D's concept scores and labels; no global state.

**The score: the probability that one answer changes z*'s clause set.** Every clause i (concept k,
class c) costs ``l1_i = strength * -log p_i`` per unit weight in the MAP objective F
(:mod:`igcore.search`). For an unrated clause j and each answer ``a`` in 1..5 the score computes, in
closed form, what Prior_M would do with that one more rating:

1. **the text model**: Prior_M's ridge regression from clause text to mean rating gains one row; the new
   text rating of *every* clause is linear in ``a`` (Sherman-Morrison on the centred ridge, exact, see
   :class:`_TextModel`). With ``concept`` features both classes of a concept share their text, so rating
   "cone bill => waterbird" 1 also lowers the guess for "cone bill => landbird" - often the larger effect;
2. **the shrinkage rule**: predicted ratings ``(n_i m_i + [a] + kappa t_i') / (n_i + [1] + kappa)``;
3. **the calibration**: the logistic map from predicted rating to ``P(endorse)`` refitted on every
   individual rating plus the new one (batched Newton on sklearn's objective, :func:`_calibration`), so
   ``p_i' = sigmoid(slope' (r_i' - 3) + intercept')`` - every clause's cost moves, and for a near-tie of
   hypotheses even a rating of a distractor can change z*. Hence every clause's cost change
   ``Delta_i(a) = l1_i' - l1_i``.

Whether that changes z*'s clause set S is then judged from the solved MAP, without a re-solve:

* **enter / leave** (every clause i): ``gain_i(cost) = NLL_i(0) - min_{w >= 0} [NLL_i(w) + cost w + l2 w^2]``
  is what clause i is worth at a given cost per unit weight, where ``NLL_i(w)`` is D's negative
  log-likelihood with clause i's weight set to ``w``, the others as in z* and the bias of its class
  re-optimised (the profile of F along the clause, computed once on a grid of weights). An unused clause
  enters when ``gain_i(l1_i + Delta_i) > c+_i``, the structure cost of one more clause
  (``structure(S) - structure(S + i)``, :meth:`PriorModel.structure_log_prior`); a used one leaves when
  its gain falls below ``c-_i``, the structure prior that dropping it gains (or its best weight is 0).
* **overtake** (every ranked alternative z_r): by the envelope theorem (Danskin) a hypothesis's optimal
  log posterior moves by ``-sum_i Delta_i W_r,i`` to first order, so z_r overtakes z* when
  ``m_r - sum_i Delta_i (W*_i - W_r,i) < 0``, ``m_r = log post(z*) - log post(z_r) >= 0``: the swaps of
  several clauses that one-clause tests miss.

The answer itself is uncertain: ``a ~ Normal(t_j, sd_j^2)`` rounded to 1..5, with ``sd_j^2 = min(sd_text^2
(1 + lev_j), 2) + sd_rater^2``: the text model's out-of-concept error (Prior_M's leave-one-concept-out MSE,
pooled with the variance of a uniform 1-5 answer, 2, by ``pseudo_concepts``) times the ridge leverage of
the clause's text (Bayesian linear regression's predictive variance), never above the uniform answer's,
plus the spread of single raters around a clause's mean. The score is ``sum_a P(a) [answer a changes z*]``;
ties (mostly clauses no answer can flip) are broken by ``closeness``, the nats by which the nearest answer
misses changing z*. So clauses in z*, near its alternatives or strongly pulled by the likelihood, whose
plausibility is uncertain, come first.

So Prior_M after one more rating is computed exactly (up to the Newton tolerance); what is approximate is
the MAP's response: the profiles hold the other clauses' weights fixed, and the alternatives move to
first order. docs/ELICIT.md measures how often the fast test agrees with exact re-solves, and the time of
both.

**The stopping signal** (:func:`stopping_signal`): from the sequence of z*'s clause sets after each
batch of answers, how many answers have been given since z* last changed, and whether the last
``window`` answers changed it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, ndtr

from igcore.hypothesis import Hypothesis, clause_sentence
from igcore.likelihood import check_labels, check_scores, softmax
from igcore.prior.judgments import validate_ratings
from igcore.prior.model import PriorModel

#: Questions the Prior page asks per form (the page re-ranks after each form).
DEFAULT_BATCH = 5

#: The stopping signal's window: z* is called settled after this many answers without a change.
STOP_WINDOW = 5

#: Weights at which each clause's profile of F is evaluated (0 to max(8, 2 max w*), quadratically spaced).
GRID_POINTS = 49

#: Variance of an answer drawn uniformly from 1..5: what is known about a rating before any is given.
UNIFORM_RATING_VAR = 2.0

#: Columns of :func:`question_order`, best question first.
ORDER_COLUMNS = (
    "concept", "class", "text", "kind", "in_z_star", "weight", "predicted_rating", "rating_sd",
    "flip_answers", "flip_probability", "closeness", "data_pull", "why",
)

Support = frozenset[tuple[str, str]]


def support_of(hypothesis: Hypothesis | Iterable[tuple[str, str]]) -> Support:
    """The clause set of a hypothesis (``(concept, class)`` pairs), whatever its weights."""
    if isinstance(hypothesis, Hypothesis):
        return hypothesis.structure
    return frozenset((str(k), str(c)) for k, c in hypothesis)


# ------------------------------------------------------------------------------------------ the score
def _rating_spread(ratings: pd.DataFrame | None) -> float:
    """Pooled within-clause variance of individual ratings (how far one rater strays from a clause's mean)."""
    if ratings is None or len(ratings) == 0:
        return 0.0
    grouped = ratings.groupby(["concept", "class"])["rating"]
    dof = float((grouped.count() - 1).clip(lower=0).sum())
    if dof <= 0:
        return 0.0
    return float(grouped.apply(lambda r: ((r - r.mean()) ** 2).sum()).sum() / dof)


def _text_variance(prior: PriorModel, pseudo_concepts: float) -> float:
    """The text model's out-of-concept squared error, pooled with the uniform answer's variance."""
    loco = prior.loco_error_
    n = int(loco.get("n_concepts") or 0)
    rmse = loco.get("rmse")
    if rmse is None or not np.isfinite(rmse) or n < 3:
        return UNIFORM_RATING_VAR
    return float((n * rmse**2 + pseudo_concepts * UNIFORM_RATING_VAR) / (n + pseudo_concepts))


class _TextModel:
    """Prior_M's text regression (step 2 of :class:`PriorModel`) as a linear smoother, so that the effect
    of one more rated clause on every clause's text rating has a closed form.

    sklearn's ``Ridge`` with an intercept centres the rows: ``pred(q) = t_mean + (q - x_mean)' M^-1 X_c' t_c``
    with ``M = X_c' X_c + alpha I``. A new row ``(x, a)`` updates the mean and the centred scatter by a
    rank-one term ``u u'`` with ``u = sqrt(n / (n + 1)) (x - x_mean)``, so Sherman-Morrison gives the new
    predictions exactly, and they are linear in ``a``. ``M^-1`` is applied through the n x n Gram matrix
    (Woodbury), as the rows are few and the features many. Prior_M's own special case is kept: with fewer
    than two rated clauses or a single rated concept, the text rating is the mean of the rated clauses.
    """

    def __init__(self, prior: PriorModel, vocabulary: Any, classes: Sequence[str]) -> None:
        feats = prior._features(vocabulary, classes)  # (K, C, D): the very features Prior_M's ridge uses
        self.q = feats.reshape(-1, feats.shape[-1])
        rated = prior.rated_.reshape(-1)
        self.concept = np.repeat(np.arange(feats.shape[0]), feats.shape[1])
        self.t = prior.mean_ratings_.reshape(-1)[rated]
        x = self.q[rated]
        self.n = len(x)
        self.alpha = max(float(prior.ridge_alpha), 1e-8)
        self.rated_concepts = set(self.concept[rated].tolist())
        if self.n:
            self.x_mean, self.t_mean = x.mean(0), float(self.t.mean())
            self.xc = x - self.x_mean
            self.gram = self.xc @ self.xc.T + self.alpha * np.eye(self.n)
            self.b = self.xc.T @ (self.t - self.t_mean)

    def _m_inv(self, v: np.ndarray) -> np.ndarray:
        """``M^-1 v`` for vectors ``v`` (..., D): ``(v - X_c' G^-1 X_c v) / alpha`` with ``G = X_c X_c' + alpha I``."""
        inner = np.linalg.solve(self.gram, self.xc @ v.T)  # (n, ...)
        return (v - (self.xc.T @ inner).T) / self.alpha

    def leverage(self) -> np.ndarray:
        """``1/n + (q - x_mean)' M^-1 (q - x_mean)`` per clause: the ridge's predictive-variance factor."""
        if self.n < 2:
            return np.zeros(len(self.q))
        qc = self.q - self.x_mean
        return 1.0 / self.n + np.maximum(np.einsum("id,id->i", qc, self._m_inv(qc)), 0.0)

    def with_row(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        """Text ratings of every clause (unclipped) after clause ``j`` is rated ``a``: ``p0 + p1 * a``."""
        n = self.n
        if n + 1 < 2 or len(self.rated_concepts | {int(self.concept[j])}) < 2:  # Prior_M: the mean of the rated clauses
            total = float(self.t.sum()) if n else 0.0
            return np.full(len(self.q), total / (n + 1)), np.full(len(self.q), 1.0 / (n + 1))
        f = n / (n + 1)
        dx = self.q[j] - self.x_mean
        u = np.sqrt(f) * dx
        mu = self._m_inv(u)
        denominator = 1.0 + u @ mu
        # b' = b + f dx (a - t_mean): the a-free part and the coefficient of a, each through M'^-1 (Sherman-Morrison)
        rhs = np.stack([self.b - f * dx * self.t_mean, f * dx])
        solved = self._m_inv(rhs)
        w = solved - np.outer(solved @ u, mu) / denominator
        qc = self.q - (self.x_mean + dx / (n + 1))
        p0 = self.t_mean * n / (n + 1) + qc @ w[0]
        p1 = 1.0 / (n + 1) + qc @ w[1]
        return p0, p1


def _coordinate_curves(s: np.ndarray, y: np.ndarray, w_star: np.ndarray, b_star: np.ndarray, grid: np.ndarray,
                       chunk: int = 16, newton: int = 5) -> np.ndarray:
    """``NLL_j(w)`` for every clause j = (k, c) and weight ``w`` in ``grid``: D's negative log-likelihood when
    clause j's weight is set to ``w``, the other clauses stay as in z*, and the bias of class c is
    re-optimised (Newton). Shape (K * C, len(grid)); the exact profile of F along one clause, which the
    enter/leave tests minimise with the clause's cost per unit weight added."""
    n, k_n = s.shape
    c_n = w_star.shape[1]
    logits = s @ w_star + b_star  # (N, C)
    out = np.empty((k_n, c_n, len(grid)))
    for c in range(c_n):
        others = np.delete(logits, c, axis=1)
        rest = np.logaddexp.reduce(others, axis=1) if c_n > 2 else others[:, 0]  # log-sum-exp of the other classes
        is_c = (y == c).astype(np.float64)
        picked_other = np.where(y == c, 0.0, logits[np.arange(n), y])
        for lo in range(0, k_n, chunk):
            ks = np.arange(lo, min(lo + chunk, k_n))
            base = logits[:, c][None, None, :] + (grid[None, :, None] - w_star[ks, c][:, None, None]) * s[:, ks].T[:, None, :]
            beta = np.zeros(base.shape[:2])
            for _ in range(newton):
                p = expit(base + beta[..., None] - rest)
                g = (p - is_c).sum(-1)
                h = (p * (1 - p)).sum(-1) + 1e-12
                beta -= g / h
            z = base + beta[..., None]
            nll = np.logaddexp(rest, z) - (is_c * z + picked_other)
            out[ks, c] = nll.sum(-1)
    return out.reshape(k_n * c_n, len(grid))


def _profile_gain(curves: np.ndarray, grid: np.ndarray, cost: np.ndarray, l2: float) -> np.ndarray:
    """``NLL_j(0) - min_{w >= 0} [NLL_j(w) + cost_j w + l2 w^2]`` (>= 0): what clause j is worth, in nats, at a
    cost ``cost`` (..., KC) per unit weight. The grid minimum is refined by a parabola through its neighbours."""
    values = curves + cost[..., None] * grid + l2 * grid**2  # (..., KC, G)
    at = values.argmin(-1)
    interior = (at > 0) & (at < len(grid) - 1)
    i = np.clip(at, 1, len(grid) - 2)
    x0, x1, x2 = grid[i - 1], grid[i], grid[i + 1]
    y0, y1, y2 = (np.take_along_axis(values, (i + d)[..., None], -1)[..., 0] for d in (-1, 0, 1))
    # the parabola through an interior minimum and its neighbours (the grid is not uniform); its vertex
    d01 = (y1 - y0) / (x1 - x0)
    a = ((y2 - y1) / (x2 - x1) - d01) / (x2 - x0)
    vertex = np.clip((x0 + x1) / 2 - d01 / (2 * np.maximum(a, 1e-300)), x0, x2)
    refined = np.where(interior & (a > 0), y0 + (vertex - x0) * d01 + (vertex - x0) * (vertex - x1) * a, y1)
    best = np.minimum(values.min(-1), refined)
    return np.maximum(curves[..., 0] - best, 0.0)


def _calibration(x: np.ndarray, endorse: np.ndarray, start: tuple[float, float], newton: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """Prior_M's calibration refitted, for a batch of data sets at once: ``P(endorse) = sigmoid(slope x +
    intercept)`` with ``x`` = predicted rating - 3, by Newton's method on sklearn's ``LogisticRegression(C=1)``
    objective (log-loss + ``slope^2 / 2``, intercept free). ``x``, ``endorse``: (B, M). Prior_M's fallbacks
    apply: ``(1.5, 0)`` when every rating endorses or none does, or when the slope is not positive."""
    theta = np.broadcast_to(np.asarray(start, dtype=np.float64), (x.shape[0], 2)).copy()
    sign = 2.0 * endorse - 1.0
    for _ in range(newton):
        margin = sign * (theta[:, :1] * x + theta[:, 1:])
        q = expit(-margin)  # derivative of softplus(-margin)
        r = q * (1 - q)
        g = np.stack([-(sign * q * x).sum(1) + theta[:, 0], -(sign * q).sum(1)], 1)
        h00, h01, h11 = (r * x * x).sum(1) + 1.0, (r * x).sum(1), r.sum(1) + 1e-12
        det = h00 * h11 - h01 * h01
        step = np.stack([(h11 * g[:, 0] - h01 * g[:, 1]) / det, (h00 * g[:, 1] - h01 * g[:, 0]) / det], 1)
        theta -= step
        if np.abs(step).max(initial=0.0) < 1e-10:
            break
    n_endorse = endorse.sum(1)
    fallback = (n_endorse == 0) | (n_endorse == endorse.shape[1]) | (theta[:, 0] <= 0)
    return np.where(fallback, 1.5, theta[:, 0]), np.where(fallback, 0.0, theta[:, 1])


def answer_cost_changes(prior: PriorModel, ratings: pd.DataFrame | None = None) -> tuple[np.ndarray, np.ndarray, _TextModel]:
    """What one more rating of each unrated clause, 1 to 5, does to every clause's cost in the MAP objective.

    Prior_M refitted with the rating, in closed form: the text model (:class:`_TextModel`), the shrinkage
    rule and - given the individual ``ratings`` Prior_M was fitted on - the calibration (:func:`_calibration`).

    Returns:
        ``unrated`` (U,) flat clause indices (``k * C + c``), ``delta`` (U, 5, K * C): the change of
        ``strength * -log p`` of every clause when clause ``unrated[u]`` is rated ``a + 1``, and the text model.
    """
    vocabulary, classes = prior.vocabulary_, list(prior.classes_)
    if ratings is not None:
        ratings = validate_ratings(ratings, vocabulary, classes, allow_empty=True)
    names = [(con.id, cl) for con in vocabulary.concepts for cl in classes]
    strength = float(prior.strength)
    l1 = strength * -np.log(prior.plausibility_.reshape(-1))
    text_model = _TextModel(prior, vocabulary, classes)
    cal = prior.calibration_
    slope, intercept = float(cal["slope"]), float(cal["intercept"])
    kappa = float(prior.shrinkage)
    n_i = prior.n_per_clause_.reshape(-1)
    sum_i = np.nan_to_num(prior.mean_ratings_.reshape(-1)) * n_i
    lo_p, hi_p = float(prior.min_plausibility), 1.0 - float(prior.min_plausibility)
    answers = np.arange(1, 6, dtype=np.float64)
    threshold = int(prior.endorse_threshold)
    if ratings is not None and len(ratings):  # the individual ratings the calibration is fitted on
        index = {name: i for i, name in enumerate(names)}
        rated_clause = np.array([index[(k, c)] for k, c in zip(ratings["concept"], ratings["class"], strict=True)])
        endorsed = (ratings["rating"].to_numpy() >= threshold).astype(np.float64)
    else:
        rated_clause, endorsed = np.zeros(0, dtype=np.int64), np.zeros(0)
    new_endorsed = (answers >= threshold).astype(np.float64)

    unrated = np.nonzero(~prior.rated_.reshape(-1))[0]
    deltas = np.empty((len(unrated), 5, len(names)))
    for u, j in enumerate(unrated):
        p0, p1 = text_model.with_row(j)
        text = np.clip(p0[None, :] + p1[None, :] * answers[:, None], 1.0, 5.0)  # (5, KC)
        own = np.zeros_like(text)
        own[:, j] = 1.0
        count = n_i[None, :] + own
        rating = np.clip((sum_i[None, :] + own * answers[:, None] + kappa * text) / np.maximum(count + kappa, 1e-12), 1.0, 5.0)
        rating = np.where(count > 0, rating, text)  # Prior_M: an unrated clause takes its text rating
        if ratings is not None:  # the calibration refitted on every rating, the new one included
            x = np.concatenate([rating[:, rated_clause], rating[:, j : j + 1]], 1) - 3.0
            e = np.concatenate([np.broadcast_to(endorsed, (5, len(endorsed))), new_endorsed[:, None]], 1)
            a_slope, a_intercept = _calibration(x, e, (slope, intercept))
        else:
            a_slope, a_intercept = np.full(5, slope), np.full(5, intercept)
        p = np.clip(expit(a_slope[:, None] * (rating - 3.0) + a_intercept[:, None]), lo_p, hi_p)
        deltas[u] = strength * -np.log(p) - l1[None, :]
    return unrated, deltas, text_model


def _answer_probabilities(mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """P(answer = 1..5) (U, 5): Normal(mean, sd) discretised to the nearest rating, tails on 1 and 5."""
    edges = np.array([-np.inf, 1.5, 2.5, 3.5, 4.5, np.inf])
    cdf = ndtr((edges[None, :] - mean[:, None]) / sd[:, None])
    return np.diff(cdf, axis=1)


def question_order(
    search: Any,
    scores: Any,
    labels: Any,
    ratings: pd.DataFrame | None = None,
    pseudo_concepts: float = 2.0,
) -> pd.DataFrame:
    """The unrated clauses, the one whose answer most probably changes z*'s clause set first (module docstring).

    Args:
        search: a fitted :class:`~igcore.search.HypothesisSearch` whose ``prior`` is a fitted
            :class:`~igcore.prior.PriorModel` (the state after the current judgments).
        scores: D's concept scores (N, K) the search was fitted on; ``labels``: D's labels (N,).
        ratings: the individual ratings Prior_M was fitted on (for the calibration's refit and the spread of
            single raters); None: the calibration is held fixed and the spread taken as 0.
        pseudo_concepts: weight of the uniform answer's variance against the leave-one-concept-out error.

    Returns:
        One row per unrated clause (:data:`ORDER_COLUMNS`), sorted by ``flip_probability`` and then by
        ``closeness``: ``flip_answers`` are the ratings 1-5 that would change z*'s clause set;
        ``closeness`` (nats) is how near the answer that comes nearest brings z* to changing (>= 0: it
        changes); ``data_pull`` is ``-dNLL/dW_j`` at z* (how much the likelihood wants the clause);
        ``why`` says what changes for the most probable such answer.
    """
    prior = search.prior
    if not isinstance(prior, PriorModel):
        raise TypeError("question_order needs a search fitted with a PriorModel prior (not the flat ablation)")
    vocabulary, classes = search.vocabulary_, list(search.classes_)
    k_n, c_n = len(vocabulary), len(classes)
    s = check_scores(scores, k_n).astype(np.float64)
    y = check_labels(labels, s.shape[0], c_n)
    names = [(con.id, cl) for con in vocabulary.concepts for cl in classes]

    # --- the solved MAP: each clause's profile of F, the structure costs, the ranked alternatives
    l1, l2 = prior.clause_penalties(vocabulary, classes)
    w_star, b_star = search.z_star_.to_matrix(vocabulary, classes)
    support = w_star > 0
    proba = softmax(s @ w_star + b_star)
    data_grad = s.T @ (proba - np.eye(c_n)[y])  # dNLL/dW (K, C)
    # denser near 0, where whether a clause is worth any weight at all is decided
    grid = max(8.0, 2.0 * float(w_star.max(initial=0.0))) * np.linspace(0.0, 1.0, GRID_POINTS) ** 2
    curves = _coordinate_curves(s, y, w_star, b_star, grid)
    base = prior.structure_log_prior(support)
    toggled = np.empty(k_n * c_n)
    for i in range(k_n * c_n):
        flip = support.reshape(-1).copy()
        flip[i] = not flip[i]
        toggled[i] = prior.structure_log_prior(flip.reshape(k_n, c_n))
    in_s = support.reshape(-1)
    w = w_star.reshape(-1)
    l1_flat = l1.reshape(-1)
    cost_add = np.maximum(base - toggled, 0.0)  # structure prior lost by adding an unused clause
    gain_drop = np.maximum(toggled - base, 0.0)  # structure prior gained by dropping a used clause
    alts = search.ranked_[1:]
    margins0 = np.array([max(search.ranked_[0].log_posterior - r.log_posterior, 0.0) for r in alts])
    diffs = np.stack([w - r.hypothesis.to_matrix(vocabulary, classes)[0].reshape(-1) for r in alts], 1) if alts else np.zeros((len(w), 0))

    def clause_margins(delta: np.ndarray) -> np.ndarray:
        """Per clause (..., KC): nats by which its membership in z* survives a cost change ``delta`` (< 0: flips)."""
        gain = _profile_gain(curves, grid, l1_flat + delta, l2)
        keep = np.where(gain > 1e-9, gain - gain_drop, -1e-9)  # a used clause whose best weight is 0 leaves
        return np.where(in_s, keep, cost_add - gain)

    now = clause_margins(np.zeros_like(w))
    offset = np.minimum(now, 0.0)  # where the profile disagrees with the search, z* as found is the reference

    # --- every answer's effect on every clause's cost (Prior_M refitted with one more rating, in closed form)
    unrated, deltas, text_model = answer_cost_changes(prior, ratings)
    flips = np.zeros((len(unrated), 5), dtype=bool)
    close = np.full((len(unrated), 5), -np.inf)
    why = np.full((len(unrated), 5), "", dtype=object)
    for u, delta in enumerate(deltas):
        per_clause = clause_margins(delta) - offset
        worst = per_clause.argmin(1)
        worst_margin = per_clause[np.arange(5), worst]
        overtake = margins0[None, :] - delta @ diffs if diffs.shape[1] else np.full((5, 1), np.inf)
        worst_alt = overtake.argmin(1)
        alt_margin = overtake[np.arange(5), worst_alt]
        flips[u] = (worst_margin < 0) | (alt_margin < 0)
        close[u] = -np.minimum(worst_margin, alt_margin)
        for v in range(5):
            if alt_margin[v] < worst_margin[v]:
                why[u, v] = f"alternative #{worst_alt[v] + 2} overtakes z*"
            else:
                k, c = names[worst[v]]
                verb = "leaves" if in_s[worst[v]] else "enters"
                why[u, v] = f"{vocabulary[k].text} ⇒ {c} {verb} z*"

    # --- how probable each answer is: Prior_M's guess, its out-of-concept error and the raters' spread
    text_var = _text_variance(prior, pseudo_concepts) * (1.0 + text_model.leverage())
    var = np.minimum(text_var, UNIFORM_RATING_VAR) + _rating_spread(ratings)  # never less informative than no guess
    mean = prior.predicted_ratings_.reshape(-1)[unrated]
    sd = np.sqrt(var[unrated])
    p_answer = _answer_probabilities(mean, sd)
    flip_p = (p_answer * flips).sum(1)

    rows = []
    for u, j in enumerate(unrated):
        k, c = names[j]
        con = vocabulary[k]
        flipping = [v for v in range(5) if flips[u, v]]
        reason = why[u, max(flipping, key=lambda v: p_answer[u, v])] if flipping else ""
        rows.append({
            "concept": k, "class": c, "text": clause_sentence(con.text, c), "kind": con.kind,
            "in_z_star": bool(in_s[j]), "weight": float(w[j]),
            "predicted_rating": float(mean[u]), "rating_sd": float(sd[u]),
            "flip_answers": tuple(v + 1 for v in flipping), "flip_probability": float(min(max(flip_p[u], 0.0), 1.0)),
            "closeness": float(close[u].max()), "data_pull": float(-data_grad.reshape(-1)[j]), "why": reason,
        })
    table = pd.DataFrame(rows, columns=list(ORDER_COLUMNS))
    return table.sort_values(["flip_probability", "closeness"], ascending=False, kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------------------------------ stopping
@dataclass(frozen=True)
class StopSignal:
    """Whether further answers have stopped changing z*.

    Attributes:
        n_answers: answers given so far (the last entry of the history).
        answers_since_change: answers given since z*'s clause set last changed (since the first entry
            when it never changed).
        changes: how many times the clause set changed over the history.
        window: the ``k`` of "the last k answers".
        stable: True when the last ``window`` answers did not change z*.
    """

    n_answers: int
    answers_since_change: int
    changes: int
    window: int
    stable: bool


def stopping_signal(history: Sequence[tuple[int, Iterable[tuple[str, str]]]], window: int = 5) -> StopSignal:
    """The stopping signal of a history of ``(answers given so far, z*'s clause set)``, oldest first.

    ``answers_since_change`` counts answers since the entry where the clause set last differed from the
    one before it; ``stable`` says whether that is at least ``window``.
    """
    if window < 1:
        raise ValueError("window must be at least 1")
    if not history:
        return StopSignal(0, 0, 0, window, False)
    counts = [int(n) for n, _ in history]
    if any(b < a for a, b in zip(counts, counts[1:], strict=False)):
        raise ValueError("history must be in the order the answers were given (answer counts never decrease)")
    sets = [support_of(z) for _, z in history]
    last_change = 0
    changes = 0
    for i in range(1, len(sets)):
        if sets[i] != sets[i - 1]:
            last_change, changes = i, changes + 1
    since = counts[-1] - counts[last_change]
    return StopSignal(counts[-1], since, changes, window, since >= window)
