"""Series statistics (Cython) against direct NumPy transcriptions of PAPERS.md section 6."""

from __future__ import annotations

import numpy as np
import pytest

import trajcore as tc


def ref_direction(b):
    return 1.0 if b[-1] >= b[0] else -1.0


def ref_nonmonotone_mass(b):
    d = np.diff(b)
    peak = np.max(np.abs(b))
    return np.sum(np.maximum(0.0, -d * ref_direction(b))) / peak if peak > 0 else 0.0


def ref_monotonicity_index(b):
    tv = np.sum(np.abs(np.diff(b)))
    return abs(b[-1] - b[0]) / tv if tv > 0 else 1.0


def ref_monotone_fraction(b):
    d = np.diff(b)
    return np.mean(d * ref_direction(b) >= 0) if d.size else 1.0


def ref_crossing(b, q):
    hits = np.flatnonzero(b >= q * b[-1]) if b[-1] >= 0 else np.flatnonzero(b <= q * b[-1])
    return hits[0] if hits.size else np.nan


@pytest.fixture
def series():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 60)[:, None]
    smooth = 1 / (1 + np.exp(-20 * (t - rng.uniform(0.2, 0.8, 5))))  # S-curves
    noisy = np.cumsum(rng.standard_normal((60, 5)), axis=0)
    falling = -smooth
    return np.concatenate([smooth, noisy, falling, np.ones((60, 1))], axis=1)


@pytest.mark.parametrize(
    "fn, ref",
    [
        (tc.analysis.nonmonotone_mass, ref_nonmonotone_mass),
        (tc.analysis.monotonicity_index, ref_monotonicity_index),
        (tc.analysis.monotone_fraction, ref_monotone_fraction),
    ],
)
def test_statistics_match_reference(series, fn, ref):
    got = fn(series)
    want = np.array([ref(series[:, k]) for k in range(series.shape[1])])
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    # a monotone series is perfectly monotone by every measure
    assert fn(series[:, 0]) == pytest.approx(ref(series[:, 0]))
    # time on another axis and a leading batch axis
    np.testing.assert_allclose(fn(series.T, axis=-1), want, rtol=1e-13, atol=1e-15)
    batch = np.stack([series, 2 * series])
    np.testing.assert_allclose(fn(batch)[1], fn(2 * series), rtol=1e-13)


def test_monotone_series_measures(series):
    s = series[:, :5]
    assert np.allclose(tc.analysis.monotonicity_index(s), 1.0)
    assert np.allclose(tc.analysis.nonmonotone_mass(s), 0.0)
    assert np.allclose(tc.analysis.monotone_fraction(s), 1.0)
    zigzag = np.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    assert tc.analysis.monotonicity_index(zigzag) == pytest.approx(1 / 5)
    assert tc.analysis.nonmonotone_mass(zigzag) == pytest.approx(2.0)
    assert tc.analysis.monotone_fraction(zigzag) == pytest.approx(3 / 5)


@pytest.mark.parametrize("q", [0.5, 0.9])
def test_crossing_times(series, q):
    steps = np.arange(60) * 10
    got = tc.analysis.crossing_times(series, q=q, steps=steps)
    want = np.array([ref_crossing(series[:, k], q) for k in range(series.shape[1])])
    np.testing.assert_array_equal(got, np.where(np.isnan(want), np.nan, want * 10))
    np.testing.assert_array_equal(tc.analysis.learning_times(series, q=q), want)


def test_nan_series_give_nan():
    b = np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 3.0]])
    for fn in (tc.analysis.monotonicity_index, tc.analysis.nonmonotone_mass, tc.analysis.monotone_fraction):
        out = fn(b)
        assert np.isnan(out[0]) and np.isfinite(out[1])
    assert np.isnan(tc.analysis.crossing_times(b)[0])


def test_bad_series_input():
    with pytest.raises(ValueError, match="series"):
        tc.analysis.monotonicity_index(3.0)
    with pytest.raises(TypeError, match="series"):
        tc.analysis.monotonicity_index(np.ones(4, dtype=complex))
    with pytest.raises(ValueError, match="q"):
        tc.analysis.crossing_times(np.ones(4), q=np.nan)
