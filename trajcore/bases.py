"""Orthonormal bases of functions on a probe set, and projections onto them (PAPERS.md sections 1 and 4).

On a probe set of n points, functions are arrays of their values and the inner product is the
empirical one, ``<f, g> = (1/n) sum_x <f(x), g(x)>``. A :class:`Basis` holds k functions that are
orthonormal for it, ``(1/n) sum_x phi_i(x) phi_j(x) = delta_ij``, either scalar (values ``(n, k)``)
or vector-valued with C outputs (values ``(n, C, k)``). Projections of a stack of snapshots
(the recorded outputs of a run) go through the C++ kernel ``trajcore._core.project``.
The object itself and :class:`StreamingProjection` are defined in :mod:`trajcore.basis` (which the
training loop uses without these constructors) and re-exported here.

Constructors
------------
* :func:`conjugate_kernel_basis` -- eigenbasis of the conjugate kernel ``Phi Phi^T`` of features
  ``Phi (n, p)`` (after training, at initialization, from another run or an earlier checkpoint).
* :func:`output_basis` -- the paper's vector-valued construction (step 4):
  ``Psi_i = a_i (x) (U b_i) sqrt(n)``.
* :func:`output_principal_basis` -- its closed form (step 5): principal components of the final outputs.
* :func:`ntk_basis` -- eigenbasis of the empirical neural tangent kernel of a built-in MLP.
* :func:`legendre_basis`, :func:`hermite_basis` -- polynomials of a 1-D input, orthonormalised on
  the probe set.
* :func:`user_basis` -- any matrix, orthonormalised by QR.

The last-layer bias rule
------------------------
A last layer with bias computes ``f(x) = W phi(x) + b``, which lies in the span of the features
*and the constant function*. Every feature-based constructor therefore takes ``constant=True`` to
append a constant feature (a column of ones) to ``Phi`` before building the basis; for a
:class:`~trajcore.network.NetworkRun` the rule is applied automatically from ``run.output_bias``.
Without it, outputs with a non-zero bias are not in the feature span and the step-4 construction
loses their constant part.

Non-orthonormal user bases
--------------------------
``Basis(values)`` raises ``ValueError`` when the values are not orthonormal on the probe set (to
``1e-8``); :func:`user_basis` accepts any full-rank matrix, orthonormalises it by QR (keeping the
span of every leading set of columns) and warns when it had to change it. A rank-deficient matrix
raises ``ValueError``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ._memory import check_allocation
from ._validation import as_float_array, as_nonnegative_int, as_positive_float, as_positive_int
from .basis import ORTHONORMAL_TOLERANCE, Basis, StreamingProjection
from .network import MLP, NetworkRun

__all__ = [
    "Basis",
    "StreamingProjection",
    "conjugate_kernel_basis",
    "output_basis",
    "output_principal_basis",
    "run_output_basis",
    "project_run",
    "check_run_basis",
    "ntk_basis",
    "legendre_basis",
    "hermite_basis",
    "user_basis",
    "ORTHONORMAL_TOLERANCE",
]


def check_run_basis(run: NetworkRun, basis: Basis) -> None:
    """``TypeError``/``ValueError`` unless ``basis`` fits ``run``: ``basis.n`` equals the run's probe
    points n (``run.outputs`` is (T, n, C)) and, for a vector-valued basis, ``basis.output_dim`` equals C."""
    if not isinstance(run, NetworkRun):
        raise TypeError(f"run: expected a trajcore.network.NetworkRun, got {type(run).__name__}")
    if not isinstance(basis, Basis):
        raise TypeError(f"basis: expected a trajcore.bases.Basis, got {type(basis).__name__}")
    if run.outputs is None:
        raise ValueError("run: it did not record probe outputs (record_outputs=False); use run.coefficients")
    n, C = run.outputs.shape[1:]
    if basis.n != n:
        raise ValueError(f"basis: defined on {basis.n} probe points, the run's probe set has {n}")
    if basis.vector_valued and basis.output_dim != C:
        raise ValueError(f"basis: has {basis.output_dim} outputs per point, the run's network has {C}")


def project_run(run: NetworkRun, basis: Basis, n_threads: int | None = None) -> np.ndarray:
    """Coefficients ``beta_i(t) = (1/n) sum_x <F_t(x), phi_i(x)>`` of a run's recorded outputs.

    Returns (T, k) for a vector-valued basis, (T, C, k) for a scalar basis and C > 1 outputs
    (one coefficient per output), (T, k) for a scalar basis and C = 1.
    """
    check_run_basis(run, basis)
    assert run.outputs is not None
    coefficients = basis.project(run.outputs, n_threads=n_threads)
    if not basis.vector_valued and coefficients.ndim == 3 and coefficients.shape[1] == 1:
        return coefficients[:, 0, :]
    return coefficients


# -- helpers ----------------------------------------------------------------------------------------


def _orthonormal_columns(matrix: np.ndarray, what: str) -> np.ndarray:
    """``Q (rows, k)`` with orthonormal columns from a thin QR of ``matrix`` with ``diag(R) > 0``.

    The sign rule keeps each column's direction, and the span of every leading set of columns is
    the span of the same columns of ``matrix``. A second QR pass brings ``Q^T Q`` to the identity
    within a few ulps even for ill-conditioned input. Rank deficiency raises ``ValueError``.
    """
    rows, k = matrix.shape
    if k > rows:
        raise ValueError(f"{what}: {k} functions cannot be orthonormal on {rows} values")
    q, r = np.linalg.qr(matrix)
    d = np.abs(np.diag(r))
    if d.size and (d.max() == 0 or d.min() <= d.max() * max(rows, k) * np.finfo(float).eps * 10):
        raise ValueError(f"{what}: the columns are linearly dependent (rank deficient); drop redundant columns")
    q = q * np.sign(np.diag(r))
    q2, r2 = np.linalg.qr(q)
    return q2 * np.sign(np.diag(r2))


def _row_blocks(n: int, width: int) -> list[slice]:
    """Row slices of about 8 MiB of a ``(n, width)`` matrix: keeps temporaries small."""
    step = max(1, (1 << 20) // max(width, 1))
    return [slice(start, min(n, start + step)) for start in range(0, n, step)]


def _ck_left_vectors(features: np.ndarray, rtol: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Left singular vectors ``U (n, r)``, singular values ``s (r,)`` of ``Phi (n, p)``, and the
    measured orthonormality error ``max |U^T U - I|``.

    Method (cost 2 n p^2 + n r^2 multiply-adds, against about 4 n p^2 for an SVD; memory O(n r + p^2)
    on top of Phi, which is never copied): eigen-decompose the p x p Gram ``Phi^T Phi = V S^2 V^T``,
    keep ``s_i > rtol * s_1``, form ``U = Phi V S^-1`` row block by row block, and measure
    ``U^T U``. Rounding leaves ``U^T U - I`` of order ``eps (s_1 / s_r)^2``; when that exceeds
    1e-13 (ill-conditioned features), one Cholesky-QR pass ``U <- U R^-1`` with ``R^T R = U^T U``
    (2 n r^2 more) restores orthonormality to rounding. Directions below ``sqrt(eps) s_1`` cannot
    be resolved through the Gram matrix, hence the default ``rtol``.
    """
    n, p = features.shape
    gram = features.T @ features  # syrk: n p^2 / 2 multiply-adds
    eigenvalues, vectors = np.linalg.eigh(gram)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, vectors = eigenvalues[order], vectors[:, order]
    s = np.sqrt(np.clip(eigenvalues, 0.0, None))
    if s.size == 0 or s[0] == 0:
        raise ValueError("features: all features are zero on the probe set; there is no conjugate-kernel basis")
    keep = s > rtol * s[0]
    s, vectors = s[keep], vectors[:, keep]
    r = s.size
    check_allocation("conjugate-kernel basis", 8.0 * n * r)
    u = np.empty((n, r))
    projector = vectors / s
    for rows in _row_blocks(n, p):
        np.matmul(features[rows], projector, out=u[rows])
    identity = np.eye(r)
    u_gram = u.T @ u
    error = float(np.max(np.abs(u_gram - identity)))
    if error > 1e-13:
        inverse = np.linalg.inv(np.linalg.cholesky(u_gram).T)  # R^-1, R upper with R^T R = U^T U
        for rows in _row_blocks(n, r):
            u[rows] = u[rows] @ inverse
        error = float(np.max(np.abs(u.T @ u - identity)))
    return u, s, error


def _as_features(features: Any, constant: bool) -> np.ndarray:
    phi = as_float_array("features", features, ndim=2)
    if phi.shape[0] == 0 or phi.shape[1] == 0:
        raise ValueError(f"features: expected a non-empty (n, p) matrix, got shape {phi.shape}")
    if constant:
        phi = np.hstack([phi, np.ones((phi.shape[0], 1))])
    return phi


# -- constructors -----------------------------------------------------------------------------------


def conjugate_kernel_basis(
    features: Any, *, constant: bool = False, rtol: float = 1e-7, k: int | None = None, name: str = "ck"
) -> Basis:
    """Eigenbasis of the conjugate kernel ``Phi Phi^T`` on the probe set (scalar functions).

    Parameters
    ----------
    features : (n, p) float64
        Penultimate features on the probe set (after training, at initialization, from another run
        or from a checkpoint: the basis is whatever these features are).
    constant : bool
        Append a constant feature first (the last-layer bias rule, see the module docstring).
    rtol : float
        Directions with singular value ``<= rtol * s_1`` are dropped (numerically null).
    k : int, optional
        Keep the top k functions.

    Returns
    -------
    Basis with values ``sqrt(n) U (n, r)``, ordered by decreasing singular value
    (``metadata["singular_values"]``). Costs O(n p^2); see :func:`_ck_left_vectors`.
    """
    phi = _as_features(features, constant)
    rtol = as_positive_float("rtol", rtol)
    u, s, error = _ck_left_vectors(phi, rtol)
    if k is not None:
        k = as_positive_int("k", k)
        u, s = u[:, :k], s[:k]  # a subset of orthonormal columns is orthonormal
    u *= math.sqrt(phi.shape[0])  # (1/n) (sqrt(n) U)^T (sqrt(n) U) = U^T U
    metadata = {"kind": "conjugate_kernel", "constant": constant, "singular_values": s.tolist()}
    return Basis._verified(u, error, name, metadata)


def output_basis(
    outputs: Any,
    features: Any,
    *,
    constant: bool = False,
    rtol: float = 1e-7,
    k: int | None = None,
    name: str = "ck_output",
) -> Basis:
    """The paper's vector-valued conjugate-kernel basis (PAPERS.md section 4, step 4).

    With ``Phi = U S V^T`` (features, thin SVD) and ``B = F^T U / sqrt(n) = a diag(s) b^T`` (C x r),
    basis function i is ``Psi_i = a_i (x) (U b_i) sqrt(n)``, i.e. ``Psi_i(x)_c = a_i[c] (U b_i)[x] sqrt(n)``,
    and the coefficient of ``F`` itself on it is ``s_i``. The pair ``(a_i, b_i)`` is defined up to a
    joint sign, which leaves ``Psi_i`` unchanged.

    Parameters
    ----------
    outputs : (n, C) float64
        The outputs F that pick the directions (the final outputs for the after-training basis).
    features : (n, p) float64
        Features whose conjugate kernel gives U.
    constant : bool
        Append a constant feature (the last-layer bias rule).
    rtol : float
        Feature directions below ``rtol * s_1`` are dropped.
    k : int, optional
        Keep the top k functions (at most ``min(C, rank Phi)``).

    Returns
    -------
    Basis with values ``(n, C, k)``; ``metadata["singular_values"]`` holds the s_i.
    """
    phi = _as_features(features, constant)
    n = phi.shape[0]
    f = as_float_array("outputs", outputs, ndim=2)
    if f.shape[0] != n:
        raise ValueError(f"outputs: expected {n} rows (one per probe point, as features), got shape {f.shape}")
    u, _, _ = _ck_left_vectors(phi, as_positive_float("rtol", rtol))
    b_matrix = (f.T @ u) / math.sqrt(n)
    a, s, bt = np.linalg.svd(b_matrix, full_matrices=False)
    keep = s > s[0] * 1e-12 if s.size and s[0] > 0 else np.zeros(s.size, dtype=bool)
    if not np.any(keep):
        raise ValueError("outputs: the outputs have no component in the feature span")
    a, s, bt = a[:, keep], s[keep], bt[keep]
    if k is not None:
        k = as_positive_int("k", k)
        a, s, bt = a[:, :k], s[:k], bt[:k]
    ub = u @ bt.T  # (n, k)
    values = math.sqrt(n) * a[None, :, :] * ub[:, None, :]
    return Basis(values, name=name, metadata={"kind": "output_ck", "constant": constant, "singular_values": s.tolist()})


def output_principal_basis(outputs: Any, *, k: int | None = None, name: str = "output_pca") -> Basis:
    """Closed form of :func:`output_basis` (PAPERS.md section 4, step 5): no features needed.

    With ``(1/n) F^T F = sum_i s_i^2 a_i a_i^T``, basis function i is ``Psi_i = a_i (x) (F a_i) / s_i``;
    the coefficient of a snapshot ``F_t`` is ``a_i^T F_t^T F a_i / (n s_i)``. It equals the step-4
    construction whenever the outputs lie in the span of the features.

    outputs : (n, C) float64. Returns a Basis with values ``(n, C, k)``.
    """
    f = as_float_array("outputs", outputs, ndim=2)
    n = f.shape[0]
    eigenvalues, a = np.linalg.eigh(f.T @ f / n)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, a = eigenvalues[order], a[:, order]
    s = np.sqrt(np.clip(eigenvalues, 0.0, None))
    if s.size == 0 or s[0] == 0:
        raise ValueError("outputs: all outputs are zero; there are no principal components")
    keep = s > s[0] * 1e-7  # below ~sqrt(eps) an eigen-direction of F^T F is not resolved
    a, s = a[:, keep], s[keep]
    if k is not None:
        k = as_positive_int("k", k)
        a, s = a[:, :k], s[:k]
    g = (f @ a) / s  # (n, k): orthonormal up to the eigen-solver's accuracy
    values = a[None, :, :] * g[:, None, :]
    # Polish to orthonormality in the (n C)-space; the sign rule of the QR leaves each Psi_i in place.
    flat = math.sqrt(n) * _orthonormal_columns(values.reshape(-1, values.shape[-1]), "outputs")
    return Basis(flat.reshape(values.shape), name=name, metadata={"kind": "output_pca", "singular_values": s.tolist()})


def run_output_basis(
    run: NetworkRun,
    *,
    features_step: int | None = None,
    features_from: NetworkRun | None = None,
    outputs_step: int | None = None,
    k: int | None = None,
    name: str | None = None,
) -> Basis:
    """The step-4 basis of a recorded run, with the bias rule from ``run.output_bias``.

    run : NetworkRun
        Its final outputs pick the directions (and its features, unless told otherwise).
    features_step : int, optional
        Use the features recorded at this step (e.g. 0: the conjugate kernel at initialization).
    features_from : NetworkRun, optional
        Use another run entirely (its final outputs and features: a basis from a different run,
        which must share the probe set).
    outputs_step : int, optional
        Pick the directions from the outputs recorded at this step instead of the final ones.
        ``features_step=0, outputs_step=0`` is the at-initialization baseline that knows nothing
        of the trained network: features *and* directions of step 0.
    """
    for arg, value in (("run", run), ("features_from", features_from)):
        if (value is not None or arg == "run") and not isinstance(value, NetworkRun):
            raise TypeError(f"{arg}: expected a trajcore NetworkRun, got {type(value).__name__}")
    source = run if features_from is None else features_from
    phi = source.features_at(features_step)
    if outputs_step is None:
        outputs = source.final_outputs
    else:
        hits = np.flatnonzero(source.steps == int(outputs_step))
        if hits.size == 0 or source.outputs is None:
            raise KeyError(f"outputs_step: outputs were recorded at steps {source.steps.tolist()}, not {outputs_step}")
        outputs = source.outputs[hits[0]]
    default = "ck_final" if features_step is None else f"ck_step{features_step}"
    if outputs_step is not None:
        default += f"_outputs{outputs_step}"
    return output_basis(outputs, phi, constant=source.output_bias, k=k, name=name or default)


def ntk_basis(
    model: MLP,
    parameters: Any,
    inputs: Any,
    *,
    vector_valued: bool = False,
    k: int | None = None,
    rtol: float = 1e-10,
    name: str = "ntk",
) -> Basis:
    """Eigenbasis of the empirical neural tangent kernel of a built-in MLP on the probe set.

    The kernel is :meth:`MLP.ntk <trajcore.network.MLP.ntk>` on ``inputs (n, d)`` at
    ``parameters (P,)``: ``vector_valued=False`` the output-traced kernel ``sum_c K[(., c), (., c)]``
    (n x n, scalar basis), ``True`` the full (n C x n C) kernel. Cost O(C^2 n^2 sum width) plus the
    eigen-decomposition.

    Returns a Basis of the eigenvectors with eigenvalue ``> rtol * lambda_max``, in decreasing order
    (``metadata["eigenvalues"]``).
    """
    if not isinstance(model, MLP):
        raise TypeError(f"model: expected trajcore.network.MLP, got {type(model).__name__}")
    kernel = model.ntk(parameters, inputs, vector_valued=vector_valued)
    n, C = kernel.shape[0], model.output_dim
    matrix = kernel.reshape(n * C, n * C) if vector_valued else kernel
    eigenvalues, vectors = np.linalg.eigh(matrix)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, vectors = eigenvalues[order], vectors[:, order]
    keep = eigenvalues > as_positive_float("rtol", rtol) * eigenvalues[0]
    eigenvalues, vectors = eigenvalues[keep], vectors[:, keep]
    if k is not None:
        k = as_positive_int("k", k)
        eigenvalues, vectors = eigenvalues[:k], vectors[:, :k]
    values = math.sqrt(n) * vectors
    if vector_valued:
        values = values.reshape(n, C, -1)
    return Basis(
        values,
        name=name,
        metadata={"kind": "ntk", "vector_valued": vector_valued, "eigenvalues": eigenvalues.tolist()},
    )


def _one_dimensional(name: str, x: Any) -> np.ndarray:
    v = as_float_array(name, x, ndim=(1, 2))
    if v.ndim == 2:
        if v.shape[1] != 1:
            raise ValueError(f"{name}: expected 1-D inputs (n,) or (n, 1), got shape {v.shape}")
        v = v[:, 0]
    return v


def legendre_basis(
    x: Any, degree: int, *, interval: tuple[float, float] | None = None, name: str = "legendre"
) -> Basis:
    """Legendre polynomials ``P_0..P_degree`` of a 1-D input, orthonormalised on the probe set.

    x : (n,) or (n, 1) float64. ``interval`` (default ``(min x, max x)``) is mapped to [-1, 1].
    QR keeps the degree order: function j spans the polynomials of degree <= j. Returns (n, degree + 1).
    """
    v = _one_dimensional("x", x)
    degree = as_nonnegative_int("degree", degree)
    lo, hi = (float(v.min()), float(v.max())) if interval is None else (float(interval[0]), float(interval[1]))
    if not hi > lo:
        raise ValueError(f"interval: expected lo < hi, got ({lo}, {hi})")
    t = (2.0 * v - (lo + hi)) / (hi - lo)
    matrix = np.polynomial.legendre.legvander(t, degree)
    values = math.sqrt(v.size) * _orthonormal_columns(matrix, "x (too few distinct points for this degree)")
    return Basis(values, name=name, metadata={"kind": "legendre", "degree": degree, "interval": [lo, hi]})


def hermite_basis(x: Any, degree: int, *, name: str = "hermite") -> Basis:
    """Probabilists' Hermite polynomials ``He_0..He_degree`` of a 1-D input, orthonormalised on the probe set.

    x : (n,) or (n, 1) float64 (natural for standard-normal inputs). Returns (n, degree + 1).
    """
    v = _one_dimensional("x", x)
    degree = as_nonnegative_int("degree", degree)
    matrix = np.polynomial.hermite_e.hermevander(v, degree)
    values = math.sqrt(v.size) * _orthonormal_columns(matrix, "x (too few distinct points for this degree)")
    return Basis(values, name=name, metadata={"kind": "hermite", "degree": degree})


def user_basis(matrix: Any, *, name: str = "user") -> Basis:
    """Any full-rank ``(n, k)`` or ``(n, C, k)`` matrix of function values as an orthonormal basis.

    An already orthonormal matrix (to 1e-8) is kept as is (its columns only polished by QR); any
    other is orthonormalised by QR with a ``UserWarning`` saying so (the span of each leading set of
    columns is kept). A rank-deficient matrix raises ``ValueError``.
    """
    m = as_float_array("matrix", matrix, ndim=(2, 3))
    n, k = m.shape[0], m.shape[-1]
    flat = m.reshape(-1, k)
    gram = flat.T @ flat / n
    error = float(np.max(np.abs(gram - np.eye(k)))) if k else 0.0
    if error > ORTHONORMAL_TOLERANCE:
        warnings.warn(
            f"matrix: not orthonormal on the probe set (max |Gram - I| = {error:.2e}); orthonormalising by QR",
            UserWarning,
            stacklevel=2,
        )
    values = math.sqrt(n) * _orthonormal_columns(flat, "matrix")
    return Basis(
        values.reshape(m.shape),
        name=name,
        metadata={"kind": "user", "orthonormalised": error > ORTHONORMAL_TOLERANCE},
    )
