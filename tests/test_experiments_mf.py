"""The matrix-factorization experiments meet their own expectations in their demo configs."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import trajcore as tc
from trajcore.experiments import get, registry


@pytest.mark.parametrize("name", ["smf_reference", "amf_reference", "smf_scaling"])
def test_demo_config_meets_checks(name, tmp_path):
    experiment = get(name)
    result = experiment.run(experiment.demo_config(), tmp_path)
    assert result.checks and all(result.checks.values()), result.checks
    for figure in result.figures:
        assert (tmp_path / figure).stat().st_size > 1000
    json.dumps(result.metrics)  # JSON-ready


def test_registry_and_configs():
    experiments = registry()
    assert {"smf_reference", "amf_reference", "smf_scaling"} <= set(experiments)
    for experiment in experiments.values():
        assert dataclasses.is_dataclass(experiment.default_config())
    with pytest.raises(KeyError, match="smf_reference"):
        get("no_such_experiment")
    with pytest.raises(TypeError, match="config"):
        get("smf_reference").run(config=object())


def test_smf_reference_learning_times_follow_theory():
    result = get("smf_reference").run(dataclasses.replace(get("smf_reference").default_config(), seeds=(7,)))
    measured = np.array(result.metrics["learning_times"][0])
    predicted = np.array(result.metrics["predicted_learning_times"])
    np.testing.assert_allclose(measured, predicted, rtol=0.15)


def test_show_config_reports_build(capsys):
    tc.show_config()
    out = capsys.readouterr().out
    assert "OpenMP" in out and "compiler" in out and "BLAS" in out and "threads" in out
    info = tc.config.config_info()
    assert isinstance(info["openmp"], bool) and info["max_threads"] >= 1


def test_smf_scaling_reports_seeds_that_never_reach_eps(tmp_path):
    """At alpha = 1e-4 one of the two demo seeds levels off above eps: it is counted and drawn, not
    averaged away, and every aggregate says how many seeds it covers."""
    experiment = get("smf_scaling")
    result = experiment.run(experiment.demo_config(), tmp_path)
    m = result.metrics
    assert m["alphas"] == [1e-2, 1e-4, 1e-6, 1e-8] and m["seeds"] == 2
    assert m["iterations_to_eps"][0][:2] == [None, None]  # seed 0 misses eps at alpha = 1e-2 and 1e-4
    assert m["seeds_reaching_eps"] == [0, 1, 2, 2]
    # the seed that misses at 1e-4 is outside the bound's regime: its residual floor is above eps
    floors = np.array(m["residual_floor"])
    assert floors[0, 1] > 1e-6 > floors[1, 1]
    assert m["seeds_in_bound_regime"] == [0, 1, 2, 2]
    assert m["iterations_over_bound_seeds"] == [0, 1, 2, 2] and m["iterations_over_bound"][0] is None
    assert m["seeds_in_regime_missing_eps"] == [0, 0, 0, 0]
    assert any("alpha = 0.0001: 1 of 2 seeds never reach eps" in note for note in result.notes)
    measured, threshold, comparison = result.check_details[
        "iterations to eps within a constant factor of the bound: max/min ratio over alphas"
    ]
    assert comparison == "<=" and threshold == 2.0 and 1.0 <= measured <= 2.0


def test_smf_scaling_fails_when_a_seed_in_the_regime_misses_eps():
    """A step budget too short to converge: the theory says these seeds reach eps, so the check fails."""
    experiment = get("smf_scaling")
    config = experiment.make_config({"alphas": (1e-6, 1e-8), "sigmas": (4.0,), "seeds": (0,), "budget": 0.05})
    result = experiment.run(config)
    assert result.metrics["seeds_in_bound_regime"] == [1, 1]
    assert result.metrics["seeds_in_regime_missing_eps"] == [1, 1]
    assert result.metrics["iterations_to_eps"] == [[None, None]]
    name = "every seed in the bound's regime (residual floor < eps) reaches eps: seeds that miss"
    assert result.checks[name] is False and result.check_details[name] == (2.0, 0, "==")
    ratio = "iterations to eps within a constant factor of the bound: max/min ratio over alphas"
    assert result.checks[ratio] is False  # nothing to compare is not a pass


def test_residual_floor_is_where_gd_levels_off():
    """The error GD cannot remove on the run's time scale is ||P U0 (I - u u^T) U0^T P||_F."""
    from trajcore.experiments.matrix_factorization import _residual_floor

    problem = tc.SymmetricMatrixFactorization.planted(12, 1, sigma=[4.0], seed=0)
    for seed, alpha in [(0, 1e-3), (1, 1e-4), (2, 1e-5)]:  # 2 eta lambda t << 1 for these
        U0 = tc.small_init((12, 12), alpha, seed=seed)
        traj = tc.run(problem, U0, lr=0.02, steps=3000)
        final = float(np.sqrt(4 * traj.loss[-1]))
        np.testing.assert_allclose(final, _residual_floor(problem.basis()[:, 0], U0), rtol=0.02)


@pytest.mark.parametrize(
    ("name", "settings", "check"),
    [
        ("smf_reference", {"steps": 30, "seeds": (0, 1)}, "no seed diverged: seeds that diverged"),
        ("amf_reference", {"steps": 30, "seeds": (0, 1)}, "no seed diverged: seeds that diverged"),
        (
            "smf_scaling",
            {"seeds": (0, 1), "alphas": (1e-2, 1e-4), "sigmas": (1.0,)},
            "no run diverged: runs that diverged",
        ),
    ],
)
@pytest.mark.parametrize("lr", [10.0, 1e308])
def test_a_diverging_run_fails_its_check_and_raises_no_numpy_warnings(name, settings, check, lr):
    """Divergence is the experiment's finding, told by a check: not NumPy warnings on stderr."""
    import warnings

    experiment = get(name)
    config = experiment.make_config({**settings, "lr": lr})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        result = experiment.run(config)
    assert result.checks[check] is False
    assert result.metrics["diverged"] > 0
    json.dumps(result.metrics)


def test_smf_reference_orders_by_sigma_and_takes_a_rank_one_target():
    """ "Learned in order of sigma" follows the values, not their positions; rank 1 has no off-diagonal."""
    experiment = get("smf_reference")
    rising = experiment.run(experiment.make_config({"sigma": (1.0, 3.0, 5.0, 10.0), "seeds": (0,)}))
    assert rising.checks["learned in order of sigma"] is True
    one = experiment.run(experiment.make_config({"rank": 1, "sigma": (4.0,), "seeds": (0,)}))
    assert all(one.checks.values()), one.checks
    assert one.metrics["offdiagonal_max"] == 0.0
