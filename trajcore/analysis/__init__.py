"""Measures on recorded trajectories (PAPERS.md sections 1, 2, 3, 5, 6).

One module per family of measures; everything public is re-exported here, so users write
``tc.analysis.monotonicity_index(...)``.
"""

from .conditions import (
    GradientDominance,
    fit_gradient_dominance,
    gradient_dominance,
    gradient_independence,
    growth_phase,
    iteration_bound,
    predicted_learning_times,
)
from .network import (
    InitializationBars,
    coefficient_gradients,
    initialization_bars,
    max_gradient_cosines,
    project_run,
    top_coefficient_monotonicity,
)
from .rank import (
    compare_noise,
    effective_rank,
    global_optimality,
    numerical_rank,
    stable_rank,
    subspace_dimensions,
    subspace_rank_bound,
)
from .series import crossing_times, learning_times, monotone_fraction, monotonicity_index, nonmonotone_mass
from .spacing import monotonicity_at_spacings, subsample, window_means, windowed_monotonicity_index
from .tensor import (
    Plateau,
    detect_plateaus,
    initial_alignments,
    measured_learning_order,
    predicted_escape_times,
    predicted_learning_order,
    predicted_plateau_levels,
)

__all__ = [
    "Plateau",
    "monotonicity_at_spacings",
    "subsample",
    "window_means",
    "windowed_monotonicity_index",
    "GradientDominance",
    "fit_gradient_dominance",
    "growth_phase",
    "gradient_dominance",
    "gradient_independence",
    "iteration_bound",
    "predicted_learning_times",
    "InitializationBars",
    "coefficient_gradients",
    "initialization_bars",
    "max_gradient_cosines",
    "project_run",
    "top_coefficient_monotonicity",
    "compare_noise",
    "effective_rank",
    "global_optimality",
    "numerical_rank",
    "stable_rank",
    "subspace_dimensions",
    "subspace_rank_bound",
    "crossing_times",
    "detect_plateaus",
    "initial_alignments",
    "measured_learning_order",
    "predicted_escape_times",
    "predicted_learning_order",
    "predicted_plateau_levels",
    "learning_times",
    "monotone_fraction",
    "monotonicity_index",
    "nonmonotone_mass",
]
