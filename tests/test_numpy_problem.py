"""Problems written in NumPy (tc.NumpyProblem): the built-in problems' semantics through the same driver.

A NumPy symmetric factorization follows tc.SymmetricMatrixFactorization's trajectory with every
parameter-level noise spec and momentum (the same noise draws); runs are bitwise reproducible across
thread counts and batch splits; a callback's exception, Ctrl-C included, leaves run unchanged; a
wrong result is a clear error; non-finite losses are divergence; the memory guard refuses before
any callback runs; problems pickle.
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
import time
from typing import Any

import numpy as np
import pytest

import trajcore as tc
from trajcore.numpy_problem import NumpySymmetricFactorization
from trajcore.problem import resolve_pairs

D, RANK, WIDTH = 7, 3, 4


class Factorization(tc.NumpyProblem):
    """1/4 ||U U^T - V diag(sigma) V^T||^2 as a user writes it: recording beta_ij = v_i^T U U^T v_j."""

    def __init__(self, V: np.ndarray, sigma: np.ndarray) -> None:
        self.V, self.sigma = V, sigma
        self.M = (V * sigma) @ V.T
        self.calls = 0

    def parameter_shape(self, width: int) -> tuple[int, ...]:
        return (self.V.shape[0], width)

    def loss_and_grad(self, U: np.ndarray) -> tuple[float, np.ndarray]:
        self.calls += 1
        R = U @ U.T - self.M
        return 0.25 * np.sum(R**2), R @ U

    def observables(self, U: np.ndarray, coefficients: Any) -> np.ndarray:
        pairs = self.coefficient_pairs(coefficients)
        P = self.V.T @ U
        return np.sum(P[pairs[:, 0]] * P[pairs[:, 1]], axis=1)

    def coefficient_pairs(self, coefficients: Any) -> np.ndarray:
        return resolve_pairs(coefficients, len(self.sigma), len(self.sigma), len(self.sigma))

    @property
    def zero_loss(self) -> float:
        return 0.25 * float(np.sum(self.sigma**2))


class Quadratic(tc.NumpyProblem):
    """1/2 |x - c|^2 for x (3,): no observables, default zero_loss; `fail_at` raises from a call on."""

    def __init__(self, fail_at: int | None = None, error: BaseException | None = None) -> None:
        self.fail_at, self.error, self.calls = fail_at, error, 0

    def parameter_shape(self, width: int) -> tuple[int, ...]:
        return (3,)

    def loss_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            assert self.error is not None
            raise self.error
        r = x - np.array([1.0, -2.0, 0.5])
        return 0.5 * float(r @ r), r


def _quadratic_loss_and_grad(x: np.ndarray) -> tuple[float, np.ndarray]:
    return 0.5 * float(x @ x), x


def _shape_of_three(width: int) -> tuple[int, ...]:
    return (3,)


def _pair() -> tuple[Factorization, tc.SymmetricMatrixFactorization]:
    rng = np.random.default_rng(3)
    V, _ = np.linalg.qr(rng.standard_normal((D, RANK)))
    sigma = np.array([3.0, 2.0, 0.5])
    return Factorization(V, sigma), tc.SymmetricMatrixFactorization(V=V, sigma=sigma)


NOISES = {
    "none": None,
    "gradient": tc.GradientNoise(0.05, anneal=0.55),
    "langevin": tc.Langevin(beta=1e4),
    "perturbed_gd": tc.PerturbedGD(radius=0.02, threshold=1e3, interval=7),
    "combined": [tc.GradientNoise(0.02), tc.Langevin(beta=1e5), tc.PerturbedGD(0.01, 1e3, 11)],
}


def _run(problem: tc.Problem, noise: Any = None, **kwargs: Any) -> tc.Trajectory:
    settings: dict[str, Any] = dict(
        lr=0.03,
        steps=80,
        noise=noise,
        seed=11,
        momentum=0.3,
        record=tc.Record(every=3, coefficients="signal", iterates=True),
    )
    settings.update(kwargs)
    init = settings.pop("init", tc.small_init((5, D, WIDTH), 0.1, seed=2))
    return tc.run(problem, init, **settings)


@pytest.mark.parametrize("momentum", [0.0, 0.3])
@pytest.mark.parametrize("noise", list(NOISES))
def test_same_trajectory_as_the_builtin_problem(noise: str, momentum: float) -> None:
    """The same mathematics, init, seed and noise: the same trajectory to rounding (the same draws)."""
    ours, builtin = _pair()
    mine, theirs = _run(ours, NOISES[noise], momentum=momentum), _run(builtin, NOISES[noise], momentum=momentum)
    for name in ("loss", "coefficients", "iterates", "final"):
        a, b = getattr(mine, name), getattr(theirs, name)
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12 * np.max(np.abs(b)), err_msg=name)
    np.testing.assert_array_equal(mine.coefficient_pairs, theirs.coefficient_pairs)
    assert mine.metadata["observables"] == theirs.metadata["observables"]
    assert not np.any(mine.diverged)
    if noise != "none":  # the noise is there: it moves the run
        assert not np.allclose(mine.final, _run(ours, None, momentum=momentum).final)


def test_reference_example_matches_the_builtin_problem() -> None:
    """trajcore.numpy_problem's NumpySymmetricFactorization (README, shared tests) is the same problem."""
    ours = NumpySymmetricFactorization.planted(d=D, rank=RANK, seed=4)
    builtin = tc.SymmetricMatrixFactorization.planted(d=D, rank=RANK, seed=4)
    mine, theirs = _run(ours, NOISES["combined"]), _run(builtin, NOISES["combined"])
    np.testing.assert_allclose(mine.iterates, theirs.iterates, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(mine.coefficients, theirs.coefficients, rtol=1e-10, atol=1e-14)
    assert ours.zero_loss == pytest.approx(builtin.zero_loss, rel=1e-14)


def _bytes(traj: tc.Trajectory) -> list[bytes]:
    arrays = [traj.loss, traj.coefficients, traj.iterates, traj.final, np.asarray(traj.diverged_at)]
    return [np.ascontiguousarray(a).tobytes() for a in arrays]


def test_bitwise_identical_for_thread_counts_and_batch_splits() -> None:
    problem, _ = _pair()
    init = tc.small_init((6, D, WIDTH), 0.1, seed=8)
    one = _run(problem, NOISES["combined"], init=init, n_threads=1)
    assert _bytes(one) == _bytes(_run(problem, NOISES["combined"], init=init, n_threads=2))
    first = _run(problem, NOISES["combined"], init=init[:2], n_threads=2)
    second = _run(problem, NOISES["combined"], init=init[2:], n_threads=2, trajectory_offset=2)
    for name in ("loss", "coefficients", "iterates", "final", "diverged_at"):
        joined = np.concatenate([np.asarray(getattr(first, name)), np.asarray(getattr(second, name))])
        assert joined.tobytes() == np.asarray(getattr(one, name)).tobytes(), name


def test_functions_instead_of_a_subclass() -> None:
    """NumpyProblem(parameter_shape=..., loss_and_grad=...) runs like the subclass with those methods."""
    problem, _ = _pair()
    given = tc.NumpyProblem(
        parameter_shape=problem.parameter_shape,
        loss_and_grad=problem.loss_and_grad,
        observables=problem.observables,
        coefficient_pairs=problem.coefficient_pairs,
        zero_loss=problem.zero_loss,
    )
    assert _bytes(_run(given, NOISES["combined"])) == _bytes(_run(problem, NOISES["combined"]))
    with pytest.raises(ValueError, match="give both"):
        tc.NumpyProblem(parameter_shape=problem.parameter_shape, loss_and_grad=problem.loss_and_grad, observables=len)
    with pytest.raises(TypeError, match="loss_and_grad: expected a function"):
        tc.NumpyProblem(parameter_shape=problem.parameter_shape, loss_and_grad=3.0)  # type: ignore[arg-type]
    with pytest.raises(NotImplementedError, match="NumpyProblem.loss_and_grad: define it"):
        tc.run(tc.NumpyProblem(parameter_shape=_shape_of_three), np.ones(3), lr=0.1, steps=2)


def test_one_call_per_step_and_a_copy_of_the_state_at_each() -> None:
    """A record step without observables reuses the gradient's loss; a callback may change its x."""
    problem = Quadratic()
    init = np.zeros((2, 3))
    tc.run(problem, init, lr=0.1, steps=20, record=tc.Record(every=1))
    # 20 steps, the initial loss (the divergence scale), the last record and zero_loss (once), per trajectory
    assert problem.calls == 2 * (20 + 2) + 1

    class Scribbling(Quadratic):
        def loss_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
            result = super().loss_and_grad(x)
            x[...] = 1e300  # the driver's state is not this array
            return result[0], result[1].copy()

    clean, scribbled = (tc.run(p, init, lr=0.1, steps=20) for p in (Quadratic(), Scribbling()))
    assert _bytes(clean) == _bytes(scribbled)


def test_loss_is_batched_and_zero_loss_defaults_to_the_loss_at_zero() -> None:
    problem, _ = _pair()
    U = tc.small_init((2, 3, D, WIDTH), 0.3, seed=1)
    expected = [[problem.loss_and_grad(u)[0] for u in row] for row in U]
    np.testing.assert_array_equal(problem.loss(U), expected)
    assert isinstance(problem.loss(U[0, 0]), float)
    with pytest.raises(ValueError, match="params: expected shape"):
        problem.loss(np.zeros((D + 1, WIDTH)))
    assert Quadratic().zero_loss == pytest.approx(0.5 * (1 + 4 + 0.25))


class CustomError(Exception):
    pass


@pytest.mark.parametrize("n_threads", [1, 2])
def test_a_callback_exception_leaves_run_as_raised(n_threads: int) -> None:
    """The user's exception, type and message, from any trajectory and thread (here every one raises)."""
    problem = Quadratic(fail_at=15, error=CustomError("no gradient at this point"))
    with pytest.raises(CustomError, match="no gradient at this point"):
        tc.run(problem, np.zeros((4, 3)), lr=0.1, steps=50, n_threads=n_threads)
    # the same for an error of NumPy's own making inside the callback
    bad = tc.NumpyProblem(parameter_shape=_shape_of_three, loss_and_grad=lambda x: (0.0, x @ np.ones((4, 4))))
    with pytest.raises(ValueError, match="matmul"):
        tc.run(bad, np.zeros((3, 3)), lr=0.1, steps=3, n_threads=n_threads)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_keyboard_interrupt_in_a_callback_stops_run(n_threads: int) -> None:
    problem = Quadratic(fail_at=30, error=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        tc.run(problem, np.zeros((4, 3)), lr=0.1, steps=100, n_threads=n_threads)


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name == "nt", reason="POSIX signals")
def test_ctrl_c_stops_a_long_run() -> None:
    """A real SIGINT during a run that would take minutes: KeyboardInterrupt within a second or so."""

    class Slow(Quadratic):
        def loss_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
            time.sleep(1e-4)
            if time.perf_counter() - started > 30:
                raise RuntimeError("the interrupt did not arrive")
            return super().loss_and_grad(x)

    # Python's own handler, whatever this process inherited (a shell's background job ignores SIGINT)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    started = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            tc.run(Slow(), np.zeros((4, 3)), lr=1e-3, steps=10**7, n_threads=2)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert time.perf_counter() - started < 10


def _returning(result: Any) -> tc.NumpyProblem:
    return tc.NumpyProblem(parameter_shape=_shape_of_three, loss_and_grad=lambda x: result)


@pytest.mark.parametrize(
    "result, error, message",
    [
        (1.0, TypeError, r"loss_and_grad: expected a tuple \(loss, grad\), got float"),
        ((1.0, np.zeros(3), 0), TypeError, "got tuple of length 3"),
        ([1.0, np.zeros(3)], TypeError, "got list"),
        ((1.0, np.zeros(4)), ValueError, r"expected grad of shape \(3,\) \(the shape of x\), got \(4,\)"),
        ((1.0, np.zeros((3, 1))), ValueError, r"got \(3, 1\)"),
        ((1.0, np.zeros(3, complex)), TypeError, "expected grad as real numbers"),
        ((1.0, ["a", "b", "c"]), TypeError, "expected grad as real numbers"),
        ((np.ones(2), np.zeros(3)), TypeError, r"loss as one real number, got an array of shape \(2,\)"),
        (("1.0", np.zeros(3)), TypeError, "loss as one real number, got str"),
        ((1j, np.zeros(3)), TypeError, "loss as one real number, got complex"),
    ],
)
def test_a_wrong_result_is_a_clear_error(result: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message) as raised:
        tc.run(_returning(result), np.zeros(3), lr=0.1, steps=2)
    assert "NumpyProblem.loss_and_grad" in str(raised.value)


def test_accepted_results() -> None:
    """Any real scalar loss (Python, NumPy, 0-d), grad as a list or of an integer dtype."""
    for result in [(1, [0, 0, 0]), (np.float32(1.0), np.zeros(3, np.int64)), (np.array(1.0), (0.0, 0.0, 0.0))]:
        traj = tc.run(_returning(result), np.ones(3), lr=0.1, steps=2)
        np.testing.assert_array_equal(traj.loss, 1.0)


def test_wrong_observables_are_clear_errors() -> None:
    class Short(Factorization):
        def observables(self, U: np.ndarray, coefficients: Any) -> np.ndarray:
            return super().observables(U, coefficients)[:-1]

    problem, _ = _pair()
    with pytest.raises(ValueError, match=r"Short.observables: expected the observables of shape \(9,\)"):
        tc.run(Short(problem.V, problem.sigma), np.ones((D, 2)), lr=0.01, steps=2)

    class Unlabelled(Quadratic):
        def observables(self, x: np.ndarray, coefficients: Any) -> np.ndarray:
            return x

    with pytest.raises(TypeError, match="Unlabelled: defines observables without coefficient_pairs"):
        tc.run(Unlabelled(), np.ones(3), lr=0.01, steps=2)
    with pytest.raises(ValueError, match="coefficients: Quadratic records no observables"):
        tc.run(Quadratic(), np.ones(3), lr=0.01, steps=2, record=tc.Record(coefficients="all"))


def test_what_only_compiled_kernels_do_is_refused() -> None:
    problem, _ = _pair()
    init = np.ones((D, 2))
    with pytest.raises(ValueError, match=r"coordinates: expected one of \('given',\) for Factorization"):
        tc.run(problem, init, lr=0.01, steps=2, coordinates="eigenbasis")
    for spec in (tc.Dropout(0.1), tc.LabelNoise(0.1), tc.WeightNoise(0.1)):
        with pytest.raises(ValueError, match=spec.kind):
            tc.run(problem, init, lr=0.01, steps=2, noise=spec)
    assert problem.calls == 0


@pytest.mark.parametrize("value", [np.inf, np.nan])
def test_a_non_finite_loss_is_divergence(value: float) -> None:
    """A trajectory whose loss is inf or NaN at step t stops there, its later records NaN."""

    class Breaking(Quadratic):
        def loss_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
            loss, grad = super().loss_and_grad(x)
            return (value if x[0] > 0.5 else loss), grad

    init = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.5], [0.6, 0.0, 0.0]])
    traj = tc.run(Breaking(), init, lr=0.1, steps=30)
    # x0 = 1 - 0.9^t passes 0.5 at t = 7 (1 - 0.9^7 = 0.52); the third starts beyond it
    np.testing.assert_array_equal(traj.diverged_at, [7, 7, 0])
    assert np.all(np.isfinite(traj.loss[0, :7])) and np.all(np.isnan(traj.loss[0, 8:]))
    assert np.isnan(traj.loss[2, 1:]).all()


def test_divergence_is_where_the_builtin_problem_diverges() -> None:
    ours, builtin = _pair()
    init = tc.small_init((3, D, WIDTH), 1.0, seed=0)
    mine, theirs = (tc.run(p, init, lr=0.4, steps=60) for p in (ours, builtin))
    assert np.all(np.asarray(theirs.diverged_at) > 0)
    np.testing.assert_array_equal(mine.diverged_at, theirs.diverged_at)
    np.testing.assert_allclose(mine.loss, theirs.loss, rtol=1e-8, equal_nan=True)
    # a NaN gradient makes the next state non-finite: divergence at the following step
    nan_grad = tc.NumpyProblem(parameter_shape=_shape_of_three, loss_and_grad=lambda x: (1.0, np.full(3, np.nan)))
    assert tc.run(nan_grad, np.ones(3), lr=0.1, steps=5).diverged_at == 1


def test_memory_guard_refuses_before_any_callback() -> None:
    problem, _ = _pair()
    tc.set_memory_limit(1 << 20)
    try:
        with pytest.raises(MemoryError, match="run: record arrays"):
            tc.run(problem, np.ones((4, D, 2)), lr=0.01, steps=10**6, record=tc.Record(iterates=True))
    finally:
        tc.set_memory_limit(None)
    assert problem.calls == 0


def test_problems_pickle() -> None:
    """Sweeps ship problems to worker processes: a subclass and functions given by name both pickle."""
    problem, _ = _pair()
    functions = tc.NumpyProblem(
        parameter_shape=_shape_of_three, loss_and_grad=_quadratic_loss_and_grad, name="sphere", zero_loss=1.0
    )
    for original, init in [(problem, tc.small_init((2, D, 2), 0.1, seed=0)), (functions, np.ones((2, 3)))]:
        before = tc.run(original, init, lr=0.01, steps=10, noise=tc.GradientNoise(0.1), seed=3)
        copy = pickle.loads(pickle.dumps(original))
        assert type(copy) is type(original) and copy.name == original.name
        assert _bytes(tc.run(copy, init, lr=0.01, steps=10, noise=tc.GradientNoise(0.1), seed=3)) == _bytes(before)
    assert functions.describe() == {"name": "sphere"}


def test_no_reference_cycle_through_the_kernel() -> None:
    """A run's kernel holds the problem's methods, and the problem keeps no kernel: it is freed."""
    import gc
    import weakref

    problem = Quadratic()
    tc.run(problem, np.ones(3), lr=0.1, steps=3)
    ref = weakref.ref(problem)
    gc.disable()
    try:
        del problem
        assert ref() is None
    finally:
        gc.enable()


def _no_observables(x: np.ndarray) -> tuple[float, np.ndarray]:
    return 0.0, np.zeros(0)


@pytest.mark.parametrize(
    "result, error, message",
    [
        (1.0, TypeError, r"expected a tuple \(loss, grad\), got float"),
        ((1.0, np.zeros(3), 0), TypeError, "got tuple of length 3"),
        ((1.0, np.zeros(4)), ValueError, r"expected grad with 3 values, got shape \(4,\)"),
        ((1.0, np.zeros(3, complex)), TypeError, "expected grad as real numbers"),
        ((1.0, object()), TypeError, "expected grad as real numbers"),
        ((np.ones(2), np.zeros(3)), TypeError, r"loss as one real number, got an array of shape \(2,\)"),
        (("1.0", np.zeros(3)), TypeError, "loss as one real number, got str"),
    ],
)
def test_the_kernel_checks_results_again(result: Any, error: type[Exception], message: str) -> None:
    """_core.PythonKernel, the second line behind NumpyProblem's checks: the same errors, from C++."""
    kernel = tc._core.PythonKernel(lambda x: result, _no_observables, 3, 0, "Direct")
    with pytest.raises(error, match="Direct.loss_and_grad: .*" + message):
        kernel.loss_and_grad(np.zeros(3))
    arrays = dict(
        x=np.zeros((2, 3)),
        velocity=None,
        diverged_at=np.full(2, -1),
        last_perturbation=np.full(2, -1),
        loss_limit=np.full(2, np.inf),
        loss=np.zeros((2, 1)),
        observations=np.zeros((2, 1, 0)),
        iterates=None,
        lr=np.full(3, 0.1),
        record_steps=np.array([3]),
    )
    with pytest.raises(error, match=message):
        kernel.run_chunk(
            **arrays, t0=0, t1=3, total_steps=3, momentum=0.0, noise=[], seed=0, trajectory_offset=0, n_threads=2
        )
    observing = tc._core.PythonKernel(lambda x: (0.0, np.zeros(3)), lambda x: (0.0, np.zeros(2)), 3, 1, "Direct")
    with pytest.raises(ValueError, match=r"Direct.observe: expected observables with 1 values, got shape \(2,\)"):
        observing.observe(np.zeros(3))
