"""Plots draw what they are given (Agg backend, no display)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

import trajcore as tc


@pytest.fixture(scope="module")
def trajectory():
    problem = tc.SymmetricMatrixFactorization.planted(d=8, rank=3, sigma=[3.0, 2.0, 1.0], seed=0)
    return tc.run(problem, tc.small_init((8, 4), 1e-3, seed=1), lr=0.05, steps=200, record=tc.Record(every=4))


def test_coefficients_plot_draws_each_diagonal_series(trajectory):
    ax = tc.plot.coefficients(trajectory, targets=[3.0, 2.0, 1.0])
    lines = [line for line in ax.get_lines() if len(line.get_xdata()) == len(trajectory.steps)]
    assert len(lines) == 3
    np.testing.assert_array_equal(lines[0].get_ydata(), trajectory.coefficient(0))
    with pytest.raises(ValueError, match="batch"):
        batch = tc.run(tc.SymmetricMatrixFactorization.planted(d=4, rank=1), np.ones((2, 4, 1)), lr=0.01, steps=2)
        tc.plot.coefficients(batch)


def test_learning_time_and_scaling_plots():
    ax = tc.plot.learning_times([[10.0, 20.0], [11.0, 19.0]], [10.5, 19.5])
    assert len(ax.collections) == 2
    ax = tc.plot.scaling([1.0, 2.0, 3.0], [[1.0, 2.0, 3.0]], [1.1, 2.1, 3.1], xlabel="x")
    assert ax.get_xlabel() == "x"
    with pytest.raises(ValueError, match="measured"):
        tc.plot.learning_times([1.0, 2.0, 3.0], [1.0, 2.0])


def test_text_chart_places_curves(trajectory):
    _, diag = trajectory.diagonal()
    text = tc.plot.text_chart(trajectory.steps, diag, width=40, height=10, labels=["a", "b", "c"])
    lines = text.splitlines()
    assert len(lines) == 10 + 3
    assert all(len(line) == 11 + 40 for line in lines[:10])
    # the largest final value sits on the top row, drawn with its mark
    assert lines[0].rstrip().endswith("1")
    assert "1: a" in lines[-1] and "3: c" in lines[-1]
    with pytest.raises(ValueError, match="series"):
        tc.plot.text_chart([0.0, 1.0], np.ones((3, 2)))


def test_style_palette_and_cycle_never_repeat_a_look():
    from trajcore.plot import style

    colours = style.palette(14)
    assert len(set(colours)) == 14
    looks = style.cycle(40)
    assert len({(look["color"], look["linestyle"]) for look in looks}) == 40
    with pytest.raises(ValueError, match="n"):
        style.palette(15)
    with pytest.raises(ValueError, match="kind"):
        style.new_figure("poster")


def test_style_text_overlaps_finds_colliding_labels(tmp_path):
    from trajcore.plot import style

    fig, ax = style.new_figure("line")
    ax.plot([0, 1], [0, 1], label="a curve")
    style.label_axes(ax, x="iteration", y="value", title="clean")
    style.legend_outside(ax)
    assert style.text_overlaps(fig) == []
    assert tuple(fig.get_size_inches()) == style.SIZES["line"]
    ax.text(0.5, 0.5, "first")
    ax.text(0.5, 0.5, "second")
    assert style.text_overlaps(fig) == [("first", "second")]
    assert style.finish(fig, tmp_path / "f.png").stat().st_size > 0


def test_style_axis_rules():
    from trajcore.plot import style

    steps = np.arange(1001.0)
    fast = 1 - np.exp(-steps / 5)  # settles within the first 5% of the run
    slow = steps / 1000
    assert style.early_fraction(steps, fast) < 0.05
    assert style.early_fraction(steps, slow) > 0.95
    fig, ax = style.new_figure("line")
    assert style.use_log_x_if_early(ax, steps, fast) and ax.get_xscale() == "symlog"
    assert style.use_log_y_if_spanning(ax, [1e-8, 1.0]) and ax.get_yscale() == "log"
    assert not style.use_log_y_if_spanning(ax, [-1.0, 1e3])
    assert style.is_constant([2.0, 2.0, 2.0 + 1e-12]) and not style.is_constant([1.0, 2.0])
    assert style.beta(1, 2) == "$\\beta_{12}$"
