"""Matrix factorization: trajcore against a NumPy loop, NumPy in the best batched form, and JAX jit.

Cases (issue 2): the reference setting with coefficients recorded every step; a dense batch
B=256, d=128, r'=8 (also as a fraction of this machine's DGEMM rate); a batch B=4096, d=32, r'=4;
factored targets d = 5,000 / 10,000 / 20,000 (time per step should grow linearly in d); and, for
information, an asymmetric factorization with a dense target.

The first three run twice: in the given coordinates (the algebraic form the anchors compute too)
and with ``coordinates="eigenbasis"`` (the same trajectory computed on O^T U, where the target is
diagonal). The DGEMM-rate fraction counts the algebraic form's FLOPs, so it is measured on the given
coordinates only.
"""

from __future__ import annotations

import os

import numpy as np
from harness import Report, dgemm_rate, jax_x64, median_time

import trajcore as tc

SECTION = "matrix-fact"


def numpy_reference_loop(V, sigma, U0, lr, steps):
    """The loop a researcher writes: explicit residual, coefficients every step."""
    M = (V * sigma) @ V.T
    U = U0.copy()
    coefs = np.empty((steps + 1, V.shape[1], V.shape[1]))
    for t in range(steps + 1):
        P = V.T @ U
        coefs[t] = P @ P.T
        if t < steps:
            U = U - lr * (U @ U.T - M) @ U
    return U, coefs


BATCHES = [(256, 128, 8, 1.0), (4096, 32, 4, 3.0)]
COORDINATES = ("given", "eigenbasis")
LABEL = {"given": "", "eigenbasis": " [eigenbasis]"}


def compare(report: Report) -> None:
    threads = os.cpu_count() or 1
    # Every trajcore timing comes first: NumPy's OpenBLAS and JAX keep worker threads spinning for a
    # while after they compute, which would steal the cores from the OpenMP threads measured next.
    problem = tc.SymmetricMatrixFactorization.planted(d=20, rank=4, sigma=[10, 5, 3, 1], seed=0)
    U0 = tc.small_init((20, 20), 5e-7, seed=1)
    record = tc.Record(every=1, coefficients="signal")

    def reference_time(coordinates: str) -> float:
        # A run lasts about a millisecond: many repeats, so that the median is not one noisy sample.
        return median_time(
            lambda: tc.run(problem, U0, lr=0.04, steps=500, record=record, n_threads=1, coordinates=coordinates),
            repeat=51,
            warmup=5,
        )

    t_reference = {c: reference_time(c) for c in COORDINATES}
    t_batches = [{c: _dense_batch_time(B, d, w, 100, c) for c in COORDINATES} for B, d, w, _ in BATCHES]
    per_step = [_factored_step_time(d) for d in (5000, 10000, 20000)]
    amf, W0 = asymmetric_case()
    t_amf = {c: median_time(lambda c=c: asymmetric_run(amf, W0, c), repeat=7) for c in COORDINATES}

    # 1. Reference setting, one trajectory, signal coefficients every step.
    jax, jnp = jax_x64()
    t_np = median_time(lambda: numpy_reference_loop(problem.V, problem.sigma, U0, 0.04, 500), repeat=21, warmup=2)
    case = "reference d=20 r'=20, 500 steps, coefs/step"
    for c, t_tc in t_reference.items():
        report.add(SECTION, f"{case}{LABEL[c]}", "NumPy loop", t_tc, t_np, 10.0)
    if jax is None:
        report.skip(SECTION, case, "JAX jit + lax.scan", "jax missing")
    else:
        V, M = jnp.asarray(problem.V), jnp.asarray(problem.target)

        @jax.jit
        def scan_run(U):
            def body(U, _):
                P = V.T @ U
                return U - 0.04 * (U @ (U.T @ U) - M @ U), P @ P.T

            U, coefs = jax.lax.scan(body, U, None, length=500)
            return U, coefs

        Uj = jnp.asarray(U0)
        jax.block_until_ready(scan_run(Uj))
        t_jax = median_time(lambda: jax.block_until_ready(scan_run(Uj)), repeat=51, warmup=5)
        for c, t_tc in t_reference.items():
            report.add(SECTION, f"{case}{LABEL[c]}", "JAX jit + lax.scan", t_tc, t_jax, 3.0)

    # 2./3. Dense batches against the best algebraic batched form.
    for (B, d, w, target), t_batch in zip(BATCHES, t_batches, strict=True):
        _dense_batch(report, B, d, w, 100, target, threads, t_batch)

    # 4. Factored targets: time per step linear in d.
    for d, t in zip((5000, 10000, 20000), per_step, strict=True):
        report.fact(f"factored d={d} r=5 r'=10: microseconds per step", round(t * 1e6, 1))
    growth = [per_step[i + 1] / per_step[i] for i in range(2)]
    report.fact("factored: time ratio per doubling of d (linear = 2.0)", [round(g, 2) for g in growth])

    # 5. Asymmetric factorization, dense target (no target: what the singular bases buy).
    case = f"asymmetric m={AMF_SHAPE[0]} n={AMF_SHAPE[1]} r'={AMF_SHAPE[2]}, {AMF_STEPS} steps, dense"
    t_np = median_time(lambda: asymmetric_numpy_loop(amf.target, W0), repeat=3)
    for c, t_tc in t_amf.items():
        report.add(SECTION, f"{case}{LABEL[c]}", "NumPy loop", t_tc, t_np, None)


AMF_SHAPE, AMF_STEPS = (200, 300, 10), 1000


def asymmetric_case() -> tuple[tc.AsymmetricMatrixFactorization, np.ndarray]:
    m, n, w = AMF_SHAPE
    problem = tc.AsymmetricMatrixFactorization.planted(m, n, 5, seed=0, storage="dense")
    return problem, tc.small_init((m + n, w), 1e-3, seed=1)


def asymmetric_run(problem: tc.AsymmetricMatrixFactorization, W0: np.ndarray, coordinates: str) -> tc.Trajectory:
    record = tc.Record(every=10, coefficients="diagonal")
    return tc.run(problem, W0, lr=0.02, steps=AMF_STEPS, record=record, n_threads=1, coordinates=coordinates)


def asymmetric_numpy_loop(M: np.ndarray, W0: np.ndarray) -> np.ndarray:
    """Simultaneous GD on both factors, the loss every 10 steps (coefficients left out: favours NumPy)."""
    m = M.shape[0]
    X, Y = W0[:m].copy(), W0[m:].copy()
    losses = []
    for t in range(AMF_STEPS):
        R = X @ Y.T - M
        if t % 10 == 0:
            losses.append(0.5 * np.sum(R * R))
        X, Y = X - 0.02 * R @ Y, Y - 0.02 * R.T @ X
    return np.array(losses)


def _factored_step_time(d: int, short: int = 20, long: int = 120) -> float:
    """Marginal time of one step: runs of two lengths, so the per-run setup (O(d) as well: the
    initial loss, copies of the iterate) does not count as stepping."""
    problem = tc.SymmetricMatrixFactorization.planted(d=d, rank=5, seed=0)
    U0 = tc.small_init((d, 10), 1e-3, seed=1)

    def run(steps: int) -> float:
        rec = tc.Record(every=steps, coefficients="signal")
        return median_time(lambda: tc.run(problem, U0, lr=0.01, steps=steps, record=rec, n_threads=1), repeat=7)

    return (run(long) - run(short)) / (long - short)


def _dense_batch_time(B: int, d: int, w: int, steps: int, coordinates: str) -> float:
    problem = tc.SymmetricMatrixFactorization.planted(d=d, rank=4, seed=0, storage="dense")
    U0 = tc.small_init((B, d, w), 0.01, seed=1)
    rec = tc.Record(every=steps, coefficients=None)
    return median_time(lambda: tc.run(problem, U0, lr=0.01, steps=steps, record=rec, coordinates=coordinates), repeat=5)


def _dense_batch(
    report: Report, B: int, d: int, w: int, steps: int, target: float, threads: int, times: dict[str, float]
) -> None:
    """Dense target batch (trajcore times by coordinates) against NumPy and JAX in the best batched form."""
    jax, jnp = jax_x64()
    case = f"batch B={B} d={d} r'={w}, {steps} steps, dense"
    M = tc.SymmetricMatrixFactorization.planted(d=d, rank=4, seed=0, storage="dense").target
    U0 = tc.small_init((B, d, w), 0.01, seed=1)

    def numpy_batched():
        U = U0.copy()
        for _ in range(steps):
            U = U - 0.01 * (U @ (np.swapaxes(U, 1, 2) @ U) - M @ U)
        return U

    t_numpy = median_time(numpy_batched, repeat=3)
    for c, t_tc in times.items():
        report.add(SECTION, f"{case}{LABEL[c]}", "NumPy batched algebraic", t_tc, t_numpy, None)
    if jax is None:
        report.skip(SECTION, case, "JAX jit vmap algebraic", "jax missing")
    else:
        Mj = jnp.asarray(M)

        @jax.jit
        def jax_batched(U):
            def body(U, _):
                return U - 0.01 * (U @ (jnp.swapaxes(U, 1, 2) @ U) - jnp.einsum("ij,bjk->bik", Mj, U)), None

            return jax.lax.scan(body, U, None, length=steps)[0]

        Uj = jnp.asarray(U0)
        jax.block_until_ready(jax_batched(Uj))
        t_jax = median_time(lambda: jax.block_until_ready(jax_batched(Uj)), repeat=5)
        for c, t_tc in times.items():
            report.add(SECTION, f"{case}{LABEL[c]}", "JAX jit batched algebraic", t_tc, t_jax, target)
    if B == 256:
        t_tc = times["given"]
        useful = steps * B * (2 * d * d * w + 4 * d * w * w + 2 * d * w)
        rate = dgemm_rate(threads)
        report.fact(f"{case}: useful GFLOP/s", round(useful / t_tc / 1e9, 1))
        report.fact(f"DGEMM rate on {threads} threads (GFLOP/s)", round(rate / 1e9, 1))
        report.fact(f"{case}: fraction of DGEMM rate (target >= 0.60)", round(useful / t_tc / rate, 3))
