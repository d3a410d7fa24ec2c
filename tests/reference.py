"""Plain NumPy reference implementations the tests compare the compiled core against.

Written from the formulas of PAPERS.md, deliberately naive (dense residuals, explicit loops), and
independent of trajcore's kernels; noise draws come from ``_core.normal_draws`` so noisy runs can be
reproduced exactly.
"""

from __future__ import annotations

import numpy as np

from trajcore import _core


def record_grid(steps: int, every: int) -> np.ndarray:
    grid = list(range(0, steps + 1, every))
    if grid[-1] != steps:
        grid.append(steps)
    return np.array(grid)


def gradient_noise(
    seed: int, trajectory: int, step: int, shape: tuple, scale: float, anneal: float = 0.0, stream: int = 1
) -> np.ndarray:
    s = scale / (1.0 + step) ** (0.5 * anneal)
    return s * _core.normal_draws(seed, trajectory, step, stream, int(np.prod(shape))).reshape(shape)


def smf_run(M, O, pairs, U0, lr, steps, every, *, noise_scale=0.0, anneal=0.0, seed=0, trajectory=0, momentum=0.0):
    """GD on 1/4 ||U U^T - M||^2; returns (loss (R,), coefficients (R, K), final U)."""
    U = U0.copy()
    v = np.zeros_like(U)
    grid = set(record_grid(steps, every).tolist())
    losses, coefs = [], []
    for t in range(steps + 1):
        if t in grid:
            R = U @ U.T - M
            losses.append(0.25 * np.sum(R * R))
            B = (O.T @ U) @ (O.T @ U).T
            coefs.append(B[pairs[:, 0], pairs[:, 1]])
        if t == steps:
            break
        g = (U @ U.T - M) @ U
        v = momentum * v + g
        U = U - lr * v
        if noise_scale:
            U = U - lr * gradient_noise(seed, trajectory, t, U.shape, noise_scale, anneal)
    return np.array(losses), np.array(coefs), U


def amf_run(M, A_full, B_full, pairs, W0, m, lr, steps, every):
    """Simultaneous GD on 1/2 ||X Y^T - M||^2 with W = [X; Y]."""
    X, Y = W0[:m].copy(), W0[m:].copy()
    grid = set(record_grid(steps, every).tolist())
    losses, coefs = [], []
    for t in range(steps + 1):
        if t in grid:
            R = X @ Y.T - M
            losses.append(0.5 * np.sum(R * R))
            C = A_full.T @ X @ Y.T @ B_full
            coefs.append(C[pairs[:, 0], pairs[:, 1]])
        if t == steps:
            break
        R = X @ Y.T - M
        X, Y = X - lr * R @ Y, Y - lr * R.T @ X
    return np.array(losses), np.array(coefs), np.concatenate([X, Y])
