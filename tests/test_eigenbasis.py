"""Runs in the target's eigenbasis (``coordinates="eigenbasis"``): the same trajectories as the NumPy
reference in the given coordinates, reproducible bitwise, and refused where they would not be the
same run."""

from __future__ import annotations

import numpy as np
import pytest
import reference

import trajcore as tc


def rel_err(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


def eigen_run(problem, U0, **kw):
    return tc.run(problem, U0, coordinates="eigenbasis", **kw)


def assert_matches_reference(problem, U0, traj, lr, steps, every, pairs, momentum=0.0, iterates=False):
    batched = U0.ndim == 3
    for b in range(U0.shape[0] if batched else 1):
        start = U0[b] if batched else U0
        loss, coefs, final = reference.smf_run(
            problem.target, problem.basis(), pairs, start, lr, steps, every, momentum=momentum
        )
        got = traj[b] if batched else traj
        assert rel_err(got.final, final) < 1e-10
        assert rel_err(got.loss, loss) < 1e-10
        if pairs.shape[0]:
            assert rel_err(got.coefficients, coefs) < 1e-10
        if iterates:  # recorded in the eigenbasis, returned in the given coordinates
            assert rel_err(got.iterates[-1], final) < 1e-10
            assert rel_err(problem.loss(got.iterates), loss) < 1e-10


@pytest.mark.parametrize("storage", ["factored", "dense"])
@pytest.mark.parametrize("batched", [False, True], ids=["single", "batch"])
@pytest.mark.parametrize("coefficients", ["all", "signal", None])
def test_eigenbasis_run_matches_numpy_reference(storage, batched, coefficients):
    problem = tc.SymmetricMatrixFactorization.planted(d=9, rank=3, sigma=[4.0, 2.0, 1.0], seed=3, storage=storage)
    U0 = tc.small_init((3, 9, 5) if batched else (9, 5), 0.05, seed=4)
    steps, every, lr = 300, 7, 0.05
    record = tc.Record(every=every, coefficients=coefficients, iterates=True)
    traj = eigen_run(problem, U0, lr=lr, steps=steps, record=record)
    pairs = problem.coefficient_pairs(coefficients)
    assert traj.coefficients.shape[-1] == pairs.shape[0]
    assert_matches_reference(problem, U0, traj, lr, steps, every, pairs, iterates=True)
    assert traj.metadata["coordinates"] == "eigenbasis"


@pytest.mark.parametrize(
    "target, d, width",
    [
        ("factored", 300, 26),
        ("factored", 300, 3),
        ("indefinite", 40, 10),
        ("zero", 7, 4),
        ("factored", 12, 20),
        ("indefinite", 10, 16),
        ("zero", 5, 5),
    ],
    ids=[
        "factored-blocks-wide",
        "factored-blocks-narrow",
        "dense-indefinite",
        "dense-zero",
        "rows-factored",
        "rows-indefinite",
        "rows-zero",
    ],
)
def test_eigenbasis_kernel_paths_match_numpy_reference(target, d, width):
    """Several row blocks outside the support and one inside; negative eigenvalues (the support is
    every row); the zero target (no support at all); with heavy-ball momentum for the indefinite
    ones. With d <= r' ("rows-") the kernel keeps U^T and the step goes through U U^T instead of
    U^T U; the iterates come back in the given layout and coordinates."""
    if target == "factored":
        problem = tc.SymmetricMatrixFactorization.planted(d=d, rank=3, sigma=[3.0, 2.0, 1.0], seed=5)
    else:
        rng = np.random.default_rng(5)
        A = rng.standard_normal((d, d)) / np.sqrt(d)
        problem = tc.SymmetricMatrixFactorization(target=(A + A.T) if target == "indefinite" else np.zeros((d, d)))
    U0 = tc.small_init((d, width), 0.02, seed=6)
    momentum = 0.5 if target == "indefinite" else 0.0
    steps, lr = 80, 0.05
    record = tc.Record(every=1, coefficients="diagonal", iterates=True)
    traj = eigen_run(problem, U0, lr=lr, steps=steps, record=record, momentum=momentum)
    assert problem.compiled(width, "diagonal", "eigenbasis").kernel.state_transposed == (d <= width)
    pairs = problem.coefficient_pairs("diagonal")
    assert_matches_reference(problem, U0, traj, lr, steps, 1, pairs, momentum=momentum, iterates=True)


def test_converged_losses_stay_accurate():
    """Past the Gram form's trust the loss comes from the split residual (with the Gram matrix of
    the rows outside the support, kept from the step): accurate far below the Gram form's rounding."""
    problem = tc.SymmetricMatrixFactorization.planted(d=20, rank=4, sigma=[10.0, 5.0, 3.0, 1.0], seed=0)
    U0 = tc.small_init((20, 6), 1e-3, seed=1)
    traj = eigen_run(problem, U0, lr=0.04, steps=3000, record=tc.Record(every=50, iterates=True))
    exact = problem.loss(traj.iterates)  # NumPy, from the split residual in the given coordinates
    assert traj.loss[-1] < 1e-10  # the Gram form's rounding is about 1e-16 * ||M||^2 = 1e-14
    np.testing.assert_allclose(traj.loss, exact, rtol=1e-7, atol=1e-28)
    given = tc.run(problem, U0, lr=0.04, steps=3000, record=tc.Record(every=50))
    np.testing.assert_allclose(traj.loss, given.loss, rtol=1e-6, atol=1e-28)


def test_paper_reference_setting_reproduces_in_the_eigenbasis():
    problem = tc.SymmetricMatrixFactorization.planted(d=20, rank=4, sigma=[10.0, 5.0, 3.0, 1.0], seed=0)
    U0 = tc.small_init((20, 20), 5e-7, seed=1)
    traj = eigen_run(problem, U0, lr=0.04, steps=4000, record=tc.Record(every=1, coefficients="signal"))
    diagonal = traj.coefficients[:, [0, 5, 10, 15]]  # beta_ii of the 4 x 4 signal block
    assert np.all(np.diff(diagonal, axis=0) >= -1e-12 * np.max(diagonal))
    learned = [int(np.argmax(diagonal[:, i] >= 0.9 * s)) for i, s in enumerate(problem.sigma)]
    assert learned == sorted(learned)
    assert traj.loss[-1] <= 1e-5 * problem.zero_loss


def test_bitwise_identical_across_threads_and_batch_splits():
    problem = tc.SymmetricMatrixFactorization.planted(d=30, rank=3, seed=0, storage="dense")
    U0 = tc.small_init((8, 30, 4), 0.01, seed=1)
    kw = dict(lr=0.05, steps=120, record=tc.Record(every=3, coefficients="diagonal", iterates=True))
    one = eigen_run(problem, U0, n_threads=1, **kw)
    two = eigen_run(problem, U0, n_threads=2, **kw)
    first = eigen_run(problem, U0[:4], n_threads=2, **kw)
    second = eigen_run(problem, U0[4:], n_threads=1, **kw)
    for name in ("final", "loss", "coefficients", "iterates"):
        assert np.array_equal(getattr(one, name), getattr(two, name))
        assert np.array_equal(getattr(one, name), np.concatenate([getattr(first, name), getattr(second, name)]))


def test_diverging_run_is_marked_and_returned_in_the_given_coordinates():
    problem = tc.SymmetricMatrixFactorization.planted(d=6, rank=2, sigma=[10.0, 5.0], seed=0)
    U0 = tc.small_init((2, 6, 6), 1.0, seed=1)
    traj = eigen_run(problem, U0, lr=1.5, steps=300, record=tc.Record(every=1, iterates=True))
    given = tc.run(problem, U0, lr=1.5, steps=300, record=tc.Record(every=1))
    assert traj.diverged.all()
    np.testing.assert_array_equal(traj.diverged_at, given.diverged_at)
    assert np.all(np.isfinite(traj.final))
    for b in range(2):
        t = traj.diverged_at[b]
        assert np.all(np.isnan(traj.iterates[b][traj.steps > t]))
        before = traj.steps < t
        np.testing.assert_allclose(traj.loss[b][before], given.loss[b][before], rtol=1e-9)


@pytest.mark.parametrize("target", ["factored", "dense", "wide", "tall"])
def test_asymmetric_eigenbasis_run_matches_numpy_reference(target):
    """In the singular bases [X; Y] -> [A^T X; B^T Y] and the target is diag(s), rectangular."""
    m, n = {"wide": (5, 11), "tall": (11, 5)}.get(target, (7, 10))
    problem = tc.AsymmetricMatrixFactorization.planted(
        m, n, 3, sigma=[5.0, 2.0, 1.0], seed=1, storage="factored" if target == "factored" else "dense"
    )
    W0 = tc.small_init((2, m + n, 4), 0.05, seed=2)
    record = tc.Record(every=9, coefficients="all", iterates=True)
    traj = eigen_run(problem, W0, lr=0.05, steps=400, record=record)
    left, right = problem.basis()
    pairs = problem.coefficient_pairs("all")
    for b in range(2):
        loss, coefs, final = reference.amf_run(problem.target, left, right, pairs, W0[b], m, 0.05, 400, 9)
        assert rel_err(traj.final[b], final) < 1e-10
        assert rel_err(traj.loss[b], loss) < 1e-10
        assert rel_err(traj.coefficients[b], coefs) < 1e-10
        assert rel_err(problem.loss(traj.iterates[b]), loss) < 1e-10
    converged = eigen_run(problem, W0[0], lr=0.1, steps=3000, record=tc.Record(every=3000, iterates=True))
    assert converged.loss[-1] < 1e-6  # far past the Gram form's trust (1e-4 of ||M||^2): the split residual
    np.testing.assert_allclose(converged.loss, problem.loss(converged.iterates), rtol=1e-7, atol=1e-28)


def test_empty_batches_and_no_steps():
    problem = tc.SymmetricMatrixFactorization.planted(d=5, rank=2, seed=0)
    for shape in [(0, 5, 3), (2, 5, 3)]:
        U0 = tc.small_init(shape, 0.1, seed=1)
        traj = eigen_run(problem, U0, lr=0.1, steps=0, record=tc.Record(iterates=True))
        np.testing.assert_allclose(traj.final, U0, rtol=1e-14, atol=1e-16)  # rotated there and back
        np.testing.assert_allclose(traj.loss[:, 0], problem.loss(U0), rtol=1e-12)
        assert traj.iterates.shape == (shape[0], 1, 5, 3)


def test_eigenbasis_errors_name_the_argument():
    smf = tc.SymmetricMatrixFactorization.planted(d=6, rank=2, seed=0)
    U0 = tc.small_init((6, 2), 0.1, seed=1)
    with pytest.raises(ValueError, match="coordinates: 'eigenbasis' runs are noise-free"):
        tc.run(smf, U0, lr=0.1, steps=3, noise=tc.GradientNoise(0.1), coordinates="eigenbasis")
    with pytest.raises(ValueError, match="coordinates: expected one of"):
        tc.run(smf, U0, lr=0.1, steps=3, coordinates="eigen")
    with pytest.raises(ValueError, match="coordinates: expected one of"):
        tc.run(smf, U0, lr=0.1, steps=3, coordinates=None)  # type: ignore[arg-type]
    ostd = tc.OrthogonalTensorDecomposition.planted(d=4, order=3, rank=2, seed=0)
    with pytest.raises(ValueError, match="coordinates: expected one of \\('given',\\)"):
        tc.run(ostd, tc.small_init((4, 2), 0.1, seed=1), lr=0.1, steps=3, coordinates="eigenbasis")
