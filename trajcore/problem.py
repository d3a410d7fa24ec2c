"""What every problem offers to ``run``: the contract between problems and the shared driver."""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Any

import numpy as np

from ._validation import as_float_array

__all__ = ["Problem"]

#: kernels a problem keeps (one per width and coefficient request; the oldest goes first)
_KERNEL_CACHE_SIZE = 8
#: serialises insertions and evictions (lookups need no lock)
_KERNEL_CACHE_LOCK = threading.Lock()


def _request_key(request: Any) -> Hashable | None:
    """A hashable key equal only for coefficient requests that every problem reads alike, or None.

    ``None``, bools and names are their own keys. Index arrays and lists are keyed by the contents of
    ``np.asarray``, which is how problems read them; lists of group names (``DeepLinearNetwork``) by
    their strings. Anything else (numbers, sets, generators, ragged or mixed lists) has no key: it
    is built per call, so its errors are the problem's own.
    """
    if request is None or isinstance(request, (bool, str)):
        return request
    if not isinstance(request, (np.ndarray, list, tuple)):
        return None
    try:
        array = np.asarray(request)
    except (ValueError, TypeError):
        return None
    if array.dtype.kind == "U":
        # np.asarray turns numbers among names into strings: only lists of names have a key
        if not (isinstance(request, np.ndarray) or all(isinstance(name, str) for name in request)):
            return None
    elif array.dtype.kind not in "biu":
        return None
    return (array.dtype.str, array.shape, array.tobytes())


class Problem:
    """Base class of problems run by :func:`trajcore.run`.

    A subclass describes its parameters and builds the compiled kernel:

    * ``parameter_shape(width)`` -- shape of one trajectory's parameters, e.g. ``(d, width)``;
    * ``_kernel(width, coefficients)`` -- the ``_core`` kernel (it exposes ``run_chunk``);
    * ``coefficient_pairs(coefficients)`` -- ``(K, 2)`` basis-index pairs recorded for a request;
    * ``loss(params)`` -- NumPy loss, ``(..., *parameter_shape)`` -> ``(...)``;
    * ``zero_loss`` -- loss of the zero model, the scale for divergence detection;
    * ``describe()`` -- JSON-ready metadata (name and sizes).

    A problem is immutable once constructed: :func:`trajcore.run` builds the kernel for a width and a
    coefficient request once and reuses it (see :meth:`_compiled`), so changing a problem's
    arrays afterwards would not reach later runs. Build a new problem instead.
    """

    #: number of axes of one trajectory's parameters
    parameter_ndim: int = 2
    #: the ``coordinates`` :func:`trajcore.run` may step this problem in (see :meth:`_coordinate_basis`)
    coordinates: tuple[str, ...] = ("given",)
    #: kinds of model-level noise (``NoiseSpec.kind``) the kernel implements
    model_noise: frozenset[str] = frozenset()
    name: str = "problem"

    def parameter_shape(self, width: int) -> tuple[int, ...]:
        raise NotImplementedError

    def _kernel(self, width: int, coefficients: Any) -> Any:
        raise NotImplementedError

    # Problems that list "eigenbasis" in ``coordinates`` also provide:
    def _eigenbasis(self) -> np.ndarray:
        """Orthogonal ``Q (p, p)`` acting on the first parameter axis (p = ``parameter_shape(w)[0]``):
        the eigenbasis kernel steps ``Q^T x``, and ``x = Q (Q^T x)``."""
        raise NotImplementedError

    def _eigenbasis_kernel(self, width: int, coefficients: Any) -> Any:
        """The kernel of the same problem and request for parameters ``Q^T x`` (see :meth:`_eigenbasis`)."""
        raise NotImplementedError

    def _largest_product(self, width: int) -> int | None:
        """An upper bound on the multiply-adds of any one matrix product the kernels of this width
        make (steps, losses, coefficients, changes of basis), or ``None`` when unknown. Below the
        core's BLAS threshold a run never calls BLAS, and skips limiting its threads."""
        return None

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

    def _compiled(self, width: int, coefficients: Any, coordinates: str = "given") -> tuple[Any, np.ndarray, float]:
        """``(kernel, pairs, zero_loss)`` of ``_kernel`` (or ``_eigenbasis_kernel``), ``coefficient_pairs``
        and ``zero_loss``, kept.

        Building copies the target and basis into the core and a dense target's ``zero_loss`` reads
        all of it, which costs more than a short run. Kernels are immutable (their methods are
        const), so runs in any thread share them. The cache is not pickled (kernels cannot be) and
        keeps ``_KERNEL_CACHE_SIZE`` entries. The pairs are a fresh array each call: a trajectory may
        modify its own.
        """
        build = self._eigenbasis_kernel if coordinates == "eigenbasis" else self._kernel
        request = _request_key(coefficients)
        if request is None:
            return build(width, coefficients), self.coefficient_pairs(coefficients), self.zero_loss
        key = (width, request, coordinates)
        cache: dict[Any, tuple[Any, np.ndarray, float]] = self.__dict__.setdefault("_kernels", {})
        entry = cache.get(key)
        if entry is None:
            kernel = build(width, coefficients)
            # a copy: coefficient_pairs may return the caller's own index array, which it may reuse
            entry = (kernel, np.array(self.coefficient_pairs(coefficients)), self.zero_loss)
            with _KERNEL_CACHE_LOCK:
                if key not in cache and len(cache) >= _KERNEL_CACHE_SIZE:
                    del cache[next(iter(cache))]
                entry = cache.setdefault(key, entry)
        return entry[0], entry[1].copy(), entry[2]

    def __getstate__(self) -> dict[str, Any]:
        """The problem's attributes without its kernel cache (compiled kernels cannot be pickled)."""
        state = self.__dict__.copy()
        state.pop("_kernels", None)
        return state

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
