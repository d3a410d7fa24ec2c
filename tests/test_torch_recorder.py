"""The PyTorch recorder gives the same run, coefficients and gradients as the built-in MLP path."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from trajcore import analysis, bases  # noqa: E402
from trajcore import torch as tc_torch  # noqa: E402
from trajcore.network import MLP, NetworkRun, Training, train  # noqa: E402


def _twin(model: MLP, theta: np.ndarray) -> torch.nn.Sequential:
    """A float64 torch network with exactly the built-in MLP's layers and weights."""
    layers: list[torch.nn.Module] = []
    for i, (W, b) in enumerate(model.layers(theta)):
        linear = torch.nn.Linear(W.shape[1], W.shape[0], bias=b is not None).double()
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W.copy()))
            if b is not None:
                linear.bias.copy_(torch.from_numpy(b.copy()))
        layers.append(linear)
        if i < model.n_layers - 1:
            layers.append({"relu": torch.nn.ReLU(), "tanh": torch.nn.Tanh(), "gelu": torch.nn.GELU()}[model.activation])
    return torch.nn.Sequential(*layers)


@pytest.mark.parametrize("activation,output_bias", [("relu", False), ("gelu", True)])
def test_torch_recorder_matches_the_builtin_path(activation, output_bias):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((24, 5)), rng.standard_normal((24, 3))
    model = MLP(5, 3, hidden=(7, 6), activation=activation, output_bias=output_bias)
    steps, lr = 12, 0.1
    builtin = train(model, x, y, Training(lr=lr, steps=steps, checkpoints=4, record_parameters=True), seed=1)
    net = _twin(model, model.initialize(seed=1))
    np.testing.assert_allclose(
        torch.nn.utils.parameters_to_vector(net.parameters()).detach().numpy(), builtin.parameters[0], atol=0
    )
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xt, yt), batch_size=10, shuffle=False)
    recorder = tc_torch.Recorder(
        net, loader, feature_layer=str(len(net) - 1), feature_side="input", record_parameters=True
    )
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    for step in range(steps + 1):
        loss = 0.5 * ((net(xt) - yt) ** 2).sum(dim=1).mean()  # trajcore's "mse": (1/2n) sum ||f - y||^2
        if step in builtin.steps:
            recorder.checkpoint(step, train_loss=float(loss.detach()))
        if step < steps:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    run = recorder.run()
    assert run.output_bias == output_bias
    np.testing.assert_array_equal(run.steps, builtin.steps)
    np.testing.assert_allclose(run.outputs, builtin.outputs, atol=1e-12)
    np.testing.assert_allclose(run.features, builtin.features, atol=1e-12)
    np.testing.assert_allclose(run.train_loss, builtin.train_loss, atol=1e-12)
    np.testing.assert_allclose(run.probe_targets, y)
    basis_torch, basis_builtin = bases.run_output_basis(run), bases.run_output_basis(builtin)
    np.testing.assert_allclose(basis_torch.values, basis_builtin.values, atol=1e-9)
    np.testing.assert_allclose(
        analysis.project_run(run, basis_torch), analysis.project_run(builtin, basis_builtin), atol=1e-10
    )
    # Gradients of the coefficients: autograd on the torch model == the built-in backward pass.
    _, c_torch, g_torch = tc_torch.coefficient_gradients(net, run, basis_builtin, loader, checkpoints=[0, 2])
    _, c_builtin, g_builtin = analysis.coefficient_gradients(builtin, basis_builtin, checkpoints=[0, 2])
    np.testing.assert_allclose(c_torch, c_builtin, atol=1e-12)
    np.testing.assert_allclose(g_torch, g_builtin, atol=1e-12)
    # The model's own parameters are left as they were.
    np.testing.assert_allclose(
        torch.nn.utils.parameters_to_vector(net.parameters()).detach().numpy(),
        builtin.parameters[-1],
        atol=1e-12,
    )


def test_recorded_torch_run_saves_and_loads(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    recorder = tc_torch.Recorder(net, torch.randn(10, 3, generator=torch.Generator().manual_seed(0)), "1")
    recorder.checkpoint(0)
    recorder.checkpoint(5)
    run = recorder.run(metadata={"note": "float32 model"})
    assert run.outputs.shape == (2, 10, 2) and run.features.shape == (2, 10, 4) and run.output_bias
    run.save(tmp_path / "torch.npz")
    loaded = NetworkRun.load(tmp_path / "torch.npz")
    np.testing.assert_array_equal(loaded.outputs, run.outputs)
    assert loaded.metadata["model"]["kind"] == "torch" and loaded.metadata["note"] == "float32 model"


def test_recorder_errors():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    probe = torch.zeros(5, 3)
    with pytest.raises(ValueError, match="no layer 'body.7'.*'0', '1', '2'"):
        tc_torch.Recorder(net, probe, "body.7")
    with pytest.raises(TypeError, match="torch.nn.Module"):
        tc_torch.Recorder(lambda v: v, probe, "0")
    with pytest.raises(ValueError, match="feature_side"):
        tc_torch.Recorder(net, probe, "1", feature_side="middle")
    recorder = tc_torch.Recorder(net, probe, "1")
    with pytest.raises(ValueError, match="no checkpoint"):
        recorder.run()
    recorder.checkpoint(3)
    with pytest.raises(ValueError, match="increase"):
        recorder.checkpoint(3)
    run = recorder.run()
    with pytest.raises(ValueError, match="record_parameters"):
        tc_torch.coefficient_gradients(net, run, bases.output_principal_basis(np.ones((5, 2)) + np.eye(5, 2)), probe)
    with pytest.raises(ValueError, match="probe points"):
        analysis.project_run(run, bases.output_principal_basis(np.eye(6, 2) + 1.0))
