"""One look for every trajcore figure: colours, sizes, legends, axis scales, and a layout check.

Use it in three calls::

    from trajcore.plot import style

    fig, ax = style.new_figure("line")                  # fixed size per kind, constrained layout
    for (label, y), look in zip(curves.items(), style.cycle(len(curves))):
        ax.plot(steps, y, label=label, **look)          # colour (and dashes beyond the palette)
    style.label_axes(ax, x="iteration", y="loss", title="...")
    style.legend_outside(ax)
    style.finish(fig, "out.png")                         # bbox_inches="tight", closes nothing global

Colours are the colour-blind-safe sets of Okabe & Ito (2008) and Paul Tol's "muted" scheme, merged
into 14 mutually distinct colours: :func:`palette` never repeats one; :func:`cycle` adds line styles
and markers once a figure has more curves than colours, so no two curves look alike.

:func:`text_overlaps` lists pairs of text boxes (titles, labels, tick labels, legend entries,
annotations) that overlap once the figure is drawn; tests call it on every figure an experiment
writes. Figures are created without pyplot (``matplotlib.figure.Figure``), so experiments can draw
in threads and leave no windows behind; matplotlib is imported only when a function is called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "COLORS",
    "SIZES",
    "RC",
    "palette",
    "cycle",
    "new_figure",
    "new_axes",
    "finish",
    "label_axes",
    "legend_outside",
    "plain_numbers",
    "early_fraction",
    "use_log_x_if_early",
    "log_steps",
    "use_log_y_if_spanning",
    "is_constant",
    "beta",
    "text_overlaps",
]

#: Okabe-Ito (blue, orange, bluish green, vermillion, reddish purple, sky blue, black; their yellow is
#: too faint on white) followed by Tol's muted set (indigo, wine, olive, teal, rose, sand, grey).
COLORS: tuple[str, ...] = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#000000",
    "#332288",
    "#882255",
    "#999933",
    "#44AA99",
    "#CC6677",
    "#DDCC77",
    "#888888",
)

#: Figure sizes in inches, by kind. Every figure of a kind has the same size, so a report's
#: figures line up and a test can check them.
SIZES: dict[str, tuple[float, float]] = {
    "line": (7.2, 4.2),  # curves against iterations, legend on the right
    "square": (5.6, 4.8),  # measured against predicted
    "wide": (11.0, 4.2),  # two panels side by side
    "triple": (14.0, 4.2),  # three panels side by side
    "tall": (7.2, 6.4),  # two panels stacked
}

_LINESTYLES = ("-", "--", ":", "-.")
_MARKERS = ("", "o", "s", "^")

#: Matplotlib settings applied to every figure made here (rcParams names).
RC: dict[Any, Any] = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.formatter.useoffset": False,  # no "+1e-12" offsets that make rounding noise look like a trend
    "axes.formatter.limits": (-5, 6),  # plain numbers up to 999999 (no "1e5" multiplier for steps)
    "axes.grid": True,
    "grid.alpha": 0.25,
    "lines.linewidth": 1.6,
    "savefig.dpi": 110,
}


def palette(n: int) -> list[str]:
    """``n`` distinct colour-blind-safe colours (hex strings), in a fixed order.

    Raises ``ValueError`` for ``n`` beyond the 14 distinct colours; use :func:`cycle` then.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n: expected a non-negative integer, got {n!r}")
    if n > len(COLORS):
        raise ValueError(f"n: at most {len(COLORS)} distinct colours, got {n}; use style.cycle(n)")
    return list(COLORS[:n])


def cycle(n: int) -> list[dict[str, Any]]:
    """``n`` distinct looks ``{"color", "linestyle", "marker", "markevery"}`` for ``ax.plot(**look)``.

    The first 14 differ in colour (solid lines); beyond that the colours repeat with another line
    style and marker, so every (colour, style) pair is used at most once (up to 56 curves).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n: expected a non-negative integer, got {n!r}")
    limit = len(COLORS) * len(_LINESTYLES)
    if n > limit:
        raise ValueError(f"n: at most {limit} distinguishable curves in one figure, got {n}")
    looks = []
    for i in range(n):
        group = i // len(COLORS)
        look: dict[str, Any] = {"color": COLORS[i % len(COLORS)], "linestyle": _LINESTYLES[group]}
        if _MARKERS[group]:
            look.update(marker=_MARKERS[group], markevery=0.1, markersize=4)
        looks.append(look)
    return looks


def new_figure(
    kind: str = "line", nrows: int = 1, ncols: int = 1, *, sharex: bool = False, sharey: bool = False
) -> tuple[Any, Any]:
    """A figure of the fixed size ``SIZES[kind]`` and its axes (one ``Axes``, or an array for a grid).

    The figure uses constrained layout, so titles, labels and outside legends get room; it is not
    registered with pyplot (save it with :func:`finish`).
    """
    if kind not in SIZES:
        raise ValueError(f"kind: expected one of {', '.join(SIZES)}, got {kind!r}")
    import matplotlib as mpl
    from matplotlib.figure import Figure

    with mpl.rc_context(RC):
        fig = Figure(figsize=SIZES[kind], layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=True, sharex=sharex, sharey=sharey)
    return fig, axes


def new_axes(ax: Any = None, kind: str = "line") -> Any:
    """``ax`` itself, or the axes of a new pyplot figure of ``kind`` (pyplot, so notebooks show it)."""
    if ax is not None:
        return ax
    if kind not in SIZES:
        raise ValueError(f"kind: expected one of {', '.join(SIZES)}, got {kind!r}")
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    with mpl.rc_context(RC):
        return plt.subplots(figsize=SIZES[kind], layout="constrained")[1]


def finish(fig: Any, path: str | Path, *, dpi: int = 110) -> Path:
    """Save ``fig`` as ``path`` (PNG by suffix) with ``bbox_inches="tight"``; returns the path."""
    path = Path(path)
    for ax in fig.axes:
        plain_numbers(ax)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", pad_inches=0.08)
    return path


def label_axes(ax: Any, *, x: str, y: str, title: str | None = None) -> Any:
    """Axis labels (say the unit: "iteration", "coefficient value", ...) and an optional title."""
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if title is not None:
        ax.set_title(title)
    return ax


def legend_outside(ax: Any, *, title: str | None = None, ncol: int = 1) -> Any:
    """A legend to the right of the axes, off the data; returns it (``None`` when nothing is labelled)."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    return ax.legend(
        handles,
        labels,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
        frameon=False,
        fontsize=9,
        title=title,
        title_fontsize=9,
        ncol=ncol,
    )


def plain_numbers(ax: Any) -> Any:
    """Switch off offset notation ("1e-12 + 3.0") on both linear axes of ``ax``."""
    from matplotlib.ticker import ScalarFormatter

    for axis in (ax.xaxis, ax.yaxis):
        formatter = axis.get_major_formatter()
        if isinstance(formatter, ScalarFormatter):
            formatter.set_useOffset(False)
    return ax


def early_fraction(steps: Any, series: Any, *, rtol: float = 0.01) -> float:
    """Fraction of the run after which every curve stays within ``rtol`` of its range of its final value.

    steps : (T,) ; series : (T,) or (T, K). 0 for a constant series; 1 if a curve is still moving at the end.
    """
    t = np.asarray(steps, dtype=float)
    y = np.asarray(series, dtype=float)
    y = y[:, None] if y.ndim == 1 else y.reshape(y.shape[0], -1)
    if t.ndim != 1 or y.shape[0] != t.shape[0] or t.size < 2:
        raise ValueError(f"series: expected ({t.size}, K) values against steps ({t.size},), got {y.shape}")
    span = t[-1] - t[0]
    if span <= 0:
        return 1.0
    settled = t[0]
    for k in range(y.shape[1]):
        curve = y[:, k]
        ok = np.isfinite(curve)
        if not ok.any():
            continue
        values = curve[ok]
        scale = float(np.max(values) - np.min(values))
        if scale == 0:
            continue
        away = np.flatnonzero(~ok | (np.abs(curve - values[-1]) > rtol * scale))
        if away.size:
            settled = max(settled, t[min(away[-1] + 1, t.size - 1)])
    return float((settled - t[0]) / span)


def use_log_x_if_early(ax: Any, steps: Any, series: Any, *, fraction: float = 0.05) -> bool:
    """Log x (symlog, linear up to the first recorded step) when everything happens in the first
    ``fraction`` of the run; returns whether it did."""
    t = np.asarray(steps, dtype=float)
    if t.size < 3 or early_fraction(t, series) > fraction:
        return False
    log_steps(ax, t)
    return True


def log_steps(ax: Any, steps: Any) -> Any:
    """Iterations on a log axis that keeps step 0: symlog, linear over one decade-wide stretch up to
    the power of ten at or below the first recorded step (so the ticks 0 and 10^k stay apart),
    limited to the recorded range (no negative margin)."""
    t = np.asarray(steps, dtype=float)
    positive = t[t > 0]
    threshold = 10.0 ** np.floor(np.log10(positive.min())) if positive.size else 1.0
    ax.set_xscale("symlog", linthresh=float(threshold), linscale=1.0)
    ax.set_xlim(float(t.min()), float(t.max()))
    return ax


def use_log_y_if_spanning(ax: Any, values: Any, *, decades: float = 2.0) -> bool:
    """Log y when the positive finite ``values`` span at least ``decades`` orders of magnitude and
    none is negative; returns whether it did."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0 or np.any(v < 0):
        return False
    positive = v[v > 0]
    if positive.size == 0 or np.log10(positive.max() / positive.min()) < decades:
        return False
    ax.set_yscale("log")
    return True


def is_constant(values: Any, *, rtol: float = 1e-9) -> bool:
    """Whether the finite ``values`` are all equal up to ``rtol`` (such a metric is not worth a plot)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return True
    return bool(np.max(v) - np.min(v) <= rtol * max(1.0, float(np.max(np.abs(v)))))


def beta(*indices: Any) -> str:
    """The papers' coefficient name as mathtext: ``beta(1)`` -> ``$\\beta_{1}$``, ``beta(1, 2)`` ->
    ``$\\beta_{12}$`` (indices as given: pass 1-based ones)."""
    return "$\\beta_{" + "".join(str(i) for i in indices) + "}$"


def _drawn_texts(fig: Any) -> list[Any]:
    """Visible, non-empty texts of ``fig`` that a draw puts on the canvas: tick labels only of the
    ticks inside the view (matplotlib keeps spare tick objects whose labels are never drawn)."""
    from matplotlib.axis import Axis
    from matplotlib.text import Text

    spare = set()
    for axis in fig.findobj(Axis):
        drawn = {id(t) for t in axis._update_ticks()}  # the ticks a draw renders
        for tick in axis.get_major_ticks() + axis.get_minor_ticks():
            if id(tick) not in drawn:
                spare.update({id(tick.label1), id(tick.label2)})
    return [
        t
        for t in fig.findobj(Text)
        if id(t) not in spare
        and t.get_visible()
        and t.get_text().strip()
        and (t.axes is None or t.axes.get_visible())  # texts of hidden axes are not drawn
    ]


def text_overlaps(fig: Any, *, pad: float = 0.5) -> list[tuple[str, str]]:
    """Pairs ``(text_a, text_b)`` of drawn texts of ``fig`` (titles, axis and tick labels, legend
    entries, annotations) whose boxes overlap; empty when the layout is clean.

    ``pad`` (pixels) shrinks each box before comparing, so boxes that merely touch do not count.
    """
    if not hasattr(fig.canvas, "get_renderer"):  # a bare Figure: give it an Agg canvas to draw on
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = []
    for text in _drawn_texts(fig):
        box = text.get_window_extent(renderer)
        if box.width <= 2 * pad or box.height <= 2 * pad:
            continue
        boxes.append((text.get_text(), box.x0 + pad, box.y0 + pad, box.x1 - pad, box.y1 - pad))
    overlaps = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            if a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]:
                overlaps.append((a[0], b[0]))
    return overlaps
