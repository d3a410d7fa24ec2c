"""pytest-benchmark cases for projections and conjugate-kernel bases.

pytest bench/test_bench_projection.py
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytest_benchmark")

from trajcore import bases  # noqa: E402


@pytest.fixture(scope="module")
def projection_inputs():
    rng = np.random.default_rng(0)
    snapshots = rng.standard_normal((20000, 1024))
    basis = bases.conjugate_kernel_basis(rng.standard_normal((1024, 64)))
    return snapshots, basis


def test_projection_trajcore(benchmark, projection_inputs):
    snapshots, basis = projection_inputs
    out = benchmark(basis.project, snapshots)
    assert out.shape == (20000, 64)


def test_projection_numpy_gemm(benchmark, projection_inputs):
    snapshots, basis = projection_inputs
    matrix = np.ascontiguousarray(basis.values)
    out = benchmark(np.matmul, snapshots, matrix)
    assert out.shape == (20000, 64)


def test_streaming_projection(benchmark, projection_inputs):
    snapshots, basis = projection_inputs

    def stream():
        s = basis.streaming(1000)
        for t in range(1000):
            s.push(snapshots[t])
        return s.coefficients

    out = benchmark(stream)
    np.testing.assert_allclose(out, basis.project(snapshots[:1000]), atol=1e-12)


@pytest.fixture(scope="module")
def features():
    return np.random.default_rng(1).standard_normal((10000, 512))


def test_ck_basis_trajcore(benchmark, features):
    basis = benchmark.pedantic(bases.conjugate_kernel_basis, args=(features,), rounds=3)
    assert basis.k == 512


def test_ck_basis_numpy_svd(benchmark, features):
    u = benchmark.pedantic(np.linalg.svd, args=(features,), kwargs={"full_matrices": False}, rounds=3)[0]
    assert u.shape == (10000, 512)
