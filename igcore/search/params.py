"""The search's parameters (the ``search`` config section); :class:`~igcore.search.HypothesisSearch` checks its
own arguments against the same model, so a bound is written once."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from igcore.settings import Settings


class SearchConfig(Settings):
    """z* search (igcore/search/): exact MAP of the weights + beam search over clause sets."""

    beam_width: int = Field(4, ge=1, description="clause sets kept per round")
    n_ranked: int = Field(12, ge=1, description="length of the ranked list of hypotheses (z* first; shorter only when the search finds fewer distinct ones)")
    max_clauses: int | None = Field(None, ge=1, description="largest |z| in the ranked list; null = no cap")
    max_depth: int = Field(10, ge=0, description="rounds of the structure search")
    patience: int = Field(1, ge=0, description="extra rounds after one that found nothing better (0 = stop at the first local optimum)")
    max_moves: int | None = Field(16, ge=1, description="removals / additions tried per beam state; null = all")
    max_iter: int = Field(500, ge=1, description="iterations per MAP problem (projected Newton for small problems, projected L-BFGS otherwise)")
    tol: float = Field(1e-8, ge=0, description="projected-gradient tolerance, times N")
    history: int = Field(10, ge=1, description="L-BFGS memory")
    bias_l2: float = Field(1e-4, ge=0, description="tiny Gaussian prior on the class biases")
    flat_weight_l2: float = Field(1e-2, ge=0, description="no_prior ablation: vanishing Gaussian weight prior (keeps the MLE finite)")
    dtype: Literal["float64", "float32"] = Field("float64", description="float64 | float32 (float32 GEMMs, float64 reductions)")
    max_batch: int = Field(128, ge=1, description="MAP problems solved together")
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads during the search; null = 1 if N*K < 4e6, else min(default, CPUs - 1)")
    presolve_rows: int | None = Field(50000, ge=1, description="N > 2x this: warm-start each solve on a subsample of this many rows; null = off")
