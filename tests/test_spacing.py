"""Spacing-aware monotonicity on constructed series with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from trajcore import analysis

T = 3000
STEPS = np.arange(T + 1)


def _rise(t, tau=400.0):
    return 1.0 - np.exp(-t / tau)


def test_monotone_plus_jitter_windowed_index_is_one_while_the_plain_index_collapses():
    rng = np.random.default_rng(0)
    series = _rise(STEPS) + 0.02 * rng.standard_normal(STEPS.size)
    plain = analysis.monotonicity_index(series)
    assert plain < 0.1  # every step's jitter counts: 3,000 steps of about 0.02
    windowed = analysis.windowed_monotonicity_index(series, STEPS, window=150)
    assert windowed > 0.9
    # Coarser records tell the same story as the window means: the verdict depends on the spacing.
    by_spacing = analysis.monotonicity_at_spacings(series, STEPS, [1, 30, 300])
    assert by_spacing[1] == pytest.approx(plain)
    assert by_spacing[1] < by_spacing[30] < by_spacing[300]


def test_a_true_overshoot_is_not_smoothed_away():
    rng = np.random.default_rng(1)
    h = 0.5  # rises to 1.5, falls back to 1: index |1 - 0| / (1.5 + 0.5) = 0.5
    clean = np.where(STEPS < 1000, 1.5 * STEPS / 1000, 1.5 - h * np.minimum(STEPS - 1000, 1000) / 1000)
    assert analysis.monotonicity_index(clean) == pytest.approx(0.5)
    noisy = clean + 0.02 * rng.standard_normal(STEPS.size)
    windowed = analysis.windowed_monotonicity_index(noisy, STEPS, window=100)
    assert windowed == pytest.approx(0.5, abs=0.03)


def test_plateau_with_noise():
    rng = np.random.default_rng(2)
    # A rise, a long noisy plateau, a second rise (incremental learning): monotone at window scale.
    staircase = 0.5 * _rise(STEPS, 100) + 0.5 * _rise(np.clip(STEPS - 2000, 0, None), 100)
    noisy = staircase + 0.01 * rng.standard_normal(STEPS.size)
    assert analysis.windowed_monotonicity_index(noisy, STEPS, window=100) > 0.9
    # Noise on a flat line learns nothing: the index stays near 0 at any window.
    flat = 1.0 + 0.01 * rng.standard_normal(STEPS.size)
    assert analysis.windowed_monotonicity_index(flat, STEPS, window=100) < 0.2


def test_window_means_and_subsample_are_exact_on_small_series():
    steps = np.array([0, 1, 2, 5, 6, 9])
    values = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0], [8.0, 9.0], [10.0, 11.0]])
    centres, means = analysis.window_means(values, steps, window=3)
    np.testing.assert_allclose(centres, [1.0, 5.0, 6.0, 9.0])  # windows [0, 3), [3, 6), [6, 9), [9, 12)
    np.testing.assert_allclose(means, [[2.0, 3.0], [6.0, 7.0], [8.0, 9.0], [10.0, 11.0]])
    sub_steps, sub = analysis.subsample(values, steps, spacing=4)
    np.testing.assert_array_equal(sub_steps, [0, 5, 9])  # first record at or after 0, 4, 8; and the last
    np.testing.assert_array_equal(sub[:, 0], [0.0, 6.0, 10.0])
    # A window as long as the run: one mean, the index of a constant series (1 by convention).
    assert analysis.windowed_monotonicity_index(values[:, 0], steps, window=100) == 1.0


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: analysis.subsample(np.ones(3), [0, 1, 1], 1), "steps: expected strictly increasing"),
        (lambda: analysis.subsample(np.ones(3), [0, 1], 1), "steps"),
        (lambda: analysis.window_means(np.ones(3), [0, 1, 2], 0), "window"),
        (lambda: analysis.monotonicity_at_spacings(np.ones((3, 2, 2)), [0, 1, 2], [1]), "series: expected shape"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
