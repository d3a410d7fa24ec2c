"""PyTorch adapter: record any model's training and measure the paper's picture on it (``trajcore[torch]``).

    pip install 'trajcore[torch]'

* :class:`Recorder` -- probe outputs (and, on request, features and the whole state) at checkpoints
  of the user's own training loop, as a :class:`~trajcore.network.NetworkRun`.
* :func:`coefficient_gradients`, :func:`gradient_statistics` -- ``grad_theta beta_i`` at recorded
  checkpoints, each checkpoint's parameters and buffers restored exactly (conditions 2 and 3).
* :class:`LARS`, :class:`LAMB` (``trajcore.torch.optim``) -- the layer-wise adaptive optimizers of
  the paper's experiments.
* ``trajcore.torch.models`` -- the small CNN, ResNet, ViT and MLP of the built-in experiments.

``torch`` is imported lazily: this package imports without it, and its functions raise an
``ImportError`` that says how to install it.
"""

from __future__ import annotations

from typing import Any

from ._require import INSTALL_HINT, require_torch
from ._state import StateLayout
from .gradients import GRADIENT_METHODS, GradientStatistics, coefficient_gradients, gradient_statistics
from .recorder import FEATURE_POLICIES, Recorder, probe_batches

__all__ = [
    "FEATURE_POLICIES",
    "GRADIENT_METHODS",
    "INSTALL_HINT",
    "LAMB",
    "LARS",
    "GradientStatistics",
    "Recorder",
    "StateLayout",
    "coefficient_gradients",
    "gradient_statistics",
    "probe_batches",
    "require_torch",
]


def __getattr__(name: str) -> Any:
    if name in ("LARS", "LAMB"):  # subclasses of torch.optim.Optimizer: torch is imported here
        from . import optim

        return getattr(optim, name)
    raise AttributeError(f"module 'trajcore.torch' has no attribute {name!r}")
