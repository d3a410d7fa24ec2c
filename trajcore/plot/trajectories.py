"""Coefficient trajectories and learning times (any problem's recorded run)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validation import as_float_array, as_nonnegative_int
from ..trajectory import Trajectory

__all__ = ["coefficients", "learning_times", "scaling", "new_axes"]


def new_axes(ax: Any = None, kind: str = "line") -> Any:
    """``ax`` itself, or fresh axes of the style's size ``kind`` on a new pyplot figure (so notebooks
    display it)."""
    from . import style

    return style.new_axes(ax, kind)


def coefficients(
    trajectory: Any,
    which: Sequence[int] | None = None,
    *,
    ax: Any = None,
    labels: Sequence[str] | None = None,
    targets: Any = None,
    logy: bool = False,
    logx: bool | None = None,
) -> Any:
    """Plot recorded coefficients against iterations.

    trajectory : Trajectory (single, not batched)
    which : positions in ``trajectory.coefficient_pairs`` to draw (default: the diagonal ones)
    labels : legend entries (default: the papers' 1-based names, ``beta_1`` or ``beta_12``)
    targets : optional final values, one per drawn coefficient, as dotted lines of the curve's colour
    logx : log (symlog) iterations; ``None`` chooses it when every curve settles in the first 5%
    Returns the matplotlib axes.
    """
    from . import style

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
    goals = [] if targets is None else list(np.asarray(targets, dtype=float).ravel())
    ax = new_axes(ax)
    looks = style.cycle(len(which))
    drawn = []
    for n, k in enumerate(which):
        i, j = pairs[k]
        label = labels[n] if labels is not None else (style.beta(i + 1, j + 1) if i != j else style.beta(i + 1))
        series = trajectory.coefficients[:, k]
        drawn.append(np.abs(series) if logy else series)
        ax.plot(trajectory.steps, drawn[-1], label=label, **looks[n])
    for n, value in enumerate(goals):
        color = looks[n]["color"] if n < len(looks) else "#888888"
        ax.axhline(value, color=color, lw=0.8, ls=":", alpha=0.8)
    if logy:
        ax.set_yscale("log")
    if drawn and len(trajectory.steps) > 2:
        if logx is None:
            style.use_log_x_if_early(ax, trajectory.steps, np.stack(drawn, axis=-1))
        elif logx:
            style.log_steps(ax, trajectory.steps)
    style.label_axes(ax, x="iteration", y="|coefficient value|" if logy else "coefficient value")
    style.plain_numbers(ax)
    if which:  # no coefficients recorded: nothing to name
        style.legend_outside(ax)
    return ax


def learning_times(measured: Any, predicted: Any, *, ax: Any = None, labels: Sequence[str] | None = None) -> Any:
    """Measured learning times ``(k,)`` or ``(seeds, k)`` against predicted ``(k,)``, with y = x.

    A seed that never learned a component (NaN) is drawn as a cross on the top edge, not dropped."""
    from . import style

    pred = as_float_array("predicted", predicted, ndim=1)
    if pred.size == 0:
        raise ValueError("predicted: expected at least one learning time")
    meas = np.atleast_2d(as_float_array("measured", measured, finite=False))
    if meas.ndim != 2 or meas.shape[1] != pred.shape[0]:
        raise ValueError(f"measured: expected (..., {pred.shape[0]}) values, got {meas.shape}")
    if labels is not None and len(labels) < pred.shape[0]:
        raise ValueError(f"labels: expected {pred.shape[0]} labels, got {len(labels)}")
    ax = new_axes(ax, "square")
    looks = style.cycle(pred.shape[0])
    finite = meas[np.isfinite(meas)]
    lo = float(np.nanmin(np.concatenate([pred, finite]))) if np.isfinite(pred).any() else 0.0
    hi = float(np.nanmax(np.concatenate([pred, finite]))) if np.isfinite(pred).any() else 1.0
    for k in range(pred.shape[0]):
        label = labels[k] if labels is not None else f"component {k + 1}"
        ax.scatter(np.full(meas.shape[0], pred[k]), meas[:, k], label=label, s=22, color=looks[k]["color"])
        never = ~np.isfinite(meas[:, k])
        if never.any():
            ax.scatter([pred[k]], [hi * 1.1], marker="x", s=40, color=looks[k]["color"])
    if (~np.isfinite(meas)).any():
        ax.scatter([], [], marker="x", color="#000000", label="never learned (drawn at the top)")
    ax.plot([lo, hi], [lo, hi], color="#888888", lw=0.8, ls="--", label="measured = predicted")
    style.label_axes(ax, x="predicted learning time (iterations)", y="measured learning time (iterations)")
    style.plain_numbers(ax)
    style.legend_outside(ax)
    return ax


def scaling(
    x: Any,
    measured: Any,
    predicted: Any,
    *,
    xlabel: str,
    ax: Any = None,
    logx: bool = False,
    ylabel: str = "learning time (iterations)",
) -> Any:
    """A scaling study: measured ``(n,)`` or ``(seeds, n)`` and predicted ``(n,)`` against ``x (n,)``.

    Each point is the mean ± sd over the seeds that have a value; where some seeds have none (NaN:
    they never got there) the point says how many it covers, and a point with no seed at all is a
    cross on the top edge, so nothing is dropped silently."""
    from . import style

    xs = as_float_array("x", x, ndim=1)
    if xs.size == 0:
        raise ValueError("x: expected at least one point")
    pred = as_float_array("predicted", predicted, shape=xs.shape)
    meas = np.atleast_2d(as_float_array("measured", measured, finite=False))
    if meas.ndim != 2 or meas.shape[1] != xs.shape[0]:
        raise ValueError(f"measured: expected ({xs.shape[0]},) or (seeds, {xs.shape[0]}) values, got {meas.shape}")
    ax = new_axes(ax)
    blue, orange, vermillion = style.palette(4)[0], style.palette(4)[1], style.palette(4)[3]
    counts = np.isfinite(meas).sum(axis=0)
    some = counts > 0
    mean = np.full(xs.shape, np.nan)
    spread = np.zeros(xs.shape)
    for k in np.flatnonzero(some):
        values = meas[np.isfinite(meas[:, k]), k]
        mean[k], spread[k] = values.mean(), values.std()
    n = meas.shape[0]
    ax.errorbar(
        xs[some],
        mean[some],
        yerr=spread[some] if n > 1 else None,
        fmt="o",
        color=blue,
        capsize=3,
        label=f"measured (mean ± sd, {n} seeds)" if n > 1 else "measured",
    )
    ax.plot(xs, pred, "-", color=orange, label="predicted")
    partial = some & (counts < n)
    for k in np.flatnonzero(partial):
        ax.annotate(
            f"{counts[k]}/{n} seeds",
            (xs[k], mean[k]),
            textcoords="offset points",
            xytext=(6, -12),
            fontsize=8,
            color=vermillion,
        )
    if (~some).any():
        top = float(np.nanmax(np.concatenate([pred, mean[some]]))) * 1.1
        ax.plot(xs[~some], np.full(int((~some).sum()), top), "x", color=vermillion, ms=8, label="no seed got there")
    if logx:
        ax.set_xscale("log")
    style.label_axes(ax, x=xlabel, y=ylabel)
    style.plain_numbers(ax)
    style.legend_outside(ax)
    return ax
