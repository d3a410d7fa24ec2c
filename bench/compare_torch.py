"""The PyTorch path (issue: deep networks for real), measured in one process.

* Coefficient gradients on the 2-block MNIST CNN (the paper's widths 256-64 scaled to 32-8, 28 x 28
  inputs, 500 probe points, 10 basis functions), ``method="batched"`` against the per-function loop
  (``method="loop"``: a forward and a backward pass per function); same numbers checked to 1e-10.
  The issue's target is >= 5x; the row's note says why no exact method reaches it: the k backward
  passes (about two forward passes each) are the FLOP floor of both, so batching can save only the
  k - 1 forward passes, ~3k / (1 + 2k) = 1.43x at k = 10 by FLOPs (more in practice: larger products).
* Recorder overhead per checkpoint against the bare probe forward pass (eval mode, no grad):
  target <= 10% added time (ratio >= 1 / 1.1).
* Memory of a recorded run of 150 checkpoints against outputs + one feature matrix: target <= 1.1x
  (reported as a ratio of bytes, not of time).
* The built-in NumPy MLP trainer against plain PyTorch CPU float64 at minibatch 128 (digits, MLP
  64-64, same steps): target at least as fast (ratio >= 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from harness import Report, median_time

SECTION = "torch"


def _gradients(report: Report, torch: Any) -> None:
    from trajcore.torch import models

    n = 200 if report.quick else 500
    torch.manual_seed(0)
    cnn = models.mnist_cnn((32, 8))
    _gradient_row(report, torch, cnn.double(), torch.randn(n, 1, 28, 28, dtype=torch.float64), "CNN 32-8", 5.0)
    _gradient_row(report, torch, cnn.float(), torch.randn(n, 1, 28, 28), "CNN 32-8 float32", None)
    mlp = models.mlp(64, 10, hidden=(64, 64)).double()
    _gradient_row(report, torch, mlp, torch.randn(4 * n, 1, 8, 8, dtype=torch.float64), "MLP 64-64", None)


def _gradient_row(report: Report, torch: Any, net: Any, probe: Any, label: str, target: float | None) -> None:
    from trajcore import bases
    from trajcore import torch as tc_torch

    n = probe.shape[0]
    dtype = probe.dtype
    recorder = tc_torch.Recorder(net, [probe], "head", feature_side="input", record_parameters=True)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05)
    targets = torch.randn(n, 10, dtype=dtype)
    for step in range(3):
        recorder.checkpoint(step)
        optimizer.zero_grad()
        (0.5 * ((net(probe) - targets) ** 2).sum(dim=1).mean()).backward()
        optimizer.step()
    run = recorder.run()
    basis = bases.run_output_basis(run)  # 10 functions
    checkpoints = [0, 1]
    batched = tc_torch.coefficient_gradients(net, run, basis, [probe], checkpoints, method="batched")[2]
    loop = tc_torch.coefficient_gradients(net, run, basis, [probe], checkpoints, method="loop")[2]
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    assert np.allclose(batched, loop, rtol=tol, atol=tol * np.abs(loop).max())
    repeat = 1 if report.quick else 3
    t_batched = median_time(
        lambda: tc_torch.coefficient_gradients(net, run, basis, [probe], checkpoints, method="batched"),
        repeat=repeat,
    )
    t_loop = median_time(
        lambda: tc_torch.coefficient_gradients(net, run, basis, [probe], checkpoints, method="loop"), repeat=repeat
    )
    report.add(
        SECTION,
        f"coef. gradients, {label}, n={n}, k={basis.k}, 2 ckpts",
        "per-function loop",
        t_batched,
        t_loop,
        target,
        "loop = k forwards + k backwards; batched = 1 forward + k backwards: at most ~3k/(1+2k) = 1.43x by FLOPs",
    )


def _recorder_overhead(report: Report, torch: Any) -> None:
    from trajcore import torch as tc_torch
    from trajcore.torch import models

    torch.manual_seed(0)
    net = models.mnist_cnn((32, 8))
    probe = torch.randn(500, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    loader = list(probe.split(100))
    recorder = tc_torch.Recorder(net, loader, "head", feature_side="input")
    step = iter(range(10**9))

    def bare() -> None:
        net.eval()
        with torch.no_grad():
            for batch in loader:
                net(batch)
        net.train()

    repeat = 5 if report.quick else 15
    t_bare = median_time(bare, repeat=repeat)
    t_recorded = median_time(lambda: recorder.checkpoint(next(step)), repeat=repeat)
    report.add(SECTION, "recorder checkpoint, CNN 32-8, n=500", "bare probe forward", t_recorded, t_bare, 1 / 1.1)


def _memory(report: Report, torch: Any) -> None:
    from trajcore import torch as tc_torch
    from trajcore.torch import models

    torch.manual_seed(0)
    net = models.mlp(64, 10, hidden=(64, 64))
    probe = torch.randn(1438, 1, 8, 8)
    recorder = tc_torch.Recorder(net, probe, "head", feature_side="input")
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    for step in range(150):
        recorder.checkpoint(step)
        optimizer.zero_grad()
        net(probe).square().mean().backward()
        optimizer.step()
    run = recorder.run()
    floor = run.outputs.nbytes + run.features[-1].nbytes  # outputs + one feature matrix
    # A "time" row whose ratio is floor / held: >= 1 / 1.1 means at most 10% above the floor.
    report.add(
        SECTION,
        "run memory, 150 checkpoints, n=1438, p=64",
        "outputs + one feature matrix",
        float(run.nbytes),
        float(floor),
        1 / 1.1,
        "bytes held by the run",
        unit="B",
    )


def _mlp_trainer(report: Report, torch: Any) -> None:
    from trajcore import data
    from trajcore.network import MLP, Training, train

    digits = data.digits()
    steps = 50 if report.quick else 200
    model = MLP(64, 10, hidden=(64, 64))
    training = Training(
        optimizer="sgd", lr=0.1, steps=steps, batch_size=128, checkpoints=2, record_outputs=False, record_features=False
    )
    x = torch.from_numpy(digits.x_train)
    y = torch.from_numpy(digits.y_train)

    def plain_torch() -> None:
        torch.manual_seed(0)
        net = torch.nn.Sequential(
            torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
            torch.nn.Linear(64, 10, bias=False),
        ).double()  # fmt: skip
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        gen = np.random.default_rng(1)
        order, cursor = gen.permutation(x.shape[0]), 0
        for _ in range(steps):
            if cursor + 128 > order.size:
                order, cursor = gen.permutation(x.shape[0]), 0
            batch = torch.from_numpy(order[cursor : cursor + 128])
            cursor += 128
            opt.zero_grad()
            (0.5 * ((net(x[batch]) - y[batch]) ** 2).sum(dim=1).mean()).backward()
            opt.step()

    repeat = 3 if report.quick else 7
    t_ours = median_time(lambda: train(model, digits.x_train, digits.y_train, training, seed=0), repeat=repeat)
    t_torch = median_time(plain_torch, repeat=repeat)
    report.add(SECTION, f"MLP 64-64 digits, SGD batch 128, {steps} steps", "PyTorch CPU float64", t_ours, t_torch, 1.0)


def compare(report: Report) -> None:
    try:
        import torch
    except ImportError:
        for case in ("coefficient gradients", "recorder", "memory", "MLP trainer"):
            report.skip(SECTION, case, "PyTorch", "torch missing")
        return
    torch.set_num_threads(1)  # the comparisons are per core; the machine is shared
    _gradients(report, torch)
    _recorder_overhead(report, torch)
    _memory(report, torch)
    _mlp_trainer(report, torch)


if __name__ == "__main__":
    rows = Report()
    compare(rows)
    rows.print_table()
