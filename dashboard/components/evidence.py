"""The "does it use the background?" evidence, drawn the same way on the Microscope and Compare pages.

Three views of the engine's counterfactual evidence (:mod:`igcore.microscope.counterfactuals`), most
decisive first:

1. the **effects**: per model, the mean change in the log-odds of its own answer when only the background
   or only the object of a D′ image is swapped, with bootstrap 95% confidence intervals (one computed
   sentence per swap and the key figure ``effects`` of :mod:`dashboard.components.figures`);
2. the **swap attribution**: integrated gradients from a double swap to the original, and how much of the
   change in log-odds sits on background pixels and how much on the objects' (both in log-odds);
3. the **counterfactual strip**: a few D′ images next to their swaps, so one can see what was changed.

Each part that the run's data cannot support shows the engine's reason instead (no object masks and no
renderer: no swaps at all).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import streamlit as st

from dashboard import session
from dashboard.components import charts, images, text, widgets
from dashboard.components.figures import key_figures, run_figure, swap_hows
from dashboard.components.style import possessive, subject
from dashboard.run_view import RunView
from igcore.hypothesis import with_article
from igcore.schema import SwapAttribution

#: The strip's panels: tensor name in ``microscope/tensors/counterfactuals`` -> caption.
STRIP_PANELS: dict[str, str] = {
    "original": "original",
    "background": "background swapped",
    "object": "object swapped",
    "double": "both swapped",
}
#: Pixels between the strip's panels.
GAP = 4


def effects_block(run: RunView, page: str) -> None:
    """The computed sentences and the effects chart, with how the swaps were made."""
    with session.guard("Counterfactual effects"):
        effects = run.evidence("effects", "counterfactual effects")
        for kind in charts.SWAP_NAMES:
            sentence = text.effects_sentence(effects, kind)
            if sentence:
                st.markdown(f"**{sentence}**")
        figure = next(f for f in key_figures(run, keys=("effects",)))
        widgets.key_figure(figure, page, run.run_id)
        flips = []
        for kind in charts.SWAP_NAMES:
            rates = [f"{subject(m)} {text.percent(e[kind].flip_rate, 0)}" for m, e in effects.items() if kind in e and e[kind].flip_rate is not None]
            if rates:
                flips.append(f"{kind} swaps: {', '.join(rates)}")
        if flips:
            st.caption("Answers that flip, for comparison (a flip rate misses a model that loses confidence without changing its answer): "
                       + "; ".join(flips) + ".")


def attribution_block(run: RunView, page: str) -> None:
    """Integrated gradients of the double swap: how much of each model's change in log-odds sits on the
    background's pixels and how much on the objects' (log-odds, with intervals)."""
    with session.guard("Where the swap's evidence sits"):
        attribution = run.evidence("swap_attribution", "attribution of the double swap", part="effects")
        sentence = text.swap_parts_sentence(attribution)
        if sentence:
            st.markdown(sentence)
        widgets.chart(run_figure(run, "swap_parts"), f"{page}_swap_attribution", attribution_caption(attribution), run_id=run.run_id)


def attribution_caption(attribution: Mapping[str, SwapAttribution]) -> str:
    """How the swap attribution was made and how to read it, with the engine's step count and completeness gap."""
    steps = next((a.n_steps for a in attribution.values() if a.n_steps), None)
    gaps = [f"{possessive(m)} {a.completeness_gap:.2f}" for m, a in attribution.items() if a.completeness_gap is not None]
    return (
        "Integrated gradients (Sundararajan et al., 2017) of the log-odds of each model's answer, from the double swap (an object "
        f"of the other class on another place's background) to the original image{f', {steps} steps' if steps else ''}. "
        "The attributions add up to the change in log-odds between the two images, so splitting them by where the pixels are says "
        "where the evidence that tells the two images apart sits: a bar above 0 on the left is log-odds for the model's answer "
        "carried by the background; above 0 on the right, by the objects. A model that reads the object has its evidence on the "
        "right; one that reads the background, on the left; bars below 0 pulled against the answer."
        + (f" Completeness gap (log-odds the attributions do not account for): {'; '.join(gaps)}." if gaps else "")
    )


@st.cache_data(show_spinner=False, max_entries=16)
def strip_pngs(run: RunView, limit: int) -> list[tuple[int, bytes]]:
    """The first ``limit`` rows of the counterfactual strip as (D′ index, PNG of the panels side by side),
    encoded once per run."""
    strip = run.counterfactual_strip()
    panels = [k for k in STRIP_PANELS if k in strip]
    out = []
    for j, i in enumerate(np.asarray(strip["index"])[:limit]):
        row = [images.upscale(np.asarray(strip[k][j]), 2) for k in panels]
        gap = np.full((row[0].shape[0], GAP, 3), 255, dtype=np.uint8)
        out.append((int(i), images.png_bytes(np.concatenate([p for r in row for p in (r, gap)][:-1], axis=1))))
    return out


def strip_block(run: RunView, per_row: int = 2, limit: int = 8) -> None:
    """A few D′ images next to their background, object and double swaps (``microscope/tensors/counterfactuals``)."""
    with session.guard("Counterfactual images"):
        strip = run.counterfactual_strip()
        panels = [k for k in STRIP_PANELS if k in strip]
        test = run.split("test_eval")
        classes, groups = run.classes, run.groups
        cols = st.columns(per_row)
        for j, (i, png) in enumerate(strip_pngs(run, limit)):
            with cols[j % per_row]:
                st.image(png, width="stretch",
                         caption=f"#{i} · {groups[int(test.at[i, 'group'])]} · {with_article(classes[int(test.at[i, 'label'])])}")
        made = swap_hows(run)
        st.caption(f"Left to right: {', '.join(STRIP_PANELS[k] for k in panels)}. " + (f"How each was made: {made}. " if made else "")
                   + "The double swap changes both at once; it is where the attribution above starts.")


def background_evidence(run: RunView, page: str) -> None:
    """The whole "does it use the background?" section: effects, swap attribution, counterfactual images
    (one note with the engine's reason when the data supports no swaps at all)."""
    if run.microscope and not any(m.effects for m in run.microscope.values()) and (reason := run.unavailable("effects")):
        st.info(f"**Counterfactual evidence.** Not available for this data: {reason}.", icon="🧩")
        return
    effects_block(run, page)
    attribution_block(run, page)
    strip_block(run)
