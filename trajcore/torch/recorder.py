"""Record any PyTorch model's training as a :class:`~trajcore.network.NetworkRun`.

    recorder = trajcore.torch.Recorder(model, probe_loader, feature_layer="head", feature_side="input")
    for step in range(steps + 1):
        if step % 20 == 0 or step == steps:
            recorder.checkpoint(step, train_loss=last_loss)
        if step < steps:
            ...  # the user's own optimizer step
    run = recorder.run()

At each checkpoint the model is evaluated on the probe set in ``eval`` mode (dropout off, batch
norm on its running statistics), without gradients, and put back in the mode it was in. A forward
hook on ``feature_layer`` reads the penultimate features (the layer's output, or its input with
``feature_side="input"``: the input of the final ``nn.Linear`` is exactly the penultimate features).

What is kept is lean (:attr:`Recorder.nbytes` says how much): the probe outputs ``(n, C)`` of every
checkpoint, the features of the last checkpoint only (``features="first_last"`` adds the initial
ones for conjugate-kernel-at-initialization baselines, ``"all"`` keeps every checkpoint's), probe
loss and accuracy when the probe set has targets, and -- with ``record_parameters=True`` -- the
model's whole state at each checkpoint (parameters *and* buffers, exactly), which is what
:func:`trajcore.torch.coefficient_gradients` needs to re-evaluate a checkpoint.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validation import as_nonnegative_int
from ._require import require_torch
from ._state import StateLayout

if TYPE_CHECKING:
    from ..network import NetworkRun

__all__ = ["FEATURE_POLICIES", "Recorder", "probe_batches"]

FEATURE_POLICIES = ("last", "first_last", "all")


def probe_batches(probe: Any) -> list[tuple[Any, Any]]:
    """``[(inputs, targets or None), ...]`` of a probe tensor or of a loader/iterable of tensors or tuples."""
    torch = require_torch()
    if isinstance(probe, torch.Tensor):
        return [(probe, None)]
    batches = []
    for item in probe:
        if isinstance(item, (tuple, list)):
            if not item or not isinstance(item[0], torch.Tensor):
                raise TypeError("probe: each batch must be a tensor or a tuple (inputs, targets, ...) of tensors")
            target = item[1] if len(item) > 1 and isinstance(item[1], torch.Tensor) else None
            batches.append((item[0], target))
        elif isinstance(item, torch.Tensor):
            batches.append((item, None))
        else:
            raise TypeError(f"probe: each batch must be a tensor or a tuple of tensors, got {type(item).__name__}")
    if not batches:
        raise ValueError("probe: the probe loader yielded no batches")
    return batches


def _fingerprint(batches: list[tuple[Any, Any]]) -> list[tuple[tuple[int, ...], str]]:
    """Shape and digest of every probe batch's inputs: a loader that shuffles or resizes is caught."""
    prints = []
    for inputs, _ in batches:
        data = inputs.detach().to("cpu").contiguous().numpy().tobytes()
        prints.append((tuple(inputs.shape), hashlib.blake2b(data, digest_size=16).hexdigest()))
    return prints


def _as_targets(batches: list[tuple[Any, Any]], n: int, C: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(targets (n, C) float64, labels (n,) int64 or None)`` of the probe set, or ``(None, None)``.

    Integer targets of shape ``(batch,)`` are class indices (one-hot encoded); real targets must
    have the outputs' shape. Anything else is a ``ValueError``, never silently dropped.
    """
    torch = require_torch()
    pieces = [t for _, t in batches]
    if all(t is None for t in pieces):
        return None, None
    if any(t is None for t in pieces):
        raise ValueError("probe: some batches have targets and some do not")
    joined = torch.cat([t.detach().to("cpu").reshape(t.shape[0], -1) for t in pieces])
    if joined.shape[0] != n:
        raise ValueError(f"probe: {joined.shape[0]} targets for {n} probe inputs")
    if not joined.is_floating_point() and joined.shape[1] == 1:
        labels = joined.reshape(-1).to(torch.int64).numpy()
        if labels.min() < 0 or labels.max() >= C:
            raise ValueError(f"probe: class-index targets must lie in [0, {C}), got {labels.min()}..{labels.max()}")
        return np.eye(C)[labels], labels
    targets = joined.to(torch.float64).numpy()
    if targets.shape != (n, C):
        raise ValueError(
            f"probe: targets of shape {tuple(targets.shape)} do not match the outputs ({n}, {C}); give class "
            "indices (integers, one per point) or real targets with one column per output"
        )
    labels = np.argmax(targets, axis=1) if C > 1 and np.all((targets == 0) | (targets == 1)) else None
    return targets, labels


class Recorder:
    """Collect a :class:`~trajcore.network.NetworkRun` from a ``torch.nn.Module`` at checkpoints.

    Parameters
    ----------
    model : torch.nn.Module
        Maps a batch of probe inputs to outputs ``(batch, C)`` (or ``(batch,)`` for C = 1).
    probe : torch.Tensor or iterable
        The probe set: a tensor of inputs, or a loader yielding inputs or ``(inputs, targets, ...)``
        tuples. It must yield the same points in the same order at every checkpoint (no
        shuffling): this is checked. Targets may be class indices or real ``(batch, C)`` values.
    feature_layer : str
        Name of the module (as in ``model.named_modules()``) whose output -- or input, with
        ``feature_side="input"`` -- are the penultimate features; flattened to ``(batch, p)``.
    feature_side : {"output", "input"}
    features : {"last", "first_last", "all"}
        Which checkpoints keep their features (the after-training basis needs only the last).
    record_parameters : bool
        Keep the model's whole state (parameters and buffers, as float64) at each checkpoint.
    output_bias : bool, optional
        Whether the last layer has a bias (selects the bases' constant-feature rule). Default: read
        from the hooked layer when ``feature_side="input"`` (its ``bias``); with
        ``feature_side="output"`` the layer after the features is not known, so it must be given.
    loss : {"mse", "cross_entropy"}
        The probe loss recorded when the probe set has targets (trajcore's conventions:
        ``(1/2n) sum ||f - y||^2``, or the mean cross-entropy of the softmax).
    keep_inputs : bool
        Keep the probe inputs ``(n, d)`` in the run (``run.probe_inputs``).
    """

    def __init__(
        self,
        model: Any,
        probe: Any,
        feature_layer: str,
        *,
        feature_side: str = "output",
        features: str = "last",
        record_parameters: bool = False,
        output_bias: bool | None = None,
        loss: str = "mse",
        keep_inputs: bool = False,
    ) -> None:
        torch = require_torch()
        from ..network import LOSSES

        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        modules = dict(model.named_modules())
        if feature_layer not in modules:
            names = [name for name in modules if name]
            raise ValueError(f"feature_layer: the model has no layer {feature_layer!r}; its layers are {names}")
        if feature_side not in ("output", "input"):
            raise ValueError(f"feature_side: expected 'output' or 'input', got {feature_side!r}")
        if features not in FEATURE_POLICIES:
            raise ValueError(f"features: expected one of {FEATURE_POLICIES}, got {features!r}")
        if loss not in LOSSES:
            raise ValueError(f"loss: expected one of {LOSSES}, got {loss!r}")
        layer = modules[feature_layer]
        if output_bias is None:
            if feature_side == "output":
                raise ValueError(
                    "output_bias: with feature_side='output' trajcore cannot tell whether the layer after "
                    f"{feature_layer!r} has a bias; pass output_bias=True/False, or hook the last layer's input "
                    "(feature_layer=<last Linear>, feature_side='input')"
                )
            output_bias = getattr(layer, "bias", None) is not None
        self.model = model
        self.probe = probe
        self.feature_layer = feature_layer
        self.feature_side = feature_side
        self.features = features
        self.record_parameters = bool(record_parameters)
        self.output_bias = bool(output_bias)
        self.loss = loss
        self.keep_inputs = bool(keep_inputs)
        self.layout = StateLayout.of(model)
        self._layer = layer
        self._steps: list[int] = []
        self._outputs: list[np.ndarray] = []
        self._feature_steps: list[int] = []
        self._features: list[np.ndarray] = []
        self._parameters: list[np.ndarray] = []
        self._buffers: list[np.ndarray] = []
        self._train_loss: list[float] = []
        self._probe_loss: list[float] = []
        self._accuracy: list[float] = []
        self._inputs: np.ndarray | None = None
        self._fingerprint: list[tuple[tuple[int, ...], str]] | None = None
        self._targets: np.ndarray | None = None
        self._labels: np.ndarray | None = None
        self._last_features: np.ndarray | None = None  # the newest checkpoint's, kept under every policy
        self._last_step = -1
        self.diverged_at: int | None = None

    @property
    def nbytes(self) -> int:
        """Bytes of everything recorded so far."""
        lists = (self._outputs, self._features, self._parameters, self._buffers)
        arrays = sum(a.nbytes for group in lists for a in group)
        extra = sum(a.nbytes for a in (self._inputs, self._targets, self._labels) if a is not None)
        if self._last_features is not None and not (self._features and self._features[-1] is self._last_features):
            extra += self._last_features.nbytes
        return int(arrays + extra + 8 * 4 * len(self._steps))

    def _evaluate(self, batches: list[tuple[Any, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(outputs (n, C), features (n, p), inputs (n, d) or None)`` of the model in eval mode."""
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
                for batch, _ in batches:
                    captured.clear()
                    out = self.model(batch)
                    if not isinstance(out, torch.Tensor) or out.ndim not in (1, 2) or out.shape[0] != batch.shape[0]:
                        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                        raise ValueError(
                            f"model: expected outputs of shape (batch, C) or (batch,) for a probe batch of "
                            f"{batch.shape[0]} points, got {shape}"
                        )
                    if len(captured) != 1:
                        raise ValueError(
                            f"feature_layer: {self.feature_layer!r} ran {len(captured)} times in one "
                            "forward pass; hook a layer that runs exactly once"
                        )
                    outputs.append(out.to("cpu", torch.float64).reshape(out.shape[0], -1).numpy())
                    feat = captured[0]
                    features.append(feat.to("cpu", torch.float64).reshape(feat.shape[0], -1).numpy())
                    if self.keep_inputs:
                        inputs.append(batch.detach().to("cpu", torch.float64).reshape(batch.shape[0], -1).numpy())
        finally:
            handle.remove()
            self.model.train(was_training)
        return np.concatenate(outputs), np.concatenate(features), np.concatenate(inputs) if inputs else None

    def _check_probe(self, batches: list[tuple[Any, Any]], step: int) -> None:
        prints = _fingerprint(batches)
        if self._fingerprint is None:
            self._fingerprint = prints
        elif prints != self._fingerprint:
            sizes = [p[0][0] for p in prints]
            first = [p[0][0] for p in self._fingerprint]
            what = "changed its batch sizes" if sizes != first else "yielded other inputs or another order"
            raise ValueError(
                f"probe: at step {step} the probe loader {what} than at step {self._steps[0]} "
                f"(batch sizes {first} then {sizes}); use a fixed probe set (a tensor, or a DataLoader "
                "with shuffle=False and no random transforms)"
            )

    def _keeps_features(self, step: int) -> bool:
        return self.features == "all" or (self.features == "first_last" and not self._steps)

    def checkpoint(self, step: int, train_loss: float = math.nan) -> bool:
        """Record the probe outputs (and what else was asked for) at training step ``step``.

        Returns False (and records nothing) from the first checkpoint whose outputs are not
        finite on: a diverged run warns once, at that checkpoint, and stays usable up to it.
        """
        step = as_nonnegative_int("step", step)
        if self._steps and step <= self._steps[-1]:
            raise ValueError(f"step: checkpoints must increase; got {step} after {self._steps[-1]}")
        if self.diverged_at is not None:
            return False
        batches = probe_batches(self.probe)
        self._check_probe(batches, step)
        outputs, features, inputs = self._evaluate(batches)
        if self._outputs and outputs.shape != self._outputs[0].shape:
            raise ValueError(f"probe: outputs changed shape from {self._outputs[0].shape} to {outputs.shape}")
        if not np.all(np.isfinite(outputs)):
            self.diverged_at = step
            warnings.warn(
                f"checkpoint: the model's outputs on the probe set are not finite at step {step} (the run "
                f"diverged); it is recorded up to step {self._steps[-1] if self._steps else None}, "
                "later checkpoints are ignored",
                RuntimeWarning,
                stacklevel=2,
            )
            return False
        if not self._steps:
            self._targets, self._labels = _as_targets(batches, outputs.shape[0], outputs.shape[1])
        if self._keeps_features(step):
            self._features.append(features)
            self._feature_steps.append(step)
        self._last_features, self._last_step = features, step
        if inputs is not None:
            self._inputs = inputs
        self._steps.append(step)
        self._outputs.append(outputs)
        self._train_loss.append(float(train_loss))
        if self._targets is not None:
            from ..network import _loss

            self._probe_loss.append(_loss(self.loss, outputs, self._targets)[0])
        if self._labels is not None:
            self._accuracy.append(float(np.mean(np.argmax(outputs, axis=1) == self._labels)))
        if self.record_parameters:
            parameters, buffers = self.layout.flatten(self.model)
            self._parameters.append(parameters)
            self._buffers.append(buffers)
        return True

    def run(self, metadata: dict[str, Any] | None = None) -> NetworkRun:
        """The recorded :class:`~trajcore.network.NetworkRun` (needs at least one checkpoint)."""
        from ..config import version
        from ..network import NetworkRun

        if not self._steps:
            raise ValueError("run: no checkpoint was recorded; call checkpoint(step) during training")
        feature_steps, features = list(self._feature_steps), list(self._features)
        assert self._last_features is not None
        if not feature_steps or feature_steps[-1] != self._last_step:
            feature_steps.append(self._last_step)
            features.append(self._last_features)
        meta = {
            "model": {"kind": "torch", "class": type(self.model).__name__, "repr": repr(self.model)},
            "feature_layer": self.feature_layer,
            "feature_side": self.feature_side,
            "output_bias": self.output_bias,
            "probe": "given",
            "loss": self.loss,
            "state_layout": self.layout.to_list(),
            "version": version(),
            "source": "trajcore.torch",
            **({"diverged_at": self.diverged_at} if self.diverged_at is not None else {}),
            **(metadata or {}),
        }
        return NetworkRun(
            steps=np.asarray(self._steps, dtype=np.int64),
            outputs=np.stack(self._outputs),
            coefficients=None,
            feature_steps=np.asarray(feature_steps, dtype=np.int64),
            features=np.stack(features),
            parameters=np.stack(self._parameters) if self.record_parameters else None,
            buffers=np.stack(self._buffers) if self.record_parameters else None,
            train_loss=np.asarray(self._train_loss),
            probe_loss=np.asarray(self._probe_loss) if self._targets is not None else None,
            probe_accuracy=np.asarray(self._accuracy) if self._labels is not None else None,
            probe_inputs=self._inputs,
            probe_targets=self._targets,
            metadata=meta,
        )
