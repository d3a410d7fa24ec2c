"""Projections onto orthonormal bases and conjugate-kernel bases (issue: networks and CK bases).

* Projection of 20,000 snapshots of 1,024-dimensional outputs onto 64 basis vectors, against a NumPy
  GEMM of the same shape: target >= 0.8 of NumPy's speed.
* Streaming projection during training (built-in MLP on digits, a projection at every step) against
  the same training without it: target <= 15% added time (ratio >= 1 / 1.15).
* CK basis of a 10,000 x 512 feature matrix against ``numpy.linalg.svd(full_matrices=False)``: target
  no slower (ratio >= 1), and peak traced memory <= 2x the matrix (``tracemalloc``).
"""

from __future__ import annotations

import tracemalloc
from typing import Any

import numpy as np
from harness import Report, median_time


def _projection(report: Report) -> None:
    from trajcore import bases

    T, n, k = (4000, 1024, 64) if report.quick else (20000, 1024, 64)
    rng = np.random.default_rng(0)
    snapshots = rng.standard_normal((T, n))
    basis = bases.conjugate_kernel_basis(rng.standard_normal((n, k)))
    matrix = np.ascontiguousarray(basis.values)
    repeat = 3 if report.quick else 7
    ours = median_time(lambda: basis.project(snapshots), repeat=repeat)
    numpy_gemm = median_time(lambda: snapshots @ matrix, repeat=repeat)
    report.add("projection", f"{T} x {n} onto {k}", "numpy GEMM same shape", ours, numpy_gemm, target=0.8)


def _streaming(report: Report) -> None:
    from trajcore import bases, data
    from trajcore.network import MLP, Training, train

    steps = 100 if report.quick else 300
    digits = data.digits()
    model = MLP(64, 10, hidden=(64, 64))
    reference = train(model, digits.x_train, digits.y_train, Training(lr=0.5, steps=20, checkpoints=2), seed=1)
    basis = bases.run_output_basis(reference)  # (n, C, 10) on the training set

    def plain() -> Any:
        return train(
            model,
            digits.x_train,
            digits.y_train,
            Training(lr=0.5, steps=steps, checkpoints=2, record_outputs=False, record_features=False),
        )

    def streamed() -> Any:
        return train(
            model,
            digits.x_train,
            digits.y_train,
            Training(lr=0.5, steps=steps, checkpoints=steps + 1, record_outputs=False, record_features=False),
            stream_basis=basis,
        )

    run = streamed()
    assert run.coefficients is not None and run.coefficients.shape == (steps + 1, basis.k)
    repeat = 3 if report.quick else 5
    with_stream = median_time(streamed, repeat=repeat)
    without = median_time(plain, repeat=repeat)
    report.add(
        "projection",
        f"streaming every step, MLP digits {steps} steps",
        "same training, no projection",
        with_stream,
        without,
        target=1 / 1.15,
        note="ratio >= 0.87 means <= 15% added",
    )


def _ck_basis(report: Report) -> None:
    from trajcore import bases

    n, p = (4000, 256) if report.quick else (10000, 512)
    features = np.random.default_rng(1).standard_normal((n, p))
    repeat = 2 if report.quick else 3
    ours = median_time(lambda: bases.conjugate_kernel_basis(features), repeat=repeat)
    svd = median_time(lambda: np.linalg.svd(features, full_matrices=False), repeat=repeat)
    tracemalloc.start()
    basis = bases.conjugate_kernel_basis(features)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del basis
    ratio = peak / features.nbytes
    report.fact("ck_basis_peak_memory_over_matrix", round(ratio, 3))
    report.add(
        "projection",
        f"CK basis of {n} x {p} features",
        "numpy.linalg.svd thin",
        ours,
        svd,
        target=1.0,
        note=f"peak traced memory {ratio:.2f}x the matrix (target <= 2)",
    )


def compare(report: Report) -> None:
    _projection(report)
    _streaming(report)
    _ck_basis(report)
