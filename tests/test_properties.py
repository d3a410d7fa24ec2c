"""Property tests: no input reachable from Python crashes the core.

For every binding of ``trajcore._core`` / ``trajcore._series`` and every public entry point, random
inputs (zero sizes, single elements, non-contiguous, Fortran-ordered and large-stride arrays,
readonly buffers, int/float32/complex/object/bool dtypes, NaN/inf, 1e300 and 1e-300) give either a
clear exception (``ValueError``/``TypeError``/``MemoryError``) or a result equal to an independent
NumPy reference written here. ``HYPOTHESIS_PROFILE=ci`` (tests/conftest.py) runs >= 10,000
examples in all.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

import trajcore as tc
from trajcore import _core, _series
from trajcore._validation import as_float_array
from trajcore.problem import Problem

CLEAR_ERRORS = (ValueError, TypeError, MemoryError)
SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, 1e300, -1e300, 1e-300, -1e-300, 5e-324, math.nan, math.inf, -math.inf]
DTYPES = [np.float64, np.float32, np.int64, np.int32, np.bool_, np.complex128, object]
LAYOUTS = ["c", "fortran", "strided", "reversed", "large_stride", "readonly"]


# -- strategies -----------------------------------------------------------------------------------


def _with_layout(a: np.ndarray, layout: str) -> np.ndarray:
    """The same values as ``a`` in another memory layout (a view where the layout needs one)."""
    if layout == "fortran":
        return np.asfortranarray(a)
    if layout == "strided" and a.ndim:
        big = np.zeros(tuple(2 * s for s in a.shape), dtype=a.dtype)
        view = big[tuple(slice(None, None, 2) for _ in a.shape)]
        view[...] = a
        return view
    if layout == "reversed" and a.ndim:
        return np.ascontiguousarray(a[::-1])[::-1]
    if layout == "large_stride" and a.ndim and a.size:
        # Element strides of 1009 * (product of later sides): far apart in one buffer.
        itemsize = a.dtype.itemsize
        steps = [1009 * int(np.prod(a.shape[i + 1 :])) for i in range(a.ndim)]
        buffer = np.zeros(sum((s - 1) * k for s, k in zip(a.shape, steps, strict=True)) + 1, dtype=a.dtype)
        view = np.lib.stride_tricks.as_strided(buffer, a.shape, [k * itemsize for k in steps])
        view[...] = a
        return view
    if layout == "readonly":
        out = np.array(a)
        out.setflags(write=False)
        return out
    return a


def _cast(values: np.ndarray, dtype: Any) -> np.ndarray:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if dtype is np.complex128:
            return values + 0.5j * values
        if np.dtype(dtype).kind in "iu":
            return np.nan_to_num(np.clip(values, -1e9, 1e9)).astype(dtype)
        return values.astype(dtype)


@st.composite
def any_array(draw: Any, *, min_dims: int = 0, max_dims: int = 3, max_side: int = 4, dtypes: Any = None) -> Any:
    shape = draw(array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=0, max_side=max_side))
    values = draw(arrays(np.float64, shape, elements=st.one_of(st.sampled_from(SPECIAL), st.floats(-1e3, 1e3))))
    dtype = draw(st.sampled_from(dtypes or DTYPES))
    return _with_layout(_cast(values, dtype), draw(st.sampled_from(LAYOUTS)))


def real_arrays(shape: tuple[int, ...], lo: float = -2.0, hi: float = 2.0) -> Any:
    return arrays(np.float64, shape, elements=st.floats(lo, hi))


# -- the validation helper -----------------------------------------------------------------------


@given(any_array(), st.booleans())
def test_as_float_array_converts_or_rejects(value: np.ndarray, finite: bool) -> None:
    try:
        out = as_float_array("value", value, finite=finite)
    except CLEAR_ERRORS as err:
        assert str(err).startswith("value:")
        assert value.dtype.kind in "cOU" or (finite and not np.all(np.isfinite(value.astype(np.float64))))
        return
    assert value.dtype.kind in "biuf"
    assert out.dtype == np.float64 and out.flags.c_contiguous and out.shape == value.shape
    np.testing.assert_array_equal(out, value.astype(np.float64))


# -- series statistics (Cython) ------------------------------------------------------------------


def _reference_statistics(s: np.ndarray) -> dict[str, np.ndarray]:
    """NumPy versions of the four series statistics for ``s (T, M)`` (PAPERS.md section 6)."""
    T, M = s.shape
    out = {k: np.full(M, np.nan) for k in ("monotonicity_index", "nonmonotone_mass", "monotone_fraction")}
    crossing = np.full(M, -1, dtype=np.int64)
    with np.errstate(all="ignore"):
        for m in range(M):
            b = s[:, m]
            if T == 0 or np.isnan(b).any():
                continue
            direction = 1.0 if b[-1] >= b[0] else -1.0
            diff = np.diff(b)
            variation = float(np.sum(np.abs(diff)))
            out["monotonicity_index"][m] = abs(b[-1] - b[0]) / variation if variation > 0 else 1.0
            back = -diff * direction
            peak = float(np.max(np.abs(b)))
            mass = float(np.sum(np.where(back > 0, back, 0.0)))
            out["nonmonotone_mass"][m] = mass / peak if peak > 0 else 0.0
            out["monotone_fraction"][m] = 1.0 if T == 1 else float(np.mean(diff * direction >= 0))
            crossing[m] = _reference_crossing(b, 0.5)
    return {**out, "crossing_indices": crossing}


def _reference_crossing(b: np.ndarray, q: float) -> int:
    with np.errstate(invalid="ignore"):  # inf * 0 is a NaN level, which no value reaches
        level = q * b[-1]
    hits = np.flatnonzero(b >= level) if b[-1] >= 0 else np.flatnonzero(b <= level)
    return int(hits[0]) if hits.size else -1


def _assert_close(actual: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=0, equal_nan=True)


@given(any_array(min_dims=2, max_dims=2, max_side=6))
def test_series_kernels_match_numpy(series: np.ndarray) -> None:
    """The raw Cython kernels take float64 (T, M) with any strides and reject everything else."""
    reference = None
    for name in ("monotonicity_index", "nonmonotone_mass", "monotone_fraction", "crossing_indices"):
        fn: Callable[..., np.ndarray] = getattr(_series, name)
        args = (0.5,) if name == "crossing_indices" else ()
        try:
            out = fn(series, *args)
        except CLEAR_ERRORS:
            assert series.dtype != np.float64
            continue
        assert series.dtype == np.float64
        reference = reference or _reference_statistics(np.asarray(series))
        if name == "crossing_indices":
            np.testing.assert_array_equal(out, reference[name])
        else:
            _assert_close(out, reference[name])


@given(any_array(max_dims=3, max_side=5), st.sampled_from([None, 0, 1, -1, -2, 3]))
def test_public_series_statistics(series: np.ndarray, axis: Any) -> None:
    try:
        index = tc.analysis.monotonicity_index(series, axis=axis)
    except CLEAR_ERRORS as err:
        assert "series" in str(err) or "axis" in str(err)
        return
    values = series.astype(np.float64)
    axis = (0 if values.ndim == 1 else -2) if axis is None else axis
    moved = np.moveaxis(values, axis, 0)
    flat = moved.reshape(moved.shape[0], int(np.prod(moved.shape[1:])))
    reference = _reference_statistics(flat)
    _assert_close(np.asarray(index).reshape(-1), reference["monotonicity_index"])
    _assert_close(np.ravel(tc.analysis.nonmonotone_mass(series, axis=axis)), reference["nonmonotone_mass"])
    _assert_close(np.ravel(tc.analysis.monotone_fraction(series, axis=axis)), reference["monotone_fraction"])


@given(
    any_array(min_dims=1, max_dims=2, max_side=5, dtypes=[np.float64, np.int64]),
    st.one_of(st.sampled_from([0.5, 0.9, math.nan, math.inf, "a", 1j]), st.floats(-2, 2)),
    st.one_of(st.none(), any_array(max_dims=2, max_side=6)),
)
def test_crossing_times(series: np.ndarray, q: Any, steps: Any) -> None:
    try:
        times = tc.analysis.crossing_times(series, q=q, steps=steps)
    except CLEAR_ERRORS as err:
        assert str(err).split(":")[0] in ("q", "series", "steps")
        return
    values = series.astype(np.float64)
    flat = values.reshape(values.shape[0], 1) if values.ndim == 1 else values
    T = flat.shape[0]
    grid = np.arange(T + 1, dtype=float) if steps is None else np.asarray(steps, dtype=float)
    expected = []
    for m in range(flat.shape[1]):
        b = flat[:, m]
        hit = -1 if (T == 0 or np.isnan(b).any()) else _reference_crossing(b, float(q))
        expected.append(grid[hit] if hit >= 0 else np.nan)
    np.testing.assert_array_equal(np.ravel(times), np.asarray(expected))


# -- counter-based random numbers: a pure-Python Philox4x32-10 as the reference ---------------------


def _philox4x32(counter: list[int], key: list[int]) -> list[int]:
    c0, c1, c2, c3 = counter
    k0, k1 = key
    mask = 0xFFFFFFFF
    for _ in range(10):
        p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0) & mask, p1 & mask, ((p0 >> 32) ^ c3 ^ k1) & mask, p0 & mask
        k0, k1 = (k0 + 0x9E3779B9) & mask, (k1 + 0xBB67AE85) & mask
    return [c0, c1, c2, c3]


def _reference_normals(seed: int, trajectory: int, step: int, stream: int, count: int) -> np.ndarray:
    key = [seed & 0xFFFFFFFF, seed >> 32]
    step_bits = step & 0xFFFFFFFFFFFFFFFF
    fixed = [
        step_bits & 0xFFFFFFFF,
        ((step_bits >> 32) & 0xFFFF) | ((stream << 16) & 0xFFFFFFFF),
        trajectory & 0xFFFFFFFF,
    ]
    words: list[int] = []
    block = 0
    while len(words) < 4 * (count + 1):
        words += _philox4x32([block, *fixed], key)
        block += 1
    draws = []
    for i in range(0, count, 2):
        w = words[4 * (i // 2) : 4 * (i // 2) + 4]
        u1, u2 = (
            (((w[0] >> 5) << 26 | (w[1] >> 6)) + 0.5) / 2**53,
            (((w[2] >> 5) << 26 | (w[3] >> 6)) + 0.5) / 2**53,
        )
        radius = math.sqrt(-2.0 * math.log(u1))
        draws += [radius * math.cos(2 * math.pi * u2), radius * math.sin(2 * math.pi * u2)]
    return np.asarray(draws[:count])


def test_philox_reference_known_answer() -> None:
    # Random123 known-answer vectors for Philox4x32-10.
    assert _philox4x32([0, 0, 0, 0], [0, 0]) == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    assert _philox4x32([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2) == [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]


_U64 = st.one_of(st.integers(0, 2**64 - 1), st.integers(-(2**65), -1), st.integers(2**64, 2**66))


@given(_U64, _U64, st.integers(-(2**64), 2**64), st.integers(-5, 2**33), st.integers(-3, 9))
def test_normal_draws_match_philox_reference(seed: int, trajectory: int, step: int, stream: int, count: int) -> None:
    try:
        draws = _core.normal_draws(seed, trajectory, step, stream, count)
    except CLEAR_ERRORS:
        assert not (
            0 <= seed < 2**64
            and 0 <= trajectory < 2**64
            and -(2**63) <= step < 2**63
            and 0 <= stream < 2**32
            and count >= 0
        )
        return
    assert draws.shape == (count,) and draws.dtype == np.float64
    np.testing.assert_allclose(draws, _reference_normals(seed, trajectory, step, stream, count), rtol=1e-14, atol=0)


# -- noise terms ---------------------------------------------------------------------------------

_ANY_FLOAT = st.one_of(st.sampled_from(SPECIAL), st.floats(-2, 2), st.floats(allow_nan=True, allow_infinity=True))


@given(
    st.one_of(
        st.sampled_from(list(_core.NoiseKind.__members__.values())),
        st.integers(-3, 12).map(_core.NoiseKind),  # pybind11 enums accept any int
    ),
    _ANY_FLOAT,
    _ANY_FLOAT,
    _ANY_FLOAT,
    _ANY_FLOAT,
    _ANY_FLOAT,
    st.integers(-(2**63), 2**63 - 1),
    _ANY_FLOAT,
)
def test_noise_term_validation(
    kind: Any,
    scale: float,
    anneal: float,
    probability: float,
    threshold: float,
    radius: float,
    interval: int,
    jitter: float,
) -> None:
    def ok(v: float) -> bool:
        return math.isfinite(v) and v >= 0

    valid = (
        kind in _core.NoiseKind.__members__.values()
        and ok(scale)
        and ok(anneal)
        and 0 <= probability < 1
        and ok(threshold)
        and ok(radius)
        and interval >= 0
        and ok(jitter)
        and (kind != _core.NoiseKind.langevin or scale > 0)
    )
    try:
        term = _core.NoiseTerm(kind, scale, anneal, probability, threshold, radius, interval, jitter)
    except ValueError as err:
        assert not valid and "noise" in str(err).lower()
        return
    assert valid
    assert (term.kind, term.scale, term.anneal, term.probability) == (kind, scale, anneal, probability)
    assert (term.threshold, term.radius, term.interval, term.jitter) == (threshold, radius, interval, jitter)


@given(
    st.sampled_from(["gradient", "langevin", "perturbed"]),
    _ANY_FLOAT,
    _ANY_FLOAT,
    st.one_of(st.integers(-3, 5), st.floats(0, 3), st.booleans(), st.text(max_size=2)),
)
def test_noise_specs_validate(kind: str, a: Any, b: Any, c: Any) -> None:
    def make() -> tc.noise.NoiseSpec:
        if kind == "gradient":
            return tc.GradientNoise(scale=a, anneal=b)
        if kind == "langevin":
            return tc.Langevin(beta=a)
        return tc.PerturbedGD(radius=a, threshold=b, interval=c)

    try:
        spec = make()
    except CLEAR_ERRORS:
        return
    # an accepted spec must make a valid core term
    (term,) = tc.noise.as_noise_terms(spec)
    assert isinstance(term, _core.NoiseTerm)


# -- BLAS registration ---------------------------------------------------------------------------


def _capsule(name: str) -> Any:
    from scipy.linalg import cython_blas

    return cython_blas.__pyx_capi__[name]


@given(
    st.sampled_from(["dgemm", "sgemm", "ddot", "dgemv", "daxpy", "int", "none", "str"]),
    st.integers(-(2**63), 2**63 - 1),
)
def test_register_blas_accepts_only_dgemm(which: str, threshold: int) -> None:
    junk = {"int": 3, "none": None, "str": "dgemm"}
    capsule = junk[which] if which in junk else _capsule(which)
    try:
        _core.register_blas_dgemm(capsule, threshold)
    except CLEAR_ERRORS:
        assert which != "dgemm" or threshold <= 0
        return
    finally:
        _core.register_blas_dgemm(_capsule("dgemm"), tc.config.BLAS_THRESHOLD)
    assert which == "dgemm" and threshold > 0


def test_blas_path_matches_kernels() -> None:
    """With BLAS for every product (threshold 1) a run agrees with the built-in kernels."""
    problem = tc.SymmetricMatrixFactorization.planted(d=12, rank=3, seed=2)
    init = tc.small_init((2, 12, 5), 0.1, seed=3)
    own = tc.run(problem, init, lr=0.05, steps=20, n_threads=1)
    try:
        _core.register_blas_dgemm(_capsule("dgemm"), 1)
        blas = tc.run(problem, init, lr=0.05, steps=20, n_threads=1)
    finally:
        _core.register_blas_dgemm(_capsule("dgemm"), tc.config.BLAS_THRESHOLD)
    np.testing.assert_allclose(blas.loss, own.loss, rtol=1e-12)
    np.testing.assert_allclose(blas.final, own.final, rtol=1e-12)


# -- kernels and run_chunk against a NumPy gradient-descent reference -------------------------------


class Case:
    """One problem for the driver: a kernel plus its NumPy loss/gradient/observables."""

    def __init__(
        self,
        kernel: Any,
        loss_grad: Callable[..., Any],
        observe: Callable[..., Any],
        scale: float,
        transposed: bool = False,
    ):
        self.kernel, self.loss_grad, self.observe, self.scale = kernel, loss_grad, observe, scale
        self.n, self.K = int(kernel.state_size), int(kernel.n_observables)
        self.transposed = transposed  # whether the state rows hold the parameters transposed


def _pairs(draw: Any, q_left: int, q_right: int) -> np.ndarray:
    k = draw(st.integers(0, 4)) if q_left and q_right else 0
    return np.array(
        [[draw(st.integers(0, q_left - 1)), draw(st.integers(0, q_right - 1))] for _ in range(k)],
        dtype=np.int64,
    ).reshape(k, 2)


def _orthonormal_columns(Z: np.ndarray) -> np.ndarray:
    """Orthonormal columns spanning Z + (d + 1) I (full column rank: ||Z[:r]||_2 <= r < d + 1)."""
    shifted = Z + (Z.shape[0] + 1.0) * np.eye(*Z.shape)
    return np.linalg.qr(shifted)[0]


@st.composite
def smf_case(draw: Any) -> Case:
    d, w, q = draw(st.integers(1, 5)), draw(st.integers(1, 3)), draw(st.integers(0, 3))
    basis = draw(real_arrays((d, q), -1, 1))
    pairs = _pairs(draw, q, q)
    form = draw(st.sampled_from(["dense", "factored", "diagonal"]))
    transposed = False
    if form == "dense":
        A = draw(real_arrays((d, d)))
        M = 0.5 * (A + A.T)
        kernel = _core.SymmetricMatrixFactorizationKernel(d, w, dense=M, basis=basis, pairs=pairs)
    elif form == "diagonal":  # zeros anywhere, and often a zero tail (rows outside the support)
        values = draw(real_arrays((d,), -2, 2))
        values[draw(st.integers(0, d)) :] = 0.0
        values[values < -1.5] = 0.0
        M = np.diag(values)
        transposed = d <= w and draw(st.booleans())  # then the state may be U^T
        kernel = _core.SymmetricMatrixFactorizationKernel(
            d, w, diagonal=values, basis=basis, pairs=pairs, transposed=transposed
        )
    else:
        r = draw(st.integers(1, d))
        V = _orthonormal_columns(draw(real_arrays((d, r), -1, 1)))
        sigma = draw(real_arrays((r,), -2, 2))
        M = (V * sigma) @ V.T
        kernel = _core.SymmetricMatrixFactorizationKernel(d, w, V=V, sigma=sigma, basis=basis, pairs=pairs)

    def params(x: np.ndarray) -> np.ndarray:
        return x.reshape(w, d).T if transposed else x.reshape(d, w)

    def loss_grad(x: np.ndarray) -> tuple[float, np.ndarray]:
        U = params(x)
        R = U @ U.T - M
        grad = R @ U
        return 0.25 * float(np.sum(R * R)), (grad.T if transposed else grad).ravel()

    def observe(x: np.ndarray) -> np.ndarray:
        P = basis.T @ params(x)
        return np.einsum("kw,kw->k", P[pairs[:, 0]], P[pairs[:, 1]])

    return Case(kernel, loss_grad, observe, 1.0 + float(np.sum(M * M)), transposed)


@st.composite
def amf_case(draw: Any) -> Case:
    m, n, w = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    ql, qr = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    left, right = draw(real_arrays((m, ql), -1, 1)), draw(real_arrays((n, qr), -1, 1))
    pairs = _pairs(draw, ql, qr)
    form = draw(st.sampled_from(["dense", "factored", "diagonal"]))
    if form == "dense":
        M = draw(real_arrays((m, n)))
        kernel = _core.AsymmetricMatrixFactorizationKernel(
            m, n, w, dense=M, left_basis=left, right_basis=right, pairs=pairs
        )
    elif form == "diagonal":  # rectangular diag(values), often with a zero tail
        values = draw(real_arrays((min(m, n),)))
        values[draw(st.integers(0, min(m, n))) :] = 0.0
        M = np.zeros((m, n))
        M[np.arange(values.size), np.arange(values.size)] = values
        kernel = _core.AsymmetricMatrixFactorizationKernel(
            m, n, w, diagonal=values, left_basis=left, right_basis=right, pairs=pairs
        )
    else:
        r = draw(st.integers(1, min(m, n)))
        A, B = (
            _orthonormal_columns(draw(real_arrays((m, r), -1, 1))),
            _orthonormal_columns(draw(real_arrays((n, r), -1, 1))),
        )
        s = draw(real_arrays((r,)))
        M = (A * s) @ B.T
        kernel = _core.AsymmetricMatrixFactorizationKernel(
            m, n, w, left=A, weights=s, right=B, left_basis=left, right_basis=right, pairs=pairs
        )

    def loss_grad(x: np.ndarray) -> tuple[float, np.ndarray]:
        X, Y = x[: m * w].reshape(m, w), x[m * w :].reshape(n, w)
        R = X @ Y.T - M
        return 0.5 * float(np.sum(R * R)), np.concatenate([(R @ Y).ravel(), (R.T @ X).ravel()])

    def observe(x: np.ndarray) -> np.ndarray:
        P, Q = left.T @ x[: m * w].reshape(m, w), right.T @ x[m * w :].reshape(n, w)
        return np.einsum("kw,kw->k", P[pairs[:, 0]], Q[pairs[:, 1]])

    return Case(kernel, loss_grad, observe, 1.0 + float(np.sum(M * M)))


def _kernel_reference(kernel: Any, scale: float) -> Case:
    """A case whose per-point loss, gradient and observables come from the kernel's own single-point
    bindings (loss_and_grad, observe): the driver's arithmetic around them is what is checked."""

    def loss_grad(x: np.ndarray) -> tuple[float, np.ndarray]:
        loss, grad = kernel.loss_and_grad(np.ascontiguousarray(x))
        return float(loss), np.asarray(grad).ravel()

    def observe(x: np.ndarray) -> np.ndarray:
        return np.asarray(kernel.observe(np.ascontiguousarray(x))[1])

    return Case(kernel, loss_grad, observe, scale)


@st.composite
def ostd_case(draw: Any) -> Case:
    d, order, w, q = draw(st.integers(1, 4)), draw(st.integers(2, 4)), draw(st.integers(1, 3)), draw(st.integers(0, 3))
    r = draw(st.integers(1, d))
    Z = _orthonormal_columns(draw(real_arrays((d, r), -1, 1)))
    c = draw(real_arrays((r,), 0.1, 2))
    tensor = _core.SymmetricTensorCore.from_factors(Z, c, order)
    tensor = draw(st.sampled_from([tensor, tensor.as_dense(), tensor.as_packed()]))
    kernel = _core.OrthogonalTensorDecompositionKernel(tensor, w, draw(real_arrays((d, q), -1, 1)), draw(st.booleans()))
    return _kernel_reference(kernel, 1.0 + float(np.sum(c**2)))


@st.composite
def dln_case(draw: Any) -> Case:
    widths = draw(st.lists(st.integers(1, 3), min_size=2, max_size=4))
    n = draw(st.integers(1, 4))
    X, Y = draw(real_arrays((n, widths[0]))), draw(real_arrays((n, widths[-1])))
    groups = draw(st.integers(0, 63))
    optimum = draw(real_arrays((widths[-1], widths[0])))
    # Full batches: the driver's gradient is then the exact one the single-point binding computes.
    kernel = _core.DeepLinearNetworkKernel(widths, X, Y, n, 1e-8, 0.0, groups, optimum)
    return _kernel_reference(kernel, 1.0 + float(np.sum(Y**2)) + float(np.sum(X**2)))


@st.composite
def example_case(draw: Any, family: type[Problem]) -> Case:
    """One of a problem family's examples at a small width, recording its default coefficients: the
    driver's arithmetic against the kernel's own single-point bindings (which the family's test file
    checks against NumPy)."""
    examples = family.examples()
    problem = examples[draw(st.sampled_from(sorted(examples)))]
    kernel = problem.compiled(draw(st.integers(1, 3)), True).kernel
    return _kernel_reference(kernel, 1.0 + 4.0 * problem.zero_loss)


#: the kernels with a strategy of their own above, whose references are written in NumPy here
_STRATEGIES = {
    "SymmetricMatrixFactorizationKernel": smf_case(),
    "AsymmetricMatrixFactorizationKernel": amf_case(),
    "OrthogonalTensorDecompositionKernel": ostd_case(),
    "DeepLinearNetworkKernel": dln_case(),
}
#: every problem kernel of trajcore and the strategy building it: the ones above, and every other
#: family's examples (a new family is covered without an edit here)
KERNEL_CASES = dict(_STRATEGIES)
for _family in Problem.families:
    if _family.__module__.startswith("trajcore."):
        _name = type(next(iter(_family.examples().values())).compiled(1, True).kernel).__name__
        KERNEL_CASES.setdefault(_name, example_case(_family))
any_case = st.one_of(*KERNEL_CASES.values())


def _reference_chunk(case: Case, a: dict[str, Any]) -> dict[str, np.ndarray]:
    """The driver's arithmetic in NumPy: GD/heavy ball, driver-level noise, recording, divergence."""
    out = {k: np.array(a[k], copy=True) for k in ("x", "diverged_at", "loss", "observations")}
    velocity = None if a["velocity"] is None else np.array(a["velocity"], copy=True)
    iterates = None if a["iterates"] is None else np.array(a["iterates"], copy=True)
    rec = list(a["record_steps"])
    for b in range(out["x"].shape[0]):
        if out["diverged_at"][b] >= 0:
            continue
        x = out["x"][b].copy()

        def record(t: int, x: np.ndarray = x, b: int = b) -> None:
            if t in rec:
                r = rec.index(t)
                out["loss"][b, r] = case.loss_grad(x)[0]
                out["observations"][b, r] = case.observe(x)
                if iterates is not None:
                    iterates[b, r] = x

        healthy = True
        for t in range(a["t0"], a["t1"]):
            record(t, x)
            loss, g = case.loss_grad(x)
            if not np.isfinite(loss) or loss > a["loss_limit"][b]:
                out["diverged_at"][b], healthy = t, False
                break
            direction = g
            if velocity is not None:
                velocity[b] = a["momentum"] * velocity[b] + g
                direction = velocity[b]
            lr = a["lr"][t]
            nxt = x - lr * direction
            for i, term in enumerate(a["noise"]):
                trajectory = (a["trajectory_offset"] + b) % 2**64  # the driver's uint64 index
                draws = _core.normal_draws(a["seed"], trajectory, t, i + 1, case.n)
                if term.kind == _core.NoiseKind.gradient:
                    nxt = nxt - lr * term.scale / (1.0 + t) ** (0.5 * term.anneal) * draws
                else:  # Langevin
                    nxt = nxt + math.sqrt(2.0 * lr / term.scale) * draws
            if not np.all(np.isfinite(nxt)):
                out["diverged_at"][b], healthy = t + 1, False
                break
            x[...] = nxt
        if healthy and a["t1"] == a["total_steps"]:
            record(a["t1"], x)
        out["x"][b] = x
    if iterates is not None:
        out["iterates"] = iterates
    return out


@st.composite
def chunk_arguments(draw: Any, case: Case) -> dict[str, Any]:
    """Valid run_chunk arguments with a step size small enough for stable GD."""
    B, n, K = draw(st.integers(0, 3)), case.n, case.K
    total = draw(st.integers(0, 6))
    t0 = draw(st.integers(0, total))
    t1 = draw(st.integers(t0, total))
    x = draw(real_arrays((B, n), -1.5, 1.5))
    rec = np.array(sorted(draw(st.sets(st.integers(-1, total + 1), max_size=total + 3))), dtype=np.int64)
    R = rec.shape[0]
    stable = 0.3 / (case.scale + 3 * (1 + float(np.max(np.abs(x), initial=0)) ** 2) * n)
    lr = np.array([draw(st.floats(1e-4, 1.0)) * stable for _ in range(total)])
    momentum = draw(st.sampled_from([0.0, 0.0, 0.5, 0.9]))
    noise = []
    for _ in range(draw(st.integers(0, 2))):
        if draw(st.booleans()):
            noise.append(
                _core.NoiseTerm(
                    _core.NoiseKind.gradient,
                    scale=draw(st.floats(0, 0.1)),
                    anneal=draw(st.sampled_from([0.0, 0.55, 1.0])),
                )
            )
        else:
            noise.append(_core.NoiseTerm(_core.NoiseKind.langevin, scale=draw(st.floats(1e3, 1e6))))
    return dict(
        x=x,
        velocity=None if momentum == 0 and draw(st.booleans()) else draw(real_arrays((B, n), -0.1, 0.1)),
        diverged_at=np.array([draw(st.sampled_from([-1, -1, -1, 0, 2])) for _ in range(B)], dtype=np.int64),
        last_perturbation=np.full(B, -1, dtype=np.int64),
        loss_limit=np.array([draw(st.sampled_from([1e12, 1e12, 0.0, math.inf, math.nan])) for _ in range(B)]),
        loss=np.full((B, R), np.nan),
        observations=np.full((B, R, K), np.nan),
        iterates=draw(st.sampled_from([None, np.full((B, R, n), np.nan)])),
        lr=lr,
        record_steps=rec,
        t0=t0,
        t1=t1,
        total_steps=total,
        momentum=momentum,
        noise=noise,
        seed=draw(st.integers(0, 2**64 - 1)),
        trajectory_offset=draw(st.integers(0, 2**32)),
        n_threads=draw(st.sampled_from([1, 2, 3])),
    )


def _assert_chunk_matches(case: Case, args: dict[str, Any], expected: dict[str, np.ndarray]) -> None:
    np.testing.assert_array_equal(args["diverged_at"], expected["diverged_at"])
    tol = dict(rtol=1e-9, atol=1e-11 * case.scale, equal_nan=True)
    np.testing.assert_allclose(args["x"], expected["x"], **tol)
    np.testing.assert_allclose(
        args["loss"], expected["loss"], rtol=1e-9, atol=1e-12 * case.scale**2 + 1e-12, equal_nan=True
    )
    np.testing.assert_allclose(args["observations"], expected["observations"], **tol)
    if args["iterates"] is not None:
        np.testing.assert_allclose(args["iterates"], expected["iterates"], **tol)


@given(st.data())
def test_run_chunk_matches_numpy_gradient_descent(data: Any) -> None:
    case = data.draw(any_case)
    args = data.draw(chunk_arguments(case))
    expected = _reference_chunk(case, args)
    case.kernel.run_chunk(**args)
    _assert_chunk_matches(case, args, expected)


_BUFFERS = {  # run_chunk buffer argument -> (dtype, shape from (B, R, K, n, total))
    "x": (np.float64, lambda B, R, K, n, T: (B, n)),
    "velocity": (np.float64, lambda B, R, K, n, T: (B, n)),
    "diverged_at": (np.int64, lambda B, R, K, n, T: (B,)),
    "last_perturbation": (np.int64, lambda B, R, K, n, T: (B,)),
    "loss_limit": (np.float64, lambda B, R, K, n, T: (B,)),
    "loss": (np.float64, lambda B, R, K, n, T: (B, R)),
    "observations": (np.float64, lambda B, R, K, n, T: (B, R, K)),
    "iterates": (np.float64, lambda B, R, K, n, T: (B, R, n)),
    "lr": (np.float64, lambda B, R, K, n, T: (T,)),
    "record_steps": (np.int64, lambda B, R, K, n, T: (R,)),
}


def _corrupt(draw: Any, value: Any) -> Any:
    kind = draw(st.sampled_from(["dtype", "shape", "layout", "object", "none", "list"]))
    base = np.zeros((2, 3)) if value is None else np.asarray(value)
    if kind == "dtype":
        return _with_layout(_cast(base.astype(np.float64), draw(st.sampled_from(DTYPES))), "c")
    if kind == "shape":
        shapes = [base.shape + (1,), base.shape[1:], tuple(s + 1 for s in base.shape), (0,) * base.ndim]
        return np.zeros(draw(st.sampled_from(shapes)), dtype=base.dtype)
    if kind == "layout":
        return _with_layout(base, draw(st.sampled_from(LAYOUTS)))
    if kind == "object":
        return draw(st.sampled_from([1.5, "x", object(), [1.0], {"a": 1}]))
    if kind == "list":
        return base.tolist()
    return None


def _buffer_ok(value: Any, dtype: Any, shape: tuple[int, ...]) -> bool:
    return (
        isinstance(value, np.ndarray)
        and value.dtype == dtype
        and value.flags.c_contiguous
        and value.flags.writeable
        and value.shape == shape
    )


def _arguments_valid(case: Case, a: dict[str, Any]) -> bool:
    """What run_chunk must accept, written independently of the C++ checks."""
    if not _buffer_ok(a["x"], np.float64, a["x"].shape if isinstance(a["x"], np.ndarray) else ()):
        return False
    if a["x"].ndim != 2:
        return False
    B, n, T = a["x"].shape[0], case.n, a["total_steps"]
    rec = a["record_steps"]
    if not (isinstance(rec, np.ndarray) and rec.ndim == 1):
        return False
    R = rec.shape[0]
    for name, (dtype, shape) in _BUFFERS.items():
        value = a[name]
        if value is None and name in ("velocity", "iterates"):
            continue
        if not _buffer_ok(value, dtype, shape(B, R, case.K, n, T)):
            return False
    if not isinstance(a["momentum"], float) or (a["velocity"] is None and a["momentum"] != 0):
        return False
    if not all(isinstance(t, _core.NoiseTerm) for t in a["noise"]) or not isinstance(a["noise"], (list, tuple)):
        return False
    return (
        0 <= a["t0"] <= a["t1"] <= T
        and bool(np.all(np.diff(rec) > 0))
        and 1 <= a["n_threads"] <= 1024
        and 0 <= a["seed"] < 2**64
        and -(2**63) <= a["trajectory_offset"] < 2**63
    )


@given(st.data())
def test_run_chunk_rejects_bad_arguments(data: Any) -> None:
    """One corrupted argument: a clear error that leaves the state untouched, or a correct run."""
    case = data.draw(any_case)
    args = data.draw(chunk_arguments(case))
    name = data.draw(
        st.sampled_from(
            [
                *_BUFFERS,
                "t0",
                "t1",
                "total_steps",
                "momentum",
                "noise",
                "seed",
                "trajectory_offset",
                "n_threads",
            ]
        )
    )
    if name in _BUFFERS:
        args[name] = _corrupt(data.draw, args[name])
    elif name == "noise":
        args[name] = data.draw(st.sampled_from([[1.0], None, (), "gradient"]))
    elif name == "momentum":
        args[name] = data.draw(st.one_of(st.sampled_from(SPECIAL), st.just("0")))
    elif name == "n_threads":
        args[name] = data.draw(st.sampled_from([-(2**40), -1, 0, 1, 2, 1024, 1025, 2**31 - 1, 2**31]))
    else:
        args[name] = data.draw(st.integers(-(2**64), 2**64))
    before = {k: np.array(v, copy=True) for k, v in args.items() if isinstance(v, np.ndarray) and v.dtype != object}
    try:
        valid = _arguments_valid(case, args)
    except (TypeError, ValueError, AttributeError, KeyError):
        valid = False
    if not valid:
        with pytest.raises(CLEAR_ERRORS):
            case.kernel.run_chunk(**args)
        for k, v in before.items():
            np.testing.assert_array_equal(args[k], v)
        return
    expected = _reference_chunk(case, args)
    with np.errstate(all="ignore"):
        case.kernel.run_chunk(**args)
    if math.isfinite(args["momentum"]):  # a NaN/inf momentum is accepted and diverges
        _assert_chunk_matches(case, args, expected)


@given(st.data())
def test_run_chunk_extreme_values_never_corrupt(data: Any) -> None:
    """NaN/inf/1e300/1e-300 iterates: each trajectory either stays finite or is marked diverged."""
    case = data.draw(any_case)
    args = data.draw(chunk_arguments(case))
    B, n = args["x"].shape
    args["x"] = data.draw(arrays(np.float64, (B, n), elements=st.sampled_from(SPECIAL)))
    args["lr"] = data.draw(arrays(np.float64, (args["total_steps"],), elements=st.sampled_from(SPECIAL)))
    start, x0 = args["diverged_at"].copy(), args["x"].copy()
    with np.errstate(all="ignore"):
        case.kernel.run_chunk(**args)
    for b in range(B):
        if args["t0"] == args["t1"]:
            np.testing.assert_array_equal(args["x"][b], x0[b])  # no step taken: nothing to check
        elif start[b] >= 0:
            assert args["diverged_at"][b] == start[b]
        elif args["diverged_at"][b] < 0:
            assert np.all(np.isfinite(args["x"][b]))
        else:
            assert args["t0"] <= args["diverged_at"][b] <= args["t1"]


_PAIR_DTYPES = [np.int64, np.int32, np.float64, np.bool_, object]


@given(
    st.integers(-2, 5),
    st.integers(-2, 4),
    st.one_of(st.none(), any_array(max_dims=3)),
    st.one_of(st.none(), any_array(max_dims=2)),
    st.one_of(st.none(), any_array(max_dims=2)),
    any_array(max_dims=3),
    any_array(max_dims=3, dtypes=_PAIR_DTYPES),
    st.one_of(st.none(), any_array(max_dims=2)),
    st.booleans(),
)
def test_symmetric_kernel_constructor(
    d: int, width: int, dense: Any, V: Any, sigma: Any, basis: Any, pairs: Any, diagonal: Any, transposed: bool
) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kernel = _core.SymmetricMatrixFactorizationKernel(
                d,
                width,
                dense=dense,
                V=V,
                sigma=sigma,
                basis=basis,
                pairs=pairs,
                diagonal=diagonal,
                transposed=transposed,
            )
    except CLEAR_ERRORS:
        return
    assert d >= 1 and width >= 1 and basis.ndim == 2 and basis.shape[0] == d
    assert kernel.state_size == d * width
    assert kernel.state_transposed == transposed
    assert not transposed or (diagonal is not None and d <= width)  # the U^T state needs both
    assert kernel.n_observables == np.asarray(pairs).shape[0]
    given = diagonal if diagonal is not None else dense if dense is not None else sigma
    target = np.asarray(given).astype(np.complex128)
    assert np.all(np.isfinite(target))  # the core rejects NaN/inf targets
    if diagonal is not None:  # a diagonal target wins over the others, and has d values
        assert target.size == d
    elif dense is None:  # and factors without orthonormal columns
        _assert_orthonormal(V, d)


@given(
    st.integers(-1, 4),
    st.integers(-1, 4),
    st.integers(-1, 3),
    st.one_of(st.none(), any_array(max_dims=2)),
    st.one_of(st.none(), any_array(max_dims=2)),
    st.one_of(st.none(), any_array(max_dims=1)),
    st.one_of(st.none(), any_array(max_dims=2)),
    any_array(max_dims=2),
    any_array(max_dims=2),
    any_array(max_dims=2, dtypes=_PAIR_DTYPES),
    st.one_of(st.none(), any_array(max_dims=2)),
)
def test_asymmetric_kernel_constructor(
    m: int,
    n: int,
    width: int,
    dense: Any,
    left: Any,
    weights: Any,
    right: Any,
    left_basis: Any,
    right_basis: Any,
    pairs: Any,
    diagonal: Any,
) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kernel = _core.AsymmetricMatrixFactorizationKernel(
                m,
                n,
                width,
                dense=dense,
                left=left,
                weights=weights,
                right=right,
                left_basis=left_basis,
                right_basis=right_basis,
                pairs=pairs,
                diagonal=diagonal,
            )
    except CLEAR_ERRORS:
        return
    assert m >= 1 and n >= 1 and width >= 1
    assert kernel.state_size == (m + n) * width
    assert kernel.n_observables == np.asarray(pairs).shape[0]
    if diagonal is not None:  # a diagonal target wins over the others: min(m, n) finite values
        values = np.asarray(diagonal).astype(np.complex128)
        assert values.size == min(m, n) and np.all(np.isfinite(values))
    elif dense is None:
        _assert_orthonormal(left, m)
        _assert_orthonormal(right, n)


def _assert_orthonormal(factor: Any, rows: int) -> None:
    """The core reads a factor's values row-major as (rows, rank), whatever the array's shape."""
    F = np.asarray(factor).real.astype(np.float64).reshape(rows, -1)
    np.testing.assert_allclose(F.T @ F, np.eye(F.shape[1]), atol=1e-6)


@given(st.data())
def test_kernel_losses(data: Any) -> None:
    """``losses(x, n_threads)``: the exact loss of each row, or a clear error for a bad buffer."""
    case = data.draw(any_case)
    B = data.draw(st.integers(0, 3))
    x = data.draw(real_arrays((B, case.n), -2, 2))
    if data.draw(st.booleans()):
        x = _corrupt(data.draw, x)
    n_threads = data.draw(st.sampled_from([-1, 0, 1, 2, 1024, 1025, 2**31 - 1]))
    valid = _buffer_ok(x, np.float64, (x.shape[0] if isinstance(x, np.ndarray) and x.ndim else -1, case.n))
    try:
        out = case.kernel.losses(x, n_threads)
    except CLEAR_ERRORS:
        assert not valid or n_threads > 1024
        return
    assert valid and n_threads <= 1024
    assert case.kernel.state_transposed == case.transposed
    expected = [case.loss_grad(row)[0] for row in x]
    np.testing.assert_allclose(out, np.asarray(expected).reshape(-1), rtol=1e-9, atol=1e-12 * case.scale**2)


@given(st.data())
def test_single_point_kernel_bindings(data: Any) -> None:
    """``loss_and_grad(x)`` / ``observe(x)``: any layout or real dtype of the right size gives the same
    result as a C-ordered float64 copy, the gradient matches central differences of the loss, and
    anything else is a clear error."""
    case = data.draw(any_case)
    kernel = case.kernel
    x = data.draw(real_arrays((case.n,), -1, 1))
    if data.draw(st.booleans()):
        x = _corrupt(data.draw, x)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loss, grad = kernel.loss_and_grad(x)
            observed_loss, observables = kernel.observe(x)
    except CLEAR_ERRORS:
        assert not (isinstance(x, np.ndarray) and x.size == case.n and x.dtype.kind in "biuf" and x.ndim == 1)
        return
    flat = np.asarray(x).real.astype(np.float64).ravel()
    loss2, grad2 = kernel.loss_and_grad(np.ascontiguousarray(flat))
    # (None converts to a NaN scalar under forcecast: a NaN loss, not a crash)
    assert np.array_equal([loss, *grad], [loss2, *grad2], equal_nan=True)
    if not np.all(np.isfinite(flat)):
        return
    assert np.asarray(observables).shape == (case.K,)
    np.testing.assert_allclose(observed_loss, loss, rtol=1e-9, atol=1e-12 * case.scale**2)
    h = 1e-6
    for i in range(min(case.n, 4)):
        step = np.zeros(case.n)
        step[i] = h
        fd = (kernel.loss_and_grad(flat + step)[0] - kernel.loss_and_grad(flat - step)[0]) / (2 * h)
        assert fd == pytest.approx(grad[i], rel=1e-4, abs=1e-6 * case.scale**2)


@given(st.data())
def test_run_chunk_refuses_noise_its_kernel_does_not_read(data: Any) -> None:
    """A model-level noise term the kernel does not declare is an error naming the kind, not a term
    silently skipped; the kinds a kernel declares and the parameter-level ones run."""
    case = data.draw(any_case)
    a = data.draw(chunk_arguments(case))
    kind = data.draw(st.sampled_from(sorted(_core.NoiseKind.__members__)))
    scale = 1e12 if kind == "langevin" else 0.0  # (an inverse temperature must be > 0)
    a["noise"] = [*a["noise"], _core.NoiseTerm(getattr(_core.NoiseKind, kind), scale=scale)]
    if kind in PARAMETER_NOISE or kind in type(case.kernel).model_noise:
        case.kernel.run_chunk(**a)
    else:
        with pytest.raises(ValueError, match=f"does not support '{kind}' noise"):
            case.kernel.run_chunk(**a)


#: the noise kinds the driver applies for every kernel
PARAMETER_NOISE = {"gradient", "langevin", "perturbed_gd"}
#: the methods and properties every problem kernel binds (bind_kernel), all fuzzed above
KERNEL_MEMBERS = {"run_chunk", "losses", "state_size", "n_observables", "state_transposed", "model_noise"}
KERNEL_MEMBERS |= {"loss_and_grad", "observe"}


def test_every_kernel_binding_is_fuzzed() -> None:
    """Every problem kernel in _core has a strategy in KERNEL_CASES (and so all the tests above): its
    family's examples, if it has no NumPy strategy of its own."""
    kernels = {name for name in dir(_core) if hasattr(getattr(_core, name), "run_chunk")}
    assert kernels == set(KERNEL_CASES), f"kernels without a property strategy: {kernels - set(KERNEL_CASES)}"
    for name in kernels:
        members = {m for m in dir(getattr(_core, name)) if not m.startswith("_")}
        assert members == KERNEL_MEMBERS, f"{name}: members without a property test: {members ^ KERNEL_MEMBERS}"
    functions = {m for m in dir(_core) if not m.startswith("_") and m not in kernels}
    fuzzed = {"build_info", "register_blas_dgemm", "normal_draws", "NoiseKind", "NoiseTerm", "scipy_dgemm_signature"}
    fuzzed |= {"uniform_draws", "jacobi_svd", "project", "project_per_output", "project_into"}
    fuzzed |= {"packed_size", "packed_multiplicities", "dense_asymmetry", "SymmetricTensorCore", "change_basis"}
    assert functions == fuzzed, f"_core bindings without a property test: {functions - fuzzed}"


# -- the public API ------------------------------------------------------------------------------


@st.composite
def any_public_problem(draw: Any) -> Any:
    """Every problem class, small: the matrix factorizations, tensor decomposition, linear networks."""
    kind = draw(st.sampled_from(["mf", "ostd", "dln"]))
    if kind == "ostd":
        d = draw(st.integers(1, 4))
        return tc.OrthogonalTensorDecomposition.planted(
            d=d, order=draw(st.integers(2, 4)), rank=draw(st.integers(1, d))
        )
    if kind == "dln":
        widths = draw(st.lists(st.integers(1, 3), min_size=2, max_size=4))
        return tc.DeepLinearNetwork.planted(widths, n=draw(st.integers(2, 6)), rank=1, seed=draw(st.integers(0, 3)))
    return draw(public_problem())


@st.composite
def public_problem(draw: Any) -> Any:
    if draw(st.booleans()):
        d, rank = draw(st.integers(1, 5)), draw(st.integers(1, 2))
        assume(rank <= d)
        return tc.SymmetricMatrixFactorization.planted(
            d=d, rank=rank, seed=draw(st.integers(0, 3)), storage=draw(st.sampled_from(["factored", "dense"]))
        )
    m, n = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    M = draw(real_arrays((m, n)))
    assume(np.any(np.abs(M) > 1e-3))
    return tc.AsymmetricMatrixFactorization(M)


def _numpy_gd(problem: Any, U0: np.ndarray, lr: float, steps: int) -> np.ndarray:
    U = np.array(U0, dtype=np.float64)
    for _ in range(steps):
        U = U - lr * problem.grad(U)
    return U


@given(public_problem(), st.data())
def test_run_valid_inputs_match_numpy(problem: Any, data: Any) -> None:
    width = data.draw(st.integers(1, 3))
    shape = problem.parameter_shape(width)
    batch = data.draw(st.sampled_from([(), (1,), (2,)]))
    init = data.draw(real_arrays(batch + shape, -1, 1))
    init = _with_layout(init, data.draw(st.sampled_from(["c", "fortran", "strided", "readonly", "large_stride"])))
    scale = 1.0 + float(np.sum(np.asarray(problem.target) ** 2)) + 3.0 * float(np.sum(init**2))
    lr = data.draw(st.floats(0.01, 0.3)) / scale
    steps = data.draw(st.integers(0, 6))
    every = data.draw(st.integers(1, 4))
    traj = tc.run(
        problem,
        init,
        lr=lr,
        steps=steps,
        record=tc.Record(every=every, coefficients="all"),
        n_threads=data.draw(st.sampled_from([1, 2])),
        coordinates=data.draw(st.sampled_from(problem.coordinates)),  # the same run in each
    )
    expected = _numpy_gd(problem, init, lr, steps)
    np.testing.assert_allclose(traj.final, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(traj.steps, sorted({*range(0, steps + 1, every), steps}))
    np.testing.assert_allclose(traj.loss[..., 0], problem.loss(init), rtol=1e-9, atol=1e-12 * scale**2)
    np.testing.assert_allclose(traj.loss[..., -1], problem.loss(expected), rtol=1e-8, atol=1e-12 * scale**2)
    np.testing.assert_allclose(
        traj.coefficients[..., -1, :], problem.coefficients(expected, "all"), rtol=1e-8, atol=1e-12 * scale
    )


_JUNK = st.one_of(
    st.sampled_from([None, "1", 1j, -1, 0, 2.5, math.nan, math.inf, True, [1], object()]),
    st.integers(-3, 3),
    st.floats(),
)


@given(any_public_problem(), st.data())
def test_run_bad_inputs_raise_clear_errors(problem: Any, data: Any) -> None:
    width = 2
    init = np.full(problem.parameter_shape(width), 0.1)
    kwargs: dict[str, Any] = dict(lr=0.01, steps=3)
    name = data.draw(
        st.sampled_from(
            [
                "init",
                "lr",
                "steps",
                "seed",
                "n_threads",
                "momentum",
                "noise",
                "record",
                "trajectory_offset",
                "divergence_factor",
                "coordinates",
                "problem",
            ]
        )
    )
    if name == "init":
        init = data.draw(any_array(max_dims=4, max_side=5))
    elif name == "lr":
        kwargs["lr"] = data.draw(
            st.one_of(
                _JUNK,
                any_array(max_dims=2),
                st.just(lambda t: t * 0 - 1.0),
                st.just(lambda t: "x"),
                st.just(lambda t: np.ones(len(t) + 1)),
            )
        )
    elif name == "noise":
        kwargs["noise"] = data.draw(st.one_of(_JUNK, st.just([tc.GradientNoise(0.1), "x"])))
    elif name == "record":
        kwargs["record"] = data.draw(
            st.one_of(
                _JUNK,
                st.builds(
                    tc.Record,
                    every=st.integers(1, 3),
                    coefficients=st.one_of(
                        st.sampled_from([True, None, "signal", "diagonal", "all", "nope", 3.0]),
                        any_array(max_dims=2, max_side=3, dtypes=[np.int64, np.float64]),
                    ),
                ),
            )
        )
    else:
        kwargs[name] = data.draw(_JUNK)
    problem_arg = data.draw(_JUNK) if name == "problem" else problem
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traj = tc.run(problem_arg, init, **kwargs)
    except CLEAR_ERRORS as err:
        assert str(err)  # a message, naming what was wrong
        return
    # Accepted: the first record is the NumPy loss of the initial point, the run is finite or diverged.
    assert traj.loss.shape[-1] == traj.steps.shape[0]
    x0 = np.asarray(init, dtype=np.float64)
    np.testing.assert_allclose(traj.loss[..., 0], problem.loss(x0), rtol=1e-9, atol=1e-12)
    healthy = np.asarray(traj.diverged_at) < 0
    assert np.all(np.isfinite(np.asarray(traj.final)[healthy]))


@given(
    st.one_of(any_array(max_dims=3), _JUNK),
    st.one_of(st.none(), any_array(max_dims=2), _JUNK),
    st.one_of(st.none(), any_array(max_dims=2), _JUNK),
)
def test_problem_constructors(target: Any, V: Any, sigma: Any) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            problem = tc.SymmetricMatrixFactorization(target, V=V, sigma=sigma)
    except CLEAR_ERRORS:
        pass
    else:
        M = problem.target
        assert np.all(np.isfinite(M)) and np.allclose(M, M.T)
        np.testing.assert_allclose(problem.zero_loss, 0.25 * np.sum(M**2), rtol=1e-9, atol=1e-300)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            asym = tc.AsymmetricMatrixFactorization(target)
    except CLEAR_ERRORS:
        return
    M = np.asarray(target, dtype=np.float64)
    np.testing.assert_allclose(asym.target, M, rtol=0, atol=1e-12 * max(1.0, float(np.max(np.abs(M)))))


@given(st.one_of(st.lists(st.integers(-3, 4), max_size=4), st.lists(_JUNK, max_size=3)), _JUNK, _JUNK)
def test_small_init(shape: Any, scale: Any, seed: Any) -> None:
    try:
        out = tc.small_init(shape, scale, seed=seed)
    except CLEAR_ERRORS:
        return
    assert out.shape == tuple(shape) and out.dtype == np.float64
    if seed is not None:  # None draws fresh entropy
        expected = float(scale) * np.random.default_rng(seed).standard_normal(tuple(shape))
        np.testing.assert_array_equal(out, expected)


# -- analysis: the three conditions and the learning-time predictions ----------------------------


@given(
    arrays(np.float64, st.tuples(st.integers(2, 8), st.integers(1, 3)), elements=st.floats(1e-6, 1e3)),
    st.floats(-2, 2),
    st.floats(1e-3, 1e3),
)
def test_fit_gradient_dominance_recovers_power_laws(beta: np.ndarray, gamma: float, C: float) -> None:
    norms = C * beta**gamma
    fit = tc.analysis.fit_gradient_dominance(beta, norms)
    for k in range(beta.shape[1]):
        if np.ptp(np.log(beta[:, k])) < 1e-3:  # all points at one abscissa: no slope to fit
            continue
        assert fit.gamma[k] == pytest.approx(gamma, abs=1e-6)
        assert fit.C[k] == pytest.approx(C, rel=1e-5)


@given(any_array(max_dims=3), any_array(max_dims=3))
def test_fit_gradient_dominance_inputs(beta: Any, norms: Any) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = tc.analysis.fit_gradient_dominance(beta, norms)
    except CLEAR_ERRORS as err:
        assert str(err).split(":")[0] in ("coefficients", "gradient_norms")
        return
    K = beta.shape[1]
    assert fit.gamma.shape == fit.C.shape == fit.r2.shape == (K,)
    assert np.all(np.isnan(fit.r2) | (fit.r2 <= 1 + 1e-9))


@given(public_problem(), st.data())
def test_gradient_conditions(problem: Any, data: Any) -> None:
    """Exact facts: ||grad beta_ii|| = 2 sqrt(beta_ii) for SMF (gamma 1/2, C 2); cosines lie in [0, 1]."""
    width = data.draw(st.integers(1, 3))
    T = data.draw(st.integers(0, 4))
    iterates = data.draw(real_arrays((T, *problem.parameter_shape(width)), -1, 1))
    pairs = data.draw(st.one_of(st.just(problem.coefficient_pairs("diagonal")), any_array(max_dims=2)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cos = tc.analysis.gradient_independence(problem, iterates, pairs)
            fit = tc.analysis.gradient_dominance(problem, iterates, pairs)
    except CLEAR_ERRORS as err:
        assert str(err).split(":")[0] in ("pairs", "iterates")
        return
    K = np.asarray(pairs).shape[0]
    assert cos.shape == (K, K) and np.all((cos >= 0) & (cos <= 1 + 1e-12))
    diagonal = isinstance(problem, tc.SymmetricMatrixFactorization) and np.array_equal(
        pairs, problem.coefficient_pairs("diagonal")
    )
    if diagonal:
        np.testing.assert_allclose(fit.gradient_norms, 2 * np.sqrt(fit.coefficients), rtol=1e-9, atol=1e-12)
        # a slope is exact only where every beta is well above rounding (tiny ones carry relative noise)
        fitted = ~np.isnan(fit.gamma) & np.all(fit.coefficients > 1e-8, axis=0)
        np.testing.assert_allclose(fit.gamma[fitted], 0.5, atol=1e-6)
        np.testing.assert_allclose(fit.C[fitted], 2.0, rtol=1e-5)


@given(any_array(max_dims=2, max_side=4), _JUNK, _JUNK, _JUNK)
def test_predicted_learning_times(sigma: Any, alpha: Any, width: Any, lr: Any) -> None:
    try:
        with np.errstate(all="ignore"):
            times = tc.analysis.predicted_learning_times(sigma, alpha, width, lr)
    except CLEAR_ERRORS as err:
        assert str(err).split(":")[0] in ("sigma", "alpha", "width", "lr")
        return
    sig = np.asarray(sigma, dtype=np.float64)
    # beta_ii grows by (1 + lr sigma)^2 per step from alpha^2 width and reaches sigma at T.
    with np.errstate(all="ignore"):
        start = float(alpha) ** 2 * int(width)
        reached = np.exp(np.log(start) + 2 * times * np.log1p(float(lr) * sig))
    ok = np.isfinite(reached) & (start > 0)
    np.testing.assert_allclose(reached[ok], sig[ok], rtol=1e-9)


@given(_JUNK, _JUNK, _JUNK, _JUNK)
def test_iteration_bound(sigma_min: Any, alpha: Any, lr: Any, eps: Any) -> None:
    try:
        with np.errstate(all="ignore"):
            bound = tc.analysis.iteration_bound(sigma_min, alpha, lr, eps)
    except CLEAR_ERRORS as err:
        assert str(err).split(":")[0] in ("sigma_min", "alpha", "lr", "eps")
        return
    expected = -(math.log(float(alpha)) + math.log(float(eps)))
    rate = float(lr) * float(sigma_min)
    if 1e-300 < rate < 1e300 and math.isfinite(bound):  # else the bound under- or overflows, legitimately
        assert bound * rate == pytest.approx(expected, rel=1e-9, abs=1e-300)


# -- storage -------------------------------------------------------------------------------------


@given(st.sampled_from(["junk", "npy", "npz_other", "truncated", "bad_json"]), st.binary(max_size=64))
def test_loading_a_foreign_file_raises_value_error(tmp_path_factory: Any, kind: str, payload: bytes) -> None:
    path = tmp_path_factory.mktemp("load") / "file.npz"
    good = tmp_path_factory.mktemp("good") / "good.npz"
    problem = tc.SymmetricMatrixFactorization.planted(d=3, rank=1, seed=0)
    tc.run(problem, np.full((3, 2), 0.1), lr=0.01, steps=2).save(good)
    if kind == "junk":
        path.write_bytes(payload)
    elif kind == "npy":
        with open(path, "wb") as fh:
            np.save(fh, np.frombuffer(payload, dtype=np.uint8))
    elif kind == "npz_other":
        np.savez(path, a=np.frombuffer(payload, dtype=np.uint8))
    elif kind == "truncated":
        data = good.read_bytes()
        path.write_bytes(data[: len(payload) * len(data) // 65])
    else:
        with np.load(good) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["metadata_json"] = np.array(payload.decode("latin-1") + "{")
        np.savez(path, **arrays)
    with pytest.raises(ValueError, match="path: .* is not a trajectory written by Trajectory.save"):
        tc.Trajectory.load(path)


# -- plots (few examples: each draws a matplotlib figure) ------------------------------------------


@settings(max_examples=30)
@given(st.data())
def test_plots_validate_their_inputs(data: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problem = tc.SymmetricMatrixFactorization.planted(d=3, rank=2, seed=0)
    traj = tc.run(problem, np.full((2, 3, 2), 0.1), lr=0.01, steps=3, record=tc.Record(coefficients="all"))
    which = data.draw(st.one_of(st.none(), st.lists(st.one_of(st.integers(-2, 11), _JUNK), max_size=3)))
    call = data.draw(st.sampled_from(["coefficients", "learning_times", "scaling"]))
    try:
        if call == "coefficients":
            target = data.draw(st.sampled_from([traj, traj[0], None, "x", traj.loss]))
            ax = tc.plot.coefficients(target, which, labels=data.draw(st.none() | st.lists(st.text(), max_size=3)))
            assert len(ax.lines) == (len(which) if which is not None else 3)
        elif call == "learning_times":
            ax = tc.plot.learning_times(data.draw(any_array(max_dims=3)), data.draw(any_array(max_dims=2)))
        else:
            x = data.draw(any_array(max_dims=2))
            ax = tc.plot.scaling(x, data.draw(any_array(max_dims=3)), data.draw(any_array(max_dims=2)), xlabel="x")
    except CLEAR_ERRORS as err:
        assert str(err).split(":")[0] in ("trajectory", "which", "labels", "measured", "predicted", "x")
    finally:
        plt.close("all")


# -- free functions of the core added with the tensor, network and projection families ------------


def _reference_uniforms(seed: int, trajectory: int, step: int, stream: int, count: int) -> np.ndarray:
    key = [seed & 0xFFFFFFFF, seed >> 32]
    bits = step & 0xFFFFFFFFFFFFFFFF
    fixed = [bits & 0xFFFFFFFF, ((bits >> 32) & 0xFFFF) | ((stream << 16) & 0xFFFFFFFF), trajectory & 0xFFFFFFFF]
    words: list[int] = []
    block = 0
    while len(words) < 2 * count:
        words += _philox4x32([block, *fixed], key)
        block += 1
    return np.array([(((words[2 * i] >> 5) << 26 | (words[2 * i + 1] >> 6)) + 0.5) / 2**53 for i in range(count)])


@given(_U64, _U64, st.integers(-(2**63), 2**63 - 1), st.integers(0, 2**32 - 1), st.integers(-3, 9))
def test_uniform_draws_match_philox_reference(seed: int, trajectory: int, step: int, stream: int, count: int) -> None:
    try:
        draws = _core.uniform_draws(seed, trajectory, step, stream, count)
    except CLEAR_ERRORS:
        assert not (0 <= seed < 2**64 and 0 <= trajectory < 2**64 and count >= 0)
        return
    np.testing.assert_array_equal(draws, _reference_uniforms(seed, trajectory, step, stream, count))
    assert np.all((draws > 0) & (draws < 1))


@given(any_array(max_dims=3, max_side=4), any_array(max_dims=4, max_side=4), st.booleans(), st.integers(-1, 3))
def test_change_basis(Q: Any, X: Any, transpose: bool, n_threads: int) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = _core.change_basis(Q, X, transpose, n_threads)
    except CLEAR_ERRORS:
        valid = Q.ndim == 2 and Q.shape[0] == Q.shape[1] and X.ndim == 3 and X.shape[1] == Q.shape[0]
        assert not (valid and n_threads >= 1 and Q.dtype.kind in "biuf" and X.dtype.kind in "biuf")
        return
    Qf, Xf = np.asarray(Q).real.astype(np.float64), np.asarray(X).real.astype(np.float64)
    expected = np.einsum("ji,bjw->biw" if transpose else "ij,bjw->biw", Qf, Xf)
    assert out.shape == Xf.shape
    with np.errstate(invalid="ignore", over="ignore"):
        finite = np.all(np.isfinite(Qf)) and np.all(np.isfinite(Xf)) and np.max(np.abs(Qf), initial=0) < 1e100
        if finite and np.max(np.abs(Xf), initial=0) < 1e100:
            scale = max(1.0, float(np.max(np.abs(expected), initial=0)))
            np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12 * scale)


@given(any_array(max_dims=3, max_side=5), st.booleans())
def test_jacobi_svd(A: Any, vectors: bool) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = _core.jacobi_svd(A, vectors)
    except CLEAR_ERRORS:
        assert not (A.ndim == 2 and A.size > 0 and A.dtype.kind in "biufc")
        return
    M = np.asarray(A).real.astype(np.float64)
    s = out[1] if vectors else out
    if not np.all(np.isfinite(M)) or np.max(np.abs(M)) > 1e150 or not np.all(np.isfinite(s)):
        assert s.shape == (min(M.shape),)  # extreme input: a result of the right shape, never a hang
        return
    np.testing.assert_allclose(
        np.sort(s)[::-1], np.linalg.svd(M, compute_uv=False), rtol=1e-9, atol=1e-12 * max(1.0, float(np.max(np.abs(M))))
    )
    if vectors:
        U, _, V = out
        np.testing.assert_allclose((U * s) @ V.T, M, rtol=1e-9, atol=1e-11 * max(1.0, float(np.max(np.abs(M)))))


@given(
    any_array(max_dims=3, max_side=4),
    any_array(max_dims=3, max_side=4),
    _ANY_FLOAT,
    st.sampled_from([-1, 0, 1, 2, 1024, 1025, 2**31 - 1]),
)
def test_projections(snapshots: Any, basis: Any, scale: float, n_threads: int) -> None:
    S, Bm = _forcecast(snapshots), _forcecast(basis)
    real = S is not None and Bm is not None
    if not real:  # what the core cannot convert it rejects; shapes below come from the raw arrays
        S, Bm = np.asarray(snapshots), np.asarray(basis)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        for name, ok, reference in (
            (
                "project",
                S.ndim == 2 and Bm.ndim == 2 and Bm.shape[0] == S.shape[-1],
                lambda: scale * (S.astype(float) @ Bm.astype(float)),
            ),
            (
                "project_per_output",
                S.ndim == 3 and Bm.ndim == 2 and Bm.shape[0] == S.shape[1],
                lambda: scale * np.einsum("tnc,nk->tck", S.astype(float), Bm.astype(float)),
            ),
        ):
            valid = real and ok and 1 <= n_threads <= 1024
            try:
                out = getattr(_core, name)(snapshots, basis, scale, n_threads)
            except CLEAR_ERRORS:
                assert not valid
                continue
            assert valid
            expected = reference()
            finite = np.isfinite(expected) & (np.abs(expected) < 1e250)
            np.testing.assert_allclose(out[finite], expected[finite], rtol=1e-9, atol=1e-300)
        out = np.zeros((3, Bm.shape[1] if Bm.ndim == 2 else 1))
        row = 1
        try:
            _core.project_into(S.ravel() if S.ndim else S, basis, scale, out, row)
        except CLEAR_ERRORS:
            assert not (real and Bm.ndim == 2 and S.size == Bm.shape[0])
            return
        expected = scale * (S.astype(float).ravel() @ Bm.astype(float))
        finite = np.isfinite(expected) & (np.abs(expected) < 1e250)
        np.testing.assert_allclose(out[row][finite], expected[finite], rtol=1e-9, atol=1e-300)
        assert not np.any(out[[0, 2]])  # only the requested row is written


def _forcecast(value: Any) -> np.ndarray | None:
    """``value`` as the core's float64 conversion sees it (pybind11 forcecast: complex keeps its real
    part, object arrays of numbers convert), or None when it cannot be converted."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(value).astype(np.float64)
    except (TypeError, ValueError):
        return None


def _reference_dense(Z: np.ndarray, c: np.ndarray, order: int) -> np.ndarray:
    T = np.zeros((Z.shape[0],) * order)
    for k in range(Z.shape[1]):
        outer = Z[:, k]
        for _ in range(order - 1):
            outer = np.multiply.outer(outer, Z[:, k])
        T += c[k] * outer
    return T


@given(st.integers(-1, 4), st.integers(-1, 11), st.data())
def test_symmetric_tensor_core(d: int, order: int, data: Any) -> None:
    try:
        size = _core.packed_size(d, order)
    except CLEAR_ERRORS:
        assert not (d >= 1 and 2 <= order <= 10)
        return
    assert size == math.comb(d + order - 1, order)
    multiplicities = _core.packed_multiplicities(d, order)
    assert multiplicities.shape == (size,) and multiplicities.sum() == d**order
    if d**order > 4096:
        return
    r = data.draw(st.integers(1, 3))
    Z, c = data.draw(real_arrays((d, r), -1, 1)), data.draw(real_arrays((r,)))
    dense = _reference_dense(Z, c, order)
    tensor = _core.SymmetricTensorCore.from_factors(Z, c, order)
    np.testing.assert_allclose(tensor.to_dense(), dense.ravel(), rtol=1e-12, atol=1e-12)
    assert (tensor.dim, tensor.order, tensor.storage) == (d, order, "factored")
    assert tensor.norm_squared == pytest.approx(float(np.sum(dense**2)), rel=1e-9, abs=1e-12)
    packed = tensor.to_packed()
    assert _core.dense_asymmetry(dense.ravel(), d, order) <= 1e-12
    for other in (tensor.as_dense(), tensor.as_packed(), _core.SymmetricTensorCore.from_packed(packed, d, order)):
        np.testing.assert_allclose(other.to_dense(), dense.ravel(), rtol=1e-12, atol=1e-12)
    U = data.draw(any_array(max_dims=3, max_side=4))
    n_threads = data.draw(st.sampled_from([1, 2, 1025]))
    for t in (tensor, tensor.as_packed()):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                G, F = t.contract(U, n_threads), t.full_contract(U, n_threads)
        except CLEAR_ERRORS:
            assert not (U.ndim == 2 and U.shape[0] == d and U.dtype.kind in "biufc" and n_threads <= 1024)
            continue
        Uf = np.asarray(U).real.astype(np.float64)
        if not np.all(np.isfinite(Uf)) or np.max(np.abs(Uf), initial=0) > 1e30:
            continue
        expected = np.zeros((d, Uf.shape[1]))
        for j in range(Uf.shape[1]):
            expected[:, j] = _contract_all_but_one(dense, Uf[:, j])
        # Summation order differs: rounding up to ~eps sum |T| |u|^(l-1) (cancellation is legitimate).
        weight, u_max = 1e-12 * (1.0 + float(np.abs(dense).sum())), max(1.0, float(np.max(np.abs(Uf), initial=0)))
        np.testing.assert_allclose(G, expected.reshape(d, -1), rtol=1e-9, atol=weight * u_max ** (order - 1) + 1e-9)
        F_expected = np.einsum("dj,dj->j", expected.reshape(d, -1), Uf)
        np.testing.assert_allclose(F, F_expected, rtol=1e-9, atol=weight * u_max**order + 1e-9)
    junk = data.draw(any_array(max_dims=2))
    for build in ("from_dense", "from_packed"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                getattr(_core.SymmetricTensorCore, build)(junk, d, order)
        except CLEAR_ERRORS:
            continue
        assert junk.size == (d**order if build == "from_dense" else size)


def _contract_all_but_one(T: np.ndarray, u: np.ndarray) -> np.ndarray:
    """T(u, ..., u, .) for a dense symmetric T."""
    out = T
    while out.ndim > 1:
        out = out @ u
    return out


# -- every public function of the analysis and bases modules: junk in, a clear error out ------------

PUBLIC_FUNCTIONS = sorted(
    [
        (f"analysis.{n}", getattr(tc.analysis, n))
        for n in tc.analysis.__all__
        if inspect.isfunction(getattr(tc.analysis, n))
    ]
    + [
        (f"bases.{n}", f)
        for n, f in vars(tc.bases).items()
        if not n.startswith("_") and inspect.isfunction(f) and f.__module__ == "trajcore.bases"
    ],
    key=lambda item: item[0],
)


@given(st.sampled_from(PUBLIC_FUNCTIONS), st.lists(st.one_of(any_array(max_dims=3), _JUNK), min_size=0, max_size=4))
def test_public_functions_raise_clear_errors(function: Any, args: list[Any]) -> None:
    """Correct results are each module's own tests; this one checks that nonsense never escapes as an
    AttributeError, IndexError, KeyError or crash."""
    name, fn = function
    required = [
        p
        for p in inspect.signature(fn).parameters.values()
        if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    args = (args + [None] * len(required))[: len(required)]
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            fn(*args)
    except CLEAR_ERRORS:
        pass
