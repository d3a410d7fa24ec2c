"""Symmetric tensors and orthogonal symmetric tensor decomposition (PAPERS.md section 3).

Every compiled result is checked against a plain NumPy reference written here from the formulas:
dense ``numpy.einsum`` contractions, a brute-force symmetrisation, and a Gram-form GD loop.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import trajcore as tc
from trajcore import analysis
from trajcore.tensor import OrthogonalTensorDecomposition, SymmetricTensor, packed_size

# -- NumPy references ---------------------------------------------------------------------------------


def symmetrize(T: np.ndarray) -> np.ndarray:
    perms = list(itertools.permutations(range(T.ndim)))
    return sum(np.transpose(T, p) for p in perms) / len(perms)


def einsum_contract(T: np.ndarray, U: np.ndarray) -> np.ndarray:
    """G[:, j] = T(u_j, ..., u_j, .) by one einsum over all indices."""
    letters = "abcdefgh"[: T.ndim]
    spec = letters + "," + ",".join(f"{x}z" for x in letters[1:]) + "->az"
    return np.einsum(spec, T, *([U] * (T.ndim - 1)))


def dense_from_factors(Z: np.ndarray, c: np.ndarray, order: int) -> np.ndarray:
    T = np.zeros((Z.shape[0],) * order)
    for k in range(c.shape[0]):
        outer = Z[:, k]
        for _ in range(order - 1):
            outer = np.multiply.outer(outer, Z[:, k])
        T += c[k] * outer
    return T


def gram_gd(T: np.ndarray, U0: np.ndarray, lr: float, steps: int, halved: bool = False) -> tuple[list, np.ndarray]:
    """Plain GD with grad = g l (U (U^T U)^{l-1} - G); returns (loss at every step and the end, final U)."""
    order = T.ndim
    g = 1.0 if halved else 2.0
    norm2 = float(np.sum(T**2))
    U = U0.copy()
    losses = []
    for _ in range(steps + 1):
        A = U.T @ U
        G = einsum_contract(T, U)
        loss = np.sum(A**order) - 2 * np.sum(U * G) + norm2
        losses.append(0.5 * loss if halved else loss)
        if len(losses) > steps:
            break
        U = U - lr * g * order * (U @ A ** (order - 1) - G)
    return losses, U


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def random_tensor(storage: str, d: int, order: int, rng: np.random.Generator) -> tuple[SymmetricTensor, np.ndarray]:
    """A random symmetric tensor in ``storage`` and its dense NumPy value."""
    if storage == "factored":
        Z, c = rng.standard_normal((d, 3)), rng.standard_normal(3)
        return SymmetricTensor.from_factors(Z, c, order), dense_from_factors(Z, c, order)
    T = symmetrize(rng.standard_normal((d,) * order))
    if storage == "dense":
        return SymmetricTensor.from_dense(T), T
    packed = np.array([T[idx] for idx in itertools.combinations_with_replacement(range(d), order)])
    return SymmetricTensor.from_packed(packed, d, order), T


# -- storages and contractions ----------------------------------------------------------------------


@pytest.mark.parametrize("order", [2, 3, 4, 5, 6])
@pytest.mark.parametrize("d", [1, 2, 5, 11])
def test_packed_size_is_the_binomial(d: int, order: int) -> None:
    expected = math.comb(d + order - 1, order)
    assert packed_size(d, order) == expected
    assert tc._core.packed_size(d, order) == expected
    T = SymmetricTensor.from_factors(np.eye(d)[:, :1], [1.0], order)
    assert T.to_packed().shape == (expected,)
    mult = tc._core.packed_multiplicities(d, order)
    assert mult.sum() == d**order  # each dense entry is one permutation of exactly one packed entry


@pytest.mark.parametrize("storage", ["factored", "dense", "packed"])
@pytest.mark.parametrize("order", [3, 4, 5])
@pytest.mark.parametrize("d", [3, 5, 7])
def test_contractions_match_einsum(storage: str, order: int, d: int) -> None:
    rng = np.random.default_rng(100 * order + d)
    T, dense = random_tensor(storage, d, order, rng)
    for m in (1, 3, 9, 17):
        U = rng.standard_normal((d, m))
        G_ref = einsum_contract(dense, U)
        assert rel(T.contract(U, n_threads=1), G_ref) < 1e-12
        full_ref = np.einsum("az,az->z", U, G_ref)
        assert rel(T.full_contract(U), full_ref) < 1e-12
    assert rel(T.contract(U[:, 0]), G_ref[:, 0]) < 1e-12  # a vector is one column
    assert T.norm() == pytest.approx(np.linalg.norm(dense), rel=1e-12)
    assert rel(T.to_dense(), dense) < 1e-12


@pytest.mark.parametrize("order", [2, 6])
def test_contractions_of_other_orders(order: int) -> None:
    rng = np.random.default_rng(order)
    for storage in ("factored", "dense", "packed"):
        T, dense = random_tensor(storage, 3, order, rng)
        U = rng.standard_normal((3, 11))
        assert rel(T.contract(U), einsum_contract(dense, U)) < 1e-12


@pytest.mark.parametrize("order", [3, 6])
def test_conversions_round_trip_and_packed_order(order: int) -> None:
    rng = np.random.default_rng(order)
    d = 4
    T = symmetrize(rng.standard_normal((d,) * order))
    packed = SymmetricTensor.from_dense(T).to_packed()
    expected = [T[idx] for idx in itertools.combinations_with_replacement(range(d), order)]
    np.testing.assert_array_equal(packed, expected)
    back = SymmetricTensor.from_packed(packed, d, order)
    at_sorted = np.array([T[tuple(sorted(i))] for i in np.ndindex(*T.shape)]).reshape(T.shape)
    np.testing.assert_array_equal(back.to_dense(), at_sorted)  # the sorted entries define the tensor
    assert back.with_storage("dense").storage == "dense"
    assert rel(back.with_storage("dense").to_packed(), packed) == 0.0


def test_contraction_is_bitwise_independent_of_threads() -> None:
    rng = np.random.default_rng(7)
    T, _ = random_tensor("packed", 9, 4, rng)
    U = rng.standard_normal((9, 37))
    np.testing.assert_array_equal(T.contract(U, n_threads=1), T.contract(U, n_threads=2))
    np.testing.assert_array_equal(T.contract(U, n_threads=1), T.with_storage("dense").contract(U, n_threads=2))


# -- the problem: loss, gradient, trajectories ----------------------------------------------------------


def planted(storage: str, noise: float = 0.0, halved: bool = False, d: int = 7, order: int = 4):
    return OrthogonalTensorDecomposition.planted(
        d, order, 3, sigma=[4.0, 2.0, 1.0], storage=storage, noise=noise, seed=3, halved=halved
    )


@pytest.mark.parametrize("storage", ["factored", "dense", "packed"])
@pytest.mark.parametrize("halved", [False, True])
def test_gradient_matches_finite_differences_and_kernel(storage: str, halved: bool) -> None:
    problem = planted(storage, noise=0.0 if storage == "factored" else 0.1, halved=halved, order=3)
    rng = np.random.default_rng(1)
    U = 0.5 * rng.standard_normal((problem.d, 5))
    grad = problem.grad(U)
    h = 1e-6
    fd = np.zeros_like(U)
    for i, j in itertools.product(range(U.shape[0]), range(U.shape[1])):
        E = np.zeros_like(U)
        E[i, j] = h
        fd[i, j] = (problem.loss(U + E) - problem.loss(U - E)) / (2 * h)
    assert rel(grad, fd) < 1e-7
    kernel = problem.build_kernel(5, "signal")
    loss, flat = kernel.loss_and_grad(U)
    assert loss == pytest.approx(problem.loss(U), rel=1e-12)
    assert rel(flat.reshape(U.shape), grad) < 1e-12
    # The loss from the tensors themselves, built densely (what the Gram form avoids).
    T = problem.target.to_dense()
    fit = sum(dense_from_factors(U[:, [j]], np.ones(1), problem.order) for j in range(U.shape[1]))
    direct = np.sum((fit - T) ** 2)
    assert loss == pytest.approx(0.5 * direct if halved else direct, rel=1e-10)


@pytest.mark.parametrize("storage", ["factored", "dense", "packed"])
def test_trajectory_matches_numpy_gram_loop(storage: str) -> None:
    halved = storage == "dense"
    problem = planted(storage, noise=0.0 if storage == "factored" else 0.05, halved=halved)
    U0 = tc.small_init((2, problem.d, 6), 0.3, seed=5)
    traj = tc.run(problem, U0, lr=2e-3, steps=300, record=tc.Record(every=300), n_threads=2)
    T = problem.target.to_dense()
    for b in range(2):
        losses, U_ref = gram_gd(T, U0[b], 2e-3, 300, halved=halved)
        assert rel(traj.final[b], U_ref) < 1e-10
        assert traj.loss[b, -1] == pytest.approx(losses[-1], rel=1e-10)
        assert traj.loss[b, 0] == pytest.approx(losses[0], rel=1e-12)


def test_recorded_coefficients_match_numpy() -> None:
    problem = planted("packed", noise=0.02)
    U0 = tc.small_init((problem.d, 5), 0.3, seed=2)
    traj = tc.run(problem, U0, lr=1e-3, steps=50, record=tc.Record(every=10, coefficients="all", iterates=True))
    assert traj.coefficients.shape == (6, problem.d)
    for t in range(6):
        U = traj.iterates[t]
        expected = np.sum((problem.basis().T @ U) ** problem.order, axis=1)
        assert rel(traj.coefficients[t], expected) < 1e-12
        assert traj.loss[t] == pytest.approx(problem.loss(U), rel=1e-11)
    np.testing.assert_allclose(
        problem.relative_error(traj.loss), np.sqrt(traj.loss) / problem.target.norm(), rtol=1e-14
    )


def test_planted_noise_is_symmetric_and_forces_dense_storage() -> None:
    noisy = OrthogonalTensorDecomposition.planted(5, 3, 2, storage="dense", noise=0.5, seed=1)
    T = noisy.target.to_dense()
    np.testing.assert_allclose(T, np.transpose(T, (2, 0, 1)), atol=0)
    clean = OrthogonalTensorDecomposition.planted(5, 3, 2, storage="dense", seed=1)
    E = T - clean.target.to_dense()
    assert 0.1 < np.linalg.norm(E) / (0.5 * math.sqrt(packed_size(5, 3))) < 3
    with pytest.raises(ValueError, match="storage"):
        OrthogonalTensorDecomposition.planted(5, 3, 2, storage="factored", noise=0.5)


def test_noisy_runs_are_bitwise_deterministic_across_threads() -> None:
    problem = planted("packed", noise=0.1)
    U0 = tc.small_init((3, problem.d, 5), 0.2, seed=9)
    noise = tc.GradientNoise(scale=0.05)
    runs = [
        tc.run(problem, U0, lr=1e-3, steps=200, noise=noise, seed=4, record=tc.Record(every=50), n_threads=n)
        for n in (1, 2)
    ]
    np.testing.assert_array_equal(runs[0].final, runs[1].final)
    np.testing.assert_array_equal(runs[0].loss, runs[1].loss)
    np.testing.assert_array_equal(runs[0].coefficients, runs[1].coefficients)
    assert not np.array_equal(runs[0].final, tc.run(problem, U0, lr=1e-3, steps=200, n_threads=1).final)


# -- the reference setting of PAPERS.md section 3 -----------------------------------------------------

C_REF = np.array([10.0, 5.0, 3.0, 1.0])
# Init seeds of small_init((10, 10), 2e-2, seed) with target seed 0, found by a scan of seeds 0..39.
# Seeds 6, 16, 34 and 36 learn a smaller c_k first; 10 and 20 learn in the order of c. Over the scan
# the c_k a_0^{l-2} order held in 36 of 40 seeds; it fails when two components' best-aligned columns
# coincide (seeds 0, 7, 8, 21), and when two escapes are a few hundred steps apart a plateau is too
# short to see (seed 4).
REFERENCE_SEEDS = {
    6: [2, 1, 0, 3],
    16: [0, 2, 3, 1],
    34: [0, 1, 3, 2],
    36: [1, 0, 2, 3],
    10: [0, 1, 2, 3],
    20: [0, 1, 2, 3],
}


@pytest.fixture(scope="module")
def reference_problem() -> OrthogonalTensorDecomposition:
    return OrthogonalTensorDecomposition.planted(10, 4, 4, sigma=C_REF, seed=0)


@pytest.mark.parametrize("seed", sorted(REFERENCE_SEEDS))
def test_reference_setting(reference_problem: OrthogonalTensorDecomposition, seed: int) -> None:
    problem = reference_problem
    U0 = tc.small_init((10, 10), 2e-2, seed=seed)
    traj = tc.run(problem, U0, lr=1e-3, steps=200_000, record=tc.Record(every=50), n_threads=1)
    error = problem.relative_error(traj.loss)
    assert error[-1] < 1e-5

    a0 = analysis.initial_alignments(problem.basis()[:, :4], U0, 4)
    predicted = analysis.predicted_learning_order(C_REF, a0, 4)
    measured, times = analysis.measured_learning_order(traj.coefficients, traj.steps)
    assert measured.tolist() == predicted.tolist() == REFERENCE_SEEDS[seed]
    # Escape times follow 1 / (2 l (l-2) eta c_k a_0^{l-2}) for the component that escapes first.
    first = predicted[0]
    t_pred = analysis.predicted_escape_times(C_REF, a0, 4, 1e-3)
    assert times[first] == pytest.approx(t_pred[first], rel=0.1)
    # beta_k -> c_k along (nearly) monotone curves: the decreases add up to < 1e-4 of the largest value.
    np.testing.assert_allclose(traj.coefficients[-1], C_REF, rtol=1e-5)
    assert np.all(analysis.nonmonotone_mass(traj.coefficients) < 1e-4)

    # The error passes through every plateau sqrt(unlearned sum c^2 / sum c^2).
    levels = analysis.predicted_plateau_levels(C_REF, measured)
    plateaus = analysis.detect_plateaus(traj.steps, error, relative_change=1e-3, min_records=10)
    found = np.array([p.level for p in plateaus])
    for level in levels[:-1]:
        assert np.min(np.abs(found - level)) < 1e-3, (level, found)


def test_gradient_dominance_and_independence(reference_problem: OrthogonalTensorDecomposition) -> None:
    problem = reference_problem
    U0 = tc.small_init((10, 10), 2e-2, seed=20)
    traj = tc.run(problem, U0, lr=1e-3, steps=3_000, record=tc.Record(every=5, iterates=True))
    beta = traj.coefficients[:, 0]
    # Escape phase: one column carries component 0 (beta above the other columns' 1e-3 floor) and
    # beta is not yet saturating. There ||grad beta|| = l beta^{1 - 1/l}: gamma = 3/4, C = 4.
    growth = (beta > 1e-3) & (beta < 0.5 * C_REF[0])
    pairs = np.array([[0, 0], [1, 1]])
    fit = analysis.gradient_dominance(problem, traj.iterates[growth], pairs[:1])
    assert fit.gamma[0] == pytest.approx(1 - 1 / 4, abs=0.02)
    assert fit.C[0] == pytest.approx(4, rel=0.05)
    norms = problem.coefficient_gradient_norms(traj.iterates)[:, 0]
    expected = [np.linalg.norm(problem.coefficient_gradients(U, pairs)[0]) for U in traj.iterates]
    np.testing.assert_allclose(norms, expected, rtol=1e-12)
    assert analysis.gradient_independence(problem, traj.iterates, pairs)[0, 1] < 1e-12


# -- bad input --------------------------------------------------------------------------------------


def test_bad_input_is_rejected_with_clear_errors() -> None:
    rng = np.random.default_rng(0)
    T = rng.standard_normal((4, 4, 4))
    with pytest.raises(ValueError, match="not symmetric"):
        SymmetricTensor.from_dense(T)
    assert SymmetricTensor.from_dense(T, check_symmetric=False).storage == "dense"
    with pytest.raises(ValueError, match="same non-zero length"):
        SymmetricTensor.from_dense(np.zeros((3, 3, 4)))
    with pytest.raises(ValueError, match="axes"):
        SymmetricTensor.from_dense(np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        SymmetricTensor.from_dense(np.full((3, 3, 3), np.nan))
    with pytest.raises(ValueError, match="NaN"):
        SymmetricTensor.from_packed(np.full(10, np.nan), 3, 3)
    with pytest.raises(ValueError, match="NaN"):
        SymmetricTensor.from_factors(np.full((3, 1), np.inf), [1.0], 3)
    with pytest.raises(ValueError, match="C\\(3\\+3-1, 3\\) = 10"):
        SymmetricTensor.from_packed(np.zeros(11), 3, 3)
    with pytest.raises(ValueError, match="order"):
        SymmetricTensor.from_factors(np.eye(3), np.ones(3), 1)
    with pytest.raises(TypeError, match="order"):
        SymmetricTensor.from_factors(np.eye(3), np.ones(3), 3.0)
    with pytest.raises(TypeError, match="complex"):
        SymmetricTensor.from_packed(np.zeros(10, complex), 3, 3)
    tensor = SymmetricTensor.from_factors(np.eye(3), np.ones(3), 3)
    with pytest.raises(ValueError, match="U: expected 3 rows"):
        tensor.contract(np.ones((4, 2)))
    problem = OrthogonalTensorDecomposition(tensor)
    with pytest.raises(ValueError, match="init"):
        tc.run(problem, np.ones((4, 2)), lr=0.1, steps=1)
    with pytest.raises(ValueError, match="basis"):
        OrthogonalTensorDecomposition(tensor, basis=np.eye(4))
    with pytest.raises(ValueError, match="orthonormal"):
        OrthogonalTensorDecomposition(tensor, basis=2 * np.eye(3))
    with pytest.raises(ValueError, match="rank"):
        OrthogonalTensorDecomposition.planted(3, 3, 4)
    with pytest.raises(ValueError, match="no basis"):
        tc.run(
            OrthogonalTensorDecomposition(SymmetricTensor.from_dense(np.zeros((3, 3, 3)))),
            np.ones((3, 2)),
            lr=0.1,
            steps=1,
            record=tc.Record(coefficients="all"),
        )
    with pytest.raises(TypeError, match="halved"):
        OrthogonalTensorDecomposition(tensor, halved=1)
    # The compiled core checks again.
    with pytest.raises(ValueError):
        tc._core.SymmetricTensorCore.from_packed(np.zeros(3), 3, 3)


def test_memory_guard_refuses_before_allocating() -> None:
    limit = 1 << 30
    tc._memory.set_memory_limit(limit)
    try:
        with pytest.raises(MemoryError, match=r"dense order-4 tensor on R\^1000: needs 7\.3 TiB"):
            OrthogonalTensorDecomposition.planted(1000, 4, 4, storage="dense", seed=0)
        with pytest.raises(MemoryError, match=r"packed order-4 tensor on R\^1000: needs 312\.3 GiB"):
            OrthogonalTensorDecomposition.planted(1000, 4, 4, storage="packed", seed=0)
        big = SymmetricTensor.from_factors(np.eye(1000)[:, :2], [1.0, 2.0], 4)
        with pytest.raises(MemoryError, match="7.3 TiB"):
            big.to_dense()
        with pytest.raises(MemoryError, match="packed order-4"):
            big.to_packed()
        assert big.contract(np.eye(1000)[:, :3]).shape == (1000, 3)  # the factored form needs no memory
    finally:
        tc._memory.set_memory_limit(None)
