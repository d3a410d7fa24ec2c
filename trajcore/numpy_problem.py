"""Your own problem, in NumPy: the public extension point of :func:`trajcore.run`.

Subclass :class:`NumpyProblem` and define the shape of one trajectory's parameters and the loss with
its gradient (and, optionally, observables to record); ``run`` then drives it through the same
compiled driver as the built-in problems: the same records, the same counter-based noise streams
(a NumPy problem with a built-in problem's mathematics gets the same noise draws), seeds, momentum,
memory guard, divergence handling and Ctrl-C. It is slower -- one Python call per trajectory and
step, run one at a time under the GIL -- but it has the same semantics, and its results are the same
bits for any thread count and any split of a batch.

:class:`NumpySymmetricFactorization` is a complete example (and the one README shows): the symmetric
matrix factorization of :class:`trajcore.SymmetricMatrixFactorization`, written in NumPy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _core
from ._validation import as_float_array, as_positive_int
from .problem import CompiledRun, Problem, resolve_pairs

__all__ = ["NumpyProblem", "NumpySymmetricFactorization"]

#: the parts a NumpyProblem may be given as functions instead of methods
_FUNCTIONS = ("parameter_shape", "loss_and_grad", "observables", "coefficient_pairs")


class NumpyProblem(Problem):
    """A problem defined in NumPy, run by :func:`trajcore.run` like the built-in problems.

    Subclass it and define:

    * ``parameter_shape(width) -> tuple[int, ...]`` -- the shape ``P`` of one trajectory's
      parameters for a width (the last axis of ``init``), e.g. ``(d, width)``;
    * ``loss_and_grad(x) -> (loss, grad)`` -- at one trajectory's parameters ``x : P float64``, the
      loss (a real number) and its gradient ``grad : P`` (real values, the shape of x);

    and optionally:

    * ``observables(x, coefficients) -> (K,)`` with ``coefficient_pairs(coefficients) -> (K, 2)``
      int labels: what a record step keeps besides the loss, for a request ``Record.coefficients``
      whose meaning the problem documents. Without them a problem records no observables, and only
      the requests ``True`` (the default), ``None`` and ``False`` are accepted;
    * ``zero_loss`` -- the loss scale for divergence detection (a run diverges where the loss
      exceeds ``divergence_factor * max(initial loss, zero_loss)`` or is not finite); by default the
      loss at zero parameters (width 1), computed once;
    * ``loss(params)`` -- the loss of ``(..., *P)`` parameters as ``(...)`` (a float for one point);
      by default ``loss_and_grad``'s loss, point by point;
    * ``name`` (default: the class name) and ``describe()`` -- the metadata a trajectory keeps.

    Or pass the same functions without subclassing (as ``threading.Thread`` takes ``target=``)::

        NumpyProblem(parameter_shape=lambda w: (3, w), loss_and_grad=f, zero_loss=1.0)

    ``x`` is a new array at every call: a callback may keep or change it. The callbacks run under the
    GIL, one at a time (``n_threads`` then changes nothing but the order of the calls), with NumPy's
    floating-point warnings off: a non-finite loss or gradient is divergence, as for the built-in
    problems. An exception raised in a callback, ``KeyboardInterrupt`` included, leaves ``run`` as it
    is. Parameter-level noise (:class:`~trajcore.GradientNoise`, :class:`~trajcore.Langevin`,
    :class:`~trajcore.PerturbedGD`) works as for every problem; model-level noise (dropout, label
    noise, ...) and ``coordinates="eigenbasis"`` need a compiled kernel and are refused by ``run``.

    Like every problem, a NumPy problem is immutable once constructed and pickles with its
    attributes (functions given to the constructor must pickle too, for sweeps in processes).
    """

    name = "numpy_problem"

    def __init__(
        self,
        parameter_shape: Callable[[int], tuple[int, ...]] | None = None,
        loss_and_grad: Callable[[np.ndarray], tuple[Any, Any]] | None = None,
        *,
        observables: Callable[[np.ndarray, Any], Any] | None = None,
        coefficient_pairs: Callable[[Any], Any] | None = None,
        zero_loss: float | None = None,
        name: str | None = None,
    ) -> None:
        given = dict(
            parameter_shape=parameter_shape,
            loss_and_grad=loss_and_grad,
            observables=observables,
            coefficient_pairs=coefficient_pairs,
        )
        for key, function in given.items():
            if function is not None and not callable(function):
                raise TypeError(f"{key}: expected a function, got {type(function).__name__}")
        if (observables is None) != (coefficient_pairs is None):
            raise ValueError("observables, coefficient_pairs: give both (the values and their labels) or neither")
        self._functions = {key: function for key, function in given.items() if function is not None}
        if zero_loss is not None:
            self._zero_loss = float(zero_loss)
        if name is not None:
            self.name = str(name)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__

    @classmethod
    def examples(cls) -> dict[str, Problem]:
        """The NumPy problems of the shared tests: the reference subclass and the same problem given
        as functions (a user's subclass lists its own examples, if any)."""
        if cls not in (NumpyProblem, NumpySymmetricFactorization):
            return super().examples()
        subclass = NumpySymmetricFactorization.planted(d=6, rank=2, sigma=[2.0, 1.0], seed=0)
        functions = NumpyProblem(
            parameter_shape=subclass.parameter_shape,
            loss_and_grad=subclass.loss_and_grad,
            observables=subclass.observables,
            coefficient_pairs=subclass.coefficient_pairs,
            zero_loss=subclass.zero_loss,
            name="numpy_smf_functions",
        )
        return {"numpy_smf": subclass, "numpy_smf_functions": functions}

    # -- what a problem defines (here: the functions given to the constructor) ----------------------

    def _function(self, key: str) -> Callable[..., Any]:
        function = self.__dict__.get("_functions", {}).get(key)
        if function is None:
            raise NotImplementedError(
                f"{type(self).__name__}.{key}: define it in your NumpyProblem subclass (or pass {key}= to NumpyProblem)"
            )
        return function

    def parameter_shape(self, width: int) -> tuple[int, ...]:
        return tuple(self._function("parameter_shape")(width))

    def loss_and_grad(self, x: np.ndarray) -> tuple[Any, Any]:
        """``(loss, grad)`` at one trajectory's parameters ``x : P float64``; ``grad : P``."""
        return self._function("loss_and_grad")(x)

    def observables(self, x: np.ndarray, coefficients: Any) -> Any:
        """The ``(K,)`` values a record step keeps at ``x : P`` for the request ``coefficients``."""
        if "observables" not in self.__dict__.get("_functions", {}):
            return np.zeros(0)
        return self._function("observables")(x, coefficients)

    def coefficient_pairs(self, coefficients: Any) -> np.ndarray:
        """``(K, 2)`` int labels of the observables recorded for ``coefficients`` (none by default:
        ``True``, ``None`` and ``False`` accepted)."""
        if "coefficient_pairs" in self.__dict__.get("_functions", {}):
            return np.asarray(self._function("coefficient_pairs")(coefficients))
        if coefficients is None or isinstance(coefficients, (bool, np.bool_)):
            return np.zeros((0, 2), dtype=np.int64)
        raise ValueError(
            f"coefficients: {self.name} records no observables (define observables and coefficient_pairs to "
            f"record some); expected True, None or False, got {coefficients!r}"
        )

    @property
    def zero_loss(self) -> float:
        """The scale of divergence detection: the loss at zero parameters of width 1 (computed once,
        0 if not finite), unless a subclass defines it or the constructor is given it."""
        value = self.__dict__.get("_zero_loss")
        if value is None:
            value = float(self.loss(np.zeros(self.parameter_shape(1))))
            value = value if math.isfinite(value) else 0.0  # then the initial loss alone sets the scale
            self._zero_loss = value
        return float(value)

    def loss(self, params: Any) -> Any:
        """The loss of ``params : (..., *P)`` as ``(...)`` (a float for one point), from ``loss_and_grad``."""
        ndim = self.parameter_ndim
        x = as_float_array("params", params, finite=False)
        shape = self.parameter_shape(x.shape[-1]) if x.ndim >= ndim else None
        if shape is None or x.shape[x.ndim - ndim :] != shape:
            raise ValueError(f"params: expected shape (..., {', '.join(map(str, shape or ()))}), got {x.shape}")
        lead = x.shape[: x.ndim - ndim]
        where = f"{type(self).__name__}.loss_and_grad"
        with np.errstate(all="ignore"):
            values = [_checked(where, self.loss_and_grad(point), shape)[0] for point in x.reshape(-1, *shape)]
        return values[0] if not lead else np.asarray(values).reshape(lead)

    @property
    def parameter_ndim(self) -> int:  # type: ignore[override]
        """Axes of one trajectory's parameters: ``len(parameter_shape(1))``."""
        return len(self.parameter_shape(1))

    # -- compiling for a run ------------------------------------------------------------------------

    def build_kernel(self, width: int, coefficients: Any) -> Any:
        """A ``_core.PythonKernel`` calling this problem's ``loss_and_grad``, ``loss`` and ``observables``
        on one trajectory's parameters at a time (the flat state reshaped to ``parameter_shape``)."""
        owner = type(self).__name__
        shape = self.parameter_shape(as_positive_int("width", width))
        if type(self).observables is not NumpyProblem.observables and (
            type(self).coefficient_pairs is NumpyProblem.coefficient_pairs
        ):
            raise TypeError(f"{owner}: defines observables without coefficient_pairs, their (K, 2) labels")
        pairs = np.asarray(self.coefficient_pairs(coefficients))
        if pairs.ndim != 2 or pairs.shape[1] != 2 or (pairs.size and pairs.dtype.kind not in "iu"):
            raise ValueError(f"{owner}.coefficient_pairs: expected a (K, 2) int array, got shape {pairs.shape}")
        count = pairs.shape[0]
        gradient, loss, observables = self.loss_and_grad, self.loss, self.observables

        def loss_and_grad(x: np.ndarray) -> Any:
            with np.errstate(all="ignore"):
                result = gradient(x.reshape(shape))
            _checked(f"{owner}.loss_and_grad", result, shape)
            return result  # (the kernel converts it, and checks it again)

        def observe(x: np.ndarray) -> Any:
            point = x.reshape(shape)
            with np.errstate(all="ignore"):
                value = loss(point)
                values = observables(point, coefficients) if count else np.zeros(0)
            _check_values(f"{owner}.observables", "the observables", values, (count,), "one per coefficient pair")
            return value, values

        return _core.PythonKernel(loss_and_grad, observe, math.prod(shape), count, owner)

    def compiled(self, width: int, coefficients: Any, coordinates: str = "given") -> CompiledRun:
        """:meth:`compile_run`, not kept: the kernel holds this problem's methods, so a kernel kept on
        the problem would be a reference cycle through the compiled kernel, which the garbage
        collector cannot see. Building one costs microseconds."""
        return self.compile_run(width, coefficients, coordinates)


def _checked(where: str, result: Any, shape: tuple[int, ...]) -> tuple[float, Any]:
    """``(loss, grad)`` of a ``loss_and_grad`` result, or a clear error unless the loss is one real
    number and ``grad`` real numbers of ``shape``."""
    if not isinstance(result, tuple) or len(result) != 2:
        length = f" of length {len(result)}" if isinstance(result, tuple) else ""
        raise TypeError(f"{where}: expected a tuple (loss, grad), got {type(result).__name__}{length}")
    loss = np.asarray(result[0])
    if loss.dtype.kind not in "biuf" or loss.ndim:
        got = f"an array of shape {loss.shape}" if loss.ndim else type(result[0]).__name__
        raise TypeError(f"{where}: expected the loss as one real number, got {got}")
    _check_values(where, "grad", result[1], shape, "the shape of x")
    return float(loss), result[1]


def _check_values(where: str, what: str, values: Any, shape: tuple[int, ...], which: str) -> None:
    """A clear error unless ``values`` are real numbers of ``shape``."""
    array = values if isinstance(values, np.ndarray) else np.asarray(values)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{where}: expected {what} as real numbers, got {type(values).__name__} of dtype {array.dtype}")
    if array.shape != shape:
        raise ValueError(f"{where}: expected {what} of shape {shape} ({which}), got {array.shape}")


class NumpySymmetricFactorization(NumpyProblem):
    """``f(U) = 1/4 ||U U^T - M||_F^2`` for ``U (d, r')``, ``M = V diag(sigma) V^T``, in NumPy.

    The mathematics of :class:`trajcore.SymmetricMatrixFactorization` with a factored target (the
    same trajectories to rounding, with the same noise draws); the reference NumPy problem of the
    README and the shared tests. ``grad f(U) = (U U^T - M) U``, O(d^2 r') per step. Observables:
    ``beta_ij = v_i^T U U^T v_j`` for pairs of the signal basis ``V (d, r)``: ``Record.coefficients``
    ``True``/``"signal"``/``"all"`` every pair i, j < r, ``"diagonal"`` every (i, i), or ``(K, 2)``
    pairs; ``None``/``False`` none.
    """

    name = "numpy_symmetric_factorization"

    def __init__(self, V: Any, sigma: Any) -> None:
        super().__init__()
        self.V = as_float_array("V", V, ndim=2)
        self.sigma = as_float_array("sigma", sigma, shape=(self.V.shape[1],))
        self.target = (self.V * self.sigma) @ self.V.T

    @classmethod
    def planted(cls, *, d: int, rank: int, sigma: Any = None, seed: int | None = 0) -> NumpySymmetricFactorization:
        """``V`` orthonormal (QR of a Gaussian from ``default_rng(seed)``, as
        ``SymmetricMatrixFactorization.planted``), ``sigma`` default ``rank, ..., 1``."""
        sigma = np.arange(rank, 0, -1, dtype=float) if sigma is None else sigma
        V, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, rank)))
        return cls(V, sigma)

    def parameter_shape(self, width: int) -> tuple[int, ...]:
        return (self.V.shape[0], width)

    def loss_and_grad(self, U: np.ndarray) -> tuple[float, np.ndarray]:
        residual = U @ U.T - self.target
        return 0.25 * float(np.sum(residual * residual)), residual @ U

    def observables(self, U: np.ndarray, coefficients: Any) -> np.ndarray:
        pairs = self.coefficient_pairs(coefficients)
        projected = self.V.T @ U  # rows v_i^T U
        return np.einsum("kw,kw->k", projected[pairs[:, 0]], projected[pairs[:, 1]])

    def coefficient_pairs(self, coefficients: Any) -> np.ndarray:
        rank = self.V.shape[1]
        return resolve_pairs(coefficients, rank, rank, rank)

    @property
    def zero_loss(self) -> float:
        return 0.25 * float(np.sum(self.sigma**2))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "d": self.V.shape[0], "rank": self.V.shape[1], "sigma": self.sigma.tolist()}
