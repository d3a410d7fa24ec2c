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
