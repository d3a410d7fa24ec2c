"""Figures (matplotlib is imported inside the functions, so ``import trajcore`` stays light).

Every function takes an optional ``ax`` and returns the axes it drew on.
"""

from .trajectories import coefficients, learning_times, scaling

__all__ = ["coefficients", "learning_times", "scaling"]
