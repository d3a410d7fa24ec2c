"""Charts as plain text, for terminals and READMEs (no matplotlib needed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validation import as_float_array

__all__ = ["text_chart"]

_MARKS = "1234567890abcdefghijklmnopqrstuvwxyz"


def text_chart(x: Any, series: Any, *, width: int = 64, height: int = 14, labels: Sequence[str] | None = None) -> str:
    """Draw ``series (T, K)`` against ``x (T,)`` as a K-curve text chart; curve k is drawn with the
    k-th character of ``123...`` and listed in a legend with ``labels``."""
    xs = as_float_array("x", x, ndim=1)
    ys = as_float_array("series", series, finite=False)
    ys = ys[:, None] if ys.ndim == 1 else ys
    if ys.ndim != 2 or ys.shape[0] != xs.shape[0]:
        raise ValueError(f"series: expected shape ({xs.shape[0]}, K), got {ys.shape}")
    if ys.shape[1] > len(_MARKS):
        raise ValueError(f"series: at most {len(_MARKS)} curves, got {ys.shape[1]}")
    lo, hi = float(np.nanmin(ys)), float(np.nanmax(ys))
    hi = hi if hi > lo else lo + 1.0
    grid = [[" "] * width for _ in range(height)]
    cols = np.round((xs - xs[0]) / max(xs[-1] - xs[0], 1e-300) * (width - 1)).astype(int)
    for k in range(ys.shape[1]):
        for c, y in zip(cols, ys[:, k], strict=True):
            if np.isfinite(y):
                row = height - 1 - int(round((y - lo) / (hi - lo) * (height - 1)))
                grid[row][c] = _MARKS[k]
    lines = [f"{hi:9.3g} |" + "".join(grid[0])]
    lines += ["          |" + "".join(row) for row in grid[1:-1]]
    lines += [f"{lo:9.3g} |" + "".join(grid[-1]), "          +" + "-" * width]
    lines.append(f"           {xs[0]:<12g}{'':>{max(width - 24, 0)}}{xs[-1]:>12g}")
    names = labels if labels is not None else [f"series {k}" for k in range(ys.shape[1])]
    lines.append("           " + "   ".join(f"{_MARKS[k]}: {names[k]}" for k in range(ys.shape[1])))
    return "\n".join(lines)
