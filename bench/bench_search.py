"""Benchmark: the z* search (exact MAP of the clause weights + structure search) on synthetic scores.

Two measurements, both on precomputed concept scores (no images):

1. **Re-solve after a prior change** on the default world's shape (N = 4000, K = 19, C = 2): a world-like
   score matrix, the shipped judgments, Prior_M fitted with the configured encoder; then several single
   rating edits, each followed by a Prior_M refit and a warm-started ``HypothesisSearch.fit``.
2. **Scaling** over N in {1e3, 1e4, 1e5, 1e6} x K in {12, 100, 300} (C = 2): synthetic scores (12
   informative concepts, 2 spuriously correlated "backgrounds", the rest noise), a synthetic prior of
   the same form as Prior_M (weighted L1 from plausibilities, weight L2, per-clause length cost).
   ``map_s`` is one exact MAP solve with every clause allowed (the convex part, batched with the
   empty hypothesis); ``fit_s`` is the full structure search. For N >= 1e5 the structure search uses a
   smaller beam (``--big-beam``: beam_width 1, 4 moves, 1 round, 4 ranked) - every round is a batch of
   full-data MAP solves, so its cost is (rounds x batch) passes over S.

3. **Precision**: one MAP solve at the largest N and K with float32 and float64 scores.
4. **Threads**: one MAP solve at the largest N with 1 and 2 torch threads (unless ``--threads`` fixes them).

Wall-clock time; the machine may be shared (load average is recorded). Writes ``docs/bench_search.md`` through
two generators of :data:`bench.registry.GENERATORS`: ``search-resolve`` (1., block ``bench-search-resolve``) and
``search`` (2.-4., block ``search``).

    python -m bench.bench_search --resolve-only [--encoder minilm] [--repeats 6] [--baseline REV]
    python -m bench.bench_search [--ns 1e3,1e4,1e5,1e6] [--ks 12,100,300] [--dtype float32]
                                 [--threads 0]

``--baseline REV`` adds a column: the re-solve with the engine of git revision REV, in the same invocation.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np
import pandas as pd
import torch

from bench.common import ROOT, load_average
from igcore import prior as P
from igcore.search import HypothesisSearch
from igcore.worlds.base import Concept, Vocabulary
from testkit.scores import CLASSES, world_scores

TITLE = "Benchmark: z* search (`igcore/search/`)"


# ------------------------------------------------------------------------------------------- data
def synthetic_scores(n: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """(N, K) float32 scores: ``n_inf`` informative concepts (agree with the class w.p. 0.9, alternating
    class), 2 backgrounds (agree w.p. 0.95), the rest independent of the class; logit noise, sigmoid."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    n_inf = min(12, k - 2) if k > 2 else k
    s = np.empty((n, k), dtype=np.float32)
    for j in range(k):
        if j < n_inf + 2:
            agree = 0.9 if j < n_inf else 0.95
            on = np.where(rng.random(n, dtype=np.float32) < agree, y == (j % 2), y != (j % 2))
        else:
            on = rng.random(n, dtype=np.float32) < 0.5
        z = (2 * on.astype(np.float32) - 1) * 2.5 + rng.standard_normal(n, dtype=np.float32)
        s[:, j] = 1 / (1 + np.exp(-z))
    return s, y, n_inf


class SyntheticPrior:
    """A prior of Prior_M's form for arbitrary K: plausibility 0.9 for an informative concept's own class,
    0.02 for the other, 0.01 for the backgrounds, 0.3 for noise concepts; strength 100, weight L2 1 nat,
    20 nats per clause."""

    def __init__(self, vocabulary: Vocabulary, n_inf: int) -> None:
        self.vocabulary = vocabulary
        k = len(vocabulary)
        p = np.full((k, 2), 0.3)
        for j in range(n_inf):
            p[j, j % 2], p[j, 1 - j % 2] = 0.9, 0.02
        p[n_inf : n_inf + 2] = 0.01
        self.l1 = 100.0 * -np.log(p)

    def clause_penalties(self, vocabulary: Vocabulary, classes: list[str]) -> tuple[np.ndarray, float]:
        return self.l1, 1.0

    def structure_log_prior(self, active: np.ndarray) -> float:
        return -20.0 * float(np.asarray(active).sum())

    def log_prior(self, hypothesis: Any) -> float:
        w, _ = hypothesis.to_matrix(self.vocabulary, CLASSES)
        return float(-(self.l1 * w).sum() - (w**2).sum()) + self.structure_log_prior(w > 0)


def synthetic_vocab(k: int, n_inf: int) -> Vocabulary:
    kinds = ["core"] * n_inf + ["context"] * 2 + ["distractor"] * (k - n_inf - 2)
    return Vocabulary(tuple(Concept(f"c{j}", f"concept {j}", kinds[j]) for j in range(k)))  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- runs
def bench_resolve(encoder: str, repeats: int) -> dict[str, Any]:
    vocab = Vocabulary.from_csv(ROOT / "assets" / "snowwolf_vocabulary.csv")
    s, y = world_scores(vocab, 4000, 0.95, seed=1)
    ratings = P.load_judgments_csv(P.SHIPPED_RATINGS, vocab, CLASSES)
    pairwise = P.load_pairwise_csv(P.SHIPPED_PAIRWISE, vocab, CLASSES)
    t = time.perf_counter()
    prior = P.PriorModel(encoder=encoder).fit(ratings, vocab, CLASSES, pairwise)
    first_prior = time.perf_counter() - t
    shipped_loco = prior.loco_error_
    search = HypothesisSearch(prior=prior, warm_start=True)
    t = time.perf_counter()
    search.fit(s, y, vocab, CLASSES)
    cold = time.perf_counter() - t
    edits = [("snowy_ground", "wolf", 5), ("rounded_ears", "wolf", 5), ("long_snout", "wolf", 1),
             ("amber_eyes", "wolf", 2), ("forest_floor", "husky", 4), ("pointed_ears", "husky", 5)]
    prior_times, solve_times, solve_cpu, solved, evals, same_as_cold = [], [], [], [], [], []
    for i in range(repeats):
        concept, cls, rating = edits[i % len(edits)]
        edit = pd.DataFrame([[f"bench{i}", concept, cls, rating]], columns=list(P.RATING_COLUMNS))
        ratings = pd.concat([ratings, edit], ignore_index=True)
        t = time.perf_counter()
        prior = P.PriorModel(encoder=encoder).fit(ratings, vocab, CLASSES, pairwise)
        prior_times.append(time.perf_counter() - t)
        search.prior = prior
        t, cpu = time.perf_counter(), time.process_time()
        search.fit(s, y, vocab, CLASSES)
        solve_times.append(time.perf_counter() - t)
        solve_cpu.append(time.process_time() - cpu)
        solved.append(search.n_solved_)
        evals.append(search.n_evals_)
        cold_search = HypothesisSearch(prior=prior).fit(s, y, vocab, CLASSES)  # not timed: the reference
        same_as_cold.append([r.hypothesis.structure for r in search.ranked_] == [r.hypothesis.structure for r in cold_search.ranked_])
    return {
        "encoder": prior.encoder_name_,
        "first_prior_fit_s": first_prior,
        "cold_fit_s": cold,
        "prior_refit_s": prior_times,
        "resolve_s": solve_times,
        "resolve_cpu_s": solve_cpu,
        "resolve_n_solved": solved,
        "resolve_n_evals": evals,
        "resolve_same_as_cold": same_as_cold,
        "loco": shipped_loco,
        "z_star": search.z_star_.render(vocab, CLASSES),
    }


def bench_scaling(n: int, k: int, dtype: str, big_beam: dict[str, int]) -> dict[str, Any]:
    t = time.perf_counter()
    s, y, n_inf = synthetic_scores(n, k, seed=0)
    gen = time.perf_counter() - t
    vocab = synthetic_vocab(k, n_inf)
    prior = SyntheticPrior(vocab, n_inf)
    t = time.perf_counter()
    one = HypothesisSearch(prior=prior, max_depth=0, n_ranked=2, dtype=dtype).fit(s, y, vocab, CLASSES)
    map_s = time.perf_counter() - t
    extra = big_beam if n >= 100_000 else {}
    t = time.perf_counter()
    full = HypothesisSearch(prior=prior, dtype=dtype, **extra).fit(s, y, vocab, CLASSES)
    fit_s = time.perf_counter() - t
    used = {c.concept for c in full.z_star_.clauses}
    return {
        "n": n, "k": k, "gen_s": gen, "map_s": map_s, "map_evals": one.n_evals_, "map_presolve_evals": one.n_evals_presolve_,
        "map_iters": one.max_solver_iter_, "fit_s": fit_s, "fit_solved": full.n_solved_, "fit_evals": full.n_evals_,
        "ranked": len(full.ranked_), "z_size": len(full.z_star_), "beam": "small" if extra else "default",
        "z_uses_background": bool(used & {f"c{n_inf}", f"c{n_inf + 1}"}),
    }


def bench_precision(n: int, k: int) -> dict[str, Any]:
    """float32 vs float64 scores for one MAP solve: time and the float64 objective of each solution."""
    from igcore.search import MAPProblem

    s, y, n_inf = synthetic_scores(n, k, seed=0)
    vocab = synthetic_vocab(k, n_inf)
    prior = SyntheticPrior(vocab, n_inf)
    exact = MAPProblem(torch.from_numpy(s).double(), torch.as_tensor(y), 2, torch.as_tensor(prior.l1), 1.0, 1e-4)
    out: dict[str, Any] = {"n": n, "k": k}
    for dtype in ("float64", "float32"):
        t = time.perf_counter()
        search = HypothesisSearch(prior=prior, max_depth=0, n_ranked=2, dtype=dtype).fit(s, y, vocab, CLASSES)
        out[f"{dtype}_s"] = time.perf_counter() - t
        w, b = search.relaxed_.to_matrix(vocab, CLASSES)
        w_t = torch.as_tensor(w)[None]
        x = torch.cat([w_t.reshape(1, -1), exact.centred_bias(w_t, torch.as_tensor(b)[None])], 1)
        out[f"{dtype}_objective"] = float(exact.fg(x, want_grad=False)[0][0])
    return out


def bench_threads(n: int, k: int) -> dict[int, float]:
    """One MAP solve with 1 and with 2 torch threads (best of 2 each)."""
    s, y, n_inf = synthetic_scores(n, k, seed=0)
    vocab = synthetic_vocab(k, n_inf)
    prior = SyntheticPrior(vocab, n_inf)
    out = {}
    for threads in (1, 2):
        best = math.inf
        for _ in range(2):
            t = time.perf_counter()
            HypothesisSearch(prior=prior, max_depth=0, n_ranked=2, dtype="float32", num_threads=threads).fit(s, y, vocab, CLASSES)
            best = min(best, time.perf_counter() - t)
        out[threads] = best
    return out


def baseline_resolve(rev: str, encoder: str, repeats: int) -> dict[str, Any]:
    """:func:`bench_resolve` with the engine of git revision ``rev`` (extracted to a temporary folder and
    imported there, in a subprocess): the "before" of a before/after comparison in one invocation."""
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        env = {**os.environ, "PYTHONPATH": tmp}  # igcore, bench.common and testkit of that revision
        args = [sys.executable, __file__, "--resolve-only", "--json", "--encoder", encoder, "--repeats", str(repeats)]
        done = subprocess.run(args, cwd=tmp, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def resolve_section(results: dict[str, dict[str, Any]], repeats: int) -> list[str]:
    """The re-solve report (the ``bench-search-resolve`` block): one column per engine measured."""
    names = list(results)
    last = results[names[-1]]

    def row(label: str, cell: Any) -> str:
        return f"| {label} | " + " | ".join(cell(results[n]) for n in names) + " |"

    def med_max(values: list[float]) -> str:
        return f"{statistics.median(values):.3f} / {max(values):.3f}"

    return [
        "## Re-solve z* after a prior change (N = 4000, K = 19, C = 2)",
        "",
        f"Encoder: {last['encoder']}. One new rating per edit ({repeats} edits); Prior_M refit, then "
        "`HypothesisSearch(warm_start=True).fit`; after each, a cold `HypothesisSearch.fit` under the same prior "
        "(not timed) says whether the re-solve found the same ranked list. Columns measured in one invocation, one "
        "after the other, on a machine shared with other jobs (load average in the last row); the search runs on one "
        "thread at this size, so its CPU time (process time) says less about the other jobs than the wall time.",
        "",
        "| step | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
        row("first Prior_M fit (incl. loading the encoder), s", lambda r: f"{r['first_prior_fit_s']:.3f}"),
        row("cold search (root MAP + structure search), s", lambda r: f"{r['cold_fit_s']:.3f}"),
        row("Prior_M refit after an edit (median / max), s", lambda r: med_max(r["prior_refit_s"])),
        row("**warm re-solve of z\\* and the ranked list** (median / max), s", lambda r: f"**{med_max(r['resolve_s'])}**"),
        row("CPU time of the warm re-solve (median / max), s", lambda r: med_max(r["resolve_cpu_s"]) if "resolve_cpu_s" in r else "n/a"),
        row("MAP problems solved per re-solve (median)", lambda r: f"{statistics.median(r['resolve_n_solved']):.0f}"),
        row("batched objective evaluations per re-solve (median)", lambda r: f"{statistics.median(r['resolve_n_evals']):.0f}"),
        row("re-solves whose ranked list is the cold solve's", lambda r: f"{sum(r['resolve_same_as_cold'])} of {len(r['resolve_same_as_cold'])}"),
        row("load average (1 min) after", lambda r: r["load"]),
        "",
        f"Prior_M (shipped judgments) leave-one-concept-out error of the text model: MAE {last['loco']['mae']:.3f}, RMSE "
        f"{last['loco']['rmse']:.3f} (predict-the-mean baseline: MAE {last['loco']['baseline_mae']:.3f}, RMSE "
        f"{last['loco']['baseline_rmse']:.3f}), over {last['loco']['n_concepts']} rated concepts.",
        "",
        f"z* after the last edit ({names[-1]}): {last['z_star']}",
    ]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ns", default="1e3,1e4,1e5,1e6")
    ap.add_argument("--ks", default="12,100,300")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = leave the search's own choice)")
    ap.add_argument("--encoder", default="minilm", choices=["minilm", "hashing"])
    ap.add_argument("--repeats", type=int, default=6, help="prior edits in the re-solve benchmark")
    ap.add_argument("--skip", default="", help="comma list of NxK to skip, e.g. 1e6x100")
    ap.add_argument("--resolve-only", action="store_true",
                    help="only the re-solve benchmark (the bench-search-resolve block; generator search-resolve)")
    ap.add_argument("--baseline", metavar="REV", help="also time the re-solve with the engine of git revision REV (before/after)")
    ap.add_argument("--json", action="store_true", help="print the re-solve results as one JSON line, write nothing")
    args = ap.parse_args(argv)
    if args.json:  # the "before" of --baseline: bench.common is that revision's, which may predate Report
        print(json.dumps(bench_resolve(args.encoder, args.repeats) | {"load": load_average().split()[0]}, default=float))
        return
    from bench.common import Report

    # Two generators share this script: the re-solve (``--resolve-only``) and the scaling, precision and threads.
    report = Report("search-resolve" if args.resolve_only else "search", argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    big_beam = {"beam_width": 1, "max_moves": 4, "max_depth": 1, "n_ranked": 4}
    ns = [int(float(v)) for v in args.ns.split(",")]
    ks = [int(v) for v in args.ks.split(",")]
    skip = {tuple(int(float(p)) for p in item.split("x")) for item in args.skip.split(",") if item}
    load_start = load_average()

    if args.resolve_only:
        results: dict[str, dict[str, Any]] = {}
        if args.baseline:
            print(f"re-solve benchmark, engine of {args.baseline} ...", flush=True)
            results[f"engine of {args.baseline}"] = baseline_resolve(args.baseline, args.encoder, args.repeats)
        print("re-solve benchmark ...", flush=True)
        results["this commit"] = bench_resolve(args.encoder, args.repeats) | {"load": load_average().split()[0]}
        for name, r in results.items():
            print(f"  {name}: cold {r['cold_fit_s']:.3f}s, re-solves {[round(x, 3) for x in r['resolve_s']]}", flush=True)
        report.block("docs/bench_search.md", "bench-search-resolve", "\n".join(resolve_section(results, args.repeats)),
                     title=TITLE)
        report.publish()
        return
    rows = []
    for k in ks:
        for n in ns:
            if (n, k) in skip:
                continue
            r = bench_scaling(n, k, args.dtype, big_beam)
            rows.append(r)
            print(f"  N={n:>8} K={k:>3}: map {r['map_s']:.2f}s ({r['map_evals']}+{r['map_presolve_evals']} evals), "
                  f"fit {r['fit_s']:.2f}s ({r['fit_solved']} solves, {r['beam']} beam)  load {load_average()}", flush=True)

    big_n, big_k = max(ns), max(ks)
    precision = bench_precision(min(big_n, 100_000), big_k)
    threads = {k: bench_threads(big_n, k) for k in dict.fromkeys((min(ks), big_k))} if not args.threads else None
    lines = [
        f"Search threads: {str(args.threads) if args.threads else 'the search default (1 if N*K < 4e6, else min(torch default, CPUs - 1))'}. "
        f"Load average (1/5/15 min) at start: {load_start}; at end: {load_average()} - the machine is shared with other "
        "jobs, so times are upper bounds and vary run to run.",
        "",
        f"## Scaling (C = 2, scores {args.dtype})",
        "",
        "`map_s`: one exact MAP solve with all K x C clauses allowed (projected Newton where the exact Hessian is cheap "
        "(`MAPProblem.newton`: small K), else projected L-BFGS; to tol = 1e-8 x N; from "
        "N > 100k warm-started on a 50k-row subsample). `fit_s`: the whole search (root + structure rounds + "
        "ranked list); `small` beam = beam_width 1, 4 moves, 1 round, 4 ranked (N >= 1e5). `evals`: batched "
        "passes over the full S (+ subsample passes). Data generation is not timed.",
        "",
        "| N | K | map_s | map evals (+presolve) | fit_s | solves | beam | ranked | abs(z*) | z* uses a background |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | {r['k']} | {r['map_s']:.2f} | {r['map_evals']} (+{r['map_presolve_evals']}) | {r['fit_s']:.2f} | "
            f"{r['fit_solved']} | {r['beam']} | {r['ranked']} | {r['z_size']} | {'yes' if r['z_uses_background'] else 'no'} |"
        )
    lines += [
        "",
        "Cost model: one evaluation of F and its gradient is two passes over S (S @ W and G^T @ S), memory-bound "
        "for large N x K (1e6 x 300 float32 = 1.2 GB per pass), so time is linear in N x K x evaluations; the "
        "structure search adds (rounds x beam x moves) solves, batched so that each batch still streams S once "
        "per evaluation.",
        "",
    ]
    if precision is not None:
        gap = precision["float32_objective"] - precision["float64_objective"]
        lines += [
            f"## float32 vs float64 scores (one MAP solve, N = {precision['n']:,}, K = {precision['k']})",
            "",
            "| dtype | seconds | objective F (evaluated in float64) |",
            "|---|---|---|",
            f"| float64 | {precision['float64_s']:.2f} | {precision['float64_objective']:.6f} |",
            f"| float32 | {precision['float32_s']:.2f} | {precision['float32_objective']:.6f} |",
            "",
            f"The float32 solution is {gap:+.2e} nats from the float64 one (F is about {precision['float64_objective']:.0f} nats): "
            "float32 GEMMs and per-example terms with float64 sums stop at the float32 noise floor.",
            "",
        ]
    if threads is not None:
        lines += [
            f"## Threads (one MAP solve, N = {big_n:,}, float32, best of 2)",
            "",
            "| K | 1 thread (s) | 2 threads (s) |",
            "|---|---|---|",
            *[f"| {k} | {t[1]:.2f} | {t[2]:.2f} |" for k, t in threads.items()],
            "",
            "A second intra-op thread stalls at every barrier while another job keeps the other cores busy, which is why "
            "the search's default is at most (CPU count - 1) threads; the table shows how it went on this machine.",
        ]
    report.block("docs/bench_search.md", "search", "\n".join(lines), title=TITLE)
    report.publish()


if __name__ == "__main__":
    main()
