"""Basis coefficients of a network run and the three conditions of PAPERS.md section 1, measured.

* :func:`project_run` -- coefficients ``beta_i(t)`` of a recorded run on any basis, ``(T, k)``
  (defined with the bases, :func:`trajcore.bases.project_run`).
* :func:`top_coefficient_monotonicity` -- the paper's claim as one number per coefficient.
* :func:`initialization_bars` -- condition 1 (small initialization): ``|beta_i(0)|`` of the top final
  coefficients and the residual bar (figure 2a).
* :func:`coefficient_gradients` -- ``grad_theta beta_i`` at recorded checkpoints (built-in MLP runs).
* :func:`max_gradient_cosines` -- condition 2 from recorded gradients:
  ``max_t |cos(grad beta_i, grad beta_j)|`` (figure 2b).
* condition 3 (figure 2c): :func:`trajcore.analysis.fit_gradient_dominance` on the coefficients and
  ``np.linalg.norm(gradients, axis=2)``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validation import as_float_array, as_positive_int
from ..bases import check_run_basis, project_run
from .series import monotonicity_index

if TYPE_CHECKING:
    from ..bases import Basis
    from ..network import NetworkRun

__all__ = [
    "project_run",
    "top_coefficient_monotonicity",
    "InitializationBars",
    "initialization_bars",
    "coefficient_gradients",
    "max_gradient_cosines",
]


def top_coefficient_monotonicity(coefficients: Any, top: int = 5) -> np.ndarray:
    """Monotonicity index (PAPERS.md section 6) of the ``top`` coefficients largest in ``|beta(T)|``.

    coefficients : (T, k) float64. Returns (top,) in decreasing order of ``|beta(T)|``.
    """
    c = as_float_array("coefficients", coefficients, ndim=2, finite=False)
    if c.shape[0] == 0:
        raise ValueError(f"coefficients: expected at least one record (T >= 1), got shape {c.shape}")
    top = as_positive_int("top", top)
    order = np.argsort(-np.abs(c[-1]), kind="stable")[: min(top, c.shape[1])]
    return np.atleast_1d(monotonicity_index(c[:, order]))


@dataclass(frozen=True)
class InitializationBars:
    """Figure 2a data. indices (m,): basis indices of the top final coefficients; initial (m,):
    ``|beta_i(0)|``; final (m,): ``|beta_i(T)|``; residual: the norm of everything else at t = 0,
    ``sqrt(||f_0||^2 - sum_top beta_i(0)^2)`` with ``||f_0||^2 = (1/n) sum_x |f_0(x)|^2``."""

    indices: np.ndarray
    initial: np.ndarray
    final: np.ndarray
    residual: float


def initialization_bars(run: NetworkRun, basis: Basis, top: int = 20) -> InitializationBars:
    """Condition 1 (small initialization) on a run: sizes of the top coefficients at t = 0 and the residual.

    The residual is measured against the whole initial function, not only the basis (which may be
    incomplete), so it is the size of every component of ``f_0`` outside the top-m functions.
    """
    check_run_basis(run, basis)
    assert run.outputs is not None
    if not basis.vector_valued and run.outputs.shape[2] != 1:
        raise ValueError("basis: initialization bars need scalar coefficients: a vector-valued basis, or C = 1")
    c = project_run(run, basis)
    top = as_positive_int("top", top)
    if top > c.shape[1]:
        warnings.warn(
            f"top: the basis has {c.shape[1]} functions, fewer than top={top}; showing all {c.shape[1]}",
            UserWarning,
            stacklevel=2,
        )
    order = np.argsort(-np.abs(c[-1]), kind="stable")[: min(top, c.shape[1])]
    f0 = run.outputs[0]
    total = float(np.sum(f0 * f0)) / f0.shape[0]
    residual = float(np.sqrt(max(0.0, total - float(np.sum(c[0, order] ** 2)))))
    return InitializationBars(order, np.abs(c[0, order]), np.abs(c[-1, order]), residual)


def coefficient_gradients(
    run: NetworkRun, basis: Basis, checkpoints: Any | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``grad_theta beta_i`` at recorded checkpoints of a built-in MLP run.

    ``beta_i(theta) = (1/n) sum_x <f_theta(x), Psi_i(x)>``, so its gradient is one backward pass
    with output cotangent ``Psi_i / n``: cost O(k n P) per checkpoint. The run must have recorded
    its parameters (``Training(record_parameters=True)``); torch runs use
    ``trajcore.torch.coefficient_gradients``.

    Parameters
    ----------
    run : NetworkRun
    basis : Basis
        Vector-valued (or scalar with C = 1), k functions.
    checkpoints : (T',) int, optional
        Positions in ``run.steps`` (default: all).

    Returns
    -------
    steps : (T',) int64
    coefficients : (T', k) float64
    gradients : (T', k, P) float64
    """
    from ..network import MLP

    check_run_basis(run, basis)
    if run.parameters is None:
        raise ValueError("run: parameters were not recorded; train with Training(record_parameters=True)")
    model_info = run.metadata.get("model", {})
    if model_info.get("kind") != "mlp":
        raise ValueError("run: not a built-in MLP run; use trajcore.torch.coefficient_gradients for torch models")
    if not basis.vector_valued and run.outputs is not None and run.outputs.shape[2] != 1:
        raise ValueError("basis: gradients of scalar coefficients need a vector-valued basis, or C = 1")
    model = MLP.from_dict(model_info)
    assert run.probe_inputs is not None
    index = np.arange(run.steps.size) if checkpoints is None else np.asarray(checkpoints, dtype=np.int64)
    if index.ndim != 1 or np.any(index < 0) or np.any(index >= run.steps.size):
        raise ValueError(f"checkpoints: expected positions in [0, {run.steps.size}), got {checkpoints!r}")
    psi = basis.values.reshape(basis.n, -1, basis.k)  # (n, C, k)
    grads = np.empty((index.size, basis.k, model.parameter_count))
    for a, t in enumerate(index):
        theta = run.parameters[t]
        z, acts = model._forward(theta, run.probe_inputs)
        for i in range(basis.k):
            grads[a, i] = model._backward(theta, z, acts, psi[:, :, i] / basis.n)
    coefficients = project_run(run, basis)[index]
    return run.steps[index], coefficients, grads


def max_gradient_cosines(gradients: Any) -> np.ndarray:
    """Condition 2: ``max_t |cos(grad beta_i(t), grad beta_j(t))|`` over the given times.

    gradients : (T', k, P) float64. Returns (k, k) with ones on the diagonal (where gradients are
    non-zero); a zero gradient has cosine 0 with everything.
    """
    g = as_float_array("gradients", gradients, ndim=3)
    norms = np.linalg.norm(g, axis=2)  # (T', k)
    safe = np.where(norms > 0, norms, 1.0)
    unit = g / safe[:, :, None]
    cos = np.abs(np.einsum("tip,tjp->tij", unit, unit))
    return cos.max(axis=0) if g.shape[0] else np.zeros((g.shape[1], g.shape[1]))
