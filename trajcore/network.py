"""A small multilayer perceptron in NumPy, its training loop, and the run record (PAPERS.md section 4).

The network is ``f(x) = W_L phi(x) (+ b_L)`` with ``phi`` the last hidden layer's activations (the
penultimate features); the last layer is linear, its bias optional (the paper's protocol has none).
Training is full-batch GD, minibatch SGD, heavy-ball momentum or Adam, seeded. At chosen checkpoints
a :class:`NetworkRun` keeps the outputs on a probe set, the penultimate features and, on request, the
parameter vector (for the gradient diagnostics of ``trajcore.analysis``); a basis passed as
``stream_basis`` is projected at every checkpoint as training goes (``Basis.streaming``).

Training runs in NumPy: a step costs O(n P) for n samples and P parameters, dominated by BLAS
products, and is not one of trajcore's hot loops. The flat parameter layout is, layer after
layer, ``W_l (out, in)`` row-major then ``b_l (out,)`` -- the order of ``torch.nn.Linear``'s
``weight`` and ``bias`` in an ``nn.Sequential``.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ._memory import check_allocation
from ._storage import load_record, save_record
from ._validation import as_float_array, as_nonnegative_int, as_positive_float, as_positive_int
from .basis import Basis
from .dynamics import SPACINGS, spaced_steps

__all__ = [
    "MLP",
    "Training",
    "NetworkRun",
    "train",
    "checkpoint_steps",
    "ACTIVATIONS",
    "OPTIMIZERS",
    "LOSSES",
]

ACTIVATIONS = ("relu", "tanh", "gelu", "linear")
OPTIMIZERS = ("gd", "sgd", "momentum", "adam")
LOSSES = ("mse", "cross_entropy")


def _activate(name: str, z: np.ndarray) -> np.ndarray:
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "tanh":
        return np.tanh(z)
    if name == "gelu":  # exact form (torch.nn.GELU's default): x * Phi(x)
        from scipy.special import erf

        return 0.5 * z * (1.0 + erf(z / math.sqrt(2.0)))
    return z


def _derivative(name: str, z: np.ndarray) -> np.ndarray:
    if name == "relu":
        return (z > 0).astype(np.float64)
    if name == "tanh":
        return 1.0 - np.tanh(z) ** 2
    if name == "gelu":
        from scipy.special import erf

        return 0.5 * (1.0 + erf(z / math.sqrt(2.0))) + z * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return np.ones_like(z)


@dataclass(frozen=True)
class MLP:
    """Architecture of a fully connected network ``input_dim -> hidden... -> output_dim``.

    Parameters
    ----------
    input_dim, output_dim : int
    hidden : tuple of int
        Widths of the hidden layers (empty: a linear model, features = inputs).
    activation : {"relu", "tanh", "gelu", "linear"}
    bias : bool
        Biases in the hidden layers.
    output_bias : bool
        Bias in the last (linear) layer. The conjugate-kernel bases handle it by appending a
        constant feature (see ``trajcore.bases``).
    """

    input_dim: int
    output_dim: int
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "relu"
    bias: bool = True
    output_bias: bool = False

    def __post_init__(self) -> None:
        as_positive_int("input_dim", self.input_dim)
        as_positive_int("output_dim", self.output_dim)
        object.__setattr__(self, "hidden", tuple(as_positive_int("hidden", h) for h in self.hidden))
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {ACTIVATIONS}, got {self.activation!r}")

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.input_dim, *self.hidden, self.output_dim)

    @property
    def n_layers(self) -> int:
        return len(self.hidden) + 1

    @property
    def feature_dim(self) -> int:
        """Width p of the penultimate features."""
        return self.hidden[-1] if self.hidden else self.input_dim

    def _has_bias(self, layer: int) -> bool:
        return self.output_bias if layer == self.n_layers - 1 else self.bias

    @property
    def parameter_count(self) -> int:
        s = self.sizes
        return sum(s[i] * s[i + 1] + (s[i + 1] if self._has_bias(i) else 0) for i in range(self.n_layers))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "mlp",
            **{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MLP:
        fields = {k: v for k, v in data.items() if k != "kind"}
        fields["hidden"] = tuple(fields.get("hidden", ()))
        return cls(**fields)

    # -- parameters ---------------------------------------------------------------------------------

    def layers(self, parameters: np.ndarray) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Views ``(W_l (out, in), b_l (out,) or None)`` into a flat parameter vector ``(P,)``."""
        p = as_float_array("parameters", parameters, shape=(self.parameter_count,), finite=False)
        out: list[tuple[np.ndarray, np.ndarray | None]] = []
        s, at = self.sizes, 0
        for i in range(self.n_layers):
            W = p[at : at + s[i] * s[i + 1]].reshape(s[i + 1], s[i])
            at += s[i] * s[i + 1]
            b = None
            if self._has_bias(i):
                b = p[at : at + s[i + 1]]
                at += s[i + 1]
            out.append((W, b))
        return out

    def initialize(self, seed: int = 0, scale: float = 1.0) -> np.ndarray:
        """Random parameters ``(P,)``: ``W ~ N(0, gain^2 / fan_in) * scale``, biases 0.

        ``gain`` is sqrt(2) for ReLU and GELU, 1 otherwise (He / LeCun scaling); ``scale`` below 1
        gives the small initialization of the paper's condition 1.
        """
        seed = as_nonnegative_int("seed", seed)
        scale = as_positive_float("scale", scale, allow_zero=True)
        rng = np.random.default_rng([seed, 0])
        gain = math.sqrt(2.0) if self.activation in ("relu", "gelu") else 1.0
        chunks = []
        s = self.sizes
        for i in range(self.n_layers):
            g = 1.0 if i == self.n_layers - 1 else gain
            chunks.append((scale * g / math.sqrt(s[i])) * rng.standard_normal(s[i] * s[i + 1]))
            if self._has_bias(i):
                chunks.append(np.zeros(s[i + 1]))
        return np.concatenate(chunks)

    # -- forward and backward -----------------------------------------------------------------------

    def _forward(self, parameters: np.ndarray, inputs: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Pre-activations ``z_l`` and activations ``a_l`` (a_0 = inputs, last a = outputs)."""
        a = [inputs]
        z: list[np.ndarray] = []
        layers = self.layers(parameters)
        for i, (W, b) in enumerate(layers):
            h = a[-1] @ W.T
            if b is not None:
                h += b
            z.append(h)
            a.append(h if i == self.n_layers - 1 else _activate(self.activation, h))
        return z, a

    def _inputs(self, inputs: Any) -> np.ndarray:
        return as_float_array("inputs", inputs, shape=(None, self.input_dim))

    def forward(self, parameters: np.ndarray, inputs: Any) -> np.ndarray:
        """Outputs ``(n, C)`` on ``inputs : (n, d)``."""
        return self._forward(parameters, self._inputs(inputs))[1][-1]

    def features(self, parameters: np.ndarray, inputs: Any) -> np.ndarray:
        """Penultimate features ``phi(x) : (n, p)`` (the inputs when there is no hidden layer)."""
        return self._forward(parameters, self._inputs(inputs))[1][-2]

    def _backward(
        self, parameters: np.ndarray, z: list[np.ndarray], a: list[np.ndarray], cotangent: np.ndarray
    ) -> np.ndarray:
        layers = self.layers(parameters)
        grads: list[np.ndarray] = []
        delta = cotangent  # d(scalar) / d z_L
        for i in range(self.n_layers - 1, -1, -1):
            W, b = layers[i]
            if b is not None:
                grads.append(delta.sum(axis=0))
            grads.append((delta.T @ a[i]).ravel())
            if i > 0:
                delta = (delta @ W) * _derivative(self.activation, z[i - 1])
        return np.concatenate(grads[::-1])

    def vjp(self, parameters: np.ndarray, inputs: Any, cotangent: Any) -> np.ndarray:
        """``sum_x <cotangent(x), d f(x) / d theta>``: the gradient ``(P,)`` of ``sum_x <G(x), f(x)>``.

        cotangent : (n, C) float64.
        """
        x = self._inputs(inputs)
        g = as_float_array("cotangent", cotangent, shape=(x.shape[0], self.output_dim))
        z, a = self._forward(parameters, x)
        return self._backward(parameters, z, a, g)

    def ntk(self, parameters: np.ndarray, inputs: Any, *, vector_valued: bool = False) -> np.ndarray:
        """The empirical neural tangent kernel ``K[(x, c), (x', c')] = <d f_c(x)/d theta, d f_c'(x')/d theta>``.

        Formed without Jacobians: for layer l with input activations ``A_{l-1} (n, in)`` and
        backpropagated sensitivities ``D_l^c (n, out)`` of output c, its block is
        ``(D_l^c D_l^c'^T) o (A_{l-1} A_{l-1}^T + [bias])`` (o: elementwise). Cost
        O(C^2 n^2 sum width).

        Parameters
        ----------
        parameters : (P,) float64
        inputs : (n, d) float64
        vector_valued : bool
            False: the output-traced kernel ``sum_c K[(., c), (., c)]``; True: the full kernel.

        Returns
        -------
        (n, n) float64, or (n, C, n, C) float64 when ``vector_valued``.
        """
        x = self._inputs(inputs)
        theta = as_float_array("parameters", parameters, shape=(self.parameter_count,))
        n, C = x.shape[0], self.output_dim
        size = n * C if vector_valued else n
        check_allocation("NTK matrix", 8.0 * (size * size + 2 * n * n))
        z, a = self._forward(theta, x)
        layers = self.layers(theta)
        inner = [a[i] @ a[i].T + (1.0 if layers[i][1] is not None else 0.0) for i in range(self.n_layers)]
        # Sensitivities of output c at every layer: D[c][l] (n, out_l).
        sensitivities: list[list[np.ndarray]] = []
        for c in range(C):
            delta = np.zeros((n, C))
            delta[:, c] = 1.0
            per_layer = [delta]
            for i in range(self.n_layers - 1, 0, -1):
                delta = (delta @ layers[i][0]) * _derivative(self.activation, z[i - 1])
                per_layer.append(delta)
            sensitivities.append(per_layer[::-1])
        kernel = np.zeros((n, C, n, C)) if vector_valued else np.zeros((n, n))
        for c in range(C):
            for c2 in range(C) if vector_valued else (c,):
                block = sum((sensitivities[c][i] @ sensitivities[c2][i].T) * inner[i] for i in range(self.n_layers))
                if vector_valued:
                    kernel[:, c, :, c2] = block
                else:
                    kernel += block
        return kernel

    def loss_and_gradient(
        self, parameters: np.ndarray, inputs: np.ndarray, targets: np.ndarray, loss: str = "mse"
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """``(loss, gradient (P,), outputs (n, C))`` of the mean loss over the n samples.

        ``mse``: ``(1 / 2n) sum_x ||f(x) - y(x)||^2``; ``cross_entropy``: mean of
        ``-log softmax(f(x))[y]`` with one-hot (or probability) targets y.
        """
        z, a = self._forward(parameters, inputs)
        value, cotangent = _loss(loss, a[-1], targets)
        return value, self._backward(parameters, z, a, cotangent), a[-1]


def _loss(kind: str, outputs: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean loss over rows and its gradient with respect to ``outputs``."""
    n = outputs.shape[0]
    if kind == "mse":
        r = outputs - targets
        return 0.5 * float(np.sum(r * r)) / n, r / n
    shifted = outputs - outputs.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_p = shifted - log_z
    return -float(np.sum(targets * log_p)) / n, (np.exp(log_p) * targets.sum(axis=1, keepdims=True) - targets) / n


#: the MLP's checkpoints follow run's Record(count=, spacing=) schedule: one function for both drivers
checkpoint_steps = spaced_steps


@dataclass(frozen=True)
class Training:
    """How to train.

    optimizer : {"gd", "sgd", "momentum", "adam"}
        ``gd`` is full-batch gradient descent; ``sgd`` needs ``batch_size``; ``momentum`` (heavy ball,
        ``v <- momentum v + g``, ``theta <- theta - lr v``) and ``adam`` use minibatches when
        ``batch_size`` is set and the full batch otherwise.
    lr : float
    steps : int
    batch_size : int or None
        Minibatch size (sampled without replacement within an epoch, reshuffled every epoch).
    momentum : float
    betas : (float, float)
        Adam's decay rates; ``eps`` its denominator guard.
    loss : {"mse", "cross_entropy"}
    checkpoints : int
        Number of record steps (both ends included), spaced by ``spacing``.
    spacing : {"linear", "log"}
    record_features : bool
        Penultimate features at every checkpoint (otherwise at the first and last only).
    record_parameters : bool
        Parameter vector at every checkpoint (needed by the gradient diagnostics).
    record_outputs : bool
        Probe outputs at every checkpoint (turn off when only streamed coefficients are wanted).
    """

    optimizer: str = "gd"
    lr: float = 0.1
    steps: int = 1000
    batch_size: int | None = None
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    loss: str = "mse"
    checkpoints: int = 51
    spacing: str = "linear"
    record_features: bool = True
    record_parameters: bool = False
    record_outputs: bool = True

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss: expected one of {LOSSES}, got {self.loss!r}")
        as_positive_float("lr", self.lr)
        as_nonnegative_int("steps", self.steps)
        as_positive_int("checkpoints", self.checkpoints)
        if self.batch_size is not None:
            as_positive_int("batch_size", self.batch_size)
            if self.optimizer == "gd":
                raise ValueError("batch_size: 'gd' is full-batch; use optimizer='sgd' for minibatches")
        elif self.optimizer == "sgd":
            raise ValueError("batch_size: optimizer 'sgd' needs a minibatch size")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum: expected a number in [0, 1), got {self.momentum!r}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas: expected two numbers in [0, 1), got {self.betas!r}")
        as_positive_float("eps", self.eps)
        if self.spacing not in SPACINGS:
            raise ValueError(f"spacing: expected one of {SPACINGS}, got {self.spacing!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d


_RUN_ARRAYS = (
    "steps",
    "outputs",
    "coefficients",
    "feature_steps",
    "features",
    "parameters",
    "train_loss",
    "probe_loss",
    "probe_inputs",
    "probe_targets",
    "buffers",
    "probe_accuracy",
)


@dataclass
class NetworkRun:
    """The record of one training run, from the built-in MLP or any PyTorch model (``trajcore.torch``).

    Attributes
    ----------
    steps : (T,) int64
        Checkpoint step numbers (0 is the initialization).
    outputs : (T, n, C) float64 or None
        Network outputs on the probe set at each checkpoint.
    coefficients : (T, k) float64 or None
        Coefficients streamed onto ``metadata["stream_basis"]`` during training, when one was given.
    feature_steps : (Tf,) int64
        Steps at which penultimate features were kept (every checkpoint, or the first and last).
    features : (Tf, n, p) float64
        Penultimate features on the probe set.
    parameters : (T, P) float64 or None
        Flat parameter vectors at each checkpoint, when recorded.
    train_loss : (T,) float64
        Training loss at each checkpoint (full training set).
    probe_loss : (T,) float64 or None
        Loss on the probe set, when its targets are known.
    probe_inputs : (n, d) float64 or None
    probe_targets : (n, C) float64 or None
    metadata : dict
        ``model`` (architecture), ``training``, ``seed``, ``output_bias`` (bool: the last layer has a
        bias, which the conjugate-kernel bases handle by a constant feature) and versions; torch
        runs add ``state_layout`` (the tensors behind ``parameters`` and ``buffers``) and, when the
        run diverged, ``diverged_at`` (the first step whose outputs were not finite).
    buffers : (T, Q) float64 or None
        Flat buffers (batch-norm running statistics, ...) at each checkpoint, recorded together
        with the parameters for torch models: a checkpoint's state is both.
    probe_accuracy : (T,) float64 or None
        Fraction of probe points whose largest output is their class, when class targets are known.
    """

    steps: np.ndarray
    outputs: np.ndarray | None
    coefficients: np.ndarray | None
    feature_steps: np.ndarray
    features: np.ndarray
    parameters: np.ndarray | None
    train_loss: np.ndarray
    probe_loss: np.ndarray | None
    probe_inputs: np.ndarray | None
    probe_targets: np.ndarray | None
    metadata: dict[str, Any] = field(default_factory=dict)
    buffers: np.ndarray | None = None
    probe_accuracy: np.ndarray | None = None

    @property
    def output_bias(self) -> bool:
        return bool(self.metadata.get("output_bias", False))

    @property
    def n_probe(self) -> int:
        return int(self.features.shape[1])

    @property
    def final_outputs(self) -> np.ndarray:
        """``(n, C)`` outputs at the last checkpoint."""
        if self.outputs is None:
            raise ValueError("outputs: this run did not record probe outputs (record_outputs=False)")
        return self.outputs[-1]

    def features_at(self, step: int | None = None) -> np.ndarray:
        """Penultimate features ``(n, p)`` at ``step`` (default: the last recorded)."""
        if step is None:
            return self.features[-1]
        hits = np.flatnonzero(self.feature_steps == int(step))
        if hits.size == 0:
            raise KeyError(f"step: features were kept at steps {self.feature_steps.tolist()}, not {step}")
        return self.features[hits[0]]

    @property
    def nbytes(self) -> int:
        """Bytes held by the run's arrays (outputs, features, parameters, buffers, ...)."""
        arrays = (getattr(self, name) for name in _RUN_ARRAYS)
        return int(sum(a.nbytes for a in arrays if isinstance(a, np.ndarray)))

    @property
    def record_spacing(self) -> int | None:
        """Steps between consecutive checkpoints when they are evenly spaced, else None."""
        gaps = np.diff(self.steps)
        return int(gaps[0]) if gaps.size and np.all(gaps == gaps[0]) else None

    @property
    def initial_features(self) -> np.ndarray:
        return self.features[0]

    @property
    def final_features(self) -> np.ndarray:
        return self.features[-1]

    def save(self, path: str | os.PathLike) -> None:
        """Write to ``path`` (``.npz`` arrays + JSON metadata, no pickle), atomically: readers see the
        previous file or the whole new one."""
        save_record(path, {name: getattr(self, name) for name in _RUN_ARRAYS}, self.metadata)

    @classmethod
    def load(cls, path: str | os.PathLike) -> NetworkRun:
        """Read a run written by :meth:`save` (never unpickles); a foreign file raises ``ValueError``."""
        values, metadata = load_record(path, _RUN_ARRAYS, ("steps",), "network run written by NetworkRun.save")
        return cls(**values, metadata=metadata)  # type: ignore[arg-type]


def train(
    model: MLP,
    inputs: Any,
    targets: Any,
    training: Training = Training(),
    *,
    seed: int = 0,
    init_scale: float = 1.0,
    initial_parameters: Any = None,
    probe_inputs: Any = None,
    probe_targets: Any = None,
    stream_basis: Basis | None = None,
) -> NetworkRun:
    """Train ``model`` and record it on a probe set.

    Parameters
    ----------
    model : MLP
    inputs : (N, d) float64
    targets : (N, C) float64
        One-hot rows (or probabilities) for ``cross_entropy``; anything real for ``mse``.
    training : Training
    seed : int
        Fixes the initialization (unless ``initial_parameters`` is given) and the minibatch order.
    init_scale : float
        Multiplies the initial weights (:meth:`MLP.initialize`).
    initial_parameters : (P,) float64, optional
    probe_inputs : (n, d) float64, optional
        Where outputs and features are recorded; default the training inputs. With full-batch
        training on the training set, the recorded outputs come from the training forward pass itself.
    probe_targets : (n, C) float64, optional
        Default the training targets when the probe is the training set.
    stream_basis : Basis, optional
        Projected onto at every checkpoint (``run.coefficients``, ``(T, k)``), through the C++ kernel.

    Returns
    -------
    NetworkRun
    """
    if not isinstance(model, MLP):
        raise TypeError(f"model: expected trajcore.network.MLP, got {type(model).__name__}")
    if not isinstance(training, Training):
        raise TypeError(f"training: expected trajcore.network.Training, got {type(training).__name__}")
    x = as_float_array("inputs", inputs, shape=(None, model.input_dim))
    y = as_float_array("targets", targets, shape=(x.shape[0], model.output_dim))
    seed = as_nonnegative_int("seed", seed)
    probe_is_train = probe_inputs is None
    px = x if probe_is_train else as_float_array("probe_inputs", probe_inputs, shape=(None, model.input_dim))
    py_: np.ndarray | None = y if probe_is_train else None
    if probe_targets is not None:
        py_ = as_float_array("probe_targets", probe_targets, shape=(px.shape[0], model.output_dim))
    if training.batch_size is not None and training.batch_size > x.shape[0]:
        raise ValueError(f"batch_size: at most the {x.shape[0]} training samples, got {training.batch_size}")
    if initial_parameters is None:
        theta = model.initialize(seed=seed, scale=init_scale)
    else:
        theta = as_float_array("initial_parameters", initial_parameters, shape=(model.parameter_count,), copy=True)

    record = _Recording(model, training, px, py_, stream_basis)
    optimizer = _Optimizer(training, theta.size)
    rng = np.random.default_rng([seed, 1])  # minibatch order; the initialization used [seed, 0]
    order, cursor = np.empty(0, dtype=np.int64), 0
    from .config import blas_single_threaded, version

    # Products here are small (n x width x width): one BLAS thread is faster than two competing for
    # cores, and keeps every run bitwise reproducible. Overflow on the way to divergence is reported
    # by the finiteness check below, not by NumPy warnings.
    with blas_single_threaded(), np.errstate(over="ignore", invalid="ignore"):
        for step in range(training.steps + 1):
            grad: np.ndarray | None = None
            activations: list[np.ndarray] | None = None  # the training forward pass, reused by the probe
            loss = math.nan
            if training.batch_size is None and step < training.steps:
                z, activations = model._forward(theta, x)
                loss, cotangent = _loss(training.loss, activations[-1], y)
                grad = model._backward(theta, z, activations, cotangent)
            if record.due(step):
                if activations is None:  # minibatches, or the last step: one more forward pass
                    activations = model._forward(theta, x)[1]
                    loss = _loss(training.loss, activations[-1], y)[0]
                probe = activations if probe_is_train else model._forward(theta, px)[1]
                record.add(step, probe[-1], probe[-2], theta, loss)
            if step == training.steps:
                break
            if grad is None:  # a minibatch: epochs of disjoint batches from a fresh permutation
                size = int(training.batch_size)  # type: ignore[arg-type]
                if cursor + size > order.size:
                    order, cursor = rng.permutation(x.shape[0]), 0
                batch = order[cursor : cursor + size]
                cursor += size
                grad = model.loss_and_gradient(theta, x[batch], y[batch], training.loss)[1]
            optimizer.update(theta, grad, step + 1)
            if not np.all(np.isfinite(theta)):
                raise FloatingPointError(
                    f"training diverged at step {step + 1} (lr={training.lr}); lower the step size"
                )

    metadata: dict[str, Any] = {
        "model": model.to_dict(),
        "training": training.to_dict(),
        "seed": seed,
        "init_scale": float(init_scale),
        "output_bias": model.output_bias,
        "probe": "train" if probe_is_train else "given",
        "n_train": int(x.shape[0]),
        "version": version(),
        "source": "trajcore.network",
    }
    if stream_basis is not None:
        metadata["stream_basis"] = stream_basis.name
    return record.run(metadata)


class _Optimizer:
    """In-place parameter updates: GD/SGD, heavy ball ``v <- m v + g``, or Adam with bias correction."""

    def __init__(self, training: Training, size: int) -> None:
        self.training = training
        self.first = np.zeros(size)
        self.second = np.zeros(size) if training.optimizer == "adam" else self.first

    def update(self, theta: np.ndarray, grad: np.ndarray, t: int) -> None:
        """Step ``t`` (1-based) from gradient ``grad``; modifies ``theta`` in place."""
        tr = self.training
        if tr.optimizer in ("gd", "sgd"):
            theta -= tr.lr * grad
        elif tr.optimizer == "momentum":
            self.first *= tr.momentum
            self.first += grad
            theta -= tr.lr * self.first
        else:
            b1, b2 = tr.betas
            self.first = b1 * self.first + (1 - b1) * grad
            self.second = b2 * self.second + (1 - b2) * grad * grad
            theta -= tr.lr * (self.first / (1 - b1**t)) / (np.sqrt(self.second / (1 - b2**t)) + tr.eps)


class _Recording:
    """Preallocated buffers of a run, filled at the checkpoints."""

    def __init__(
        self, model: MLP, training: Training, px: np.ndarray, py: np.ndarray | None, basis: Basis | None
    ) -> None:
        self.training, self.px, self.py = training, px, py
        self.steps = checkpoint_steps(training.steps, training.checkpoints, training.spacing)
        T, n, C, p, P = (
            self.steps.size,
            px.shape[0],
            model.output_dim,
            model.feature_dim,
            model.parameter_count,
        )
        self.feature_steps = self.steps if training.record_features else np.unique(self.steps[[0, -1]])
        check_allocation(
            "NetworkRun",
            8.0 * (T * n * C * training.record_outputs + self.feature_steps.size * n * p)
            + 8.0 * T * P * training.record_parameters,
        )
        self.outputs = np.empty((T, n, C)) if training.record_outputs else None
        self.features = np.empty((self.feature_steps.size, n, p))
        self.parameters = np.empty((T, P)) if training.record_parameters else None
        self.train_loss = np.empty(T)
        self.probe_loss = np.empty(T) if py is not None else None
        self.stream = None
        if basis is not None:
            if basis.n != n:
                raise ValueError(f"stream_basis: defined on {basis.n} probe points, the probe set has {n}")
            self.stream = basis.streaming(T)
        self.next = 0  # position of the next checkpoint
        self.next_feature = 0

    def due(self, step: int) -> bool:
        return self.next < self.steps.size and self.steps[self.next] == step

    def add(self, step: int, outputs: np.ndarray, features: np.ndarray, theta: np.ndarray, loss: float) -> None:
        r = self.next
        if self.next_feature < self.feature_steps.size and self.feature_steps[self.next_feature] == step:
            self.features[self.next_feature] = features
            self.next_feature += 1
        if self.outputs is not None:
            self.outputs[r] = outputs
        if self.stream is not None:
            self.stream.push(outputs)
        if self.parameters is not None:
            self.parameters[r] = theta
        self.train_loss[r] = loss
        if self.probe_loss is not None and self.py is not None:
            self.probe_loss[r] = _loss(self.training.loss, outputs, self.py)[0]
        self.next += 1

    def run(self, metadata: dict[str, Any]) -> NetworkRun:
        return NetworkRun(
            steps=self.steps,
            outputs=self.outputs,
            coefficients=None if self.stream is None else self.stream.coefficients,
            feature_steps=self.feature_steps,
            features=self.features,
            parameters=self.parameters,
            train_loss=self.train_loss,
            probe_loss=self.probe_loss,
            probe_inputs=self.px,
            probe_targets=self.py,
            metadata=metadata,
        )
