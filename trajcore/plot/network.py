"""Figures of the network experiments: the paper's coefficient figure and its three figure-2 diagnostics.

Every function takes an optional ``ax`` and returns the axes it drew on (``conditions_figure``: its
three axes); matplotlib is imported on call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .._validation import as_float_array

if TYPE_CHECKING:
    from ..analysis.conditions import GradientDominance
    from ..analysis.network import InitializationBars

__all__ = [
    "coefficient_figure",
    "initialization_bar_chart",
    "gradient_independence_heatmap",
    "gradient_dominance_plot",
    "conditions_figure",
]


def _axes(ax: Any, size: tuple[float, float] = (5.0, 3.6)) -> Any:
    if ax is None:
        import matplotlib.pyplot as plt

        ax = plt.subplots(figsize=size, constrained_layout=True)[1]
    return ax


def coefficient_figure(
    steps: Any,
    coefficients: Any,
    *,
    top: int = 5,
    ax: Any = None,
    title: str = "top basis coefficients",
    spread: Any | None = None,
) -> Any:
    """The paper's coefficient figure: ``beta_i(t)`` of the ``top`` coefficients largest at the end.

    steps : (T,) ; coefficients : (T, k) ; spread : (T, k), optional (e.g. a standard deviation
    over seeds, drawn as a band).
    """
    t = as_float_array("steps", steps, ndim=1)
    c = as_float_array("coefficients", coefficients, shape=(t.size, None))
    ax = _axes(ax)
    order = np.argsort(-np.abs(c[-1]), kind="stable")[: min(top, c.shape[1])]
    for rank, i in enumerate(order):
        line = ax.plot(t, c[:, i], lw=1.6, label=f"$\\beta_{{{rank + 1}}}$")[0]
        if spread is not None:
            s = as_float_array("spread", spread, shape=c.shape)
            ax.fill_between(t, c[:, i] - s[:, i], c[:, i] + s[:, i], color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlabel("step")
    ax.set_ylabel("coefficient")
    ax.set_title(title)
    ax.legend(fontsize=8, frameon=False)
    return ax


def initialization_bar_chart(bars: InitializationBars, *, ax: Any = None) -> Any:
    """Figure 2a: ``|beta_i(0)|`` of the top final coefficients and the residual bar, beside
    ``|beta_i(T)|``."""
    ax = _axes(ax)
    m = bars.indices.size
    x = np.arange(m + 1)
    ax.bar(x[:m] - 0.2, bars.initial, width=0.4, label="$|\\beta_i(0)|$")
    ax.bar(x[:m] + 0.2, bars.final, width=0.4, label="$|\\beta_i(T)|$", alpha=0.6)
    ax.bar([m], [bars.residual], width=0.4, color="0.4", label="residual at $t=0$")
    ax.set_xticks(x, [str(i + 1) for i in range(m)] + ["rest"])
    ax.set_yscale("log")
    ax.set_xlabel("rank of the final coefficient")
    ax.set_title("small initialization")
    ax.legend(fontsize=8, frameon=False)
    return ax


def gradient_independence_heatmap(matrix: Any, *, ax: Any = None) -> Any:
    """Figure 2b: heat map of ``max_t |cos(grad beta_i, grad beta_j)|``."""
    m = as_float_array("matrix", matrix, ndim=2)
    ax = _axes(ax, (4.4, 3.6))
    image = ax.imshow(m, vmin=0.0, vmax=1.0, cmap="viridis")
    ax.figure.colorbar(image, ax=ax, shrink=0.85)
    ticks = np.arange(m.shape[0])
    ax.set_xticks(ticks, [str(i + 1) for i in ticks])
    ax.set_yticks(ticks, [str(i + 1) for i in ticks])
    ax.set_title("gradient independence: max$_t$ |cos|")
    return ax


def gradient_dominance_plot(coefficients: Any, gradient_norms: Any, fit: GradientDominance, *, ax: Any = None) -> Any:
    """Figure 2c: ``log |beta_i|`` against ``log ||grad beta_i||`` with the fitted slopes gamma."""
    b = as_float_array("coefficients", coefficients, ndim=2)
    g = as_float_array("gradient_norms", gradient_norms, shape=b.shape)
    ax = _axes(ax)
    for i in range(b.shape[1]):
        ok = (np.abs(b[:, i]) > 0) & (g[:, i] > 0)
        if not np.any(ok):
            continue
        lx, ly = np.log10(np.abs(b[ok, i])), np.log10(g[ok, i])
        label = f"{i + 1}: $\\gamma$={fit.gamma[i]:.2f} (R$^2$={fit.r2[i]:.2f})"
        points = ax.plot(lx, ly, "o", ms=3, label=label)[0]
        if np.isfinite(fit.gamma[i]):
            grid = np.linspace(lx.min(), lx.max(), 2)
            ax.plot(grid, np.log10(fit.C[i]) + fit.gamma[i] * grid, color=points.get_color(), lw=1)
    ax.set_xlabel("log$_{10}$ |$\\beta_i$|")
    ax.set_ylabel("log$_{10}$ ||$\\nabla\\beta_i$||")
    ax.set_title("gradient dominance")
    ax.legend(fontsize=7, frameon=False)
    return ax


def conditions_figure(
    bars: InitializationBars,
    independence: Any,
    coefficients: Any,
    gradient_norms: Any,
    fit: GradientDominance,
) -> Any:
    """The three figure-2 diagnostics side by side."""
    import matplotlib.pyplot as plt

    axes = plt.subplots(1, 3, figsize=(14, 3.8), constrained_layout=True)[1]
    initialization_bar_chart(bars, ax=axes[0])
    gradient_independence_heatmap(independence, ax=axes[1])
    gradient_dominance_plot(coefficients, gradient_norms, fit, ax=axes[2])
    return axes
