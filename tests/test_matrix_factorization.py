"""Matrix-factorization trajectories against NumPy references, the paper's reference setting, and
the exact identities of PAPERS.md section 2."""

from __future__ import annotations

import numpy as np
import pytest
import reference

import trajcore as tc

SIGMA = np.array([10.0, 5.0, 3.0, 1.0])


def rel_err(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


def smf_reference_for(problem, U0, lr, steps, every, pairs, **kw):
    return reference.smf_run(problem.target, problem.basis(), pairs, U0, lr, steps, every, **kw)


@pytest.mark.parametrize("storage", ["factored", "dense"])
@pytest.mark.parametrize("batched", [False, True], ids=["single", "batch"])
@pytest.mark.parametrize("recording", ["all", None], ids=["recorded", "unrecorded"])
def test_symmetric_matches_numpy_reference(storage, batched, recording):
    problem = tc.SymmetricMatrixFactorization.planted(d=9, rank=3, sigma=[4.0, 2.0, 1.0], seed=3, storage=storage)
    shape = (3, 9, 5) if batched else (9, 5)
    U0 = tc.small_init(shape, 0.05, seed=4)
    steps, every, lr = 300, 7, 0.05
    record = tc.Record(every=every, coefficients=recording)
    traj = tc.run(problem, U0, lr=lr, steps=steps, record=record)
    pairs = problem.coefficient_pairs("all")
    for b in range(shape[0] if batched else 1):
        loss, coefs, final = smf_reference_for(problem, U0[b] if batched else U0, lr, steps, every, pairs)
        got = traj[b] if batched else traj
        assert rel_err(got.final, final) < 1e-10
        assert rel_err(got.loss, loss) < 1e-10
        if recording:
            assert rel_err(got.coefficients, coefs) < 1e-10
        else:
            assert got.coefficients.shape == (len(got.steps), 0)
    np.testing.assert_array_equal(traj.steps, reference.record_grid(steps, every))


@pytest.mark.parametrize(
    "storage, d, width",
    [("factored", 300, 26), ("factored", 300, 10), ("dense", 40, 26)],
    ids=["factored-blocks-wide", "factored-blocks-tail", "dense-wide"],
)
def test_symmetric_kernel_paths_match_numpy_reference(storage, d, width):
    """Shapes the reference test above does not reach: several row blocks of a factored target,
    widths past the symmetric Gram product's blocking (>= 24) and with a 2-column vector tail."""
    problem = tc.SymmetricMatrixFactorization.planted(d=d, rank=3, sigma=[3.0, 2.0, 1.0], seed=5, storage=storage)
    U0 = tc.small_init((d, width), 0.02, seed=6)
    steps, lr = 60, 0.05
    traj = tc.run(problem, U0, lr=lr, steps=steps, record=tc.Record(every=1, coefficients="signal"))
    pairs = problem.coefficient_pairs("signal")
    loss, coefs, final = smf_reference_for(problem, U0, lr, steps, 1, pairs)
    assert rel_err(traj.final, final) < 1e-10
    assert rel_err(traj.loss, loss) < 1e-10
    assert rel_err(traj.coefficients, coefs) < 1e-10


@pytest.mark.parametrize("storage", ["factored", "dense"])
def test_a_run_continued_from_its_final_state_is_the_same_run(storage):
    """Where a run is cut does not change a bit: a factored step prepares the next iterate's products
    on the way, and they must equal the ones a fresh start computes."""
    problem = tc.SymmetricMatrixFactorization.planted(d=300, rank=3, seed=5, storage=storage)
    U0 = tc.small_init((300, 12), 0.02, seed=6)
    record = tc.Record(every=10, coefficients="signal")
    whole = tc.run(problem, U0, lr=0.05, steps=50, record=record)
    first = tc.run(problem, U0, lr=0.05, steps=20, record=record)
    rest = tc.run(problem, first.final, lr=0.05, steps=30, record=record)
    np.testing.assert_array_equal(whole.final, rest.final)
    # records from step 20 on (a run's own last record takes the loss without the step's products)
    np.testing.assert_array_equal(whole.loss[2:], rest.loss)
    np.testing.assert_array_equal(whole.coefficients[2:], rest.coefficients)


@pytest.mark.parametrize("storage", ["factored", "dense"])
def test_asymmetric_matches_numpy_reference(storage):
    problem = tc.AsymmetricMatrixFactorization.planted(7, 10, 3, sigma=[5.0, 2.0, 1.0], seed=1, storage=storage)
    W0 = tc.small_init((2, 17, 4), 0.05, seed=2)
    traj = tc.run(problem, W0, lr=0.05, steps=400, record=tc.Record(every=9, coefficients="all"))
    left, right = problem.basis()
    pairs = problem.coefficient_pairs("all")
    for b in range(2):
        loss, coefs, final = reference.amf_run(problem.target, left, right, pairs, W0[b], 7, 0.05, 400, 9)
        assert rel_err(traj.final[b], final) < 1e-10
        assert rel_err(traj.loss[b], loss) < 1e-10
        assert rel_err(traj.coefficients[b], coefs) < 1e-10


def test_gradient_noise_and_momentum_match_reference():
    problem = tc.SymmetricMatrixFactorization.planted(d=8, rank=2, sigma=[3.0, 1.0], seed=0)
    U0 = tc.small_init((3, 8, 3), 0.1, seed=1)
    noise = tc.GradientNoise(scale=0.3, anneal=0.55)
    traj = tc.run(
        problem,
        U0,
        lr=0.02,
        steps=150,
        noise=noise,
        momentum=0.5,
        seed=11,
        trajectory_offset=5,
        record=tc.Record(every=10, coefficients="all"),
    )
    pairs = problem.coefficient_pairs("all")
    for b in range(3):
        loss, coefs, final = smf_reference_for(
            problem,
            U0[b],
            0.02,
            150,
            10,
            pairs,
            noise_scale=0.3,
            anneal=0.55,
            seed=11,
            trajectory=5 + b,
            momentum=0.5,
        )
        assert rel_err(traj.final[b], final) < 1e-10
        assert rel_err(traj.coefficients[b], coefs) < 1e-10


def test_langevin_matches_reference():
    problem = tc.SymmetricMatrixFactorization.planted(d=6, rank=2, seed=0)
    U0 = tc.small_init((6, 2), 0.1, seed=1)
    lr, beta = 0.01, 50.0
    traj = tc.run(problem, U0, lr=lr, steps=40, noise=tc.Langevin(beta=beta), seed=3)
    U = U0.copy()
    for t in range(40):
        U = U - lr * problem.grad(U) + np.sqrt(2 * lr / beta) * reference.gradient_noise(3, 0, t, U.shape, 1.0)
    assert rel_err(traj.final, U) < 1e-10


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reference_setting_reproduces_paper(seed):
    """PAPERS.md section 2: d=20, r=4, r'=20, sigma=(10,5,3,1), alpha=5e-7, eta=0.04, 500 iterations."""
    problem = tc.SymmetricMatrixFactorization.planted(d=20, rank=4, sigma=SIGMA, seed=seed)
    alpha, lr = 5e-7, 0.04
    U0 = tc.small_init((20, 20), alpha, seed=100 + seed)
    traj = tc.run(problem, U0, lr=lr, steps=500, record=tc.Record(every=1, coefficients="signal"))
    B = traj.coefficients.reshape(-1, 4, 4)
    diag = np.stack([B[:, i, i] for i in range(4)], axis=1)
    # every beta_ii non-decreasing (up to rounding of the converged value)
    assert np.all(np.diff(diag, axis=0) >= -1e-12 * SIGMA)
    # learned one after another in order of sigma
    times = tc.analysis.learning_times(diag, q=0.5, steps=traj.steps)
    assert np.all(np.diff(times) > 0)
    # final error and off-diagonal signal coefficients
    assert np.linalg.norm(problem.residual(traj.final)) <= 1e-5
    off = B[:, ~np.eye(4, dtype=bool)]
    assert np.max(np.abs(off)) < 1e-2
    # measured learning times within 15% of the prediction
    predicted = tc.analysis.predicted_learning_times(SIGMA, alpha, 20, lr)
    assert np.all(np.abs(times - predicted) <= 0.15 * predicted), (times, predicted)
    assert np.all(tc.analysis.monotonicity_index(diag) > 1 - 1e-12)


def test_exact_identities_along_a_run():
    """||grad beta_ii||_F = 2 sqrt(beta_ii) and <grad beta_ii, grad beta_jj> = 0 for i != j."""
    problem = tc.SymmetricMatrixFactorization.planted(d=10, rank=3, sigma=[5.0, 2.0, 1.0], seed=5)
    traj = tc.run(
        problem,
        tc.small_init((10, 6), 1e-3, seed=6),
        lr=0.05,
        steps=200,
        record=tc.Record(every=20, coefficients="diagonal", iterates=True),
    )
    pairs = np.array([[i, i] for i in range(10)])
    for U in traj.iterates:
        grads = problem.coefficient_gradients(U, pairs)
        beta = problem.coefficients(U, pairs)
        norms = np.linalg.norm(grads.reshape(10, -1), axis=1)
        np.testing.assert_allclose(norms, 2 * np.sqrt(beta), rtol=1e-12, atol=1e-15)
        gram = np.einsum("kdw,ldw->kl", grads, grads)
        off = gram[~np.eye(10, dtype=bool)]
        assert np.max(np.abs(off)) <= 1e-12 * np.max(np.abs(gram))
    dominance = tc.analysis.gradient_dominance(problem, traj.iterates, pairs[:3])
    np.testing.assert_allclose(dominance.gamma, 0.5, atol=1e-9)
    np.testing.assert_allclose(dominance.C, 2.0, rtol=1e-9)
    independence = tc.analysis.gradient_independence(problem, traj.iterates, pairs[:3])
    np.testing.assert_allclose(independence, np.eye(3), atol=1e-12)


@pytest.mark.parametrize("kind", ["symmetric", "asymmetric"])
def test_coefficient_gradients_match_finite_differences(kind):
    if kind == "symmetric":
        problem = tc.SymmetricMatrixFactorization.planted(d=5, rank=2, seed=0)
        P = tc.small_init((5, 3), 1.0, seed=1)
    else:
        problem = tc.AsymmetricMatrixFactorization.planted(4, 5, 2, seed=0)
        P = tc.small_init((9, 3), 1.0, seed=1)
    pairs = np.array([[0, 0], [0, 1], [1, 0], [2, 3]])
    grads = problem.coefficient_gradients(P, pairs)
    h = 1e-6
    for idx in np.ndindex(P.shape):
        E = np.zeros_like(P)
        E[idx] = h
        fd = (problem.coefficients(P + E, pairs) - problem.coefficients(P - E, pairs)) / (2 * h)
        np.testing.assert_allclose(grads[(slice(None), *idx)], fd, atol=1e-8)


@pytest.mark.parametrize("kind", ["symmetric", "asymmetric"])
def test_loss_gradient_matches_finite_differences(kind):
    if kind == "symmetric":
        problem = tc.SymmetricMatrixFactorization.planted(d=5, rank=2, seed=0)
        P = tc.small_init((5, 3), 1.0, seed=1)
    else:
        problem = tc.AsymmetricMatrixFactorization.planted(4, 5, 2, seed=0)
        P = tc.small_init((9, 3), 1.0, seed=1)
    g = problem.grad(P)
    h = 1e-6
    for idx in np.ndindex(P.shape):
        E = np.zeros_like(P)
        E[idx] = h
        assert abs((problem.loss(P + E) - problem.loss(P - E)) / (2 * h) - g[idx]) < 1e-7


def test_bitwise_identical_across_threads_and_batch_splits():
    problem = tc.SymmetricMatrixFactorization.planted(d=12, rank=3, seed=0)
    U0 = tc.small_init((8, 12, 4), 0.01, seed=1)
    kw = dict(
        lr=0.05,
        steps=120,
        noise=tc.GradientNoise(0.05, anneal=0.55),
        seed=9,
        record=tc.Record(every=3, coefficients="diagonal"),
    )
    one = tc.run(problem, U0, n_threads=1, **kw)
    two = tc.run(problem, U0, n_threads=2, **kw)
    first = tc.run(problem, U0[:4], n_threads=2, **kw)
    second = tc.run(problem, U0[4:], n_threads=1, trajectory_offset=4, **kw)
    for a, b in [(one, two)]:
        assert np.array_equal(a.final, b.final) and np.array_equal(a.coefficients, b.coefficients)
        assert np.array_equal(a.loss, b.loss)
    assert np.array_equal(one.final, np.concatenate([first.final, second.final]))
    assert np.array_equal(one.coefficients, np.concatenate([first.coefficients, second.coefficients]))
    # different seeds give different noise
    other = tc.run(problem, U0, n_threads=2, **{**kw, "seed": 10})
    assert not np.array_equal(one.final, other.final)


def test_diverging_step_size_is_marked_not_garbage():
    problem = tc.SymmetricMatrixFactorization.planted(d=6, rank=2, sigma=[10.0, 5.0], seed=0)
    U0 = tc.small_init((2, 6, 6), 1.0, seed=1)
    U0[1] *= 1e-3
    lr = np.full(300, 0.01)
    late = tc.run(problem, U0, lr=np.where(np.arange(300) < 50, 0.01, 2.0), steps=300)
    assert late.diverged.all() and np.all(late.diverged_at >= 50)
    traj = tc.run(problem, U0, lr=1.5, steps=300, record=tc.Record(every=1))
    assert traj.diverged.all()
    for b in range(2):
        t = traj.diverged_at[b]
        assert 0 <= t <= 300
        # the state at the diverging step is recorded with its (huge) loss; nothing after it
        assert np.all(np.isfinite(traj.loss[b][traj.steps < t]))
        assert traj.loss[b][traj.steps == t] > 1e8 * problem.zero_loss or not np.isfinite(traj.loss[b][traj.steps == t])
        assert np.all(np.isnan(traj.loss[b][traj.steps > t]))
        assert np.all(np.isfinite(traj.final[b]))
    ok = tc.run(problem, U0, lr=lr, steps=300)
    assert not ok.diverged.any() and np.all(ok.diverged_at == -1)


def test_save_load_roundtrip(tmp_path):
    problem = tc.SymmetricMatrixFactorization.planted(d=6, rank=2, seed=0)
    traj = tc.run(
        problem,
        tc.small_init((2, 6, 3), 0.1, seed=1),
        lr=0.05,
        steps=30,
        noise=tc.GradientNoise(0.01),
        record=tc.Record(every=5, iterates=True),
    )
    path = tmp_path / "run.npz"
    traj.save(path)
    back = tc.Trajectory.load(path)
    for name in ("steps", "loss", "coefficients", "coefficient_pairs", "iterates", "final", "diverged_at"):
        assert np.array_equal(getattr(traj, name), getattr(back, name), equal_nan=True)
    assert back.metadata == traj.metadata
    assert back.metadata["noise"] == [{"kind": "gradient", "scale": 0.01, "anneal": 0.0}]
    assert [p.name for p in tmp_path.iterdir()] == ["run.npz"]  # no temporary left behind


def test_lr_schedule_matches_reference():
    problem = tc.SymmetricMatrixFactorization.planted(d=5, rank=2, seed=0)
    U0 = tc.small_init((5, 2), 0.1, seed=1)
    schedule = lambda t: 0.1 / (1.0 + 0.01 * t)  # noqa: E731
    traj = tc.run(problem, U0, lr=schedule, steps=50)
    U = U0.copy()
    for t in range(50):
        U = U - schedule(t) * problem.grad(U)
    assert rel_err(traj.final, U) < 1e-10


# -- bad input ----------------------------------------------------------------------------------


@pytest.fixture
def smf():
    return tc.SymmetricMatrixFactorization.planted(d=4, rank=2, seed=0)


def test_integer_init_is_converted(smf):
    traj = tc.run(smf, np.ones((4, 2), dtype=np.int64), lr=0.01, steps=3)
    assert traj.final.dtype == np.float64


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(init=np.zeros((5, 2))), ValueError, "init"),
        (dict(init=np.zeros((4,))), ValueError, "init"),
        (dict(init=np.zeros((4, 0))), ValueError, "init"),
        (dict(init=np.ones((4, 2), dtype=complex)), TypeError, "init"),
        (dict(init=np.array([["a", "b"]] * 4)), TypeError, "init"),
        (dict(init=np.full((4, 2), np.nan)), ValueError, "init"),
        (dict(lr=0.0), ValueError, "lr"),
        (dict(lr=-1.0), ValueError, "lr"),
        (dict(lr=np.ones(3)), ValueError, "lr"),
        (dict(lr=float("nan")), ValueError, "lr"),
        (dict(steps=-1), ValueError, "steps"),
        (dict(steps=2.5), TypeError, "steps"),
        (dict(momentum=1.0), ValueError, "momentum"),
        (dict(n_threads=0), ValueError, "n_threads"),
        (dict(noise="gaussian"), TypeError, "noise"),
        (dict(record="every step"), TypeError, "record"),
    ],
)
def test_bad_run_arguments(smf, kwargs, exc, match):
    args = dict(init=np.full((4, 2), 0.1), lr=0.01, steps=5)
    args.update(kwargs)
    init = args.pop("init")
    with pytest.raises(exc, match=match):
        tc.run(smf, init, **args)


def test_bad_record_and_noise_arguments():
    with pytest.raises(ValueError, match="every"):
        tc.Record(every=0)
    with pytest.raises(ValueError, match="scale"):
        tc.GradientNoise(scale=-1.0)
    with pytest.raises(ValueError, match="beta"):
        tc.Langevin(beta=0.0)
    problem = tc.SymmetricMatrixFactorization.planted(d=4, rank=2, seed=0)
    with pytest.raises(ValueError, match="coefficients"):
        tc.run(problem, np.full((4, 2), 0.1), lr=0.01, steps=2, record=tc.Record(coefficients="diag"))
    with pytest.raises(ValueError, match="coefficients"):
        tc.run(problem, np.full((4, 2), 0.1), lr=0.01, steps=2, record=tc.Record(coefficients=np.array([[0, 9]])))


def test_bad_targets():
    with pytest.raises(ValueError, match="symmetric"):
        tc.SymmetricMatrixFactorization(target=np.arange(9.0).reshape(3, 3))
    with pytest.raises(ValueError, match="square"):
        tc.SymmetricMatrixFactorization(target=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="NaN"):
        tc.SymmetricMatrixFactorization(target=np.full((3, 3), np.nan))
    with pytest.raises(TypeError, match="complex"):
        tc.SymmetricMatrixFactorization(target=np.eye(3, dtype=complex))
    with pytest.raises(ValueError, match="orthonormal"):
        tc.SymmetricMatrixFactorization(V=np.ones((3, 2)), sigma=[1.0, 2.0])
    with pytest.raises(ValueError, match="sigma"):
        tc.SymmetricMatrixFactorization(V=np.eye(3)[:, :2], sigma=[1.0, -2.0])
    with pytest.raises(ValueError, match="either"):
        tc.SymmetricMatrixFactorization()
    with pytest.raises(ValueError, match="rank"):
        tc.SymmetricMatrixFactorization.planted(d=3, rank=4)
    with pytest.raises(ValueError, match="left, sigma, right"):
        tc.AsymmetricMatrixFactorization(left=np.eye(3)[:, :2], sigma=[1.0], right=np.eye(4)[:, :2])


def test_perturbed_gd_escapes_the_saddle_at_zero():
    """U = 0 is a critical point: GD never leaves it, perturbed GD does and converges."""
    problem = tc.SymmetricMatrixFactorization.planted(d=6, rank=2, sigma=[2.0, 1.0], seed=0)
    zero = np.zeros((6, 2))
    stuck = tc.run(problem, zero, lr=0.1, steps=400)
    assert np.all(stuck.final == 0) and stuck.loss[-1] == pytest.approx(problem.zero_loss)
    noise = tc.PerturbedGD(radius=1e-3, threshold=1e-6, interval=50)
    escaped = tc.run(problem, zero, lr=0.1, steps=400, noise=noise, seed=1)
    # it also kicks at the minimum (the gradient is small there too): the loss stays within the
    # O(radius^2) band the kicks allow, and touches the floor in between
    assert np.max(escaped.loss[200:]) < 1e-5
    assert np.min(escaped.loss[200:]) < 1e-10
    # the kick happens only while the gradient is small: away from the saddle, runs coincide
    start = tc.small_init((6, 2), 0.1, seed=2)
    plain = tc.run(problem, start, lr=0.1, steps=30)
    kicked = tc.run(problem, start, lr=0.1, steps=30, noise=noise, seed=1)
    assert np.array_equal(plain.final, kicked.final)
