"""Rank dynamics of deep linear networks (Paper B's figure, spectra, loss curves)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .trajectories import new_axes

__all__ = ["product_rank", "product_singular_values", "loss_curves"]


def _single(name: str, trajectory: Any) -> Any:
    from ..trajectory import Trajectory

    if not isinstance(trajectory, Trajectory):
        raise TypeError(f"{name}: expected a Trajectory, got {type(trajectory).__name__}")
    if trajectory.batched:
        raise ValueError(f"{name}: plot one trajectory of a batch (index it first)")
    return trajectory


def _style(index: int) -> str:
    """Line style that keeps more than ten lines (matplotlib's colour cycle) apart."""
    return ("-", "--", ":", "-.")[(index // 10) % 4]


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
    ax = new_axes(ax)
    shape = (problem.widths[-1], problem.widths[0])
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
        ax.plot(traj.steps, series, lw=2, alpha=0.8, label=str(label), drawstyle="steps-post", ls=_style(index))
    ax.axhline(problem.rank_cap, color="grey", lw=0.8, ls=":")
    rule = f"atol={atol:g}" if atol is not None else (f"rtol={rtol:g}" if rtol is not None else "default rule")
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"{measure} rank of W_N...W_1" + (f" ({rule})" if measure == "numerical" else ""))
    ax.legend(fontsize="small")
    return ax


def product_singular_values(problem: Any, trajectory: Any, *, ax: Any = None, floor: float = 1e-20) -> Any:
    """Singular values of the product against iterations (log scale; values below ``floor`` are clipped)."""
    traj = _single("trajectory", trajectory)
    obs = problem.observables(traj)
    if "product_singular_values" not in obs:
        raise ValueError("trajectory: the product spectrum was not recorded")
    s = np.maximum(obs["product_singular_values"], floor)
    ax = new_axes(ax)
    for i in range(s.shape[-1]):
        ax.plot(traj.steps, s[:, i], lw=1.2, label=f"s_{i + 1}")
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("singular values of W_N...W_1")
    ax.legend(fontsize="x-small", ncol=2)
    return ax


def loss_curves(
    trajectories: Mapping[str, Any], *, ax: Any = None, optimal_loss: float | None = None, logy: bool = False
) -> Any:
    """Exact (noise-free) loss against iterations, one line per run; ``optimal_loss`` as a dotted line."""
    ax = new_axes(ax)
    for index, (label, traj) in enumerate(trajectories.items()):
        traj = _single(f"trajectories[{label!r}]", traj)
        ax.plot(traj.steps, traj.loss, lw=1.5, label=str(label), ls=_style(index))
    if optimal_loss is not None:
        ax.axhline(optimal_loss, color="grey", lw=0.8, ls=":", label="global optimum")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss 1/2 ||P X - Y||^2")
    ax.legend(fontsize="small")
    return ax
