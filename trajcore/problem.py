"""What every problem offers to ``run``: the contract between problems and the shared driver."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validation import as_float_array

__all__ = ["Problem"]


class Problem:
    """Base class of problems run by :func:`trajcore.run`.

    A subclass describes its parameters and builds the compiled kernel:

    * ``parameter_shape(width)`` -- shape of one trajectory's parameters, e.g. ``(d, width)``;
    * ``_kernel(width, coefficients)`` -- the ``_core`` kernel (it exposes ``run_chunk``);
    * ``coefficient_pairs(coefficients)`` -- ``(K, 2)`` basis-index pairs recorded for a request;
    * ``loss(params)`` -- NumPy loss, ``(..., *parameter_shape)`` -> ``(...)``;
    * ``zero_loss`` -- loss of the zero model, the scale for divergence detection;
    * ``describe()`` -- JSON-ready metadata (name and sizes).
    """

    #: number of axes of one trajectory's parameters
    parameter_ndim: int = 2
    #: kinds of model-level noise (``NoiseSpec.kind``) the kernel implements
    model_noise: frozenset[str] = frozenset()
    name: str = "problem"

    def parameter_shape(self, width: int) -> tuple[int, ...]:
        raise NotImplementedError

    def _kernel(self, width: int, coefficients: Any) -> Any:
        raise NotImplementedError

    def coefficient_pairs(self, coefficients: Any) -> np.ndarray:
        raise NotImplementedError

    def loss(self, params: Any) -> Any:
        raise NotImplementedError

    @property
    def zero_loss(self) -> float:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}

    # -- shared helpers ---------------------------------------------------------------------------

    def _width_of(self, params: np.ndarray) -> int:
        return int(params.shape[-1])

    def validate_params(self, name: str, params: Any) -> tuple[np.ndarray, bool]:
        """Parameters as float64 ``(B, *parameter_shape)`` plus whether a batch was given."""
        array = as_float_array(name, params, ndim=(self.parameter_ndim, self.parameter_ndim + 1))
        batched = array.ndim == self.parameter_ndim + 1
        if array.shape[-1] == 0:
            raise ValueError(f"{name}: the factor width (last axis) must be at least 1, got shape {array.shape}")
        expected = self.parameter_shape(self._width_of(array))
        if array.shape[-self.parameter_ndim :] != expected:
            raise ValueError(
                f"{name}: expected shape {expected} or (B, {', '.join(map(str, expected))}), got {array.shape}"
            )
        return (array if batched else array[None]), batched
