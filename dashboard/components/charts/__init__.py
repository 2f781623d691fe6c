"""Plotly figures as pure functions of engine results: the run schema's typed records, clause records and
DataFrames read through the run view.

Nothing here reads files or computes engine quantities; each function turns stored numbers into a figure
with the dashboard's colours and names (:mod:`dashboard.components.style`). One module per subject:

- :mod:`~dashboard.components.charts.accuracy`: how the methods do on D′ (bars, per group, the benchmark's
  ρ sweep) and where the pipeline spent its time;
- :mod:`~dashboard.components.charts.hypotheses`: the ranked hypotheses, clauses, clause deletion, weights
  against TCAV;
- :mod:`~dashboard.components.charts.microscope`: counterfactual effects, the swap's attribution,
  relevance on the object, TCAV.
"""

from dashboard.components.charts.accuracy import accuracy_bars, group_heatmap, rho_sweep, stage_times
from dashboard.components.charts.hypotheses import (
    clause_deletion_bars,
    clause_weights,
    posterior_scatter,
    weights_vs_tcav,
)
from dashboard.components.charts.microscope import (
    SWAP_NAMES,
    TCAV_STATUS,
    effects_chart,
    relevance_bars,
    relevance_distribution,
    swap_parts_chart,
    tcav_bars,
)

__all__ = [
    "SWAP_NAMES",
    "TCAV_STATUS",
    "accuracy_bars",
    "clause_deletion_bars",
    "clause_weights",
    "effects_chart",
    "group_heatmap",
    "posterior_scatter",
    "relevance_bars",
    "relevance_distribution",
    "rho_sweep",
    "stage_times",
    "swap_parts_chart",
    "tcav_bars",
    "weights_vs_tcav",
]
