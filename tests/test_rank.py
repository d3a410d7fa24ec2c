"""Rank measures, the small Jacobi SVD, the optimality check and the noise-comparison table."""

from __future__ import annotations

import numpy as np
import pytest

import trajcore as tc
from trajcore import _core
from trajcore.analysis import (
    compare_noise,
    effective_rank,
    global_optimality,
    numerical_rank,
    stable_rank,
    subspace_dimensions,
    subspace_rank_bound,
)


def low_rank(rng, shape, rank):
    return rng.standard_normal((*shape[:-1], rank)) @ rng.standard_normal((rank, shape[-1]))


@pytest.mark.parametrize("shape", [(10, 10), (7, 3), (3, 7), (1, 6), (6, 1), (12, 20)])
def test_jacobi_svd_matches_lapack(shape):
    rng = np.random.default_rng(sum(shape))
    for A in (rng.standard_normal(shape), low_rank(rng, shape, 1), np.zeros(shape)):
        s_ref = np.linalg.svd(A, compute_uv=False)
        s = _core.jacobi_svd(A)
        np.testing.assert_allclose(s, s_ref, rtol=0, atol=1e-14 * max(1.0, s_ref[0]))
        U, s2, V = _core.jacobi_svd(A, True)
        k = min(shape)
        np.testing.assert_allclose(s2, s, rtol=0, atol=1e-14 * max(1.0, s_ref[0]))  # two code paths
        np.testing.assert_allclose(U.T @ U, np.eye(k), atol=1e-13)
        np.testing.assert_allclose(V.T @ V, np.eye(k), atol=1e-13)
        np.testing.assert_allclose((U * s2) @ V.T, A, atol=1e-13 * max(1.0, s_ref[0]))


def test_jacobi_svd_resolves_tiny_singular_values():
    # Singular values spanning 14 orders of magnitude: one-sided Jacobi keeps them to high relative accuracy.
    rng = np.random.default_rng(1)
    Q1, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    Q2, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    sigma = np.logspace(0, -14, 8)
    s = _core.jacobi_svd((Q1 * sigma) @ Q2.T)
    np.testing.assert_allclose(s[:6], sigma[:6], rtol=1e-6)
    assert numerical_rank(s, spectrum=True, shape=(8, 8)) == 8


def test_numerical_rank_matches_numpy_batched_and_on_spectra():
    rng = np.random.default_rng(0)
    A = np.stack([low_rank(rng, (6, 9), r) for r in (1, 2, 3, 6)])
    expected = [np.linalg.matrix_rank(a) for a in A]
    np.testing.assert_array_equal(numerical_rank(A), expected)
    assert numerical_rank(A[1]) == 2 and isinstance(numerical_rank(A[1]), int)
    s = np.linalg.svd(A, compute_uv=False)
    np.testing.assert_array_equal(numerical_rank(s, spectrum=True, shape=(6, 9)), expected)
    # Absolute and relative thresholds.
    spectrum = np.array([1.0, 1e-3, 1e-7, 1e-12])
    assert numerical_rank(spectrum, spectrum=True, atol=1e-6) == 2
    assert numerical_rank(spectrum, spectrum=True, rtol=1e-10) == 3
    assert numerical_rank(spectrum, spectrum=True) == 4
    # Unsorted spectra are sorted; NaN records (diverged runs) stay NaN.
    batch = np.array([[1e-12, 1.0, 1e-3], [np.nan, np.nan, np.nan]])
    out = numerical_rank(batch, spectrum=True, atol=1e-6)
    assert out[0] == 2 and np.isnan(out[1])


def test_effective_and_stable_rank_identities():
    assert effective_rank(np.eye(5)) == pytest.approx(5.0)
    assert stable_rank(np.eye(5)) == pytest.approx(5.0)
    rng = np.random.default_rng(2)
    R1 = low_rank(rng, (4, 6), 1)
    assert effective_rank(R1) == pytest.approx(1.0, abs=1e-10)
    assert stable_rank(R1) == pytest.approx(1.0, abs=1e-12)
    A = rng.standard_normal((3, 5, 7))
    s = np.linalg.svd(A, compute_uv=False)
    p = s / s.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(effective_rank(A), np.exp(-np.sum(p * np.log(p), axis=-1)), rtol=1e-12)
    np.testing.assert_allclose(stable_rank(A), np.sum(A**2, axis=(1, 2)) / s[:, 0] ** 2, rtol=1e-12)
    np.testing.assert_allclose(effective_rank(s, spectrum=True), effective_rank(A), rtol=1e-14)
    assert effective_rank(np.zeros((3, 3))) == 0.0 and stable_rank(np.zeros((3, 3))) == 0.0
    for r in range(1, 5):  # 1 <= stable rank <= rank and 1 <= effective rank <= rank
        B = low_rank(rng, (6, 6), r)
        assert 1.0 <= stable_rank(B) <= r + 1e-9
        assert 1.0 <= effective_rank(B) <= r + 1e-9


def test_rank_errors():
    with pytest.raises(ValueError, match="rtol, atol"):
        numerical_rank(np.eye(3), rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match="A: expected a matrix"):
        numerical_rank(np.ones(3))
    with pytest.raises(ValueError, match="A: singular values must be >= 0"):
        numerical_rank(np.array([1.0, -1.0]), spectrum=True)
    with pytest.raises(TypeError, match="A:"):
        numerical_rank(np.array(["a", "b"]))
    with pytest.raises(TypeError, match="problem"):
        subspace_rank_bound(tc.SymmetricMatrixFactorization.planted(3, 1), np.zeros((3, 1)))


def test_subspace_dimensions_of_structured_starts():
    problem = tc.DeepLinearNetwork.paper_data((8, 8, 8, 8), n=50)
    np.testing.assert_array_equal(subspace_dimensions(problem, problem.truncated_init(1, seed=1)), [2, 2])
    np.testing.assert_array_equal(subspace_dimensions(problem, problem.truncated_init(3, seed=1)), [6, 6])
    assert subspace_rank_bound(problem, problem.aligned_init(3, seed=1)) == 3
    batch = problem.truncated_init(2, seed=0, batch=3)
    np.testing.assert_array_equal(subspace_rank_bound(problem, batch), [4, 4, 4])


def test_global_optimality_classifies_minimum_saddle_and_other():
    problem = tc.DeepLinearNetwork.planted((5, 3, 4), n=200, rank=3, sigma=[3, 2, 1], seed=0)
    # A factorization of the optimum P* (rank 3 = cap): balanced square roots of its SVD.
    U, s, Vt = np.linalg.svd(problem.optimum)
    W1 = np.sqrt(s[:3])[:, None] * Vt[:3]
    W2 = U[:, :3] * np.sqrt(s[:3])
    best = global_optimality(problem, problem.flatten([W1, W2]))
    assert best["classification"] == "global minimum" and best["attains_optimal_loss"]
    # The rank-2 reduced-rank-regression solution (top-2 eigenvectors of Syx Sxx^-1 Sxy): a rank-deficient
    # critical point, hence a saddle.
    P_ols = problem.Syx @ np.linalg.inv(problem.Sxx)
    _, vecs = np.linalg.eigh(P_ols @ problem.Syx.T)
    U2 = vecs[:, -2:]
    Ur, sr, Vtr = np.linalg.svd(U2 @ U2.T @ P_ols)
    W1s = np.sqrt(sr[:3])[:, None] * Vtr[:3]
    W2s = Ur[:, :3] * np.sqrt(sr[:3])
    W1s[2], W2s[:, 2] = 0.0, 0.0
    saddle = global_optimality(problem, problem.flatten([W1s, W2s]))
    assert saddle["classification"] == "saddle (rank-deficient critical point)"
    assert saddle["loss_gap"] > 0 and not saddle["attains_optimal_loss"]
    assert saddle["data_conditions"] == {
        "Sxx_full_rank": True,
        "Syx_full_rank": True,
        "distinct_eigenvalues": True,
    }
    other = global_optimality(problem, problem.default_init(seed=1))
    assert other["classification"] == "not a critical point"


def test_compare_noise_table():
    problem = tc.DeepLinearNetwork.paper_data((5, 5, 5), n=100, seed=0)
    start = problem.truncated_init(1, seed=1)
    rows, trajs = compare_noise(
        problem,
        start,
        {"GD": None, "imputation": tc.SingularValueImputation(scale=0.1), "input": tc.InputNoise(0.5)},
        lr=1e-4,
        steps=30,
        n_runs=2,
        atol=1e-6,
        return_trajectories=True,
    )
    assert [r["noise"] for r in rows] == ["GD", "imputation", "input"]
    gd = rows[0]
    assert gd["subspace_bound_start"] == 2 and not gd["exceeds_subspace_bound"]
    assert gd["final_loss_min"] == gd["final_loss_max"] == pytest.approx(trajs["GD"].loss[0, -1])
    assert rows[1]["numerical_rank"] == 5 and rows[1]["exceeds_subspace_bound"]
    assert not rows[2]["exceeds_subspace_bound"] and rows[2]["final_loss_min"] != rows[2]["final_loss_max"]
    for r in rows:
        assert {"effective_rank", "stable_rank", "rank_atol", "optimum_distance", "min_loss"} <= set(r)
    with pytest.raises(TypeError, match="noises"):
        compare_noise(problem, start, [None], lr=1e-4, steps=1)


def test_rank_plots_draw_every_run():
    from matplotlib.figure import Figure

    from trajcore.plot import loss_curves, product_rank, product_singular_values

    problem = tc.DeepLinearNetwork.paper_data((4, 4, 4), n=30, seed=0)
    start = problem.truncated_init(1, seed=1)
    runs = {
        "GD": tc.run(problem, start, lr=1e-4, steps=5),
        "imputation": tc.run(problem, start, lr=1e-4, steps=5, noise=tc.SingularValueImputation(), seed=1),
    }
    ax = Figure().subplots()
    product_rank(problem, runs, ax=ax)
    heights = [line.get_ydata() for line in ax.get_lines()[:2]]
    np.testing.assert_array_equal(heights[0], problem.observables(runs["GD"])["numerical_rank"])
    ax = Figure().subplots()
    product_rank(problem, runs, ax=ax, atol=1e-6)
    product_rank(problem, runs, ax=Figure().subplots(), measure="effective")
    ax = Figure().subplots()
    product_singular_values(problem, runs["imputation"], ax=ax)
    assert len(ax.get_lines()) == 4
    ax = Figure().subplots()
    loss_curves(runs, ax=ax, optimal_loss=problem.optimal_loss)
    np.testing.assert_array_equal(ax.get_lines()[1].get_ydata(), runs["imputation"].loss)
    with pytest.raises(ValueError, match="measure"):
        product_rank(problem, runs, ax=Figure().subplots(), measure="nuclear")
    spectrum_only = tc.run(problem, start, lr=1e-4, steps=2, record=tc.Record(coefficients=["layer_ranks"]))
    with pytest.raises(ValueError, match="spectrum was not recorded"):
        product_singular_values(problem, spectrum_only, ax=Figure().subplots())
