"""Search for z* = argmax_z log Prior_M(z) + sum_D log L_M(y | x, z), and the ranked alternatives.

Imitative Generalization (Barnes, "Imitative Generalisation (AKA 'Learning the Prior')", AI Alignment
Forum, 2021) picks the hypothesis z* that maximises the (learned) human prior plus the (learned) human
likelihood of the labelled data D, then uses z* to label the test distribution. Here z is a set of
weighted clauses (:mod:`igcore.hypothesis`), L_M is the clause likelihood (:mod:`igcore.likelihood`)
and Prior_M is :class:`igcore.prior.PriorModel` (or :class:`igcore.prior.FlatPrior` for the
likelihood-only ablation).

**Exact MAP of the weights (convex part).** For a fixed set A of allowed clauses, with S the (N, K)
concept scores, W (K, C) >= 0 the clause weights (zero outside A) and b (C,) the biases, we minimise

    F_A(W, b) = - sum_i log softmax(b + S_i W)_{y_i}                      (negative log-likelihood)
                + sum_{(k,c) in A} l1_kc * W_kc + l2 * sum W_kc^2         (- log prior, weight part)
                + bias_l2 * sum_c b_c^2                                    (tiny; fixes the softmax shift)

with ``l1_kc = strength * -log p_kc`` (a per-clause *weighted L1*: implausible clauses are expensive per
unit of weight and are set exactly to 0 when they do not pay for themselves), ``l2 = strength *
coef_weight``. On W >= 0 the L1 term is linear, so F_A is smooth and convex with bound constraints; it
is solved by a batched projected L-BFGS (two-metric projection: Bertsekas, "Projected Newton methods for
optimization problems with simple constraints", SIAM J. Control Optim. 1982; L-BFGS: Liu & Nocedal,
Math. Programming 1989) written in torch with hand-derived gradients, many clause sets at once, on the
scores' device (GPU if they are CUDA tensors), in float64 (or float32 GEMMs with float64 reductions).

**Structure search.** The log posterior of a hypothesis z (support = clauses with w > 0) is

    log_posterior(z) = log Prior_M(z) + log L(D | z),
    log Prior_M(z) = strength * (sum w log p - coef_weight * sum w^2)      (convex part, in F_A)
                     + structure_log_prior(support)                        (e.g. -strength * (coef_length
                       * |z| + coef_empty_class * #classes without a clause); see igcore.prior)
                     - bias_l2 * |b|^2

so ``log_posterior = -F_A(W*, b*) + structure_log_prior(support)``. The structure (L0) terms are not
convex; a beam search over allowed sets handles them: start from the MAP with every clause allowed (the
weighted L1 already selects), then repeatedly toggle one clause (remove a clause of the support - the
others may take over - or add a clause whose KKT condition is violated), solve every child warm-started
from its parent in one batch, keep the ``beam_width`` best children, and collect every distinct support
seen; stop at a local optimum (``patience`` + 1 rounds in a row without a child that beats the best
so far) or after ``max_depth`` rounds. The
``n_ranked`` best form the ranked list, with ``posterior`` = softmax of the log posteriors over that list
(a normalised posterior restricted to the hypotheses found).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from igcore.config import SearchConfig
from igcore.errors import InputError
from igcore.hypothesis import Hypothesis
from igcore.likelihood import check_labels, check_scores, softmax
from igcore.prior import FlatPrior, HypothesisPrior
from igcore.settings import validated
from igcore.worlds.base import Vocabulary


# ============================================================================ batched projected L-BFGS
@dataclass
class MAPResult:
    """Solutions of a batch of MAP problems (torch tensors on the solver's device, float64)."""

    weights: torch.Tensor  # (B, K, C)
    bias: torch.Tensor  # (B, C)
    nll: torch.Tensor  # (B,) negative log-likelihood at the solution
    objective: torch.Tensor  # (B,) F_A at the solution
    grad_weights: torch.Tensor  # (B, K, C) gradient of F w.r.t. W (incl. l1) at the solution, all clauses
    n_iter: int
    converged: torch.Tensor  # (B,) bool
    n_evals: int = 0  # batched F/gradient evaluations


class _Problem:
    """Data and penalties shared by all problems in a batch; evaluates F and its gradient.

    Logits are laid out (B, C, N) so the per-example softmax reductions run over a short, strided class
    axis while the long N axis stays contiguous (fast on CPU and GPU).
    """

    def __init__(self, scores: torch.Tensor, labels: torch.Tensor, n_classes: int, l1: torch.Tensor, l2: float, bias_l2: float) -> None:
        self.s = scores  # (N, K) compute dtype
        self.y = labels  # (N,) int64
        self.l1 = l1  # (K, C) float64
        self.l2 = float(l2)
        self.bias_l2 = float(bias_l2)
        self.n, self.k = scores.shape
        self.c = n_classes
        self.kc = self.k * self.c
        # Centering: the solver's bias is b' = b + mu @ W (mu = mean concept score), i.e. logits
        # b' + (s - mu) W. Same W constraints, far better conditioned; no centred copy of S is made.
        self.mu = scores.to(torch.float64).mean(0) if self.n else torch.zeros(self.k, dtype=torch.float64, device=scores.device)
        onehot = torch.zeros(self.c, self.n, dtype=torch.float64, device=scores.device)
        onehot[labels, torch.arange(self.n, device=scores.device)] = 1.0
        self.onehot = onehot  # (C, N)
        self.sign = 2.0 * onehot[1] - 1.0 if self.c == 2 else None  # (N,) +1 for class 1, -1 for class 0
        self.sign_s = self.sign.to(scores.dtype) if self.sign is not None else None

    def true_bias(self, w: torch.Tensor, b_centred: torch.Tensor) -> torch.Tensor:
        """b = b' - mu @ W for weights (B, K, C) and solver biases (B, C)."""
        return b_centred - torch.einsum("k,bkc->bc", self.mu, w)

    def centred_bias(self, w: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return bias + torch.einsum("k,bkc->bc", self.mu, w)

    def fg(self, x: torch.Tensor, want_grad: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``F`` (B,), ``nll`` (B,) and the gradient (B, P) for packed parameters x = [vec(W), b']."""
        b_n = x.shape[0]
        w = x[:, : self.kc].reshape(b_n, self.k, self.c)
        b_c = x[:, self.kc :]
        bias = self.true_bias(w, b_c)
        penalty = (self.l1.unsqueeze(0) * w).sum((1, 2)) + self.l2 * (w * w).sum((1, 2)) + self.bias_l2 * (bias * bias).sum(1)
        if self.sign is not None:
            return self._fg_binary(w, bias, penalty, want_grad)
        w_rows = w.transpose(1, 2).reshape(b_n * self.c, self.k).to(self.s.dtype)  # (B*C, K)
        # S @ W^T streams S once with a small right-hand side: the fast GEMM shape for tall S
        z = (self.s @ w_rows.T).T.to(torch.float64).reshape(b_n, self.c, self.n) + bias.unsqueeze(2)
        m = z.amax(1, keepdim=True)
        e = torch.exp(z - m)
        se = e.sum(1)  # (B, N)
        lse = m.squeeze(1) + torch.log(se)
        picked = z.gather(1, self.y.view(1, 1, self.n).expand(b_n, 1, self.n)).squeeze(1)
        nll = (lse - picked).sum(1)
        f = nll + penalty
        if not want_grad:
            return f, nll, None
        g_z = e / se.unsqueeze(1) - self.onehot.unsqueeze(0)  # (B, C, N)
        g_zsum = g_z.sum(2)  # (B, C)
        g_w = (g_z.reshape(b_n * self.c, self.n).to(self.s.dtype) @ self.s).to(torch.float64)  # (B*C, K)
        g_w = g_w.view(b_n, self.c, self.k).transpose(1, 2)
        return f, nll, self._pack_grad(w, bias, g_w, g_zsum)

    def _fg_binary(
        self, w: torch.Tensor, bias: torch.Tensor, penalty: torch.Tensor, want_grad: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Two classes: everything depends on the logit difference d = z_1 - z_0 (half the work)."""
        assert self.sign is not None
        dt = self.s.dtype  # per-example work in the scores' precision, sums in float64
        w_diff = (w[:, :, 1] - w[:, :, 0]).to(dt)  # (B, K)
        d = (self.s @ w_diff.T).T + (bias[:, 1] - bias[:, 0]).to(dt).unsqueeze(1)  # (B, N)
        margin = d * self.sign_s
        nll = torch.nn.functional.softplus(-margin).sum(1, dtype=torch.float64)
        f = nll + penalty
        if not want_grad:
            return f, nll, None
        g_d = -self.sign_s * torch.sigmoid(-margin)  # dnll/dd, (B, N)
        g1 = (g_d @ self.s).to(torch.float64)  # (B, K)
        g_w = torch.stack([-g1, g1], dim=2)
        g_dsum = g_d.sum(1, dtype=torch.float64)
        g_zsum = torch.stack([-g_dsum, g_dsum], dim=1)
        return f, nll, self._pack_grad(w, bias, g_w, g_zsum)

    def _pack_grad(self, w: torch.Tensor, bias: torch.Tensor, g_w: torch.Tensor, g_zsum: torch.Tensor) -> torch.Tensor:
        """Full gradient [dF/dW, dF/db'] from the data gradient w.r.t. W (uncentred) and the logit sums."""
        b_n = w.shape[0]
        g_w = g_w - self.mu.view(1, self.k, 1) * g_zsum.unsqueeze(1)
        g_bias = 2 * self.bias_l2 * bias  # d(bias_l2 |b|^2)/db, with b = b' - mu W
        g_w = g_w + self.l1.unsqueeze(0) + 2 * self.l2 * w - self.mu.view(1, self.k, 1) * g_bias.unsqueeze(1)
        g_b = g_zsum + g_bias
        return torch.cat([g_w.reshape(b_n, self.kc), g_b], dim=1)


def solve_map(
    problem: _Problem,
    allowed: torch.Tensor,
    w0: torch.Tensor,
    b0: torch.Tensor,
    max_iter: int = 500,
    tol: float = 1e-8,
    history: int = 10,
) -> MAPResult:
    """Minimise F_A (module docstring) for a batch of allowed sets by projected L-BFGS.

    Args:
        problem: data and penalties.
        allowed: (B, K, C) bool, the clause sets A.
        w0, b0: (B, K, C), (B, C) starting points (clipped to the feasible set).
        max_iter: iteration cap per problem.
        tol: stop when the projected gradient's max-norm <= tol * N, or an accepted step lowers F by less
            than ``1e-3 * tol * max(1, |F|)`` (tol = 1e-8 puts F within ~1e-5 nats of its minimum at N = 4000),
            or no step can lower F by more than its rounding noise (relative 1e-13 in float64, 1e-6 with
            float32 scores).
        history: L-BFGS memory.

    Returns:
        :class:`MAPResult` (weights exactly 0 outside A and where the bound is active).
    """
    dev = problem.l1.device
    b_n, kc = allowed.shape[0], problem.kc
    p = kc + problem.c
    mask = torch.cat([allowed.reshape(b_n, kc), torch.ones(b_n, problem.c, dtype=torch.bool, device=dev)], 1)
    bounded = torch.zeros(p, dtype=torch.bool, device=dev)
    bounded[:kc] = True
    w0 = (w0.to(torch.float64).clamp(min=0) * allowed).reshape(b_n, problem.k, problem.c)
    x = torch.cat([w0.reshape(b_n, kc), problem.centred_bias(w0, b0.to(torch.float64))], 1)
    f, nll, g = problem.fg(x)
    assert g is not None
    n_evals = 1
    hs = torch.zeros(history, b_n, p, dtype=torch.float64, device=dev)
    hy = torch.zeros_like(hs)
    hrho = torch.zeros(history, b_n, dtype=torch.float64, device=dev)
    gamma = torch.zeros(b_n, dtype=torch.float64, device=dev)  # 0: no curvature pair yet
    active = torch.ones(b_n, dtype=torch.bool, device=dev)
    gtol = tol * max(problem.n, 1)
    # relative size of rounding noise in F: below it, Armijo comparisons are meaningless
    noise = 1e-6 if problem.s.dtype == torch.float32 else 1e-13
    ftol = max(1e-3 * tol, noise)
    it = 0
    for it in range(1, max_iter + 1):
        idx = torch.nonzero(active).squeeze(1)
        if idx.numel() == 0:
            break
        xa, ga, fa, ma = x[idx], g[idx], f[idx], mask[idx]
        # projected gradient and the free variables (not held at the bound by a pushing gradient)
        at_bound = bounded & (xa <= 0)
        pg = torch.where(at_bound, torch.clamp(ga, max=0), ga) * ma
        pg_norm = pg.abs().amax(1)
        done = pg_norm <= gtol
        free = ma & ~(at_bound & (ga > 0))
        q = ga * free
        # two-loop recursion on the free subspace (entries with rho = 0 are skipped automatically)
        slots = [(it - 1 - j) % history for j in range(history)]
        hs_a, hy_a, hr_a = hs[:, idx] * free, hy[:, idx] * free, hrho[:, idx]
        alphas = []
        for s_ in slots:
            si, yi, ri = hs_a[s_], hy_a[s_], hr_a[s_]
            a = ri * (si * q).sum(1)
            q = q - a.unsqueeze(1) * yi
            alphas.append(a)
        gam = gamma[idx]
        first = gam <= 0
        gnorm = q.norm(dim=1).clamp(min=1e-300)
        r = torch.where(first.unsqueeze(1), q / gnorm.unsqueeze(1), gam.unsqueeze(1) * q)
        for s_, a in zip(reversed(slots), reversed(alphas), strict=True):
            si, yi, ri = hs_a[s_], hy_a[s_], hr_a[s_]
            beta = ri * (yi * r).sum(1)
            r = r + (a - beta).unsqueeze(1) * si
        d = -r * free
        gd = (ga * d).sum(1)
        bad = gd >= 0  # not a descent direction: restart from steepest descent
        if bad.any():
            gfree = ga * free
            d = torch.where(bad.unsqueeze(1), -gfree / gfree.norm(dim=1, keepdim=True).clamp(min=1e-300), d)
            hrho[:, idx[bad]] = 0.0
            gamma[idx[bad]] = 0.0
        # projected backtracking (Armijo along the projection arc)
        t = torch.ones(len(idx), dtype=torch.float64, device=dev)
        accepted = torch.zeros(len(idx), dtype=torch.bool, device=dev) | done
        x_new, f_new, nll_new, g_new = xa.clone(), fa.clone(), nll[idx].clone(), ga.clone()
        for _ in range(40):
            todo = torch.nonzero(~accepted).squeeze(1)
            if todo.numel() == 0:
                break
            xt = xa[todo] + t[todo].unsqueeze(1) * d[todo]
            xt = torch.where(bounded, xt.clamp(min=0), xt) * ma[todo]
            predicted = -(ga[todo] * (xt - xa[todo])).sum(1)
            hopeless = predicted <= noise * fa[todo].abs().clamp(min=1.0)
            if bool(hopeless.all()):
                break  # the possible decrease is below rounding noise: numerically at the optimum
            ft, nllt, gt = problem.fg(xt)
            n_evals += 1
            assert gt is not None
            ok = ft <= fa[todo] + 1e-4 * (ga[todo] * (xt - xa[todo])).sum(1)
            ok_idx = todo[ok]
            x_new[ok_idx], f_new[ok_idx], nll_new[ok_idx], g_new[ok_idx] = xt[ok], ft[ok], nllt[ok], gt[ok]
            accepted[ok_idx] = True
            t[todo[~ok]] *= 0.5
        stalled = ~accepted  # no decrease found: numerically at the optimum
        # curvature pairs
        s_vec, y_vec = x_new - xa, g_new - ga
        sy = (s_vec * y_vec).sum(1)
        yy = (y_vec * y_vec).sum(1)
        good = (sy > 1e-10 * yy.clamp(min=1e-300)) & (sy > 0) & ~done & ~stalled
        slot = (it - 1) % history
        hs[slot, idx] = s_vec
        hy[slot, idx] = y_vec
        hrho[slot, idx] = torch.where(good, 1.0 / sy.clamp(min=1e-300), torch.zeros_like(sy))
        gamma[idx] = torch.where(good, sy / yy.clamp(min=1e-300), gamma[idx])
        small = (fa - f_new) <= ftol * fa.abs().clamp(min=1.0)
        x[idx], f[idx], nll[idx], g[idx] = x_new, f_new, nll_new, g_new
        active[idx] = ~(done | stalled | (small & ~done & accepted & (it > 1)))
    converged = ~active
    w = x[:, :kc].reshape(b_n, problem.k, problem.c)
    g_w = g[:, :kc].reshape(b_n, problem.k, problem.c)
    return MAPResult(w, problem.true_bias(w, x[:, kc:]), nll, f, g_w, it, converged, n_evals)


# ============================================================================ ranked hypotheses
@dataclass(frozen=True)
class RankedHypothesis:
    """One entry of the ranked list."""

    hypothesis: Hypothesis
    log_prior: float
    log_likelihood: float
    log_posterior: float
    posterior: float

    def to_record(self, vocabulary: Vocabulary) -> dict[str, Any]:
        """``{clauses: [...], log_prior, log_likelihood, log_posterior, posterior}`` (metrics.json)."""
        return {
            "clauses": self.hypothesis.to_records(vocabulary),
            "bias": dict(self.hypothesis.bias),
            "log_prior": self.log_prior,
            "log_likelihood": self.log_likelihood,
            "log_posterior": self.log_posterior,
            "posterior": self.posterior,
        }


@dataclass
class _Entry:
    allowed: frozenset[int]
    support: frozenset[int]
    weights: np.ndarray  # (K, C)
    bias: np.ndarray  # (C,)
    nll: float
    objective: float
    log_posterior: float
    grad: np.ndarray  # (K, C)


def _resolve_device(device: str, scores: Any) -> torch.device:
    if isinstance(scores, torch.Tensor) and scores.is_cuda and device in ("auto", "cuda"):
        return scores.device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' requested but no CUDA GPU is available; use device=auto or cpu")
    if device not in ("cpu", "cuda"):
        raise InputError(f"device must be auto, cpu or cuda, got {device!r}")
    return torch.device(device)


class HypothesisSearch:
    """MAP hypothesis z* and ranked alternatives under Prior_M + L_M (see the module docstring).

    Args:
        prior: a fitted :class:`igcore.prior.PriorModel`, or anything implementing
            :class:`igcore.prior.HypothesisPrior` (``clause_penalties``, ``structure_log_prior``,
            ``log_prior``); ``None`` = :class:`igcore.prior.FlatPrior` (the ``no_prior`` ablation: same
            search, likelihood only, no structure terms).
        beam_width: children kept per round of the structure search.
        n_ranked: length of the ranked list (at least 10 unless fewer distinct clause sets exist).
        max_clauses: largest |z| allowed in the ranked list (``None``: no cap).
        max_depth: rounds of the structure search.
        max_moves: toggles tried per beam state and kind (removals of the weakest clauses, additions of the
            most KKT-violating ones); ``None`` = all.
        patience: extra rounds explored after a round that found nothing better than the best so far
            (0 = stop at the first local optimum).
        max_iter, tol, history: solver settings (:func:`solve_map`).
        bias_l2: tiny Gaussian term on the biases (part of the reported log prior).
        flat_weight_l2: weight term of the flat prior when ``prior`` is ``None``.
        dtype: ``"float64"`` or ``"float32"`` (GEMMs in float32, reductions in float64).
        device: ``"auto"`` | ``"cpu"`` | ``"cuda"`` (CUDA score tensors are used where they are).
        max_batch: most MAP problems solved together (memory: max_batch * N * C floats).
        num_threads: torch CPU threads during ``fit`` (restored afterwards). ``None``: 1 thread for small
            problems (N * K < 4e6), else torch's default capped at (CPU count - 1). Intra-op threads that
            outnumber the free cores stall at every barrier: on a shared 2-core machine one MAP solve at
            N = 1e6, K = 12 took 0.9 s with 1 thread and 9.3 s with 2 (docs/bench_search.md).
        presolve_rows: when N > 2 * presolve_rows, every batch is first solved on a fixed random subsample
            of this many rows (penalties scaled by the sampling fraction) and the full-data solve starts
            from there; the result is still the exact full-data MAP, only reached in fewer passes over S.
            ``None`` = off.
        warm_start: start the next ``fit`` from this fit's solution (fast re-solve after a prior change).

    Attributes (after ``fit``):
        z_star_: the MAP :class:`Hypothesis`.
        ranked_: list of :class:`RankedHypothesis`, best first, posteriors summing to 1.
        relaxed_: the hypothesis of the MAP with every clause allowed (before the structure terms).
        n_solved_: MAP problems solved; fit_seconds_: wall time of the last fit.
    """

    def __init__(
        self,
        prior: HypothesisPrior | None = None,
        beam_width: int = 4,
        n_ranked: int = 12,
        max_clauses: int | None = None,
        max_depth: int = 10,
        max_moves: int | None = 16,
        patience: int = 1,
        max_iter: int = 500,
        tol: float = 1e-8,
        history: int = 10,
        bias_l2: float = 1e-4,
        flat_weight_l2: float = 1e-2,
        dtype: str = "float64",
        device: str = "auto",
        max_batch: int = 128,
        num_threads: int | None = None,
        presolve_rows: int | None = 50_000,
        warm_start: bool = False,
    ) -> None:
        self.prior = prior
        self.beam_width = beam_width
        self.n_ranked = n_ranked
        self.max_clauses = max_clauses
        self.max_depth = max_depth
        self.max_moves = max_moves
        self.patience = patience
        self.max_iter = max_iter
        self.tol = tol
        self.history = history
        self.bias_l2 = bias_l2
        self.flat_weight_l2 = flat_weight_l2
        self.dtype = dtype
        self.device = device
        self.max_batch = max_batch
        self.num_threads = num_threads
        self.presolve_rows = presolve_rows
        self.warm_start = warm_start

    # ------------------------------------------------------------------ helpers
    def _prior(self) -> HypothesisPrior:
        return FlatPrior(self.flat_weight_l2) if self.prior is None else self.prior

    def _check_params(self) -> None:
        """The parameters against the same schema as the config's ``search`` section (one set of bounds)."""
        validated(SearchConfig, {k: getattr(self, k) for k in SearchConfig.model_fields}, "search")

    def _solve(self, problem: _Problem, allowed_sets: list[frozenset[int]], starts: list[tuple[np.ndarray, np.ndarray]]) -> list[_Entry]:
        k, c = problem.k, problem.c
        dev = problem.l1.device
        out: list[_Entry] = []
        for lo in range(0, len(allowed_sets), self.max_batch):
            sets = allowed_sets[lo : lo + self.max_batch]
            allowed = torch.zeros(len(sets), k * c, dtype=torch.bool, device=dev)
            for i, a in enumerate(sets):
                if a:
                    allowed[i, list(a)] = True
            allowed = allowed.reshape(len(sets), k, c)
            w0 = torch.as_tensor(np.stack([s[0] for s in starts[lo : lo + self.max_batch]]), dtype=torch.float64, device=dev)
            b0 = torch.as_tensor(np.stack([s[1] for s in starts[lo : lo + self.max_batch]]), dtype=torch.float64, device=dev)
            w0 = w0 * allowed
            if self._presolve is not None:
                pre = solve_map(self._presolve, allowed, w0, b0, self.max_iter, max(self.tol, 1e-6), self.history)
                w0, b0 = pre.weights, pre.bias
                self.n_evals_presolve_ += pre.n_evals
            res = solve_map(problem, allowed, w0, b0, self.max_iter, self.tol, self.history)
            self.n_solved_ += len(sets)
            self.n_evals_ += res.n_evals
            self.max_solver_iter_ = max(self.max_solver_iter_, res.n_iter)
            w = res.weights.cpu().numpy()
            b = res.bias.cpu().numpy()
            nll = res.nll.cpu().numpy()
            obj = res.objective.cpu().numpy()
            grad = res.grad_weights.cpu().numpy()
            for i, a in enumerate(sets):
                flat = w[i].reshape(-1)
                support = frozenset(np.nonzero(flat > 0)[0].tolist())
                lp = -float(obj[i]) + self._structure(w[i] > 0)
                out.append(_Entry(a, support, w[i], b[i], float(nll[i]), float(obj[i]), lp, grad[i]))
        return out

    # ------------------------------------------------------------------ fit
    def fit(self, scores: Any, y: Any, vocabulary: Vocabulary, classes: Sequence[str]) -> HypothesisSearch:
        """Find z* and the ranked list for concept scores (N, K) in [0, 1] and labels (N,). Returns self."""
        self._check_params()
        shape = tuple(scores.shape) if hasattr(scores, "shape") else np.shape(scores)
        size = int(np.prod(shape)) if len(shape) else 0
        before = torch.get_num_threads()
        threads = self.num_threads
        if threads is None:
            threads = 1 if size < 4_000_000 else max(1, min(before, (os.cpu_count() or 2) - 1))
        if threads is not None and threads != before:
            torch.set_num_threads(threads)
        try:
            return self._fit(scores, y, vocabulary, classes)
        finally:
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)

    def _fit(self, scores: Any, y: Any, vocabulary: Vocabulary, classes: Sequence[str]) -> HypothesisSearch:
        t_start = time.perf_counter()
        classes = list(classes)
        if len(classes) < 2:
            raise InputError("need at least two classes")
        k_n, c_n = len(vocabulary), len(classes)
        dev = _resolve_device(self.device, scores)
        dtype = torch.float64 if self.dtype == "float64" else torch.float32
        if isinstance(scores, torch.Tensor):
            s_t = scores.detach().to(device=dev, dtype=dtype)
            if s_t.ndim != 2 or s_t.shape[1] != k_n:
                raise InputError(f"scores must have shape (N, {k_n}), got {tuple(s_t.shape)}")
            if not bool(torch.isfinite(s_t).all()) or (s_t.numel() and (float(s_t.min()) < -1e-6 or float(s_t.max()) > 1 + 1e-6)):
                raise InputError("scores must be finite concept probabilities in [0, 1]")
        else:
            arr = check_scores(scores, k_n)
            s_t = torch.from_numpy(np.ascontiguousarray(arr)).to(device=dev, dtype=dtype)
        n = s_t.shape[0]
        if n == 0:
            raise InputError("scores is empty: need at least one labelled example")
        labels = check_labels(y, n, c_n)

        prior = self._prior()
        l1, l2 = prior.clause_penalties(vocabulary, classes)
        self._structure = prior.structure_log_prior
        problem = _Problem(
            s_t, torch.as_tensor(labels, device=dev), c_n, torch.as_tensor(l1, dtype=torch.float64, device=dev), l2, self.bias_l2
        )
        self.n_solved_, self.max_solver_iter_, self.n_evals_, self.n_evals_presolve_ = 0, 0, 0, 0
        self._presolve: _Problem | None = None
        if self.presolve_rows is not None and n > 2 * self.presolve_rows:
            gen = torch.Generator(device="cpu").manual_seed(0)
            rows = torch.randperm(n, generator=gen)[: self.presolve_rows].to(dev)
            frac = self.presolve_rows / n
            self._presolve = _Problem(
                s_t[rows], problem.y[rows], c_n, problem.l1 * frac, l2 * frac, self.bias_l2 * frac
            )

        freq = np.bincount(labels, minlength=c_n) + 1.0
        b_init = np.log(freq / freq.sum())
        b_init -= b_init.mean()
        all_clauses = frozenset(range(k_n * c_n))
        prev = getattr(self, "_warm", None) if self.warm_start else None
        if prev is not None and prev["root"][0].shape != (k_n, c_n):
            prev = None
        seeds: list[frozenset[int]] = [all_clauses, frozenset()]
        starts = [prev["root"] if prev else (np.zeros((k_n, c_n)), b_init), (np.zeros((k_n, c_n)), b_init)]
        if prev is not None and prev["best"][0] not in seeds:
            # warm start: also re-solve the previous z*'s clause set, so an unchanged optimum is found at once
            seeds.append(prev["best"][0])
            starts.append(prev["best"][1])
        solved: dict[frozenset[int], _Entry] = {}
        found: dict[frozenset[int], _Entry] = {}

        def register(entries: list[_Entry]) -> None:
            for e in entries:
                solved[e.allowed] = e
                if self.max_clauses is not None and len(e.support) > self.max_clauses:
                    continue
                old = found.get(e.support)
                if old is None or e.log_posterior > old.log_posterior:
                    found[e.support] = e

        seeded = self._solve(problem, seeds, starts)
        register(seeded)
        root = seeded[0]
        self.relaxed_ = Hypothesis.from_matrix(root.weights, root.bias, vocabulary, classes)
        beam = [root] + seeded[2:]
        if self.max_clauses is not None and len(root.support) > self.max_clauses:
            flat = root.weights.reshape(-1)
            keep = frozenset(np.argsort(-flat)[: self.max_clauses].tolist())
            (capped,) = self._solve(problem, [keep], [(root.weights, root.bias)])
            register([capped])
            beam = [capped] + seeded[2:]

        stale = 0
        for _depth in range(self.max_depth):
            best_so_far = max(e.log_posterior for e in found.values())
            children: dict[frozenset[int], tuple[np.ndarray, np.ndarray]] = {}
            for parent in beam:
                w_flat = parent.weights.reshape(-1)
                removes = sorted(parent.support, key=lambda j: w_flat[j])
                g_flat = parent.grad.reshape(-1)
                adds = sorted((j for j in all_clauses - parent.allowed if g_flat[j] < 0), key=lambda j: g_flat[j])
                if self.max_moves is not None:
                    removes, adds = removes[: self.max_moves], adds[: self.max_moves]
                for j in removes:
                    child = parent.allowed - {j}
                    if child not in solved and child not in children:
                        w0 = parent.weights.copy().reshape(-1)
                        w0[j] = 0.0
                        children[child] = (w0.reshape(k_n, c_n), parent.bias)
                for j in adds:
                    child = parent.allowed | {j}
                    if child not in solved and child not in children:
                        children[child] = (parent.weights, parent.bias)
            if not children:
                break
            entries = self._solve(problem, list(children), list(children.values()))
            register(entries)
            entries.sort(key=lambda e: -e.log_posterior)
            beam, seen = [], set()
            for e in entries:
                if e.support not in seen:
                    seen.add(e.support)
                    beam.append(e)
                if len(beam) >= self.beam_width:
                    break
            # a local optimum of the structure search: no child beats the best hypothesis so far
            stale = stale + 1 if entries[0].log_posterior <= best_so_far else 0
            if stale > self.patience and len(found) >= self.n_ranked:
                break

        self._finish(found, prior, vocabulary, classes, len(labels))
        best = max(found.values(), key=lambda e: e.log_posterior)
        self._warm = {"root": (root.weights, root.bias), "best": (best.allowed, (best.weights, best.bias))}
        self.fit_seconds_ = time.perf_counter() - t_start
        return self

    def _finish(
        self,
        found: dict[frozenset[int], _Entry],
        prior: HypothesisPrior,
        vocabulary: Vocabulary,
        classes: list[str],
        n_train: int,
    ) -> None:
        # the log prior is recomputed from the hypothesis itself (same value as in the objective up to
        # rounding); candidates are re-sorted on it so the reported list is exactly ordered
        candidates = sorted(found.values(), key=lambda e: -e.log_posterior)[: 2 * self.n_ranked]
        scored = []
        for e in candidates:
            h = Hypothesis.from_matrix(e.weights, e.bias, vocabulary, classes)
            log_prior = float(prior.log_prior(h) - self.bias_l2 * float((e.bias**2).sum()))
            scored.append((log_prior - e.nll, log_prior, e, h))
        scored.sort(key=lambda item: -item[0])
        scored = scored[: self.n_ranked]
        lps = np.array([item[0] for item in scored])
        post = np.exp(lps - lps.max())
        post /= post.sum()
        ranked = [
            RankedHypothesis(h, log_prior, -e.nll, float(lp), float(pz))
            for (lp, log_prior, e, h), pz in zip(scored, post, strict=True)
        ]
        self.vocabulary_, self.classes_ = vocabulary, classes
        self.ranked_ = ranked
        self.z_star_ = ranked[0].hypothesis
        self.n_train_ = int(n_train)
        self.n_found_ = len(found)

    # ------------------------------------------------------------------ predictions
    def _check_fitted(self) -> None:
        if not hasattr(self, "ranked_"):
            raise RuntimeError("HypothesisSearch is not fitted; call fit(scores, y, vocabulary, classes) first")

    def _proba(self, s: np.ndarray, h: Hypothesis) -> np.ndarray:
        w, b = h.to_matrix(self.vocabulary_, self.classes_)
        return softmax((s @ w.astype(s.dtype)).astype(np.float64) + b)

    def predict_proba(self, scores: Any) -> np.ndarray:
        """L_M(. | x, z*) for each row of ``scores``: (N, C)."""
        self._check_fitted()
        return self._proba(check_scores(scores, len(self.vocabulary_)), self.z_star_)

    def predict(self, scores: Any) -> np.ndarray:
        return self.predict_proba(scores).argmax(1)

    def posterior_predictive(self, scores: Any) -> np.ndarray:
        """``sum_r posterior_r * L_M(. | x, z_r)`` over the ranked list: (N, C)."""
        self._check_fitted()
        s = check_scores(scores, len(self.vocabulary_))
        out = np.zeros((s.shape[0], len(self.classes_)))
        for r in self.ranked_:
            if r.posterior > 0:
                out += r.posterior * self._proba(s, r.hypothesis)
        return out

    def ranked_records(self) -> list[dict[str, Any]]:
        """The ranked list as ``metrics.json`` records (``hypotheses.ranked``)."""
        self._check_fitted()
        return [r.to_record(self.vocabulary_) for r in self.ranked_]

    def summary(self) -> dict[str, Any]:
        self._check_fitted()
        return {
            "n_train": self.n_train_,
            "n_ranked": len(self.ranked_),
            "n_distinct_found": self.n_found_,
            "n_solved": self.n_solved_,
            "n_evals": self.n_evals_,
            "n_evals_presolve": self.n_evals_presolve_,
            "fit_seconds": self.fit_seconds_,
            "z_star_size": len(self.z_star_),
        }


def search_from_config(search: SearchConfig | Mapping[str, Any], prior: HypothesisPrior | None, device: str = "auto") -> HypothesisSearch:
    """A :class:`HypothesisSearch` with a run's ``search`` settings (``prior=None``: the no_prior ablation)."""
    settings = validated(SearchConfig, search.model_dump() if isinstance(search, SearchConfig) else search, "search")
    return HypothesisSearch(prior=prior, device=device, **settings.model_dump())
