"""Orthogonal symmetric tensor decomposition: plateaus, learning order, escape times (PAPERS.md section 3).

For ``T* = sum_k c_k z_k^{(x)l}`` and a small initialization, GD on ``||sum_j u_j^{(x)l} - T*||^2`` learns
one component at a time:

* **plateaus** -- while the components in a set S are unlearned, the relative error
  ``||T - T*|| / ||T*||`` sits at ``sqrt(sum_{k in S} c_k^2 / sum_k c_k^2)``;
* **escape times** -- the alignment ``a = <z_k, u_j>`` of the best-aligned column grows as
  ``a' = 2 l eta c_k a^{l-1}`` (un-halved loss), which blows up at
  ``t_k ~ 1 / (2 l (l-2) eta c_k a_0^{l-2})``: the learning order follows ``c_k a_0^{l-2}``, not ``c_k``;
* **gradient dominance** -- ``||grad beta_k|| = l |beta_k|^{1 - 1/l}`` while one column carries
  component k, so the log-log slope gamma is ``1 - 1/l`` (measure it with
  :func:`trajcore.analysis.gradient_dominance`, which uses
  ``OrthogonalTensorDecomposition.coefficient_gradients``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import as_float_array, as_positive_float, as_positive_int
from .series import crossing_times

__all__ = [
    "Plateau",
    "detect_plateaus",
    "predicted_plateau_levels",
    "initial_alignments",
    "predicted_escape_times",
    "predicted_learning_order",
    "measured_learning_order",
]


@dataclass(frozen=True)
class Plateau:
    """A stretch of records where the relative error stays (nearly) constant.

    start, end : first and last step of the stretch; level : median error over it.
    """

    start: int
    end: int
    level: float


def predicted_plateau_levels(c: Any, learning_order: Any = None) -> np.ndarray:
    """Relative-error plateaus ``sqrt(sum_{unlearned} c^2 / sum c^2)`` after learning 0, 1, ..., r components.

    c : (r,) float64 coefficients; learning_order : (r,) int permutation (default: decreasing |c|).
    Returns (r + 1,) float64, starting at 1 and ending at 0.
    """
    c = as_float_array("c", c, ndim=1)
    if c.size == 0 or not np.any(c != 0):
        raise ValueError("c: expected at least one non-zero coefficient")
    order = np.argsort(-np.abs(c), kind="stable") if learning_order is None else _permutation(learning_order, c.size)
    squares = c[order] ** 2
    remaining = np.concatenate([[np.sum(squares)], np.sum(squares) - np.cumsum(squares)])
    return np.sqrt(np.clip(remaining, 0.0, None) / np.sum(squares))


def _permutation(order: Any, r: int) -> np.ndarray:
    index = np.asarray(order)
    if index.dtype.kind not in "iu" or index.shape != (r,) or sorted(index.tolist()) != list(range(r)):
        raise ValueError(f"learning_order: expected a permutation of 0..{r - 1}, got {order!r}")
    return index.astype(np.int64)


def detect_plateaus(
    steps: Any, error: Any, *, relative_change: float = 0.01, min_length: int = 0, min_records: int = 3
) -> list[Plateau]:
    """Plateaus of a relative-error curve.

    A plateau is a maximal run of consecutive records over which the error stays within a factor
    ``1 +- relative_change`` of the run's first value, spanning at least ``min_length`` iterations and
    ``min_records`` records. Its level is the median error over the run.

    steps : (R,) int, error : (R,) float64 (e.g. ``problem.relative_error(trajectory.loss)``).
    """
    t = np.asarray(steps)
    e = as_float_array("error", error, ndim=1, finite=False)
    if t.shape != e.shape:
        raise ValueError(f"steps, error: expected equal shapes, got {t.shape} and {e.shape}")
    relative_change = as_positive_float("relative_change", relative_change)
    min_records = as_positive_int("min_records", min_records)
    plateaus: list[Plateau] = []
    i, R = 0, e.shape[0]
    while i < R:
        if not np.isfinite(e[i]):
            i += 1
            continue
        ref = e[i]
        j = i
        while j + 1 < R and np.isfinite(e[j + 1]) and abs(e[j + 1] - ref) <= relative_change * abs(ref):
            j += 1
        if j - i + 1 >= min_records and t[j] - t[i] >= min_length:
            plateaus.append(Plateau(int(t[i]), int(t[j]), float(np.median(e[i : j + 1]))))
            i = j + 1
        else:
            i += 1
    return plateaus


def initial_alignments(basis: Any, U0: Any, order: int) -> np.ndarray:
    """Best initial alignment ``a_0`` of a column of ``U0 (d, m)`` with each column z_k of ``basis (d, r)``.

    Even l: ``max_j |<z_k, u_j>|`` (both signs escape); odd l: ``max_j <z_k, u_j>`` (a negative alignment
    decays), clipped at 0. Returns (r,).
    """
    Z = as_float_array("basis", basis, ndim=2)
    U = as_float_array("U0", U0, ndim=2)
    order = as_positive_int("order", order)
    if Z.shape[0] != U.shape[0]:
        raise ValueError(f"basis, U0: expected the same number of rows, got {Z.shape} and {U.shape}")
    P = Z.T @ U
    return np.max(np.abs(P), axis=1) if order % 2 == 0 else np.clip(np.max(P, axis=1), 0.0, None)


def predicted_escape_times(c: Any, a0: Any, order: int, lr: float, *, halved: bool = False) -> np.ndarray:
    """``t_k = 1 / (g l (l-2) eta c_k a_0^{l-2})`` with g = 2 (un-halved loss) or 1 (halved): (r,).

    The blow-up time of ``a' = g l eta c_k a^{l-1}`` from ``a_0``; infinite where ``c_k a_0 <= 0``.
    Needs l >= 3 (for l = 2 the growth is exponential, not a blow-up).
    """
    c = as_float_array("c", c, ndim=1)
    a0 = as_float_array("a0", a0, shape=(c.shape[0],))
    order = as_positive_int("order", order)
    if order < 3:
        raise ValueError(f"order: escape times by blow-up need l >= 3, got {order}")
    lr = as_positive_float("lr", lr)
    g = 1.0 if halved else 2.0
    rate = g * order * (order - 2) * lr * c * a0 ** (order - 2)
    with np.errstate(divide="ignore"):
        return np.where(rate > 0, 1.0 / np.where(rate > 0, rate, 1.0), np.inf)


def predicted_learning_order(c: Any, a0: Any, order: int) -> np.ndarray:
    """Components sorted by decreasing ``c_k a_0^{l-2}`` (the first escapes first): (r,) int."""
    c = as_float_array("c", c, ndim=1)
    a0 = as_float_array("a0", a0, shape=(c.shape[0],))
    order = as_positive_int("order", order)
    return np.argsort(-(c * a0 ** (order - 2)), kind="stable")


def measured_learning_order(coefficients: Any, steps: Any, q: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """``(order (r,), times (r,))``: each coefficient's first step at ``q`` of its final value, and the
    components sorted by that time (never-learned ones last).

    coefficients : (R, r) float64 (e.g. ``trajectory.coefficients``); steps : (R,).
    """
    beta = as_float_array("coefficients", coefficients, ndim=2, finite=False)
    times = np.asarray(crossing_times(beta, q=q, steps=steps, axis=0), dtype=float)
    return np.argsort(np.where(np.isnan(times), np.inf, times), kind="stable"), times
