"""Symmetric tensors and orthogonal symmetric tensor decomposition (PAPERS.md section 3).

:class:`SymmetricTensor` holds a symmetric order-l tensor on R^d in one of three storages:

* ``"factored"`` -- ``T = sum_k c_k z_k^{(x)l}`` from ``Z (d, r)`` and ``c (r,)``: O(d r) memory;
* ``"dense"`` -- all ``d^l`` entries;
* ``"packed"`` -- the ``C(d+l-1, l)`` distinct entries ``T[i_1 <= ... <= i_l]`` in lexicographic order of
  the sorted multi-index (the order of ``itertools.combinations_with_replacement(range(d), l)``), about
  ``d^l / l!`` values.

Its contraction ``G[:, j] = T(u_j, ..., u_j, .)`` for all columns of ``U (d, m)`` runs in the C++ core
(``csrc/tensor.cpp``): dense and packed tensors are read only at their sorted entries, once per call for
all columns, ``2 m C(d+l-1, l)`` multiply-adds.

:class:`OrthogonalTensorDecomposition` is the problem
``f(U) = || sum_j u_j^{(x)l} - T* ||_F^2`` (un-halved by default, as the paper's code; ``halved=True``
gives ``1/2`` of it) run by :func:`trajcore.run` with the Gram-form gradient
``grad = 2 l (U (U^T U)^{.(l-1)} - G)`` (``l (...)`` when halved). It records the coefficients
``beta_k = sum_j <z_k, u_j>^l`` of the target's basis; the relative error ``||T - T*|| / ||T*||`` is a
function of the exact recorded loss and is read with :meth:`OrthogonalTensorDecomposition.relative_error`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _core
from ._deprecation import deprecated_alias, old_spellings
from ._memory import check_allocation
from ._validation import as_float_array, as_nonnegative_int, as_positive_float, as_positive_int
from .matrix_factorization import complete_basis
from .problem import Problem

__all__ = ["SymmetricTensor", "OrthogonalTensorDecomposition", "packed_size"]

#: orders the core supports
MIN_ORDER, MAX_ORDER = 2, 10
_STORAGES = ("factored", "dense", "packed")

CoefficientRequest = None | bool | str | np.ndarray


def _as_order(value: Any) -> int:
    order = as_positive_int("order", value)
    if not MIN_ORDER <= order <= MAX_ORDER:
        raise ValueError(f"order: expected {MIN_ORDER} <= l <= {MAX_ORDER}, got {order}")
    return order


def packed_size(d: int, order: int) -> int:
    """Number of distinct entries ``C(d + l - 1, l)`` of a symmetric order-l tensor on R^d."""
    d = as_positive_int("d", d)
    order = _as_order(order)
    return math.comb(d + order - 1, order)


def _dense_bytes(d: int, order: int) -> int:
    return 8 * d**order


def _check_storage(storage: Any) -> str:
    if storage not in _STORAGES:
        raise ValueError(f"storage: expected one of {', '.join(map(repr, _STORAGES))}, got {storage!r}")
    return str(storage)


class SymmetricTensor:
    """A symmetric order-l tensor on R^d, factored, dense or packed (see the module docstring).

    Build one with :meth:`from_factors`, :meth:`from_dense` or :meth:`from_packed`; convert with
    :meth:`to_dense`, :meth:`to_packed` or :meth:`with_storage`. Every conversion checks the memory it
    needs first (``trajcore.set_memory_limit``).
    """

    #: ``C(d + l - 1, l)``, the number of distinct entries (same as :func:`packed_size`)
    packed_size = staticmethod(packed_size)

    def __init__(self, core: Any, factors: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        if not isinstance(core, _core.SymmetricTensorCore):
            raise TypeError("SymmetricTensor: use from_factors, from_dense or from_packed")
        self._core = core
        self._factors = factors

    # -- construction --------------------------------------------------------------------------------

    @classmethod
    def from_factors(cls, Z: Any, c: Any, order: int) -> SymmetricTensor:
        """``T = sum_k c_k z_k^{(x)l}`` from ``Z (d, r)`` (columns z_k, often orthonormal), ``c (r,)``."""
        order = _as_order(order)
        Z = as_float_array("Z", Z, ndim=2)
        c = as_float_array("c", c, ndim=1)
        if Z.shape[0] == 0 or Z.shape[1] == 0 or c.shape[0] != Z.shape[1]:
            raise ValueError(f"Z, c: expected Z (d, r) and c (r,) with d, r >= 1, got {Z.shape} and {c.shape}")
        return cls(_core.SymmetricTensorCore.from_factors(Z, c, order), (Z.copy(), c.copy()))

    @classmethod
    def from_dense(cls, T: Any, check_symmetric: bool = True, tol: float = 1e-10) -> SymmetricTensor:
        """From all entries ``T (d, ..., d)`` (l axes).

        With ``check_symmetric`` (default) a tensor whose entries differ from those at the sorted index by
        more than ``tol * max|T|`` is refused; without it, the entries at sorted multi-indices
        ``T[i_1 <= ... <= i_l]`` define the tensor (the others are never read).
        """
        T = as_float_array("T", T)
        order = T.ndim
        if not MIN_ORDER <= order <= MAX_ORDER:
            raise ValueError(f"T: expected {MIN_ORDER} to {MAX_ORDER} axes (the order l), got shape {T.shape}")
        d = T.shape[0]
        if d == 0 or any(n != d for n in T.shape):
            raise ValueError(f"T: all axes must have the same non-zero length d, got shape {T.shape}")
        check_allocation(f"dense order-{order} tensor on R^{d} (copy into the core)", T.nbytes)
        if check_symmetric:
            asym = float(_core.dense_asymmetry(T, d, order))
            scale = float(np.max(np.abs(T))) if T.size else 0.0
            if not asym <= tol * max(scale, np.finfo(float).tiny):
                raise ValueError(
                    f"T: not symmetric (max |T[i] - T[sorted(i)]| = {asym:.3g} > "
                    f"{tol:g} * max|T| = {tol * scale:.3g}); symmetrize it or pass check_symmetric=False"
                )
        return cls(_core.SymmetricTensorCore.from_dense(T, d, order))

    @classmethod
    def from_packed(cls, values: Any, d: int, order: int) -> SymmetricTensor:
        """From the ``C(d+l-1, l)`` distinct entries ``values`` in packed (sorted multi-index) order."""
        d = as_positive_int("d", d)
        order = _as_order(order)
        size = packed_size(d, order)
        values = as_float_array("values", values, ndim=1)
        if values.shape[0] != size:
            raise ValueError(
                f"values: a packed order-{order} tensor on R^{d} has "
                f"C({d}+{order}-1, {order}) = {size} entries, "
                f"got {values.shape[0]}"
            )
        check_allocation(f"packed order-{order} tensor on R^{d}", 8 * size)
        return cls(_core.SymmetricTensorCore.from_packed(values, d, order))

    # -- description ----------------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        """The dimension d."""
        return int(self._core.dim)

    @property
    def order(self) -> int:
        """The order l."""
        return int(self._core.order)

    @property
    def storage(self) -> str:
        """``"factored"``, ``"dense"`` or ``"packed"``."""
        return str(self._core.storage)

    @property
    def factors(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(Z (d, r), c (r,))`` of a factored tensor, else None."""
        return self._factors

    @property
    def nbytes(self) -> int:
        """Bytes the core holds for the tensor's values."""
        if self.storage == "factored":
            Z, c = self._factors  # type: ignore[misc]
            return int(Z.nbytes + c.nbytes)
        if self.storage == "dense":
            return _dense_bytes(self.dim, self.order)
        return 8 * packed_size(self.dim, self.order)

    def __repr__(self) -> str:
        return f"SymmetricTensor(d={self.dim}, order={self.order}, storage={self.storage!r})"

    # -- conversions ---------------------------------------------------------------------------------

    def to_dense(self) -> np.ndarray:
        """All entries, shape ``(d,) * l`` float64 (memory checked first)."""
        d, order = self.dim, self.order
        check_allocation(f"dense order-{order} tensor on R^{d}", _dense_bytes(d, order))
        return np.asarray(self._core.to_dense()).reshape((d,) * order)

    def to_packed(self) -> np.ndarray:
        """The distinct entries, shape ``(C(d+l-1, l),)`` float64, in packed order."""
        check_allocation(f"packed order-{self.order} tensor on R^{self.dim}", 8 * packed_size(self.dim, self.order))
        return np.asarray(self._core.to_packed())

    def with_storage(self, storage: str) -> SymmetricTensor:
        """The same tensor in ``storage`` (``"dense"`` or ``"packed"``; ``"factored"`` only if already so)."""
        storage = _check_storage(storage)
        if storage == self.storage:
            return self
        if storage == "dense":
            check_allocation(f"dense order-{self.order} tensor on R^{self.dim}", _dense_bytes(self.dim, self.order))
            return SymmetricTensor(self._core.as_dense())
        if storage == "packed":
            size = packed_size(self.dim, self.order)
            check_allocation(f"packed order-{self.order} tensor on R^{self.dim}", 8 * size)
            return SymmetricTensor(self._core.as_packed())
        raise ValueError("storage: a dense or packed tensor cannot be converted to factored form")

    # -- contractions ---------------------------------------------------------------------------------

    def _columns(self, U: Any) -> tuple[np.ndarray, bool]:
        U = as_float_array("U", U, ndim=(1, 2))
        if U.shape[0] != self.dim:
            raise ValueError(f"U: expected {self.dim} rows (the tensor's dimension d), got shape {U.shape}")
        return (U[:, None] if U.ndim == 1 else U), U.ndim == 1

    def contract(self, U: Any, n_threads: int | None = None) -> np.ndarray:
        """``G[:, j] = T(u_j, ..., u_j, .)`` (l - 1 contractions) for every column of ``U (d, m)``.

        Returns ``(d, m)`` (``(d,)`` for a vector ``U (d,)``). Cost: O(d r m) factored,
        ``2 m C(d+l-1, l)`` multiply-adds dense or packed; ``n_threads`` splits the columns (the result
        does not depend on it).
        """
        from .config import resolve_threads

        Ucols, vector = self._columns(U)
        G = np.asarray(self._core.contract(Ucols, resolve_threads(n_threads)))
        return G[:, 0] if vector else G

    def full_contract(self, U: Any, n_threads: int | None = None) -> Any:
        """``T(u_j, ..., u_j)`` for every column of ``U (d, m)``: ``(m,)`` (a float for ``U (d,)``)."""
        from .config import resolve_threads

        Ucols, vector = self._columns(U)
        out = np.asarray(self._core.full_contract(Ucols, resolve_threads(n_threads)))
        return float(out[0]) if vector else out

    def norm(self) -> float:
        """Frobenius norm ``||T||_F`` (factored: ``sqrt(sum_{k,k'} c_k c_k' <z_k, z_k'>^l)``)."""
        return math.sqrt(max(float(self._core.norm_squared), 0.0))


def _symmetric_noise_packed(d: int, order: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Packed entries of the symmetric part of an i.i.d. ``N(0, scale^2)`` tensor: the entry at sorted
    index a is ``N(0, scale^2 / N(a))`` with N(a) its number of distinct permutations, so that
    ``E ||E||_F^2 = scale^2 C(d+l-1, l)``."""
    mult = np.asarray(_core.packed_multiplicities(d, order))
    return scale * rng.standard_normal(mult.shape[0]) / np.sqrt(mult)


class OrthogonalTensorDecomposition(Problem):
    """``f(U) = || sum_{j<=m} u_j^{(x)l} - T* ||_F^2`` for ``U (d, m)`` (``halved=True``: 1/2 of it).

    Parameters
    ----------
    target : SymmetricTensor or (d, ..., d) float64
        The target ``T*``. A factored target with orthonormal ``Z`` makes a step O(d r m); a dense or
        packed one (noisy, measured, not low rank) uses the core's contraction.
    basis : (d, q) float64, optional
        Orthonormal columns ``z_k`` whose coefficients ``beta_k = sum_j <z_k, u_j>^l`` are recorded.
        Default for a factored target: ``Z`` completed to an orthonormal basis of R^d.
    rank : int, optional
        Number of leading basis vectors that are signal (default: r of a factored target, else q).
    sigma : (rank,) float64, optional
        The target's spectrum, the planted coefficients ``c_k`` of ``T* = sum_k c_k z_k^{(x)l}``, when
        the target is given dense or packed (a factored target has its own); used by the analysis:
        predicted plateaus, learning order. ``weights=`` (and the attribute ``.weights``) is its
        deprecated spelling, kept one release.
    halved : bool
        Use ``1/2 ||.||^2`` (gradient ``l (U A^{.(l-1)} - G)``) instead of the paper's un-halved loss.

    Recorded by :func:`trajcore.run`: the exact loss and the coefficients ``beta_k`` of the requested basis
    vectors, labelled by pairs ``(k, k)`` (``Record(coefficients="signal")`` for the first ``rank``,
    ``"all"`` for the whole basis). The relative error ``||T - T*|| / ||T*||`` is a function of the
    loss, so it is not recorded twice: :meth:`relative_error` turns ``trajectory.loss`` into it.
    """

    name = "orthogonal_tensor_decomposition"

    #: deprecated spelling of :attr:`sigma` (warns when read)
    weights = deprecated_alias("weights", "sigma", "OrthogonalTensorDecomposition")

    @old_spellings(renamed={"weights": "sigma"})
    def __init__(
        self,
        target: Any,
        *,
        basis: Any = None,
        rank: int | None = None,
        sigma: Any = None,
        halved: bool = False,
    ) -> None:
        if not isinstance(halved, (bool, np.bool_)):
            raise TypeError(f"halved: expected a bool, got {type(halved).__name__}")
        if not isinstance(target, SymmetricTensor):
            target = SymmetricTensor.from_dense(target)
        self.target = target
        self.halved = bool(halved)
        self.d = target.dim
        self.order = target.order
        factors = target.factors
        if basis is not None:
            B = as_float_array("basis", basis, ndim=2)
            if B.shape[0] != self.d or B.shape[1] == 0:
                raise ValueError(f"basis: expected shape ({self.d}, q) with q >= 1, got {B.shape}")
            _check_orthonormal("basis", B)
            self._basis: np.ndarray | None = B
        elif factors is not None and _is_orthonormal(factors[0]):
            self._basis = complete_basis(factors[0])
        else:
            self._basis = None
        default_rank = (
            factors[1].shape[0] if factors is not None else (0 if self._basis is None else self._basis.shape[1])
        )
        self.rank = default_rank if rank is None else as_nonnegative_int("rank", rank)
        if self._basis is not None and self.rank > self._basis.shape[1]:
            raise ValueError(f"rank: at most the {self._basis.shape[1]} basis vectors, got {self.rank}")
        #: the target's spectrum ``c (rank,)``, or None when not known
        self.sigma: np.ndarray | None
        if sigma is not None:
            self.sigma = as_float_array("sigma", sigma, shape=(self.rank,))
        elif factors is not None:
            self.sigma = factors[1].copy()
        else:
            self.sigma = None
        self._dense_cache: np.ndarray | None = None

    @classmethod
    def examples(cls) -> dict[str, Problem]:
        return {
            "ostd": cls.planted(d=5, order=3, rank=2, seed=6),
            "ostd_packed": cls.planted(d=4, order=4, rank=2, storage="packed", seed=7),
        }

    @classmethod
    @old_spellings(renamed={"c": "sigma"})
    def planted(
        cls,
        d: int,
        order: int,
        rank: int,
        sigma: Any = None,
        *,
        storage: str = "factored",
        noise: float = 0.0,
        seed: int | None = 0,
        halved: bool = False,
    ) -> OrthogonalTensorDecomposition:
        """A random target ``T* = sum_{k<=rank} c_k z_k^{(x)l} (+ E)``, ``c = sigma``.

        ``Z`` is orthonormal (QR of a Gaussian from ``seed``); ``sigma`` defaults to ``rank, ..., 1``.
        ``noise > 0`` adds the symmetric part ``E`` of an i.i.d. ``N(0, noise^2)`` tensor (drawn in packed
        form from the same seed), which needs ``storage="dense"`` or ``"packed"``. ``c=`` is the
        deprecated spelling of ``sigma=``, kept one release.
        """
        d = as_positive_int("d", d)
        order = _as_order(order)
        rank = as_positive_int("rank", rank)
        storage = _check_storage(storage)
        noise = as_positive_float("noise", noise, allow_zero=True)
        if rank > d:
            raise ValueError(f"rank: orthonormal components need rank <= d = {d}, got {rank}")
        if noise > 0 and storage == "factored":
            raise ValueError("storage: a noisy target is not low rank; use storage='dense' or 'packed'")
        coef = np.arange(rank, 0, -1, dtype=float) if sigma is None else as_float_array("sigma", sigma, shape=(rank,))
        if storage == "dense":
            check_allocation(f"dense order-{order} tensor on R^{d}", _dense_bytes(d, order))
        if storage != "factored":  # both storages pass through the packed values
            check_allocation(f"packed order-{order} tensor on R^{d}", 8 * packed_size(d, order))
        rng = np.random.default_rng(seed)
        Z, _ = np.linalg.qr(rng.standard_normal((d, rank)))
        factored = SymmetricTensor.from_factors(Z, coef, order)
        basis = complete_basis(Z)
        if storage == "factored":
            return cls(factored, basis=basis, halved=halved)
        packed = factored.to_packed()
        if noise > 0:
            packed = packed + _symmetric_noise_packed(d, order, noise, rng)
        target = SymmetricTensor.from_packed(packed, d, order)
        if storage == "dense":
            target = target.with_storage("dense")
        return cls(target, basis=basis, rank=rank, sigma=coef, halved=halved)

    # -- description --------------------------------------------------------------------------------

    def basis(self) -> np.ndarray:
        """Orthonormal basis ``(d, q)`` whose first ``rank`` columns are the target's components
        (``q = d`` for a planted target); a ``ValueError`` when the target's components are unknown
        (a dense or packed target given without ``basis=``)."""
        if self._basis is None:
            raise ValueError("basis: this target has no known components; pass basis=... to the constructor")
        return self._basis

    @property
    def target_norm(self) -> float:
        """``||T*||_F``."""
        return self.target.norm()

    @property
    def zero_loss(self) -> float:
        value = self.target_norm**2
        return 0.5 * value if self.halved else value

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "d": self.d,
            "order": self.order,
            "rank": self.rank,
            "storage": self.target.storage,
            "halved": self.halved,
            "sigma": None if self.sigma is None else self.sigma.tolist(),
        }

    def parameter_shape(self, width: int) -> tuple[int, ...]:
        return (self.d, width)

    # -- NumPy reference quantities ------------------------------------------------------------------

    def _reference_contraction(self, U: np.ndarray) -> np.ndarray:
        """``G (B, d, m)`` in NumPy, independent of the core: ``Z (c * (Z^T U)^{l-1})`` or einsums."""
        factors = self.target.factors
        if factors is not None:
            Z, c = factors
            P = np.einsum("dk,bdm->bkm", Z, U)
            return np.einsum("dk,bkm->bdm", Z, c[None, :, None] * P ** (self.order - 1))
        if self._dense_cache is None:
            self._dense_cache = self.target.to_dense()
        d = self.d
        # Contract the last axis with u_j, l - 1 times, keeping the column axis j.
        G = np.einsum("pi,bim->bpm", self._dense_cache.reshape(-1, d), U)
        for _ in range(self.order - 2):
            G = np.einsum("bpim,bim->bpm", G.reshape(G.shape[0], -1, d, G.shape[-1]), U)
        return G

    def loss(self, U: Any) -> Any:
        """Gram-form loss ``sum_{jk} <u_j,u_k>^l - 2 sum_j T*(u_j..u_j) + ||T*||^2`` (halved if set).

        ``U (d, m)`` gives a float, ``(B, d, m)`` gives ``(B,)``.
        """
        Ub, batched = self.validate_params("U", U)
        A = np.swapaxes(Ub, -1, -2) @ Ub
        G = self._reference_contraction(Ub)
        value = np.sum(A**self.order, axis=(-2, -1)) - 2 * np.sum(Ub * G, axis=(-2, -1)) + self.target_norm**2
        value = 0.5 * value if self.halved else value
        return value if batched else float(value[0])

    def grad(self, U: Any) -> np.ndarray:
        """``2 l (U (U^T U)^{.(l-1)} - G)`` (``l (...)`` when halved), same shape as U."""
        Ub, batched = self.validate_params("U", U)
        A = np.swapaxes(Ub, -1, -2) @ Ub
        G = self._reference_contraction(Ub)
        out = (1 if self.halved else 2) * self.order * (Ub @ A ** (self.order - 1) - G)
        return out if batched else out[0]

    def relative_error(self, loss: Any) -> Any:
        """``||T - T*|| / ||T*||`` from the exact loss (e.g. ``trajectory.loss``), any shape."""
        values = np.asarray(loss, dtype=float)
        squared = (2 * values if self.halved else values) / self.target_norm**2
        out = np.sqrt(np.clip(squared, 0.0, None))
        return out[()] if out.ndim == 0 else out

    def coefficients(self, U: Any, coefficients: CoefficientRequest = "signal") -> np.ndarray:
        """``beta_k = sum_j <z_k, u_j>^l`` for the requested basis vectors: ``(K,)`` or ``(B, K)``."""
        Ub, batched = self.validate_params("U", U)
        index = self.coefficient_pairs(coefficients)[:, 0]
        P = np.einsum("dk,bdm->bkm", self.basis()[:, index], Ub)
        out = np.sum(P**self.order, axis=-1)
        return out if batched else out[0]

    def coefficient_gradients(self, U: Any, pairs: Any) -> np.ndarray:
        """``grad_U beta_k = l z_k ((z_k^T U)^{.(l-1)})`` for each diagonal pair (k, k): ``(K, d, m)``.

        Gradients of different beta_k are exactly orthogonal (orthonormal z_k): gradient independence.
        """
        U = as_float_array("U", U, shape=(self.d, None))
        index = self.coefficient_pairs(np.asarray(pairs))[:, 0]
        Zk = self.basis()[:, index]  # (d, K)
        P = Zk.T @ U  # (K, m)
        return self.order * Zk.T[:, :, None] * (P ** (self.order - 1))[:, None, :]

    def coefficient_gradient_norms(self, U: Any, coefficients: CoefficientRequest = "signal") -> np.ndarray:
        """``||grad_U beta_k||_F = l sqrt(sum_j <z_k, u_j>^{2(l-1)})`` (gradient dominance): like
        :meth:`coefficients`. Gradients of different beta_k are exactly orthogonal (disjoint z_k)."""
        Ub, batched = self.validate_params("U", U)
        index = self.coefficient_pairs(coefficients)[:, 0]
        P = np.einsum("dk,bdm->bkm", self.basis()[:, index], Ub)
        out = self.order * np.sqrt(np.sum(P ** (2 * (self.order - 1)), axis=-1))
        return out if batched else out[0]

    # -- the kernel -----------------------------------------------------------------------------------

    def coefficient_pairs(self, coefficients: CoefficientRequest) -> np.ndarray:
        """``(K, 2)`` pairs ``(k, k)``: ``True``/``"signal"`` the first ``rank`` basis vectors,
        ``"all"``/``"diagonal"`` every basis vector, an integer array the listed ones; None none."""
        if coefficients is None or coefficients is False:
            return np.zeros((0, 2), dtype=np.int64)
        signal = coefficients is True or (isinstance(coefficients, str) and coefficients == "signal")
        if self._basis is None and not signal:
            raise ValueError("coefficients: this target has no basis; pass basis=... or record coefficients=None")
        q = 0 if self._basis is None else self._basis.shape[1]
        if coefficients is True or (isinstance(coefficients, str) and coefficients == "signal"):
            index = np.arange(self.rank if self._basis is not None else 0)
        elif isinstance(coefficients, str) and coefficients in ("all", "diagonal"):
            index = np.arange(q)
        elif isinstance(coefficients, str):
            raise ValueError(f"coefficients: expected 'signal', 'all', True, None or indices, got {coefficients!r}")
        else:
            raw = np.asarray(coefficients)
            if raw.dtype.kind not in "iu" or raw.ndim not in (1, 2) or (raw.ndim == 2 and raw.shape[1] != 2):
                raise ValueError(f"coefficients: expected indices (K,) or diagonal pairs (K, 2), got shape {raw.shape}")
            if raw.ndim == 2 and np.any(raw[:, 0] != raw[:, 1]):
                raise ValueError("coefficients: tensor coefficients are diagonal, pairs must be (k, k)")
            index = raw if raw.ndim == 1 else raw[:, 0]
            if index.size and (index.min() < 0 or index.max() >= q):
                raise ValueError(f"coefficients: indices must lie in [0, {q})")
        index = np.asarray(index, dtype=np.int64)
        return np.stack([index, index], axis=1)

    def build_kernel(self, width: int, coefficients: CoefficientRequest) -> Any:
        index = self.coefficient_pairs(coefficients)[:, 0]
        basis = np.zeros((self.d, 0)) if index.size == 0 else np.ascontiguousarray(self.basis()[:, index])
        return _core.OrthogonalTensorDecompositionKernel(self.target._core, width, basis, self.halved)


def _is_orthonormal(V: np.ndarray, tol: float = 1e-8) -> bool:
    return bool(np.max(np.abs(V.T @ V - np.eye(V.shape[1]))) <= tol)


def _check_orthonormal(name: str, V: np.ndarray, tol: float = 1e-8) -> None:
    err = float(np.max(np.abs(V.T @ V - np.eye(V.shape[1]))))
    if err > tol:
        raise ValueError(f"{name}: columns must be orthonormal (max |{name}^T {name} - I| = {err:.2e} > {tol:g})")
