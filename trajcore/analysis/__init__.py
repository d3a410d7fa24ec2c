"""Measures on recorded trajectories (PAPERS.md sections 1, 2, 3, 5, 6).

One module per family of measures; everything public is re-exported here, so users write
``tc.analysis.monotonicity_index(...)``.
"""

from .network import (
    DominanceFit,
    InitializationBars,
    coefficient_gradients,
    gradient_dominance,
    gradient_independence,
    initialization_bars,
    project_run,
    top_coefficient_monotonicity,
)
from .series import crossing_times, learning_times, monotone_fraction, monotonicity_index, nonmonotone_mass

__all__ = [
    "DominanceFit",
    "InitializationBars",
    "coefficient_gradients",
    "gradient_dominance",
    "gradient_independence",
    "initialization_bars",
    "project_run",
    "top_coefficient_monotonicity",
    "crossing_times",
    "learning_times",
    "monotone_fraction",
    "monotonicity_index",
    "nonmonotone_mass",
]
