"""The tensor-decomposition experiments (quick demo configurations) meet their own checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trajcore import experiments


@pytest.mark.parametrize("name", ["ostd_reference", "ostd_escape_scaling"])
def test_demo_meets_its_checks_and_writes_figures(name: str, tmp_path: Path) -> None:
    exp = experiments.get(name)
    result = exp.run(exp.demo_config(), tmp_path)
    assert result.checks and all(result.checks.values()), result.checks
    assert result.figures and all((tmp_path / f).stat().st_size > 1000 for f in result.figures)
    json.dumps(result.metrics, allow_nan=False)  # strict JSON


def test_escape_scaling_slope_matches_order() -> None:
    exp = experiments.get("ostd_escape_scaling")
    config = exp.demo_config()
    result = exp.run(config)
    for slope in result.metrics["fitted_slopes"]:
        assert slope == pytest.approx(-(config.order - 2), abs=0.05)
