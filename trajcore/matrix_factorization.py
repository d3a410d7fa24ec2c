"""Symmetric and asymmetric matrix factorization (PAPERS.md section 2)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core
from ._deprecation import deprecated_alias, old_spellings
from ._validation import as_float_array, as_positive_int
from .problem import Problem, resolve_pairs

__all__ = ["SymmetricMatrixFactorization", "AsymmetricMatrixFactorization", "complete_basis"]

CoefficientRequest = None | bool | str | np.ndarray

#: the storages of a factorization's target: its factors, or the full matrix
_STORAGES = ("factored", "dense")


def _check_storage(storage: Any) -> str:
    if storage not in _STORAGES:
        raise ValueError(f"storage: expected one of {', '.join(map(repr, _STORAGES))}, got {storage!r}")
    return str(storage)


def _storage_of_dense(dense: Any) -> str:
    """The ``storage`` that the deprecated ``dense=`` flag meant."""
    return "dense" if dense else "factored"


def complete_basis(V: np.ndarray) -> np.ndarray:
    """Orthonormal ``O (d, d)`` whose first r columns are exactly ``V (d, r)`` (orthonormal columns).

    The completion is the orthogonal complement from a complete QR factorisation, deterministic
    for a given V.
    """
    d, r = V.shape
    Q, _ = np.linalg.qr(V, mode="complete")
    O = Q.copy()
    O[:, :r] = V
    return O


def _without_rounding(values: np.ndarray, order: int) -> np.ndarray:
    """Eigen- or singular values with those within the decomposition's own error
    (``order * eps * max |value|``) set to zero: a target of rank r then has a support of r
    coordinates in its eigenbasis, as a factored one does."""
    limit = order * np.finfo(float).eps * float(np.max(np.abs(values), initial=0.0))
    return np.where(np.abs(values) > limit, values, 0.0)


def _axes(indices: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The coordinate axes e_i (rows, q) that ``indices`` use, and the indices renumbered into them:
    the basis vectors o_i in the eigenbasis coordinates."""
    used, renumbered = np.unique(indices, return_inverse=True)
    axes = np.zeros((rows, used.size))
    axes[used, np.arange(used.size)] = 1.0
    return axes, renumbered.astype(np.int64)


def _check_orthonormal_columns(name: str, V: np.ndarray, tol: float = 1e-10) -> None:
    gram = V.T @ V
    err = np.max(np.abs(gram - np.eye(V.shape[1]))) if V.size else 0.0
    if err > tol:
        raise ValueError(f"{name}: columns must be orthonormal (max |{name}^T {name} - I| = {err:.2e} > {tol:g})")


def _check_signal(name: str, values: np.ndarray) -> None:
    if values.size and np.any(values <= 0):
        raise ValueError(f"{name}: expected positive values, got {values}")


def _sub_basis(basis: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The columns of ``basis`` that ``indices`` use, and the indices renumbered into them."""
    used, remapped = np.unique(indices, return_inverse=True)
    return np.ascontiguousarray(basis[:, used]), remapped.astype(np.int64)


def _factor_product_bound(problem: Problem, width: int) -> int:
    """Largest product of a factorization kernel with parameters ``(p, width)``: every operand is
    ``p x p`` at most (the target, its bases, the change of basis) or the parameters, so
    ``p * width * max(p, width)`` bounds them all."""
    rows = problem.parameter_shape(width)[0]
    return rows * width * max(rows, width)


class SymmetricMatrixFactorization(Problem):
    """``f(U) = 1/4 ||U U^T - M||_F^2`` for ``U (d, r')``, target ``M (d, d)`` symmetric.

    Give the target dense (``target=M``) or factored (``V (d, r)`` with orthonormal columns and
    ``sigma (r,)`` positive, ``M = V diag(sigma) V^T``). The factored form makes a step cost
    O(d r r') instead of O(d^2 r'). The basis is ``O = [V, V_perp]``; coefficients are
    ``beta_ij = o_i^T U U^T o_j``. Noise-free runs may step on ``O^T U (d, r')``, where the target
    is diagonal: ``run(..., coordinates="eigenbasis")``, O(d r'^2) per step for any target.
    """

    name = "symmetric_matrix_factorization"
    coordinates = ("given", "eigenbasis")

    def __init__(
        self,
        target: Any = None,
        *,
        V: Any = None,
        sigma: Any = None,
        symmetry_tol: float = 1e-10,
    ) -> None:
        self._dense: np.ndarray | None
        self._basis: np.ndarray | None
        if (target is None) == (V is None and sigma is None):
            raise ValueError("target: give either the dense target or both V and sigma")
        if target is not None:
            M = as_float_array("target", target, ndim=2)
            if M.shape[0] != M.shape[1] or M.shape[0] == 0:
                raise ValueError(f"target: expected a non-empty square matrix, got shape {M.shape}")
            asym = np.max(np.abs(M - M.T))
            if asym > symmetry_tol * max(1.0, float(np.max(np.abs(M)))):
                raise ValueError(f"target: must be symmetric (max |M - M^T| = {asym:.3g})")
            M = 0.5 * (M + M.T)
            eigval, eigvec = np.linalg.eigh(M)
            order = np.argsort(eigval)[::-1]
            eigval, eigvec = eigval[order], eigvec[:, order]
            keep = eigval > M.shape[0] * np.finfo(float).eps * max(1.0, float(np.max(np.abs(eigval))))
            self._dense = M
            self.V = np.ascontiguousarray(eigvec[:, keep])
            self.sigma = eigval[keep]
            self._basis = np.ascontiguousarray(eigvec)
            self._eigenvalues = _without_rounding(eigval, M.shape[0])
        else:
            if V is None or sigma is None:
                raise ValueError("V, sigma: give both factors of the target")
            V = as_float_array("V", V, ndim=2)
            sigma = as_float_array("sigma", sigma, ndim=1)
            if sigma.shape[0] != V.shape[1] or V.shape[0] == 0 or V.shape[1] == 0:
                raise ValueError(f"V, sigma: expected V (d, r) and sigma (r,), got {V.shape} and {sigma.shape}")
            _check_orthonormal_columns("V", V)
            _check_signal("sigma", sigma)
            self._dense = None
            self.V = V
            self.sigma = sigma
            self._basis = None
            self._eigenvalues = np.concatenate([sigma, np.zeros(V.shape[0] - V.shape[1])])
        self.d = int(self.V.shape[0])
        self.rank = int(self.V.shape[1])

    @classmethod
    def examples(cls) -> dict[str, Problem]:
        return {
            "smf_factored": cls.planted(d=9, rank=3, seed=0),
            "smf_dense": cls.planted(d=7, rank=2, seed=1, storage="dense"),
        }

    @classmethod
    @old_spellings(keyword_only=("seed",), renamed={"dense": ("storage", _storage_of_dense)})
    def planted(
        cls, d: int, rank: int, sigma: Any = None, *, seed: int | None = 0, storage: str = "factored"
    ) -> SymmetricMatrixFactorization:
        """A random target: ``V`` Haar-like orthonormal (QR of a Gaussian from ``seed``), ``sigma``
        descending (default ``rank, rank - 1, ..., 1``); ``storage="dense"`` hands the kernel the
        full matrix (``"factored"``, the default: ``V`` and ``sigma``).

        Deprecated spellings, kept one release: ``seed`` positionally, ``dense=True`` for
        ``storage="dense"``.
        """
        d = as_positive_int("d", d)
        rank = as_positive_int("rank", rank)
        storage = _check_storage(storage)
        if rank > d:
            raise ValueError(f"rank: must be <= d = {d}, got {rank}")
        sig = np.arange(rank, 0, -1, dtype=float) if sigma is None else as_float_array("sigma", sigma, shape=(rank,))
        rng = np.random.default_rng(seed)
        V, _ = np.linalg.qr(rng.standard_normal((d, rank)))
        problem = cls(V=V, sigma=sig)
        return cls(target=problem.target) if storage == "dense" else problem

    # -- the target --------------------------------------------------------------------------------

    @property
    def is_factored(self) -> bool:
        return self._dense is None

    @property
    def target(self) -> np.ndarray:
        """The dense target ``M (d, d)`` (built on demand for a factored target)."""
        if self._dense is not None:
            return self._dense
        return (self.V * self.sigma) @ self.V.T

    def basis(self) -> np.ndarray:
        """Orthonormal ``O (d, d)``: eigenvectors of M by decreasing eigenvalue, then a completion
        (the same matrix as :meth:`eigenbasis`)."""
        if self._basis is None:
            self._basis = complete_basis(self.V)
        return self._basis

    @property
    def zero_loss(self) -> float:
        return 0.25 * float(np.sum(self.sigma**2)) if self.is_factored else 0.25 * float(np.sum(self.target**2))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "d": self.d,
            "rank": self.rank,
            "factored": self.is_factored,
            "sigma": self.sigma.tolist(),
        }

    largest_product = _factor_product_bound

    # -- NumPy reference quantities --------------------------------------------------------------

    def parameter_shape(self, width: int) -> tuple[int, ...]:
        return (self.d, width)

    def _params(self, U: Any) -> tuple[np.ndarray, bool]:
        return self.validate_params("U", U)

    def residual(self, U: Any) -> np.ndarray:
        """``U U^T - M``, shape ``(d, d)`` or ``(B, d, d)``."""
        Ub, batched = self._params(U)
        R = Ub @ np.swapaxes(Ub, -1, -2) - self.target
        return R if batched else R[0]

    def loss(self, U: Any) -> Any:
        """``1/4 ||U U^T - M||_F^2`` for ``U (d, r')`` (float) or ``(B, d, r')`` (``(B,)``).

        A factored target never forms a d x d matrix: with ``P = V^T U`` and ``U_perp = U - V P``,
        ``||U U^T - M||^2 = ||P P^T - S||^2 + 2 <P^T P, U_perp^T U_perp> + ||U_perp^T U_perp||^2``.
        """
        if not self.is_factored:
            R = self.residual(U)
            return 0.25 * np.sum(R**2, axis=(-2, -1))
        Ub, batched = self._params(U)
        P = np.einsum("dr,bdw->brw", self.V, Ub)
        Up = Ub - np.einsum("dr,brw->bdw", self.V, P)
        D = P @ np.swapaxes(P, -1, -2) - np.diag(self.sigma)
        gP = np.swapaxes(P, -1, -2) @ P
        gU = np.swapaxes(Up, -1, -2) @ Up
        value = 0.25 * (np.sum(D**2, axis=(-2, -1)) + 2 * np.sum(gP * gU, axis=(-2, -1)) + np.sum(gU**2, axis=(-2, -1)))
        return value if batched else value[0]

    def grad(self, U: Any) -> np.ndarray:
        """``(U U^T - M) U``, same shape as U."""
        Ub, batched = self._params(U)
        G = (Ub @ np.swapaxes(Ub, -1, -2) - self.target) @ Ub
        return G if batched else G[0]

    def coefficients(self, U: Any, coefficients: CoefficientRequest = "all") -> np.ndarray:
        """``beta_k = o_i^T U U^T o_j`` for the requested pairs: ``(K,)`` or ``(B, K)``."""
        Ub, batched = self._params(U)
        pairs = self.coefficient_pairs(coefficients)
        P = np.einsum("di,bdw->biw", self.basis(), Ub)
        out = np.einsum("bkw,bkw->bk", P[:, pairs[:, 0]], P[:, pairs[:, 1]])
        return out if batched else out[0]

    def coefficient_gradients(self, U: Any, pairs: np.ndarray) -> np.ndarray:
        """``grad_U beta_ij = (o_i o_j^T + o_j o_i^T) U`` for each pair: ``(K, d, r')``."""
        U = as_float_array("U", U, shape=(self.d, None))
        O = self.basis()
        P = O.T @ U  # rows o_i^T U
        oi, oj = O[:, pairs[:, 0]].T, O[:, pairs[:, 1]].T  # (K, d)
        return oi[:, :, None] * P[pairs[:, 1]][:, None, :] + oj[:, :, None] * P[pairs[:, 0]][:, None, :]

    def coefficient_pairs(self, coefficients: CoefficientRequest) -> np.ndarray:
        return resolve_pairs(coefficients, self.rank, self.d, self.d)

    def _projector(self, coefficients: CoefficientRequest, *, eigenbasis: bool) -> tuple[np.ndarray, np.ndarray]:
        """The basis columns a request's pairs use, and the pairs renumbered into them: columns of O
        (for "signal" V alone, O(d r) memory), or in the eigenbasis the coordinate axes e_i."""
        pairs = self.coefficient_pairs(coefficients)
        if pairs.shape[0] == 0:
            return np.zeros((self.d, 0)), np.zeros((0, 2), dtype=np.int64)
        if eigenbasis:  # both indices of a pair refer to the same basis: one set of axes
            axes, flat = _axes(pairs.ravel(), self.d)
            return axes, flat.reshape(-1, 2)
        columns, flat = _sub_basis(self.V if pairs.max() < self.rank else self.basis(), pairs.ravel())
        return columns, flat.reshape(-1, 2)

    def eigenbasis(self) -> np.ndarray:
        """``O (d, d)`` of :meth:`basis`: the kernel in the eigenbasis steps ``O^T U``."""
        return self.basis()

    def build_eigenbasis_kernel(self, width: int, coefficients: CoefficientRequest) -> Any:
        """In the eigenbasis ``W = O^T U`` the target is ``diag(eigenvalues)`` and ``o_i`` is ``e_i``:
        ``f = 1/4 ||W W^T - diag(lambda)||^2``, a step costs O(d r'^2) and coefficients are dot products
        of rows of W."""
        basis, pairs = self._projector(coefficients, eigenbasis=True)
        # With d <= r' the kernel keeps W^T and steps through the smaller W W^T (no transposition).
        return _core.SymmetricMatrixFactorizationKernel(
            self.d, width, diagonal=self._eigenvalues, basis=basis, pairs=pairs, transposed=self.d <= width
        )

    def build_kernel(self, width: int, coefficients: CoefficientRequest) -> Any:
        basis, remapped = self._projector(coefficients, eigenbasis=False)
        if self.is_factored:
            return _core.SymmetricMatrixFactorizationKernel(
                self.d, width, V=self.V, sigma=self.sigma, basis=basis, pairs=remapped
            )
        return _core.SymmetricMatrixFactorizationKernel(self.d, width, dense=self._dense, basis=basis, pairs=remapped)


class AsymmetricMatrixFactorization(Problem):
    """``f(X, Y) = 1/2 ||X Y^T - M||_F^2`` for ``X (m, r')``, ``Y (n, r')``, target ``M (m, n)``.

    Parameters of one trajectory are stacked as ``W = [X; Y]`` of shape ``(m + n, r')`` (see
    :meth:`stack` and :meth:`split`); both factors move simultaneously. Target dense
    (``target=M``) or factored, ``M = left diag(sigma) right^T`` (``left (m, r)`` and
    ``right (n, r)`` with orthonormal columns, ``sigma (r,)`` positive). Coefficients are
    ``beta_ij = a_i^T X Y^T b_j`` in the target's singular bases ``a_i``, ``b_j`` (:meth:`basis`).
    Noise-free runs may step on ``[A_full^T X; B_full^T Y] (m + n, r')``, where the target is
    ``diag(sigma) (m, n)``: ``run(..., coordinates="eigenbasis")``, O((m + n) r'^2) per step for
    any target.

    ``A=``, ``s=``, ``B=`` (and the attributes ``.A``, ``.s``, ``.B``) are the deprecated spellings
    of ``left=``, ``sigma=``, ``right=``, kept one release: ``B`` also named the batch axis.
    """

    name = "asymmetric_matrix_factorization"
    coordinates = ("given", "eigenbasis")

    #: deprecated spellings of :attr:`left`, :attr:`sigma`, :attr:`right` (they warn when read)
    A = deprecated_alias("A", "left", "AsymmetricMatrixFactorization")
    s = deprecated_alias("s", "sigma", "AsymmetricMatrixFactorization")
    B = deprecated_alias("B", "right", "AsymmetricMatrixFactorization")

    @old_spellings(renamed={"A": "left", "s": "sigma", "B": "right"})
    def __init__(self, target: Any = None, *, left: Any = None, sigma: Any = None, right: Any = None) -> None:
        self._dense: np.ndarray | None
        self._bases: tuple[np.ndarray, np.ndarray] | None
        self.left: np.ndarray
        self.sigma: np.ndarray
        self.right: np.ndarray
        if (target is None) == (left is None and sigma is None and right is None):
            raise ValueError("target: give either the dense target or all of left, sigma, right")
        if target is not None:
            M = as_float_array("target", target, ndim=2)
            if M.size == 0:
                raise ValueError("target: must not be empty")
            Uf, sv, Vt = np.linalg.svd(M, full_matrices=True)
            keep = sv > max(M.shape) * np.finfo(float).eps * max(1.0, float(sv.max()))
            self._dense = M
            self.left, self.sigma, self.right = Uf[:, : keep.sum()].copy(), sv[keep], Vt[: keep.sum()].T.copy()
            self._bases = (Uf, np.ascontiguousarray(Vt.T))
            self._singular_values = _without_rounding(sv, max(M.shape))
        else:
            if left is None or sigma is None or right is None:
                raise ValueError("left, sigma, right: give all three factors of the target")
            L = as_float_array("left", left, ndim=2)
            S = as_float_array("sigma", sigma, ndim=1)
            R = as_float_array("right", right, ndim=2)
            if L.shape[1] != S.shape[0] or R.shape[1] != S.shape[0] or S.shape[0] == 0:
                raise ValueError(
                    f"left, sigma, right: expected (m, r), (r,), (n, r), got {L.shape}, {S.shape}, {R.shape}"
                )
            _check_orthonormal_columns("left", L)
            _check_orthonormal_columns("right", R)
            _check_signal("sigma", S)
            self._dense = None
            self.left, self.sigma, self.right = L, S, R
            self._bases = None
            self._singular_values = np.concatenate([S, np.zeros(min(L.shape[0], R.shape[0]) - S.shape[0])])
        self.m, self.n, self.rank = int(self.left.shape[0]), int(self.right.shape[0]), int(self.left.shape[1])

    @classmethod
    def examples(cls) -> dict[str, Problem]:
        return {
            "amf_dense": cls(np.random.default_rng(2).standard_normal((6, 5))),
            "amf_factored": cls(
                left=np.linalg.qr(np.random.default_rng(3).standard_normal((6, 2)))[0],
                sigma=np.array([2.0, 1.0]),
                right=np.linalg.qr(np.random.default_rng(4).standard_normal((5, 2)))[0],
            ),
        }

    @classmethod
    @old_spellings(keyword_only=("seed",), renamed={"s": "sigma", "dense": ("storage", _storage_of_dense)})
    def planted(
        cls, m: int, n: int, rank: int, sigma: Any = None, *, seed: int | None = 0, storage: str = "factored"
    ) -> AsymmetricMatrixFactorization:
        """A random target with orthonormal singular vectors (QR of Gaussians from ``seed``) and
        singular values ``sigma`` (default ``rank, ..., 1``); ``storage="dense"`` hands the kernel
        the full matrix (``"factored"``, the default: ``left``, ``sigma``, ``right``).

        Deprecated spellings, kept one release: ``s=`` for ``sigma=``, ``seed`` positionally,
        ``dense=True`` for ``storage="dense"``.
        """
        m, n, rank = as_positive_int("m", m), as_positive_int("n", n), as_positive_int("rank", rank)
        storage = _check_storage(storage)
        if rank > min(m, n):
            raise ValueError(f"rank: must be <= min(m, n) = {min(m, n)}, got {rank}")
        sv = np.arange(rank, 0, -1, dtype=float) if sigma is None else as_float_array("sigma", sigma, shape=(rank,))
        rng = np.random.default_rng(seed)
        left, _ = np.linalg.qr(rng.standard_normal((m, rank)))
        right, _ = np.linalg.qr(rng.standard_normal((n, rank)))
        problem = cls(left=left, sigma=sv, right=right)
        return cls(target=problem.target) if storage == "dense" else problem

    @property
    def is_factored(self) -> bool:
        return self._dense is None

    @property
    def target(self) -> np.ndarray:
        """The dense target ``M (m, n)``."""
        return self._dense if self._dense is not None else (self.left * self.sigma) @ self.right.T

    def basis(self) -> tuple[np.ndarray, np.ndarray]:
        """Orthonormal ``(A_full (m, m), B_full (n, n))`` starting with the target's singular vectors:
        one basis per factor (their block diagonal, on the stacked parameters, is :meth:`eigenbasis`)."""
        if self._bases is None:
            self._bases = (complete_basis(self.left), complete_basis(self.right))
        return self._bases

    @property
    def zero_loss(self) -> float:
        return 0.5 * float(np.sum(self.sigma**2)) if self.is_factored else 0.5 * float(np.sum(self.target**2))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "m": self.m,
            "n": self.n,
            "rank": self.rank,
            "factored": self.is_factored,
            "sigma": self.sigma.tolist(),
        }

    largest_product = _factor_product_bound

    def parameter_shape(self, width: int) -> tuple[int, ...]:
        return (self.m + self.n, width)

    def stack(self, X: Any, Y: Any) -> np.ndarray:
        """``[X; Y]``: ``(m + n, r')`` (or batched ``(B, m + n, r')``, B the batch) from ``X (.., m, r')``,
        ``Y (.., n, r')``."""
        X = as_float_array("X", X, ndim=(2, 3))
        Y = as_float_array("Y", Y, ndim=(2, 3))
        if X.shape[-2] != self.m or Y.shape[-2] != self.n or X.shape[-1] != Y.shape[-1] or X.ndim != Y.ndim:
            raise ValueError(f"X, Y: expected (m={self.m}, r') and (n={self.n}, r'), got {X.shape} and {Y.shape}")
        return np.concatenate([X, Y], axis=-2)

    def split(self, W: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(X, Y)`` from stacked parameters ``W (..., m + n, r')``."""
        W = np.asarray(W)
        return W[..., : self.m, :], W[..., self.m :, :]

    def loss(self, W: Any) -> Any:
        """``1/2 ||X Y^T - M||_F^2`` for stacked ``W (m + n, r')`` or ``(B, m + n, r')``."""
        Wb, batched = self.validate_params("W", W)
        X, Y = self.split(Wb)
        value = 0.5 * np.sum((X @ np.swapaxes(Y, -1, -2) - self.target) ** 2, axis=(-2, -1))
        return value if batched else value[0]

    def grad(self, W: Any) -> np.ndarray:
        """Stacked gradient ``[(X Y^T - M) Y; (X Y^T - M)^T X]``."""
        Wb, batched = self.validate_params("W", W)
        X, Y = self.split(Wb)
        R = X @ np.swapaxes(Y, -1, -2) - self.target
        G = np.concatenate([R @ Y, np.swapaxes(R, -1, -2) @ X], axis=-2)
        return G if batched else G[0]

    def coefficients(self, W: Any, coefficients: CoefficientRequest = "all") -> np.ndarray:
        """``beta_k = a_i^T X Y^T b_j`` for the requested pairs: ``(K,)`` or ``(B, K)``."""
        Wb, batched = self.validate_params("W", W)
        X, Y = self.split(Wb)
        left, right = self.basis()
        pairs = self.coefficient_pairs(coefficients)
        P = np.einsum("mi,bmw->biw", left, X)
        Q = np.einsum("nj,bnw->bjw", right, Y)
        out = np.einsum("bkw,bkw->bk", P[:, pairs[:, 0]], Q[:, pairs[:, 1]])
        return out if batched else out[0]

    def coefficient_gradients(self, W: Any, pairs: np.ndarray) -> np.ndarray:
        """Stacked ``[a_i (b_j^T Y); b_j (a_i^T X)]`` = grad of ``beta_ij`` for each pair: ``(K, m + n, r')``."""
        W = as_float_array("W", W, shape=(self.m + self.n, None))
        X, Y = self.split(W)
        left, right = self.basis()
        a, b = left[:, pairs[:, 0]].T, right[:, pairs[:, 1]].T  # (K, m), (K, n)
        gX = a[:, :, None] * (b @ Y)[:, None, :]
        gY = b[:, :, None] * (a @ X)[:, None, :]
        return np.concatenate([gX, gY], axis=1)

    def coefficient_pairs(self, coefficients: CoefficientRequest) -> np.ndarray:
        return resolve_pairs(coefficients, self.rank, self.m, self.n)

    def eigenbasis(self) -> np.ndarray:
        """``diag(A_full, B_full) (m + n, m + n)``: ``[X; Y] -> [A_full^T X; B_full^T Y]`` (built once)."""
        Q: np.ndarray | None = self.__dict__.get("_stacked_bases")
        if Q is None:
            left, right = self.basis()
            Q = np.zeros((self.m + self.n, self.m + self.n))
            Q[: self.m, : self.m], Q[self.m :, self.m :] = left, right
            self._stacked_bases = Q
        return Q

    def build_eigenbasis_kernel(self, width: int, coefficients: CoefficientRequest) -> Any:
        """In the singular bases the target is ``diag(sigma) (m, n)`` and ``a_i``, ``b_j`` are ``e_i``,
        ``e_j``: a step costs O((m + n) r'^2)."""
        pairs = self.coefficient_pairs(coefficients)
        left, li = _axes(pairs[:, 0], self.m)
        right, ri = _axes(pairs[:, 1], self.n)
        return _core.AsymmetricMatrixFactorizationKernel(
            self.m,
            self.n,
            width,
            diagonal=self._singular_values,
            left_basis=left,
            right_basis=right,
            pairs=np.stack([li, ri], axis=1),
        )

    def build_kernel(self, width: int, coefficients: CoefficientRequest) -> Any:
        pairs = self.coefficient_pairs(coefficients)
        if pairs.shape[0] == 0:
            left, right = np.zeros((self.m, 0)), np.zeros((self.n, 0))
            remapped = np.zeros((0, 2), dtype=np.int64)
        else:
            signal_only = pairs.max() < self.rank
            full_left, full_right = (self.left, self.right) if signal_only else self.basis()
            left, li = _sub_basis(full_left, pairs[:, 0])
            right, ri = _sub_basis(full_right, pairs[:, 1])
            remapped = np.stack([li, ri], axis=1)
        factors: dict[str, Any] = (
            {"left": self.left, "weights": self.sigma, "right": self.right}
            if self.is_factored
            else {"dense": self._dense}
        )
        return _core.AsymmetricMatrixFactorizationKernel(
            self.m, self.n, width, left_basis=left, right_basis=right, pairs=remapped, **factors
        )
