"""Symmetric matrix sensing: a low-rank PSD matrix recovered from linear measurements."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core
from ._memory import check_allocation
from ._validation import as_float_array, as_positive_float, as_positive_int
from .matrix_factorization import SymmetricMatrixFactorization, complete_basis
from .problem import Problem, resolve_pairs

__all__ = ["MatrixSensing"]

CoefficientRequest = None | bool | str | np.ndarray

#: the most measurements the kernel's streaming pass takes at once (csrc/matrix_sensing.hpp,
#: kMaxMeasurementBlock): its largest product is 1 x d(d+1)/2 x this
_MAX_MEASUREMENT_BLOCK = 32


class MatrixSensing(Problem):
    """``f(U) = 1/(4m) sum_i (<A_i, U U^T> - y_i)^2`` for ``U (d, r')``, symmetric ``A_i (d, d)``.

    The gradient is ``(1/m) sum_i (<A_i, U U^T> - y_i) A_i U``. When the observations come from a
    planted ``M* = V diag(sigma) V^T`` (``y_i = <A_i, M*>``, plus noise), give ``V (d, r)``
    (orthonormal columns) and ``sigma (r,)`` (positive): the basis is then ``O = [V, V_perp]``
    (:meth:`basis`) and the recorded coefficients are ``beta_ij = o_i^T U U^T o_j``, exactly as for
    :class:`~trajcore.SymmetricMatrixFactorization` with target ``M*`` (:meth:`as_factorization`).

    Parameters
    ----------
    measurements : (m, d, d) float64
        The sensing matrices, each symmetric up to ``symmetry_tol`` relative to its largest entry
        (they are used symmetrised, ``(A_i + A_i^T) / 2``).
    observations : (m,) float64
        ``y_i``.
    V, sigma : (d, r) and (r,) float64, optional
        The planted target, both or neither. Without them the basis is the coordinate axes
        (``O = I``): ``Record(coefficients="diagonal" | "all" | pairs)`` records entries of ``U U^T``
        and the signal block (``True``, ``"signal"``) is empty.
    symmetry_tol : float
        Largest ``max |A_i - A_i^T| / max |A_i|`` accepted.

    Coefficient requests (``Record.coefficients``) are those of the symmetric factorization:
    ``True``/``"signal"`` the pairs ``i, j < r``, ``"diagonal"``, ``"all"``, ``(K, 2)`` index pairs
    into the columns of :meth:`basis`, ``None``/``False`` none.

    The compiled kernel holds the measurements packed (``D = d(d+1)/2`` values each). A step either
    reads them once (about ``2 m D + 2 d^2 r'`` multiply-adds) or, when that moves less memory
    (``D + 1 < 2m``), goes through their Gram matrix ``G = A^T A`` built once with the kernel (about
    ``D^2 + 2 d^2 r'``); the recorded loss is then checked against cancellation and recomputed from
    the residuals when needed (csrc/matrix_sensing.hpp).
    """

    name = "matrix_sensing"

    def __init__(
        self,
        measurements: Any,
        observations: Any,
        *,
        V: Any = None,
        sigma: Any = None,
        symmetry_tol: float = 1e-10,
    ) -> None:
        A = as_float_array("measurements", measurements, ndim=3)
        m, d = A.shape[0], A.shape[1]
        if m == 0 or d == 0 or A.shape[2] != d:
            raise ValueError(f"measurements: expected shape (m, d, d) with m, d >= 1, got {A.shape}")
        y = as_float_array("observations", observations, ndim=1)
        if y.shape != (m,):
            raise ValueError(f"observations: expected shape ({m},), one per measurement, got {y.shape}")
        symmetry_tol = as_positive_float("symmetry_tol", symmetry_tol, allow_zero=True)
        asymmetry = np.max(np.abs(A - A.transpose(0, 2, 1)), axis=(1, 2))
        scale = np.max(np.abs(A), axis=(1, 2))
        bad = np.flatnonzero(asymmetry > symmetry_tol * scale)
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"measurements: A_{i} is not symmetric (max |A_i - A_i^T| = {asymmetry[i]:.3g}, "
                f"{asymmetry[i] / scale[i]:.3g} of max |A_i| > symmetry_tol = {symmetry_tol:g})"
            )
        self.measurements = 0.5 * (A + A.transpose(0, 2, 1))
        self.observations = y.copy()
        self.measurements.setflags(write=False)
        self.observations.setflags(write=False)
        self.m = int(m)
        self.d = int(d)
        self.symmetry_tol = symmetry_tol
        self._factorization: SymmetricMatrixFactorization | None = None
        if (V is None) != (sigma is None):
            raise ValueError("V, sigma: give both factors of the planted target, or neither")
        if V is not None:
            factorization = SymmetricMatrixFactorization(V=V, sigma=sigma)  # checks V and sigma
            if factorization.d != d:
                raise ValueError(f"V: expected {d} rows (the measurements' d), got shape {factorization.V.shape}")
            self._factorization = factorization
        self.V: np.ndarray | None = None if self._factorization is None else self._factorization.V
        self.sigma: np.ndarray | None = None if self._factorization is None else self._factorization.sigma
        self.rank = 0 if self.V is None else int(self.V.shape[1])
        self._basis: np.ndarray | None = None

    @classmethod
    def planted(
        cls,
        *,
        d: int,
        rank: int,
        m: int,
        sigma: Any = None,
        seed: int | None,
        noise: float = 0.0,
    ) -> MatrixSensing:
        """A planted instance: ``m`` Gaussian measurements of ``M* = V diag(sigma) V^T``.

        ``V (d, rank)`` and ``sigma`` (default ``rank, ..., 1``) are those of
        ``SymmetricMatrixFactorization.planted(d=d, rank=rank, sigma=sigma, seed=seed)``, so
        :meth:`as_factorization` is that problem. The measurements are ``A_i = (G_i + G_i^T) / 2``
        with ``G_i`` iid standard Gaussian (d, d): diagonal entries ``N(0, 1)``, off-diagonal
        ``N(0, 1/2)``, and ``<A_i, E> = <G_i, E> ~ N(0, ||E||_F^2)`` for every symmetric ``E``. Hence
        ``E (1/m) sum_i <A_i, E>^2 = ||E||_F^2``: the population loss (the mean over measurements)
        is the factorization's ``1/4 ||U U^T - M*||_F^2``, plus ``noise^2 / 4``. The observations are
        ``y_i = <A_i, M*> + noise * e_i``, ``e_i`` iid standard Gaussian.

        The target, the measurements and the observation noise come from three streams of ``seed``
        (``numpy.random.SeedSequence(seed)`` and its two spawned children): the same seed gives the
        same measurements for any ``noise``.
        """
        d = as_positive_int("d", d)
        rank = as_positive_int("rank", rank)
        m = as_positive_int("m", m)
        noise = as_positive_float("noise", noise, allow_zero=True)
        if rank > d:
            raise ValueError(f"rank: must be <= d = {d}, got {rank}")
        check_allocation(lambda: f"MatrixSensing.planted: measurements ({m}, {d}, {d}) float64", 3 * 8 * m * d * d)
        sig = np.arange(rank, 0, -1, dtype=float) if sigma is None else as_float_array("sigma", sigma, shape=(rank,))
        root = np.random.SeedSequence(seed)
        measurement_stream, noise_stream = root.spawn(2)
        # V as SymmetricMatrixFactorization.planted draws it: default_rng(seed) is default_rng(root)
        V, _ = np.linalg.qr(np.random.default_rng(root).standard_normal((d, rank)))
        G = np.random.default_rng(measurement_stream).standard_normal((m, d, d))
        A = G + G.transpose(0, 2, 1)
        A *= 0.5
        y = np.einsum("iab,ab->i", A, (V * sig) @ V.T)
        if noise > 0:
            y += noise * np.random.default_rng(noise_stream).standard_normal(m)
        return cls(A, y, V=V, sigma=sig)

    @classmethod
    def examples(cls) -> dict[str, Problem]:
        rng = np.random.default_rng(12)
        G = rng.standard_normal((9, 4, 4))
        return {
            "sensing_planted": cls.planted(d=6, rank=2, m=40, seed=0),
            "sensing_noisy": cls.planted(d=5, rank=3, m=17, seed=1, noise=0.1),
            "sensing_unknown_target": cls(G + G.transpose(0, 2, 1), rng.standard_normal(9)),
        }

    # -- the planted target ------------------------------------------------------------------------

    @property
    def is_planted(self) -> bool:
        """Whether ``V`` and ``sigma`` of the target are known."""
        return self._factorization is not None

    def as_factorization(self) -> SymmetricMatrixFactorization:
        """The symmetric factorization ``1/4 ||U U^T - M*||_F^2`` with the same target: the population
        loss of planted Gaussian measurements (see :meth:`planted`), and its learning-time
        predictions."""
        return self._planted("as_factorization")

    def _planted(self, what: str) -> SymmetricMatrixFactorization:
        if self._factorization is None:
            raise ValueError(f"{what}: the target is unknown (build the problem with V and sigma)")
        return self._factorization

    @property
    def target(self) -> np.ndarray:
        """The planted ``M* = V diag(sigma) V^T (d, d)``."""
        return self._planted("target").target

    def basis(self) -> np.ndarray:
        """Orthonormal ``O (d, d)`` of the coefficients: ``[V, V_perp]`` (as the factorization's), or the
        identity when the target is unknown."""
        if self._basis is None:
            self._basis = np.eye(self.d) if self._factorization is None else complete_basis(self._factorization.V)
        return self._basis

    def eigenbasis(self) -> np.ndarray:
        """``O = [V, V_perp] (d, d)``, the target's eigenbasis as every factor problem names it (the
        same matrix as :meth:`basis` of a planted problem). Runs stay in the given coordinates: a
        rotation makes ``M*`` diagonal but not the measurements, so it would save nothing."""
        self._planted("eigenbasis")
        return self.basis()

    @property
    def zero_loss(self) -> float:
        """``f(0) = 1/(4m) sum_i y_i^2``."""
        return float(np.sum(self.observations**2)) / (4.0 * self.m)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "d": self.d,
            "m": self.m,
            "rank": self.rank,
            "sigma": None if self.sigma is None else self.sigma.tolist(),
        }

    # -- compiling ---------------------------------------------------------------------------------

    def parameter_shape(self, width: int) -> tuple[int, ...]:
        return (self.d, width)

    def largest_product(self, width: int) -> int:
        """``U U^T`` and ``S U`` (``d^2 r'``), the coefficients' ``O^T U`` (at most as large) and one
        block of the streaming pass (``d(d+1)/2`` by at most ``_MAX_MEASUREMENT_BLOCK``)."""
        return max(self.d * self.d * width, self.d * (self.d + 1) // 2 * _MAX_MEASUREMENT_BLOCK)

    def coefficient_pairs(self, coefficients: CoefficientRequest) -> np.ndarray:
        return resolve_pairs(coefficients, self.rank, self.d, self.d)

    def build_kernel(self, width: int, coefficients: CoefficientRequest) -> Any:
        pairs = self.coefficient_pairs(coefficients)
        # only the basis columns the pairs use go to the kernel (on the axes it gathers rows of U)
        used, renumbered = np.unique(pairs.ravel(), return_inverse=True)
        columns = np.ascontiguousarray(self.basis()[:, used])
        return _core.MatrixSensingKernel(
            self.measurements,
            self.observations,
            width,
            columns,
            renumbered.astype(np.int64).reshape(-1, 2),
            self.symmetry_tol,
        )

    # -- NumPy reference quantities ----------------------------------------------------------------

    def residuals(self, U: Any) -> np.ndarray:
        """``r_i = <A_i, U U^T> - y_i``: ``(m,)`` for ``U (d, r')``, ``(B, m)`` for ``(B, d, r')``."""
        Ub, batched = self.validate_params("U", U)
        r = np.einsum("iab,nab->ni", self.measurements, Ub @ np.swapaxes(Ub, -1, -2)) - self.observations
        return r if batched else r[0]

    def loss(self, U: Any) -> Any:
        """``1/(4m) sum_i r_i^2``: float for ``U (d, r')``, ``(B,)`` for ``(B, d, r')``."""
        r = self.residuals(U)
        return np.sum(r**2, axis=-1) / (4.0 * self.m)

    def grad(self, U: Any) -> np.ndarray:
        """``(1/m) sum_i r_i A_i U``, the shape of U."""
        Ub, batched = self.validate_params("U", U)
        r = self.residuals(Ub)
        G = np.einsum("ni,iab->nab", r, self.measurements) @ Ub / self.m
        return G if batched else G[0]

    def coefficients(self, U: Any, coefficients: CoefficientRequest = "all") -> np.ndarray:
        """``beta_k = o_i^T U U^T o_j`` for the requested pairs: ``(K,)`` or ``(B, K)``."""
        Ub, batched = self.validate_params("U", U)
        pairs = self.coefficient_pairs(coefficients)
        P = np.einsum("di,bdw->biw", self.basis(), Ub)
        out = np.einsum("bkw,bkw->bk", P[:, pairs[:, 0]], P[:, pairs[:, 1]])
        return out if batched else out[0]
