"""Figures (matplotlib is imported inside the functions, so ``import trajcore`` stays light).

Every function takes an optional ``ax`` and returns the axes it drew on. :mod:`.style` gives every
figure the same look (colour-blind-safe colours, fixed sizes, outside legends, a text-overlap check).
"""

from . import style
from .network import (
    coefficient_figure,
    conditions_figure,
    gradient_dominance_plot,
    gradient_independence_heatmap,
    initialization_bar_chart,
)
from .rank import loss_curves, noise_rank_summary, product_rank, product_singular_values
from .tensor import error_staircase, escape_scaling, tensor_coefficients
from .text import text_chart
from .trajectories import coefficients, learning_times, scaling

__all__ = [
    "coefficient_figure",
    "coefficients",
    "conditions_figure",
    "error_staircase",
    "escape_scaling",
    "gradient_dominance_plot",
    "gradient_independence_heatmap",
    "initialization_bar_chart",
    "learning_times",
    "loss_curves",
    "noise_rank_summary",
    "product_rank",
    "product_singular_values",
    "scaling",
    "style",
    "tensor_coefficients",
    "text_chart",
]
