"""LARS and LAMB, the layer-wise adaptive optimizers of the paper's experiments, as ``torch.optim.Optimizer``\\ s.

Both scale each parameter tensor's ("layer's") update by a trust ratio ``||w|| / ||u||`` of the
tensor's norm to its update's norm, so every layer moves by a similar relative amount.

**LARS** (You, Gitman, Ginsburg 2017), per tensor ``w`` with gradient ``g``::

    u   = g + weight_decay * w
    r   = trust_coefficient * ||w|| / ||u||          (1 when ||w|| = 0 or ||u|| = 0)
    v  <- momentum * v + r * u                      (v = r * u at the first step)
    w  <- w - lr * v

**LAMB** (You et al. 2019), per tensor, with step t = 1, 2, ...::

    m  <- beta1 m + (1 - beta1) g,     s <- beta2 s + (1 - beta2) g^2
    u   = (m / (1 - beta1^t)) / (sqrt(s / (1 - beta2^t)) + eps) + weight_decay * w
    r   = ||w|| / ||u||                               (1 when ||w|| = 0 or ||u|| = 0)
    w  <- w - lr * r * u

By default every tensor adapts, as both papers state the algorithms (and as the LARS of the
authors' MNIST script does). ``exclude_from_adaptation`` (a predicate on the tensor, e.g.
``lambda p: p.ndim < 2``) names tensors that skip the weight decay and the trust ratio (r = 1):
the treatment of biases and normalisation gains in many large-batch recipes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from ._require import INSTALL_HINT

try:
    import torch
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError(f"trajcore.torch.optim needs PyTorch: {INSTALL_HINT}") from exc

__all__ = ["LAMB", "LARS"]


def _never(p: Any) -> bool:
    return False


def _check(name: str, value: float, low: float, high: float = math.inf, closed_high: bool = False) -> float:
    value = float(value)
    ok = low <= value <= high if closed_high else low <= value < high
    if not (math.isfinite(value) or high == math.inf and value == math.inf) or not ok:
        bound = f"[{low}, {high}]" if closed_high else f"[{low}, {high})"
        raise ValueError(f"{name}: expected a number in {bound}, got {value!r}")
    return value


def _trust_ratio(w_norm: Any, u_norm: Any) -> Any:
    return torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, torch.ones_like(w_norm))


class _Layerwise(torch.optim.Optimizer):
    """The step both optimizers share: the closure, then ``p <- p - lr * direction(p)`` per tensor."""

    exclude_from_adaptation: Callable[[Any], bool]

    def _direction(self, p: Any, group: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _adapt(self, p: Any, update: Any, group: dict[str, Any], coefficient: float) -> Any:
        """Weight decay and the trust ratio on ``update``, unless ``p`` is excluded from adaptation."""
        if not self.exclude_from_adaptation(p):
            if group["weight_decay"]:
                update.add_(p, alpha=group["weight_decay"])
            update.mul_(coefficient * _trust_ratio(p.norm(), update.norm()))
        return update

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(self._direction(p, group), alpha=-group["lr"])
        return loss


class LARS(_Layerwise):
    """Layer-wise adaptive rate scaling with heavy-ball momentum (formula in the module docstring).

    lr : float > 0; momentum : [0, 1); weight_decay : >= 0; trust_coefficient : > 0 (0.001 in the
    LARS paper; the trust ratio is multiplied by it).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 0.001,
        exclude_from_adaptation: Callable[[Any], bool] = _never,
    ) -> None:
        if not float(lr) > 0 or not math.isfinite(float(lr)):
            raise ValueError(f"lr: expected a positive number, got {lr!r}")
        _check("momentum", momentum, 0.0, 1.0)
        _check("weight_decay", weight_decay, 0.0)
        if not float(trust_coefficient) > 0 or not math.isfinite(float(trust_coefficient)):
            raise ValueError(f"trust_coefficient: expected a positive number, got {trust_coefficient!r}")
        defaults = {
            "lr": float(lr),
            "momentum": float(momentum),
            "weight_decay": float(weight_decay),
            "trust_coefficient": float(trust_coefficient),
        }
        super().__init__(params, defaults)
        self.exclude_from_adaptation = exclude_from_adaptation

    def _direction(self, p: Any, group: dict[str, Any]) -> Any:
        update = self._adapt(p, p.grad.clone(), group, group["trust_coefficient"])
        if not group["momentum"]:
            return update
        state = self.state[p]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = update
        else:
            state["momentum_buffer"].mul_(group["momentum"]).add_(update)
        return state["momentum_buffer"]


class LAMB(_Layerwise):
    """Layer-wise adaptive moments (Adam moments, decoupled weight decay, trust ratio; module docstring).

    lr : float > 0; betas : two numbers in [0, 1); eps : > 0; weight_decay : >= 0.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        exclude_from_adaptation: Callable[[Any], bool] = _never,
    ) -> None:
        if not float(lr) > 0 or not math.isfinite(float(lr)):
            raise ValueError(f"lr: expected a positive number, got {lr!r}")
        if len(tuple(betas)) != 2:
            raise ValueError(f"betas: expected two numbers in [0, 1), got {betas!r}")
        for b in betas:
            _check("betas", b, 0.0, 1.0)
        if not float(eps) > 0 or not math.isfinite(float(eps)):
            raise ValueError(f"eps: expected a positive number, got {eps!r}")
        _check("weight_decay", weight_decay, 0.0)
        defaults = {
            "lr": float(lr),
            "betas": tuple(map(float, betas)),
            "eps": float(eps),
            "weight_decay": float(weight_decay),
        }
        super().__init__(params, defaults)
        self.exclude_from_adaptation = exclude_from_adaptation

    def _direction(self, p: Any, group: dict[str, Any]) -> Any:
        b1, b2 = group["betas"]
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["first"] = torch.zeros_like(p)
            state["second"] = torch.zeros_like(p)
        state["step"] += 1
        t = state["step"]
        first, second = state["first"], state["second"]
        first.mul_(b1).add_(p.grad, alpha=1 - b1)
        second.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
        update = (first / (1 - b1**t)) / ((second / (1 - b2**t)).sqrt() + group["eps"])
        return self._adapt(p, update, group, 1.0)
