"""Search for z* = argmax_z log Prior_M(z) + sum_D log L_M(y | x, z), and the ranked alternatives.

Imitative Generalization (Barnes, "Imitative Generalisation (AKA 'Learning the Prior')", AI Alignment
Forum, 2021) picks the hypothesis z* that maximises the (learned) human prior plus the (learned) human
likelihood of the labelled data D, then uses z* to label the test distribution. Here z is a set of
weighted clauses (:mod:`igcore.hypothesis`), L_M is the clause likelihood (:mod:`igcore.likelihood`)
and Prior_M is :class:`igcore.prior.PriorModel` (or :class:`igcore.prior.FlatPrior` for the
likelihood-only ablation).

Two jobs, two modules: :mod:`igcore.search.solver` solves the convex part exactly (the MAP weights of a
fixed clause set, many sets at once) and :mod:`igcore.search.beam` searches over clause sets and ranks
the alternatives; :mod:`igcore.search.params` declares the ``search`` config section. The estimators load
torch, so they are imported on first use: the config imports the parameters without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from igcore.search.params import SearchConfig

if TYPE_CHECKING:
    from igcore.search.beam import HypothesisSearch, RankedHypothesis, search_from_config
    from igcore.search.solver import MAPProblem, MAPResult, SolverState, solve_map

_BEAM = ("HypothesisSearch", "RankedHypothesis", "search_from_config")
_SOLVER = ("MAPProblem", "MAPResult", "SolverState", "solve_map")


def __getattr__(name: str) -> Any:
    if name in _BEAM:
        from igcore.search import beam as module
    elif name in _SOLVER:
        from igcore.search import solver as module
    else:
        raise AttributeError(f"module 'igcore.search' has no attribute {name!r}")
    return getattr(module, name)


__all__ = ["HypothesisSearch", "MAPProblem", "MAPResult", "RankedHypothesis", "SearchConfig", "SolverState", "search_from_config", "solve_map"]
