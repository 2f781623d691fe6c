"""Exact MAP of a hypothesis's weights for fixed clause sets: a batched projected L-BFGS in torch.

For a fixed set A of allowed clauses, with S the (N, K) concept scores, W (K, C) >= 0 the clause weights
(zero outside A) and b (C,) the biases, we minimise

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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch


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
    gamma: torch.Tensor | None = None  # (B,) the last L-BFGS scaling s'y / y'y (0: none), to warm-start a later solve
    state: SolverState | None = None  # projected Newton: where each solve ended, to warm-start a re-solve under new penalties


@dataclass
class SolverState:
    """Where projected Newton solves of one :class:`MAPProblem` ended: the packed solutions x (B, P), F (B,), the
    negative log-likelihood (B,), the packed gradient (B, P) there, and the last exact Hessian each computed (B, P, P;
    at the solution's predecessor, ``has_hessian`` False where none was computed). A re-solve of the same data under
    new penalties (:meth:`MAPProblem.reprice`) starts from it without evaluating F at its start, and takes its first
    Newton step with that Hessian instead of a fresh one: one evaluation and one Hessian less per problem."""

    x: torch.Tensor
    f: torch.Tensor
    nll: torch.Tensor
    grad: torch.Tensor
    hessian: torch.Tensor
    has_hessian: torch.Tensor

    @staticmethod
    def gather(rows: Sequence[tuple[SolverState, int] | None]) -> SolverState:
        """One batch of rows taken from several states: row i is row ``rows[i][1]`` of state ``rows[i][0]``, or zeros
        without a Hessian where ``rows[i]`` is None (at least one is not). One gather per source state and field
        rather than a stack of per-row views: a warm re-solve carries hundreds of rows from a few batches."""
        sources: dict[int, tuple[SolverState, list[int], list[int]]] = {}  # id(state) -> (state, positions, its rows)
        for pos, row in enumerate(rows):
            if row is not None:
                source = sources.setdefault(id(row[0]), (row[0], [], []))
                source[1].append(pos)
                source[2].append(row[1])
        names = [f.name for f in fields(SolverState)]
        first = next(iter(sources.values()))[0]
        out = {n: getattr(first, n).new_zeros((len(rows), *getattr(first, n).shape[1:])) for n in names}
        for state, positions, taken in sources.values():
            dev = state.x.device
            to, frm = torch.tensor(positions, device=dev), torch.tensor(taken, device=dev)
            for n in names:
                out[n][to] = getattr(state, n)[frm]
        return SolverState(**out)


class MAPProblem:
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
        self.neg_sign_s = -self.sign_s if self.sign_s is not None else None  # -(d * s) == d * (-s) exactly: one op less
        # Newton-sized two-class problems (small S) keep S with each row multiplied by -sign: S_neg @ w is then exactly
        # -sign * (S @ w) (negating every term of a sum negates its rounding), so the margins take one pass less
        self.neg_s = scores * self.neg_sign_s.unsqueeze(1) if self.neg_sign_s is not None and self.newton else None
        # the two-class Hessian's class pattern (built once, not per Hessian)
        self._sign_pattern = torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=torch.float64, device=scores.device)

    def true_bias(self, w: torch.Tensor, b_centred: torch.Tensor) -> torch.Tensor:
        """b = b' - mu @ W for weights (B, K, C) and solver biases (B, C)."""
        return b_centred - torch.einsum("k,bkc->bc", self.mu, w)

    def centred_bias(self, w: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return bias + torch.einsum("k,bkc->bc", self.mu, w)

    def fg(self, x: torch.Tensor, want_grad: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``F`` (B,), ``nll`` (B,) and the gradient (B, P) for packed parameters x = [vec(W), b']."""
        return self._evaluate(x, want_grad, False)[:3]

    def fg_curvature(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`fg` (with the gradient) and what :meth:`hessian` needs per example, from the same pass: the class
        probabilities (B, C, N), for two classes the probability of the other class p (B, N) (:meth:`hessian` turns it
        into the curvature p (1 - p) only where a Hessian is built: most accepted points need none)."""
        f, nll, g, curvature = self._evaluate(x, True, True)
        assert g is not None and curvature is not None
        return f, nll, g, curvature

    def _evaluate(self, x: torch.Tensor, want_grad: bool, want_curvature: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        b_n = x.shape[0]
        w = x[:, : self.kc].reshape(b_n, self.k, self.c)
        b_c = x[:, self.kc :]
        bias = self.true_bias(w, b_c)
        penalty = (self.l1.unsqueeze(0) * w).sum((1, 2)) + self.l2 * (w * w).sum((1, 2)) + self.bias_l2 * (bias * bias).sum(1)
        if self.sign is not None:
            return self._fg_binary(w, bias, penalty, want_grad, want_curvature)
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
            return f, nll, None, None
        probs = e / se.unsqueeze(1)  # (B, C, N)
        g_z = probs - self.onehot.unsqueeze(0)
        g_zsum = g_z.sum(2)  # (B, C)
        g_w = (g_z.reshape(b_n * self.c, self.n).to(self.s.dtype) @ self.s).to(torch.float64)  # (B*C, K)
        g_w = g_w.view(b_n, self.c, self.k).transpose(1, 2)
        return f, nll, self._pack_grad(w, bias, g_w, g_zsum), probs if want_curvature else None

    def _fg_binary(
        self, w: torch.Tensor, bias: torch.Tensor, penalty: torch.Tensor, want_grad: bool, want_curvature: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Two classes: everything depends on the logit difference d = z_1 - z_0 (half the work)."""
        assert self.sign is not None
        dt = self.s.dtype  # per-example work in the scores' precision, sums in float64
        w_diff = (w[:, :, 1] - w[:, :, 0]).to(dt)  # (B, K)
        b_diff = (bias[:, 1] - bias[:, 0]).to(dt).unsqueeze(1)
        if self.neg_s is not None:  # bit for bit -sign * d below, in one pass over (B, N) instead of two
            neg_margin = torch.addcmul((self.neg_s @ w_diff.T).T, b_diff, self.neg_sign_s)
        else:
            d = (self.s @ w_diff.T).T + b_diff  # (B, N)
            neg_margin = d * self.neg_sign_s
        nll = torch.nn.functional.softplus(neg_margin).sum(1, dtype=torch.float64)
        f = nll + penalty
        if not want_grad:
            return f, nll, None, None
        wrong = torch.sigmoid(neg_margin)  # (B, N): the probability of the other class
        g_d = self.neg_sign_s * wrong  # dnll/dd
        g1 = (g_d @ self.s).to(torch.float64)  # (B, K)
        g_w = torch.stack([-g1, g1], dim=2)
        g_dsum = g_d.sum(1, dtype=torch.float64)
        g_zsum = torch.stack([-g_dsum, g_dsum], dim=1)
        return f, nll, self._pack_grad(w, bias, g_w, g_zsum), wrong if want_curvature else None

    #: Largest (N x pairwise products of the K + 1 centred columns) for which the problem keeps those products and
    #: :func:`solve_map` takes Newton steps (memory: this many floats; above it, L-BFGS).
    NEWTON_MAX_ELEMENTS = 2**24

    @property
    def newton(self) -> bool:
        """Whether :func:`solve_map` solves this problem by projected Newton: when the exact Hessian is small to
        keep and cheap to build, i.e. its (K + 1)(K + 2)/2 distinct entries cost at most as much per example as
        8 gradient evaluations (2 K C multiply-adds each), and N of them fit :attr:`NEWTON_MAX_ELEMENTS`. Small
        K (the worlds' vocabularies); large K keeps the L-BFGS."""
        q = (self.k + 1) * (self.k + 2) // 2
        return q <= 16 * self.kc and self.n * q <= self.NEWTON_MAX_ELEMENTS

    @property
    def _curvature_terms(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What every Hessian of this problem shares, built once: the products of every pair j <= l of the centred
        columns X = [S - mu, 1] (N, Q), the index that spreads those Q sums over a symmetric (K + 1, K + 1) matrix
        (both :meth:`share_products`), and the Hessian of the penalties (P, P). A Hessian's data part is then one GEMM."""
        if not hasattr(self, "_products"):
            k1, dev = self.k + 1, self.s.device
            x = torch.cat([self.s.to(torch.float64) - self.mu, torch.ones(self.n, 1, dtype=torch.float64, device=dev)], 1)
            jl = torch.triu_indices(k1, k1, device=dev)
            pairs = (x.unsqueeze(2) * x.unsqueeze(1)).reshape(self.n, k1 * k1).index_select(1, jl[0] * k1 + jl[1])
            spread = torch.zeros(k1, k1, dtype=torch.long, device=dev)
            spread[jl[0], jl[1]] = spread[jl[1], jl[0]] = torch.arange(jl.shape[1], device=dev)
            self._products = (pairs.to(self.s.dtype), spread.reshape(-1))
        if not hasattr(self, "_penalty_hessian"):
            self._penalty_hessian = self._quadratic_penalty_hessian(self.l2, self.bias_l2)
        return (*self._products, self._penalty_hessian)

    def _quadratic_penalty_hessian(self, l2: float, bias_l2: float) -> torch.Tensor:
        """The Hessian (P, P) of ``l2 |W|^2 + bias_l2 |b|^2`` in the solver's parameters (b = b' - mu W)."""
        dev = self.s.device
        a = torch.cat([-self.mu, torch.ones(1, dtype=torch.float64, device=dev)])
        penalty = 2 * bias_l2 * torch.kron(torch.outer(a, a), torch.eye(self.c, dtype=torch.float64, device=dev))
        penalty[: self.kc, : self.kc] += 2 * l2 * torch.eye(self.kc, dtype=torch.float64, device=dev)
        return penalty

    def same_data(self, other: MAPProblem) -> bool:
        """Whether ``other`` has the same scores and labels (a re-solve under a new prior: only the penalties differ)."""
        return (
            other.s.shape == self.s.shape and other.s.dtype == self.s.dtype and other.s.device == self.s.device
            and other.c == self.c and torch.equal(other.s, self.s) and torch.equal(other.y, self.y)
        )

    def share_products(self, other: MAPProblem) -> None:
        """Take ``other``'s pairwise products when it has them for the same scores (a re-solve under a new prior: only
        the penalties differ)."""
        if hasattr(other, "_products") and self.same_data(other):
            self._products = other._products
            if hasattr(other, "_single_pairs"):
                self._single_pairs = other._single_pairs

    def reprice(self, other: MAPProblem, state: SolverState) -> SolverState:
        """``state`` (solves of ``other``, :meth:`same_data` as this problem) under this problem's penalties: the same
        points and likelihood, F, gradient and Hessians moved by the change of the (quadratic) penalty terms."""
        b_n = state.x.shape[0]
        w = state.x[:, : self.kc].reshape(b_n, self.k, self.c)
        bias = self.true_bias(w, state.x[:, self.kc :])
        d_l1, d_l2, d_bias = self.l1 - other.l1, self.l2 - other.l2, self.bias_l2 - other.bias_l2
        f = state.f + (d_l1.unsqueeze(0) * w).sum((1, 2)) + d_l2 * (w * w).sum((1, 2)) + d_bias * (bias * bias).sum(1)
        g_bias = 2 * d_bias * bias
        g_w = d_l1.unsqueeze(0) + 2 * d_l2 * w - self.mu.view(1, self.k, 1) * g_bias.unsqueeze(1)
        grad = state.grad + torch.cat([g_w.reshape(b_n, self.kc), g_bias], 1)
        # the penalties' Hessian change depends on (d_l2, d_bias) only: built once per re-solve, not per batch (keyed by
        # the values, not by ``other``, so no chain of earlier problems is kept alive)
        cached = getattr(self, "_reprice_hessian", None)
        if cached is None or cached[0] != (d_l2, d_bias):
            cached = self._reprice_hessian = ((d_l2, d_bias), self._quadratic_penalty_hessian(d_l2, d_bias))
        return SolverState(state.x, f, state.nll, grad, state.hessian + cached[1], state.has_hessian)

    def hessian(self, curvature: torch.Tensor, single: bool = False) -> torch.Tensor:
        """The exact Hessian of F (B, P, P) from the per-example quantities of :meth:`fg_curvature` at the same point:
        the probability p of the other class (B, N) for two classes, the class probabilities (B, C, N) otherwise. P = (K + 1) C is laid out as a
        (K + 1, C) matrix, row K the solver biases b'. The data part is X^T diag(v) X per class pair, X = [S - mu, 1],
        v the softmax's curvature (for two classes p (1 - p) times [[1, -1], [-1, 1]]); then the weight L2 and the bias
        prior (b = b' - mu W, so its Hessian is 2 bias_l2 (a a^T) (x) I_C with a = [-mu, 1]). ``single``: the data part
        from single-precision products (half the cost; relative error ~1e-7), for steps whose Hessian only scales them."""
        b_n, k1, c = curvature.shape[0], self.k + 1, self.c
        pairs, spread, penalty = self._curvature_terms
        if single and pairs.dtype != torch.float32:
            if not hasattr(self, "_single_pairs"):
                self._single_pairs = pairs.to(torch.float32)
            pairs = self._single_pairs
        if self.sign is not None:
            # in the products' precision from the start: single precision halves the bytes of both (B, N) passes
            # (p (1 - p) off by at most ~3e-8, the rounding of p to single, against ~1e-7 relative for the products)
            p = curvature.to(pairs.dtype)
            curvature = p * (1 - p)
        else:
            eye = torch.eye(c, dtype=curvature.dtype, device=curvature.device)
            p = curvature.unsqueeze(2)
            curvature = (p * eye.unsqueeze(2) - p * curvature.unsqueeze(1)).reshape(b_n * c * c, self.n)
        m = (curvature.to(pairs.dtype) @ pairs).to(torch.float64).index_select(1, spread)  # (B [C C], (K + 1)^2)
        if self.sign is not None:
            h = m.view(b_n, k1, 1, k1, 1) * self._sign_pattern.view(1, 1, c, 1, c)
        else:
            h = m.view(b_n, c, c, k1, k1).permute(0, 3, 1, 4, 2)
        return h.reshape(b_n, k1 * c, k1 * c) + penalty

    def _pack_grad(self, w: torch.Tensor, bias: torch.Tensor, g_w: torch.Tensor, g_zsum: torch.Tensor) -> torch.Tensor:
        """Full gradient [dF/dW, dF/db'] from the data gradient w.r.t. W (uncentred) and the logit sums."""
        b_n = w.shape[0]
        g_w = g_w - self.mu.view(1, self.k, 1) * g_zsum.unsqueeze(1)
        g_bias = 2 * self.bias_l2 * bias  # d(bias_l2 |b|^2)/db, with b = b' - mu W
        g_w = g_w + self.l1.unsqueeze(0) + 2 * self.l2 * w - self.mu.view(1, self.k, 1) * g_bias.unsqueeze(1)
        g_b = g_zsum + g_bias
        return torch.cat([g_w.reshape(b_n, self.kc), g_b], dim=1)


def solve_map(
    problem: MAPProblem,
    allowed: torch.Tensor,
    w0: torch.Tensor,
    b0: torch.Tensor,
    max_iter: int = 500,
    tol: float = 1e-8,
    history: int = 10,
    gamma0: torch.Tensor | None = None,
    state: SolverState | None = None,
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
        gamma0: (B,) initial L-BFGS scaling per problem (a previous solve's :attr:`MAPResult.gamma`; 0 or ``None``:
            the first step is a unit steepest-descent step, backtracked). From a nearby optimum a scaled first
            step is accepted at once instead of being halved many times.
        state: projected Newton only: where a previous solve of the same data ended, repriced to this problem's penalties
            (:meth:`MAPProblem.reprice`); the problems whose row has a Hessian start there (``w0``, ``b0`` and
            ``gamma0`` are ignored for them) without a first evaluation and take their first step with that Hessian; the
            solve builds its Hessians from single-precision products (:meth:`MAPProblem.hessian`): they only scale the
            steps, while F, the gradient and the stopping rules stay in float64, so the minimiser is the same.

    Problems small enough for an exact Hessian (:attr:`MAPProblem.newton`) are solved by projected Newton steps
    instead (:func:`_solve_newton`; ``history`` and ``gamma0`` do not apply): same minimiser, same stopping rules,
    in a handful of iterations, from a nearby start in one or two.

    Returns:
        :class:`MAPResult` (weights exactly 0 outside A and where the bound is active).
    """
    if problem.newton:
        return _solve_newton(problem, allowed, w0, b0, max_iter, tol, state)
    dev = problem.l1.device
    b_n, kc = allowed.shape[0], problem.kc
    p = kc + problem.c
    mask, bounded, x = _packed_start(problem, allowed, w0, b0)
    f, nll, g = problem.fg(x)
    assert g is not None
    n_evals = 1
    hs = torch.zeros(history, b_n, p, dtype=torch.float64, device=dev)
    hy = torch.zeros_like(hs)
    hrho = torch.zeros(history, b_n, dtype=torch.float64, device=dev)
    gamma = torch.zeros(b_n, dtype=torch.float64, device=dev)  # 0: no curvature pair yet
    if gamma0 is not None:
        gamma = gamma0.to(device=dev, dtype=torch.float64).clone()
    active = torch.ones(b_n, dtype=torch.bool, device=dev)
    gtol, noise, ftol = _tolerances(problem, tol)
    it = 0
    for it in range(1, max_iter + 1):
        idx = torch.nonzero(active).squeeze(1)
        if idx.numel() == 0:
            break
        xa, ga, fa, ma = x[idx], g[idx], f[idx], mask[idx]
        # projected gradient and the free variables (not held at the bound by a pushing gradient)
        at_bound, pg = _projected_gradient(xa, ga, ma, bounded)
        pg_norm = pg.abs().amax(1)
        done = pg_norm <= gtol
        free = ma & ~(at_bound & (ga > 0))
        q = ga * free
        # two-loop recursion on the free subspace (entries with rho = 0 are skipped automatically)
        # the order the recursion has always used, less the slots no iteration has written yet (their rho = 0
        # and zero pairs leave q and r exactly as they are): the same arithmetic with fewer small ops
        slots = [(it - 1 - j) % history for j in range(history) if it > history or 1 <= j < it]
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
    return MAPResult(w, problem.true_bias(w, x[:, kc:]), nll, f, g_w, it, converged, n_evals, gamma)


def _tolerances(problem: MAPProblem, tol: float) -> tuple[float, float, float]:
    """Both solvers' stopping rules (:func:`solve_map`): the projected-gradient bound, the relative rounding noise of F
    (below it Armijo comparisons are meaningless) and the relative decrease that counts as none."""
    noise = 1e-6 if problem.s.dtype == torch.float32 else 1e-13
    return tol * max(problem.n, 1), noise, max(1e-3 * tol, noise)


def _projected_gradient(x: torch.Tensor, g: torch.Tensor, mask: torch.Tensor, bounded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Which variables sit at the bound, and the gradient projected on the feasible directions (0 where not allowed)."""
    at_bound = bounded & (x <= 0)
    return at_bound, torch.where(at_bound, torch.clamp(g, max=0), g) * mask


def _rows(values: torch.Tensor | None, holders: torch.Tensor, problems: torch.Tensor) -> torch.Tensor:
    """The rows of ``values`` (one per problem of ``holders``, sorted) of ``problems`` (sorted, all in ``holders``)."""
    assert values is not None
    return values if problems.numel() == holders.numel() else values[torch.searchsorted(holders, problems)]


def _packed_start(problem: MAPProblem, allowed: torch.Tensor, w0: torch.Tensor, b0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Both solvers' start: which packed variables each problem may move (B, P), which are bounded below by 0 (P,),
    and the packed start x (B, P), clipped to the feasible set."""
    dev = problem.l1.device
    b_n, kc = allowed.shape[0], problem.kc
    mask = torch.cat([allowed.reshape(b_n, kc), torch.ones(b_n, problem.c, dtype=torch.bool, device=dev)], 1)
    bounded = torch.zeros(kc + problem.c, dtype=torch.bool, device=dev)
    bounded[:kc] = True
    w0 = (w0.to(torch.float64).clamp(min=0) * allowed).reshape(b_n, problem.k, problem.c)
    return mask, bounded, torch.cat([w0.reshape(b_n, kc), problem.centred_bias(w0, b0.to(torch.float64))], 1)


def _solve_newton(
    problem: MAPProblem, allowed: torch.Tensor, w0: torch.Tensor, b0: torch.Tensor, max_iter: int, tol: float, state: SolverState | None = None
) -> MAPResult:
    """:func:`solve_map` by projected Newton (Bertsekas 1982, the paper the L-BFGS's two-metric projection comes
    from): the variables at (or within eps of) the bound whose gradient pushes them out are held there and take a
    scaled gradient step; the free ones a Newton step with the exact Hessian (:meth:`MAPProblem.hessian`), solved by
    Cholesky; then the same projected Armijo backtracking and stopping rules as the L-BFGS. The setting of
    scikit-learn's ``newton-cholesky`` solver (many examples, few features), with bounds."""
    dev = problem.l1.device
    b_n, kc = allowed.shape[0], problem.kc
    p = kc + problem.c
    mask, bounded, x = _packed_start(problem, allowed, w0, b0)
    hessian = torch.zeros(b_n, p, p, dtype=torch.float64, device=dev)  # the last one computed per problem
    single = state is not None  # a re-solve: Hessians from single-precision products (they only scale the steps)
    has_hessian = torch.zeros(b_n, dtype=torch.bool, device=dev)
    # curv: the per-example curvature terms (fg_curvature) at the current points of the problems ``live`` (sorted), rows
    # of the problems still running only: no (B, N) array is scattered back or gathered for the whole batch per iteration
    curv: torch.Tensor | None
    if state is None or not bool(state.has_hessian.any()):
        f, nll, g, curv = problem.fg_curvature(x)
        live = torch.arange(b_n, device=dev)
        n_evals = 1
        carried = None
    else:  # a re-solve: the problems with a previous state start there, the others are evaluated at their start
        carried = state.has_hessian.clone()
        x = torch.where(carried.unsqueeze(1), state.x, x)
        f, nll, g = state.f.clone(), state.nll.clone(), state.grad.clone()
        hessian[carried], has_hessian[carried] = state.hessian[carried], True
        new = torch.nonzero(~carried).squeeze(1)
        n_evals = int(new.numel() > 0)
        curv, live = None, new  # the carried problems take their first step with their carried Hessian
        if n_evals:
            f[new], nll[new], g[new], curv = problem.fg_curvature(x[new])
    active = torch.ones(b_n, dtype=torch.bool, device=dev)
    gtol, noise, ftol = _tolerances(problem, tol)
    eye = torch.eye(p, dtype=torch.float64, device=dev)
    it = 0
    for it in range(1, max_iter + 1):
        idx = torch.nonzero(active).squeeze(1)
        everyone = idx.numel() == b_n  # every problem still running: the whole tensors, no gathers or scatters
        _, pg = _projected_gradient(*((x, g, mask) if everyone else (x[idx], g[idx], mask[idx])), bounded)
        done = pg.abs().amax(1) <= gtol  # converged: no Hessian needed
        if bool(done.any()):
            active[idx[done]] = False
            idx = idx[~done]
            everyone = False
        if idx.numel() == 0:
            break
        xa, ga, fa, ma = (x, g, f, mask) if everyone else (x[idx], g[idx], f[idx], mask[idx])
        # Bertsekas's eps-active set: eps = min(1e-3, |x - P(x - g)|), the length of a projected gradient step
        eps = (torch.where(bounded, torch.minimum(ga, xa), ga) * ma).norm(dim=1).clamp(max=1e-3)
        held = bounded & (xa <= eps.unsqueeze(1)) & (ga > 0) & ma
        free = ma & ~held
        if carried is not None:  # first step of a re-solve: the carried Hessian where there is one
            h = hessian[idx]
            fresh = torch.nonzero(~carried[idx]).squeeze(1)
            if fresh.numel():
                h[fresh] = problem.hessian(_rows(curv, live, idx[fresh]), single)
            carried = None  # every carried problem has taken its first step or is done
        else:
            h = problem.hessian(_rows(curv, live, idx), single)
        if everyone:
            hessian, has_hessian = h, torch.ones(b_n, dtype=torch.bool, device=dev)
        else:
            hessian[idx], has_hessian[idx] = h, True
        chol, info = torch.linalg.cholesky_ex(torch.where(free.unsqueeze(2) & free.unsqueeze(1), h, eye))
        g_free = ga * free
        d = -torch.cholesky_solve(g_free.unsqueeze(2), chol).squeeze(2) * free
        diag = torch.diagonal(h, dim1=1, dim2=2).clamp(min=1e-12)
        failed = info != 0  # not positive definite (rounding): a scaled gradient step instead
        if bool(failed.any()):
            d[failed] = -(g_free[failed] / diag[failed])
        d = d - (ga / diag) * held
        # projected backtracking (Armijo along the projection arc), as in the L-BFGS; every problem still in the
        # loop has been halved as often as the others, so one step length serves them all
        accepted = torch.zeros(len(idx), dtype=torch.bool, device=dev)
        x_new, f_new, nll_new, g_new, curv_new = xa, fa, nll if everyone else nll[idx], ga, None
        pos = torch.arange(len(idx), device=dev)
        xs, ds, gs, fs, ms, step_len = xa, d, ga, fa, ma, 1.0
        f_scale = fa.abs().clamp(min=1.0)  # the scale of F's rounding noise, for the break below and ``small``
        fs_scale = f_scale
        for _ in range(40):
            # x + 1.0 * d is x + d exactly (the usual full step: one op less); the projection in place on the new tensor
            xt = xs + ds if step_len == 1.0 else xs + step_len * ds
            xt[:, :kc].clamp_(min=0)  # bounded = the weights, the first kc (_packed_start); in place, unlike where()
            xt.mul_(ms)
            step = (gs * (xt - xs)).sum(1)
            if bool((-step <= noise * fs_scale).all()):
                break  # the possible decrease is below rounding noise: numerically at the optimum
            ft, nllt, gt, ct = problem.fg_curvature(xt)
            n_evals += 1
            ok = ft <= fs + 1e-4 * step
            if step_len == 1.0 and bool(ok.all()):  # the usual case: every full Newton step accepted
                x_new, f_new, nll_new, g_new, curv_new = xt, ft, nllt, gt, ct
                accepted[:] = True
                break
            ok_pos = pos[ok]
            if step_len == 1.0:  # some are backtracked: the results are written per problem
                x_new, f_new, g_new = xa.clone(), fa.clone(), ga.clone()
                # every problem's curvature at its full step: the rows of a shorter step accepted later are overwritten,
                # and a problem that accepts none stalls, so its row is never used
                curv_new = ct
            else:
                curv_new[ok_pos] = ct[ok]
            x_new[ok_pos], f_new[ok_pos], nll_new[ok_pos], g_new[ok_pos] = xt[ok], ft[ok], nllt[ok], gt[ok]
            accepted[ok_pos] = True
            if bool(ok.all()):
                break
            rest = ~ok
            pos, xs, ds, gs, fs, ms, step_len = pos[rest], xs[rest], ds[rest], gs[rest], fs[rest], ms[rest], step_len / 2
            fs_scale = fs_scale[rest]
        stalled = ~accepted
        small = (fa - f_new) <= ftol * f_scale
        if everyone:
            x, f, nll, g = x_new, f_new, nll_new, g_new
            active = ~(stalled | (small & accepted & (it > 1)))
        else:
            x[idx], f[idx], nll[idx], g[idx] = x_new, f_new, nll_new, g_new
            active[idx] = ~(stalled | (small & accepted & (it > 1)))
        curv, live = curv_new, idx  # None only when no step was evaluated: every problem stalled
    converged = ~active
    w = x[:, :kc].reshape(b_n, problem.k, problem.c)
    g_w = g[:, :kc].reshape(b_n, problem.k, problem.c)
    return MAPResult(
        w, problem.true_bias(w, x[:, kc:]), nll, f, g_w, it, converged, n_evals, torch.zeros(b_n, dtype=torch.float64, device=dev),
        SolverState(x, f, nll, g, hessian, has_hessian),
    )
