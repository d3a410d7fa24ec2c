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
        net, loader, feature_layer=str(len(net) - 1), feature_side="input", record_parameters=True, features="all"
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
    recorder = tc_torch.Recorder(
        net, torch.randn(10, 3, generator=torch.Generator().manual_seed(0)), "1", output_bias=True
    )
    recorder.checkpoint(0)
    recorder.checkpoint(5)
    run = recorder.run(metadata={"note": "float32 model"})
    assert run.outputs.shape == (2, 10, 2) and run.output_bias
    assert run.features.shape == (1, 10, 4) and run.feature_steps.tolist() == [5]  # lean: the last only
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
    with pytest.raises(ValueError, match="output_bias: with feature_side='output'"):
        tc_torch.Recorder(net, probe, "1")
    recorder = tc_torch.Recorder(net, probe, "2", feature_side="input")
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


def _small_net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4, bias=False)).double()


@pytest.mark.parametrize("policy,kept", [("last", [9]), ("first_last", [0, 9]), ("all", list(range(10)))])
def test_feature_policies_and_memory(policy, kept):
    net = _small_net()
    probe = torch.randn(50, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    recorder = tc_torch.Recorder(net, probe, "2", feature_side="input", features=policy)
    for step in range(10):
        recorder.checkpoint(step)
        if step < 9:
            with torch.no_grad():
                net[0].weight.mul_(1.01)
    run = recorder.run()
    assert run.feature_steps.tolist() == kept and run.output_bias is False
    outputs, one_feature = 10 * 50 * 4 * 8, 50 * 8 * 8
    assert run.nbytes >= outputs + len(kept) * one_feature
    assert recorder.nbytes <= 1.1 * (outputs + len(kept) * one_feature) + 1024
    # The kept features are those of their step (the last one is the final model's).
    net.eval()
    with torch.no_grad():
        final = torch.relu(net[0](probe)).numpy()
    np.testing.assert_allclose(run.final_features, final, atol=1e-14)


def test_class_index_targets_give_probe_loss_and_accuracy():
    net = _small_net()
    x = torch.randn(30, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    labels = torch.arange(30) % 4
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, labels), batch_size=7)
    for loss in ("mse", "cross_entropy"):
        recorder = tc_torch.Recorder(net, loader, "2", feature_side="input", loss=loss)
        recorder.checkpoint(0)
        run = recorder.run()
        with torch.no_grad():
            out = net(x)
        one_hot = torch.nn.functional.one_hot(labels, 4).double()
        if loss == "mse":
            expected = float(0.5 * ((out - one_hot) ** 2).sum(dim=1).mean())
        else:
            expected = float(torch.nn.functional.cross_entropy(out, labels))
        np.testing.assert_allclose(run.probe_loss, [expected], rtol=1e-12)
        np.testing.assert_array_equal(run.probe_targets, one_hot.numpy())
        assert run.probe_accuracy[0] == pytest.approx(float((out.argmax(1) == labels).double().mean()))


def test_recorder_bad_input():
    net = _small_net()
    probe = torch.randn(12, 5, dtype=torch.float64)
    image_net = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.Unflatten(1, (2, 3))).double()
    with pytest.raises(ValueError, match=r"model: expected outputs of shape \(batch, C\).*got \(12, 2, 3\)"):
        tc_torch.Recorder(image_net, probe, "0", output_bias=True).checkpoint(0)
    # A loader that reshuffles between checkpoints is caught, not silently recorded.
    dataset = torch.utils.data.TensorDataset(probe)
    shuffled = torch.utils.data.DataLoader(dataset, batch_size=4, shuffle=True)
    recorder = tc_torch.Recorder(net, shuffled, "2", feature_side="input")
    torch.manual_seed(0)
    recorder.checkpoint(0)
    with pytest.raises(ValueError, match="probe: at step 1 the probe loader yielded other inputs or another order"):
        for step in range(1, 6):
            recorder.checkpoint(step)
    resized = [probe[:6], probe[6:]]
    recorder = tc_torch.Recorder(net, resized, "2", feature_side="input")
    recorder.checkpoint(0)
    resized[:] = [probe[:4], probe[4:]]
    with pytest.raises(ValueError, match="changed its batch sizes"):
        recorder.checkpoint(1)
    with pytest.raises(ValueError, match="probe: targets of shape"):
        bad = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(probe, torch.randn(12, 3)), batch_size=6)
        tc_torch.Recorder(net, bad, "2", feature_side="input").checkpoint(0)
    with pytest.raises(ValueError, match="features: expected one of"):
        tc_torch.Recorder(net, probe, "2", feature_side="input", features="some")


def test_diverged_run_warns_once_and_stays_usable_up_to_there():
    net = _small_net()
    probe = torch.randn(12, 5, dtype=torch.float64)
    recorder = tc_torch.Recorder(net, probe, "2", feature_side="input", record_parameters=True)
    assert recorder.checkpoint(0) and recorder.checkpoint(1)
    with torch.no_grad():
        net[2].weight[0, 0] = float("nan")
    with pytest.warns(RuntimeWarning, match="not finite at step 2.*recorded up to step 1"):
        assert not recorder.checkpoint(2)
    assert not recorder.checkpoint(3)  # later checkpoints are ignored, without a second warning
    run = recorder.run()
    assert run.steps.tolist() == [0, 1] and run.metadata["diverged_at"] == 2
    assert np.all(np.isfinite(run.outputs)) and run.parameters.shape[0] == 2
