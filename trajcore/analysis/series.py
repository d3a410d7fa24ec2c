"""Monotonicity and learning times of recorded series (PAPERS.md section 6).

Series are arrays with time on axis ``axis`` (default -2 of a ``(..., T, K)`` coefficient array,
or the only axis of a 1-d series); results drop that axis. The loops are the Cython module
``trajcore._series``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _series
from .._validation import as_float_array

__all__ = ["monotonicity_index", "nonmonotone_mass", "monotone_fraction", "crossing_times", "learning_times"]


def _apply(name: str, series: Any, axis: int | None, fn: Any, *args: Any) -> Any:
    values = as_float_array(name, series, finite=False)
    if values.ndim == 0:
        raise ValueError(f"{name}: expected at least one (time) axis")
    if axis is None:
        axis = 0 if values.ndim == 1 else -2
    moved = np.moveaxis(values, axis, 0)
    flat = moved.reshape(moved.shape[0], int(np.prod(moved.shape[1:])))  # not -1: T may be 0
    out = fn(flat, *args)
    result = out.reshape(moved.shape[1:])
    return result[()] if result.ndim == 0 else result


def monotonicity_index(series: Any, axis: int | None = None) -> Any:
    """``|b_T - b_0| / sum_t |b_{t+1} - b_t|``: 1 for a monotone series, near 0 for an oscillating one.

    series : (T,) or (..., T, K) float64. Returns a float or (..., K).
    """
    return _apply("series", series, axis, _series.monotonicity_index)


def nonmonotone_mass(series: Any, axis: int | None = None) -> Any:
    """``sum_t max(0, -(b_{t+1} - b_t) sign(b_T - b_0)) / max_t |b_t|``: 0 for a monotone series."""
    return _apply("series", series, axis, _series.nonmonotone_mass)


def monotone_fraction(series: Any, axis: int | None = None) -> Any:
    """Fraction of steps moving toward the final value (or standing still)."""
    return _apply("series", series, axis, _series.monotone_fraction)


def crossing_times(series: Any, q: float = 0.5, steps: Any = None, axis: int | None = None) -> Any:
    """First record with ``b_t >= q b_T`` (``<=`` for a negative final value), as a step number.

    ``steps (T,)`` maps record positions to iteration numbers (e.g. ``trajectory.steps``); without
    it the position is returned. Never crossing (or NaN data) gives NaN.
    """
    q = float(as_float_array("q", q, shape=()))
    values = as_float_array("series", series, finite=False)
    index = np.asarray(_apply("series", values, axis, _series.crossing_indices, q))
    T = values.shape[0 if axis is None and values.ndim == 1 else (-2 if axis is None else axis)]
    grid = np.arange(T, dtype=np.float64) if steps is None else as_float_array("steps", steps, shape=(T,))
    out = np.append(grid, np.nan)[index]  # index -1 (never crossed) picks the appended NaN
    return out[()] if out.ndim == 0 else out


def learning_times(coefficients: Any, q: float = 0.9, steps: Any = None, axis: int | None = None) -> Any:
    """Learning time of each coefficient: the step its series first reaches ``q`` of its final value.

    coefficients : (..., T, K) float64 (e.g. ``trajectory.coefficients``). Returns (..., K).
    """
    return crossing_times(coefficients, q=q, steps=steps, axis=axis)
