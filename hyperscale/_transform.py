"""The Euclidean transform for maximum inner-product search (Bachrach et al., 2014).

"Speeding up the Xbox recommender system using a Euclidean transformation for
inner-product spaces", RecSys 2014: each item x gets one more coordinate
sqrt(M² - |x|²), where M is the largest item norm. Every item then has norm M, and
for a query with 0 in that coordinate, |q - x|² = |q|² + M² - 2 q·x, so the nearest
items are exactly those with the largest inner product.
"""

import numpy as np


def extra_coordinate(vectors, max_norm=None):
    """Return (sqrt(M² - |x|²) per row as float64, M).

    M is the largest row norm unless ``max_norm`` is given; rows longer than M get
    0. Norms are taken in float64, so that a norm near 1e20 does not overflow.
    Rounding can leave a tiny negative under the root, which is clamped to 0.
    """
    norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    max_norm = float(norms.max()) if max_norm is None else float(max_norm)
    if max_norm == 0.0:
        return np.zeros(len(vectors)), 0.0
    relative = norms / max_norm
    return max_norm * np.sqrt(np.maximum(0.0, 1.0 - relative * relative)), max_norm


def augmented_unit(vectors, max_norm=None):
    """Return the transformed vectors divided by M, as float32 (n, dim + 1), and M.

    Dividing by M puts every item on the unit sphere whatever the scale of the
    model. ``max_norm`` is passed on to :func:`extra_coordinate`.
    """
    extra, max_norm = extra_coordinate(vectors, max_norm)
    augmented = np.empty((vectors.shape[0], vectors.shape[1] + 1), dtype=np.float32)
    scale = 1.0 / max_norm if max_norm > 0 else 1.0
    augmented[:, :-1] = vectors.astype(np.float64) * scale
    augmented[:, -1] = extra * scale
    return augmented, max_norm


def unit_rows(vectors):
    """Return the rows scaled to unit norm (float32) and a mask of the all-zero rows."""
    norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    zero = norms == 0.0
    safe = np.where(zero, 1.0, norms)
    return (vectors / safe[:, None]).astype(np.float32), zero
