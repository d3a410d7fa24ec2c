"""Measures on recorded trajectories (PAPERS.md sections 1, 2, 3, 5, 6).

One module per family of measures; everything public is re-exported here, so users write
``tc.analysis.monotonicity_index(...)``.
"""

from .conditions import (
    GradientDominance,
    fit_gradient_dominance,
    gradient_dominance,
    gradient_independence,
    iteration_bound,
    predicted_learning_times,
)
from .series import crossing_times, learning_times, monotone_fraction, monotonicity_index, nonmonotone_mass

__all__ = [
    "GradientDominance",
    "fit_gradient_dominance",
    "gradient_dominance",
    "gradient_independence",
    "iteration_bound",
    "predicted_learning_times",
    "crossing_times",
    "learning_times",
    "monotone_fraction",
    "monotonicity_index",
    "nonmonotone_mass",
]
