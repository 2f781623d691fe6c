"""Benchmark of concept discovery (igcore/discover/) → docs/DISCOVER.md.

For every seed:

(a) **Background withheld.** Snow-and-Wolves at rho 0.99 with its background annotations withheld
    (``world.hide_concepts``): does erm's most important discovered component align with the hidden
    background, is its ablation effect on erm clear of 0 and at least 3× its effect on the IG student?
(b) **Labels only.** Snow-and-Wolves (its images written out as PNGs) and the BYOD bench data
    (``testkit/byod_data.py``) as folder manifests of ``path,label,split`` plus the ``group`` column, whose
    ``place::`` concepts are withheld: no concept of any kind is annotated. A first run discovers erm's
    components; a **simulated namer** names each one after the hidden concept it aligns with best on
    D′_train (ROC AUC of its presence score) when that AUC is at least 0.8 and leaves it unnamed otherwise;
    **simulated raters** rate each named clause as the shipped ratings rate the concept it was named after
    (the Snow-and-Wolves ratings, or the BYOD data set's ``judgments_bench.csv``); the second run uses both
    (``discover.names``, ``prior.judgments``). Does z* avoid the background, and how far above erm is the
    student's worst group?
(c) **Error-slice baseline** (Domino-style; Eyuboglu et al., 2022): a scikit-learn Gaussian mixture over
    erm's validation set — its pooled last-stage features (PCA), the label and erm's answer, the error
    indicators weighted up so the components follow the errors — whose most error-prone component is the
    slice; its membership on D′_eval is scored like a component (AUC against the same hidden concept).
(d) **A shortcut nobody anticipated.** Handwritten digits (scikit-learn's copy of the UCI digits) with a small tag
    in one corner that goes with the class in D and not in D′ (``bench/tagged_digits.py``), as a labels-only
    manifest whose only trace of the tag is the withheld ``group`` column: is erm's most relied-on component the
    tag, does the oracle not rely on it, and does the run's Discover page draw every section?

Hidden concepts are only ever read by this script, from the same worlds built without hiding. Runs of (a) and (b) skip
the microscope (its attributions and TCAV are not what is measured; ``microscope.models`` still lists
erm and ig_student, whose ablation effects are measured) and the oracle. With ``--timing`` one default
run with discovery and one without (seed 0) give discovery's share of the default run.

    python -m bench.regenerate --only discover      # the documented settings: five seeds, every part and the timing
    python -m bench.bench_discover --seeds 0 --parts a   # one experiment, one seed
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import ROOT, Report
from igcore.config import load_config
from igcore.discover import measure_together
from igcore.pipeline import run_pipeline
from igcore.stages import select_stages
from igcore.store import Run, load_run_dir

DOC = "docs/DISCOVER.md"
SNOWWOLF_BACKGROUND = ("snowy_ground", "grassy_ground", "forest_floor")
NAMER_AUC = 0.8  # the simulated namer names a component when it aligns this well with a hidden concept
EFFECT_MODELS = '["erm","ig_student"]'
SKIP = ("oracle", "microscope")


# ------------------------------------------------------------------------------------------ running


#: ``--set`` overrides of every run (quick checks).
EXTRA: list[str] = []


def run(sets: list[str], out: Path, stages: list[str] | None = None, skip: tuple[str, ...] = SKIP) -> tuple[Run, float]:
    """One pipeline run of ``stages`` (default: the default selection less ``skip``)."""
    config = load_config(None, [*sets, *EXTRA])
    chosen = stages or [s.name for s in select_stages(config) if s.name not in skip]
    start = time.perf_counter()
    path = run_pipeline(config, out, stages=chosen, progress=False)
    return load_run_dir(path), time.perf_counter() - start


def auc(scores: np.ndarray, truth: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(truth, scores)) if 0 < truth.sum() < len(truth) else None


def hidden_aucs(scores: np.ndarray, truth: np.ndarray, ids: list[str]) -> list[dict[str, float]]:
    """Per component: AUC of its presence against every hidden concept (columns of ``truth``)."""
    out = []
    for k in range(scores.shape[1]):
        row = {cid: a for j, cid in enumerate(ids) if (a := auc(scores[:, k], truth[:, j])) is not None}
        out.append(row)
    return out


def discovered_scores(r: Run, split: str) -> np.ndarray:
    return r.tensors("scores", "discover/erm")[f"score_{split}"]


# --------------------------------------------------------------------------------- hidden ground truth


class Truth:
    """Hidden annotations of a run's images: ``ids``, ``texts``, ``kinds`` and a (N, K) 0/1 matrix per split."""

    def __init__(self, ids: list[str], texts: dict[str, str], background: list[str], per_split: dict[str, np.ndarray]):
        self.ids, self.texts, self.background, self.per_split = ids, texts, background, per_split


#: ``world.*`` overrides of every Snow-and-Wolves world of the benchmark (``--snowwolf``; empty: the defaults).
SNOWWOLF: dict[str, Any] = {}


def snowwolf_sets() -> list[str]:
    return [f"world.{k}={json.dumps(v)}" for k, v in SNOWWOLF.items()]


def snowwolf_truth(seed: int) -> Truth:
    from igcore.worlds import make_world

    world = make_world("snowwolf", seed=seed, **SNOWWOLF)
    return Truth(world.vocabulary.ids, {c.id: c.text for c in world.vocabulary.concepts}, list(SNOWWOLF_BACKGROUND),
                 {s: world.split(s).concepts for s in ("train", "val", "test_train", "test_eval")})


def folder_order(r: Run) -> dict[str, np.ndarray]:
    """Manifest rows of each split of a labels-only run's folder world (rebuilt from its config: same rows, same order)."""
    from igcore.worlds import build_world

    config = r.config_model()
    world = build_world(config.world, config.seed)
    return {s: world.split(s).latents["source_row"] for s in ("train", "val", "test_train", "test_eval")}


# ------------------------------------------------------------------------------- labels-only data


def export_snowwolf(seed: int, folder: Path) -> tuple[Path, np.ndarray, Truth]:
    """Snow-and-Wolves (default sizes, ``seed``) as PNGs + ``labels_only.csv``; the hidden annotations per row."""
    from PIL import Image

    from igcore.worlds import make_world

    world = make_world("snowwolf", seed=seed, **SNOWWOLF)
    folder.mkdir(parents=True, exist_ok=True)
    rows, truth = [], []
    for split, code in (("train", "train"), ("val", "val"), ("test_train", "test"), ("test_eval", "test")):
        s = world.split(split)
        for i in range(len(s)):
            rel = f"{split}/{i:05d}.png"
            path = folder / rel
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(s.images[i]).save(path)
            rows.append((rel, world.classes[s.labels[i]], code, world.backgrounds[s.background[i]]))
        truth.append(s.concepts)
    manifest = folder / "labels_only.csv"
    with manifest.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "split", "group"])
        w.writerows(rows)
    full = Truth(world.vocabulary.ids, {c.id: c.text for c in world.vocabulary.concepts}, list(SNOWWOLF_BACKGROUND),
                 {"rows": np.concatenate(truth)})
    return manifest, np.arange(len(rows)), full


def export_byod(data: Path) -> tuple[Path, Truth]:
    """The BYOD bench data as ``labels_only.csv`` (path,label,split,group); the hidden annotations per row
    (CUB attributes and ``place::`` categories, from the waterbirds world with everything annotated)."""
    from igcore.worlds import make_world

    world = make_world("waterbirds", root=data, cub_root=data / "CUB_200_2011", vocabulary=data / "vocabulary_bench.csv",
                       concept_bank="train+val", cache_dir=data / "cache")
    rows, per_file = [], {}
    for split in ("train", "val", "test_train", "test_eval"):
        s = world.split(split)
        for i, row in enumerate(s.latents["source_row"]):
            per_file[world.files[row]] = s.concepts[i]
    meta = list(csv.DictReader((data / "metadata.csv").open()))
    split_name = {"0": "train", "1": "val", "2": "test"}
    truth = []
    for r in meta:
        path = (data / r["img_filename"]).resolve()
        rows.append((r["img_filename"], world.classes[int(r["y"])], split_name[r["split"]], world.backgrounds[int(r["place"])]))
        truth.append(per_file[path])
    manifest = data / "labels_only.csv"
    with manifest.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "split", "group"])
        w.writerows(rows)
    places = [c.id for c in world.vocabulary.concepts if c.id.startswith("place::")]
    return manifest, Truth(world.vocabulary.ids, {c.id: c.text for c in world.vocabulary.concepts}, places, {"rows": np.stack(truth)})


def simulated_names(scores: np.ndarray, truth: np.ndarray, t: Truth) -> tuple[dict[str, str], dict[str, str]]:
    """The simulated namer: component → text of the hidden concept it aligns with best (AUC >= NAMER_AUC)."""
    names, after = {}, {}
    for k, row in enumerate(hidden_aucs(scores, truth, t.ids)):
        if row:
            best = max(row, key=row.__getitem__)
            if row[best] >= NAMER_AUC:
                names[f"discovered::erm/{k}"], after[f"discovered::erm/{k}"] = t.texts[best], best
    return names, after


def write_names(names: dict[str, str], path: Path) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["component", "text"])
        w.writerows(sorted(names.items()))
    return path


def carried_ratings(after: dict[str, str], ratings: Path, path: Path) -> Path:
    """Simulated raters: each named clause rated as the shipped ratings rate the concept it was named after."""
    rows = list(csv.DictReader(ratings.open()))
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["rater", "concept", "class", "rating"])
        for component, concept in sorted(after.items()):
            w.writerows([r["rater"], component, r["class"], r["rating"]] for r in rows if r["concept"] == concept)
    return path


# ------------------------------------------------------------------------------------ measurements


def component_facts(r: Run, truth_eval: np.ndarray, t: Truth) -> dict[str, Any]:
    """erm's components against the hidden background: the best-aligned one, its rank and effects; the top one."""
    section = r.metrics["discover"]["erm"]
    aucs = hidden_aucs(discovered_scores(r, "test_eval"), truth_eval, t.ids)
    background = [max([row.get(b, 0.0) for b in t.background]) for row in aucs]
    best = int(np.argmax(background))
    ranking = section["ranking"]["erm"]
    top = int(ranking[0].split("/")[1])
    comps = section["components"]

    def effect(k: int, model: str) -> dict[str, float]:
        return comps[k]["effects"][model]["overall"]

    bg_of = {k: max((b for b in t.background if b in aucs[k]), key=lambda b: aucs[k][b], default=None) for k in (best, top)}
    present = r.tensors("scores", "discover/erm")["p_test_eval"][:, best] >= 0.5
    agree = float((present == truth_eval[:, t.ids.index(bg_of[best])].astype(bool)).mean()) if bg_of[best] else None
    return {
        "best_agree": agree,
        "k": section["k"], "best": best, "best_auc": background[best], "best_concept": bg_of[best],
        "best_rank": ranking.index(f"discovered::erm/{best}") + 1,
        "top": top, "top_auc": background[top], "top_concept": bg_of[top],
        "top_erm": effect(top, "erm"), "top_student": effect(top, "ig_student"),
        "r2_student": section["transfer_r2"].get("ig_student"),
    }


#: A run's world (rebuilt from its config), its erm, and erm's pooled last-stage features (N, C) of a split.
LastStage = tuple[Any, Any, Callable[[str], np.ndarray]]


def erm_last_stage(r: Run) -> LastStage:
    """:data:`LastStage` of run ``r``: what the slice baseline and the probes read, built once per run."""
    from igcore.discover.layers import capture, resolve_site
    from igcore.worlds import build_world

    config = r.config_model()
    world = build_world(config.world, config.seed)
    erm = r.load_model("erm", device="cpu")
    site = resolve_site(erm.module_, "last")
    return world, erm, lambda split: capture(erm.module_, site, world.split(split).images, device=erm.device_).mean(axis=(1, 2))


def slice_baseline(stage: LastStage, split_truth: dict[str, np.ndarray], concept: str, t: Truth, seed: int) -> float | None:
    """Domino-style error slice on erm's val set, scored on D′_eval: AUC against hidden ``concept``."""
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    world, erm, pooled = stage

    def inputs(split: str) -> tuple[np.ndarray, np.ndarray]:
        s = world.split(split)
        feats = pooled(split)
        pred = erm.predict(s.images)
        n = len(world.classes)
        return feats, np.concatenate([np.eye(n)[s.labels], np.eye(n)[pred], (pred != s.labels)[:, None]], axis=1)

    fv, yv = inputs("val")
    pca = PCA(n_components=min(16, fv.shape[1]), random_state=seed).fit(fv)
    scale = np.std(pca.transform(fv))
    gamma = 10.0 * scale  # labels, answers and errors weigh as much as the features (Domino's y/ŷ weighting)
    zv = np.concatenate([pca.transform(fv), gamma * yv], axis=1)
    gm = GaussianMixture(n_components=8, covariance_type="diag", random_state=seed).fit(zv)
    resp = gm.predict_proba(zv)
    errors = yv[:, -1]
    rate = (resp * errors[:, None]).sum(0) / np.maximum(resp.sum(0), 1e-9)
    worst = int(np.argmax(rate))
    fe, ye = inputs("test_eval")
    member = gm.predict_proba(np.concatenate([pca.transform(fe), gamma * ye], axis=1))[:, worst]
    return auc(member, split_truth["test_eval"][:, t.ids.index(concept)])


# -------------------------------------------------------------------------------------- experiments


def experiment_a(seed: int, out: Path) -> dict[str, Any]:
    t = snowwolf_truth(seed)
    sets = [f"seed={seed}", *snowwolf_sets(), f"world.hide_concepts={json.dumps(list(SNOWWOLF_BACKGROUND))}",
            f"microscope.models={EFFECT_MODELS}",
            f"run_id=discover-a-s{seed}-{time.strftime('%H%M%S')}"]
    r, wall = run(sets, out)
    facts = component_facts(r, t.per_split["test_eval"], t)
    facts["slice_auc"] = slice_baseline(erm_last_stage(r), t.per_split, facts["best_concept"], t, seed) if facts["best_concept"] else None
    return {"run": r, "seconds": wall, **facts, **outcome(r)}


def outcome(r: Run) -> dict[str, Any]:
    m = r.results().methods
    z = r.metrics["hypotheses"]["z_star"]
    return {"erm_wga": m["erm"].worst_group_acc, "student_wga": m["ig_student"].worst_group_acc,
            "direct_wga": m["ig_direct"].worst_group_acc,
            "z_star": r.metrics["hypotheses"]["z_star_text"], "z_clauses": z,
            "stage_seconds": {k: v["seconds"] for k, v in r.manifest["stages"].items()}}


def experiment_b(name: str, seed: int, manifest: Path, t: Truth, ratings: Path, out: Path, cache: Path,
                 extra: list[str]) -> dict[str, Any]:
    """Labels-only: discover, name (simulated), rate (simulated, carried), re-run with both."""
    places = sorted({row[3] for row in csv.reader(manifest.open()) if row[3] != "group"})
    base = [f"seed={seed}", "world.name=folder", f"world.manifest={manifest}", f"world.cache_dir={cache}",
            f"world.hide_concepts={json.dumps([f'place::{p}' for p in places])}", f"microscope.models={EFFECT_MODELS}", *extra]
    stamp = time.strftime("%H%M%S")
    first, wall1 = run([*base, f"run_id=discover-b-{name}-s{seed}-{stamp}-found"], out, stages=["world", "erm", "discover"])
    truth = {s: t.per_split["rows"][rows] for s, rows in folder_order(first).items()}
    names, after = simulated_names(discovered_scores(first, "test_train"), truth["test_train"], t)
    folder = out / f"names-{name}-s{seed}-{stamp}"
    folder.mkdir(parents=True, exist_ok=True)
    named_sets = [*base, f"run_id=discover-b-{name}-s{seed}-{stamp}-named"]
    if names:
        named_sets += [f"discover.names={write_names(names, folder / 'names_simulated.csv')}",
                       f"prior.judgments={carried_ratings(after, ratings, folder / 'ratings_simulated.csv')}"]
    r, wall2 = run(named_sets, out)
    same = np.array_equal(first.tensors("components", "discover/erm")["components"], r.tensors("components", "discover/erm")["components"])
    facts = component_facts(r, truth["test_eval"], t)
    background_named = {c: after[c] for c in after if after[c] in t.background}
    z_background = [c["concept"] for c in r.metrics["hypotheses"]["z_star"] if c["concept"] in background_named]
    stage = erm_last_stage(r)
    facts["slice_auc"] = slice_baseline(stage, truth, facts["best_concept"], t, seed) if facts["best_concept"] else None
    facts.update(bound(r, [c for c in after if after[c] not in t.background]))
    facts.update(probe=probe_aucs(stage, truth, t), hidden_texts=t.texts, hidden_background=t.background,
                 val_student_wga=val_selected_student(stage, r), variants=factorisation_variants(stage, r, truth, t))
    return {"run": r, "seconds": wall1 + wall2, "names": names, "after": after, "same_components": same,
            "z_background": z_background, "alike": r.metrics["discover"]["erm"].get("named_alike", []), **facts, **outcome(r)}


def alike_rows(res: list[tuple[int, dict[str, Any]]], models: tuple[str, ...] = ("erm", "ig_student")) -> list[str]:
    """Per seed and simulated name that several components share: the effect on each model of removing them all at
    once (``discover.<source>.named_alike``), and the ratio |erm| / |ig_student|."""
    lines = ["| seed | simulated name | components | " + " | ".join(f"removed together: effect on {m} [95% CI]" for m in models)
             + " | ratio |", "|---" * (4 + len(models)) + "|"]
    for seed, r in res:
        for group in r["alike"]:
            e = group["effects"]
            lines.append(f"| {seed} | {group['text']} | {len(group['components'])} | "
                         + " | ".join(effect_text(e[m]["overall"]) for m in models)
                         + f" | {abs(e[models[0]]['overall']['mean']) / max(abs(e[models[1]]['overall']['mean']), 1e-9):.1f} |")
    return lines


#: The tagged digits (bench/tagged_digits.py): the shares of D whose tag agrees with the class, the models whose
#: reliance on each component is measured (the oracle, trained on D′ where the tag says nothing of the class, is the
#: reference that should not rely on it), the stages run (no z*: nothing about the digits is annotated or named).
TAG_RHOS = (0.99, 0.95)
TAG_MODELS = '["erm","oracle"]'
TAG_STAGES = ["world", "erm", "oracle", "discover", "discover_effects"]
TAG_ALIGNED = 0.9  # a component "is the tag" from this AUC on
TAG_VALUES = ("tag", "no tag")  # the withheld group column's values: a component aligns with the tag or with its absence
TAG_ABSENT_TEXT = "a plain top-left corner"  # the simulated namer's name for a component of the tag's absence


def experiment_tag(seed: int, rho: float, out: Path, copies: int) -> dict[str, Any]:
    """An unanticipated shortcut: discover erm's concepts on the tagged digits (labels only), score every component
    against the hidden tag, compare erm's reliance on it with the oracle's, and open the run's Discover page."""
    from bench.tagged_digits import TAG_TEXT, export_tagged_digits
    from testkit.apptest import discover_page

    data = export_tagged_digits(out / f"tagged-digits-s{seed}-rho{rho}", seed=seed, rho=rho, copies=copies)
    sets = [f"seed={seed}", "world.name=folder", f"world.manifest={data.manifest}", f"world.cache_dir={out / 'cache'}",
            'world.hide_concepts=["place::tag","place::no_tag"]', f"microscope.models={TAG_MODELS}",
            f"run_id=discover-tag-s{seed}-rho{rho}-{time.strftime('%H%M%S')}"]
    r, wall = run(sets, out, stages=TAG_STAGES)
    # the withheld column's two values are two hidden concepts, as a background's places are: the tag and the bare corner
    truth = {s: np.stack([data.tag[rows], 1 - data.tag[rows]], axis=1) for s, rows in folder_order(r).items()}
    section = r.metrics["discover"]["erm"]
    tag_auc = [max(row.values(), default=0.5) for row in hidden_aucs(discovered_scores(r, "test_eval"), truth["test_eval"], list(TAG_VALUES))]
    ranking = [int(c.split("/")[1]) for c in section["ranking"]["erm"]]
    aligned = [k for k in ranking if tag_auc[k] >= TAG_ALIGNED]  # erm's order: most relied on first
    best, top = (aligned[0] if aligned else int(np.argmax(tag_auc))), ranking[0]

    def effect(k: int, model: str) -> dict[str, float]:
        return section["components"][k]["effects"][model]["overall"]

    t = Truth(list(TAG_VALUES), {"tag": TAG_TEXT, "no tag": TAG_ABSENT_TEXT}, list(TAG_VALUES), {})
    sections, problems = discover_page(out, r.run_id)
    # the simulated namer of (b) names the components after the tag or its absence (on D′_train); the components given one
    # name are then removed together on the finished run, as the Discover page's "Measure them together" does
    names, _ = simulated_names(discovered_scores(r, "test_train"), truth["test_train"], t)
    groups = {text: [c for c in names if names[c] == text] for text in dict.fromkeys(names.values())}
    started = time.perf_counter()
    together = measure_together(r, {text: ids for text, ids in groups.items() if len(ids) > 1})
    m = r.results().methods
    return {"run": r, "seconds": wall, "k": section["k"], "aligned": len(aligned), "best": best, "best_auc": tag_auc[best],
            "named": {text: len(ids) for text, ids in groups.items()}, "together": together,
            "together_seconds": time.perf_counter() - started,
            "best_rank": ranking.index(best) + 1,
            "top": top, "top_auc": tag_auc[top], "top_erm": effect(top, "erm"), "top_oracle": effect(top, "oracle"),
            "slice_auc": None if (a := slice_baseline(erm_last_stage(r), truth, "tag", t, seed)) is None else max(a, 1 - a),
            "erm_wga": m["erm"].worst_group_acc, "oracle_wga": m["oracle"].worst_group_acc,
            "sections": sections, "page_problems": problems}


TAG_FIGURE = "docs/discover_tag_exemplars.png"


def tag_figure(r: Run, k: int, path: Path, n: int = 8) -> None:
    """The ``n`` D′_eval images where erm's component ``k`` of run ``r`` is most present: as they are (top row) and with
    the component's map overlaid (bottom row), as the Discover page shows them."""
    from PIL import Image

    from dashboard.components.images import overlay, upscale
    from igcore.discover import DiscoveryView

    view = DiscoveryView(r)
    component = f"discovered::erm/{k}"
    chosen = view.exemplars(component, n)
    images, maps = view.images(chosen), view.maps(component, chosen)
    factor = max(1, 128 // images.shape[1])
    gap = np.full((images.shape[1] * factor, 4, 3), 255, np.uint8)

    def row(tiles: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([x for t in tiles for x in (t, gap)][:-1], axis=1)

    top, bottom = row([upscale(i, factor) for i in images]), row([overlay(i, m, factor=factor) for i, m in zip(images, maps, strict=True)])
    Image.fromarray(np.concatenate([top, np.full((4, top.shape[1], 3), 255, np.uint8), bottom])).save(path)


def tag_met(res: dict[str, Any]) -> bool:
    """erm's most relied-on component is the tag (AUC >= 0.9), clearly, and at least 3x more than the oracle."""
    return bool(res["top_auc"] >= TAG_ALIGNED and excludes_zero(res["top_erm"]) and ratio(res, "top_oracle") >= 3)


def tag_together_met(group: dict[str, Any] | None) -> bool:
    """The components the simulated namer named the tag, removed together: an effect on erm whose interval excludes 0
    and that is at least 3x the oracle's (False where the namer gave the tag's name to fewer than two components)."""
    if group is None:
        return False
    erm, oracle = group["effects"]["erm"]["overall"], group["effects"]["oracle"]["overall"]
    return bool(excludes_zero(erm) and abs(erm["mean"]) >= 3 * abs(oracle["mean"]))


def tag_report(res: list[tuple[int, float, dict[str, Any]]]) -> list[str]:
    """Section (d) of the report: one row per seed and rho, then per rho the mean ± sd and the acceptance count."""
    from bench.tagged_digits import TAG_TEXT

    lines = ["### (d) A shortcut nobody anticipated: a tag in the corner of handwritten digits", "",
             "scikit-learn's copy of the UCI handwritten digits (a data set this project uses nowhere else), each scan drawn "
             "larger, turned and shifted at random, the class whether the digit is even or odd. `bench/tagged_digits.py` (this "
             f"project's generator) puts {TAG_TEXT} on the odd digits of D with probability rho and on the even ones with "
             "probability 1 − rho, and on half of every class of D′. The manifest is `path,label,split,group` with the tag only in "
             "the `group` column, whose `place::` concepts are withheld: nothing in the run's vocabulary describes the tag or the "
             "digits. The runs stop after the discovery stages (no z*: nothing is named in the run); the ablation effects are measured on erm "
             "and on the oracle (trained on D′_train with its labels, where the tag says nothing of the class). Tag AUC: ROC AUC of "
             "a component's presence on D′_eval against the hidden tag or against its absence, whichever is higher (the withheld "
             "column's two values are two hidden concepts, as the places of (b) are), computed by this script; the slice "
             "baseline's likewise. The Discover page of each run is "
             "opened as a new session would open it (`testkit.apptest.discover_page`).", "",
             f"| seed | rho | K | components aligned with the tag (AUC ≥ {TAG_ALIGNED}) | rank of the first of them (erm) | its tag AUC "
             "| slice baseline AUC (tag) "
             "| erm's top component: tag AUC | its effect on erm [95% CI] | on the oracle [95% CI] | ratio | erm worst group % "
             "| oracle worst group % | Discover page: sections drawn, problems | seconds |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for seed, rho, r in res:
        slice_auc = "–" if r["slice_auc"] is None else f"{r['slice_auc']:.3f}"
        first = (r["best_rank"], f"{r['best_auc']:.3f}") if r["aligned"] else ("–", f"best {r['best_auc']:.3f}")
        lines.append(f"| {seed} | {rho} | {r['k']} | {r['aligned']} | {first[0]} | {first[1]} | {slice_auc} | {r['top_auc']:.3f} | "
                     f"{effect_text(r['top_erm'])} | {effect_text(r['top_oracle'])} | {ratio(r, 'top_oracle'):.1f} | {100 * r['erm_wga']:.1f} | "
                     f"{100 * r['oracle_wga']:.1f} | {sum(r['sections'].values())} of {len(r['sections'])}, {len(r['page_problems'])} | "
                     f"{r['seconds']:.0f} |")
    lines.append("")
    for rho in dict.fromkeys(rho for _, rho, _ in res):
        rs = [r for _, x, r in res if x == rho]
        met = [tag_met(r) for r in rs]
        lines.append(f"- **rho {rho}**: components aligned with the tag {mean_sd([r['aligned'] for r in rs])}, the rank of the first "
                     f"{mean_sd([r['best_rank'] for r in rs if r['aligned']])} (seeds with any: {sum(r['aligned'] > 0 for r in rs)} of {len(rs)}); erm's top component's tag AUC {mean_sd([r['top_auc'] for r in rs], digits=3)}; "
                     f"slice baseline AUC {mean_sd([r['slice_auc'] for r in rs], digits=3)}; worst group erm "
                     f"{mean_sd([r['erm_wga'] for r in rs], 100)} %, oracle {mean_sd([r['oracle_wga'] for r in rs], 100)} %. erm's most "
                     f"relied-on component is the tag (AUC ≥ {TAG_ALIGNED}), its effect on erm has an interval excluding 0 and is ≥ 3× its effect "
                     f"on the oracle: **{sum(met)} of {len(met)} seeds**.")
    lines += ["", "Named by the **simulated namer** of (b) (a component is named after the hidden concept it aligns with best on "
              f"D′_train, the tag or the plain corner, when that AUC ≥ {NAMER_AUC}; a simulation of a person, not a person), the "
              "components given one name are removed together on the finished run, as the Discover page's \"Measure them "
              "together\" does for names given there (`igcore.discover.measure_together`): the model's reliance on the named "
              "concept, not on one of its components.", "",
              "| seed | rho | simulated names (components) | simulated name | removed together: effect on erm [95% CI] "
              "| on the oracle [95% CI] | ratio | seconds to measure the run's names |", "|---|---|---|---|---|---|---|---|"]
    for seed, rho, r in res:
        named = ", ".join(f"{text} ({n})" for text, n in r["named"].items()) or "none"
        for text, group in r["together"].items() or [("–", None)]:
            if group is None:
                lines.append(f"| {seed} | {rho} | {named} | – | – | – | – | – |")
                continue
            e, o = group["effects"]["erm"]["overall"], group["effects"]["oracle"]["overall"]
            lines.append(f"| {seed} | {rho} | {named} | {text} | {effect_text(e)} | {effect_text(o)} | "
                         f"{abs(e['mean']) / max(abs(o['mean']), 1e-9):.1f} | {r['together_seconds']:.1f} |")
    lines.append("")
    for rho in dict.fromkeys(rho for _, rho, _ in res):
        rs = [r for _, x, r in res if x == rho]
        tags = [r["together"].get(TAG_TEXT) for r in rs]
        met = [tag_together_met(g) for g in tags]
        lines.append(f"- **rho {rho}**: “{TAG_TEXT}” given to two or more components in {sum(g is not None for g in tags)} of "
                     f"{len(rs)} seeds; removed together, its effect on erm "
                     f"{mean_sd([g['effects']['erm']['overall']['mean'] for g in tags if g], digits=2)}, on the oracle "
                     f"{mean_sd([g['effects']['oracle']['overall']['mean'] for g in tags if g], digits=2)}; an interval on erm "
                     f"excluding 0 and ≥ 3× the oracle's: **{sum(met)} of {len(met)} seeds**.")
    figure = next((r["figure"] for _, _, r in res if "figure" in r), None)
    if figure:
        lines += ["", f"![erm's most relied-on component on the tagged digits]({Path(TAG_FIGURE).name})", "",
                  f"The D′_eval images where erm's most relied-on component ({figure}) is most present, as they are (top) and "
                  "with the component's map overlaid (bottom), as the Discover page shows them."]
    drawn = all(all(r["sections"].values()) and not r["page_problems"] for _, _, r in res)
    lines += ["", f"The Discover page drew every section with no error on {'every' if drawn else 'not every'} run of this part."
              + ("" if drawn else " Problems: " + "; ".join(p for _, _, r in res for p in r["page_problems"])), ""]
    return lines


def bound(r: Run, components: list[str]) -> dict[str, Any]:
    """What the named non-background components can support at best: worst-group accuracy on D′_eval of a logistic
    regression on their calibrated presence, fitted on D (what a likelihood on D can find) and on D′_eval itself
    (a ceiling that uses evaluation labels; a diagnostic of this benchmark, never anything the engine sees)."""
    if not components:
        return {"bound_d": None, "bound_ceiling": None}
    cols = [int(c.split("/")[1]) for c in components]
    p = r.tensors("scores", "discover/erm")
    train, test = r.table("split_train"), r.table("split_test_eval")
    evaluation = (p["p_test_eval"][:, cols], test["label"].to_numpy(), test["group"].to_numpy(), r.metrics["world"]["groups"])
    return {"bound_d": regression_worst_group(p["p_train"][:, cols], train["label"].to_numpy(), *evaluation),
            "bound_ceiling": regression_worst_group(p["p_test_eval"][:, cols], test["label"].to_numpy(), *evaluation)}


def regression_worst_group(x_fit: np.ndarray, y_fit: np.ndarray, x_eval: np.ndarray, y_eval: np.ndarray, groups: np.ndarray,
                           group_names: list[str]) -> float:
    """Worst-group accuracy on (``x_eval``, ``y_eval``) of a logistic regression fitted on (``x_fit``, ``y_fit``)."""
    from sklearn.linear_model import LogisticRegression

    from igcore.evaluate import group_metrics

    pred = LogisticRegression(max_iter=1000).fit(x_fit, y_fit).predict(x_eval)
    return group_metrics(y_eval, pred, groups, group_names)["worst_group_acc"]


#: Other factorisations of erm's activations than the engine's (a diagnostic of what bounds labels-only data):
#: label -> (layer alias, explained-energy threshold, how positions are changed before NMF, one NMF per answered class).
VARIANTS: dict[str, tuple[str, float, str, bool]] = {
    "the engine's: last stage, energy 0.95": ("last", 0.95, "as they are", False),
    "energy 0.98": ("last", 0.98, "as they are", False),
    "each image's mean position removed (what stands out of its image)": ("last", 0.95, "image mean removed", False),
    "one factorisation per class erm answers (as ACE and CRAFT do)": ("last", 0.95, "as they are", True),
    "penultimate stage": ("penultimate", 0.95, "as they are", False),
}


def factorisation_variants(stage: LastStage, r: Run, truth: dict[str, np.ndarray], t: Truth) -> dict[str, dict[str, Any]]:
    """Each of :data:`VARIANTS` on erm of run ``r``, everything else as the engine does it (the same fitted positions,
    K candidates, calibration): K, the components the simulated namer names after a concept that is not background, and
    :func:`bound`'s worst group fitted on D for them (None when there are none)."""
    from igcore.discover.calibrate import PresenceCalibration
    from igcore.discover.discovery import fit_sample
    from igcore.discover.factorize import ConceptFactorization, presence_scores
    from igcore.discover.layers import capture, resolve_site

    world, erm, _ = stage
    config = r.config_model()
    seed, params = config.seed, config.discover
    splits = {s: world.split(s) for s in ("train", "test_train", "test_eval")}
    rows = fit_sample(splits, params.images, seed)
    fit_answers = np.concatenate([erm.predict(splits[s].images[rows[s]]) for s in ("train", "test_train")])
    captured: dict[str, dict[str, np.ndarray]] = {}
    out = {}
    for label, (layer, energy, change, per_class) in VARIANTS.items():
        if layer not in captured:
            site = resolve_site(erm.module_, layer)
            captured[layer] = {s: capture(erm.module_, site, split.images, device=erm.device_) for s, split in splits.items()}
        grids = captured[layer]
        if change == "image mean removed":
            grids = {s: np.maximum(g - g.mean(axis=(1, 2), keepdims=True), 0) for s, g in grids.items()}
        fit = np.concatenate([grids["train"][rows["train"]], grids["test_train"][rows["test_train"]]])

        def factorise(x: np.ndarray, energy: float = energy) -> ConceptFactorization:
            return ConceptFactorization(params.k, tuple(params.k_candidates), energy, seed).fit(x)

        if per_class:
            parts = [factorise(fit[fit_answers == c]) for c in np.unique(fit_answers)]
            f = parts[0]
            f.components_ = np.concatenate([p.components_ for p in parts])
            f.k_ = len(f.components_)
        else:
            f = factorise(fit)
        calibration = PresenceCalibration(seed).fit(presence_scores(f.transform(fit)))
        p = {s: calibration.predict_proba(presence_scores(f.transform(g))) for s, g in grids.items()}
        _, after = simulated_names(p["test_train"], truth["test_train"], t)
        cols = [int(c.split("/")[1]) for c in after if after[c] not in t.background]
        test = splits["test_eval"]
        worst = regression_worst_group(p["train"][:, cols], splits["train"].labels, p["test_eval"][:, cols], test.labels,
                                       test.groups, r.metrics["world"]["groups"]) if cols else None
        out[label] = {"k": f.k_, "named_other": len(cols), "concepts": sorted({after[f"discovered::erm/{k}"] for k in cols}),
                      "bound_d": worst}
    return out


def variants_table(res: list[tuple[int, dict[str, Any]]]) -> list[str]:
    """:func:`factorisation_variants` over seeds: one row per variant."""
    texts = res[0][1]["hidden_texts"]
    lines = ["| factorisation of erm's activations | K | components named after a concept that is not background | seeds with any "
             "| named after (seeds) | worst group on D′_eval of a logistic regression on them, fitted on D, % (seeds with any) |",
             "|---|---|---|---|---|---|"]
    for label in VARIANTS:
        vs = [r["variants"][label] for _, r in res]
        counts: dict[str, int] = {}
        for v in vs:
            for c in v["concepts"]:
                counts[c] = counts.get(c, 0) + 1
        named_after = ", ".join(f"{texts.get(c, c)} ({n})" for c, n in sorted(counts.items(), key=lambda kv: -kv[1])) or "–"
        lines.append(f"| {label} | {mean_sd([v['k'] for v in vs])} | {mean_sd([v['named_other'] for v in vs])} | "
                     f"{sum(v['named_other'] > 0 for v in vs)} of {len(vs)} | {named_after} | {mean_sd([v['bound_d'] for v in vs], 100)} |")
    return lines


def val_selected_student(stage: LastStage, r: Run) -> float:
    """What the student's epoch rule is worth: worst-group accuracy on D′_eval of ig_student trained again on the run's
    own pseudo-labels (all of D′_train), its epoch chosen by accuracy on ``val`` (D's distribution) as the models trained
    on D's labels choose theirs, instead of keeping its last epoch (:mod:`igcore.imitate`)."""
    from igcore.baseline import ImageClassifier
    from igcore.evaluate import group_metrics

    world, _, _ = stage
    stored = json.loads((r.model_dir("ig_student") / "estimator.json").read_text())["params"]  # the run's own student settings
    student = ImageClassifier(**{**stored, "device": "cpu", "progress": False, "name": "ig_student (val)"})
    val, test = world.split("val"), world.split("test_eval")
    student.fit(world.split("test_train").images, r.tensors("pseudo_labels")["test_train"], val=(val.images, val.labels))
    return group_metrics(test.labels, student.predict(test.images), test.groups, r.metrics["world"]["groups"])["worst_group_acc"]


def probe_aucs(stage: LastStage, truth: dict[str, np.ndarray], t: Truth) -> dict[str, float]:
    """What erm's last stage holds of each hidden concept, whatever a factorisation makes of it: ROC AUC on D′_train of a
    logistic regression on erm's pooled last-stage features fitted on D (a diagnostic with the hidden annotations,
    never anything the engine sees)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    _, _, pooled_of = stage
    pooled = {s: pooled_of(s) for s in ("train", "test_train")}
    out = {}
    for j, cid in enumerate(t.ids):
        y_fit, y_test = truth["train"][:, j], truth["test_train"][:, j]
        if 0 < y_fit.sum() < len(y_fit) and 0 < y_test.sum() < len(y_test):
            clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(pooled["train"], y_fit)
            out[cid] = auc(clf.decision_function(pooled["test_train"]), y_test)
    return out


def probe_sentence(res: list[tuple[int, dict[str, Any]]]) -> str:
    """The probes of :func:`probe_aucs`, mean over seeds: the backgrounds' range, the other concepts' median and range,
    and the three best and three worst of those."""
    t_texts, background = res[0][1]["hidden_texts"], res[0][1]["hidden_background"]
    ids = [c for c in res[0][1]["probe"] if all(c in r["probe"] for _, r in res)]
    mean = {c: float(np.mean([r["probe"][c] for _, r in res])) for c in ids}
    bg = [mean[c] for c in ids if c in background]
    other = sorted((c for c in ids if c not in background), key=mean.__getitem__)
    if not other:
        return ""

    def listed(cs: list[str]) -> str:
        return ", ".join(f"{t_texts.get(c, c)} {mean[c]:.2f}" for c in cs)

    return (" What erm's last stage holds of each hidden concept, whatever a factorisation makes of it (ROC AUC on D′_train of "
            "a logistic regression on its pooled features fitted on D, mean over seeds; a diagnostic with the hidden annotations): "
            + (f"backgrounds {min(bg):.2f}–{max(bg):.2f}; " if bg else "")
            + f"the other {len(other)} concepts median {float(np.median([mean[c] for c in other])):.2f} "
            f"({mean[other[0]]:.2f}–{mean[other[-1]]:.2f}), best {listed(other[::-1][:3])}, worst {listed(other[:3])}.")


def student_rule_sentence(res: list[tuple[int, dict[str, Any]]]) -> str:
    """ig_student's worst group under its epoch rule (its last epoch) beside the rule of the models trained on D's
    labels (:func:`val_selected_student`), and L_M's own answers (ig_direct), the labels it imitates."""

    def per_seed(key: str) -> str:
        return f"{mean_sd([r[key] for _, r in res], 100)} % (per seed {', '.join(f'{100 * r[key]:.1f}' for _, r in res)})"

    return ("The student's epoch: ig_student keeps its last epoch "
            f"(`igcore/imitate.py`); its worst group {per_seed('student_wga')}. Trained again on the same pseudo-labels with "
            "the epoch that is best on `val` (D's distribution, where the background predicts the class), the rule of the "
            f"models trained on D's labels: {per_seed('val_student_wga')}. L_M's own answers on D′_eval (ig_direct, what the "
            f"student imitates): {per_seed('direct_wga')}.")


def whole_run_sentence(wall_with: float, wall_without: float) -> str:
    """How much longer (or shorter) the whole run was with discovery; shorter means the machine's spread exceeded its cost."""
    diff = round(wall_with - wall_without)
    if diff >= 0:
        return f"the whole run took {diff} s more with discovery than without."
    return (f"the whole run took {-diff} s less with discovery than without: between two runs one after the other the "
            "machine's spread was larger than what discovery costs.")


def timing(out: Path) -> dict[str, Any]:
    """The default run (seed 0) with discovery and without: per-stage seconds of both."""
    stamp = time.strftime("%H%M%S")
    with_d, wall_with = run([*snowwolf_sets(), f"run_id=discover-timing-with-{stamp}"], out, skip=())
    without, wall_without = run([*snowwolf_sets(), f"run_id=discover-timing-without-{stamp}", "discover.models=[]"], out, skip=())
    return {"with": with_d.manifest["stages"], "without": without.manifest["stages"], "wall_with": wall_with,
            "wall_without": wall_without, "cpus": with_d.manifest["machine"]["cpus"],
            "stages_at_once": int(with_d.manifest.get("stages_at_once", 1))}


# ------------------------------------------------------------------------------------------- report


def mean_sd(values: list[float | None], scale: float = 1.0, digits: int = 1) -> str:
    v = np.array([x for x in values if x is not None], dtype=float) * scale
    if not len(v):
        return "–"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.{digits}f}"


def effect_text(e: dict[str, float]) -> str:
    return f"{e['mean']:+.2f} [{e['ci_low']:+.2f}, {e['ci_high']:+.2f}]"


def ratio(res: dict[str, Any], reference: str = "top_student") -> float:
    """|effect on erm| / |effect on the reference model| of erm's top component."""
    return abs(res["top_erm"]["mean"]) / max(abs(res[reference]["mean"]), 1e-9)


def excludes_zero(e: dict[str, float]) -> bool:
    """The effect's 95% interval excludes 0."""
    return e["ci_high"] < 0 or e["ci_low"] > 0


def a_met(res: dict[str, Any]) -> bool:
    return bool(res["top_auc"] >= 0.9 and res["top_concept"] in ("snowy_ground", "grassy_ground") and excludes_zero(res["top_erm"])
                and ratio(res) >= 3)


def table_rows(results: list[tuple[int, dict[str, Any]]]) -> list[str]:
    rows = []
    for seed, r in results:
        slice_auc = "–" if r["slice_auc"] is None else f"{r['slice_auc']:.3f}"
        rows.append(
            f"| {seed} | {r['k']} | {r['best_rank']} | {r['best_concept']} {r['best_auc']:.3f} | "
            f"{slice_auc} | {r['top_concept']} {r['top_auc']:.3f} | "
            f"{effect_text(r['top_erm'])} | {effect_text(r['top_student'])} | {ratio(r):.1f} | "
            f"{100 * r['erm_wga']:.1f} | {100 * r['student_wga']:.1f} | {r['seconds']:.0f} |"
        )
    return rows


HEADER = [
    "| seed | K | rank of the best background-aligned component (erm) | its hidden concept, AUC | slice baseline AUC (same concept) "
    "| erm's top component: hidden background, AUC | its effect on erm [95% CI] | on ig_student [95% CI] | ratio | erm worst group % "
    "| ig_student worst group % | seconds |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
]


def summary(results: list[tuple[int, dict[str, Any]]]) -> list[str]:
    rs = [r for _, r in results]
    return [
        f"Mean ± sd over seeds: best background-aligned AUC {mean_sd([r['best_auc'] for r in rs], digits=3)} (its calibrated "
        f"\"present\", P ≥ 0.5, agrees with the hidden concept on {mean_sd([r['best_agree'] for r in rs], 100)} % of D′_eval), its rank "
        f"{mean_sd([r['best_rank'] for r in rs])}; slice baseline AUC {mean_sd([r['slice_auc'] for r in rs], digits=3)}; "
        f"worst group erm {mean_sd([r['erm_wga'] for r in rs], 100)} %, ig_student {mean_sd([r['student_wga'] for r in rs], 100)} %, "
        f"difference {mean_sd([r['student_wga'] - r['erm_wga'] for r in rs], 100)} points; seconds {mean_sd([r['seconds'] for r in rs], digits=0)}.",
    ]


def report(args: argparse.Namespace, a: list, b_sw: list, b_byod: list, times: dict | None, tag: list | None = None) -> str:
    lines = ["## Results", "",
             f"Seeds {args.seeds}. Every run: the default config except what is named; in (a) and (b) the oracle and the microscope "
             "are skipped (not measured here) and the ablation effects are measured on erm and ig_student.", ""]
    if a:
        lines += ["### (a) Snow-and-Wolves, background annotations withheld", "",
                  "`world.hide_concepts=[snowy_ground, grassy_ground, forest_floor]`, rho 0.99. Hidden-concept AUCs are computed by this "
                  "script on D′_eval from the same world built without hiding. Effect = mean change in the log-odds of the model's "
                  "answer on D′_eval when the component is removed from its last ResNet stage; ratio = |effect on erm| / |effect on ig_student|.", "",
                  *HEADER, *table_rows(a), "", *summary(a), ""]
        met = [a_met(r) for _, r in a]
        lines += [f"**Acceptance (a)** — erm's most important component aligns with snowy or grassy ground (AUC ≥ 0.9), its effect on erm "
                  f"has an interval excluding 0 and is ≥ 3× its effect on ig_student: **{sum(met)} of {len(met)} seeds** "
                  f"({', '.join(f'seed {s}: ' + ('met' if m else 'not met') for (s, _), m in zip(a, met, strict=True))}).", ""]
        lines += [f"z* of seed {a[0][0]}: {a[0][1]['z_star']}", ""]
    for title, res, what in (("(b) Snow-and-Wolves as a labels-only manifest", b_sw, "Snow-and-Wolves"),
                             ("(b) The BYOD bench data as a labels-only manifest", b_byod, "The BYOD bench data")):
        if not res:
            continue
        lines += [f"### {title}", "",
                  f"{what} written as `path,label,split,group`, its `place::` concepts withheld. Names come from the **simulated "
                  f"namer** (a component is named after the hidden concept it aligns with best on D′_train when that AUC ≥ {NAMER_AUC}) and "
                  "the ratings of the named clauses from **simulated raters** who give each the shipped ratings of that concept; "
                  "both are simulations of people, not people.", "",
                  *HEADER, *table_rows(res), "", *summary(res), ""]
        for seed, r in res:
            named = ", ".join(f"{c.split('/')[1]} = {r['names'][c]!r}" for c in sorted(r["names"], key=lambda c: int(c.split("/")[1])))
            lines += [f"- seed {seed}: simulated names: {named or 'none'}; z* (simulated namer): {r['z_star']} "
                      f"Background clauses in z*: {', '.join(r['z_background']) or 'none'}. Components identical in the naming and the "
                      f"named run: {'yes' if r['same_components'] else 'NO'}."]
        gaps = [r["student_wga"] - r["erm_wga"] for _, r in res]
        no_bg = [not r["z_background"] for _, r in res]
        lines += ["", "What the named components that are not background can support (a diagnostic of this benchmark, using "
                  "D′_eval's labels, which the engine never sees): worst-group accuracy on D′_eval of a logistic regression on their "
                  f"calibrated presence fitted on D {mean_sd([r['bound_d'] for _, r in res], 100)} %, fitted on D′_eval itself (a "
                  f"ceiling) {mean_sd([r['bound_ceiling'] for _, r in res], 100)} %." + probe_sentence(res)]
        lines += ["", "Whether another factorisation of erm's activations would name more (the same diagnostic, per way of "
                  "factorising; the same fitted positions, K candidates and presence calibration as the engine, names from the "
                  "**simulated namer**; the first row is the engine's own):", "", *variants_table(res)]
        lines += ["", "Components the **simulated namer** gave one name, removed from each model's layer at once "
                  "(`discover.<source>.named_alike`: the model's reliance on the named concept rather than on one of its "
                  "components):", "", *alike_rows(res)]
        lines += ["", student_rule_sentence(res)]
        lines += ["", f"**{what}:** z* without a background clause in {sum(no_bg)} of {len(no_bg)} seeds; ig_student's worst group "
                  f"is {mean_sd(gaps, 100)} points above erm's (per seed {', '.join(f'{100 * g:+.1f}' for g in gaps)}); "
                  f"at least 40 points in {sum(g >= 0.4 for g in gaps)} of {len(gaps)} seeds.", ""]
    if tag:
        lines += tag_report(tag)
    if times:
        disc = ("discover", "discover_effects")
        added = sum(times["with"][s]["seconds"] for s in disc if s in times["with"])
        cpu = sum(times["with"][s].get("cpu_seconds", 0.0) for s in disc if s in times["with"])
        lines += ["### Seconds of the default run (seed 0)", "",
                  f"Wall seconds per stage of `python -m igcore run` with discovery (the default) and with `discover.models=[]`, "
                  f"{times['cpus']} CPUs, the two runs one after the other on a machine other work was also using. "
                  + stages_at_once_sentence(times["stages_at_once"]), "",
                  "| stage | with discovery | without |", "|---|---|---|",
                  *[f"| {s} | {v['seconds']:.1f} | {times['without'].get(s, {}).get('seconds', float('nan')):.1f} |" for s, v in times["with"].items()],
                  f"| **whole run** | {times['wall_with']:.0f} | {times['wall_without']:.0f} |", "",
                  f"The two discovery stages take {added:.1f} s of the default run (their own threads used {cpu:.1f} CPU-seconds; "
                  "the per-image work is in them on the local executor); " + whole_run_sentence(times["wall_with"], times["wall_without"]), ""]
    return "\n".join(lines)


def stages_at_once_sentence(at_once: int) -> str:
    """How to read per-stage seconds, from the run's own ``stages_at_once`` (its manifest)."""
    if at_once > 1:
        return (f"Stages ran up to {at_once} at a time (`runtime.stages`), so a stage's seconds include sharing the CPU and the "
                "stages add up to more than the whole run.")
    return "Stages ran one at a time (`runtime.stages`), so each stage's seconds are its own."


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-discover")
    ap.add_argument("--byod-data", type=Path, default=ROOT / "runs" / "bench-byod-data")
    ap.add_argument("--byod-n", type=int, default=4800, help="images of the BYOD data written when --byod-data has none (quick checks: fewer)")
    ap.add_argument("--parts", default="a,b,byod,tag", help="which experiments: a, b (Snow-and-Wolves labels-only), byod, tag (the tagged digits)")
    ap.add_argument("--tag-copies", type=int, default=2, help="drawings of every digit scan in the tagged digits (quick checks: 1)")
    ap.add_argument("--timing", action="store_true", help="also the default run with and without discovery (seed 0)")
    ap.add_argument("--snowwolf", type=json.loads, default={}, help="JSON world.* overrides of Snow-and-Wolves (quick checks)")
    ap.add_argument("--set", action="append", default=[], help="extra config overrides of every run (quick checks)")
    args = ap.parse_args(argv)
    written = Report("discover", argv)
    SNOWWOLF.update(args.snowwolf)
    EXTRA.extend(args.set)
    seeds = [int(s) for s in args.seeds.split(",")]
    parts = set(args.parts.split(","))
    a, b_sw, b_byod, tag = [], [], [], []
    for seed in seeds:
        if "a" in parts:
            res = experiment_a(seed, args.out)
            a.append((seed, res))
            print(f"(a) seed {seed}: top {res['top_concept']} {res['top_auc']:.3f} erm {res['top_erm']['mean']:+.2f} "
                  f"student {res['top_student']['mean']:+.2f}  wga {res['erm_wga']:.3f}/{res['student_wga']:.3f}  {res['seconds']:.0f} s", flush=True)
        if "b" in parts:
            manifest, _, truth = export_snowwolf(seed, args.out / f"snowwolf-s{seed}")
            res = experiment_b("snowwolf", seed, manifest, truth, ROOT / "assets" / "judgments" / "ratings.csv", args.out,
                               args.out / "cache", ["world.test_eval_fraction=0.3333"])
            b_sw.append((seed, res))
            print(f"(b) snowwolf seed {seed}: names {len(res['names'])} wga {res['erm_wga']:.3f}/{res['student_wga']:.3f} "
                  f"z-background {res['z_background']}  {res['seconds']:.0f} s", flush=True)
        if "byod" in parts:
            from testkit import byod_data

            if not (args.byod_data / "metadata.csv").is_file():
                byod_data.write_dataset(args.byod_data, n=args.byod_n, size=96, seed=0, rho=0.95)
            manifest, truth = export_byod(args.byod_data)
            res = experiment_b("byod", seed, manifest, truth, args.byod_data / "judgments_bench.csv", args.out, args.byod_data / "cache", [])
            b_byod.append((seed, res))
            print(f"(b) byod seed {seed}: names {len(res['names'])} wga {res['erm_wga']:.3f}/{res['student_wga']:.3f} "
                  f"top {res['top_concept']} {res['top_auc']:.3f}  {res['seconds']:.0f} s", flush=True)
        if "tag" in parts:
            for rho in TAG_RHOS:
                res = experiment_tag(seed, rho, args.out, args.tag_copies)
                tag.append((seed, rho, res))
                print(f"(d) tag seed {seed} rho {rho}: top tag AUC {res['top_auc']:.3f} erm {res['top_erm']['mean']:+.2f} "
                      f"oracle {res['top_oracle']['mean']:+.2f} wga {res['erm_wga']:.3f}/{res['oracle_wga']:.3f}  {res['seconds']:.0f} s", flush=True)
    times = timing(args.out) if args.timing else None
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"a": a, "b_snowwolf": b_sw, "b_byod": b_byod, "tag": tag, "timing": times}, indent=1, default=str))
    if tag:
        seed, rho, first = tag[0]
        tag_figure(first["run"], first["top"], written.path(TAG_FIGURE))
        first["figure"] = f"seed {seed}, rho {rho}, component {first['top']}"
    elif (written.root / TAG_FIGURE).is_file():
        written.path(TAG_FIGURE)  # kept as the last run of part (d) drew it
    written.block(DOC, "bench-discover", report(args, a, b_sw, b_byod, times, tag), "Concept discovery")
    written.publish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
