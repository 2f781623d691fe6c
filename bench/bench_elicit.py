"""Benchmark: how many ratings until z* is the z* of all ratings, in the Prior page's order vs a random one.

A simulated rater starts from **no ratings** and answers questions about clauses from a held-back
ratings file (the run's own judgments: ``prior.judgments`` when the run names one, else the shipped
ratings); clauses the file does not rate are skipped (a skip is not an answer). After every answer
Prior_M is refitted and z* re-solved exactly as the Prior page does (:func:`igcore.resolve.resolve`, a cold
solve each time, so z* is a function of the ratings given so far). Counted: the number of answers
after which z*'s clause set equals that of z* fitted on the whole file, **and stays equal** for every
later answer.

Orders compared:

- **page**: :func:`igcore.prior.elicit.question_order` on the current state, re-ranked after every
  ``batch`` answers (``--batch``; the page shows :data:`igcore.prior.elicit.DEFAULT_BATCH` per form);
- **random**: a uniformly random order of the unrated clauses (``--seeds`` orders; mean ± std).

``--rater all`` (default): one answer reveals every held-back rating of that clause (the clause's mean
rating with its weight), so after the last answer the ratings are exactly the file; ``--rater NAME``:
one answer is that rater's rating, and the target is z* fitted on that rater's ratings alone.

Also measured, at the start (no ratings): how well the score's fast test predicts a change of z*
(every unrated clause rated 1 and rated 5 by a probe rater, each re-solved exactly), and the time of
one :func:`question_order` against one re-solve.

    python -m bench.bench_elicit --runs RUNS [--n 4800] [--set KEY=VALUE ...]   # makes the two runs it reports
    python -m bench.bench_elicit RUN_DIR [RUN_DIR ...] [--seeds 5] [--batch 1 5] [--rater all]

A run needs only its ``world`` and ``concepts`` stages (the concept scores of D). With ``--runs`` the benchmark
makes two in ``RUNS/elicit``: Snow and Wolves with the shipped judgments (the default config), and the
Waterbirds-layout data set of ``testkit/byod_data.py`` (``--n`` images) with its simulated judgments.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from bench.common import Report
from igcore.config import build_config
from igcore.prior import Judgments, fit_prior
from igcore.prior.elicit import DEFAULT_BATCH, STOP_WINDOW, question_order, stopping_signal
from igcore.resolve import resolve
from igcore.search import search_from_config
from igcore.store import Run, load_run_dir

WINDOWS = (3, STOP_WINDOW, 10)
#: "near": z* is within this many nats of the target in the all-ratings posterior (posterior odds < e^3 ~ 20:1).
NEAR_NATS = 3.0
#: "same answers": z* labels at least this share of D′_eval as the target does.
SAME_ANSWERS = 0.99
PROBE = "probe"
#: The probe of the fast test starts from the held-back ratings of this share of the clauses.
PROBE_FRACTION = 0.5


@dataclass
class Case:
    """One run: its data, the held-back ratings and the target clause set."""

    run: Run
    world: str
    heldout: pd.DataFrame
    judgments: Judgments  # the run's own (its pairwise preferences are kept in every solve)
    source: str
    scores: np.ndarray
    labels: np.ndarray
    clauses: list[tuple[str, str]]
    target: frozenset[tuple[str, str]] = frozenset()
    target_lp: dict[frozenset[tuple[str, str]], float] = field(default_factory=dict)
    target_answers: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    resolve_seconds: list[float] = field(default_factory=list)
    order_seconds: list[float] = field(default_factory=list)
    prior_overrides: dict[str, Any] = field(default_factory=dict)

    def solve(self, ratings: pd.DataFrame) -> Any:
        """z* on ``ratings`` as the Prior page re-solves it (:func:`igcore.resolve.resolve`); with ``--prior-set``,
        the same steps with the run's ``prior`` section changed (a what-if the page does not offer)."""
        start = time.perf_counter()
        if self.prior_overrides:
            out = self._what_if(ratings)
        else:
            out = resolve(self.run, replace(self.judgments, ratings=ratings))
        self.resolve_seconds.append(time.perf_counter() - start)
        return out

    def _what_if(self, ratings: pd.DataFrame) -> Any:
        config = self.run.config
        config = build_config({**config, "prior": {**config["prior"], **self.prior_overrides}}, stored=True)
        vocabulary, classes = self.run.vocabulary()
        prior = fit_prior(config.prior, replace(self.judgments, ratings=ratings), vocabulary, classes)
        search = search_from_config(config.search, prior, "cpu").fit(self.scores, self.labels, vocabulary, classes)
        test_eval = self.run.tensors("concept_scores")["test_eval"]
        return SimpleNamespace(search=search, z_star=search.z_star_, test_eval_proba=search.predict_proba(test_eval))

    def order(self, solved: Any, ratings: pd.DataFrame) -> pd.DataFrame:
        start = time.perf_counter()
        table = question_order(solved.search, self.scores, self.labels, ratings)
        self.order_seconds.append(time.perf_counter() - start)
        return table


def load_case(path: str, rater: str, prior_overrides: dict[str, Any] | None = None) -> Case:
    run = load_run_dir(path)
    config = run.config_model()
    vocabulary, classes = run.vocabulary()
    judgments = run.judgments()
    source = "; ".join(f"{s.key} {Path(s.where).name}" for s in judgments.provenance.of("ratings")) or "no ratings"
    heldout = judgments.ratings[["rater", "concept", "class", "rating"]]
    if rater != "all":
        if rater not in set(heldout["rater"]):
            raise SystemExit(f"error: no rater {rater!r} in {source}; raters: {', '.join(sorted(set(heldout['rater'])))}")
        heldout = heldout[heldout["rater"] == rater]
    case = Case(
        run=run, world=str(config.world.name), heldout=heldout.reset_index(drop=True), judgments=judgments,
        source=source, scores=run.tensors("concept_scores")["train"],
        labels=run.table("split_train")["label"].to_numpy(),
        clauses=[(k, c) for k in vocabulary.ids for c in classes], prior_overrides=dict(prior_overrides or {}),
    )
    final = case.solve(case.heldout)
    case.target = final.z_star.structure
    case.target_lp = {r.hypothesis.structure: r.log_posterior for r in final.search.ranked_}
    case.target_answers = final.test_eval_proba.argmax(1)
    return case


@dataclass
class Step:
    """z* after some answers: its clause set and its answers on D′_eval (L_M(·|x′, z*))."""

    structure: frozenset[tuple[str, str]]
    answers: np.ndarray


def step(solved: Any) -> Step:
    return Step(solved.z_star.structure, solved.test_eval_proba.argmax(1))


def answer(case: Case, ratings: pd.DataFrame, clause: tuple[str, str]) -> pd.DataFrame | None:
    """The ratings after the simulated rater answers ``clause`` (None: the held-back file has no answer: skip)."""
    rows = case.heldout[(case.heldout["concept"] == clause[0]) & (case.heldout["class"] == clause[1])]
    if rows.empty:
        return None
    return pd.concat([ratings, rows], ignore_index=True)


def simulate(case: Case, order: str, seed: int = 0, batch: int = 1) -> dict[str, Any]:
    """Answer until every clause was asked; z*'s clause set after each answer (entry 0: no ratings)."""
    rng = np.random.default_rng(seed)
    ratings = case.heldout.iloc[:0]
    solved = case.solve(ratings)
    history = [step(solved)]
    asked: set[tuple[str, str]] = set()
    fixed = [case.clauses[i] for i in rng.permutation(len(case.clauses))] if order == "random" else []
    queue: list[tuple[str, str]] = []
    skips = 0
    while len(asked) < len(case.clauses):
        if order == "random":
            queue = [c for c in fixed if c not in asked][:1]
        elif not queue:
            table = case.order(solved, ratings)
            ranked = [(k, c) for k, c in zip(table["concept"], table["class"], strict=True) if (k, c) not in asked]
            queue = ranked[:batch]
        clause = queue.pop(0)
        asked.add(clause)
        new = answer(case, ratings, clause)
        if new is None:
            skips += 1
            continue
        ratings = new
        solved = case.solve(ratings)
        history.append(step(solved))
    return {"history": history, "skips": skips}


def answers_needed(ok: list[bool]) -> int | None:
    """The least m with ok[m'] for every m' >= m (None: the last one is not ok)."""
    if not ok[-1]:
        return None
    m = len(ok) - 1
    while m > 0 and ok[m - 1]:
        m -= 1
    return m


def outcome(case: Case, history: list[Step]) -> dict[str, Any]:
    """The counts of one simulation: strict (z*'s clause set is the target's), near (z* is within
    :data:`NEAR_NATS` of the target in the all-ratings posterior's ranked list) and same answers (z* labels
    at least :data:`SAME_ANSWERS` of D′_eval as the target does)."""
    best = max(case.target_lp.values())
    strict = [h.structure == case.target for h in history]
    near = [best - case.target_lp.get(h.structure, -np.inf) <= NEAR_NATS for h in history]
    same = [float((h.answers == case.target_answers).mean()) >= SAME_ANSWERS for h in history]
    return {
        "needed": answers_needed(strict), "needed_near": answers_needed(near), "needed_same": answers_needed(same),
        "stops": stop_points([h.structure for h in history], case.target),
        "trajectory": [len(h.structure ^ case.target) for h in history],
    }


def stop_points(history: list[frozenset], target: frozenset) -> dict[int, dict[str, Any]]:
    """Per window k: the first answer count at which the stopping signal says 'stable', and whether z*
    then already was the target."""
    out = {}
    for k in WINDOWS:
        first = None
        for m in range(1, len(history)):
            if stopping_signal(list(enumerate(history[: m + 1])), window=k).stable:
                first = m
                break
        out[k] = {"at": first, "correct": None if first is None else history[first] == target}
    return out


def probe_bound(case: Case, fraction: float = PROBE_FRACTION, seed: int = 0) -> dict[str, Any]:
    """Does the fast test predict the re-solve? From the held-back ratings of a random ``fraction`` of the
    clauses (at no ratings every first rating moves every guess, which is no test), every unrated clause is
    rated 1 and 5 by a probe rater and z* re-solved."""
    rng = np.random.default_rng(seed)
    rated = case.heldout[["concept", "class"]].drop_duplicates()
    keep = rated.iloc[rng.permutation(len(rated))[: int(round(fraction * len(rated)))]]
    ratings = case.heldout.merge(keep, on=["concept", "class"])[list(case.heldout.columns)]
    solved = case.solve(ratings)
    table = case.order(solved, ratings)
    base = solved.z_star.structure
    rows = []
    for rec in table.to_dict("records"):
        for value in (1, 5):
            probe = pd.concat([ratings, pd.DataFrame([[PROBE, rec["concept"], rec["class"], value]], columns=list(ratings.columns))],
                              ignore_index=True)
            changed = case.solve(probe).z_star.structure != base
            predicted = value in rec["flip_answers"]
            rows.append({"clause": (rec["concept"], rec["class"]), "rating": value, "predicted": predicted, "changed": changed,
                         "flip_probability": rec["flip_probability"]})
    df = pd.DataFrame(rows)
    per_clause = df.groupby("clause").agg(changed=("changed", "any"), p=("flip_probability", "first"))
    top = per_clause.sort_values("p", ascending=False)
    n_change = int(per_clause["changed"].sum())
    hits = int(top.head(n_change)["changed"].sum()) if n_change else 0
    tp = int((df.predicted & df.changed).sum())
    return {
        "state": f"{len(keep)} of {len(rated)} clauses rated (seed {seed})",
        "n_clauses": len(per_clause), "n_tests": len(df), "agree": float((df.predicted == df.changed).mean()),
        "tp": tp, "fp": int((df.predicted & ~df.changed).sum()), "fn": int((~df.predicted & df.changed).sum()),
        "clauses_that_change": n_change, "top_hits": hits,
    }


def critical_clauses(case: Case) -> dict[str, Any]:
    """Which clauses' ratings z* of all ratings depends on: leave one clause's ratings out, re-solve.

    Any order needs at least as many answers as the position of its last critical clause (the last answer
    about such a clause changes z*), so asking every critical clause first bounds what an order can do:
    ``n_critical``; a random order's last critical clause comes, on average, at ``c (n + 1) / (c + 1)``.
    """
    clauses = case.heldout[["concept", "class"]].drop_duplicates().itertuples(index=False, name=None)
    critical = []
    for k, c in clauses:
        rest = case.heldout[~((case.heldout["concept"] == k) & (case.heldout["class"] == c))]
        if case.solve(rest).z_star.structure != case.target:
            critical.append((k, c))
    n, c = int(case.heldout[["concept", "class"]].drop_duplicates().shape[0]), len(critical)
    return {"critical": critical, "n_critical": c, "random_last_critical": c * (n + 1) / (c + 1)}


def fmt(values: list[int | None]) -> str:
    done = [v for v in values if v is not None]
    if len(done) < len(values):
        return f"{len(done)} of {len(values)} reached"
    return f"{statistics.mean(done):.1f} ± {statistics.stdev(done):.1f}" if len(done) > 1 else str(done[0])


#: The stages of the benchmark's runs: the world, the concept model and the vocabulary that writes the concept
#: scores :func:`load_case` reads (``tensors/concept_scores``).
CASE_STAGES = ("world", "concepts", "vocabulary")


def make_runs(runs: Path, n: int, sets: list[str]) -> list[str]:
    """The two runs the documented benchmark reports (:data:`CASE_STAGES`), made in ``runs/elicit`` unless
    complete ones are there."""
    from bench.bench_byod import ensure_data, world_sets
    from igcore.config import load_config
    from igcore.pipeline import run_pipeline

    folder = runs / "elicit"
    data = ensure_data(folder / "byod-data", n, 96)
    out = []
    for run_id, world in (("waterbirds", world_sets(data)), ("snowwolf", [])):
        if not (folder / run_id / "manifest.json").is_file():
            run_pipeline(load_config(None, [*sets, *world, f"run_id={run_id}"]), folder, stages=list(CASE_STAGES), progress=False)
        out.append(str(folder / run_id))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", help="run directories (world + concepts stages)")
    parser.add_argument("--runs", dest="runs_root", type=Path, help="make the documented runs in this folder instead")
    parser.add_argument("--n", type=int, default=4800, help="with --runs: images of the Waterbirds-layout data set")
    parser.add_argument("--set", action="append", default=[], help="with --runs: config overrides of both runs")
    parser.add_argument("--seeds", type=int, default=5, help="random orders")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, DEFAULT_BATCH], help="page-order batch sizes")
    parser.add_argument("--rater", default="all", help="'all' or one rater of the held-back file")
    parser.add_argument("--no-probe", action="store_true", help="skip the check of the fast test against re-solves")
    parser.add_argument("--no-critical", action="store_true", help="skip the leave-one-clause-out bound")
    parser.add_argument("--prior-set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="what-if: change keys of the run's prior section (e.g. shrinkage=0)")
    parser.add_argument("--json", default=None, help="also write the raw results here")
    parser.add_argument("--reuse", default=None, help="raw results of an earlier invocation: parts already computed for the "
                        "same run, prior settings and parameters are taken from there (the same code gives the same numbers)")
    args = parser.parse_args(argv)
    report = Report("elicit", argv)
    if args.runs_root:
        args.runs = make_runs(args.runs_root, args.n, args.set)
    if not args.runs:
        parser.error("give run directories or --runs")

    earlier = json.loads(Path(args.reuse).read_text()) if args.reuse else []
    results = []
    for path in args.runs:
        overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.prior_set)}
        case = load_case(path, args.rater, overrides)
        print(f"{case.world}: {len(case.clauses)} clauses, {case.heldout[['concept', 'class']].drop_duplicates().shape[0]} rated in "
              f"{case.source}; target z* = {sorted(case.target)}", flush=True)
        res: dict[str, Any] = {"world": case.world, "run": case.run.run_id, "source": case.source, "prior_set": overrides,
                               "n_clauses": len(case.clauses), "target": sorted(case.target),
                               "n_answerable": int(case.heldout[["concept", "class"]].drop_duplicates().shape[0])}
        old = next((r for r in earlier if r["run"] == res["run"] and r.get("prior_set") == overrides
                    and r["target"] == json.loads(json.dumps(res["target"]))), {})
        for b in args.batch:
            if f"page_b{b}" in old:
                res[f"page_b{b}"] = old[f"page_b{b}"]
                continue
            sim = simulate(case, "page", batch=b)
            res[f"page_b{b}"] = {**outcome(case, sim["history"]), "skips": sim["skips"]}
            print(f"  page order, batch {b}: {res[f'page_b{b}']}", flush=True)
        randoms = list(old.get("random", []))[: args.seeds]
        for seed in range(len(randoms), args.seeds):
            sim = simulate(case, "random", seed=seed)
            randoms.append(outcome(case, sim["history"]))
            print(f"  random order {seed}: {randoms[-1]}", flush=True)
        res["random"] = randoms
        if not args.no_probe:
            state = f"{int(round(PROBE_FRACTION * res['n_answerable']))} of {res['n_answerable']} clauses rated (seed 0)"
            res["probe"] = old["probe"] if old.get("probe", {}).get("state") == state else probe_bound(case)
            print(f"  probe: {res['probe']}", flush=True)
        if not args.no_critical:
            res["critical"] = old.get("critical") or critical_clauses(case)
            print(f"  critical: {res['critical']}", flush=True)
        res["resolve_s"] = statistics.median(case.resolve_seconds) if len(case.resolve_seconds) > 1 else old.get("resolve_s")
        res["order_s"] = statistics.median(case.order_seconds) if case.order_seconds else old.get("order_s")
        results.append(res)

    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    report.block("docs/ELICIT.md", "elicit", "\n".join(render(results, args)), title="Eliciting ratings")
    report.publish()


def render(results: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    """The benchmark's Markdown block."""
    what_if = ", ".join(f"prior.{k} = {v}" for k, v in (results[0].get("prior_set") or {}).items()) if results else ""
    lines = [
        *([f"What-if: {what_if}.", ""] if what_if else []),
        "How many ratings does a rater have to give, starting from none, before z* is the z* of all ratings and",
        "stays so? The simulated rater answers from the held-back ratings file (`--rater "
        f"{args.rater}`: " + ("one answer reveals every rating of that clause in the file" if args.rater == "all" else "one rater's ratings")
        + "); clauses the file does not rate are skipped. z* is re-solved cold after every answer. The score and why it",
        "is defined so are described above.",
        "",
        "Three measures of \"z* is there\": **strict**, z*'s clause set is that of the z* of all ratings (the acceptance "
        "criterion); **near**, z* is one of the hypotheses within "
        f"{NEAR_NATS:g} nats of it in the all-ratings posterior (posterior odds under e^{NEAR_NATS:g} ≈ 20 : 1); "
        f"**same answers**, L_M(·|x′, z*) labels at least {100 * SAME_ANSWERS:g}% of D′_eval as the z* of all ratings does. "
        "Each counts the answers after which the measure holds and keeps holding.",
        "",
        "| world | clauses (rated in the file) | measure | page order, re-ranked every answer | page order, re-ranked every "
        f"{DEFAULT_BATCH} (the page) | random order (mean ± std, {args.seeds} orders) | page / random | ≤ ½? |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for key, measure in (("needed", "strict"), ("needed_near", "near"), ("needed_same", "same answers")):
            rnd = [x[key] for x in r["random"]]
            page = {b: r.get(f"page_b{b}", {}).get(key) for b in args.batch}
            page_batch = page.get(DEFAULT_BATCH, page.get(args.batch[-1]))
            ratio, met = "n/a", "no"
            if page_batch is not None and all(v is not None for v in rnd) and statistics.mean(rnd) > 0:
                ratio = f"{page_batch / statistics.mean(rnd):.2f}"
                met = "yes" if page_batch <= statistics.mean(rnd) / 2 else "no"
            lines.append(
                f"| {r['world']} | {r['n_clauses']} ({r['n_answerable']}) | {measure} | {page.get(1, 'n/a')} | {page_batch} | "
                f"{fmt(rnd)} | {ratio} | {met} |"
            )
    if any("critical" in r for r in results):
        lines += ["", "**How much any order can do (strict measure).** A clause is *critical* when leaving out only its "
                  "ratings changes the z* of all ratings; the last answer about a critical clause changes z*, so an order "
                  "needs at least as many answers as the position of its last critical clause. Asking all critical clauses "
                  "first needs at least *c* answers; a random order's last critical clause comes at *c*(n + 1)/(c + 1) on "
                  "average.", "",
                  "| world | answerable clauses n | critical c | best order needs ≥ | random order's last critical (mean) | best / random |",
                  "|---|---|---|---|---|---|"]
        for r in results:
            c = r.get("critical")
            if c:
                lines.append(f"| {r['world']} | {r['n_answerable']} | {c['n_critical']} | {c['n_critical']} | "
                             f"{c['random_last_critical']:.1f} | {c['n_critical'] / max(c['random_last_critical'], 1e-9):.2f} |")
    lines += ["", "z*'s clause set after all ratings (the target):", ""]
    for r in results:
        lines.append(f"- {r['world']} ({r['source']}): " + ", ".join(f"{k} ⇒ {c}" for k, c in r["target"]))
    lines += ["", "### The stopping signal", "",
              "The page says z* has stopped changing once the last *k* answers left it unchanged. When would that have "
              "said stop, and was z* then already the z* of all ratings?", "",
              "| world | order | " + " | ".join(f"k = {k}: stops after | right?" for k in WINDOWS) + " |",
              "|---|---|" + "---|---|" * len(WINDOWS)]
    for r in results:
        runs = [(f"page (batch {b})", r[f"page_b{b}"]) for b in args.batch] + [(f"random {i}", x) for i, x in enumerate(r["random"])]
        for name, x in runs:
            cells = []
            for k in WINDOWS:
                s = x["stops"][k] if k in x["stops"] else x["stops"][str(k)]
                cells += [str(s["at"]) if s["at"] is not None else "never", {True: "yes", False: "no", None: "–"}[s["correct"]]]
            lines.append(f"| {r['world']} | {name} | " + " | ".join(cells) + " |")
    lines += ["", "### Distance to the target along the way", "",
              "Clauses in which z* differs from the target (symmetric difference) after 0, 1, 2, … answers.", ""]
    for r in results:
        for b in args.batch:
            lines.append(f"- {r['world']}, page (batch {b}): {' '.join(map(str, r[f'page_b{b}']['trajectory']))}")
        lines.append(f"- {r['world']}, random 0: {' '.join(map(str, r['random'][0]['trajectory']))}")
    if any("probe" in r for r in results):
        lines += ["", "### Does the fast test predict a change of z*?", "",
                  "From the held-back ratings of half the clauses (a random half), every unrated clause rated 1 and rated 5 by one "
                  "probe rater, each followed by an exact re-solve (at no ratings the first rating moves every guess, so every "
                  "answer changes z* and the test is trivially right); "
                  "*predicted* = the answer is one of the clause's `flip_answers`. "
                  "*Top hits*: of the clauses whose rating changes z* (for 1 or for 5), how many are among the same number of "
                  "clauses ranked first.", "",
                  "| world | tests | agree | true pos. | false pos. | false neg. | clauses whose rating changes z* | top hits |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in results:
            p = r.get("probe")
            if p:
                lines.append(f"| {r['world']} | {p['n_tests']} | {100 * p['agree']:.0f}% | {p['tp']} | {p['fp']} | {p['fn']} | "
                             f"{p['clauses_that_change']} of {p['n_clauses']} | {p['top_hits']} |")
    lines += ["", "### Speed", "", "| world | one question order (median) | one re-solve: Prior_M fit + z* search (median) |", "|---|---|---|"]
    for r in results:
        lines.append(f"| {r['world']} | {1000 * r['order_s']:.0f} ms | {r['resolve_s']:.2f} s |")
    return lines


if __name__ == "__main__":
    main()
