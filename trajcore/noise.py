"""Noise specifications (PAPERS.md section 5).

A spec is plain data: ``run`` turns it into ``_core.NoiseTerm`` records that the C++ driver reads;
no Python runs inside the loop. Each term draws from its own counter-based stream keyed by
(seed, trajectory, step, term position), so a seed fixes the draws bitwise for any thread count.
Pass one spec or a list of specs as ``run(..., noise=...)``.

Terms acting on the parameter vector work for every problem: ``GradientNoise``, ``Langevin``,
``PerturbedGD``. Model-level terms are accepted only by problems that support them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from . import _core
from ._validation import as_nonnegative_int, as_positive_float

__all__ = [
    "NoiseSpec",
    "GradientNoise",
    "Langevin",
    "PerturbedGD",
    "as_noise_terms",
    "noise_to_dict",
    "AnnealedGradientNoise",
    "SingularValueImputation",
    "WeightNoise",
    "DropConnect",
    "Dropout",
    "InputNoise",
    "LabelNoise",
]


class NoiseSpec:
    """Base class of noise specifications.

    ``acts_on_parameters`` is True for terms the driver applies to the flat parameter vector of any
    problem; model-level terms (False) are accepted only by problems listing their ``kind`` in
    ``Problem.model_noise``.
    """

    kind: str = ""
    acts_on_parameters: bool = True

    def _term(self) -> Any:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}  # type: ignore[call-overload]


@dataclass(frozen=True)
class GradientNoise(NoiseSpec):
    """Isotropic Gaussian gradient noise: ``g <- g + s_t xi``, ``s_t^2 = scale^2 / (1 + t)^anneal``.

    ``anneal = 0`` is constant noise; 0.55 is the common annealing exponent.
    """

    scale: float
    anneal: float = 0.0
    kind = "gradient"

    def __post_init__(self) -> None:
        as_positive_float("scale", self.scale, allow_zero=True)
        as_positive_float("anneal", self.anneal, allow_zero=True)

    def _term(self) -> Any:
        return _core.NoiseTerm(_core.NoiseKind.gradient, scale=self.scale, anneal=self.anneal)


@dataclass(frozen=True)
class Langevin(NoiseSpec):
    """Langevin dynamics: ``x <- x - lr g + sqrt(2 lr / beta) xi`` with inverse temperature ``beta``."""

    beta: float
    kind = "langevin"

    def __post_init__(self) -> None:
        as_positive_float("beta", self.beta)

    def _term(self) -> Any:
        return _core.NoiseTerm(_core.NoiseKind.langevin, scale=self.beta)


@dataclass(frozen=True)
class PerturbedGD(NoiseSpec):
    """Perturbed GD (Jin et al. 2017): add a uniform draw from the ball of ``radius`` when
    ``||grad|| <= threshold`` and at least ``interval`` steps passed since the last perturbation."""

    radius: float
    threshold: float
    interval: int = 1
    kind = "perturbed_gd"

    def __post_init__(self) -> None:
        as_positive_float("radius", self.radius, allow_zero=True)
        as_positive_float("threshold", self.threshold, allow_zero=True)
        as_nonnegative_int("interval", self.interval)

    def _term(self) -> Any:
        return _core.NoiseTerm(
            _core.NoiseKind.perturbed_gd, radius=self.radius, threshold=self.threshold, interval=self.interval
        )


def _as_probability(name: str, value: object) -> float:
    """A drop probability in [0, 1)."""
    p = as_positive_float(name, value, allow_zero=True)
    if p >= 1.0:
        raise ValueError(f"{name}: expected a probability in [0, 1), got {value!r}")
    return p


@dataclass(frozen=True)
class AnnealedGradientNoise(GradientNoise):
    """Annealed isotropic gradient noise ``s_t^2 = scale^2 / (1 + t)^anneal``, default ``anneal = 0.55``."""

    anneal: float = 0.55


@dataclass(frozen=True)
class SingularValueImputation(NoiseSpec):
    """Paper B's "perturbed GD": after each step, every layer of numerical rank r below full gets its
    (r+1)-th singular value set to ``scale * N(0, 1)``; when that draw is smaller in magnitude than the
    r-th singular value, to the r-th plus ``jitter * N(0, 1)`` instead.

    ``threshold`` is an absolute rank tolerance (Paper B's script uses 1e-6); 0 uses the problem's rank
    rule (relative by default).
    """

    scale: float = 1.0
    jitter: float = 1e-3
    threshold: float = 0.0
    kind = "singular_value_imputation"
    acts_on_parameters = False

    def __post_init__(self) -> None:
        as_positive_float("scale", self.scale, allow_zero=True)
        as_positive_float("jitter", self.jitter, allow_zero=True)
        as_positive_float("threshold", self.threshold, allow_zero=True)

    def _term(self) -> Any:
        return _core.NoiseTerm(
            _core.NoiseKind.singular_value_imputation,
            scale=self.scale,
            jitter=self.jitter,
            threshold=self.threshold,
        )


@dataclass(frozen=True)
class WeightNoise(NoiseSpec):
    """Additive Gaussian weight noise in the forward pass: the step's loss and gradient are taken at
    ``W + s_t E`` (E fresh every step, ``s_t^2 = scale^2 / (1 + t)^anneal``); the update applies to W."""

    scale: float
    anneal: float = 0.0
    kind = "weight_noise"
    acts_on_parameters = False

    def __post_init__(self) -> None:
        as_positive_float("scale", self.scale, allow_zero=True)
        as_positive_float("anneal", self.anneal, allow_zero=True)

    def _term(self) -> Any:
        return _core.NoiseTerm(_core.NoiseKind.weight_noise, scale=self.scale, anneal=self.anneal)


@dataclass(frozen=True)
class DropConnect(NoiseSpec):
    """DropConnect: each weight is dropped with probability ``p`` (one mask per step, shared by the
    batch), the kept ones scaled by ``1 / (1 - p)``."""

    p: float
    kind = "dropconnect"
    acts_on_parameters = False

    def __post_init__(self) -> None:
        _as_probability("p", self.p)

    def _term(self) -> Any:
        return _core.NoiseTerm(_core.NoiseKind.dropconnect, probability=self.p)


@dataclass(frozen=True)
class Dropout(NoiseSpec):
    """Unit dropout on the hidden layers: each hidden unit of each sample is dropped with probability
    ``p`` and the kept ones are scaled by ``1 / (1 - p)`` (inverted dropout)."""

    p: float
    kind = "dropout"
    acts_on_parameters = False

    def __post_init__(self) -> None:
        _as_probability("p", self.p)

    def _term(self) -> Any:
        return _core.NoiseTerm(_core.NoiseKind.dropout, probability=self.p)


@dataclass(frozen=True)
class InputNoise(NoiseSpec):
    """Gaussian input noise ``X + s_t E``, fresh at every step."""

    scale: float
    anneal: float = 0.0
    kind = "input_noise"
    acts_on_parameters = False

    def __post_init__(self) -> None:
        as_positive_float("scale", self.scale, allow_zero=True)
        as_positive_float("anneal", self.anneal, allow_zero=True)

    def _term(self) -> Any:
        return _core.NoiseTerm(_core.NoiseKind.input_noise, scale=self.scale, anneal=self.anneal)


@dataclass(frozen=True)
class LabelNoise(NoiseSpec):
    """Gaussian label noise ``Y + s_t E``, fresh at every step."""

    scale: float
    anneal: float = 0.0
    kind = "label_noise"
    acts_on_parameters = False

    def __post_init__(self) -> None:
        as_positive_float("scale", self.scale, allow_zero=True)
        as_positive_float("anneal", self.anneal, allow_zero=True)

    def _term(self) -> Any:
        return _core.NoiseTerm(_core.NoiseKind.label_noise, scale=self.scale, anneal=self.anneal)


NoiseArgument = None | NoiseSpec | Iterable[NoiseSpec]


def _as_list(noise: NoiseArgument) -> list[NoiseSpec]:
    if noise is None:
        return []
    specs = [noise] if isinstance(noise, NoiseSpec) else list(noise)
    for spec in specs:
        if not isinstance(spec, NoiseSpec):
            raise TypeError(f"noise: expected a NoiseSpec or a list of them, got {type(spec).__name__}")
    return specs


def as_noise_terms(noise: NoiseArgument, supported_model_noise: frozenset[str] = frozenset()) -> list[Any]:
    """The ``_core.NoiseTerm`` list the driver reads; model-level kinds must be supported."""
    specs = _as_list(noise)
    for spec in specs:
        if not spec.acts_on_parameters and spec.kind not in supported_model_noise:
            supported = ", ".join(sorted(supported_model_noise)) or "none"
            raise ValueError(
                f"noise: {type(spec).__name__} ('{spec.kind}') acts inside a model and this problem does not "
                f"support it (model-level noise it supports: {supported})"
            )
    return [spec._term() for spec in specs]


def noise_to_dict(noise: NoiseArgument) -> list[dict[str, Any]]:
    """JSON-ready description of a noise argument (trajectory metadata)."""
    return [spec.to_dict() for spec in _as_list(noise)]
