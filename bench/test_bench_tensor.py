"""pytest-benchmark cases for symmetric tensors and tensor decomposition.

Run ``pytest bench/test_bench_tensor.py``; the ratios against the anchors come from
``python bench/compare.py --only tensor``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import trajcore as tc


def test_reference_setting_200k_steps(benchmark):
    problem = tc.OrthogonalTensorDecomposition.planted(10, 4, 4, sigma=[10, 5, 3, 1], seed=0)
    U0 = tc.small_init((10, 10), 2e-2, seed=6)
    record = tc.Record(every=1000)
    traj = benchmark.pedantic(lambda: tc.run(problem, U0, lr=1e-3, steps=200_000, record=record, n_threads=1), rounds=3)
    assert problem.relative_error(traj.loss[-1]) < 1e-5


@pytest.mark.parametrize("storage", ["dense", "packed"])
def test_dense_target_gradient_l4_d60(benchmark, storage):
    problem = tc.OrthogonalTensorDecomposition.planted(60, 4, 5, storage=storage, noise=0.01, seed=1)
    kernel = problem.build_kernel(20, None)
    U = 0.3 * np.random.default_rng(2).standard_normal((60, 20))
    loss, grad = benchmark(lambda: kernel.loss_and_grad(U))
    assert grad.shape == (60 * 20,)


@pytest.mark.parametrize("storage", ["dense", "packed"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_contraction_l3_d128_m256(benchmark, storage, n_threads):
    d, order = 128, 3
    rng = np.random.default_rng(3)
    tensor = tc.SymmetricTensor.from_packed(rng.standard_normal(math.comb(d + order - 1, order)), d, order)
    tensor = tensor.with_storage(storage)
    U = rng.standard_normal((d, 256))
    G = benchmark(lambda: tensor.contract(U, n_threads=n_threads))
    assert G.shape == (d, 256)
