"""Every checkpoint of a torch run is re-evaluated in its exact state: parameters and buffers.

The reference is independent of trajcore's state handling: a fresh copy of the model loaded with
``load_state_dict`` from the ``state_dict`` saved at that checkpoint during training, its
coefficients computed from its own outputs and its gradients by one plain ``backward`` per basis
function.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from trajcore import bases  # noqa: E402
from trajcore import torch as tc_torch  # noqa: E402


def _bn_dropout_net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 16),
        torch.nn.BatchNorm1d(16),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.3),
        torch.nn.Linear(16, 12),
        torch.nn.BatchNorm1d(12),
        torch.nn.ReLU(),
        torch.nn.Linear(12, 3, bias=False),
    ).double()


def _train_with_checkpoints(net, x, y, probe, steps=30, every=5, **recorder_args):
    recorder = tc_torch.Recorder(net, probe, "7", feature_side="input", record_parameters=True, **recorder_args)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    saved = []
    gen = torch.Generator().manual_seed(3)
    for step in range(steps + 1):
        if step % every == 0:
            recorder.checkpoint(step)
            saved.append(copy.deepcopy(net.state_dict()))
        if step == steps:
            break
        net.train()
        batch = torch.randperm(x.shape[0], generator=gen)[:32]
        loss = 0.5 * ((net(x[batch]) - y[batch]) ** 2).sum(dim=1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return recorder.run(), saved


def _reference(state, basis, probe_x):
    """Coefficients (k,) and gradients (k, P) of a fresh model loaded from ``state``."""
    model = _bn_dropout_net(seed=99)  # other initial weights: everything must come from the state
    model.load_state_dict(state)
    model.eval()
    psi = torch.from_numpy(basis.values.reshape(basis.n, -1, basis.k).copy())
    n = basis.n
    out = model(probe_x).detach()
    coefficients = np.array([float((out * psi[:, :, i]).sum() / n) for i in range(basis.k)])
    gradients = []
    for i in range(basis.k):
        model.zero_grad()
        ((model(probe_x) * psi[:, :, i]).sum() / n).backward()
        gradients.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]).numpy().copy())
    return coefficients, np.stack(gradients)


@pytest.mark.parametrize("method", ["batched", "loop"])
def test_batchnorm_dropout_checkpoints_equal_independent_state_dict_copies(method):
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((96, 6)))
    y = torch.from_numpy(rng.standard_normal((96, 3)))
    probe_x = x[:40]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(probe_x), batch_size=16, shuffle=False)
    net = _bn_dropout_net(seed=1)
    run, saved = _train_with_checkpoints(net, x, y, loader)
    assert run.steps.tolist() == [0, 5, 10, 15, 20, 25, 30]
    assert run.buffers is not None and run.buffers.shape[0] == run.steps.size
    # The running statistics really move: a buffer-blind re-evaluation would be wrong.
    assert np.abs(run.buffers[0] - run.buffers[-1]).max() > 0.1
    basis = bases.run_output_basis(run)
    state_before = copy.deepcopy(net.state_dict())
    net.train()
    steps, coefficients, gradients = tc_torch.coefficient_gradients(net, run, basis, loader, method=method)
    np.testing.assert_array_equal(steps, run.steps)
    for t, state in enumerate(saved):
        ref_c, ref_g = _reference(state, basis, probe_x)
        np.testing.assert_allclose(coefficients[t], ref_c, rtol=1e-10, atol=1e-12 * np.abs(ref_c).max())
        scale = np.abs(ref_g).max()
        np.testing.assert_allclose(gradients[t], ref_g, rtol=1e-10, atol=1e-10 * scale)
    # The model's own state and mode are back as they were.
    assert net.training
    for name, tensor in net.state_dict().items():
        torch.testing.assert_close(tensor, state_before[name], rtol=0, atol=0)


def test_gradient_statistics_match_full_gradients():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.standard_normal((64, 6)))
    y = torch.from_numpy(rng.standard_normal((64, 3)))
    net = _bn_dropout_net(seed=2)
    run, _ = _train_with_checkpoints(net, x, y, x[:30], steps=10, every=5)
    basis = bases.run_output_basis(run)
    _, coefficients, gradients = tc_torch.coefficient_gradients(net, run, basis, x[:30])
    stats = tc_torch.gradient_statistics(net, run, basis, x[:30])
    norms = np.linalg.norm(gradients, axis=2)
    np.testing.assert_allclose(stats.norms, norms, rtol=1e-12)
    np.testing.assert_allclose(stats.coefficients, coefficients, rtol=0, atol=0)
    cos = np.einsum("tip,tjp->tij", gradients, gradients) / (norms[:, :, None] * norms[:, None, :])
    np.testing.assert_allclose(stats.cosines, cos, atol=1e-12)
    np.testing.assert_allclose(np.diagonal(stats.cosines, axis1=1, axis2=2), 1.0, atol=1e-12)
    np.testing.assert_allclose(stats.max_cosines(until=5), np.abs(cos[:2]).max(axis=0), atol=1e-12)


def test_state_layout_round_trip_is_exact_for_float32_and_integer_buffers():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))  # float32, int64 counter
    net.train()
    for _ in range(3):
        net(torch.randn(8, 3))
    layout = tc_torch.StateLayout.of(net)
    params, buffers = layout.flatten(net)
    assert params.dtype == np.float64 and buffers.size == 4 + 4 + 1
    before = copy.deepcopy(net.state_dict())
    with torch.no_grad():
        for tensor in list(net.parameters()) + list(net.buffers()):
            tensor.zero_()
    layout.load(net, params, buffers)
    for name, tensor in net.state_dict().items():
        assert tensor.dtype == before[name].dtype
        torch.testing.assert_close(tensor, before[name], rtol=0, atol=0)
    other = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.BatchNorm1d(5))
    with pytest.raises(ValueError, match="does not match the recorded one at '0.bias'"):
        layout.check_model(other)
