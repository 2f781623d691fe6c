"""Non-negative matrix factorisation of a layer's activations into concept components (ACE, CRAFT).

Automatic concept extraction (ACE; Ghorbani et al., 2019, "Towards Automatic Concept-based
Explanations", NeurIPS) looks for the concepts a network uses among the activations of its image
segments; CRAFT (Fel et al., 2023, "CRAFT: Concept Recursive Activation FacTorization for
Explainability", CVPR) factorises the non-negative activations ``A`` of a layer at many image positions
as ``A ≈ U W`` with NMF: each row of ``W`` (K × C) is a **component** (a direction in the layer's space
made of the channels that fire together), each row of ``U`` says how much of every component a position
holds. This module does that with scikit-learn's :class:`~sklearn.decomposition.NMF`:

- **positions**: every spatial position of the layer's grid (:mod:`igcore.discover.layers`) of images
  from D and from the unlabelled D′_train, sampled half and half (never D′_eval, whose labels are for
  evaluation only);
- **K**: ``discover.k``, or chosen by **reconstruction**: the candidates are fitted in increasing order
  and the first K whose factorisation explains at least ``discover.energy`` of the activations' energy
  (``1 - ||A - U W||² / ||A||²``) is kept (the largest candidate when none does). More components always
  explain more; the criterion stops where a few more would add detail rather than new concepts, and it
  is cheap: the chosen fit is the one used, and no K beyond it is tried. The default threshold is 0.95,
  not 0.9, because of what a shortcut model's layer looks like: the background fills most positions and
  carries most of the energy, while the object's parts (a coat, a tail, a tag in a corner) sit on a few
  positions and carry a few percent of it. A concept holding a share ``s`` of the energy can only get
  its own component once the threshold leaves less than ``s`` unexplained, so at 0.9 anything under
  about a tenth of the energy is folded into the background components (on erm of labels-only
  Snow-and-Wolves the coat came out mixed with the ground it stood on, see ``bench/bench_discover.py``),
  and at 0.95 parts down to about a twentieth are kept. (Split-half stability, the other
  criterion in use for NMF ranks — Brunet et al., 2004; Wu et al., 2016 — was tried first: on the default
  run's layer it moved more between random splits of the same images than between neighbouring K, too
  noisy to choose by, and it costs two fits per candidate.) Every tried candidate's explained energy is
  reported;
- **presence**: the coefficients ``U`` of a position with the components fixed (non-negative least
  squares, :func:`sklearn.decomposition.non_negative_factorization` with ``update_H=False``); an image's
  presence score of component k is its strongest position's coefficient (a concept can be small: an
  eye, a tag in a corner), and its spatial map is the grid of coefficients.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: NMF's coordinate-descent budget: a relative tolerance of 1e-3 reaches the reconstruction error of 1e-4
#: (to three decimals on the default run's layer) in about a third of the iterations.
MAX_ITER = 400
TOL = 1e-3


def _nmf(x: np.ndarray, k: int, seed: int) -> Any:
    from sklearn.decomposition import NMF

    return NMF(n_components=k, init="nndsvda", max_iter=MAX_ITER, tol=TOL, random_state=seed).fit(x)


def coefficients(x: np.ndarray, components: np.ndarray) -> np.ndarray:
    """``U >= 0`` minimising ``||x - U components||`` with the components fixed: (P, C) -> (P, K)."""
    from sklearn.decomposition import non_negative_factorization

    x = np.ascontiguousarray(x, dtype=np.float32)
    if len(x) == 0:
        return np.zeros((0, len(components)), dtype=np.float32)
    h = np.ascontiguousarray(components, dtype=np.float32)
    u, _, _ = non_negative_factorization(x, H=h, n_components=len(h), update_H=False, max_iter=MAX_ITER, tol=TOL, solver="cd")
    return u.astype(np.float32)


@dataclass(frozen=True)
class KSelection:
    """How K was chosen: the candidates tried (in increasing order) and the share of energy each explains."""

    candidates: list[int]
    explained: list[float]
    threshold: float
    chosen: int
    rule: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def explained_energy(x: np.ndarray, model: Any) -> float:
    """``1 - ||x - U W||² / ||x||²`` of a fitted NMF on the data it was fitted on."""
    return 1.0 - (float(model.reconstruction_err_) / max(float(np.linalg.norm(x)), 1e-12)) ** 2


def select_k(x: np.ndarray, candidates: list[int], energy: float, seed: int = 0) -> tuple[KSelection, Any]:
    """The first candidate K whose NMF of positions ``x`` (P, C) explains ``energy`` (module docstring).

    Returns the selection and the chosen K's fitted NMF (so it is not fitted twice).
    """
    tried, explained = [], []
    model = None
    cap = min(x.shape)  # NMF's SVD-based start needs K <= min(positions, channels)
    for k in sorted({min(k, cap) for k in candidates}):
        model = _nmf(x, k, seed)
        tried.append(k)
        explained.append(explained_energy(x, model))
        if explained[-1] >= energy:
            rule = f"smallest K explaining at least {energy} of the activations' energy"
            break
    else:
        rule = f"no candidate explains {energy} of the activations' energy; the largest is kept"
    assert model is not None
    return KSelection(tried, explained, energy, tried[-1], rule), model


class ConceptFactorization:
    """Estimator: NMF of non-negative activation grids into K components (see the module docstring).

    Args:
        k: number of components; None chooses it with :func:`select_k` over ``k_candidates``.
        k_candidates, energy: the candidates and the explained-energy threshold of :func:`select_k`.
        seed: NMF's seed.

    Attributes:
        components_: (K, C) the components (rows of W in A ≈ U W).
        k_: K.
        selection_: the :class:`KSelection` (None when ``k`` was given).
        reconstruction_error_: relative error ``||A - U W|| / ||A||`` of the fit on its positions.
        n_positions_: positions factorised.
    """

    def __init__(self, k: int | None = None, k_candidates: tuple[int, ...] = (4, 6, 8, 10, 12, 16, 20, 24, 32),
                 energy: float = 0.95, seed: int = 0) -> None:
        self.k = k
        self.k_candidates = k_candidates
        self.energy = energy
        self.seed = seed

    def fit(self, grids: np.ndarray) -> ConceptFactorization:
        """Fit on activation grids ``(N, h, w, C)`` (every position of every image). Returns self."""
        grids = np.asarray(grids, dtype=np.float32)
        if grids.ndim != 4 or (grids < 0).any():
            raise ValueError("ConceptFactorization needs non-negative activation grids (N, h, w, C)")
        x = grids.reshape(-1, grids.shape[-1])
        if self.k is None:
            self.selection_, model = select_k(x, list(self.k_candidates), self.energy, self.seed)
        else:
            self.selection_, model = None, _nmf(x, min(self.k, *x.shape), self.seed)
        self.k_ = int(model.n_components_)
        self.components_ = model.components_.astype(np.float32)
        self.reconstruction_error_ = float(np.sqrt(max(0.0, 1.0 - explained_energy(x, model))))
        self.n_positions_ = int(len(x))
        return self

    def transform(self, grids: np.ndarray) -> np.ndarray:
        """Coefficient maps ``(N, h, w, K)`` of activation grids ``(N, h, w, C)``."""
        grids = np.asarray(grids, dtype=np.float32)
        n, h, w, c = grids.shape
        return coefficients(grids.reshape(-1, c), self.components_).reshape(n, h, w, -1)


def presence_scores(maps: np.ndarray) -> np.ndarray:
    """Per-image presence ``(N, K)``: the strongest position's coefficient of each component's map."""
    return maps.reshape(maps.shape[0], -1, maps.shape[-1]).max(axis=1)
