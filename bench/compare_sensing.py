"""Matrix sensing: trajcore against a vectorised NumPy einsum loop and JAX jit + lax.scan (issue 16).

Cases, all at d = 40, m = 800 symmetrised Gaussian measurements, r' = 8, 200 GD steps:
1. one trajectory (trajcore on one thread, NumPy's BLAS on one thread), loss recorded at the end;
2. a batch of B = 8 trajectories from different inits on two threads, against the NumPy loop called
   once per trajectory (and, for information, JAX jit + vmap).

Each row also gives the fraction of the FLOP floor: the multiply-adds a step cannot avoid, the
cheaper of ``2 m D`` for the residuals ``<A_i, P>`` and the weighted sum ``S = sum_i r_i A_i`` over
the packed measurements (``D = d(d+1)/2``) and ``D^2`` for ``S = G p - b`` through their Gram matrix
``G = A^T A`` (the kernel's choice when ``D + 1 < 2m``, as here), plus ``D r'`` for ``P = U U^T`` and
``d^2 r'`` for ``S U``, at two FLOPs each, per second, divided by this machine's measured DGEMM rate
on as many threads. Every
implementation's final U is checked against NumPy's before anything is timed.
"""

from __future__ import annotations

import numpy as np
from harness import Report, dgemm_rate, jax_x64, median_time

import trajcore as tc

SECTION = "sensing"
D, M, WIDTH, RANK, STEPS, LR, ALPHA = 40, 800, 8, 4, 200, 0.02, 1e-3
BATCH, THREADS = 8, 2


def sensing_case(d: int = D, m: int = M, rank: int = RANK, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Dense symmetrised Gaussian measurements ``A (m, d, d)`` and noise-free observations ``y (m,)`` of
    a planted target ``V diag(rank, ..., 1) V^T``."""
    rng = np.random.default_rng(seed)
    V, _ = np.linalg.qr(rng.standard_normal((d, rank)))
    target = (V * np.arange(rank, 0, -1, dtype=float)) @ V.T
    G = rng.standard_normal((m, d, d))
    A = 0.5 * (G + np.swapaxes(G, 1, 2))
    return A, np.einsum("mij,ij->m", A, target)


def numpy_einsum_loop(A: np.ndarray, y: np.ndarray, U0: np.ndarray, lr: float, steps: int) -> np.ndarray:
    """GD on ``1/(4m) sum_i (<A_i, U U^T> - y_i)^2`` as a NumPy user writes it: the residuals and the
    weighted sum of the measurements by einsum, then one product with U."""
    m = y.shape[0]
    U = U0.copy()
    for _ in range(steps):
        r = np.einsum("mij,ij->m", A, U @ U.T) - y
        U = U - (lr / m) * np.einsum("m,mij->ij", r, A) @ U
    return U


def floor_flops(d: int, m: int, width: int) -> float:
    """FLOPs of the multiply-adds a step cannot avoid (module docstring), two per multiply-add."""
    packed = d * (d + 1) // 2
    return 2.0 * (min(2 * m * packed, packed * packed) + packed * width + d * d * width)


def compare(report: Report) -> None:
    from threadpoolctl import threadpool_limits

    A, y = sensing_case()
    problem = tc.MatrixSensing(A, y)
    U0 = tc.small_init((D, WIDTH), ALPHA, seed=1)
    Ub = tc.small_init((BATCH, D, WIDTH), ALPHA, seed=2)
    record = tc.Record(every=STEPS, coefficients=None)

    def one() -> tc.Trajectory:
        return tc.run(problem, U0, lr=LR, steps=STEPS, record=record, n_threads=1)

    def batch() -> tc.Trajectory:
        return tc.run(problem, Ub, lr=LR, steps=STEPS, record=record, n_threads=THREADS)

    # Every trajcore timing comes first: NumPy's OpenBLAS and XLA keep worker threads spinning for a
    # while after they compute, which would steal the cores from the OpenMP threads measured next.
    repeat = 5 if report.quick else 11
    t_one = median_time(one, repeat=repeat, warmup=2)
    t_batch = median_time(batch, repeat=repeat, warmup=2)

    with threadpool_limits(1, user_api="blas"):
        U_np = numpy_einsum_loop(A, y, U0, LR, STEPS)
        _agree("trajcore", one().final, U_np)
        Ub_np = np.stack([numpy_einsum_loop(A, y, U, LR, STEPS) for U in Ub])
        _agree("trajcore batch", batch().final, Ub_np)
        t_np = median_time(lambda: numpy_einsum_loop(A, y, U0, LR, STEPS), repeat=3 if report.quick else 5)
    with threadpool_limits(THREADS, user_api="blas"):
        t_np_batch = median_time(lambda: [numpy_einsum_loop(A, y, U, LR, STEPS) for U in Ub], repeat=3)

    case = f"d={D} m={M} r'={WIDTH}, {STEPS} steps"
    batch_case = f"batch B={BATCH} d={D} m={M} r'={WIDTH}, {STEPS} steps, {THREADS} threads"
    report.add(SECTION, case, "NumPy einsum loop", t_one, t_np, 5.0)
    report.add(SECTION, batch_case, "NumPy einsum loop, looped", t_batch, t_np_batch, 5.0)

    jax, jnp = jax_x64()
    if jax is None:
        report.skip(SECTION, case, "JAX jit + lax.scan", "jax missing")
        report.skip(SECTION, batch_case, "JAX jit + vmap + lax.scan", "jax missing")
    else:
        Aj, yj = jnp.asarray(A), jnp.asarray(y)

        def jax_step(A, y, U):
            r = jnp.einsum("mij,ij->m", A, U @ U.T) - y
            return U - (LR / M) * jnp.einsum("m,mij->ij", r, A) @ U

        @jax.jit
        def jax_run(A, y, U):  # A an argument, not a closure constant (XLA would try to fold it)
            return jax.lax.scan(lambda U, _: (jax_step(A, y, U), None), U, None, length=STEPS)[0]

        @jax.jit
        def jax_batch(A, y, U):
            step = jax.vmap(jax_step, in_axes=(None, None, 0))
            return jax.lax.scan(lambda U, _: (step(A, y, U), None), U, None, length=STEPS)[0]

        U0j, Ubj = jnp.asarray(U0), jnp.asarray(Ub)
        _agree("JAX", np.asarray(jax_run(Aj, yj, U0j)), U_np)
        _agree("JAX batch", np.asarray(jax_batch(Aj, yj, Ubj)), Ub_np)
        t_jax = median_time(lambda: jax.block_until_ready(jax_run(Aj, yj, U0j)), repeat=repeat, warmup=2)
        t_jax_batch = median_time(lambda: jax.block_until_ready(jax_batch(Aj, yj, Ubj)), repeat=repeat, warmup=2)
        report.add(SECTION, case, "JAX jit + lax.scan", t_one, t_jax, 2.0)
        report.add(SECTION, batch_case, "JAX jit + vmap + lax.scan", t_batch, t_jax_batch, None)

    flops = floor_flops(D, M, WIDTH) * STEPS
    for name, seconds, trajectories, threads in ((case, t_one, 1, 1), (batch_case, t_batch, BATCH, THREADS)):
        rate = dgemm_rate(threads)
        useful = flops * trajectories / seconds
        report.fact(f"{name}: floor GFLOP/s", round(useful / 1e9, 2))
        report.fact(f"DGEMM rate on {threads} thread{'s' if threads > 1 else ''} (GFLOP/s)", round(rate / 1e9, 1))
        report.fact(f"{name}: fraction of the FLOP floor at the DGEMM rate", round(useful / rate, 3))


def _agree(name: str, U: np.ndarray, reference: np.ndarray) -> None:
    """``AssertionError`` unless ``U`` is NumPy's final iterate up to rounding (the sums run in other
    orders; 200 steps amplify the differences only along the growing directions, relatively)."""
    scale = float(np.max(np.abs(reference)))
    difference = float(np.max(np.abs(U - reference)))
    assert difference <= 1e-9 * scale, f"{name}: max |U - U_numpy| = {difference:.3g} (scale {scale:.3g})"
