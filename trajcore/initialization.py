"""Initial iterates drawn from a seed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._deprecation import old_spellings
from ._validation import as_nonnegative_int, as_positive_float

__all__ = ["small_init"]


@old_spellings(keyword_only=("seed",))
def small_init(shape: Sequence[int], scale: float, *, seed: int | None = 0) -> np.ndarray:
    """``scale * N(0, 1)`` of the given shape, float64, from ``numpy.random.default_rng(seed)``.

    ``shape`` is ``(d, r')`` for one trajectory or ``(B, d, r')`` for a batch; batch member b is the
    same whatever B is (row b of a batch equals ``small_init((d, r'), scale, seed=seed)`` only for
    b = 0, so pass the full batch shape to keep a batch reproducible). For a problem,
    ``problem.initial_point(width, scale, seed=seed)`` draws the same values in its parameter shape.
    ``seed`` is keyword-only (positionally it still works, with a ``DeprecationWarning``).
    """
    dims = tuple(as_nonnegative_int("shape", s) for s in shape)
    scale = as_positive_float("scale", scale, allow_zero=True)
    rng = np.random.default_rng(seed)
    return scale * rng.standard_normal(dims)
