"""Rank dynamics of deep linear networks (Paper B's figure, spectra, loss curves)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .trajectories import new_axes

__all__ = ["product_rank", "product_singular_values", "loss_curves", "noise_rank_summary"]


def _single(name: str, trajectory: Any) -> Any:
    from ..trajectory import Trajectory

    if not isinstance(trajectory, Trajectory):
        raise TypeError(f"{name}: expected a Trajectory, got {type(trajectory).__name__}")
    if trajectory.batched:
        raise ValueError(f"{name}: plot one trajectory of a batch (index it first)")
    return trajectory


def product_rank(
    problem: Any,
    trajectories: Mapping[str, Any],
    *,
    ax: Any = None,
    rtol: float | None = None,
    atol: float | None = None,
    measure: str = "numerical",
) -> Any:
    """Rank of the product ``P = W_N ... W_1`` against iterations, one line per run (Paper B's figure).

    problem : DeepLinearNetwork
    trajectories : mapping label -> Trajectory (single runs recorded with the product spectrum)
    rtol, atol : rank rule applied to the recorded spectra (default: the value recorded by the kernel)
    measure : "numerical", "effective" or "stable"
    Returns the matplotlib axes.
    """
    from ..analysis.rank import effective_rank, numerical_rank, stable_rank

    if measure not in ("numerical", "effective", "stable"):
        raise ValueError(f"measure: expected 'numerical', 'effective' or 'stable', got {measure!r}")
    from . import style

    ax = new_axes(ax)
    shape = (problem.widths[-1], problem.widths[0])
    looks = style.cycle(len(trajectories))
    for index, (label, traj) in enumerate(trajectories.items()):
        traj = _single(f"trajectories[{label!r}]", traj)
        obs = problem.observables(traj)
        if measure == "numerical" and rtol is None and atol is None and "numerical_rank" in obs:
            series = obs["numerical_rank"]
        else:
            if "product_singular_values" not in obs:
                raise ValueError(f"trajectories[{label!r}]: the product spectrum was not recorded")
            s = obs["product_singular_values"]
            if measure == "numerical":
                series = numerical_rank(s, rtol=rtol, atol=atol, spectrum=True, shape=shape)
            elif measure == "effective":
                series = effective_rank(s, spectrum=True)
            else:
                series = stable_rank(s, spectrum=True)
        # later curves drawn thinner, so curves lying on top of each other stay visible
        width = 2.6 - 1.6 * index / max(1, len(trajectories) - 1)
        ax.plot(traj.steps, series, label=str(label), drawstyle="steps-post", **{**looks[index], "lw": width})
    ax.axhline(problem.rank_cap, color="#888888", lw=0.8, ls=":", label=f"rank cap {problem.rank_cap}")
    rule = f"atol {atol:g}" if atol is not None else (f"rtol {rtol:g}" if rtol is not None else "default rule")
    style.label_axes(
        ax,
        x="iteration",
        y=f"{measure} rank of $W_N \\cdots W_1$" + (f" ({rule})" if measure == "numerical" else ""),
    )
    if measure == "numerical":
        from matplotlib.ticker import MaxNLocator

        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    style.plain_numbers(ax)
    style.legend_outside(ax)
    return ax


def product_singular_values(problem: Any, trajectory: Any, *, ax: Any = None, floor: float = 1e-20) -> Any:
    """Singular values of the product against iterations (log scale; values below ``floor`` are clipped)."""
    traj = _single("trajectory", trajectory)
    obs = problem.observables(traj)
    if "product_singular_values" not in obs:
        raise ValueError("trajectory: the product spectrum was not recorded")
    from . import style

    s = np.maximum(obs["product_singular_values"], floor)
    ax = new_axes(ax)
    looks = style.cycle(s.shape[-1])
    for i in range(s.shape[-1]):
        ax.plot(traj.steps, s[:, i], label=f"$s_{{{i + 1}}}$", **{**looks[i], "lw": 1.3})
    ax.set_yscale("log")
    style.label_axes(ax, x="iteration", y=f"singular values of $W_N \\cdots W_1$ (floor {floor:g})")
    style.legend_outside(ax, ncol=1 if s.shape[-1] <= 12 else 2)
    return ax


def loss_curves(
    trajectories: Mapping[str, Any], *, ax: Any = None, optimal_loss: float | None = None, logy: bool | None = None
) -> Any:
    """Exact (noise-free) loss against iterations, one line per run; ``optimal_loss`` as a dotted line.

    ``logy``: log loss axis (``None``: when the losses span two orders of magnitude or more)."""
    from . import style

    ax = new_axes(ax)
    looks = style.cycle(len(trajectories))
    losses = []
    for index, (label, traj) in enumerate(trajectories.items()):
        traj = _single(f"trajectories[{label!r}]", traj)
        losses.append(traj.loss)
        ax.plot(traj.steps, traj.loss, label=str(label), **{**looks[index], "lw": 1.5})
    if optimal_loss is not None:
        ax.axhline(optimal_loss, color="#888888", lw=1.0, ls=":", label=f"global optimum {optimal_loss:.4g}")
    if logy:
        ax.set_yscale("log")
    elif logy is None and losses:
        style.use_log_y_if_spanning(ax, np.concatenate(losses))
    style.label_axes(ax, x="iteration", y="loss $\\frac{1}{2}\\|P X - Y\\|_F^2$")
    style.plain_numbers(ax)
    style.legend_outside(ax)
    return ax


def noise_rank_summary(
    names: Sequence[str],
    final_rank: Any,
    subspace_bound: float,
    rank_cap: int,
    invariant: Sequence[bool],
    loss_over_optimum: Any,
    bound_loss_over_optimum: float,
    *,
    axes: Any = None,
    reached: float = 1.05,
) -> Any:
    """Paper B at a glance: which noise models raise the product rank, and which reach the optimum.

    names : (M,) noise models, one row each; final_rank : (M,) final product rank on data without
    signal; subspace_bound : ``min_k dim S_k`` of the start (exact GD cannot exceed it); invariant :
    (M,) whether the model provably keeps the S_k structure (input noise, label noise, minibatches);
    loss_over_optimum : (M,) final loss / global optimum on planted-signal data; bound_loss_over_optimum :
    the best loss reachable within the S_k bound, over the optimum; reached : a ratio at or below it
    counts as reaching the optimum. axes : two axes side by side (default: a new "wide" figure).
    Returns the two axes.
    """
    from . import style

    rank = np.asarray(final_rank, dtype=float)
    ratio = np.asarray(loss_over_optimum, dtype=float)
    keep = np.asarray(invariant, dtype=bool)
    if not (len(names) == rank.size == ratio.size == keep.size):
        raise ValueError(f"names: expected one entry per rank, flag and loss ratio, got {len(names)}")
    if axes is None:
        import matplotlib as mpl
        import matplotlib.pyplot as plt

        with mpl.rc_context(style.RC):
            axes = plt.subplots(1, 2, figsize=style.SIZES["wide"], layout="constrained", sharey=True)[1]
    left, right = axes
    blue, orange = style.palette(2)
    rows = np.arange(rank.size)[::-1]  # first name on top
    colors = [orange if k else blue for k in keep]
    left.barh(rows, rank, color=colors, height=0.6)
    left.axvline(subspace_bound, color="#000000", ls="--", lw=1.0)
    left.axvline(rank_cap, color="#888888", ls=":", lw=1.0)
    left.set_yticks(rows, list(names))
    left.set_xlim(0, rank_cap + 0.5)
    left.text(subspace_bound, rows[0] + 0.75, " $S_k$ bound", fontsize=8, va="bottom")
    left.text(rank_cap, rows[0] + 0.75, "cap ", fontsize=8, va="bottom", ha="right", color="#555555")
    left.set_ylim(rows[-1] - 0.6, rows[0] + 1.4)
    style.label_axes(left, x="final rank of $W_N \\cdots W_1$", y="", title="Does the noise raise the rank?")
    positive = np.where(np.isfinite(ratio) & (ratio > 0), ratio, np.nan)
    right.hlines(rows, 1.0, positive, color=colors, lw=2)
    right.scatter(positive, rows, color=colors, s=36, zorder=3)
    right.axvline(1.0, color="#000000", ls="--", lw=1.0)
    right.axvline(bound_loss_over_optimum, color="#888888", ls=":", lw=1.0)
    right.set_xscale("log")
    top = float(np.nanmax(np.append(positive, bound_loss_over_optimum)))
    right.set_xlim(0.8, top * 4)
    right.text(1.0, rows[0] + 0.75, " optimum", fontsize=8, va="bottom")
    right.text(bound_loss_over_optimum, rows[0] + 0.75, "best within $S_k$ ", fontsize=8, va="bottom", ha="right")
    for row, value in zip(rows, positive, strict=True):
        if np.isfinite(value):
            right.text(
                value * 1.15, row, "reaches optimum" if value <= reached else f"{value:.3g}×", fontsize=8, va="center"
            )
    style.label_axes(right, x="final loss / global optimum (log)", y="", title="Planted signal: reaches the optimum?")
    from matplotlib.patches import Patch

    handles = [
        Patch(color=blue, label="can raise the rank"),
        Patch(color=orange, label="provably cannot under exact GD\n(keeps the $S_k$ structure)"),
    ]
    right.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=9)
    return axes
