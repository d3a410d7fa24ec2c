"""The matrix-sensing experiment: its config refuses bad settings, its small configs meet their own
checks, its numbers agree with an independent NumPy computation, and ``trajcore run`` drives it."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from subprocesses import run_cli

import trajcore as tc
from trajcore.experiments import get
from trajcore.experiments.sensing import SensingIncremental, degrees_of_freedom
from trajcore.experiments.settings import ConfigError
from trajcore.plot import style

#: a config small enough for a test (a second or two), on both sides of the transition
SMALL = {"d": 10, "rank": 2, "width": 4, "sigma": (3.0, 1.5), "ms": (12, 80, 480), "seeds": (0, 1), "steps": 600}


def test_default_and_demo_configs_are_valid():
    experiment = get("sensing_incremental")
    assert experiment.make_config({}) == experiment.default_config()
    assert experiment.make_config({}, demo=True) == experiment.demo_config()
    assert degrees_of_freedom(20, 3) == 57  # d r - r (r - 1) / 2


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (["rank=30"], "setting rank=30: expected rank <= d = 20"),
        (["width=2"], "setting width=2: expected width >= rank = 3"),
        (["sigma=3,2"], "setting sigma=3.0,2.0: expected 3 values (one per target eigenvalue: rank = 3), got 2"),
        (["sigma=3,-2,1"], "expected 1e-100 <= each of sigma <= 1e+100, got -2.0"),
        (["ms=20,0,960"], "setting ms=20,0,960: expected each of ms >= 1, got 0"),
        (["ms=20,960,960"], "setting ms=20,960,960: expected different measurement counts"),
        (["ms=240,960"], "setting ms=240,960: expected some m < d r - r (r - 1) / 2 = 57"),
        (["ms=20,960"], "setting timing_ratio=24.0: expected some m in ms >= timing_ratio d r = 1440"),
        (["ms=20,200", "timing_ratio=1"], "setting recovery_ratio=4.0: expected some m in ms >= recovery_ratio d r"),
        (["alpha=2"], "setting alpha=2.0: expected 1e-100 <= alpha < 1"),
        (["alpha=0.5"], "setting alpha=0.5: expected a small init, alpha^2 * width < min(sigma) = 1"),
        (["lr=0"], "setting lr=0.0: expected lr > 0"),
        (["steps=0"], "setting steps=0: expected steps >= 1"),
        (["q=1"], "setting q=1.0: expected 0 < q < 1"),
        (["tolerance=0"], "setting tolerance=0.0: expected tolerance > 0"),
        (["seeds=0,-1"], "setting seeds=0,-1: expected each of seeds >= 0, got -1"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(settings, message):
    experiment = get("sensing_incremental")
    with pytest.raises(ConfigError) as error:
        experiment.make_config(experiment.parse_settings(settings))
    assert message in str(error.value)
    with pytest.raises(ConfigError):  # the Python API refuses the same config
        SensingIncremental(**experiment.parse_settings(settings))


def test_small_config_meets_its_checks_and_agrees_with_numpy(tmp_path):
    experiment = get("sensing_incremental")
    result = experiment.run(experiment.make_config(SMALL), tmp_path)
    assert result.checks and all(result.checks.values()), result.check_details
    for figure in result.figures:
        assert (tmp_path / figure).stat().st_size > 1000
    json.dumps(result.metrics)  # JSON-ready
    m = result.metrics
    assert m["degrees_of_freedom"] == 19 and m["ms"] == [12, 80, 480]
    error = np.array(m["relative_error"])  # (seeds, ms)
    assert np.all(error[:, 0] > 0.2) and np.all(error[:, 2] < 1e-2)
    # the phase transition: below the degrees of freedom GD fits y and still misses M*
    fit = np.array(m["relative_fit_residual"])
    assert np.all(fit[:, 0] < 0.1 * error[:, 0])
    # the recorded error is that of an independent NumPy GD on the same measurements and init
    problem = tc.MatrixSensing.planted(d=10, rank=2, m=80, sigma=[3.0, 1.5], seed=1)
    U = _numpy_gd(problem, tc.small_init((10, 4), 1e-5, seed=1), 0.05, 600)
    target = (problem.V * problem.sigma) @ problem.V.T
    expected = np.linalg.norm(U @ U.T - target) / np.linalg.norm(target)
    assert error[1, 1] == pytest.approx(expected, rel=1e-6, abs=1e-12)


def _numpy_gd(problem: tc.MatrixSensing, U0: np.ndarray, lr: float, steps: int) -> np.ndarray:
    """Plain NumPy gradient descent on 1/(4m) sum_i (<A_i, U U^T> - y_i)^2, independent of the core."""
    A, y = problem.measurements, problem.observations
    U = U0.copy()
    for _ in range(steps):
        r = np.einsum("mij,ij->m", A, U @ U.T) - y
        U = U - lr / len(y) * np.einsum("m,mij->ij", r, A) @ U
    return U


def test_demo_config_meets_its_checks_and_its_figures_read(tmp_path, monkeypatch):
    drawn = {}
    finish = style.finish

    def keep(fig, path, **kwargs):
        drawn[Path(path).name] = fig
        return finish(fig, path, **kwargs)

    monkeypatch.setattr(style, "finish", keep)
    experiment = get("sensing_incremental")
    assert experiment.flagship
    result = experiment.run(experiment.demo_config(), tmp_path)
    assert result.checks and all(result.checks.values()), result.check_details
    assert set(result.check_details) == set(result.checks)
    ratio = np.array(result.metrics["learning_time_ratio_mean"])  # (ms, r)
    assert np.all(np.abs(ratio[-1] - 1) < 0.1)  # the largest m learns at the factorization's times
    assert set(drawn) == set(result.figures) == set(result.captions)
    for name, fig in drawn.items():
        assert tuple(fig.get_size_inches()) in set(style.SIZES.values()), name
        assert style.text_overlaps(fig) == [], name
        for ax in fig.axes:
            assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel(), name


def test_a_step_size_that_diverges_runs_and_fails_a_check_without_warnings():
    experiment = get("sensing_incremental")
    config = experiment.make_config({**SMALL, "lr": 5.0, "steps": 50})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NumPy's overflow warnings would raise here
        result = experiment.run(config)
    assert result.checks["no run diverged: runs that diverged"] is False
    assert result.metrics["diverged"] > 0


def test_trajcore_run_with_settings(tmp_path):
    out = tmp_path / "run"
    settings = ["d=10", "rank=2", "width=4", "sigma=3,1.5", "ms=12,80,480", "seed=3", "steps=600"]
    proc = run_cli(
        "run", "sensing_incremental", *sum((["--set", s] for s in settings), []), "--strict", "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    record = json.loads((out / "metrics.json").read_text())["experiments"]["sensing_incremental"]
    assert record["config"]["ms"] == [12, 80, 480] and record["config"]["seeds"] == [3]
    assert all(record["checks"].values()), record["checks"]
    assert (out / "sensing_phase_transition.png").is_file()
    refused = run_cli("run", "sensing_incremental", "--set", "width=1", "--out", str(tmp_path / "bad"))
    assert refused.returncode != 0 and "setting width=1: expected width >= rank = 3" in refused.stderr
