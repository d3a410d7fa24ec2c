"""pytest-benchmark cases for deep linear networks (run: pytest bench/test_bench_linear_network.py)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

from compare_linear_network import LR, STEPS, numpy_loop, reference_problem  # noqa: E402

import trajcore as tc  # noqa: E402


@pytest.fixture(scope="module")
def reference():
    return reference_problem()


def test_reference_trajcore(benchmark, reference):
    problem, x0 = reference
    record = tc.Record(every=1, coefficients=["product_singular_values"])
    traj = benchmark(lambda: tc.run(problem, x0, lr=LR, steps=STEPS, record=record, n_threads=1))
    assert traj.coefficients.shape == (STEPS + 1, 10)


def test_reference_numpy_loop(benchmark, reference):
    problem, x0 = reference
    spectra = benchmark(lambda: numpy_loop(problem, x0, LR, STEPS))
    assert spectra.shape == (STEPS + 1, 10)


@pytest.mark.parametrize("threads", [1, 2])
def test_noisy_batch(benchmark, reference, threads):
    problem, _ = reference
    starts = problem.truncated_init(1, seed=1, batch=512)
    noise = tc.SingularValueImputation(threshold=1e-6)
    record = tc.Record(every=1, coefficients="spectrum")
    traj = benchmark.pedantic(
        lambda: tc.run(problem, starts, lr=LR, steps=STEPS, noise=noise, seed=3, record=record, n_threads=threads),
        rounds=3,
    )
    assert not np.any(traj.diverged)
