"""Figures of the network experiments: the paper's coefficient figure and its three figure-2 diagnostics.

Every function takes an optional ``ax`` and returns the axes it drew on (``conditions_figure``
returns its figure); matplotlib is imported on call, and the look is :mod:`trajcore.plot.style`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .._validation import as_float_array
from . import style

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


def coefficient_figure(
    steps: Any,
    coefficients: Any,
    *,
    top: int = 5,
    ax: Any = None,
    title: str = "top basis coefficients",
    spread: Any | None = None,
    spacing: str | None = None,
) -> Any:
    """The paper's coefficient figure: ``beta_i(t)`` of the ``top`` coefficients largest at the end.

    steps : (T,) ; coefficients : (T, k) ; spread : (T, k), optional (e.g. a standard deviation
    over seeds, drawn as a band). ``spacing`` (e.g. "a record every 20 steps") goes under the x
    axis: a coefficient curve's wiggles depend on it.
    """
    t = as_float_array("steps", steps, ndim=1)
    c = as_float_array("coefficients", coefficients, shape=(t.size, None))
    ax = style.new_axes(ax)
    order = np.argsort(-np.abs(c[-1]), kind="stable")[: min(top, c.shape[1])]
    for rank, (i, look) in enumerate(zip(order, style.cycle(order.size), strict=True)):
        ax.plot(t, c[:, i], label=style.beta(rank + 1), **look)
        if spread is not None:
            s = as_float_array("spread", spread, shape=c.shape)
            ax.fill_between(t, c[:, i] - s[:, i], c[:, i] + s[:, i], color=look["color"], alpha=0.2, lw=0)
    ax.axhline(0.0, color="0.7", lw=0.8, zorder=0)
    style.label_axes(ax, x="training step" + (f" ({spacing})" if spacing else ""), y="coefficient value", title=title)
    style.legend_outside(ax)
    return ax


def initialization_bar_chart(bars: InitializationBars, *, ax: Any = None) -> Any:
    """Figure 2a: ``|beta_i(0)|`` of the top final coefficients and the residual bar, beside
    ``|beta_i(T)|``."""
    ax = style.new_axes(ax)
    m = bars.indices.size
    x = np.append(np.arange(m), m + 0.6)  # the residual bar stands apart
    first, second = style.palette(2)
    ax.bar(x[:m] - 0.2, bars.initial, width=0.4, color=first, label="$|\\beta_i(0)|$ at initialization")
    ax.bar(x[:m] + 0.2, bars.final, width=0.4, color=second, label="$|\\beta_i(T)|$ after training")
    ax.bar([x[m]], [bars.residual], width=0.4, color="0.45", label="rest of $f_0$ (residual)")
    ax.set_xticks(x, [str(i + 1) for i in range(m)] + ["rest"], fontsize=8 if m > 10 else None)
    ax.set_yscale("log")
    style.label_axes(
        ax, x="basis function i (by final |coefficient|)", y="|coefficient|", title="(a) small initialization"
    )
    style.legend_outside(ax)
    return ax


def gradient_independence_heatmap(matrix: Any, *, ax: Any = None, until: str | None = None) -> Any:
    """Figure 2b: heat map of ``max_t |cos(grad beta_i, grad beta_j)|`` (0 = independent)."""
    m = as_float_array("matrix", matrix, ndim=2)
    ax = style.new_axes(ax, "square")
    image = ax.imshow(m, vmin=0.0, vmax=1.0, cmap="viridis")
    ax.figure.colorbar(image, ax=ax, shrink=0.85, label="max$_t$ |cos|")
    ticks = np.arange(m.shape[0])
    step = max(1, m.shape[0] // 10)
    ax.set_xticks(ticks[::step], [style.beta(i + 1) for i in ticks[::step]])
    ax.set_yticks(ticks[::step], [style.beta(i + 1) for i in ticks[::step]])
    title = "(b) gradient independence"
    style.label_axes(ax, x="coefficient j", y="coefficient i", title=title + (f"\n{until}" if until else ""))
    return ax


def gradient_dominance_plot(coefficients: Any, gradient_norms: Any, fit: GradientDominance, *, ax: Any = None) -> Any:
    """Figure 2c: ``log |beta_i|`` against ``log ||grad beta_i||``, the fitted slopes gamma drawn
    over the range each fit used (filled points; hollow ones were left out of the fit)."""
    b = as_float_array("coefficients", coefficients, ndim=2)
    g = as_float_array("gradient_norms", gradient_norms, shape=b.shape)
    ax = style.new_axes(ax)
    used = np.ones(b.shape, bool) if fit.used is None else fit.used
    span = fit.fit_range()
    shown = [i for i in range(b.shape[1]) if np.any((np.abs(b[:, i]) > 0) & (g[:, i] > 0))]
    for i, look in zip(shown, style.cycle(len(shown)), strict=True):
        ok = (np.abs(b[:, i]) > 0) & (g[:, i] > 0)
        lx, ly = np.log10(np.abs(b[:, i])), np.log10(np.where(g[:, i] > 0, g[:, i], np.nan))
        colour = look["color"]
        ax.plot(lx[ok & used[:, i]], ly[ok & used[:, i]], "o", ms=3.5, color=colour, label=None)
        ax.plot(lx[ok & ~used[:, i]], ly[ok & ~used[:, i]], "o", ms=3.5, mfc="none", color=colour)
        label = f"{style.beta(i + 1)}: $\\gamma$={fit.gamma[i]:.2f}, R$^2$={fit.r2[i]:.2f}"
        if np.isfinite(fit.gamma[i]):
            grid = np.log10(span[i])
            ax.plot(grid, np.log10(fit.C[i]) + fit.gamma[i] * grid, color=colour, lw=2.2, label=label)
        else:
            ax.plot([], [], color=colour, label=f"{style.beta(i + 1)}: too few points to fit")
    style.label_axes(
        ax,
        x="log$_{10}$ |$\\beta_i$|",
        y="log$_{10}$ ||$\\nabla\\beta_i$||",
        title="(c) gradient dominance (fit on filled points)",
    )
    style.legend_outside(ax)
    return ax


def conditions_figure(
    bars: InitializationBars,
    independence: Any,
    coefficients: Any,
    gradient_norms: Any,
    fit: GradientDominance,
    *,
    until: str | None = None,
) -> Any:
    """The three figure-2 diagnostics side by side; returns the figure."""
    fig, axes = style.new_figure("triple", 1, 3)
    initialization_bar_chart(bars, ax=axes[0])
    gradient_independence_heatmap(independence, ax=axes[1], until=until)
    gradient_dominance_plot(coefficients, gradient_norms, fit, ax=axes[2])
    return fig
