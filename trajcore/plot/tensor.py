"""Figures of orthogonal symmetric tensor decomposition runs (PAPERS.md section 3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validation import as_float_array
from .trajectories import coefficients as _coefficients
from .trajectories import new_axes

__all__ = ["tensor_coefficients", "error_staircase", "escape_scaling"]


def tensor_coefficients(trajectory: Any, weights: Any = None, *, ax: Any = None, logx: bool = False) -> Any:
    """``beta_k(t) = sum_j <z_k, u_j>^l`` against iterations, with the planted ``weights (r,)`` dotted.

    trajectory : Trajectory (single) recorded with coefficients; returns the axes.
    """
    pairs = trajectory.coefficient_pairs
    labels = [
        f"beta_{k} (c={weights[k]:g})" if weights is not None and k < len(weights) else f"beta_{k}" for k in pairs[:, 0]
    ]
    ax = _coefficients(
        trajectory,
        list(range(pairs.shape[0])),
        ax=ax,
        labels=labels,
        targets=None if weights is None else list(np.asarray(weights, dtype=float)),
    )
    if logx:
        ax.set_xscale("symlog", linthresh=max(1.0, float(trajectory.steps[1]) if len(trajectory.steps) > 1 else 1.0))
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
    ax = new_axes(ax)
    ax.plot(t, np.clip(e, 1e-300, None), lw=1.2, label=label)
    for n, level in enumerate(lv[lv > 0]):
        ax.axhline(level, color="grey", ls="--", lw=0.8, label="predicted plateaus" if n == 0 else None)
    for n, p in enumerate(plateaus):
        ax.plot(
            [p.start, p.end],
            [p.level, p.level],
            color="C3",
            lw=3,
            alpha=0.6,
            label="detected plateaus" if n == 0 else None,
        )
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("||T - T*|| / ||T*||")
    ax.legend(fontsize="small")
    return ax


def escape_scaling(alphas: Any, measured: Any, predicted: Any, order: int, *, ax: Any = None) -> Any:
    """Measured first escape times ``(A,)`` or ``(S, A)`` against the init scale ``alphas (A,)`` (log-log),
    with the prediction ``(A,)`` or ``(S, A)`` and the slope ``-(l-2)`` it implies."""
    a = as_float_array("alphas", alphas, ndim=1)
    meas = np.atleast_2d(as_float_array("measured", measured, finite=False))
    pred = np.atleast_2d(as_float_array("predicted", predicted, finite=False))
    ax = new_axes(ax)
    for s in range(meas.shape[0]):
        ax.plot(a, meas[s], "o", color="C0", alpha=0.7, label="measured" if s == 0 else None)
    for s in range(pred.shape[0]):
        ax.plot(
            a,
            pred[s],
            "-",
            color="C1",
            alpha=0.7,
            label=f"1 / (2 l (l-2) eta c a0^(l-2)),  slope -{order - 2}" if s == 0 else None,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("init scale alpha")
    ax.set_ylabel("first escape time (iterations)")
    ax.legend(fontsize="small")
    return ax
