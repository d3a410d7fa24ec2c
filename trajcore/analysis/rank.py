"""Ranks and optimality of deep linear networks (PAPERS.md sections 5 and 6).

* ``numerical_rank``, ``effective_rank``, ``stable_rank`` -- on matrices ``(..., m, n)`` or, with
  ``spectrum=True``, on recorded singular values ``(..., k)`` (e.g. a run's product spectra ``(B, R, k)``).
* ``subspace_dimensions`` / ``subspace_rank_bound`` -- ``dim S_k``, ``S_k = col(W_k) + row(W_{k+1})``,
  and the bound ``rank P(t) <= min_k dim S_k(0)`` that plain GD (and GD with fresh input or label
  noise) can never break.
* ``global_optimality`` -- the section-5 test: under the data conditions a critical point is a global
  minimum exactly when the product has full rank ``min_i d_i``; rank-deficient critical points are saddles.
* ``compare_noise`` -- one start under several noise specs, a tidy table (a list of dicts; pass it to
  ``pandas.DataFrame`` if you like).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .._validation import as_float_array, as_positive_float, as_positive_int

__all__ = [
    "numerical_rank",
    "effective_rank",
    "stable_rank",
    "subspace_dimensions",
    "subspace_rank_bound",
    "global_optimality",
    "compare_noise",
]

ArrayOrNumber = float | np.ndarray


def _singular_values(name: str, A: Any, spectrum: bool) -> tuple[np.ndarray, int]:
    """Descending singular values ``(..., k)`` and the default-rule size ``max(m, n)``."""
    if spectrum:
        s = as_float_array(name, A, ndim=None, finite=False)
        if s.ndim == 0 or s.shape[-1] == 0:
            raise ValueError(f"{name}: expected singular values (..., k) with k >= 1, got shape {s.shape}")
        if np.any(s < 0):
            raise ValueError(f"{name}: singular values must be >= 0")
        return -np.sort(-s, axis=-1), int(s.shape[-1])
    M = as_float_array(name, A, finite=True)
    if M.ndim < 2 or 0 in M.shape[-2:]:
        raise ValueError(f"{name}: expected a matrix (..., m, n) with m, n >= 1, got shape {M.shape}")
    return np.linalg.svd(M, compute_uv=False), int(max(M.shape[-2:]))


def _tolerance(s: np.ndarray, size: int, rtol: float | None, atol: float | None) -> np.ndarray:
    if rtol is not None and atol is not None:
        raise ValueError("rtol, atol: give at most one of them")
    if atol is not None:
        return np.full(s.shape[:-1], as_positive_float("atol", atol))
    r = size * np.finfo(np.float64).eps if rtol is None else as_positive_float("rtol", rtol)
    return r * s[..., 0]


def _finish(values: np.ndarray, s: np.ndarray, integer: bool) -> ArrayOrNumber:
    values = np.where(np.any(np.isnan(s), axis=-1), np.nan, values)
    if values.ndim == 0:
        v = float(values)
        return int(v) if integer and np.isfinite(v) else v
    return values


def numerical_rank(
    A: Any,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    spectrum: bool = False,
    shape: tuple[int, int] | None = None,
) -> ArrayOrNumber:
    """Number of singular values above the tolerance.

    Parameters
    ----------
    A : (..., m, n) float64, or (..., k) singular values with ``spectrum=True``
    rtol : float, optional
        Relative tolerance ``rtol * s_max``; default ``max(m, n) * eps`` (numpy's rule).
    atol : float, optional
        Absolute tolerance (e.g. 1e-6, Paper B's script); give at most one of rtol, atol.
    spectrum : bool
        ``A`` holds singular values (NaN records, e.g. after divergence, give NaN).
    shape : (m, n), optional
        Matrix shape behind a spectrum, for the default relative rule (default ``m = n = k``).

    Returns
    -------
    int for one matrix / spectrum, else a float64 array over the leading axes (NaN where undefined).
    """
    s, size = _singular_values("A", A, spectrum)
    if shape is not None:
        size = max(as_positive_int("shape[0]", shape[0]), as_positive_int("shape[1]", shape[1]))
    tol = _tolerance(s, size, rtol, atol)
    with np.errstate(invalid="ignore"):
        counts = np.sum(s > tol[..., None], axis=-1).astype(np.float64)
    return _finish(counts, s, integer=True)


def effective_rank(A: Any, *, spectrum: bool = False) -> ArrayOrNumber:
    """Roy & Vetterli's effective rank ``exp(-sum p_k log p_k)``, ``p_k = s_k / sum s`` (0 for a zero matrix).

    ``A`` : (..., m, n), or (..., k) singular values with ``spectrum=True``.
    """
    s, _ = _singular_values("A", A, spectrum)
    total = np.sum(s, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(total > 0, s / np.where(total > 0, total, 1.0), 0.0)
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    values = np.where(total[..., 0] > 0, np.exp(-np.sum(terms, axis=-1)), 0.0)
    return _finish(values, s, integer=False)


def stable_rank(A: Any, *, spectrum: bool = False) -> ArrayOrNumber:
    """``||A||_F^2 / ||A||_2^2`` (0 for a zero matrix).

    ``A`` : (..., m, n), or (..., k) singular values with ``spectrum=True``.
    """
    s, _ = _singular_values("A", A, spectrum)
    top = s[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(top > 0, np.sum(s**2, axis=-1) / np.where(top > 0, top, 1.0) ** 2, 0.0)
    return _finish(values, s, integer=False)


def _check_problem(problem: Any) -> None:
    from ..linear_network import DeepLinearNetwork

    if not isinstance(problem, DeepLinearNetwork):
        raise TypeError(f"problem: expected a DeepLinearNetwork, got {type(problem).__name__}")


def subspace_dimensions(
    problem: Any, state: Any, *, rtol: float | None = None, atol: float | None = None
) -> np.ndarray:
    """``dim S_k = rank [W_k, W_{k+1}^T]`` for k = 1..N-1: ``(N-1,)`` or ``(B, N-1)`` float64.

    Defaults to the problem's rank rule when neither tolerance is given.
    """
    _check_problem(problem)
    if rtol is None and atol is None:
        rtol, atol = problem.rank_rtol, problem.rank_atol
    Ws = problem.layers(state)
    dims = [
        numerical_rank(np.concatenate([Ws[k], np.swapaxes(Ws[k + 1], -1, -2)], axis=-1), rtol=rtol, atol=atol)
        for k in range(problem.n_layers - 1)
    ]
    return np.stack([np.asarray(d, dtype=np.float64) for d in dims], axis=-1) if dims else np.zeros(0)


def subspace_rank_bound(
    problem: Any, state: Any, *, rtol: float | None = None, atol: float | None = None
) -> ArrayOrNumber:
    """``min_k dim S_k`` at ``state`` (``min(d_0, d_N, ...)`` for one layer): under plain GD the product
    rank can never exceed this number evaluated at the start."""
    _check_problem(problem)
    dims = subspace_dimensions(problem, state, rtol=rtol, atol=atol)
    if dims.shape[-1] == 0:
        return problem.rank_cap
    bound = np.min(dims, axis=-1)
    return int(bound) if np.ndim(bound) == 0 else bound


def global_optimality(
    problem: Any,
    state: Any,
    *,
    grad_rtol: float = 1e-6,
    loss_rtol: float = 1e-8,
    rtol: float | None = None,
    atol: float | None = None,
) -> dict[str, Any]:
    """Classify one state by the PAPERS.md section-5 conditions.

    Parameters
    ----------
    problem : DeepLinearNetwork
    state : (n_params,) float64
    grad_rtol : float
        Critical point when ``max_i ||grad W_i||_F <= grad_rtol * (||P Sxx||_F + ||Syx||_F) *
        prod_{j != i} ||W_j||_2`` (the natural bound on the layer gradient).
    loss_rtol : float
        The state attains the optimal loss when ``loss - L* <= loss_rtol * max(L*, 1)``.
    rtol, atol : float, optional
        Rank rule for the product rank (default: the problem's).

    Returns
    -------
    dict with ``loss``, ``optimal_loss``, ``loss_gap``, ``attains_optimal_loss``, ``relative_gradient``,
    ``is_critical``, ``product_rank``, ``rank_cap``, ``full_rank``, ``data_conditions`` (three named
    bools), ``conditions_hold`` and ``classification`` ("global minimum", "saddle (rank-deficient critical
    point)", "not a critical point", or "critical point; data conditions fail").
    """
    _check_problem(problem)
    x, batched = problem.validate_params("state", state)
    if batched and x.shape[0] != 1:
        raise ValueError("state: expected one trajectory's parameters (n_params,)")
    x = x[0]
    grad_rtol = as_positive_float("grad_rtol", grad_rtol)
    loss_rtol = as_positive_float("loss_rtol", loss_rtol, allow_zero=True)
    if rtol is None and atol is None:
        rtol, atol = problem.rank_rtol, problem.rank_atol
    Ws = problem.layers(x)
    grads = problem.layers(problem.grad(x))
    P = problem.product(x)
    norms = [float(np.linalg.norm(W, 2)) for W in Ws]
    scale = float(np.linalg.norm(P @ problem.Sxx) + np.linalg.norm(problem.Syx))
    relative = 0.0
    for i, G in enumerate(grads):
        others = float(np.prod([norms[j] for j in range(len(Ws)) if j != i]))
        denom = scale * others
        g = float(np.linalg.norm(G))
        relative = max(relative, g / denom if denom > 0 else (0.0 if g == 0 else float(np.inf)))
    loss = float(problem.loss(x))
    best = problem.optimal_loss
    eig = problem.regression_eigenvalues
    d0, dN = problem.widths[0], problem.widths[-1]
    k = min(d0, dN)
    top = eig[: min(k, eig.shape[0])]
    gaps = np.abs(np.diff(top)) if top.shape[0] > 1 else np.zeros(0)
    conditions = {
        "Sxx_full_rank": numerical_rank(problem.Sxx) == d0,
        "Syx_full_rank": numerical_rank(problem.Syx) == min(dN, d0),
        "distinct_eigenvalues": bool(np.all(gaps > 1e-10 * max(1.0, float(abs(eig[0]))))) if eig.size else True,
    }
    rank = numerical_rank(P, rtol=rtol, atol=atol)
    critical = relative <= grad_rtol
    conditions_hold = all(conditions.values())
    full = rank == problem.rank_cap
    if not critical:
        label = "not a critical point"
    elif not conditions_hold:
        label = "critical point; data conditions fail"
    elif full:
        label = "global minimum"
    else:
        label = "saddle (rank-deficient critical point)"
    return {
        "loss": loss,
        "optimal_loss": best,
        "loss_gap": loss - best,
        "attains_optimal_loss": bool(loss - best <= loss_rtol * max(best, 1.0)),
        "relative_gradient": relative,
        "is_critical": bool(critical),
        "product_rank": rank,
        "rank_cap": problem.rank_cap,
        "full_rank": bool(full),
        "data_conditions": conditions,
        "conditions_hold": bool(conditions_hold),
        "classification": label,
    }


def compare_noise(
    problem: Any,
    init: Any,
    noises: Mapping[str, Any],
    *,
    lr: Any,
    steps: int,
    seed: int = 0,
    n_runs: int = 1,
    every: int = 1,
    atol: float | None = None,
    n_threads: int | None = None,
    return_trajectories: bool = False,
) -> Any:
    """Run one start under several noise specs and tabulate rank and loss.

    Parameters
    ----------
    problem : DeepLinearNetwork
    init : (n_params,) float64
        The common start.
    noises : mapping name -> NoiseSpec, list of specs, or None (plain GD)
    lr, steps, seed, n_threads : as in :func:`trajcore.run`.
    n_runs : int
        Independent noise realisations per spec (trajectories 0..n_runs-1 of the seed); rows report
        means, plus the min and max of the final loss.
    every : int
        Record every this many steps.
    atol : float, optional
        Also report the product rank at this absolute threshold (Paper B's script: 1e-6).
    return_trajectories : bool
        Also return ``{name: Trajectory}``.

    Returns
    -------
    list of dicts, one per spec, keys: ``noise``, ``n_runs``, ``diverged``, ``initial_loss``,
    ``final_loss``, ``final_loss_min``, ``final_loss_max``, ``min_loss``, ``optimal_loss``,
    ``numerical_rank`` (final, problem's rule), ``max_numerical_rank``, ``effective_rank``,
    ``stable_rank``, ``rank_atol`` (when ``atol``), ``optimum_distance``, ``subspace_bound_start``,
    ``exceeds_subspace_bound`` (any record above the start's ``min_k dim S_k``).
    """
    from ..dynamics import Record, run

    _check_problem(problem)
    if not isinstance(noises, Mapping):
        raise TypeError(f"noises: expected a mapping name -> noise spec, got {type(noises).__name__}")
    n_runs = as_positive_int("n_runs", n_runs)
    x0, batched = problem.validate_params("init", init)
    if batched and x0.shape[0] != 1:
        raise ValueError("init: expected one start (n_params,)")
    start = np.repeat(x0, n_runs, axis=0)
    bound = subspace_rank_bound(problem, x0[0])
    k = min(problem.widths[0], problem.widths[-1])
    rows, trajectories = [], {}
    for name, noise in noises.items():
        traj = run(
            problem,
            start,
            lr=lr,
            steps=steps,
            noise=noise,
            seed=seed,
            n_threads=n_threads,
            record=Record(every=every, coefficients=True),
        )
        obs = problem.observables(traj)
        ranks = obs["numerical_rank"]  # (B, R)
        final_loss = traj.loss[:, -1]
        row: dict[str, Any] = {
            "noise": str(name),
            "n_runs": n_runs,
            "diverged": int(np.sum(traj.diverged_at >= 0)),
            "initial_loss": float(traj.loss[0, 0]),
            "final_loss": float(np.nanmean(final_loss)),
            "final_loss_min": float(np.nanmin(final_loss)),
            "final_loss_max": float(np.nanmax(final_loss)),
            "min_loss": float(np.nanmean(np.nanmin(traj.loss, axis=1))),
            "optimal_loss": problem.optimal_loss,
            "numerical_rank": float(np.nanmean(ranks[:, -1])),
            "max_numerical_rank": float(np.nanmax(ranks)),
            "effective_rank": float(np.nanmean(obs["effective_rank"][:, -1])),
            "stable_rank": float(np.nanmean(obs["stable_rank"][:, -1])),
            "optimum_distance": float(np.nanmean(obs["optimum_distance"][:, -1])),
            "subspace_bound_start": bound,
            "exceeds_subspace_bound": bool(np.nanmax(ranks) > bound),
        }
        if atol is not None:
            spectra = obs["product_singular_values"][:, -1]
            row["rank_atol"] = float(np.nanmean(numerical_rank(spectra, atol=atol, spectrum=True)))
        row["rank_cap"] = problem.rank_cap
        row["product_singular_values_final"] = np.nanmean(obs["product_singular_values"][:, -1], axis=0)[:k].tolist()
        rows.append(row)
        trajectories[str(name)] = traj
    return (rows, trajectories) if return_trajectories else rows
