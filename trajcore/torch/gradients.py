"""Gradients of basis coefficients at the recorded checkpoints of a torch run (PAPERS.md section 1).

For a basis function ``Psi_i`` on the probe set, ``beta_i(theta) = (1/n) sum_x <f_theta(x), Psi_i(x)>``
is linear in the outputs, so ``grad_theta beta_i`` is one vector-Jacobian product of the outputs
with cotangent ``Psi_i / n``. Each checkpoint is re-evaluated from its recorded state --
parameters *and* buffers, restored exactly -- in ``eval`` mode (dropout off, batch norm on the
running statistics of that checkpoint); the model's own state and mode are put back afterwards.

Two ways to compute the k products (``method``):

* ``"batched"``: one forward pass per probe batch and one backward pass carrying all k
  cotangents at once (``torch.autograd.grad(..., is_grads_batched=True)``, i.e. ``vmap`` over the
  vector-Jacobian product);
* ``"loop"``: a forward and a backward pass per basis function, the reference.

Both compute the same numbers (to rounding). The batched form saves the k - 1 repeated forward
passes and runs the k backward passes as larger products; the k backward passes themselves are the
FLOP floor of exact per-function gradients (a backward pass costs about two forward passes), so no
ordering of the same products gains much more than ``3k / (1 + 2k)``, 1.43x at k = 10. Measured on
this project's 2-core machine (2026-12-04; ``bench/compare_torch.py``, CNN 32-8 on 28 x 28 inputs,
500 probe points, k = 10): 1.54x in float64, 1.29x in float32 on one torch thread and 1.75x on two.
``"batched"`` is the default; when PyTorch cannot batch a model's backward pass (an operation
without a batching rule), it falls back to ``"loop"`` with a warning.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ._require import require_torch
from ._state import StateLayout
from .recorder import probe_batches

if TYPE_CHECKING:
    from ..bases import Basis
    from ..network import NetworkRun

__all__ = ["GRADIENT_METHODS", "GradientStatistics", "coefficient_gradients", "gradient_statistics"]

GRADIENT_METHODS = ("batched", "loop")


@dataclass(frozen=True)
class GradientStatistics:
    """What the three conditions need of the coefficient gradients, without the ``(T', k, P)`` array.

    steps : (T',) int64 -- the checkpoints' step numbers.
    coefficients : (T', k) float64 -- ``beta_i`` there.
    norms : (T', k) float64 -- ``||grad beta_i||``.
    cosines : (T', k, k) float64 -- ``cos(grad beta_i, grad beta_j)`` (0 where a gradient is zero).
    """

    steps: np.ndarray
    coefficients: np.ndarray
    norms: np.ndarray
    cosines: np.ndarray

    def max_cosines(self, until: int | None = None) -> np.ndarray:
        """Condition 2 (figure 2b): ``max_t |cos|`` over the checkpoints up to step ``until``, ``(k, k)``."""
        keep = np.ones(self.steps.size, bool) if until is None else self.steps <= until
        if not np.any(keep):
            raise ValueError(f"until: no checkpoint at or before step {until}; the first is {self.steps[0]}")
        return np.abs(self.cosines[keep]).max(axis=0)


def _checkpoint_index(run: NetworkRun, checkpoints: Any | None) -> np.ndarray:
    index = np.arange(run.steps.size) if checkpoints is None else np.asarray(checkpoints)
    if index.ndim != 1 or index.dtype.kind not in "iu" or np.any(index < 0) or np.any(index >= run.steps.size):
        raise ValueError(f"checkpoints: expected positions in [0, {run.steps.size}), got {checkpoints!r}")
    return index.astype(np.int64)


def _layout(model: Any, run: NetworkRun) -> StateLayout:
    if run.parameters is None:
        raise ValueError("run: its states were not recorded; use Recorder(..., record_parameters=True)")
    stored = run.metadata.get("state_layout")
    if stored is None:  # a run recorded before buffers were kept: only a buffer-free model is exact
        layout = StateLayout.of(model)
        if layout.buffer_count:
            raise ValueError(
                "run: it has no recorded buffers, but the model has buffers (e.g. batch-norm statistics); "
                "record it again with this version of trajcore.torch.Recorder"
            )
        if layout.parameter_count != run.parameters.shape[1]:
            raise ValueError(
                f"model: has {layout.parameter_count} parameters, the run recorded {run.parameters.shape[1]}"
            )
        return layout
    layout = StateLayout.from_list(stored)
    layout.check_model(model)
    return layout


def _flat_gradients(grads: Any, params: list[Any], k: int) -> Any:
    torch = require_torch()
    return torch.cat(
        [
            (g if g is not None else torch.zeros((k, *p.shape), dtype=p.dtype)).reshape(k, -1)
            for g, p in zip(grads, params, strict=True)
        ],
        dim=1,
    )


def _gradients_here(model: Any, batches: list[Any], psi: np.ndarray, method: str) -> np.ndarray:
    """``(k, P)`` gradients of ``beta_i = (1/n) sum_x <f(x), psi[x, :, i]>`` at the model's current state."""
    torch = require_torch()
    params = list(model.parameters())
    trainable = [p for p in params if p.requires_grad]
    n, _, k = psi.shape
    if sum(b[0].shape[0] for b in batches) != n:
        raise ValueError(f"probe: yields {sum(b[0].shape[0] for b in batches)} points, the basis is defined on {n}")
    total = torch.zeros((k, sum(p.numel() for p in params)), dtype=torch.float64)

    def add(grads: Any, rows: Any) -> None:
        by_param = dict(zip((id(p) for p in trainable), grads, strict=True))
        flat = _flat_gradients([by_param.get(id(p)) for p in params], params, total[rows].shape[0])
        total[rows] += flat.to(torch.float64)

    # functions outer (a forward and a backward pass each) for "loop", batches outer for "batched"
    for i in range(k) if method == "loop" else [None]:
        start = 0
        for inputs, _ in batches:
            out = model(inputs)
            out = out.reshape(out.shape[0], -1)
            size = out.shape[0]
            cotangent = torch.as_tensor(np.moveaxis(psi[start : start + size], 2, 0) / n, dtype=out.dtype)  # (k, b, C)
            start += size
            if i is None:
                add(
                    torch.autograd.grad(out, trainable, cotangent, is_grads_batched=True, allow_unused=True),
                    slice(None),
                )
            else:
                grads = torch.autograd.grad(out, trainable, cotangent[i], allow_unused=True)
                add(tuple(None if g is None else g[None] for g in grads), slice(i, i + 1))
    return total.numpy()


def _each_checkpoint(model: Any, run: NetworkRun, basis: Basis, probe: Any, checkpoints: Any, method: str) -> Any:
    """Yield ``(position, (k, P) gradients)`` at each requested checkpoint, the state restored exactly."""
    torch = require_torch()
    from ..bases import check_run_basis

    if method not in GRADIENT_METHODS:
        raise ValueError(f"method: expected one of {GRADIENT_METHODS}, got {method!r}")
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    check_run_basis(run, basis)
    if not basis.vector_valued and run.outputs is not None and run.outputs.shape[2] != 1:
        raise ValueError("basis: gradients of scalar coefficients need a vector-valued basis, or C = 1")
    layout = _layout(model, run)
    index = _checkpoint_index(run, checkpoints)
    psi = basis.values.reshape(basis.n, -1, basis.k)
    batches = probe_batches(probe)
    assert run.parameters is not None
    saved, was_training = layout.snapshot(model), model.training
    model.eval()
    try:
        for position in index:
            buffers = None if run.buffers is None else run.buffers[position]
            layout.load(model, run.parameters[position], buffers)
            try:
                grads = _gradients_here(model, batches, psi, method)
            except RuntimeError as err:
                if method != "batched":
                    raise
                warnings.warn(
                    f"method: the batched gradients failed on this model ({err}); computing them one "
                    "function at a time (method='loop')",
                    RuntimeWarning,
                    stacklevel=3,
                )
                method = "loop"
                grads = _gradients_here(model, batches, psi, method)
            yield position, grads
    finally:
        layout.restore(model, saved)
        model.zero_grad(set_to_none=True)
        model.train(was_training)


def coefficient_gradients(
    model: Any,
    run: NetworkRun,
    basis: Basis,
    probe: Any,
    checkpoints: Any | None = None,
    *,
    method: str = "batched",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``grad_theta beta_i`` at recorded checkpoints of a torch run (the torch twin of
    :func:`trajcore.analysis.coefficient_gradients`).

    Parameters
    ----------
    model : torch.nn.Module
        The recorded model (its state at the end of the call is what it was at the start).
    run : NetworkRun
        Recorded with ``Recorder(..., record_parameters=True)``.
    basis : Basis
        k functions on the run's probe set (vector-valued, or scalar when C = 1).
    probe : torch.Tensor or iterable
        The same probe set, in the same order.
    checkpoints : (T',) int, optional
        Positions in ``run.steps`` (default: all).
    method : {"batched", "loop"}
        See the module docstring; both give the same gradients to rounding.

    Returns
    -------
    steps : (T',) int64
    coefficients : (T', k) float64
    gradients : (T', k, P) float64, in the order of ``model.parameters()``.
    """
    from ..bases import project_run

    index = _checkpoint_index(run, checkpoints)
    grads = None
    for a, (_, g) in enumerate(_each_checkpoint(model, run, basis, probe, index, method)):
        if grads is None:
            grads = np.empty((index.size, *g.shape))
        grads[a] = g
    if grads is None:
        grads = np.empty((0, basis.k, run.parameters.shape[1] if run.parameters is not None else 0))
    return run.steps[index], project_run(run, basis)[index], grads


def gradient_statistics(
    model: Any,
    run: NetworkRun,
    basis: Basis,
    probe: Any,
    checkpoints: Any | None = None,
    *,
    method: str = "batched",
) -> GradientStatistics:
    """Norms and cosines of the coefficient gradients at recorded checkpoints, keeping only ``(T', k, k)``.

    Same arguments as :func:`coefficient_gradients`; memory O(k P) instead of O(T' k P).
    """
    from ..bases import project_run

    index = _checkpoint_index(run, checkpoints)
    norms = np.empty((index.size, basis.k))
    cosines = np.empty((index.size, basis.k, basis.k))
    for a, (_, g) in enumerate(_each_checkpoint(model, run, basis, probe, index, method)):
        norms[a] = np.linalg.norm(g, axis=1)
        gram = g @ g.T
        denom = np.outer(norms[a], norms[a])
        cosines[a] = np.divide(gram, denom, out=np.zeros_like(gram), where=denom > 0)
    return GradientStatistics(run.steps[index], project_run(run, basis)[index], norms, cosines)
