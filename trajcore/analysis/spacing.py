"""Monotonicity depends on how often a series is recorded: measures that say their spacing.

The monotonicity index ``|b_T - b_0| / sum_t |b_{t+1} - b_t|`` (PAPERS.md section 6) adds up every
step's movement, so minibatch jitter -- small steps back and forth on top of a monotone trend --
lowers it the more often the series is recorded: the same SGD run scores about 0.2 recorded every
step and above 0.9 recorded ten times. A number without its record spacing is not a result.

* :func:`subsample` -- the records at a coarser spacing (every ``spacing`` steps).
* :func:`monotonicity_at_spacings` -- the index of the same series at several spacings, side by side.
* :func:`windowed_monotonicity_index` -- the index of the series averaged over consecutive windows
  of ``window`` steps: the window means of a monotone trend plus zero-mean jitter move monotonically
  once the trend's rise over a window exceeds the jitter's spread of a window mean (shrinking as
  1/sqrt(records per window)), so the measure does not collapse under jitter, while a real
  overshoot (a rise above the final value and a fall back) lowers it as it lowers the plain index.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import as_float_array, as_positive_int
from .series import monotonicity_index

__all__ = ["monotonicity_at_spacings", "subsample", "windowed_monotonicity_index", "window_means"]


def _steps_and_series(series: Any, steps: Any) -> tuple[np.ndarray, np.ndarray]:
    values = as_float_array("series", series, finite=False)
    if values.ndim not in (1, 2):
        raise ValueError(f"series: expected shape (T,) or (T, K), got {values.shape}")
    if values.shape[0] == 0:
        raise ValueError("series: expected at least one record")
    grid = as_float_array("steps", steps, shape=(values.shape[0],))
    if np.any(np.diff(grid) <= 0):
        raise ValueError("steps: expected strictly increasing step numbers")
    return values, grid


def subsample(series: Any, steps: Any, spacing: int) -> tuple[np.ndarray, np.ndarray]:
    """The records at the first step and then every ``spacing`` steps (the first record at or after
    each multiple), plus the last record.

    series : (T,) or (T, K); steps : (T,). Returns ``(steps (T',), series (T', ...))``.
    """
    values, grid = _steps_and_series(series, steps)
    spacing = as_positive_int("spacing", spacing)
    targets = np.arange(grid[0], grid[-1] + 1, spacing)
    index = np.unique(np.append(np.searchsorted(grid, targets), grid.size - 1))
    index = index[index < grid.size]
    return grid[index], values[index]


def monotonicity_at_spacings(series: Any, steps: Any, spacings: Any) -> dict[int, np.ndarray]:
    """``{spacing: monotonicity index}`` of ``series (T, K)`` recorded at ``steps (T,)``.

    Each value is ``(K,)`` (a float for a ``(T,)`` series); spacing 1 (or the recorded spacing) is
    the index of the series as recorded.
    """
    out: dict[int, np.ndarray] = {}
    for spacing in np.atleast_1d(np.asarray(spacings)).tolist():
        _, sub = subsample(series, steps, int(spacing))
        out[int(spacing)] = monotonicity_index(sub)
    return out


def window_means(series: Any, steps: Any, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Means of the records in consecutive windows ``[s0 + j w, s0 + (j+1) w)`` of ``w = window`` steps.

    series : (T,) or (T, K); steps : (T,). Returns ``(centres (J,), means (J, ...))``: the mean
    step and the mean value of each window that holds a record.
    """
    values, grid = _steps_and_series(series, steps)
    window = as_positive_int("window", window)
    labels = ((grid - grid[0]) // window).astype(np.int64)
    starts = np.flatnonzero(np.diff(labels, prepend=-1))  # records are sorted: windows are runs
    counts = np.diff(np.append(starts, grid.size))
    shape = (-1,) + (1,) * (values.ndim - 1)
    means = np.add.reduceat(values, starts, axis=0) / counts.reshape(shape)
    return np.add.reduceat(grid, starts) / counts, means


def windowed_monotonicity_index(series: Any, steps: Any, window: int) -> Any:
    """Monotonicity index of the window means (:func:`window_means`) of ``series (T,) or (T, K)``.

    About 1 for a trend that is monotone at the scale of ``window`` steps, whatever the jitter
    within a window; an overshoot of ``h`` above the final level ``L`` reached from ``b_0`` gives
    about ``|L - b_0| / (|L - b_0| + 2 h)``, as for the plain index. With a single window it is 1
    by the index's convention for a constant series. Returns a float or ``(K,)``.
    """
    _, means = window_means(series, steps, window)
    return monotonicity_index(means)
