"""What ``run`` keeps between calls: kernels cached on the problem, BLAS limited per run and restored.

The cache must be invisible: cached runs equal fresh ones, requests with other contents never share
a kernel, bad requests raise as before, and problems still pickle.
"""

from __future__ import annotations

import pickle
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import trajcore as tc
from trajcore import config
from trajcore import problem as problem_module


def _smf() -> tc.SymmetricMatrixFactorization:
    return tc.SymmetricMatrixFactorization.planted(d=8, rank=3, sigma=[4.0, 2.0, 1.0], seed=0)


def _arrays(traj: tc.Trajectory) -> list[Any]:
    return [traj.steps, traj.loss, traj.coefficients, traj.coefficient_pairs, traj.final, traj.diverged_at]


def _assert_same_run(a: tc.Trajectory, b: tc.Trajectory) -> None:
    for x, y in zip(_arrays(a), _arrays(b), strict=True):
        np.testing.assert_array_equal(x, y)
    assert a.metadata == b.metadata


def _problems() -> list[tuple[tc.Problem, np.ndarray]]:
    smf = _smf()
    dense = tc.SymmetricMatrixFactorization.planted(d=6, rank=2, seed=1, storage="dense")
    amf = tc.AsymmetricMatrixFactorization.planted(m=5, n=4, rank=2, seed=2)
    tensor = tc.OrthogonalTensorDecomposition.planted(d=5, order=3, rank=2, seed=3)
    dln = tc.DeepLinearNetwork.planted([3, 4, 2], n=20, seed=4)
    return [
        (smf, tc.small_init((8, 4), 0.1, seed=5)),
        (dense, tc.small_init((2, 6, 3), 0.1, seed=6)),
        (amf, tc.small_init((9, 3), 0.1, seed=7)),
        (tensor, tc.small_init((5, 3), 0.3, seed=8)),
        (dln, dln.small_init(0.3, seed=9)),
    ]


@pytest.mark.parametrize("index", range(5), ids=["smf", "dense", "amf", "tensor", "dln"])
def test_cached_runs_equal_runs_on_a_fresh_problem(index: int) -> None:
    problem, init = _problems()[index]
    first = tc.run(problem, init, lr=0.01, steps=30, seed=1)
    again = tc.run(problem, init, lr=0.01, steps=30, seed=1)
    fresh = tc.run(_problems()[index][0], init, lr=0.01, steps=30, seed=1)
    _assert_same_run(first, again)
    _assert_same_run(first, fresh)


def test_one_kernel_per_width_and_request() -> None:
    problem = _smf()
    kernel = problem.compiled(4, "signal").kernel
    assert problem.compiled(4, "signal").kernel is kernel
    assert problem.compiled(5, "signal").kernel is not kernel
    assert problem.compiled(4, "all").kernel is not kernel
    assert problem.compiled(4, True).kernel is not kernel
    nothing = problem.compiled(4, None).kernel  # a request for nothing is kept too
    assert problem.compiled(4, None).kernel is nothing and nothing is not kernel
    assert problem.compiled(4, False).kernel is not nothing
    pairs = np.array([[0, 1], [2, 2]])
    listed = problem.compiled(4, pairs).kernel
    assert problem.compiled(4, pairs.tolist()).kernel is listed
    assert problem.compiled(4, np.array([[0, 1], [2, 3]])).kernel is not listed


def test_cache_is_bounded_and_keeps_what_runs_use() -> None:
    problem = _smf()
    for width in range(1, 3 * problem_module._KERNEL_CACHE_SIZE):
        problem.compiled(width, "signal")
    assert len(problem.__dict__["_kernels"]) == problem_module._KERNEL_CACHE_SIZE
    init = tc.small_init((8, 2), 0.1, seed=0)
    _assert_same_run(tc.run(problem, init, lr=0.01, steps=20), tc.run(_smf(), init, lr=0.01, steps=20))


def test_request_arrays_are_keyed_by_their_contents() -> None:
    """Reusing one index array for another request records the new pairs, not the cached ones."""
    problem, init = _smf(), tc.small_init((8, 4), 0.1, seed=0)
    pairs = np.array([[0, 0], [1, 2]], dtype=np.int64)
    first = tc.run(problem, init, lr=0.01, steps=10, record=tc.Record(coefficients=pairs))
    pairs[1] = [3, 4]
    second = tc.run(problem, init, lr=0.01, steps=10, record=tc.Record(coefficients=pairs))
    np.testing.assert_array_equal(first.coefficient_pairs, [[0, 0], [1, 2]])
    np.testing.assert_array_equal(second.coefficient_pairs, [[0, 0], [3, 4]])
    np.testing.assert_allclose(second.coefficients[-1], problem.coefficients(second.final, pairs), rtol=1e-10)


def test_trajectories_own_their_pairs() -> None:
    problem, init = _smf(), tc.small_init((8, 4), 0.1, seed=0)
    traj = tc.run(problem, init, lr=0.01, steps=5, record=tc.Record(coefficients="diagonal"))
    traj.coefficient_pairs[:] = -1
    again = tc.run(problem, init, lr=0.01, steps=5, record=tc.Record(coefficients="diagonal"))
    np.testing.assert_array_equal(again.coefficient_pairs, np.repeat(np.arange(8), 2).reshape(8, 2))


@pytest.mark.parametrize(
    ("request_", "error", "message"),
    [
        (1, ValueError, "index pairs must be an integer array"),
        ("signals", ValueError, "expected 'signal', 'diagonal', 'all'"),
        ([[0, 1], [2]], ValueError, "inhomogeneous"),
        ([[0.0, 1.0]], ValueError, "index pairs must be an integer array"),
        ([[0, 8]], ValueError, r"pair indices must lie in \[0, 8\)"),
    ],
)
def test_bad_requests_raise_after_good_ones_were_cached(request_: Any, error: type, message: str) -> None:
    problem, init = _smf(), tc.small_init((8, 4), 0.1, seed=0)
    for good in (True, "signal", [[0, 1]], np.array([[0, 1]])):
        tc.run(problem, init, lr=0.01, steps=1, record=tc.Record(coefficients=good))
    with pytest.raises(error, match=message):
        tc.run(problem, init, lr=0.01, steps=1, record=tc.Record(coefficients=request_))


def test_unknown_group_names_raise_after_good_ones_were_cached() -> None:
    problem = tc.DeepLinearNetwork.planted([3, 4, 2], n=20, seed=0)
    init = problem.small_init(0.3, seed=1)
    tc.run(problem, init, lr=0.01, steps=1, record=tc.Record(coefficients=["layer_ranks"]))
    with pytest.raises(ValueError, match="unknown observable group"):
        tc.run(problem, init, lr=0.01, steps=1, record=tc.Record(coefficients=["layer_ranks", 1]))


@pytest.mark.parametrize("index", [0, 1, 2, 4], ids=["smf", "dense", "amf", "dln"])
def test_problems_pickle_without_their_kernels(index: int) -> None:
    problem, init = _problems()[index]
    ran = tc.run(problem, init, lr=0.01, steps=10)
    clone = pickle.loads(pickle.dumps(problem))
    assert "_kernels" in problem.__dict__ and "_kernels" not in clone.__dict__
    _assert_same_run(tc.run(clone, init, lr=0.01, steps=10), ran)


def test_threads_building_the_same_kernel_agree() -> None:
    problem = _smf()
    inits = [tc.small_init((2, 8, 4), 0.1, seed=s) for s in range(8)]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda x: tc.run(problem, x, lr=0.01, steps=50, n_threads=1), inits))
    for init, traj in zip(inits, together, strict=True):
        _assert_same_run(traj, tc.run(_smf(), init, lr=0.01, steps=50, n_threads=1))
    assert len(problem.__dict__["_kernels"]) == 1


def test_single_runs_drop_the_batch_axis() -> None:
    problem, init = _smf(), tc.small_init((8, 4), 0.1, seed=0)
    single = tc.run(problem, init, lr=0.01, steps=7, record=tc.Record(every=3, iterates=True))
    batch = tc.run(problem, init[None], lr=0.01, steps=7, record=tc.Record(every=3, iterates=True))
    assert not single.batched and single.diverged_at.shape == ()
    assert single.metadata["batch"] is None and "batch_index" not in single.metadata
    assert single.iterates is not None and batch.iterates is not None
    for a, b in zip([*_arrays(single), single.iterates], [*_arrays(batch[0]), batch.iterates[0]], strict=True):
        np.testing.assert_array_equal(a, b)


# -- BLAS threads -------------------------------------------------------------------------------------


def _blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


class _FailingRun(tc.SymmetricMatrixFactorization):
    """A problem whose kernel raises inside the BLAS-limited part of ``run``."""

    def build_kernel(self, width: int, coefficients: Any) -> Any:
        kernel = super().build_kernel(width, coefficients)

        class Failing:
            n_observables = kernel.n_observables
            state_transposed = kernel.state_transposed
            losses = kernel.losses

            def run_chunk(self, *args: Any, **kwargs: Any) -> None:
                raise RuntimeError("run_chunk failed")

        return Failing()


@pytest.fixture
def two_blas_threads() -> Any:
    """Every BLAS library at two threads, whatever the environment set."""
    if not _blas_threads():
        pytest.skip("no BLAS library found by threadpoolctl")
    with threadpool_limits(limits=2, user_api="blas"):
        yield


@pytest.mark.usefixtures("two_blas_threads")
def test_blas_single_threaded_sets_one_and_restores() -> None:
    with config.blas_single_threaded():
        assert set(_blas_threads()) == {1}
        with config.blas_single_threaded():
            assert set(_blas_threads()) == {1}
        assert set(_blas_threads()) == {1}
    assert set(_blas_threads()) == {2}


@pytest.mark.usefixtures("two_blas_threads")
def test_blas_single_threaded_restores_after_an_error() -> None:
    with pytest.raises(KeyError), config.blas_single_threaded():
        raise KeyError("inside")
    assert set(_blas_threads()) == {2}
    with pytest.raises(RuntimeError, match="run_chunk failed"):
        tc.run(_FailingRun(V=np.eye(8)[:, :2], sigma=[2.0, 1.0]), np.ones((8, 2)), lr=0.01, steps=3)
    assert set(_blas_threads()) == {2}


@pytest.mark.usefixtures("two_blas_threads")
def test_concurrent_runs_leave_blas_as_it_was() -> None:
    problem = _smf()
    inits = [tc.small_init((8, 4), 0.1, seed=s) for s in range(16)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda x: tc.run(problem, x, lr=0.01, steps=200, n_threads=1), inits))
    assert set(_blas_threads()) == {2}


def test_blas_is_limited_exactly_when_a_product_can_reach_it(monkeypatch: pytest.MonkeyPatch) -> None:
    entered: list[int] = []
    limit = config.blas_single_threaded

    def counting() -> Any:
        entered.append(1)
        return limit()

    monkeypatch.setattr(config, "blas_single_threaded", counting)
    small = _smf()
    assert small.largest_product(4) < config.BLAS_THRESHOLD
    tc.run(small, tc.small_init((8, 4), 0.1, seed=0), lr=0.01, steps=3)
    tc.run(small, tc.small_init((8, 4), 0.1, seed=0), lr=0.01, steps=3, coordinates="eigenbasis")
    assert entered == []
    # d = 130, r' = 128: the dense target times U is 130 * 130 * 128 multiply-adds, past the threshold.
    large = tc.SymmetricMatrixFactorization.planted(130, 2, seed=0, storage="dense")
    assert large.largest_product(128) >= 130 * 130 * 128 >= config.BLAS_THRESHOLD
    tc.run(large, tc.small_init((130, 128), 0.1, seed=0), lr=1e-3, steps=1)
    assert entered == [1]
    # A problem that does not bound its products is always limited.
    network = tc.DeepLinearNetwork.planted((3, 3, 3), n=20, seed=0)
    tc.run(network, network.truncated_init(1, seed=0), lr=1e-3, steps=1)
    assert entered == [1, 1]


class _CountingRun(tc.SymmetricMatrixFactorization):
    """A problem whose kernel records the step range of every core call."""

    calls: list[tuple[int, int]]

    def build_kernel(self, width: int, coefficients: Any) -> Any:
        kernel = super().build_kernel(width, coefficients)
        calls = self.calls

        class Counting:
            n_observables = kernel.n_observables
            state_transposed = kernel.state_transposed
            losses = kernel.losses

            def run_chunk(self, **kwargs: Any) -> None:
                calls.append((kwargs["t0"], kwargs["t1"]))
                kernel.run_chunk(**kwargs)

        return Counting()


def test_a_small_run_is_one_core_call_and_a_large_one_starts_with_a_probe_step() -> None:
    small = _CountingRun(V=np.eye(8)[:, :2], sigma=[2.0, 1.0])
    small.calls = []
    init = tc.small_init((8, 4), 0.1, seed=0)
    traj = tc.run(small, init, lr=0.05, steps=300)
    assert small.calls == [(0, 300)]  # 300 x 8 * 4 * 8 multiply-adds: far below the budget
    plain = tc.SymmetricMatrixFactorization(V=np.eye(8)[:, :2], sigma=[2.0, 1.0])
    _assert_same_run(traj, tc.run(plain, init, lr=0.05, steps=300))
    # 200 steps x 64 trajectories x the 60 x 16 x 60 bound: a first one-step chunk measures the rate.
    large = _CountingRun.planted(60, 2, seed=0)
    large.calls = []
    tc.run(large, tc.small_init((64, 60, 16), 0.1, seed=0), lr=1e-3, steps=200)
    assert large.calls[0] == (0, 1) and large.calls[-1][1] == 200 and len(large.calls) >= 2
