"""A stored run's discovered concepts, read for people: the API the dashboard's Discover page builds on.

Everything here reads what the ``discover`` and ``discover_effects`` stages wrote (:mod:`igcore.stages.
discover`: ``discover/<model>/`` files, ``tables/discover_effects.parquet``, ``metrics.json``
``discover``) through :class:`igcore.store.Run`; nothing is recomputed but the image arithmetic of
exemplars, maps and crops. Names come from the run (``discover.names``) and, on top, from the naming
store (:class:`igcore.discover.store.NameStore`), whose current names win.

::

    view = DiscoveryView(run)
    view.sources                          # ["erm"]
    view.components("erm", names)         # one row per component: text, named, best matches, effects per model
    view.effects("erm")                   # component x model x group: mean, ci_low, ci_high, n
    view.alike("erm")                     # the names the run gave several components, removed together
    view.alike_unmeasured("erm", names)   # names people gave several components after the run: {name: [ids]}
    view.resemblance("discovered::erm/3") # what it resembles, best first (AUC on D′_eval)
    view.exemplars("discovered::erm/3")   # D′_eval indices, highest presence first
    view.images(indices)                  # their pixels (uint8)
    view.maps("discovered::erm/3", idx)   # coefficient maps upsampled to the image, (n, H, W)
    view.crops("discovered::erm/3", idx)  # the image region around each map's peak, (n, c, c, 3)
    view.vocabulary(names)                # the run's vocabulary with people's names applied
    view.name_store(path)                 # the NameStore for this run's components
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from igcore.discover.names import alike, apply_names, is_discovered, parse_id
from igcore.discover.params import FOLDER
from igcore.errors import InputError
from igcore.store import Run
from igcore.worlds.base import Vocabulary


def stored_present(run: Run, split: str) -> np.ndarray:
    """0/1 (N, K_discovered) presence of every discovered concept of ``run`` on ``split``, in vocabulary order."""
    vocabulary, _ = run.vocabulary()
    sources = list(dict.fromkeys(parse_id(c.id)[0] for c in vocabulary.concepts if is_discovered(c)))  # type: ignore[index]
    blocks = [run.tensors("scores", f"{FOLDER}/{s}")[f"p_{split}"] >= 0.5 for s in sources]
    return np.concatenate(blocks, axis=1).astype(np.uint8)


def together_table(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Records of components removed together (``metrics.json`` ``discover.<source>.named_alike``, or
    :func:`igcore.discover.measure_together`'s values with their ``text``) as one row per name: ``text``, ``components``
    and per model ``effect_<m>``, ``ci_low_<m>``, ``ci_high_<m>``, ``flip_rate_<m>``."""
    rows = []
    for group in records:
        row: dict[str, Any] = {"text": group["text"], "components": list(group["components"])}
        for model, e in group["effects"].items():
            row.update({f"effect_{model}": e["overall"]["mean"], f"ci_low_{model}": e["overall"]["ci_low"],
                        f"ci_high_{model}": e["overall"]["ci_high"], f"flip_rate_{model}": e["flip_rate"]})
        rows.append(row)
    return pd.DataFrame(rows)


class DiscoveryView:
    """The discovered concepts of one stored run (see the module docstring).

    Raises:
        InputError: the run has no discovered concepts (discovery was off or did not finish).
    """

    def __init__(self, run: Run) -> None:
        self.run = run
        if not self.sources:
            raise InputError(f"run {run.run_id!r} has no discovered concepts; run it with discover.models set (the default)")

    # -- what was discovered -------------------------------------------------------------------------
    @cached_property
    def sources(self) -> list[str]:
        """Models whose concepts were discovered (folders ``discover/<model>/``)."""
        root = self.run.path / FOLDER
        return sorted(p.name for p in root.iterdir() if (p / "info.json").is_file()) if root.is_dir() else []

    def info(self, source: str) -> dict[str, Any]:
        """``discover/<source>/info.json``: layer, K and how it was chosen, fit, calibration, seconds."""
        return json.loads((self._folder(source) / "info.json").read_text())

    def metrics(self, source: str) -> dict[str, Any] | None:
        """``metrics.json`` ``discover.<source>`` (None until the ``discover_effects`` stage has run)."""
        return (self.run.metrics.get("discover") or {}).get(source)

    def component_ids(self, source: str | None = None) -> list[str]:
        """Ids of the discovered concepts (of one source, or all)."""
        return [c["id"] for s in ([source] if source else self.sources) for c in self.info(s)["concepts"]]

    def _folder(self, source: str) -> Path:
        if source not in self.sources:
            raise InputError(f"run {self.run.run_id!r} discovered no concepts in {source!r}; sources: {', '.join(self.sources)}")
        return self.run.path / FOLDER / source

    def _source(self, component: str) -> tuple[str, int]:
        parsed = parse_id(component)
        if parsed is None or component not in self.component_ids(parsed[0] if parsed[0] in self.sources else None):
            raise InputError(f"{component!r} is not a discovered concept of run {self.run.run_id!r}")
        return parsed

    # -- tables for people -----------------------------------------------------------------------------
    def vocabulary(self, names: Mapping[str, str | None] | None = None) -> Vocabulary:
        """The run's vocabulary with ``names`` (e.g. :meth:`NameStore.names`) applied on top of the run's own."""
        vocabulary, _ = self.run.vocabulary()
        return apply_names(vocabulary, names or {})

    def components(self, source: str, names: Mapping[str, str | None] | None = None) -> pd.DataFrame:
        """One row per component of ``source``: ``id, k, text, named``, its best match among annotated concepts,
        backgrounds and groups (``best_*``, ``best_*_auc``), ``present_share`` (D′_eval), and per model
        ``effect_<m>``, ``ci_low_<m>``, ``ci_high_<m>``, ``rank_<m>``, ``flip_rate_<m>`` (when effects were measured)."""
        from igcore.discover.names import is_named

        texts = {c.id: c for c in self.vocabulary(names).concepts}
        info = self.info(source)
        metrics = self.metrics(source) or {}
        records = {c["id"]: c for c in metrics.get("components", [])}
        present = self.scores(source, "test_eval")[1] >= 0.5
        rows = []
        for k, c in enumerate(info["concepts"]):
            concept = texts[c["id"]]
            row: dict[str, Any] = {"id": c["id"], "k": k, "text": concept.text, "named": is_named(concept),
                                   "present_share": float(present[:, k].mean())}
            record = records.get(c["id"], {})
            for kind in ("concept", "background", "group"):
                best = (record.get("resembles") or {}).get(f"best_{kind}")
                row[f"best_{kind}"], row[f"best_{kind}_auc"] = (best["name"], best["auc"]) if best else (None, None)
            for model, e in (record.get("effects") or {}).items():
                row.update({f"effect_{model}": e["overall"]["mean"], f"ci_low_{model}": e["overall"]["ci_low"],
                            f"ci_high_{model}": e["overall"]["ci_high"], f"rank_{model}": e["rank"],
                            f"flip_rate_{model}": e["flip_rate"]})
            rows.append(row)
        return pd.DataFrame(rows)

    def alike(self, source: str) -> pd.DataFrame:
        """The components of ``source`` the run named alike (``discover.names``), removed together: one row per name,
        ``text``, ``components`` (their ids) and per model ``effect_<m>``, ``ci_low_<m>``, ``ci_high_<m>``,
        ``flip_rate_<m>``; empty where no name is shared (:func:`igcore.discover.names.alike`)."""
        return together_table((self.metrics(source) or {}).get("named_alike", []))

    def alike_unmeasured(self, source: str, names: Mapping[str, str | None] | None = None) -> dict[str, list[str]]:
        """Components of ``source`` that the current names (the run's, with ``names`` on top) give one name but that the
        run did not remove together, because people named them alike after it: ``{name: [component ids]}``, what
        :func:`igcore.discover.measure_together` measures. A group counts as measured when the run removed exactly
        its components together, so a component named like a measured group later makes the group unmeasured."""
        ids = set(self.component_ids(source))
        concepts = [c for c in self.vocabulary(names).concepts if c.id in ids]
        measured = {frozenset(g["components"]) for g in (self.metrics(source) or {}).get("named_alike", [])}
        groups = {text: [concepts[i].id for i in members] for text, members in alike(concepts).items()}
        return {text: members for text, members in groups.items() if frozenset(members) not in measured}

    def effects(self, source: str | None = None) -> pd.DataFrame:
        """``tables/discover_effects.parquet``: ``source, component, model, group`` (``all`` overall), ``mean,
        ci_low, ci_high, n`` — the change in the log-odds of each model's answer when a component is removed."""
        df = self.run.table("discover_effects")
        return df if source is None else df[df["source"] == source].reset_index(drop=True)

    def resemblance(self, component: str) -> pd.DataFrame:
        """What ``component`` resembles: ``kind`` (concept / background / group), ``name``, ``auc`` (D′_eval), best first."""
        source, k = self._source(component)
        record = next((c for c in (self.metrics(source) or {}).get("components", []) if c["id"] == component), None)
        if record is None:
            return pd.DataFrame(columns=["kind", "name", "auc"])
        rows = [{"kind": kind[:-1], "name": name, "auc": auc}
                for kind in ("concepts", "backgrounds", "groups") for name, auc in record["resembles"][kind].items()]
        return pd.DataFrame(rows, columns=["kind", "name", "auc"]).sort_values("auc", ascending=False, kind="stable").reset_index(drop=True)

    # -- images --------------------------------------------------------------------------------------
    def scores(self, source: str, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(presence scores, P(present))``, each (N, K), of ``split`` (train, val, test_train, test_eval; concept_bank too
        when the run tested discovered concepts with TCAV, ``discover.tcav``)."""
        t = self.run.tensors("scores", f"{FOLDER}/{source}")
        if f"score_{split}" not in t:
            raise InputError(f"run {self.run.run_id!r} has no discovered-concept scores of split {split!r}")
        return t[f"score_{split}"], t[f"p_{split}"]

    def exemplars(self, component: str, n: int | None = None) -> np.ndarray:
        """D′_eval indices with the highest presence of ``component`` (``n``: the run's ``discover.exemplars``)."""
        source, k = self._source(component)
        n = n if n is not None else int(self.run.config_model().discover.exemplars)
        score = self.scores(source, "test_eval")[0][:, k]
        return np.argsort(-score, kind="stable")[:n]

    @cached_property
    def _test_eval(self) -> dict[str, np.ndarray]:
        return self.run.tensors("test_eval")

    def images(self, indices: np.ndarray) -> np.ndarray:
        """D′_eval images (uint8 (n, H, W, 3))."""
        return self._test_eval["images"][np.asarray(indices, dtype=np.int64)]

    def maps(self, component: str, indices: np.ndarray) -> np.ndarray:
        """``component``'s coefficient maps of D′_eval images, upsampled (bilinear) to the image size: (n, H, W)."""
        import torch

        source, k = self._source(component)
        grid = self.run.tensors("maps", f"{FOLDER}/{source}")["test_eval"][np.asarray(indices, dtype=np.int64), ..., k]
        size = self._test_eval["images"].shape[1:3]
        t = torch.as_tensor(grid.astype(np.float32))[:, None]
        return torch.nn.functional.interpolate(t, size=size, mode="bilinear", align_corners=False)[:, 0].clamp(min=0).numpy()

    def crops(self, component: str, indices: np.ndarray) -> np.ndarray:
        """The square region of each image around its map's strongest cell (twice the cell, clipped to the
        image), resized to half the image side: uint8 (n, c, c, 3)."""
        import cv2

        source, k = self._source(component)
        grid = self.run.tensors("maps", f"{FOLDER}/{source}")["test_eval"][np.asarray(indices, dtype=np.int64), ..., k]
        images = self.images(indices)
        side, (gh, gw) = images.shape[1], grid.shape[1:3]
        cell = side / max(gh, gw)
        out_side = max(8, side // 2)
        out = np.empty((len(images), out_side, out_side, 3), dtype=np.uint8)
        for i, (img, g) in enumerate(zip(images, grid, strict=True)):
            r, c = np.unravel_index(int(np.argmax(g)), g.shape)
            cy, cx = (r + 0.5) * side / gh, (c + 0.5) * side / gw
            half = int(round(cell))
            y0, x0 = int(np.clip(cy - half, 0, side - 2 * half)), int(np.clip(cx - half, 0, side - 2 * half))
            patch = img[y0 : y0 + 2 * half, x0 : x0 + 2 * half]
            out[i] = cv2.resize(np.ascontiguousarray(patch), (out_side, out_side), interpolation=cv2.INTER_AREA)
        return out

    # -- names ---------------------------------------------------------------------------------------
    def name_store(self, path: str | Path) -> Any:
        """The :class:`~igcore.discover.store.NameStore` of this run's components in database ``path``."""
        from igcore.discover.store import NameStore

        return NameStore(path, self.run.run_id, self.component_ids())
