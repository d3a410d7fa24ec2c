"""What every problem offers to ``run``: the contract between problems and the shared driver.

A problem family is a :class:`Problem` subclass whose :meth:`Problem.build_kernel` returns a compiled
step kernel (``csrc/kernel.hpp`` states what a kernel provides; ``bind_kernel`` in
``csrc/bind_kernel.hpp`` binds it). For one run the problem compiles itself into a
:class:`CompiledRun`: the kernel, the labels of what it records, the scale for divergence, and how
parameters become the kernel's flat state and back (a change of basis, a transposed layout). ``run``
only moves arrays between them. :func:`resolve_pairs` is the coefficient request every factor model
shares, and :meth:`Problem.examples` gives the small instances the shared tests run every family on.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from . import _core
from ._memory import check_allocation
from ._validation import as_float_array, as_positive_float, as_positive_int

__all__ = ["Problem", "CompiledRun", "Records", "resolve_pairs"]

#: kernels a problem keeps (one per width and coefficient request; the oldest goes first)
_KERNEL_CACHE_SIZE = 8
#: serialises insertions and evictions (lookups need no lock)
_KERNEL_CACHE_LOCK = threading.Lock()


def _request_key(request: Any) -> Hashable | None:
    """A hashable key equal only for coefficient requests that every problem reads alike, or None.

    Bools and names are their own keys and ``None`` is ``("none",)`` (a request for nothing is kept
    like any other: ``None`` here means "no key"). Index arrays and lists are keyed by the contents of
    ``np.asarray``, which is how problems read them; lists of group names (``DeepLinearNetwork``) by
    their strings. Anything else (numbers, sets, generators, ragged or mixed lists) has no key: it
    is built per call, so its errors are the problem's own.
    """
    if request is None:
        return ("none",)
    if isinstance(request, (bool, str)):
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


def resolve_pairs(request: Any, rank: int, rows: int, cols: int) -> np.ndarray:
    """``(K, 2)`` int64 basis-index pairs ``(i, j)`` of a coefficient request (``Record.coefficients``)
    of a factor model with a rank-``rank`` target and ``rows`` x ``cols`` basis indices.

    ``True``/``"signal"``: the signal block i, j < rank; ``"diagonal"``: every (i, i);
    ``"all"``: every pair; ``None``/``False``: none; a ``(K, 2)`` integer array: those pairs.
    """
    if request is None or request is False:
        return np.zeros((0, 2), dtype=np.int64)
    i: np.ndarray
    j: np.ndarray
    if request is True or (isinstance(request, str) and request == "signal"):
        i, j = np.meshgrid(np.arange(rank), np.arange(rank), indexing="ij")
    elif isinstance(request, str) and request == "diagonal":
        i = j = np.arange(min(rows, cols))
    elif isinstance(request, str) and request == "all":
        i, j = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    elif isinstance(request, str):
        raise ValueError(
            f"coefficients: expected 'signal', 'diagonal', 'all', True, None or (K, 2) pairs, got {request!r}"
        )
    else:
        pairs = np.asarray(request)
        if pairs.dtype.kind not in "iu" or pairs.ndim != 2 or pairs.shape[1] != 2:
            raise ValueError(f"coefficients: index pairs must be an integer array of shape (K, 2), got {pairs.shape}")
        if pairs.size and (pairs.min() < 0 or pairs[:, 0].max() >= rows or pairs[:, 1].max() >= cols):
            raise ValueError(f"coefficients: pair indices must lie in [0, {rows}) x [0, {cols})")
        return np.ascontiguousarray(pairs, dtype=np.int64)
    return np.stack([np.ravel(i), np.ravel(j)], axis=1).astype(np.int64)


class Records(Protocol):
    """What a problem reads of a run's records (a :class:`trajcore.Trajectory` is one): the recorded
    observables ``(..., R, K)`` and their ``(K, 2)`` labels. Problems sit below the running layer, so
    they name this shape rather than the record type."""

    @property
    def coefficients(self) -> np.ndarray: ...

    @property
    def coefficient_pairs(self) -> np.ndarray: ...


@dataclass(frozen=True)
class CompiledRun:
    """A problem compiled for runs of one width, coefficient request and ``coordinates``.

    kernel : the ``_core`` step kernel (``run_chunk``, ``losses``, ``n_observables``, ...).
    pairs : ``(K, 2)`` labels of the K recorded observables (basis-index pairs, or the problem's own
        labels; see its ``coefficient_pairs``).
    labels : the K observables' names (:meth:`Problem.observable_labels`), kept in a trajectory's
        metadata as ``"observables"``.
    zero_loss : loss of the zero model, the scale of divergence detection.
    largest_product : an upper bound on the multiply-adds of any one matrix product the kernel makes,
        or None when unknown (see :meth:`Problem.largest_product`).
    parameter_shape : ``P``, the shape of one trajectory's parameters.
    basis : ``Q (p, p)`` when the kernel steps ``Q^T x`` (``coordinates="eigenbasis"``), else None.
    """

    kernel: Any
    pairs: np.ndarray
    labels: tuple[str, ...]
    zero_loss: float
    largest_product: int | None
    parameter_shape: tuple[int, ...]
    basis: np.ndarray | None = None

    @property
    def transposed(self) -> bool:
        """Whether the kernel stores each ``(p, w)`` parameter as ``(w, p)``."""
        return bool(self.kernel.state_transposed)

    def to_state(self, params: np.ndarray, threads: int) -> np.ndarray:
        """Parameters ``(N, *P)`` as the kernel's state rows ``(N, n)``: a new C-contiguous float64
        array, in the kernel's coordinates and layout."""
        if self.basis is not None:
            params = _change_basis(self.basis, params, True, threads)
        values = params.swapaxes(1, 2) if self.transposed else params
        state = np.array(values, dtype=np.float64, order="C", copy=True)
        return state.reshape(len(params), math.prod(params.shape[1:]))

    def to_params(self, state: np.ndarray, threads: int) -> np.ndarray:
        """The inverse of :meth:`to_state`: state rows ``(N, n)`` as parameters ``(N, *P)``."""
        shape = self.parameter_shape
        params = state.reshape(-1, shape[1], shape[0]).swapaxes(1, 2) if self.transposed else state.reshape(-1, *shape)
        if self.basis is not None:
            params = _change_basis(self.basis, params, False, threads)
        return params


def _change_basis(basis: np.ndarray, values: np.ndarray, into: bool, threads: int) -> np.ndarray:
    """``basis^T x`` (into the basis) or ``basis x`` for each x of ``values (N, p, ...)``, ``basis (p, p)``.

    Per item the same arithmetic whatever N and the thread count (call it with BLAS kept to one
    thread), so a batch split or another thread count changes no bit.
    """
    rows = basis.shape[0]
    stacked = values.reshape(values.shape[0], rows, math.prod(values.shape[1:]) // rows)  # also for N = 0
    return np.asarray(_core.change_basis(basis, stacked, into, threads)).reshape(values.shape)


class Problem:
    """Base class of problems run by :func:`trajcore.run`.

    A subclass describes its parameters and builds the compiled kernel:

    * ``parameter_shape(width)`` -- shape of one trajectory's parameters, e.g. ``(d, width)``;
    * ``build_kernel(width, coefficients)`` -- the ``_core`` kernel for a width and a coefficient
      request (``Record.coefficients``);
    * ``coefficient_pairs(coefficients)`` -- ``(K, 2)`` labels of the K observables recorded for a
      request (basis-index pairs for factor models: :func:`resolve_pairs`);
    * ``loss(params)`` -- NumPy loss, ``(..., *parameter_shape)`` -> ``(...)``;
    * ``zero_loss`` -- loss of the zero model, the scale for divergence detection;
    * ``describe()`` -- JSON-ready metadata (name and sizes);
    * ``examples()`` -- a classmethod: small instances covering the family's variants, which the
      shared determinism and property tests run;

    and optionally ``largest_product(width)`` (lets short runs skip limiting BLAS threads),
    ``model_noise`` (the model-level noise kinds its kernel declares) and, for problems listing
    ``"eigenbasis"`` in ``coordinates``, ``eigenbasis()`` and ``build_eigenbasis_kernel(...)``.

    Every problem draws a start the same way: ``initial_point(width, scale, seed=seed)`` gives
    ``(*parameter_shape(width))`` float64 (``batch=B``: ``(B, *parameter_shape(width))``), by default
    ``scale * N(0, 1)`` exactly as ``trajcore.small_init(shape, scale, seed=seed)``; a family with its
    own conventions (``DeepLinearNetwork``) overrides it and documents them.

    The same concept has the same spelling in every family: the target's spectrum is ``sigma``
    (``.sigma``, ``planted(..., sigma=...)``), seeds are keyword-only (``seed=``), a target's storage
    is ``storage="factored" | "dense" | ...``. For factor models ``eigenbasis()`` is the one accessor
    of the target's basis, an orthogonal ``(p, p)`` matrix on the first parameter axis; ``basis()``
    keeps each family's natural form (documented per class).

    A problem is immutable once constructed: :func:`trajcore.run` compiles it for a width and a
    coefficient request once and reuses it (see :meth:`compile_run`), so changing a problem's
    arrays afterwards would not reach later runs. Build a new problem instead.
    """

    #: number of axes of one trajectory's parameters
    parameter_ndim: int = 2
    #: the ``coordinates`` :func:`trajcore.run` may step this problem in (see :meth:`eigenbasis`)
    coordinates: tuple[str, ...] = ("given",)
    #: kinds of model-level noise (``NoiseSpec.kind``) the kernel implements; a test checks that it
    #: equals the kernel's declared ``model_noise``
    model_noise: frozenset[str] = frozenset()
    name: str = "problem"
    #: every problem class defined (the shared tests run each one's ``examples()``)
    families: ClassVar[list[type[Problem]]] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Problem.families.append(cls)

    @classmethod
    def examples(cls) -> dict[str, Problem]:
        """Small instances (name -> problem) covering this family's variants, for the shared tests."""
        raise NotImplementedError(f"{cls.__name__}.examples(): a problem family lists small instances for the tests")

    def parameter_shape(self, width: int) -> tuple[int, ...]:
        raise NotImplementedError

    def build_kernel(self, width: int, coefficients: Any) -> Any:
        """The ``_core`` step kernel for parameters ``parameter_shape(width)`` recording ``coefficients``."""
        raise NotImplementedError

    def initial_point(self, width: int, scale: float, *, seed: int | None, batch: int | None = None) -> np.ndarray:
        """A start ``scale * N(0, 1)`` of shape ``parameter_shape(width)`` (``batch``: ``(batch, *...)``),
        float64, from ``numpy.random.default_rng(seed)``: the values of
        ``trajcore.small_init((batch, *parameter_shape(width)), scale, seed=seed)``."""
        width = as_positive_int("width", width)
        scale = as_positive_float("scale", scale, allow_zero=True)
        shape = self.parameter_shape(width)
        if batch is not None:
            shape = (as_positive_int("batch", batch), *shape)
        check_allocation(lambda: f"initial_point: {shape} float64", 8 * math.prod(shape))
        return scale * np.random.default_rng(seed).standard_normal(shape)

    # Problems that list "eigenbasis" in ``coordinates`` also provide:
    def eigenbasis(self) -> np.ndarray:
        """Orthogonal ``Q (p, p)`` acting on the first parameter axis (p = ``parameter_shape(w)[0]``):
        the eigenbasis kernel steps ``Q^T x``, and ``x = Q (Q^T x)``."""
        raise NotImplementedError

    def build_eigenbasis_kernel(self, width: int, coefficients: Any) -> Any:
        """The kernel of the same problem and request for parameters ``Q^T x`` (see :meth:`eigenbasis`)."""
        raise NotImplementedError

    def largest_product(self, width: int) -> int | None:
        """An upper bound on the multiply-adds of any one matrix product the kernels of this width
        make (steps, losses, coefficients, changes of basis), or ``None`` when unknown. Below the
        core's BLAS threshold a run never calls BLAS, and skips limiting its threads."""
        return None

    def coefficient_pairs(self, coefficients: Any) -> np.ndarray:
        raise NotImplementedError

    def observable_labels(self, pairs: np.ndarray) -> tuple[str, ...]:
        """Names of the K observables whose ``coefficient_pairs`` are ``pairs (K, 2)``, in order:
        ``beta[i,j]`` for a basis coefficient (i, j) unless the problem names them otherwise."""
        return tuple(f"beta[{i},{j}]" for i, j in pairs.tolist())

    def loss(self, params: Any) -> Any:
        raise NotImplementedError

    @property
    def zero_loss(self) -> float:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}

    # -- compiling for a run ----------------------------------------------------------------------

    def compile_run(self, width: int, coefficients: Any, coordinates: str = "given") -> CompiledRun:
        """The problem compiled for runs of ``width`` recording ``coefficients`` in ``coordinates``
        (one of :attr:`coordinates`); :meth:`compiled` keeps the result."""
        basis = None
        if coordinates == "eigenbasis":
            rows = self.parameter_shape(width)[0]
            check_allocation(lambda: f"coordinates='eigenbasis': the basis ({rows} x {rows})", 8 * rows**2)
            basis = self.eigenbasis()
            kernel = self.build_eigenbasis_kernel(width, coefficients)
        elif coordinates == "given":
            kernel = self.build_kernel(width, coefficients)
        else:
            raise ValueError(f"coordinates: expected one of {self.coordinates} for {self.name}, got {coordinates!r}")
        # a copy: coefficient_pairs may return the caller's own index array, which it may reuse
        pairs = np.array(self.coefficient_pairs(coefficients))
        return CompiledRun(
            kernel=kernel,
            pairs=pairs,
            labels=self.observable_labels(pairs),
            zero_loss=self.zero_loss,
            largest_product=self.largest_product(width),
            parameter_shape=self.parameter_shape(width),
            basis=basis,
        )

    def compiled(self, width: int, coefficients: Any, coordinates: str = "given") -> CompiledRun:
        """:meth:`compile_run`, kept.

        Building copies the target and basis into the core and a dense target's ``zero_loss`` reads
        all of it, which costs more than a short run. Kernels are immutable (their methods are
        const), so runs in any thread share them. The cache is not pickled (kernels cannot be) and
        keeps ``_KERNEL_CACHE_SIZE`` entries. Requests without a key (see ``_request_key``) are
        compiled per call.
        """
        request = _request_key(coefficients)
        if request is None:
            return self.compile_run(width, coefficients, coordinates)
        key = (width, request, coordinates)
        cache: dict[Any, CompiledRun] = self.__dict__.setdefault("_kernels", {})
        entry = cache.get(key)
        if entry is None:
            entry = self.compile_run(width, coefficients, coordinates)
            with _KERNEL_CACHE_LOCK:
                if key not in cache and len(cache) >= _KERNEL_CACHE_SIZE:
                    del cache[next(iter(cache))]
                entry = cache.setdefault(key, entry)
        return entry

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
