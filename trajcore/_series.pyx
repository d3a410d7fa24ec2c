# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Statistics of recorded series (private; the public names live in trajcore.analysis).

Every function takes ``series : (T, M) float64`` -- M series of T values, time along axis 0, any
strides -- and returns one value per series, ``(M,) float64``. A series holding a NaN gives NaN.
The definitions are those of PAPERS.md section 6; the direction of a series is +1 when
``b[T-1] >= b[0]`` and -1 otherwise.
"""

import numpy as np

from libc.math cimport fabs, isnan, NAN


cdef inline double _direction(const double[:, :] s, Py_ssize_t m) noexcept nogil:
    return 1.0 if s[s.shape[0] - 1, m] >= s[0, m] else -1.0


cdef inline bint _has_nan(const double[:, :] s, Py_ssize_t m) noexcept nogil:
    cdef Py_ssize_t t
    for t in range(s.shape[0]):
        if isnan(s[t, m]):
            return True
    return False


def nonmonotone_mass(const double[:, :] series):
    """sum_t max(0, -(b[t+1] - b[t]) * direction) / max_t |b[t]|   (0 for a monotone series)."""
    cdef Py_ssize_t T = series.shape[0], M = series.shape[1], t, m
    cdef double direction, step, mass, peak
    out = np.empty(M, dtype=np.float64)
    cdef double[:] o = out
    with nogil:
        for m in range(M):
            if T == 0 or _has_nan(series, m):
                o[m] = NAN
                continue
            direction = _direction(series, m)
            mass = 0.0
            peak = fabs(series[0, m])
            for t in range(T - 1):
                step = -(series[t + 1, m] - series[t, m]) * direction
                if step > 0.0:
                    mass += step
                if fabs(series[t + 1, m]) > peak:
                    peak = fabs(series[t + 1, m])
            o[m] = mass / peak if peak > 0.0 else 0.0
    return out


def monotonicity_index(const double[:, :] series):
    """|b[T-1] - b[0]| / sum_t |b[t+1] - b[t]|   (1 for a monotone series, also for a constant one)."""
    cdef Py_ssize_t T = series.shape[0], M = series.shape[1], t, m
    cdef double variation
    out = np.empty(M, dtype=np.float64)
    cdef double[:] o = out
    with nogil:
        for m in range(M):
            if T == 0 or _has_nan(series, m):
                o[m] = NAN
                continue
            variation = 0.0
            for t in range(T - 1):
                variation += fabs(series[t + 1, m] - series[t, m])
            o[m] = fabs(series[T - 1, m] - series[0, m]) / variation if variation > 0.0 else 1.0
    return out


def monotone_fraction(const double[:, :] series):
    """Fraction of the T - 1 steps that move in the series' direction (or not at all)."""
    cdef Py_ssize_t T = series.shape[0], M = series.shape[1], t, m, good
    cdef double direction
    out = np.empty(M, dtype=np.float64)
    cdef double[:] o = out
    with nogil:
        for m in range(M):
            if T == 0 or _has_nan(series, m):
                o[m] = NAN
                continue
            if T == 1:
                o[m] = 1.0
                continue
            direction = _direction(series, m)
            good = 0
            for t in range(T - 1):
                if (series[t + 1, m] - series[t, m]) * direction >= 0.0:
                    good += 1
            o[m] = good / <double>(T - 1)
    return out


def crossing_indices(const double[:, :] series, double q):
    """First index t with b[t] >= q * b[T-1] (<= when b[T-1] < 0); -1 when there is none or on NaN."""
    cdef Py_ssize_t T = series.shape[0], M = series.shape[1], t, m
    cdef double level, final
    out = np.full(M, -1, dtype=np.int64)
    cdef long long[:] o = out
    with nogil:
        for m in range(M):
            if T == 0 or _has_nan(series, m):
                continue
            final = series[T - 1, m]
            level = q * final
            for t in range(T):
                if (final >= 0.0 and series[t, m] >= level) or (final < 0.0 and series[t, m] <= level):
                    o[m] = t
                    break
    return out
