"""One spelling per concept across the problem families, the old spellings kept one release.

The target's spectrum is ``sigma`` in every family (``planted(sigma=)`` and ``.sigma``); the
asymmetric factorization's factors are ``left``/``right`` (``B`` named the batch axis too); seeds are
keyword-only; a target's storage is ``storage=``; every problem draws a start with
``initial_point(width, scale, seed=...)``. Each old spelling still gives the same problem, with a
``DeprecationWarning`` that names the new one; the new spellings never warn.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import trajcore as tc

SMF = tc.SymmetricMatrixFactorization
AMF = tc.AsymmetricMatrixFactorization
OTD = tc.OrthogonalTensorDecomposition
DLN = tc.DeepLinearNetwork


def _families() -> list[type[tc.Problem]]:
    return [f for f in tc.Problem.families if f.__module__.startswith("trajcore.")]


def _examples() -> list[tuple[str, tc.Problem]]:
    return [(name, problem) for family in _families() for name, problem in family.examples().items()]


def _silently(make: Callable[[], Any]) -> Any:
    """``make()``, failing on any DeprecationWarning (the new spellings must not warn)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        return make()


def _same_arrays(a: Any, b: Any) -> None:
    if isinstance(a, tc.Problem):  # problems: the same target and spectrum
        _same_arrays(_target(a), _target(b))
        _same_arrays(a.sigma, b.sigma)
        assert a.describe() == b.describe()
    elif isinstance(a, tuple):
        for x, y in zip(a, b, strict=True):
            _same_arrays(x, y)
    else:
        np.testing.assert_array_equal(a, b)


def _target(problem: tc.Problem) -> Any:
    if isinstance(problem, OTD):
        return problem.target.to_dense()
    if isinstance(problem, DLN):
        return (problem.X, problem.Y, problem.signal)
    return problem.target  # type: ignore[attr-defined]


# (case, new spelling, old spelling, what the warning must name)
_DENSE = np.random.default_rng(0).standard_normal((5, 4))
_LEFT = np.linalg.qr(np.random.default_rng(1).standard_normal((5, 2)))[0]
_RIGHT = np.linalg.qr(np.random.default_rng(2).standard_normal((4, 2)))[0]
_TENSOR = OTD.planted(d=4, order=3, rank=2, storage="dense", seed=3).target

RENAMES: list[tuple[str, Callable[[], Any], Callable[[], Any], str]] = [
    # target spectrum
    (
        "amf-planted-s",
        lambda: AMF.planted(5, 4, 2, sigma=[3.0, 1.0], seed=1),
        lambda: AMF.planted(5, 4, 2, s=[3.0, 1.0], seed=1),
        "sigma=",
    ),
    (
        "otd-planted-c",
        lambda: OTD.planted(5, 3, 2, sigma=[2.0, 1.0], seed=1),
        lambda: OTD.planted(5, 3, 2, c=[2.0, 1.0], seed=1),
        "sigma=",
    ),
    (
        "otd-weights",
        lambda: OTD(_TENSOR, rank=2, sigma=[2.0, 1.0]),
        lambda: OTD(_TENSOR, rank=2, weights=[2.0, 1.0]),
        "sigma=",
    ),
    (
        "dln-planted-singular-values",
        lambda: DLN.planted([3, 4, 2], n=10, rank=2, sigma=[2.0, 1.0], seed=1),
        lambda: DLN.planted([3, 4, 2], n=10, rank=2, singular_values=[2.0, 1.0], seed=1),
        "sigma=",
    ),
    # the asymmetric factors
    (
        "amf-factors",
        lambda: AMF(left=_LEFT, sigma=[2.0, 1.0], right=_RIGHT),
        lambda: AMF(A=_LEFT, s=[2.0, 1.0], B=_RIGHT),
        "left=",
    ),
    # storage
    (
        "smf-dense",
        lambda: SMF.planted(6, 2, seed=1, storage="dense"),
        lambda: SMF.planted(6, 2, seed=1, dense=True),
        "storage='dense'",
    ),
    (
        "smf-factored",
        lambda: SMF.planted(6, 2, seed=1, storage="factored"),
        lambda: SMF.planted(6, 2, seed=1, dense=False),
        "storage='factored'",
    ),
    (
        "amf-dense",
        lambda: AMF.planted(5, 4, 2, seed=1, storage="dense"),
        lambda: AMF.planted(5, 4, 2, seed=1, dense=True),
        "storage='dense'",
    ),
    # seeds keyword-only
    ("smf-seed", lambda: SMF.planted(6, 2, [2.0, 1.0], seed=4), lambda: SMF.planted(6, 2, [2.0, 1.0], 4), "seed="),
    (
        "amf-seed",
        lambda: AMF.planted(5, 4, 2, [2.0, 1.0], seed=4),
        lambda: AMF.planted(5, 4, 2, [2.0, 1.0], 4),
        "seed=",
    ),
    ("small-init-seed", lambda: tc.small_init((3, 2), 0.1, seed=4), lambda: tc.small_init((3, 2), 0.1, 4), "seed="),
]

_NET = DLN.planted([3, 4, 2], n=10, rank=1, seed=0)
RENAMES += [
    ("dln-default-init", lambda: _NET.default_init(seed=2, batch=3), lambda: _NET.default_init(2, 3), "seed="),
    ("dln-small-init", lambda: _NET.small_init(0.1, seed=2), lambda: _NET.small_init(0.1, 2), "seed="),
    (
        "dln-truncated-init",
        lambda: _NET.truncated_init(1, seed=2, batch=2),
        lambda: _NET.truncated_init(1, 2, 2),
        "batch=",
    ),
    ("dln-aligned-init", lambda: _NET.aligned_init(1, 0.5, seed=2), lambda: _NET.aligned_init(1, 0.5, 2), "seed="),
]


@pytest.mark.parametrize("case, new, old, named", RENAMES, ids=[case[0] for case in RENAMES])
def test_the_old_spelling_gives_the_same_thing_and_names_the_new_one(case, new, old, named):
    expected = _silently(new)
    with pytest.warns(DeprecationWarning) as record:
        got = old()
    _same_arrays(expected, got)
    messages = [str(w.message) for w in record]
    assert any(named in m and "deprecated" in m for m in messages), messages
    # each warning points at the caller (this file), not at trajcore's internals
    assert {w.filename for w in record} == {__file__}


def test_a_positional_batch_is_named_too():
    with pytest.warns(DeprecationWarning) as record:
        _NET.default_init(2, 3)
    messages = " ".join(str(w.message) for w in record)
    assert "seed=" in messages and "batch=" in messages


@pytest.mark.parametrize(
    "problem, old, new",
    [
        (AMF(left=_LEFT, sigma=[2.0, 1.0], right=_RIGHT), "A", "left"),
        (AMF(left=_LEFT, sigma=[2.0, 1.0], right=_RIGHT), "s", "sigma"),
        (AMF(_DENSE), "B", "right"),
        (OTD.planted(4, 3, 2, seed=0), "weights", "sigma"),
    ],
    ids=["amf-A", "amf-s", "amf-B", "otd-weights"],
)
def test_old_attributes_read_the_new_ones_with_a_warning(problem, old, new):
    with pytest.warns(DeprecationWarning, match=rf"\.{new}\b"):
        value = getattr(problem, old)
    assert value is getattr(problem, new)


def test_both_spellings_at_once_are_refused():
    with pytest.raises(TypeError, match="sigma="):
        AMF.planted(5, 4, 2, sigma=[2.0, 1.0], s=[2.0, 1.0])
    with pytest.raises(TypeError, match="storage="):
        SMF.planted(6, 2, storage="dense", dense=True)
    with pytest.raises(TypeError, match="seed"):
        SMF.planted(6, 2, None, 1, seed=1)
    with pytest.raises(TypeError, match="positional"):
        tc.small_init((2, 2), 0.1, 1, 2)
    with pytest.raises(ValueError, match="storage"):
        AMF.planted(5, 4, 2, storage="packed")


def test_amf_factors_are_left_sigma_right():
    problem = _silently(lambda: AMF(left=_LEFT, sigma=[2.0, 1.0], right=_RIGHT))
    np.testing.assert_allclose(problem.target, (_LEFT * [2.0, 1.0]) @ _RIGHT.T)
    dense = AMF(problem.target)
    np.testing.assert_allclose(dense.sigma, [2.0, 1.0], rtol=1e-12)
    np.testing.assert_allclose(np.abs(dense.left.T @ _LEFT), np.eye(2), atol=1e-12)  # up to signs
    np.testing.assert_allclose(np.abs(dense.right.T @ _RIGHT), np.eye(2), atol=1e-12)


# -- the same spelling in every family ----------------------------------------------------------------


_PLANTED = [family for family in _families() if "planted" in vars(family)]


@pytest.mark.parametrize("family", _PLANTED, ids=lambda f: f.__name__)
def test_every_family_spells_the_spectrum_sigma_and_takes_seeds_by_keyword(family):
    """A family with a planted target: ``planted(..., sigma=, seed=)``, and its problems keep ``.sigma``."""
    parameters = inspect.signature(family.planted).parameters
    assert parameters["seed"].kind is inspect.Parameter.KEYWORD_ONLY
    assert "sigma" in parameters
    for name, problem in family.examples().items():
        if type(problem) is family:
            assert hasattr(problem, "sigma"), name


@pytest.mark.parametrize(
    "function",
    [tc.small_init, DLN.default_init, DLN.small_init, DLN.truncated_init, DLN.aligned_init, tc.Problem.initial_point],
    ids=lambda f: f.__qualname__,
)
def test_seeds_are_keyword_only(function):
    assert inspect.signature(function).parameters["seed"].kind is inspect.Parameter.KEYWORD_ONLY


def test_new_spellings_and_examples_never_warn():
    def build() -> None:
        for _, problem in _examples():
            problem.initial_point(2, 0.1, seed=0)
        SMF.planted(5, 2, [2.0, 1.0], seed=0, storage="dense")
        AMF.planted(5, 4, 2, sigma=[2.0, 1.0], seed=0, storage="dense").basis()
        OTD.planted(4, 3, 2, sigma=[2.0, 1.0], seed=0, storage="packed")
        DLN.planted([3, 4, 2], sigma=[1.0], n=10, seed=0).truncated_init(1, seed=0, batch=2)

    _silently(build)


# -- one way to draw a start --------------------------------------------------------------------------


@pytest.mark.parametrize("name, problem", _examples(), ids=[name for name, _ in _examples()])
def test_initial_point_of_every_family(name, problem):
    shape = problem.parameter_shape(3)
    single = _silently(lambda: problem.initial_point(3, 0.1, seed=5))
    batch = problem.initial_point(3, 0.1, seed=5, batch=4)
    assert single.shape == shape and single.dtype == np.float64
    assert batch.shape == (4, *shape) and batch.dtype == np.float64
    np.testing.assert_array_equal(problem.initial_point(3, 0.1, seed=5, batch=4), batch)  # the seed decides
    assert not np.array_equal(problem.initial_point(3, 0.1, seed=6, batch=4), batch)
    np.testing.assert_array_equal(batch[0], single)  # member 0 of a batch is the single draw
    assert np.all(np.isfinite(problem.loss(batch)))  # a start the problem accepts
    if type(problem).initial_point is tc.Problem.initial_point or isinstance(problem, DLN):
        # the factor problems (and the network's default kind) draw what tc.small_init draws
        np.testing.assert_array_equal(single, tc.small_init(shape, 0.1, seed=5))
        np.testing.assert_array_equal(batch, tc.small_init((4, *shape), 0.1, seed=5))
    with pytest.raises(TypeError):
        problem.initial_point(3, 0.1, 5)  # a new name: the seed is keyword-only from the start


def test_initial_point_of_the_network_reaches_its_initialisations():
    net = DLN.planted([4, 5, 3], n=20, rank=2, seed=0)
    draws = {
        "small": (net.initial_point(scale=0.3, seed=1, batch=2), net.small_init(0.3, seed=1, batch=2)),
        "default": (net.initial_point(kind="default", seed=1), net.default_init(seed=1)),
        "truncated": (net.initial_point(kind="truncated", rank=1, seed=1), net.truncated_init(1, seed=1)),
        "truncated-small": (
            net.initial_point(None, 0.1, kind="truncated", rank=1, seed=1),
            net.truncated_init(1, seed=1, scale=0.1),
        ),
        "aligned": (net.initial_point(kind="aligned", rank=2, seed=1), net.aligned_init(2, seed=1)),
        "aligned-scaled": (net.initial_point(7, 0.5, kind="aligned", rank=2, seed=1), net.aligned_init(2, 0.5, seed=1)),
    }
    for kind, (got, expected) in draws.items():
        np.testing.assert_array_equal(got, expected, err_msg=kind)
    with pytest.raises(ValueError, match="kind"):
        net.initial_point(3, 0.1, seed=0, kind="xavier")
    with pytest.raises(ValueError, match="needs a rank"):
        net.initial_point(kind="aligned", seed=0)
    with pytest.raises(ValueError, match="takes no rank"):
        net.initial_point(3, 0.1, kind="small", rank=1, seed=0)
    with pytest.raises(ValueError, match="scale"):
        net.initial_point(seed=0)
    with pytest.raises(ValueError, match="scale"):
        net.initial_point(3, 0.1, kind="default", seed=0)


def test_initial_point_checks_its_arguments():
    problem = SMF.planted(5, 2, seed=0)
    for bad in ({"width": 0}, {"scale": -1.0}, {"batch": 0}):
        arguments: dict[str, Any] = {"width": 2, "scale": 0.1, "batch": None} | bad
        with pytest.raises(ValueError, match=next(iter(bad))):
            problem.initial_point(arguments["width"], arguments["scale"], seed=0, batch=arguments["batch"])


# -- the basis of a factor problem ----------------------------------------------------------------------


_FACTOR_EXAMPLES = [(name, problem) for name, problem in _examples() if "eigenbasis" in problem.coordinates]


@pytest.mark.parametrize("name, problem", _FACTOR_EXAMPLES, ids=[name for name, _ in _FACTOR_EXAMPLES])
def test_eigenbasis_is_the_one_orthogonal_basis_of_a_factor_problem(name, problem):
    Q = problem.eigenbasis()
    rows = problem.parameter_shape(1)[0]
    assert Q.shape == (rows, rows)
    np.testing.assert_allclose(Q.T @ Q, np.eye(rows), atol=1e-12)
    basis = problem.basis()
    if isinstance(basis, tuple):  # one basis per factor: Q is their block diagonal
        np.testing.assert_array_equal(Q[: basis[0].shape[0], : basis[0].shape[0]], basis[0])
        np.testing.assert_array_equal(Q[basis[0].shape[0] :, basis[0].shape[0] :], basis[1])
    else:
        np.testing.assert_array_equal(Q, basis)
