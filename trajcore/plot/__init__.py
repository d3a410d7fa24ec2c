"""Figures (matplotlib is imported inside the functions, so ``import trajcore`` stays light).

Every function takes an optional ``ax`` and returns the axes it drew on.
"""

from .tensor import error_staircase, escape_scaling, tensor_coefficients
from .trajectories import coefficients, learning_times, scaling

__all__ = ["coefficients", "error_staircase", "escape_scaling", "learning_times", "scaling", "tensor_coefficients"]
