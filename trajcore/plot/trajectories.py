"""Coefficient trajectories and learning times (any problem's recorded run)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validation import as_float_array, as_nonnegative_int
from ..trajectory import Trajectory

__all__ = ["coefficients", "learning_times", "scaling", "new_axes"]


def new_axes(ax: Any = None, figsize: tuple[float, float] = (6.0, 4.0)) -> Any:
    """``ax`` itself, or fresh axes on a new figure (pyplot, so notebooks display it)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize)
    return ax


def coefficients(
    trajectory: Any,
    which: Sequence[int] | None = None,
    *,
    ax: Any = None,
    labels: Sequence[str] | None = None,
    targets: Any = None,
    logy: bool = False,
) -> Any:
    """Plot recorded coefficients against iterations.

    trajectory : Trajectory (single, not batched)
    which : positions in ``trajectory.coefficient_pairs`` to draw (default: the diagonal ones)
    targets : optional final values drawn as dotted lines (e.g. sigma)
    Returns the matplotlib axes.
    """
    if not isinstance(trajectory, Trajectory):
        raise TypeError(f"trajectory: expected a trajcore.Trajectory, got {type(trajectory).__name__}")
    if trajectory.batched:
        raise ValueError("trajectory: plot one trajectory of a batch (index it first)")
    pairs = trajectory.coefficient_pairs
    if which is None:
        which = list(np.flatnonzero(pairs[:, 0] == pairs[:, 1])) or list(range(pairs.shape[0]))
    which = [as_nonnegative_int("which", k) for k in which]
    if any(k >= pairs.shape[0] for k in which):
        raise ValueError(f"which: positions must lie in [0, {pairs.shape[0]}), got {which}")
    if labels is not None and len(labels) < len(which):
        raise ValueError(f"labels: expected {len(which)} labels, got {len(labels)}")
    ax = new_axes(ax)
    for n, k in enumerate(which):
        i, j = pairs[k]
        label = labels[n] if labels is not None else (f"beta_{i}{j}" if i != j else f"beta_{i}")
        series = trajectory.coefficients[:, k]
        ax.plot(trajectory.steps, np.abs(series) if logy else series, label=label)
    for value in [] if targets is None else targets:
        ax.axhline(value, color="grey", lw=0.8, ls=":")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("|coefficient|" if logy else "coefficient")
    if which:  # no coefficients recorded: nothing to name
        ax.legend(fontsize="small")
    return ax


def learning_times(measured: Any, predicted: Any, *, ax: Any = None, labels: Sequence[str] | None = None) -> Any:
    """Measured learning times ``(k,)`` or ``(seeds, k)`` against predicted ``(k,)``, with y = x."""
    pred = as_float_array("predicted", predicted, ndim=1)
    if pred.size == 0:
        raise ValueError("predicted: expected at least one learning time")
    meas = np.atleast_2d(as_float_array("measured", measured, finite=False))
    if meas.ndim != 2 or meas.shape[1] != pred.shape[0]:
        raise ValueError(f"measured: expected (..., {pred.shape[0]}) values, got {meas.shape}")
    if labels is not None and len(labels) < pred.shape[0]:
        raise ValueError(f"labels: expected {pred.shape[0]} labels, got {len(labels)}")
    ax = new_axes(ax, (4.5, 4.5))
    for k in range(pred.shape[0]):
        label = labels[k] if labels is not None else f"component {k}"
        ax.scatter(np.full(meas.shape[0], pred[k]), meas[:, k], label=label, s=18)
    lo, hi = np.nanmin([pred.min(), np.nanmin(meas)]), np.nanmax([pred.max(), np.nanmax(meas)])
    ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--", label="measured = predicted")
    ax.set_xlabel("predicted learning time")
    ax.set_ylabel("measured learning time")
    ax.legend(fontsize="small")
    return ax


def scaling(x: Any, measured: Any, predicted: Any, *, xlabel: str, ax: Any = None, logx: bool = False) -> Any:
    """A scaling study: measured ``(n,)`` or ``(seeds, n)`` and predicted ``(n,)`` against ``x (n,)``."""
    xs = as_float_array("x", x, ndim=1)
    if xs.size == 0:
        raise ValueError("x: expected at least one point")
    pred = as_float_array("predicted", predicted, shape=xs.shape)
    meas = np.atleast_2d(as_float_array("measured", measured, finite=False))
    if meas.ndim != 2 or meas.shape[1] != xs.shape[0]:
        raise ValueError(f"measured: expected ({xs.shape[0]},) or (seeds, {xs.shape[0]}) values, got {meas.shape}")
    ax = new_axes(ax)
    mean, spread = np.nanmean(meas, axis=0), np.nanstd(meas, axis=0)
    ax.errorbar(xs, mean, yerr=spread if meas.shape[0] > 1 else None, fmt="o", label="measured")
    ax.plot(xs, pred, "-", label="predicted")
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("learning time (iterations)")
    ax.legend(fontsize="small")
    return ax
