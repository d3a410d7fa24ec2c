"""LARS and LAMB against hand-written NumPy updates, step for step."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from trajcore.torch import LAMB, LARS  # noqa: E402


def _problem(seed: int = 0):
    """A small float64 network whose gradients we replay into NumPy."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2)).double()
    x = torch.randn(20, 4, dtype=torch.float64)
    y = torch.randn(20, 2, dtype=torch.float64)
    return net, x, y


def _gradients(net, x, y):
    net.zero_grad()
    (0.5 * ((net(x) - y) ** 2).sum(dim=1).mean()).backward()
    return [p.grad.numpy().copy() for p in net.parameters()]


def _ratio(w, u):
    wn, un = np.linalg.norm(w), np.linalg.norm(u)
    return wn / un if wn > 0 and un > 0 else 1.0


def test_lars_matches_the_reference_update():
    net, x, y = _problem()
    lr, momentum, wd, eta = 0.5, 0.9, 1e-2, 0.02
    optimizer = LARS(
        net.parameters(),
        lr=lr,
        momentum=momentum,
        weight_decay=wd,
        trust_coefficient=eta,
        exclude_from_adaptation=lambda p: p.ndim < 2,
    )
    weights = [p.detach().numpy().copy() for p in net.parameters()]
    velocity = [None] * len(weights)
    for _ in range(12):
        grads = _gradients(net, x, y)
        optimizer.step()
        for j, (w, g) in enumerate(zip(weights, grads, strict=True)):
            if w.ndim >= 2:  # matrices adapt; biases (1-d) take the plain momentum step
                u = g + wd * w
                u = eta * _ratio(w, u) * u
            else:
                u = g
            velocity[j] = u if velocity[j] is None else momentum * velocity[j] + u
            weights[j] = w - lr * velocity[j]
        for p, w in zip(net.parameters(), weights, strict=True):
            np.testing.assert_allclose(p.detach().numpy(), w, rtol=1e-13, atol=1e-15)


def test_lamb_matches_the_reference_update():
    net, x, y = _problem(1)
    lr, (b1, b2), eps, wd = 0.05, (0.8, 0.95), 1e-6, 1e-2
    optimizer = LAMB(net.parameters(), lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    weights = [p.detach().numpy().copy() for p in net.parameters()]
    m = [np.zeros_like(w) for w in weights]
    s = [np.zeros_like(w) for w in weights]
    for t in range(1, 13):
        grads = _gradients(net, x, y)
        optimizer.step()
        for j, (w, g) in enumerate(zip(weights, grads, strict=True)):
            m[j] = b1 * m[j] + (1 - b1) * g
            s[j] = b2 * s[j] + (1 - b2) * g * g
            u = (m[j] / (1 - b1**t)) / (np.sqrt(s[j] / (1 - b2**t)) + eps)
            u = u + wd * w  # every tensor adapts by default (the papers' algorithm)
            r = _ratio(w, u)
            weights[j] = w - lr * r * u
        for p, w in zip(net.parameters(), weights, strict=True):
            np.testing.assert_allclose(p.detach().numpy(), w, rtol=1e-13, atol=1e-15)


def test_trust_ratio_is_one_for_zero_weights_and_every_tensor_adapts_by_default():
    w = torch.nn.Parameter(torch.zeros(3, 3, dtype=torch.float64))
    w.grad = torch.ones(3, 3, dtype=torch.float64)
    LARS([w], lr=0.1, momentum=0.0, trust_coefficient=1.0).step()
    np.testing.assert_allclose(w.detach().numpy(), -0.1)  # ||w|| = 0: ratio 1, not 0 or NaN
    b = torch.nn.Parameter(torch.full((4,), 2.0, dtype=torch.float64))
    b.grad = torch.full((4,), 0.5, dtype=torch.float64)
    LARS([b], lr=1.0, momentum=0.0, trust_coefficient=1.0).step()
    np.testing.assert_allclose(b.detach().numpy(), 2.0 - 4.0 * 0.5)  # ratio ||w|| / ||g|| = 4


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda p: LARS(p, lr=-1.0), "lr: expected a positive number"),
        (lambda p: LARS(p, lr=0.1, momentum=1.0), r"momentum: expected a number in \[0.0, 1.0\)"),
        (lambda p: LARS(p, lr=0.1, trust_coefficient=0.0), "trust_coefficient"),
        (lambda p: LAMB(p, betas=(0.9, 1.0)), "betas"),
        (lambda p: LAMB(p, eps=0.0), "eps"),
        (lambda p: LAMB(p, weight_decay=-1.0), "weight_decay"),
    ],
)
def test_bad_hyperparameters_are_named(make, match):
    with pytest.raises(ValueError, match=match):
        make([torch.nn.Parameter(torch.zeros(2))])
