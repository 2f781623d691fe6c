"""Structure search for z*: a beam search over clause sets, each solved exactly, and the ranked alternatives.

The log posterior of a hypothesis z (support = clauses with w > 0) is

    log_posterior(z) = log Prior_M(z) + log L(D | z),
    log Prior_M(z) = strength * (sum w log p - coef_weight * sum w^2)      (convex part, in F_A)
                     + structure_log_prior(support)                        (e.g. -strength * (coef_length
                       * |z| + coef_empty_class * #classes without a clause); see igcore.prior)
                     - bias_l2 * |b|^2

so ``log_posterior = -F_A(W*, b*) + structure_log_prior(support)``, with F_A minimised by the solver of
:mod:`igcore.search.solver`. The structure (L0) terms are not convex; a beam search over allowed sets
handles them: start from the MAP with every clause allowed (the weighted L1 already selects), then
repeatedly toggle one clause (remove a clause of the support - the others may take over - or add a
clause whose KKT condition is violated), solve every child warm-started from its parent in one batch,
keep the ``beam_width`` best children, and collect every distinct support seen; stop at a local optimum
(``patience`` + 1 rounds in a row without a child that beats the best so far) or after ``max_depth``
rounds. The ``n_ranked`` best form the ranked list, with ``posterior`` = softmax of the log posteriors
over that list (a normalised posterior restricted to the hypotheses found).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from igcore.errors import InputError
from igcore.hypothesis import Hypothesis
from igcore.likelihood import check_labels, check_scores, softmax
from igcore.prior.model import FlatPrior, HypothesisPrior
from igcore.search.params import SearchConfig
from igcore.search.solver import MAPProblem, SolverState, solve_map
from igcore.settings import validated
from igcore.worlds.base import Vocabulary


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
    gamma: float = 0.0  # the solver's last L-BFGS scaling (warm starts the next fit's solve of this set)
    state: tuple[SolverState, int] | None = None  # the solver's SolverState of this set's batch and its row (projected Newton)


#: Where a MAP solve starts: ``(weights (K, C), bias (C,))``, or with the L-BFGS scaling and the solver state (a
#: :class:`SolverState` and the set's row in it, or ``None``) of a previous solve of the same set.
_Start = tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, float, tuple[SolverState, int] | None]


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
        n_ranked: length of the ranked list (shorter only when fewer distinct clause sets exist).
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
        warm_start: the next ``fit`` starts each clause set this fit solved from its solution (fast re-solve after
            a prior change; the same search path, hence the same results as a cold fit up to the solver tolerance). On
            the same scores and labels, projected Newton solves also start from the solver's state there (F, gradient
            and last Hessian, repriced to the new penalties: :meth:`MAPProblem.reprice`), without a first evaluation.

    Attributes (after ``fit``):
        z_star_: the MAP :class:`Hypothesis`.
        ranked_: list of :class:`RankedHypothesis`, best first, posteriors summing to 1.
        relaxed_: the hypothesis of the MAP with every clause allowed (before the structure terms).
        n_solved_: MAP problems solved; fit_seconds_: wall time of the last fit.
    """

    #: Most parameters (K + 1) C of a MAP problem for which ``warm_start`` keeps the solver's state of every clause set
    #: solved (a (P, P) Hessian each; :class:`igcore.search.solver.SolverState`); larger problems keep their solutions only.
    CARRIED_PARAMETERS = 128

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

    def _solve(self, problem: MAPProblem, allowed_sets: list[frozenset[int]], starts: list[_Start]) -> list[_Entry]:
        """Solve each allowed set from its start ``(weights, bias)`` or ``(weights, bias, L-BFGS scaling)``."""
        k, c = problem.k, problem.c
        dev = problem.l1.device
        out: list[_Entry] = []
        for lo in range(0, len(allowed_sets), self.max_batch):
            sets = allowed_sets[lo : lo + self.max_batch]
            batch = starts[lo : lo + self.max_batch]
            allowed_np = np.zeros((len(sets), k * c), dtype=bool)
            for i, a in enumerate(sets):
                allowed_np[i, list(a)] = True
            allowed = torch.from_numpy(allowed_np).to(dev).reshape(len(sets), k, c)
            w0 = torch.as_tensor(np.stack([s[0] for s in batch]), dtype=torch.float64, device=dev)
            b0 = torch.as_tensor(np.stack([s[1] for s in batch]), dtype=torch.float64, device=dev)
            w0 = w0 * allowed
            gammas = [s[2] if len(s) > 2 else 0.0 for s in batch]
            gamma0 = torch.tensor(gammas, dtype=torch.float64, device=dev) if any(gammas) else None
            if self._presolve is not None:
                pre = solve_map(self._presolve, allowed, w0, b0, self.max_iter, max(self.tol, 1e-6), self.history)
                w0, b0 = pre.weights, pre.bias
                self.n_evals_presolve_ += pre.n_evals
            res = solve_map(problem, allowed, w0, b0, self.max_iter, self.tol, self.history, gamma0, self._carried_state(problem, batch))
            self.n_solved_ += len(sets)
            self.n_evals_ += res.n_evals
            self.max_solver_iter_ = max(self.max_solver_iter_, res.n_iter)
            w = res.weights.cpu().numpy()
            b = res.bias.cpu().numpy()
            nll = res.nll.cpu().numpy()
            obj = res.objective.cpu().numpy()
            grad = res.grad_weights.cpu().numpy()
            gamma = res.gamma.cpu().numpy() if res.gamma is not None else np.zeros(len(sets))
            st = res.state if self.warm_start and k * c + c <= self.CARRIED_PARAMETERS else None
            for i, a in enumerate(sets):
                flat = w[i].reshape(-1)
                support = frozenset(np.nonzero(flat > 0)[0].tolist())
                lp = -float(obj[i]) + self._structure(w[i] > 0)
                row = (st, i) if st is not None else None  # a reference: rows are gathered only when carried
                out.append(_Entry(a, support, w[i], b[i], float(nll[i]), float(obj[i]), lp, grad[i], float(gamma[i]), row))
        return out

    def _carried_state(self, problem: MAPProblem, starts: list[_Start]) -> SolverState | None:
        """The previous fit's solver states of these starts (zero rows without a Hessian where a start has none),
        repriced to ``problem``'s penalties: only for a warm re-solve on the same data (``self._carry``, that fit's problem)."""
        rows = [s[3] if len(s) > 3 else None for s in starts]
        if self._carry is None or not problem.newton or all(r is None for r in rows):
            return None
        return problem.reprice(self._carry, SolverState.gather(rows))

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
        problem = MAPProblem(
            s_t, torch.as_tensor(labels, device=dev), c_n, torch.as_tensor(l1, dtype=torch.float64, device=dev), l2, self.bias_l2
        )
        # warm start: the next fit under a new prior on the same data reuses this one's products of the scores and its
        # solver states (Newton)
        self._carry: MAPProblem | None = None
        if self.warm_start:
            previous_problem = getattr(self, "_problem", None)
            if previous_problem is not None and problem.same_data(previous_problem):
                problem.share_products(previous_problem)
                self._carry = previous_problem
            self._problem = problem
        self.n_solved_, self.max_solver_iter_, self.n_evals_, self.n_evals_presolve_ = 0, 0, 0, 0
        self._presolve: MAPProblem | None = None
        if self.presolve_rows is not None and n > 2 * self.presolve_rows:
            gen = torch.Generator(device="cpu").manual_seed(0)
            rows = torch.randperm(n, generator=gen)[: self.presolve_rows].to(dev)
            frac = self.presolve_rows / n
            self._presolve = MAPProblem(
                s_t[rows], problem.y[rows], c_n, problem.l1 * frac, l2 * frac, self.bias_l2 * frac
            )
            self._carry = None  # the full-data solve starts from the subsample's solution

        freq = np.bincount(labels, minlength=c_n) + 1.0
        b_init = np.log(freq / freq.sum())
        b_init -= b_init.mean()
        all_clauses = frozenset(range(k_n * c_n))
        # warm start: the search takes the path of a cold fit (same seeds, same moves, hence the same z* and ranked
        # list up to the solver's tolerance), but every clause set the previous fit solved starts from its previous
        # solution: one new rating moves the penalties a little, so each solve needs a few iterations
        previous: dict[frozenset[int], _Start] = getattr(self, "_warm", {}) if self.warm_start else {}
        if previous and next(iter(previous.values()))[0].shape != (k_n, c_n):
            previous = {}
        seeds: list[frozenset[int]] = [all_clauses, frozenset()]
        starts = [previous.get(a, (np.zeros((k_n, c_n)), b_init)) for a in seeds]
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
        beam = [root]
        if self.max_clauses is not None and len(root.support) > self.max_clauses:
            flat = root.weights.reshape(-1)
            keep = frozenset(np.argsort(-flat)[: self.max_clauses].tolist())
            (capped,) = self._solve(problem, [keep], [previous.get(keep, (root.weights, root.bias))])
            register([capped])
            beam = [capped]

        stale = 0
        for _depth in range(self.max_depth):
            best_so_far = max(e.log_posterior for e in found.values())
            children: dict[frozenset[int], _Start] = {}
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
                        children[child] = previous.get(child, (w0.reshape(k_n, c_n), parent.bias))
                for j in adds:
                    child = parent.allowed | {j}
                    if child not in solved and child not in children:
                        children[child] = previous.get(child, (parent.weights, parent.bias))
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
        self._warm = {a: (e.weights, e.bias, e.gamma, e.state) for a, e in solved.items()}
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
