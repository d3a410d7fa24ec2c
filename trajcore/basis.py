"""The basis object: k functions orthonormal on a probe set, and projections onto them.

On a probe set of n points, functions are arrays of their values and the inner product is the
empirical one, ``<f, g> = (1/n) sum_x <f(x), g(x)>``. A :class:`Basis` holds k functions that are
orthonormal for it, scalar (values ``(n, k)``) or vector-valued with C outputs (values ``(n, C, k)``);
:class:`StreamingProjection` projects snapshots one at a time as a run records them. Projections go
through the C++ kernels ``trajcore._core.project``/``project_into``.

The constructors (conjugate-kernel, output, NTK, polynomial and user bases) live in
:mod:`trajcore.bases`, which re-exports these names. The object lives apart from them because the
training loop (:mod:`trajcore.network`) streams projections onto a basis while some constructors
read a trained network: with both in one module, the two modules would import each other.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core
from ._memory import check_allocation
from ._validation import as_float_array, as_positive_int
from .config import resolve_threads

__all__ = ["Basis", "StreamingProjection", "ORTHONORMAL_TOLERANCE"]

# Largest |Gram - I| entry accepted by Basis() without re-orthonormalisation.
ORTHONORMAL_TOLERANCE = 1e-8


class Basis:
    """k functions orthonormal on a probe set of n points.

    Parameters
    ----------
    values : (n, k) or (n, C, k) float64
        Values of the basis functions at the probe points: scalar functions, or vector-valued with
        C outputs. Must satisfy ``(1/n) sum_x <phi_i(x), phi_j(x)> = delta_ij`` to 1e-8.
    name : str
    metadata : dict, optional
        Provenance (kind, singular values, source step ...), JSON-ready.
    """

    def __init__(self, values: Any, name: str = "basis", metadata: dict[str, Any] | None = None) -> None:
        v = as_float_array("values", values, ndim=(2, 3))
        if v.shape[0] == 0 or v.shape[-1] == 0:
            raise ValueError(f"values: expected at least one point and one function, got shape {v.shape}")
        self._values = v.view()  # a read-only view: the caller's array keeps its own flags
        self._values.setflags(write=False)
        self.name = str(name)
        self.metadata = dict(metadata or {})
        error = float(np.max(np.abs(self.gram() - np.eye(self.k))))
        if error > ORTHONORMAL_TOLERANCE:
            raise ValueError(
                f"values: not orthonormal on the probe set (max |(1/n) Phi^T Phi - I| = {error:.2e} > "
                f"{ORTHONORMAL_TOLERANCE:g}); use trajcore.bases.user_basis to orthonormalise by QR"
            )

    @classmethod
    def _verified(cls, values: np.ndarray, error: float, name: str, metadata: dict[str, Any]) -> Basis:
        """A basis whose constructor already measured ``max |Gram - I| = error`` (skips a second
        O(n k^2) pass over the values)."""
        if not error <= ORTHONORMAL_TOLERANCE:
            raise ValueError(f"values: not orthonormal on the probe set (max |Gram - I| = {error:.2e})")
        basis = cls.__new__(cls)
        basis._values = np.ascontiguousarray(values, dtype=np.float64)
        basis._values.setflags(write=False)
        basis.name = str(name)
        basis.metadata = {**metadata, "orthonormality_error": error}
        return basis

    # -- shape --------------------------------------------------------------------------------------

    @property
    def values(self) -> np.ndarray:
        """``(n, k)`` or ``(n, C, k)`` read-only values."""
        return self._values

    @property
    def n(self) -> int:
        return int(self._values.shape[0])

    @property
    def k(self) -> int:
        return int(self._values.shape[-1])

    @property
    def vector_valued(self) -> bool:
        return self._values.ndim == 3

    @property
    def output_dim(self) -> int | None:
        """C for a vector-valued basis, None for scalar functions."""
        return int(self._values.shape[1]) if self.vector_valued else None

    def __repr__(self) -> str:
        kind = f"vector-valued, C={self.output_dim}" if self.vector_valued else "scalar"
        return f"Basis({self.name!r}, n={self.n}, k={self.k}, {kind})"

    def gram(self) -> np.ndarray:
        """``(k, k)`` matrix ``(1/n) sum_x <phi_i(x), phi_j(x)>`` (the identity for a basis)."""
        flat = self._values.reshape(-1, self.k)
        return (flat.T @ flat) / self.n

    def top(self, k: int) -> Basis:
        """The first ``k`` functions (bases are ordered by importance)."""
        k = as_positive_int("k", k)
        if k > self.k:
            raise ValueError(f"k: this basis has {self.k} functions, asked for {k}")
        return Basis(self._values[..., :k], name=self.name, metadata={**self.metadata, "truncated_to": k})

    def function(self, i: int) -> np.ndarray:
        """Values of function i: ``(n,)`` or ``(n, C)``."""
        return np.array(self._values[..., int(i)])

    # -- projections --------------------------------------------------------------------------------

    def _flat_values(self) -> np.ndarray:
        return self._values.reshape(-1, self.k)

    def project(self, snapshots: Any, n_threads: int | None = None) -> np.ndarray:
        """Coefficients ``beta_i = (1/n) sum_x <F(x), phi_i(x)>`` of each snapshot.

        Parameters
        ----------
        snapshots : array
            Vector-valued basis: ``(T, n, C)``, ``(T, n * C)`` or one ``(n, C)`` snapshot.
            Scalar basis: ``(T, n)`` or one ``(n,)``; or ``(T, n, C)`` for per-output coefficients.
            NaN entries propagate to the coefficients they touch (they are not checked, to keep the
            projection at memory speed).
        n_threads : int, optional

        Returns
        -------
        (T, k), (k,) for one snapshot, or (T, C, k) for per-output projections on a scalar basis.
        """
        s = as_float_array("snapshots", snapshots, finite=False)
        threads = resolve_threads(n_threads)
        scale = 1.0 / self.n
        n, C = self.n, self.output_dim
        if self.vector_valued:
            assert C is not None
            if s.shape == (n, C) or s.shape == (n * C,):
                return _core.project(s.reshape(1, -1), self._flat_values(), scale, 1)[0]
            if s.ndim == 3 and s.shape[1:] == (n, C):
                return _core.project(s.reshape(s.shape[0], -1), self._flat_values(), scale, threads)
            if s.ndim == 2 and s.shape[1] == n * C:
                return _core.project(s, self._flat_values(), scale, threads)
            raise ValueError(
                f"snapshots: expected (T, {n}, {C}), (T, {n * C}) or ({n}, {C}) for this basis "
                f"(n={n} probe points, C={C} outputs), got {s.shape}"
            )
        if s.shape == (n,):
            return _core.project(s.reshape(1, -1), self._values, scale, 1)[0]
        if s.ndim == 2 and s.shape[1] == n:
            return _core.project(s, self._values, scale, threads)
        if s.ndim == 3 and s.shape[1] == n:
            return _core.project_per_output(s, self._values, scale, threads)
        raise ValueError(
            f"snapshots: expected (T, {n}), ({n},) or (T, {n}, C) for this scalar basis on {n} probe points, "
            f"got {s.shape}"
        )

    def streaming(self, capacity: int) -> StreamingProjection:
        """A preallocated ``(capacity, k)`` buffer filled one snapshot at a time (during training)."""
        return StreamingProjection(self, capacity)


class StreamingProjection:
    """Project snapshots one at a time into a preallocated ``(capacity, k)`` buffer.

    Each :meth:`push` costs one ``O(N k)`` product (N = n, or n * C for a vector-valued basis) and
    allocates nothing.
    """

    def __init__(self, basis: Basis, capacity: int) -> None:
        if not isinstance(basis, Basis):
            raise TypeError(f"basis: expected a trajcore.bases.Basis, got {type(basis).__name__}")
        self.basis = basis
        capacity = as_positive_int("capacity", capacity)
        check_allocation("StreamingProjection buffer", 8.0 * capacity * basis.k)
        self._buffer = np.zeros((capacity, basis.k))
        self._flat = basis._flat_values()
        self._size = int(self._flat.shape[0])
        self._count = 0

    def push(self, snapshot: Any) -> None:
        """Project one snapshot (``(n,)``, ``(n, C)`` or ``(n * C,)``, matching the basis)."""
        if self._count >= self._buffer.shape[0]:
            raise ValueError(f"snapshot: the buffer holds {self._buffer.shape[0]} snapshots and is full")
        s = np.ascontiguousarray(snapshot, dtype=np.float64)
        if s.size != self._size:
            want = (self.basis.n,) if not self.basis.vector_valued else (self.basis.n, self.basis.output_dim)
            raise ValueError(f"snapshot: expected shape {want}, got {s.shape}")
        _core.project_into(s, self._flat, 1.0 / self.basis.n, self._buffer, self._count)
        self._count += 1

    def __len__(self) -> int:
        return self._count

    @property
    def coefficients(self) -> np.ndarray:
        """``(count, k)`` coefficients pushed so far (a copy)."""
        return self._buffer[: self._count].copy()
