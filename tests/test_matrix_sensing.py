"""Matrix sensing against an independent NumPy gradient-descent loop, its bindings under random input,
bitwise determinism, and incremental learning as in the symmetric factorization."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

import trajcore as tc
from trajcore import _core
from trajcore.analysis.conditions import predicted_learning_times

CLEAR_ERRORS = (ValueError, TypeError, MemoryError)
SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, 1e300, -1e300, 1e-300, np.nan, np.inf, -np.inf]


def rel_err(a: Any, b: Any) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-300)) if b.size else 0.0


def symmetric_gaussians(rng: np.random.Generator, m: int, d: int) -> np.ndarray:
    G = rng.standard_normal((m, d, d))
    return (G + G.transpose(0, 2, 1)) / 2


# -- the NumPy reference ------------------------------------------------------------------------


def numpy_loss_grad(A: np.ndarray, y: np.ndarray, U: np.ndarray) -> tuple[float, np.ndarray]:
    """f(U) = 1/(4m) sum_i (<A_i, U U^T> - y_i)^2 and (1/m) sum_i r_i A_i U, dense, by einsum."""
    m = y.shape[0]
    r = np.einsum("iab,ab->i", A, U @ U.T) - y
    return float(r @ r) / (4 * m), np.einsum("i,iab,bw->aw", r, A, U) / m


def numpy_gd(
    A: np.ndarray, y: np.ndarray, U0: np.ndarray, lr: float, steps: int, basis: np.ndarray, pairs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plain gradient descent from U0: iterates (steps + 1, d, w), losses (steps + 1,) and coefficients
    (steps + 1, K) beta_k = o_i^T U U^T o_j at every step."""
    U = U0.copy()
    iterates, losses, coefficients = [], [], []
    for t in range(steps + 1):
        loss, grad = numpy_loss_grad(A, y, U)
        P = basis.T @ U
        iterates.append(U.copy())
        losses.append(loss)
        coefficients.append(np.einsum("kw,kw->k", P[pairs[:, 0]], P[pairs[:, 1]]))
        if t < steps:
            U = U - lr * grad
    return np.array(iterates), np.array(losses), np.array(coefficients).reshape(steps + 1, len(pairs))


def sensing_case(d: int, m: int, rank: int, seed: int, planted: bool) -> tc.MatrixSensing:
    if planted:
        return tc.MatrixSensing.planted(d=d, rank=rank, m=m, seed=seed, noise=0.1)
    rng = np.random.default_rng(seed)
    return tc.MatrixSensing(symmetric_gaussians(rng, m, d), rng.standard_normal(m))


# (d, m, r', planted, coefficients, lr): odd sizes; m = 40 and 65 take several blocks of the streaming
# pass (32 measurements for d <= 45, 30 at d = 46); d = 257 takes one measurement per block; r' > d.
RUN_CASES = [
    (7, 23, 3, True, "all", 0.05),
    (5, 40, 1, True, "signal", 0.05),
    (3, 11, 5, True, "all", 0.05),
    (4, 9, 6, False, "all", 0.05),
    (46, 65, 2, True, np.array([[0, 0], [1, 0], [45, 2]]), 0.01),
    (257, 3, 2, False, "diagonal", 2e-4),
]


@pytest.mark.parametrize(
    "d, m, width, planted, coefficients, lr", RUN_CASES, ids=[f"d{c[0]}-m{c[1]}-w{c[2]}" for c in RUN_CASES]
)
def test_run_matches_numpy_gradient_descent(
    d: int, m: int, width: int, planted: bool, coefficients: Any, lr: float
) -> None:
    problem = sensing_case(d, m, min(2, d), seed=d + m, planted=planted)
    steps = 4 if d > 100 else 40
    U0 = tc.small_init((2, d, width), 0.3, seed=1)
    record = tc.Record(every=1, coefficients=coefficients, iterates=True)
    traj = tc.run(problem, U0, lr=lr, steps=steps, record=record, n_threads=1)
    pairs = problem.coefficient_pairs(coefficients)
    np.testing.assert_array_equal(traj.coefficient_pairs, pairs)
    for b in range(2):
        iterates, losses, betas = numpy_gd(
            problem.measurements, problem.observations, U0[b], lr, steps, problem.basis(), pairs
        )
        assert traj.iterates is not None and rel_err(traj.iterates[b], iterates) < 1e-10
        assert rel_err(traj.final[b], iterates[-1]) < 1e-10
        assert rel_err(traj.loss[b], losses) < 1e-10
        assert rel_err(traj.coefficients[b], betas) < 1e-10
    assert traj.loss[0, -1] < traj.loss[0, 0]  # it learns


def test_numpy_methods_match_the_reference() -> None:
    problem = tc.MatrixSensing.planted(d=6, rank=2, m=31, seed=2, noise=0.05)
    U = np.random.default_rng(3).standard_normal((3, 6, 4))
    for b in range(3):
        loss, grad = numpy_loss_grad(problem.measurements, problem.observations, U[b])
        assert abs(problem.loss(U[b]) - loss) <= 1e-13 * loss
        assert rel_err(problem.loss(U)[b], loss) < 1e-13
        assert rel_err(problem.grad(U[b]), grad) < 1e-13
        assert rel_err(problem.grad(U)[b], grad) < 1e-13
        P = problem.basis().T @ U[b]
        assert rel_err(problem.coefficients(U[b], "all"), (P @ P.T).ravel()) < 1e-13
    assert problem.zero_loss == pytest.approx(float(problem.loss(np.zeros((6, 1)))), rel=1e-15)


def test_kernel_single_point_matches_numpy() -> None:
    problem = tc.MatrixSensing.planted(d=9, rank=3, m=50, seed=4)
    kernel = problem.build_kernel(5, "all")
    U = np.random.default_rng(5).standard_normal((9, 5))
    loss, grad = kernel.loss_and_grad(U)
    ref_loss, ref_grad = numpy_loss_grad(problem.measurements, problem.observations, U)
    assert rel_err(loss, ref_loss) < 1e-13
    assert rel_err(grad.reshape(9, 5), ref_grad) < 1e-12
    observed_loss, beta = kernel.observe(U)
    assert observed_loss == loss  # the same residual sum, bit for bit, with or without the gradient
    assert rel_err(beta, problem.coefficients(U, "all")) < 1e-12
    assert kernel.state_size == 45 and kernel.n_observables == 81 and not kernel.state_transposed
    assert kernel.model_noise == []
    np.testing.assert_allclose(
        kernel.losses(np.stack([U.ravel(), 2 * U.ravel()])), problem.loss([U, 2 * U]), rtol=1e-13
    )


def test_loss_is_accurate_near_zero() -> None:
    """The recorded loss (observe, losses) keeps its digits at a point 1e-7 from an exact solution, in
    both modes. In the Gram mode (D + 1 < 2m, here D = 15, m = 30) the gradient's loss is the Gram form
    p^T G p - 2 b^T p + |y|^2, which loses them (the driver only checks it for divergence): observe
    then makes the exact pass over the measurements. In the streaming mode (m = 5) the gradient's loss
    comes from the residuals and is exact too."""
    for m, gram in ((30, True), (5, False)):
        problem = tc.MatrixSensing.planted(d=5, rank=2, m=m, seed=6)
        assert problem.V is not None and problem.sigma is not None
        U_star = problem.V * np.sqrt(problem.sigma)
        U = U_star + 1e-7 * np.random.default_rng(7).standard_normal(U_star.shape)
        exact = numpy_loss_grad(problem.measurements, problem.observations, U)[0]
        assert exact < 1e-12
        kernel = problem.build_kernel(2, None)
        assert rel_err(kernel.observe(U)[0], exact) < 1e-8
        assert rel_err(kernel.losses(U.ravel()[None])[0], exact) < 1e-8
        # the gradient's loss: exact from the residuals, or the Gram form (error ~ eps |y|^2 >> exact)
        assert (rel_err(kernel.loss_and_grad(U)[0], exact) < 1e-8) != gram


def _planted_solution_plus_noise(d: int, m: int, seed: int, width: int) -> tuple[tc.MatrixSensing, np.ndarray]:
    problem = tc.MatrixSensing.planted(d=d, rank=2, m=m, seed=seed)
    assert problem.V is not None and problem.sigma is not None
    U_star = np.zeros((d, width))
    U_star[:, :2] = problem.V * np.sqrt(problem.sigma)
    return problem, U_star + 1e-7 * np.random.default_rng(seed + 1).standard_normal((d, width))


# d = 5 (D = 15): m = 40 takes the Gram mode (D + 1 < 2m), m = 5 the streaming pass
MODE_CASES = [(5, 40, True), (5, 5, False), (9, 200, True), (9, 12, False)]


@pytest.mark.parametrize("d, m, gram", MODE_CASES, ids=[f"d{c[0]}-m{c[1]}" for c in MODE_CASES])
def test_both_modes_match_numpy_gradient_descent(d: int, m: int, gram: bool) -> None:
    assert (d * (d + 1) // 2 + 1 < 2 * m) == gram
    problem = sensing_case(d, m, 2, seed=d * m, planted=True)
    U0 = tc.small_init((2, d, 3), 0.3, seed=2)
    record = tc.Record(every=1, coefficients="all", iterates=True)
    traj = tc.run(problem, U0, lr=0.03, steps=60, record=record, n_threads=2)
    pairs = problem.coefficient_pairs("all")
    for b in range(2):
        iterates, losses, betas = numpy_gd(
            problem.measurements, problem.observations, U0[b], 0.03, 60, problem.basis(), pairs
        )
        assert traj.iterates is not None and rel_err(traj.iterates[b], iterates) < 1e-10
        assert rel_err(traj.loss[b], losses) < 1e-10
        assert rel_err(traj.coefficients[b], betas) < 1e-10
    assert traj.loss[0, -1] < traj.loss[0, 0]


@pytest.mark.parametrize("d, m, gram", MODE_CASES, ids=[f"d{c[0]}-m{c[1]}" for c in MODE_CASES])
def test_near_convergence_iterates_and_recorded_loss(d: int, m: int, gram: bool) -> None:
    """From the planted solution plus 1e-7 noise (losses ~1e-13 down, far below the Gram form's rounding
    of ~1e-16 |y|^2): the iterates follow the NumPy loop to 1e-10 and every recorded loss is the exact
    residual loss of its iterate to 1e-8 (observe's exact pass in the Gram mode)."""
    problem, U0 = _planted_solution_plus_noise(d, m, seed=d + m, width=3)
    record = tc.Record(every=1, coefficients=None, iterates=True)
    steps = 50
    traj = tc.run(problem, U0, lr=0.05, steps=steps, record=record, n_threads=1)
    assert traj.iterates is not None
    iterates, losses, _ = numpy_gd(
        problem.measurements, problem.observations, U0, 0.05, steps, problem.basis(), np.zeros((0, 2), np.int64)
    )
    assert traj.iterates.shape == iterates.shape and rel_err(traj.iterates, iterates) < 1e-10
    assert np.max(losses) < 1e-11
    exact = np.array([numpy_loss_grad(problem.measurements, problem.observations, U)[0] for U in traj.iterates])
    # below ~1e-14 the residuals themselves (r ~ 1e-7, each with an error of a few eps |y_i|) hold fewer
    # than 8 digits, in NumPy's loop as in the kernel: the loss is compared down to there
    kept = exact > 1e-14
    assert np.count_nonzero(kept) >= 5
    assert np.all(np.abs(traj.loss[kept] / exact[kept] - 1) < 1e-8)


# -- determinism ----------------------------------------------------------------------------------


def test_bitwise_determinism_across_threads_and_batch_splits() -> None:
    problem = tc.MatrixSensing.planted(d=8, rank=3, m=70, seed=8, noise=0.1)
    U0 = tc.small_init((6, 8, 4), 0.1, seed=9)
    noise = [tc.GradientNoise(0.05), tc.Langevin(beta=1e5)]
    kwargs: dict[str, Any] = dict(
        lr=0.03, steps=80, noise=noise, seed=11, record=tc.Record(every=10, coefficients="all")
    )
    runs = [tc.run(problem, U0, n_threads=n, **kwargs) for n in (1, 2)]
    parts = [
        tc.run(problem, U0[:2], n_threads=2, trajectory_offset=0, **kwargs),
        tc.run(problem, U0[2:], n_threads=1, trajectory_offset=2, **kwargs),
    ]
    split = {key: np.concatenate([getattr(part, key) for part in parts]) for key in ("final", "loss", "coefficients")}
    for key in ("final", "loss", "coefficients"):
        np.testing.assert_array_equal(getattr(runs[1], key), getattr(runs[0], key))
        np.testing.assert_array_equal(split[key], getattr(runs[0], key))
    # the noise matters, and another seed changes it
    assert not np.array_equal(runs[0].final, tc.run(problem, U0, n_threads=1, **{**kwargs, "noise": None}).final)
    assert not np.array_equal(runs[0].final, tc.run(problem, U0, n_threads=1, **{**kwargs, "seed": 12}).final)


@pytest.mark.parametrize("m", [70, 10], ids=["gram", "streaming"])
def test_bitwise_determinism_across_threads_in_both_modes(m: int) -> None:
    """d = 8 (D = 36): m = 70 takes the Gram mode, m = 10 the streaming pass; n_threads and batch splits
    change no bit, with record steps whose loss comes from the Gram form or from the exact pass."""
    problem = tc.MatrixSensing.planted(d=8, rank=3, m=m, seed=21)
    assert problem.V is not None and problem.sigma is not None
    U0 = tc.small_init((5, 8, 4), 0.1, seed=22)
    U0[0] = 1e-7 * np.random.default_rng(23).standard_normal((8, 4))  # near a solution: the exact pass
    U0[0, :, :3] += problem.V * np.sqrt(problem.sigma)
    kwargs: dict[str, Any] = dict(lr=0.03, steps=60, record=tc.Record(every=7, coefficients="all", iterates=True))
    runs = [tc.run(problem, U0, n_threads=n, **kwargs) for n in (1, 2, 2)]
    parts = [tc.run(problem, U0[:3], n_threads=2, **kwargs), tc.run(problem, U0[3:], n_threads=1, **kwargs)]
    for key in ("final", "loss", "coefficients", "iterates"):
        for run in runs[1:]:
            np.testing.assert_array_equal(getattr(run, key), getattr(runs[0], key))
        np.testing.assert_array_equal(np.concatenate([getattr(p, key) for p in parts]), getattr(runs[0], key))


def test_model_level_noise_is_refused_by_name() -> None:
    problem = tc.MatrixSensing.planted(d=4, rank=1, m=10, seed=0)
    assert problem.model_noise == frozenset()
    with pytest.raises(ValueError, match=r"LabelNoise \('label_noise'\).*does not support it"):
        tc.run(problem, tc.small_init((4, 2), 0.1, seed=0), lr=0.01, steps=3, noise=tc.LabelNoise(0.1))
    # and the kernel itself, for a caller that skips the Python check
    kernel = problem.build_kernel(2, None)
    args = _chunk_arguments(1, 8, 0, 3, 0.01, 1)
    args["noise"] = [_core.NoiseTerm(_core.NoiseKind.label_noise, 0.1)]
    with pytest.raises(ValueError, match="does not support 'label_noise' noise"):
        kernel.run_chunk(x=np.zeros((1, 8)), n_threads=1, **args)


# -- the bindings under random input (Hypothesis) -------------------------------------------------


def _kernel_or_error(A: Any, y: Any, width: int, basis: Any, pairs: Any) -> Any:
    try:
        return _core.MatrixSensingKernel(A, y, width, basis, pairs)
    except CLEAR_ERRORS as error:
        return error


@st.composite
def shapes_and_values(draw: Any) -> tuple[np.ndarray, np.ndarray, int, np.ndarray, np.ndarray]:
    """Inputs of the binding, often wrong: any rank and sides, special values, asymmetry, bad pairs."""
    shape = draw(array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=4))
    values = st.one_of(st.sampled_from(SPECIAL), st.floats(-3, 3))
    A = draw(arrays(np.float64, shape, elements=values))
    if A.ndim == 3 and A.shape[1] == A.shape[2] and draw(st.booleans()):
        A = (A + A.transpose(0, 2, 1)) / 2  # symmetric (often what is being tested)
    y_len = draw(st.sampled_from([A.shape[0], A.shape[0] + 1, max(A.shape[0] - 1, 0)]))
    y = draw(arrays(np.float64, (y_len,), elements=values))
    d = A.shape[1] if A.ndim >= 2 else 0
    q = draw(st.integers(0, 3))
    basis = draw(arrays(np.float64, (draw(st.sampled_from([d, d + 1])), q), elements=st.floats(-1, 1)))
    pairs = draw(
        arrays(np.int64, (draw(st.integers(0, 3)), draw(st.sampled_from([2, 2, 3]))), elements=st.integers(-1, 3))
    )
    return A, y, draw(st.integers(-1, 4)), basis, pairs


def _valid(A: np.ndarray, y: np.ndarray, width: int, basis: np.ndarray, pairs: np.ndarray) -> bool:
    if A.ndim != 3 or A.shape[1] != A.shape[2] or A.shape[0] == 0 or A.shape[1] == 0 or y.shape != (A.shape[0],):
        return False
    if not (np.all(np.isfinite(A)) and np.all(np.isfinite(y))):
        return False
    with np.errstate(invalid="ignore", over="ignore"):
        asymmetry = np.max(np.abs(A - A.transpose(0, 2, 1)), axis=(1, 2))
    if np.any(asymmetry > 1e-10 * np.max(np.abs(A), axis=(1, 2))):
        return False
    d, q = A.shape[1], basis.shape[1]
    pairs_ok = pairs.shape[1] == 2 and (pairs.size == 0 or (pairs.min() >= 0 and pairs.max() < q))
    return width >= 1 and basis.shape[0] == d and pairs_ok


@given(shapes_and_values())
def test_constructor_accepts_exactly_valid_input(case: tuple[Any, ...]) -> None:
    result = _kernel_or_error(*case)
    assert _valid(*case) == (not isinstance(result, Exception)), result
    if isinstance(result, Exception):
        assert isinstance(result, ValueError)  # float64 input: every refusal is a ValueError with a name
        assert str(result).split(":")[0] in {"measurements", "observations", "basis", "pairs", "matrix sensing"} or (
            "coefficient pair" in str(result)
        ), result


@given(st.sampled_from([np.int64, np.float32, np.bool_, np.complex128, object]), st.integers(1, 3))
def test_constructor_converts_or_refuses_other_dtypes(dtype: Any, d: int) -> None:
    """Other dtypes are converted to float64 (pybind11's forcecast: complex loses its imaginary part
    with a ComplexWarning, as for every kernel) or refused with a clear error, never a crash."""
    A = np.eye(d)[None].repeat(2, axis=0)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            kernel = _core.MatrixSensingKernel(
                A.astype(dtype), np.ones(2).astype(dtype), 1, np.eye(d), np.zeros((0, 2), np.int64)
            )
        except CLEAR_ERRORS:
            return
    assert kernel.state_size == d
    assert kernel.loss_and_grad(np.zeros(d))[0] == pytest.approx(0.25)


@st.composite
def valid_problem(draw: Any) -> tuple[np.ndarray, np.ndarray, int, np.ndarray, np.ndarray]:
    d, m, width, q = draw(st.integers(1, 4)), draw(st.integers(1, 6)), draw(st.integers(1, 3)), draw(st.integers(0, 3))
    A = draw(arrays(np.float64, (m, d, d), elements=st.floats(-1, 1)))
    A = (A + A.transpose(0, 2, 1)) / 2
    y = draw(arrays(np.float64, (m,), elements=st.floats(-1, 1)))
    basis = draw(arrays(np.float64, (d, q), elements=st.floats(-1, 1)))
    pairs = draw(arrays(np.int64, (draw(st.integers(0, 4)) if q else 0, 2), elements=st.integers(0, max(q - 1, 0))))
    return A, y, width, basis, pairs


@given(valid_problem(), st.data())
def test_loss_and_grad_match_central_differences(case: tuple[Any, ...], data: Any) -> None:
    A, y, width, basis, pairs = case
    kernel = _core.MatrixSensingKernel(A, y, width, basis, pairs)
    d = A.shape[1]
    U = data.draw(arrays(np.float64, (d, width), elements=st.floats(-1, 1)))
    V = data.draw(arrays(np.float64, (d, width), elements=st.floats(-1, 1)))
    assume(np.any(V != 0))
    loss, grad = kernel.loss_and_grad(U)
    reference = numpy_loss_grad(A, y, U)[0]
    assert kernel.observe(U)[0] == pytest.approx(reference, rel=1e-12, abs=1e-300)  # the recorded loss
    # the gradient's loss: exact in the streaming mode; in the Gram mode (D + 1 < 2m) the Gram form, whose
    # error is a few eps times its terms' scale sum_i <A_i, U U^T>^2 + |y|^2 (it cancels near a solution)
    residual_terms = np.einsum("iab,ab->i", A, U @ U.T)
    scale = float(residual_terms @ residual_terms + y @ y) / (4 * len(y))
    assert abs(loss - reference) <= 1e-12 * reference + 1e-14 * scale
    h = 1e-4
    # f is a quartic in t along U + t V: the central difference is exact up to h^2 f'''/6 and rounding
    difference = (kernel.loss_and_grad(U + h * V)[0] - kernel.loss_and_grad(U - h * V)[0]) / (2 * h)
    scale = 1.0 + float(np.sum(A**2)) * (1.0 + float(np.sum(U**2)) + float(np.sum(V**2))) ** 2 + float(y @ y)
    assert abs(difference - float(np.sum(grad.reshape(d, width) * V))) <= 1e-6 * scale


def _chunk_arguments(B: int, n: int, K: int, steps: int, lr: float, every: int) -> dict[str, Any]:
    record_steps = np.unique(np.append(np.arange(0, steps + 1, every), steps)).astype(np.int64)
    R = len(record_steps)
    return dict(
        velocity=None,
        diverged_at=np.full(B, -1, np.int64),
        last_perturbation=np.full(B, -1, np.int64),
        loss_limit=np.full(B, np.inf),
        loss=np.zeros((B, R)),
        observations=np.zeros((B, R, K)),
        iterates=np.zeros((B, R, n)),
        lr=np.full(steps, lr),
        record_steps=record_steps,
        t0=0,
        t1=steps,
        total_steps=steps,
        momentum=0.0,
        noise=[],
        seed=0,
        trajectory_offset=0,
    )


@given(valid_problem(), st.data())
def test_run_chunk_matches_numpy_gradient_descent(case: tuple[Any, ...], data: Any) -> None:
    A, y, width, basis, pairs = case
    kernel = _core.MatrixSensingKernel(A, y, width, basis, pairs)
    d, B = A.shape[1], data.draw(st.integers(1, 3))
    steps, every = data.draw(st.integers(0, 6)), data.draw(st.integers(1, 3))
    lr = data.draw(st.floats(0.0, 0.05))
    x = data.draw(arrays(np.float64, (B, d * width), elements=st.floats(-1, 1)))
    args = _chunk_arguments(B, d * width, len(pairs), steps, lr, every)
    state = x.copy()
    kernel.run_chunk(x=state, n_threads=data.draw(st.integers(1, 2)), **args)
    rows = args["record_steps"]
    for b in range(B):
        iterates, losses, coefficients = numpy_gd(A, y, x[b].reshape(d, width), lr, steps, basis, pairs)
        assert rel_err(state[b], iterates[-1].ravel()) < 1e-12
        assert rel_err(args["iterates"][b], iterates[rows].reshape(len(rows), -1)) < 1e-12
        assert np.allclose(args["loss"][b], losses[rows], rtol=1e-12, atol=1e-300)
        assert np.allclose(args["observations"][b], coefficients[rows], rtol=1e-12, atol=1e-14)
    assert np.all(args["diverged_at"] == -1)


# -- the Python problem ---------------------------------------------------------------------------


def test_constructor_errors_name_the_argument() -> None:
    rng = np.random.default_rng(0)
    A, y = symmetric_gaussians(rng, 5, 3), rng.standard_normal(5)
    asymmetric = A.copy()
    asymmetric[3, 0, 1] += 1e-6
    V = np.linalg.qr(rng.standard_normal((3, 2)))[0]
    cases: list[tuple[tuple[Any, ...], dict[str, Any], str]] = [
        ((asymmetric, y), {}, r"measurements: A_3 is not symmetric"),
        ((A[0], y), {}, r"measurements: expected 3 dimensions"),
        ((A[:, :, :2], y), {}, r"measurements: expected shape \(m, d, d\)"),
        ((A[:0], y[:0]), {}, r"measurements: expected shape \(m, d, d\) with m, d >= 1"),
        ((A, y[:4]), {}, r"observations: expected shape \(5,\)"),
        ((A, y[:, None]), {}, r"observations: expected 1 dimensions"),
        ((np.where(A == A[2, 1, 1], np.nan, A), y), {}, r"measurements: contains NaN"),
        ((A, np.append(y[:4], np.inf)), {}, r"observations: contains NaN"),
        ((A, y), {"V": V}, r"V, sigma: give both"),
        ((A, y), {"sigma": [1.0, 2.0]}, r"V, sigma: give both"),
        ((A, y), {"V": np.vstack([V, V[:1]]) / 2, "sigma": [2.0, 1.0]}, r"V: columns must be orthonormal"),
        ((A, y), {"V": np.linalg.qr(rng.standard_normal((4, 2)))[0], "sigma": [2.0, 1.0]}, r"V: expected 3 rows"),
        ((A, y), {"V": V, "sigma": [2.0, -1.0]}, r"sigma: expected positive values"),
        ((A, y), {"symmetry_tol": -1.0}, r"symmetry_tol"),
    ]
    for args, kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            tc.MatrixSensing(*args, **kwargs)
    with pytest.raises(TypeError, match="measurements"):
        tc.MatrixSensing(A.astype(complex), y)
    # within the tolerance: accepted, and used symmetrised
    nearly = A.copy()
    nearly[1, 0, 2] += 1e-13
    problem = tc.MatrixSensing(nearly, y)
    np.testing.assert_array_equal(problem.measurements, problem.measurements.transpose(0, 2, 1))
    assert not problem.measurements.flags.writeable


def test_planted_errors_and_keywords() -> None:
    with pytest.raises(ValueError, match="rank: must be <= d = 3"):
        tc.MatrixSensing.planted(d=3, rank=4, m=5, seed=0)
    with pytest.raises(ValueError, match="noise"):
        tc.MatrixSensing.planted(d=3, rank=1, m=5, seed=0, noise=-0.1)
    with pytest.raises(ValueError, match="m: expected an integer >= 1|m: "):
        tc.MatrixSensing.planted(d=3, rank=1, m=0, seed=0)
    with pytest.raises(ValueError, match=r"sigma: expected shape \(2\)"):
        tc.MatrixSensing.planted(d=3, rank=2, m=5, sigma=[1.0], seed=0)
    with pytest.raises(TypeError):
        tc.MatrixSensing.planted(3, 1, 5, seed=0)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="seed"):
        tc.MatrixSensing.planted(d=3, rank=1, m=5)  # type: ignore[call-arg]


def test_planted_target_streams_and_population_loss() -> None:
    problem = tc.MatrixSensing.planted(d=6, rank=3, m=20, sigma=[3.0, 2.0, 0.5], seed=4)
    factorization = tc.SymmetricMatrixFactorization.planted(d=6, rank=3, sigma=[3.0, 2.0, 0.5], seed=4)
    np.testing.assert_array_equal(problem.as_factorization().V, factorization.V)
    np.testing.assert_array_equal(problem.target, factorization.target)
    np.testing.assert_array_equal(problem.basis(), factorization.basis())
    np.testing.assert_array_equal(problem.eigenbasis(), factorization.eigenbasis())
    np.testing.assert_allclose(
        problem.observations, np.einsum("iab,ab->i", problem.measurements, problem.target), rtol=1e-13, atol=1e-13
    )
    noisy = tc.MatrixSensing.planted(d=6, rank=3, m=20, sigma=[3.0, 2.0, 0.5], seed=4, noise=0.5)
    np.testing.assert_array_equal(noisy.measurements, problem.measurements)  # the noise has its own stream
    assert 0.1 < np.std(noisy.observations - problem.observations) < 1.0
    assert problem.describe() == {"name": "matrix_sensing", "d": 6, "m": 20, "rank": 3, "sigma": [3.0, 2.0, 0.5]}
    # A_i = (G + G^T) / 2: the mean over measurements is the factorization's loss (+ noise^2 / 4)
    # 4 f / (|E|^2 + noise^2) is chi^2_m / m: 1 +- 0.014 at m = 10^4
    big = tc.MatrixSensing.planted(d=4, rank=2, m=10_000, seed=5, noise=0.3)
    U = np.random.default_rng(6).standard_normal((4, 2))
    population = float(big.as_factorization().loss(U)) + 0.3**2 / 4
    assert abs(float(big.loss(U)) / population - 1.0) < 0.06
    diagonal, off = big.measurements[:, 0, 0], big.measurements[:, 0, 1]
    assert abs(np.var(diagonal) - 1.0) < 0.05 and abs(np.var(off) - 0.5) < 0.03


def test_unknown_target_records_entries_of_the_prediction() -> None:
    rng = np.random.default_rng(1)
    problem = tc.MatrixSensing(symmetric_gaussians(rng, 12, 4), rng.standard_normal(12))
    assert not problem.is_planted and problem.rank == 0
    np.testing.assert_array_equal(problem.basis(), np.eye(4))
    assert problem.coefficient_pairs(True).shape == (0, 2)  # the signal block is empty
    U0 = tc.small_init((4, 2), 0.2, seed=2)
    traj = tc.run(problem, U0, lr=0.02, steps=5, record=tc.Record(coefficients="all"))
    assert traj.coefficients.shape == (6, 16)
    assert rel_err(traj.coefficients[-1], (traj.final @ traj.final.T).ravel()) < 1e-13
    with pytest.raises(ValueError, match="target is unknown"):
        problem.as_factorization()
    with pytest.raises(ValueError, match="target is unknown"):
        _ = problem.target
    with pytest.raises(ValueError, match="target is unknown"):
        problem.eigenbasis()


def test_examples_cover_the_variants() -> None:
    examples: dict[str, Any] = tc.MatrixSensing.examples()
    assert {p.is_planted for p in examples.values()} == {True, False}
    for problem in examples.values():
        kernel = problem.compiled(2, True).kernel
        assert isinstance(kernel, _core.MatrixSensingKernel)
        assert problem.largest_product(2) >= problem.d**2 * 2


# -- incremental learning -------------------------------------------------------------------------


def test_components_are_learned_one_after_another_as_in_the_factorization() -> None:
    """Small initialization, planted rank 3 with distinct sigma, m >> d^2: each beta_ii rises in turn,
    in the order of sigma, at the times of the symmetric factorization with the same target."""
    sigma, alpha, width, lr = np.array([6.0, 3.0, 1.5]), 1e-4, 5, 0.05
    problem = tc.MatrixSensing.planted(d=10, rank=3, m=4000, sigma=sigma, seed=13)
    U0 = tc.small_init((10, width), alpha, seed=14)
    record = tc.Record(every=1, coefficients="signal")
    sensing = tc.run(problem, U0, lr=lr, steps=400, record=record)
    factorization = tc.run(problem.as_factorization(), U0, lr=lr, steps=400, record=record)
    _, betas = sensing.diagonal()
    times = tc.analysis.learning_times(betas, q=0.5)
    reference = tc.analysis.learning_times(factorization.diagonal()[1], q=0.5)
    assert np.all(np.diff(times) > 10), times  # one after another, by decreasing sigma
    assert np.all(np.abs(times / reference - 1) < 0.1), (times, reference)
    assert np.all(np.abs(times / predicted_learning_times(sigma, alpha, width, lr) - 1) < 0.25)
    # while one component is learned the later ones are still near their start
    first = int(times[0])
    assert betas[first, 1] < 0.05 * sigma[1] and betas[first, 2] < 0.01 * sigma[2]
    # and each is recovered in the end (noise-free, m >> d(d+1)/2: M* is the unique minimiser)
    assert np.all(np.abs(betas[-1] / sigma - 1) < 0.05), betas[-1]
