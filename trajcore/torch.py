"""Record any PyTorch model's training as a :class:`~trajcore.network.NetworkRun` (optional extra).

    pip install trajcore[torch]

    recorder = trajcore.torch.Recorder(model, probe_loader, feature_layer="body.3")
    for step in range(steps + 1):
        if step in checkpoints:
            recorder.checkpoint(step, train_loss=last_loss)
        if step < steps:
            ...  # the user's own optimizer step
    run = recorder.run()

The recorder registers a forward hook on the named layer (its output, or its input with
``feature_side="input"`` -- e.g. the input of the final ``nn.Linear`` is exactly the penultimate
features), evaluates the model on the probe loader at each checkpoint (in ``eval`` mode, without
gradients, restoring the previous mode afterwards) and keeps outputs, features and optionally the
flat parameter vector as float64. The resulting run works with every basis, measure and plot of
trajcore. ``torch`` is imported lazily: importing this module without it raises a clear error.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ._validation import as_nonnegative_int

if TYPE_CHECKING:
    from .bases import Basis
    from .network import NetworkRun

__all__ = ["Recorder", "coefficient_gradients", "require_torch"]


def require_torch() -> Any:
    """The ``torch`` module, or an ``ImportError`` saying how to install it."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without torch
        raise ImportError("trajcore.torch needs PyTorch: pip install 'trajcore[torch]' (or pip install torch)") from exc
    return torch


def _probe_batches(probe: Any) -> list[Any]:
    """Inputs of each probe batch: a tensor, or a loader/iterable of tensors or (inputs, targets, ...)."""
    torch = require_torch()
    if isinstance(probe, torch.Tensor):
        return [probe]
    batches = []
    for item in probe:
        batches.append(item[0] if isinstance(item, (tuple, list)) else item)
    if not batches:
        raise ValueError("probe: the probe loader yielded no batches")
    return batches


def _probe_targets(probe: Any) -> np.ndarray | None:
    torch = require_torch()
    if isinstance(probe, torch.Tensor):
        return None
    targets = []
    for item in probe:
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            return None
        targets.append(item[1].detach().to("cpu", torch.float64).numpy().reshape(item[1].shape[0], -1))
    return np.concatenate(targets) if targets else None


class Recorder:
    """Collect a :class:`~trajcore.network.NetworkRun` from a ``torch.nn.Module`` at checkpoints.

    Parameters
    ----------
    model : torch.nn.Module
        Maps a batch of probe inputs to outputs ``(batch, C)`` (or ``(batch,)`` for C = 1).
    probe : torch.Tensor or iterable
        The probe set: a tensor of inputs, or a loader yielding inputs or ``(inputs, targets, ...)``
        tuples. It is iterated at every checkpoint and must yield the same points in the same order
        (no shuffling).
    feature_layer : str
        Name of the module (as in ``model.named_modules()``) whose output -- or input, with
        ``feature_side="input"`` -- are the penultimate features; flattened to ``(batch, p)``.
    feature_side : {"output", "input"}
    record_parameters : bool
        Keep the flat parameter vector (``torch.nn.utils.parameters_to_vector``) at each checkpoint.
    output_bias : bool, optional
        Whether the last layer has a bias (selects the bases' constant-feature rule). Default: when
        the hooked module is an ``nn.Linear`` read on its input, its bias; otherwise the bias of
        the last ``nn.Linear`` in ``model.modules()``.
    """

    def __init__(
        self,
        model: Any,
        probe: Any,
        feature_layer: str,
        *,
        feature_side: str = "output",
        record_parameters: bool = False,
        output_bias: bool | None = None,
    ) -> None:
        torch = require_torch()
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        modules = dict(model.named_modules())
        if feature_layer not in modules:
            names = [name for name in modules if name]
            raise ValueError(f"feature_layer: the model has no layer {feature_layer!r}; its layers are {names}")
        if feature_side not in ("output", "input"):
            raise ValueError(f"feature_side: expected 'output' or 'input', got {feature_side!r}")
        self.model = model
        self.probe = probe
        self.feature_layer = feature_layer
        self.feature_side = feature_side
        self.record_parameters = bool(record_parameters)
        layer = modules[feature_layer]
        if output_bias is None:
            if feature_side == "input" and isinstance(layer, torch.nn.Linear):
                output_bias = layer.bias is not None
            else:
                linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
                output_bias = bool(linears and linears[-1].bias is not None)
        self.output_bias = bool(output_bias)
        self._layer = layer
        self._steps: list[int] = []
        self._outputs: list[np.ndarray] = []
        self._features: list[np.ndarray] = []
        self._parameters: list[np.ndarray] = []
        self._loss: list[float] = []
        self._inputs: np.ndarray | None = None

    def _evaluate(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        torch = require_torch()
        captured: list[Any] = []

        def hook(module: Any, args: Any, output: Any) -> None:
            value = args[0] if self.feature_side == "input" else output
            captured.append(value.detach())

        handle = self._layer.register_forward_hook(hook)
        was_training = self.model.training
        self.model.eval()
        outputs, features, inputs = [], [], []
        try:
            with torch.no_grad():
                for batch in _probe_batches(self.probe):
                    captured.clear()
                    out = self.model(batch)
                    if len(captured) != 1:
                        raise ValueError(
                            f"feature_layer: {self.feature_layer!r} ran {len(captured)} times in one "
                            "forward pass; hook a layer that runs exactly once"
                        )
                    outputs.append(out.detach().to("cpu", torch.float64).reshape(out.shape[0], -1).numpy())
                    feat = captured[0]
                    features.append(feat.to("cpu", torch.float64).reshape(feat.shape[0], -1).numpy())
                    inputs.append(batch.detach().to("cpu", torch.float64).reshape(batch.shape[0], -1).numpy())
        finally:
            handle.remove()
            self.model.train(was_training)
        return np.concatenate(outputs), np.concatenate(features), np.concatenate(inputs)

    def checkpoint(self, step: int, train_loss: float = math.nan) -> None:
        """Record outputs, features (and parameters) on the probe set at training step ``step``."""
        torch = require_torch()
        step = as_nonnegative_int("step", step)
        if self._steps and step <= self._steps[-1]:
            raise ValueError(f"step: checkpoints must increase; got {step} after {self._steps[-1]}")
        outputs, features, inputs = self._evaluate()
        if self._outputs and outputs.shape != self._outputs[0].shape:
            raise ValueError(f"probe: outputs changed shape from {self._outputs[0].shape} to {outputs.shape}")
        self._inputs = inputs
        self._steps.append(step)
        self._outputs.append(outputs)
        self._features.append(features)
        self._loss.append(float(train_loss))
        if self.record_parameters:
            vector = torch.nn.utils.parameters_to_vector(self.model.parameters())
            self._parameters.append(vector.detach().to("cpu", torch.float64).numpy().copy())

    def run(self, metadata: dict[str, Any] | None = None) -> NetworkRun:
        """The recorded :class:`~trajcore.network.NetworkRun` (needs at least one checkpoint)."""
        from .config import version
        from .network import NetworkRun

        if not self._steps:
            raise ValueError("run: no checkpoint was recorded; call checkpoint(step) during training")
        targets = _probe_targets(self.probe)
        outputs = np.stack(self._outputs)
        if targets is not None and targets.shape != outputs.shape[1:]:
            targets = None
        meta = {
            "model": {"kind": "torch", "class": type(self.model).__name__, "repr": repr(self.model)},
            "feature_layer": self.feature_layer,
            "feature_side": self.feature_side,
            "output_bias": self.output_bias,
            "probe": "given",
            "version": version(),
            "source": "trajcore.torch",
            **(metadata or {}),
        }
        return NetworkRun(
            steps=np.asarray(self._steps, dtype=np.int64),
            outputs=outputs,
            coefficients=None,
            feature_steps=np.asarray(self._steps, dtype=np.int64),
            features=np.stack(self._features),
            parameters=np.stack(self._parameters) if self.record_parameters else None,
            train_loss=np.asarray(self._loss),
            probe_loss=None,
            probe_inputs=self._inputs,
            probe_targets=targets,
            metadata=meta,
        )


def coefficient_gradients(
    model: Any, run: NetworkRun, basis: Basis, probe: Any, checkpoints: Any | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``grad_theta beta_i`` at recorded checkpoints of a torch run (autograd; the torch twin of
    :func:`trajcore.analysis.coefficient_gradients`).

    The model's parameters are set from ``run.parameters[t]`` (so the run must have been recorded
    with ``record_parameters=True``) and restored afterwards. ``probe`` is the same probe set.

    Returns ``steps (T',)``, ``coefficients (T', k)``, ``gradients (T', k, P)``.
    """
    torch = require_torch()
    from .analysis.network import project_run

    if run.parameters is None:
        raise ValueError("run: parameters were not recorded; use Recorder(..., record_parameters=True)")
    if not basis.vector_valued and run.outputs is not None and run.outputs.shape[2] != 1:
        raise ValueError("basis: gradients of scalar coefficients need a vector-valued basis, or C = 1")
    index = np.arange(run.steps.size) if checkpoints is None else np.asarray(checkpoints, dtype=np.int64)
    if index.ndim != 1 or np.any(index < 0) or np.any(index >= run.steps.size):
        raise ValueError(f"checkpoints: expected positions in [0, {run.steps.size}), got {checkpoints!r}")
    params = [p for p in model.parameters()]
    saved = torch.nn.utils.parameters_to_vector(params).detach().clone()
    if saved.numel() != run.parameters.shape[1]:
        raise ValueError(f"model: has {saved.numel()} parameters, the run recorded {run.parameters.shape[1]}")
    psi = basis.values.reshape(basis.n, -1, basis.k)
    grads = np.empty((index.size, basis.k, saved.numel()))
    was_training = model.training
    model.eval()
    try:
        for a, t in enumerate(index):
            torch.nn.utils.vector_to_parameters(torch.as_tensor(run.parameters[t], dtype=saved.dtype), params)
            for i in range(basis.k):
                model.zero_grad(set_to_none=True)
                start = 0
                total = None
                for batch in _probe_batches(probe):
                    out = model(batch).reshape(batch.shape[0], -1)
                    weight = torch.as_tensor(psi[start : start + out.shape[0], :, i] / basis.n, dtype=out.dtype)
                    term = (out * weight).sum()
                    total = term if total is None else total + term
                    start += out.shape[0]
                assert total is not None
                total.backward()
                grads[a, i] = np.concatenate(
                    [
                        (p.grad if p.grad is not None else torch.zeros_like(p))
                        .detach()
                        .to("cpu", torch.float64)
                        .reshape(-1)
                        .numpy()
                        for p in params
                    ]
                )
    finally:
        torch.nn.utils.vector_to_parameters(saved, params)
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return run.steps[index], project_run(run, basis)[index], grads
