"""pytest-benchmark cases for matrix sensing (run: pytest bench/test_bench_sensing.py).

Ratios against the anchors are printed by ``python bench/compare.py --only sensing``; these cases
record the trajcore side at smaller sizes for history and regression tracking (``--benchmark-json``).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import trajcore as tc

sys.path.insert(0, os.path.dirname(__file__))

from compare_sensing import numpy_einsum_loop, sensing_case  # noqa: E402

D, M, WIDTH, STEPS, LR = 20, 200, 6, 100, 0.02


@pytest.fixture(scope="module")
def case():
    A, y = sensing_case(d=D, m=M, rank=3)
    return A, y, tc.MatrixSensing(A, y)


def test_one_trajectory(benchmark, case):
    A, y, problem = case
    U0 = tc.small_init((D, WIDTH), 1e-3, seed=1)
    record = tc.Record(every=STEPS, coefficients=None)
    traj = benchmark(lambda: tc.run(problem, U0, lr=LR, steps=STEPS, record=record, n_threads=1))
    np.testing.assert_allclose(traj.final, numpy_einsum_loop(A, y, U0, LR, STEPS), rtol=0, atol=1e-10)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_batch(benchmark, case, n_threads):
    _, _, problem = case
    U0 = tc.small_init((8, D, WIDTH), 1e-3, seed=2)
    record = tc.Record(every=STEPS, coefficients=None)
    traj = benchmark.pedantic(
        lambda: tc.run(problem, U0, lr=LR, steps=STEPS, record=record, n_threads=n_threads), rounds=5
    )
    assert traj.final.shape == (8, D, WIDTH)
