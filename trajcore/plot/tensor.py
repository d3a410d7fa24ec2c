"""Figures of orthogonal symmetric tensor decomposition runs (PAPERS.md section 3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validation import as_float_array
from .trajectories import coefficients as _coefficients
from .trajectories import new_axes

__all__ = ["tensor_coefficients", "error_staircase", "escape_scaling"]


def tensor_coefficients(trajectory: Any, weights: Any = None, *, ax: Any = None, logx: bool | None = None) -> Any:
    """``beta_k(t) = sum_j <z_k, u_j>^l`` against iterations, with the planted ``weights (r,)`` dotted.

    trajectory : Trajectory (single) recorded with coefficients; legend entries ``beta_k (c_k = ...)``
    with 1-based k as in the paper; ``logx``: log iterations (``None``: when every curve settles in the
    first 5% of the run). Returns the axes.
    """
    from .._validation import as_float_array as _floats

    pairs = trajectory.coefficient_pairs
    c = None if weights is None else _floats("weights", weights, ndim=1)
    labels = [
        f"$\\beta_{{{k + 1}}}$ ($c_{{{k + 1}}}$ = {c[k]:g})"
        if c is not None and k < c.size
        else f"$\\beta_{{{k + 1}}}$"
        for k in pairs[:, 0]
    ]
    goals = None if c is None else [c[k] for k in pairs[:, 0] if k < c.size]
    ax = _coefficients(trajectory, list(range(pairs.shape[0])), ax=ax, labels=labels, targets=goals, logx=logx)
    ax.set_title("tensor coefficients")
    return ax


def error_staircase(
    steps: Any,
    error: Any,
    levels: Any,
    *,
    ax: Any = None,
    plateaus: Sequence[Any] = (),
    label: str = "measured",
) -> Any:
    """Relative error ``||T - T*|| / ||T*||`` (log scale) against iterations, with the predicted plateau
    ``levels`` (e.g. ``analysis.predicted_plateau_levels``) as dashed lines and detected ``plateaus``
    (``analysis.Plateau``) as thick segments."""
    t = np.asarray(steps)
    e = as_float_array("error", error, shape=(t.shape[0],), finite=False)
    lv = as_float_array("levels", levels, ndim=1)
    from . import style

    ax = new_axes(ax)
    blue, orange = style.palette(2)
    ax.plot(t, np.clip(e, 1e-300, None), lw=1.4, color=blue, label=label)
    for n, level in enumerate(lv[lv > 0]):
        ax.axhline(level, color="#888888", ls="--", lw=0.8, label="predicted plateaus" if n == 0 else None)
    for n, p in enumerate(plateaus):
        ax.plot(
            [p.start, p.end],
            [p.level, p.level],
            color=orange,
            lw=4,
            alpha=0.6,
            label="detected plateaus" if n == 0 else None,
        )
    ax.set_yscale("log")
    style.label_axes(ax, x="iteration", y="relative error $\\|T - T^*\\|_F / \\|T^*\\|_F$")
    style.legend_outside(ax)
    return ax


def escape_scaling(alphas: Any, measured: Any, predicted: Any, order: int, *, ax: Any = None) -> Any:
    """Measured first escape times ``(A,)`` or ``(S, A)`` against the init scale ``alphas (A,)`` (log-log),
    with the prediction ``(A,)`` or ``(S, A)`` and the slope ``-(l-2)`` it implies."""
    a = as_float_array("alphas", alphas, ndim=1)
    meas = np.atleast_2d(as_float_array("measured", measured, finite=False))
    pred = np.atleast_2d(as_float_array("predicted", predicted, finite=False))
    from . import style

    ax = new_axes(ax)
    looks = style.cycle(max(meas.shape[0], pred.shape[0]))
    for s in range(meas.shape[0]):
        ax.plot(a, meas[s], "o", color=looks[s]["color"], label=f"measured, seed {s + 1}")
    for s in range(pred.shape[0]):
        ax.plot(
            a,
            pred[s],
            "-",
            color=looks[s]["color"],
            alpha=0.7,
            label="predicted (per seed) $1/(2l(l-2)\\eta c a_0^{l-2})$" + f", slope −{order - 2}" if s == 0 else None,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    style.label_axes(ax, x="init scale α", y="first escape time (iterations)")
    style.legend_outside(ax)
    return ax
