"""Components named alike after the run, removed together on the run's models.

A run removes at once the components that ``discover.names`` gives one name (``discover_effects``:
``metrics.json`` ``discover.<source>.named_alike``). People also name components on the Discover page after
the run; when they give several components one name, they say these are one concept to them, and the question
"does the model rely on it?" is about all of them at once. :func:`measure_together` answers it on the finished
run with what the run stored, computing what ``discover_effects`` computes for a shared name, on the same images
and with the same statistic:

- each model under the microscope is loaded from the run (``models/``), and its patterns (the least-squares fit of
  its activations on the source's coefficient maps) are the run's own (``discover/<source>/tensors/patterns_<model>``);
- the source's coefficient maps of D′_eval are computed again from the source model's activations and the run's
  components (the stored maps are float16, kept for people to look at), as discovery computed them;
- each group is removed from each model's layer in one forward pass over D′_eval
  (:func:`igcore.discover.importance.ablation_effects` with ``components=[]``), with its bootstrap interval overall
  and per group, seeded as in the run.

So a name shared in ``discover.names`` measured here gives the run's numbers (``tests/test_discover_runs.py``).
Nothing is written into the run: a run is never changed after it is published; the dashboard keeps the answer in
its database beside the names (:meth:`igcore.discover.store.NameStore.record_together`;
:func:`dashboard.engine.named_together`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from igcore.discover.names import parse_id
from igcore.discover.params import FOLDER
from igcore.errors import InputError


def measure_together(run: Any, groups: Mapping[str, Sequence[str]], device: str = "auto") -> dict[str, dict[str, Any]]:
    """The effect of removing each group of a finished run's discovered components at once, on every model the run
    measured its components on.

    Args:
        run: a complete :class:`~igcore.store.RunDir` whose ``discover_effects`` stage ran.
        groups: ``{name: [component ids]}``, two or more components of one source per name
            (:func:`igcore.discover.names.alike` of the named vocabulary).
        device: where the models run (``auto``: a CUDA GPU when there is one).

    Returns:
        ``{name: {"components": ids, "effects": {model: {"overall", "by_group", "flip_rate"}}}}``, the records of
        ``metrics.json`` ``discover.<source>.named_alike``.

    Raises:
        InputError: an incomplete run, a run without discovered components' effects, or a group that is not two or
            more components of one source of this run.
    """
    from igcore.baseline import LOGITS_BATCH
    from igcore.discover.factorize import coefficients
    from igcore.discover.importance import Patterns, ablation_effects, resample_maps
    from igcore.discover.layers import CAPTURE_BATCH, LayerActivations, resolve_site
    from igcore.executors import LocalExecutor

    if not run.complete:
        raise InputError(f"run {run.run_id!r} is not complete (status {run.status!r}); only a finished run's models can be measured")
    section = run.metrics.get("discover") or {}
    by_source: dict[str, dict[str, list[int]]] = {}
    for text, ids in groups.items():
        parsed = [parse_id(c) for c in ids]
        sources = {p[0] for p in parsed if p is not None}
        if len(ids) < 2 or None in parsed or len(sources) != 1:
            raise InputError(f"the name {text!r} must name two or more discovered components of one model, got {', '.join(ids) or 'none'}")
        source = sources.pop()
        known = [c["id"] for c in (section.get(source) or {}).get("components", [])]
        if not known or any(c not in known for c in ids):
            raise InputError(f"run {run.run_id!r} has no measured component {', '.join(c for c in ids if c not in known)}"
                             " (the discover_effects stage writes them)")
        by_source.setdefault(source, {})[text] = [known.index(c) for c in ids]

    config = run.config_model()
    layer = config.discover.layer
    test = run.table("split_test_eval")
    images = run.tensors("test_eval")["images"]
    group_names = list(run.metrics["world"]["groups"])
    n_resamples = config.microscope.counterfactuals.n_resamples
    executor = LocalExecutor(progress=False)
    out: dict[str, dict[str, Any]] = {}
    for source, members in by_source.items():
        record = section[source]
        models = list(record["components"][0]["effects"])
        loaded = {m: run.load_model(m, device=device) for m in dict.fromkeys([source, *models])}
        # the source's coefficient maps of D′_eval, as discovery computed them (its whole grid at once)
        grid = executor.map_batches(functools.partial(LayerActivations, loaded[source], layer), images, CAPTURE_BATCH, loading=False)
        components = run.tensors("components", f"{FOLDER}/{source}")["components"]
        n, h, w, c = grid.shape
        maps = coefficients(grid.reshape(-1, c), components).reshape(n, h, w, -1)
        effects: dict[str, list[dict[str, Any]]] = {}
        for model in models:
            clf = loaded[model]
            site = resolve_site(clf.module_, layer)
            size = LayerActivations(clf, layer)(images[:1]).shape[1:3]  # the model's grid
            stored = run.tensors(f"patterns_{model}", f"{FOLDER}/{source}")
            patterns = Patterns(stored["patterns"], stored["intercept"], stored["map_mean"])
            effects[model] = ablation_effects(
                clf, site, patterns, resample_maps(maps, size), images, test["group"].to_numpy(), group_names,
                batch_size=LOGITS_BATCH, seed=config.seed, n_resamples=n_resamples, components=[],
                together=list(members.values()),
            ).together
        for i, (text, ks) in enumerate(members.items()):
            out[text] = {"components": [record["components"][k]["id"] for k in ks],
                         "effects": {m: effects[m][i] for m in models}}
    return out

