"""One record schedule for both drivers: ``Record(count=, spacing=)`` for ``run`` and the MLP's
``Training(checkpoints=, spacing=)`` record at the steps of :func:`trajcore.dynamics.spaced_steps`."""

from __future__ import annotations

import numpy as np
import pytest

import trajcore as tc
from trajcore.dynamics import spaced_steps
from trajcore.network import checkpoint_steps


def _smf_run(record: tc.Record, steps: int = 300) -> tc.Trajectory:
    problem = tc.SymmetricMatrixFactorization.planted(d=8, rank=2, seed=0)
    return tc.run(problem, tc.small_init((8, 4), 1e-3, seed=1), lr=0.05, steps=steps, record=record, n_threads=1)


@pytest.mark.parametrize("spacing", ["linear", "log"])
def test_count_records_are_the_every_step_records_at_the_spaced_steps(spacing: str) -> None:
    every = _smf_run(tc.Record(every=1, coefficients="all"))
    spaced = _smf_run(tc.Record(count=12, spacing=spacing, coefficients="all"))
    expected = spaced_steps(300, 12, spacing)
    assert np.array_equal(spaced.steps, expected) and expected[0] == 0 and expected[-1] == 300
    # the same trajectory, recorded at fewer steps: the same bits there
    assert spaced.loss.tobytes() == every.loss[expected].tobytes()
    assert spaced.coefficients.tobytes() == every.coefficients[expected].tobytes()
    assert spaced.final.tobytes() == every.final.tobytes()
    assert spaced.metadata["record"]["count"] == 12 and spaced.metadata["record"]["spacing"] == spacing


def test_log_spacing_keeps_the_early_steps() -> None:
    """Step 0, then 8 steps from 1 to 10^4 at a constant ratio (rounded): 1, 4, 14, 52, 193, ..."""
    steps = spaced_steps(10_000, 9, "log")
    assert steps.tolist() == [0, 1, 4, 14, 52, 193, 720, 2683, 10_000]
    assert spaced_steps(10_000, 9, "linear").tolist() == [0, 1250, 2500, 3750, 5000, 6250, 7500, 8750, 10_000]


def test_few_steps_give_fewer_records() -> None:
    assert _smf_run(tc.Record(count=50), steps=3).steps.tolist() == [0, 1, 2, 3]


def test_the_mlp_records_on_the_same_schedule() -> None:
    assert checkpoint_steps is spaced_steps
    X = np.random.default_rng(0).standard_normal((40, 3))
    Y = X[:, :1] ** 2
    training = tc.Training(lr=0.05, steps=200, checkpoints=7, spacing="log")
    run = tc.network.train(tc.MLP(3, 1, hidden=(8,)), X, Y, training, seed=0)
    assert np.array_equal(run.steps, tc.Record(count=7, spacing="log").steps_for(200))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"count": 0}, "count"),
        ({"count": 5, "every": 2}, "not both"),
        ({"count": 5, "spacing": "cubic"}, "spacing"),
        ({"every": 3, "spacing": "log"}, "count= records"),
    ],
)
def test_bad_schedules_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tc.Record(**kwargs)
