"""pytest-benchmark cases for matrix factorization (run: pytest bench/test_bench_mf.py).

Ratios against the anchors are printed by ``python bench/compare.py``; these cases record the
trajcore side for history and regression tracking (``--benchmark-json``).
"""

from __future__ import annotations

import os
import sys

import pytest

import trajcore as tc

sys.path.insert(0, os.path.dirname(__file__))

from compare_mf import asymmetric_case, asymmetric_run  # noqa: E402


@pytest.fixture(scope="module")
def reference_problem():
    return tc.SymmetricMatrixFactorization.planted(d=20, rank=4, sigma=[10, 5, 3, 1], seed=0)


@pytest.mark.parametrize("coordinates", ["given", "eigenbasis"])
def test_reference_setting_coefficients_every_step(benchmark, reference_problem, coordinates):
    U0 = tc.small_init((20, 20), 5e-7, seed=1)
    record = tc.Record(every=1, coefficients="signal")
    traj = benchmark(
        lambda: tc.run(reference_problem, U0, lr=0.04, steps=500, record=record, n_threads=1, coordinates=coordinates)
    )
    assert traj.coefficients.shape == (501, 16)


@pytest.mark.parametrize("coordinates", ["given", "eigenbasis"])
@pytest.mark.parametrize("B, d, w", [(256, 128, 8), (4096, 32, 4)])
def test_dense_batch(benchmark, B, d, w, coordinates):
    problem = tc.SymmetricMatrixFactorization.planted(d=d, rank=4, seed=0, storage="dense")
    U0 = tc.small_init((B, d, w), 0.01, seed=1)
    record = tc.Record(every=100, coefficients=None)
    traj = benchmark.pedantic(
        lambda: tc.run(problem, U0, lr=0.01, steps=100, record=record, coordinates=coordinates), rounds=3
    )
    assert traj.final.shape == (B, d, w)


@pytest.mark.parametrize("d", [5000, 10000, 20000])
def test_factored_large_d(benchmark, d):
    problem = tc.SymmetricMatrixFactorization.planted(d=d, rank=5, seed=0)
    U0 = tc.small_init((d, 10), 1e-3, seed=1)
    record = tc.Record(every=50, coefficients="signal")
    benchmark.pedantic(lambda: tc.run(problem, U0, lr=0.01, steps=50, record=record, n_threads=1), rounds=3)


@pytest.mark.parametrize("coordinates", ["given", "eigenbasis"])
def test_asymmetric_dense(benchmark, coordinates):
    problem, W0 = asymmetric_case()
    traj = benchmark.pedantic(lambda: asymmetric_run(problem, W0, coordinates), rounds=5)
    assert traj.coefficients.shape[-1] == min(problem.m, problem.n)
