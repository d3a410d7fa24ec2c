"""Symmetric tensors and tensor decomposition: trajcore against NumPy, JAX jit and one DGEMM.

Cases (issue 3):
1. the PAPERS.md section 3 reference setting, 200,000 GD steps, one trajectory, against a NumPy
   Gram-form loop on the same init (timed on fewer steps and scaled per step);
2. a dense l = 4, d = 60 target, 20 columns, one gradient, against JAX jit einsum and
   ``numpy.einsum(optimize=True)``; packed storage memory against dense;
3. the contraction of an order-3 d = 128 tensor with 256 columns, dense and packed, against one
   DGEMM with the same FLOP count as the dense contraction (2 d^3 m), all single-threaded.
"""

from __future__ import annotations

import math

import numpy as np
from harness import Report, jax_x64, median_time

import trajcore as tc

SECTION = "tensor"


def numpy_gram_loop(Z, c, U0, order, lr, steps, every=1000):
    """The Gram-form GD loop in NumPy: grad = 2 l (U (U^T U)^{l-1} - Z (c (Z^T U)^{l-1})), loss and
    coefficients every ``every`` steps (as the trajcore run records them)."""
    U = U0.copy()
    norm2 = float(np.sum(np.outer(c, c) * (Z.T @ Z) ** order))
    records = []
    for t in range(steps):
        A = U.T @ U
        Ap = A ** (order - 1)
        P = Z.T @ U
        G = Z @ (c[:, None] * P ** (order - 1))
        if t % every == 0:
            loss = np.sum(Ap * A) - 2 * np.sum(c[:, None] * P**order) + norm2
            records.append((loss, np.sum(P**order, axis=1)))
        U = U - lr * 2 * order * (U @ Ap - G)
    return U, records


def compare(report: Report) -> None:
    jax, jnp = jax_x64()
    from threadpoolctl import threadpool_limits

    # 1. Reference setting: l = 4, d = 10, r = 4, m = 10, c = (10, 5, 3, 1), alpha = 2e-2, eta = 1e-3.
    steps = 200_000
    problem = tc.OrthogonalTensorDecomposition.planted(10, 4, 4, sigma=[10, 5, 3, 1], seed=0)
    Z, c = problem.target.factors
    U0 = tc.small_init((10, 10), 2e-2, seed=6)
    record = tc.Record(every=1000)
    t_tc = median_time(lambda: tc.run(problem, U0, lr=1e-3, steps=steps, record=record, n_threads=1), repeat=3)
    probe = 2_000 if report.quick else 10_000
    with threadpool_limits(1, user_api="blas"):
        t_probe = median_time(lambda: numpy_gram_loop(Z, c, U0, 4, 1e-3, probe), repeat=3)
    traj = tc.run(problem, U0, lr=1e-3, steps=probe, record=tc.Record(every=probe), n_threads=1)
    U_np, _ = numpy_gram_loop(Z, c, U0, 4, 1e-3, probe)
    report.fact("reference: max |U_trajcore - U_numpy| after probe steps", float(np.max(np.abs(traj.final - U_np))))
    report.add(
        SECTION,
        "reference l=4 d=10 m=10, 200k steps",
        f"NumPy Gram loop ({probe} steps, scaled)",
        t_tc,
        t_probe * steps / probe,
        20.0,
    )

    # 2. Dense l = 4, d = 60, 20 columns: one gradient.
    d, order, m = 60, 4, 20
    dense_problem = tc.OrthogonalTensorDecomposition.planted(d, order, 5, storage="dense", noise=0.01, seed=1)
    packed_problem = tc.OrthogonalTensorDecomposition(
        dense_problem.target.with_storage("packed"), basis=dense_problem.basis(), rank=5
    )
    T = dense_problem.target.to_dense()
    U = 0.3 * np.random.default_rng(2).standard_normal((d, m))
    kernel = dense_problem.build_kernel(m, None)
    packed_kernel = packed_problem.build_kernel(m, None)
    _, g_tc = kernel.loss_and_grad(U)
    t_tc = median_time(lambda: kernel.loss_and_grad(U), repeat=7)
    t_packed = median_time(lambda: packed_kernel.loss_and_grad(U), repeat=7)

    def numpy_grad(U):
        A = U.T @ U
        G = np.einsum("abcd,bj,cj,dj->aj", T, U, U, U, optimize=True)
        return 2 * order * (U @ A ** (order - 1) - G)

    g_np = numpy_grad(U)
    report.fact(
        "dense l=4 gradient: max relative difference to numpy.einsum",
        float(np.max(np.abs(g_tc.reshape(d, m) - g_np)) / np.max(np.abs(g_np))),
    )
    with threadpool_limits(1, user_api="blas"):
        t_np = median_time(lambda: numpy_grad(U), repeat=3)
    case = "dense l=4 d=60 m=20, one gradient"
    report.add(SECTION, case, "numpy.einsum(optimize=True)", t_tc, t_np, 20.0)
    if jax is None:
        report.skip(SECTION, case, "JAX jit einsum", "jax missing")
    else:
        Tj = jnp.asarray(T)

        @jax.jit
        def jax_grad(T, U):  # T an argument, not a closure constant (XLA would try to constant-fold it)
            A = U.T @ U
            G = jnp.einsum("abcd,bj,cj,dj->aj", T, U, U, U)
            return 2 * order * (U @ A ** (order - 1) - G)

        Uj = jnp.asarray(U)
        jax.block_until_ready(jax_grad(Tj, Uj))
        t_jax = median_time(lambda: jax.block_until_ready(jax_grad(Tj, Uj)), repeat=7)
        report.add(SECTION, case, "JAX jit einsum (T argument)", t_tc, t_jax, 10.0)

        @jax.jit
        def jax_grad_const(U):  # T a compile-time constant: XLA folds a transposed copy of it
            A = U.T @ U
            G = jnp.einsum("abcd,bj,cj,dj->aj", Tj, U, U, U)
            return 2 * order * (U @ A ** (order - 1) - G)

        jax.block_until_ready(jax_grad_const(Uj))
        t_const = median_time(lambda: jax.block_until_ready(jax_grad_const(Uj)), repeat=7)
        report.add(SECTION, case, "JAX jit einsum (T constant)", t_tc, t_const, 10.0)
    report.add(SECTION, "packed l=4 d=60 m=20, one gradient", "dense storage, same kernel", t_packed, t_tc, None)
    dense_bytes, packed_bytes = 8 * d**order, 8 * math.comb(d + order - 1, order)
    report.add(
        SECTION,
        "memory l=4 d=60 (bytes, not seconds)",
        "dense storage",
        packed_bytes,
        dense_bytes,
        20.0,
        note=f"packed {packed_bytes / 2**20:.1f} MiB vs dense {dense_bytes / 2**20:.1f} MiB",
    )

    # 3. Order 3, d = 128, 256 columns: dense and packed contraction against one DGEMM of 2 d^3 m FLOPs.
    d, order, m = 128, 3, 256
    rng = np.random.default_rng(3)
    Zr = np.linalg.qr(rng.standard_normal((d, d)))[0]
    packed_t = tc.SymmetricTensor.from_factors(Zr, rng.standard_normal(d), order).with_storage("packed")
    dense_t = packed_t.with_storage("dense")
    U = rng.standard_normal((d, m))
    A = rng.standard_normal((d * d, d))  # the DGEMM (d^2 x d) @ (d x m): exactly 2 d^3 m FLOPs
    with threadpool_limits(1, user_api="blas"):
        t_gemm = median_time(lambda: A @ U, repeat=5)
    t_dense = median_time(lambda: dense_t.contract(U, n_threads=1), repeat=5)
    t_pack = median_time(lambda: packed_t.contract(U, n_threads=1), repeat=5)
    t_pack2 = median_time(lambda: packed_t.contract(U, n_threads=2), repeat=5)
    report.fact("order-3 d=128 m=256 DGEMM rate (GFLOP/s, 1 thread)", 2 * d**3 * m / t_gemm / 1e9)
    report.add(SECTION, "dense l=3 d=128 m=256 contraction", "one DGEMM, same FLOPs", t_dense, t_gemm, 1 / 1.5)
    report.add(SECTION, "packed l=3 d=128 m=256 contraction", "one DGEMM, same FLOPs", t_pack, t_gemm, 1.0)
    report.add(SECTION, "packed l=3 d=128 m=256, 2 threads", "packed, 1 thread", t_pack2, t_pack, None)
