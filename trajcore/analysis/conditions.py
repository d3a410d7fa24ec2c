"""The three conditions of the basis-function framework, measured on a run (PAPERS.md section 1),
and the learning-time predictions they imply for matrix factorization (section 2).

1. small initialization: ``|beta_i(0)|`` small;
2. gradient independence: ``|cos(grad beta_i, grad beta_j)| ~ 0`` for i != j;
3. gradient dominance: ``||grad beta_i|| ~ C |beta_i|^gamma`` (slope gamma on a log-log plot).

The gradient measures work for any problem with a method ``coefficient_gradients(params, pairs)``
returning ``(K, *P)`` gradients of the coefficients with respect to the parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import as_float_array, as_positive_float, as_positive_int

__all__ = [
    "GradientDominance",
    "fit_gradient_dominance",
    "growth_phase",
    "gradient_dominance",
    "gradient_independence",
    "predicted_learning_times",
    "iteration_bound",
]


@dataclass
class GradientDominance:
    """Fit of ``log ||grad beta_k|| = log C_k + gamma_k log |beta_k|`` per coefficient.

    gamma, C, r2 : (K,) float64 -- slope, prefactor and coefficient of determination of each fit
        (NaN when fewer than two usable points).
    coefficients, gradient_norms : (T, K) float64 -- the measured points.
    used : (T, K) bool -- the points each fit used (the growth phase with ``phase="growth"``).
    """

    gamma: np.ndarray
    C: np.ndarray
    r2: np.ndarray
    coefficients: np.ndarray
    gradient_norms: np.ndarray
    used: np.ndarray | None = None

    def fit_range(self) -> np.ndarray:
        """``(K, 2)``: the smallest and largest ``|beta_k|`` each fit used (NaN where none)."""
        used = np.ones(self.coefficients.shape, bool) if self.used is None else self.used
        size = np.where(used, np.abs(self.coefficients), np.nan)
        out = np.full((size.shape[1], 2), np.nan)
        has = used.any(axis=0)
        out[has, 0], out[has, 1] = np.nanmin(size[:, has], axis=0), np.nanmax(size[:, has], axis=0)
        return out


def growth_phase(coefficients: Any, q: float = 0.9) -> np.ndarray:
    """``(T, K)`` mask of each coefficient's growth phase: from the first record up to the first one
    where ``|beta_k|`` reaches ``q`` times its largest value (the regime the theory's
    ``beta <- beta + eta C^2 (beta* - beta) |beta|^{2 gamma}`` describes before saturation)."""
    beta = np.abs(as_float_array("coefficients", coefficients, ndim=2, finite=False))
    if not 0 < q <= 1:
        raise ValueError(f"q: expected a number in (0, 1], got {q!r}")
    peak = np.nanmax(beta, axis=0) if beta.shape[0] else np.zeros(beta.shape[1])
    reached = beta >= q * peak
    first = np.where(reached.any(axis=0), reached.argmax(axis=0), beta.shape[0] - 1)
    return np.arange(beta.shape[0])[:, None] <= first[None, :]


def fit_gradient_dominance(
    coefficients: Any, gradient_norms: Any, floor: float = 1e-300, phase: str = "all", q: float = 0.9
) -> GradientDominance:
    """Least-squares power-law fit per column of ``coefficients (T, K)`` against ``gradient_norms (T, K)``.

    Points with ``|beta| <= floor`` or a zero gradient are left out (their logarithm is undefined).
    ``phase="growth"`` fits each coefficient on its growth phase only (:func:`growth_phase` with
    ``q``): saturation, where the coefficient stops growing while its gradient shrinks, is not
    what condition 3 describes.
    """
    beta = as_float_array("coefficients", coefficients, ndim=2)
    norms = as_float_array("gradient_norms", gradient_norms, shape=beta.shape)
    if phase not in ("all", "growth"):
        raise ValueError(f"phase: expected 'all' or 'growth', got {phase!r}")
    window = growth_phase(beta, q) if phase == "growth" else np.ones(beta.shape, bool)
    K = beta.shape[1]
    gamma, C, r2 = np.full(K, np.nan), np.full(K, np.nan), np.full(K, np.nan)
    used = np.zeros(beta.shape, bool)
    for k in range(K):
        ok = (np.abs(beta[:, k]) > floor) & (norms[:, k] > 0) & window[:, k]
        used[:, k] = ok
        if ok.sum() < 2:
            continue
        x, y = np.log(np.abs(beta[ok, k])), np.log(norms[ok, k])
        if np.ptp(x) == 0:
            continue
        slope, intercept = np.polyfit(x, y, 1)
        residual = y - (slope * x + intercept)
        total = np.sum((y - y.mean()) ** 2)
        gamma[k], C[k] = slope, np.exp(intercept)
        r2[k] = 1.0 - np.sum(residual**2) / total if total > 0 else 1.0
    return GradientDominance(gamma, C, r2, beta, norms, used)


def _gradients_along(problem: Any, iterates: Any, pairs: Any) -> tuple[np.ndarray, np.ndarray]:
    if not hasattr(problem, "coefficient_gradients"):
        raise TypeError(f"problem: {type(problem).__name__} does not provide coefficient_gradients")
    snaps = as_float_array("iterates", iterates, ndim=problem.parameter_ndim + 1)
    if snaps.shape[0] == 0:
        raise ValueError(f"iterates: expected at least one snapshot, got shape {snaps.shape}")
    try:  # the problem's own check: an integer (K, 2) array of indices inside its basis
        pairs = problem.coefficient_pairs(np.asarray(pairs))
    except ValueError as err:
        raise ValueError(f"pairs: {err}") from None
    grads = np.stack([problem.coefficient_gradients(U, pairs) for U in snaps])  # (T, K, *P)
    values = np.stack([problem.coefficients(U, pairs) for U in snaps])  # (T, K)
    return values, grads.reshape(grads.shape[0], grads.shape[1], int(np.prod(grads.shape[2:])))  # K may be 0


def gradient_dominance(problem: Any, iterates: Any, pairs: Any) -> GradientDominance:
    """Measure condition 3 along recorded ``iterates (T, *P)`` for coefficient ``pairs (K, 2)``.

    For symmetric matrix factorization the exact value is gamma = 1/2, C = 2 on the diagonal.
    """
    values, grads = _gradients_along(problem, iterates, pairs)
    return fit_gradient_dominance(values, np.linalg.norm(grads, axis=-1))


def gradient_independence(problem: Any, iterates: Any, pairs: Any) -> np.ndarray:
    """Condition 2: ``max_t |cos(grad beta_i, grad beta_j)|`` over recorded ``iterates (T, *P)``.

    Returns (K, K) float64 with ones on the diagonal (where a gradient is nonzero); 0 is perfect
    independence.
    """
    _, grads = _gradients_along(problem, iterates, pairs)
    norms = np.linalg.norm(grads, axis=-1)  # (T, K)
    gram = np.einsum("tkp,tlp->tkl", grads, grads)
    denom = norms[:, :, None] * norms[:, None, :]
    cos = np.divide(np.abs(gram), denom, out=np.zeros_like(gram), where=denom > 0)
    return cos.max(axis=0)


def predicted_learning_times(sigma: Any, alpha: float, width: int, lr: float) -> np.ndarray:
    """Symmetric factorization: ``T_i = ln(sigma_i / (alpha^2 r')) / (2 ln(1 + eta sigma_i))``.

    The step at which beta_ii, growing by ``(1 + eta sigma_i)^2`` per step from about
    ``alpha^2 r'``, reaches sigma_i: compare with ``learning_times(..., q=0.5)``.
    sigma : (r,) float64. Returns (r,) float64.
    """
    sig = as_float_array("sigma", sigma, ndim=1)
    if np.any(sig <= 0):
        raise ValueError("sigma: expected positive values")
    alpha = as_positive_float("alpha", alpha)
    width = as_positive_int("width", width)
    lr = as_positive_float("lr", lr)
    return np.log(sig / (alpha**2 * width)) / (2.0 * np.log1p(lr * sig))


def iteration_bound(sigma_min: float, alpha: float, lr: float, eps: float) -> float:
    """The theory's iteration scale ``(log(1/alpha) + log(1/eps)) / (eta sigma_r)`` (no constant)."""
    sigma_min = as_positive_float("sigma_min", sigma_min)
    alpha = as_positive_float("alpha", alpha)
    lr = as_positive_float("lr", lr)
    eps = as_positive_float("eps", eps)
    return (np.log(1.0 / alpha) + np.log(1.0 / eps)) / (lr * sigma_min)
