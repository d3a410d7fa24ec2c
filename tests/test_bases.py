"""Orthonormal bases on a probe set and the projection kernel, against NumPy references."""

from __future__ import annotations

import numpy as np
import pytest

from trajcore import _core, bases
from trajcore.network import MLP


def _gram(values: np.ndarray) -> np.ndarray:
    n, k = values.shape[0], values.shape[-1]
    flat = values.reshape(-1, k)
    return flat.T @ flat / n


def _assert_orthonormal(basis: bases.Basis) -> None:
    error = np.max(np.abs(_gram(basis.values) - np.eye(basis.k)))
    assert error < 1e-12, f"{basis}: max |Gram - I| = {error:.3e}"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


# -- the paper's construction and its closed form ---------------------------------------------------


def test_vector_valued_construction_equals_closed_form(rng):
    n, p, C = 80, 12, 5
    phi = rng.standard_normal((n, p))
    final = phi @ rng.standard_normal((p, C))  # outputs in the feature span (no bias)
    snapshots = rng.standard_normal((7, n, C)) + final  # any stack of snapshots
    step4 = bases.output_basis(final, phi)
    step5 = bases.output_principal_basis(final)
    assert step4.k == step5.k == C
    np.testing.assert_allclose(step4.values, step5.values, atol=1e-10)
    np.testing.assert_allclose(step4.project(snapshots), step5.project(snapshots), atol=1e-10)
    # beta_i(T) = s_i: the final function's coefficients are the singular values of B_T.
    u = np.linalg.svd(phi, full_matrices=False)[0]
    s = np.linalg.svd(final.T @ u / np.sqrt(n), compute_uv=False)
    np.testing.assert_allclose(step4.project(final), s, atol=1e-10)
    # Independent reference for beta_i(t) = a_i^T (F_t^T U / sqrt n) b_i.
    a, _, bt = np.linalg.svd(final.T @ u / np.sqrt(n))
    reference = np.einsum("ci,tnc,nj,ij->ti", a[:, :C], snapshots, u, bt[:C]) / np.sqrt(n)
    np.testing.assert_allclose(np.abs(step4.project(snapshots)), np.abs(reference), atol=1e-10)


def test_last_layer_bias_rule_appends_a_constant_feature(rng):
    n, p, C = 90, 10, 4
    phi = np.abs(rng.standard_normal((n, p)))  # ReLU-like features: non-centred
    final = phi @ rng.standard_normal((p, C)) + rng.standard_normal(C)  # f = W phi + b
    closed = bases.output_principal_basis(final)
    with_rule = bases.output_basis(final, phi, constant=True)
    np.testing.assert_allclose(with_rule.values, closed.values, atol=1e-10)
    np.testing.assert_allclose(with_rule.project(final), closed.metadata["singular_values"], atol=1e-10)
    # Without the rule the constant part of the outputs is lost and the bases differ.
    without = bases.output_basis(final, phi, constant=False)
    assert np.max(np.abs(without.values - closed.values)) > 1e-3
    assert np.linalg.norm(without.project(final)) < np.linalg.norm(closed.project(final)) - 1e-6


def test_run_output_basis_applies_the_bias_rule_from_the_run():
    from trajcore.network import Training, train

    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 3))
    y = rng.standard_normal((40, 2))
    model = MLP(3, 2, hidden=(6,), activation="tanh", output_bias=True)
    run = train(
        model,
        x,
        y,
        Training(lr=0.05, steps=30, checkpoints=4),
        seed=1,
        initial_parameters=model.initialize(seed=1) + 0.3,
    )
    assert run.output_bias
    basis = bases.run_output_basis(run)
    np.testing.assert_allclose(basis.values, bases.output_principal_basis(run.final_outputs).values, atol=1e-10)
    _assert_orthonormal(basis)


# -- every basis is orthonormal ---------------------------------------------------------------------


def test_every_constructor_gives_an_orthonormal_basis(rng):
    n, p, C = 70, 9, 3
    phi = rng.standard_normal((n, p)) @ np.diag(np.logspace(0, -4, p))  # ill-conditioned features
    final = phi @ rng.standard_normal((p, C))
    x1 = np.sort(rng.uniform(-2, 3, n))
    model = MLP(4, C, hidden=(8, 5), activation="gelu", output_bias=True)
    theta = model.initialize(seed=2)
    inputs = rng.standard_normal((25, 4))
    with pytest.warns(UserWarning, match="orthonormalising"):
        user = bases.user_basis(rng.standard_normal((n, 6)))
    built = [
        bases.conjugate_kernel_basis(phi),
        bases.conjugate_kernel_basis(phi, constant=True),
        bases.output_basis(final, phi),
        bases.output_principal_basis(final),
        bases.ntk_basis(model, theta, inputs),
        bases.ntk_basis(model, theta, inputs, vector_valued=True),
        bases.legendre_basis(x1, 8),
        bases.hermite_basis(rng.standard_normal(n), 6),
        user,
    ]
    for basis in built:
        _assert_orthonormal(basis)


def test_conjugate_kernel_basis_spans_the_left_singular_vectors(rng):
    n, p = 120, 15
    phi = rng.standard_normal((n, p))
    basis = bases.conjugate_kernel_basis(phi)
    _assert_orthonormal(basis)  # well-conditioned: the path without the Cholesky-QR correction
    assert basis.metadata["orthonormality_error"] < 1e-13
    u, s, _ = np.linalg.svd(phi, full_matrices=False)
    np.testing.assert_allclose(basis.metadata["singular_values"], s, rtol=1e-10)
    # Same functions up to sign: |<phi_i, sqrt(n) u_j>| = delta_ij.
    overlap = np.abs(basis.values.T @ (np.sqrt(n) * u)) / n
    np.testing.assert_allclose(overlap, np.eye(p), atol=1e-9)


def test_conjugate_kernel_basis_drops_null_directions(rng):
    phi = rng.standard_normal((50, 4)) @ rng.standard_normal((4, 10))  # rank 4 in 10 columns
    assert bases.conjugate_kernel_basis(phi).k == 4


def test_ntk_basis_matches_an_explicit_jacobian(rng):
    model = MLP(3, 2, hidden=(5, 4), activation="tanh", bias=True, output_bias=True)
    theta = model.initialize(seed=4)
    x = rng.standard_normal((9, 3))
    n, C = 9, 2
    # Jacobian rows by vector-Jacobian products with one-hot cotangents.
    jac = np.zeros((n, C, model.parameter_count))
    for i in range(n):
        for c in range(C):
            cot = np.zeros((n, C))
            cot[i, c] = 1.0
            jac[i, c] = model.vjp(theta, x, cot)
    for vector_valued in (False, True):
        if vector_valued:
            kernel = jac.reshape(n * C, -1) @ jac.reshape(n * C, -1).T
        else:
            kernel = sum(jac[:, c] @ jac[:, c].T for c in range(C))
        eigenvalues, vectors = np.linalg.eigh(kernel)
        basis = bases.ntk_basis(model, theta, x, vector_valued=vector_valued)
        np.testing.assert_allclose(basis.metadata["eigenvalues"], eigenvalues[::-1][: basis.k], rtol=1e-9)
        flat = basis.values.reshape(-1, basis.k) / np.sqrt(n)
        top = vectors[:, ::-1][:, : basis.k]
        np.testing.assert_allclose(flat @ flat.T, top @ top.T, atol=1e-8)


def test_polynomial_bases_keep_the_degree_order(rng):
    x = rng.uniform(-1, 1, 200)
    legendre = bases.legendre_basis(x, 5, interval=(-1, 1))
    hermite = bases.hermite_basis(x, 5)
    for basis in (legendre, hermite):
        for j in range(6):  # function j is a polynomial of degree exactly j
            coeffs = np.polynomial.polynomial.polyfit(x, basis.values[:, j], j)
            np.testing.assert_allclose(np.polynomial.polynomial.polyval(x, coeffs), basis.values[:, j], atol=1e-9)
            assert abs(coeffs[-1]) > 1e-6
    # On a fine uniform grid the orthonormalised Legendre functions approach sqrt(2j + 1) P_j.
    grid = np.linspace(-1, 1, 4001)
    fine = bases.legendre_basis(grid, 3)
    for j in range(4):
        reference = np.sqrt(2 * j + 1) * np.polynomial.legendre.Legendre.basis(j)(grid)
        assert np.max(np.abs(fine.values[:, j] - reference)) < 2e-2


def test_user_basis_rules(rng):
    n = 40
    q = np.linalg.qr(rng.standard_normal((n, 5)))[0] * np.sqrt(n)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an orthonormal matrix is accepted silently
        kept = bases.user_basis(q)
    np.testing.assert_allclose(kept.values, q, atol=1e-12)
    skewed = q @ np.triu(rng.standard_normal((5, 5)) + 3 * np.eye(5))
    with pytest.warns(UserWarning, match="not orthonormal"):
        fixed = bases.user_basis(skewed)
    # QR keeps the span of each leading set of columns: here it recovers q up to sign.
    np.testing.assert_allclose(np.abs(fixed.values), np.abs(q), atol=1e-10)
    with pytest.raises(ValueError, match="not orthonormal"):
        bases.Basis(skewed)
    with pytest.raises(ValueError, match="linearly dependent"), pytest.warns(UserWarning):
        bases.user_basis(np.column_stack([q[:, 0], 2 * q[:, 0]]))
    vector = rng.standard_normal((n, 3, 4))
    with pytest.warns(UserWarning):
        _assert_orthonormal(bases.user_basis(vector))


# -- projections ------------------------------------------------------------------------------------


def test_projections_match_numpy(rng):
    n, C, k, T = 33, 4, 6, 11
    scalar = bases.user_basis(np.linalg.qr(rng.standard_normal((n, k)))[0] * np.sqrt(n))
    vector = bases.user_basis(np.linalg.qr(rng.standard_normal((n * C, k)))[0].reshape(n, C, k) * np.sqrt(n))
    f_scalar = rng.standard_normal((T, n))
    f_vector = rng.standard_normal((T, n, C))
    np.testing.assert_allclose(scalar.project(f_scalar), f_scalar @ scalar.values / n, atol=1e-13)
    np.testing.assert_allclose(scalar.project(f_scalar[3]), f_scalar[3] @ scalar.values / n, atol=1e-13)
    per_output = np.einsum("tnc,nk->tck", f_vector, scalar.values) / n
    np.testing.assert_allclose(scalar.project(f_vector), per_output, atol=1e-13)
    reference = np.einsum("tnc,nck->tk", f_vector, vector.values) / n
    np.testing.assert_allclose(vector.project(f_vector), reference, atol=1e-13)
    np.testing.assert_allclose(vector.project(f_vector.reshape(T, -1)), reference, atol=1e-13)
    np.testing.assert_allclose(vector.project(f_vector[2]), reference[2], atol=1e-13)
    stream = vector.streaming(T)
    for t in range(T):
        stream.push(f_vector[t])
    np.testing.assert_allclose(stream.coefficients, reference, atol=1e-13)
    with pytest.raises(ValueError, match="full"):
        stream.push(f_vector[0])


def test_projection_kernel_is_bitwise_identical_for_any_thread_count(rng):
    from threadpoolctl import threadpool_limits

    # 301 x 1200 x 40 multiply-adds is far above the BLAS threshold: the kernel still splits it into
    # register-blocked row blocks, whose bits depend neither on OpenMP's nor on BLAS's thread count.
    basis = rng.standard_normal((1200, 40))
    for T in (30, 301):
        s = rng.standard_normal((T, 1200))
        two = _core.project(s, basis, 0.5, 2)
        with threadpool_limits(1, user_api="blas"):
            one = _core.project(s, basis, 0.5, 1)
        np.testing.assert_array_equal(one, two)
        np.testing.assert_allclose(one, 0.5 * s @ basis, rtol=1e-12, atol=1e-10)
    snapshots, scalar = rng.standard_normal((5, 3000, 10)), rng.standard_normal((3000, 70))
    two = _core.project_per_output(snapshots, scalar, 0.25, 2)
    with threadpool_limits(1, user_api="blas"):
        one = _core.project_per_output(snapshots, scalar, 0.25, 1)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_allclose(one, 0.25 * np.einsum("tnc,nk->tck", snapshots, scalar), atol=1e-11)


def test_projection_errors(rng):
    basis = bases.conjugate_kernel_basis(rng.standard_normal((20, 3)))
    with pytest.raises(ValueError, match="snapshots"):
        basis.project(rng.standard_normal((4, 21)))
    vector = bases.output_principal_basis(rng.standard_normal((20, 3)))
    with pytest.raises(ValueError, match=r"\(T, 20, 3\)"):
        vector.project(rng.standard_normal((4, 20, 2)))
    with pytest.raises(ValueError, match="snapshot"):
        vector.streaming(2).push(np.zeros(7))
    with pytest.raises(ValueError, match="basis"):
        _core.project(np.zeros((3, 5)), np.zeros((4, 2)), 1.0, 1)
    with pytest.raises(ValueError, match="outputs"):
        bases.output_basis(rng.standard_normal((19, 3)), rng.standard_normal((20, 4)))
    with pytest.raises(TypeError, match="features"):
        bases.conjugate_kernel_basis(np.zeros((5, 2), dtype=complex))
    with pytest.raises(ValueError, match="k"):
        basis.top(10)
