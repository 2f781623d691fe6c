"""The rasteriser of the Snow-and-Wolves world: body parts as signed-distance shapes, in body units
(negative inside), evaluated for a whole batch of animals at once; the renderer turns a distance into
anti-aliased coverage. ``U`` is (n, 1, w), ``V`` is (n, h, 1); shape parameters are scalars or (n, 1, 1).
"""

from __future__ import annotations

import numpy as np


def ellipse(U: np.ndarray, V: np.ndarray, cu, cv, a, b) -> np.ndarray:
    du, dv = (U - cu) / a, (V - cv) / b
    return (np.sqrt(du * du + dv * dv) - 1.0) * np.minimum(a, b)


def capsule(U: np.ndarray, V: np.ndarray, p0, p1, r0, r1) -> np.ndarray:
    """Segment p0→p1 whose radius tapers linearly from r0 to r1 (legs, neck, snout, ears, tail)."""
    du, dv = p1[0] - p0[0], p1[1] - p0[1]
    pu, pv = U - p0[0], V - p0[1]
    t = np.clip((pu * du + pv * dv) / (du * du + dv * dv), 0.0, 1.0)
    eu, ev = pu - t * du, pv - t * dv
    return np.sqrt(eu * eu + ev * ev) - (r0 + (r1 - r0) * t)


def ring(U: np.ndarray, V: np.ndarray, cu, cv, radius: float, half_width: float) -> np.ndarray:
    du, dv = U - cu, V - cv
    return np.abs(np.sqrt(du * du + dv * dv) - radius) - half_width


def union(*covers: np.ndarray) -> np.ndarray:
    """Coverage of a union of shapes (pointwise maximum, broadcasting)."""
    out = covers[0]
    for c in covers[1:]:
        out = np.maximum(out, c)
    return out
