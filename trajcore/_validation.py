"""The one validation helper every public entry point uses.

Errors name the argument and say what was expected: ``TypeError`` for a wrong kind of value
(complex, object, strings), ``ValueError`` for a wrong shape, range or non-finite entries.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

__all__ = ["as_float_array", "as_positive_float", "as_nonnegative_int", "as_positive_int"]


def as_float_array(
    name: str,
    value: object,
    *,
    ndim: Sequence[int] | int | None = None,
    shape: Sequence[int | None] | None = None,
    finite: bool = True,
    copy: bool = False,
) -> np.ndarray:
    """``value`` as a C-contiguous float64 array, or a clear error naming ``name``.

    Integers and booleans are converted; complex, object and string data are rejected with
    ``TypeError``. ``shape`` may contain ``None`` for a free axis; ``ndim`` may be one number or a
    sequence of allowed numbers.
    """
    try:
        raw = np.asarray(value)
    except Exception as exc:  # ragged nested lists, exotic objects
        raise TypeError(f"{name}: expected an array of real numbers ({exc})") from None
    if raw.dtype.kind == "c":
        raise TypeError(f"{name}: complex values are not supported, expected real float64 data")
    if raw.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected real numbers, got dtype {raw.dtype}")
    # np.asarray keeps 0-d input 0-d (np.ascontiguousarray would promote it to 1-d).
    array = np.array(raw, dtype=np.float64, order="C", copy=True) if copy else np.asarray(raw, np.float64, order="C")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if array.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(f"{name}: expected {want} dimensions, got shape {array.shape}")
    if shape is not None:
        ok = array.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, array.shape, strict=False))
        if not ok:
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{name}: expected shape {want}, got {array.shape}")
    if finite and not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return array


def _as_real(name: str, value: object) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    return float(value)


def as_positive_float(name: str, value: object, *, allow_zero: bool = False) -> float:
    """A finite float > 0 (>= 0 with ``allow_zero``)."""
    x = _as_real(name, value)
    if not np.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        raise ValueError(f"{name}: expected a finite number {'>=' if allow_zero else '>'} 0, got {value!r}")
    return x


def _as_int(name: str, value: object) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}")
    return int(value)


def as_nonnegative_int(name: str, value: object) -> int:
    x = _as_int(name, value)
    if x < 0:
        raise ValueError(f"{name}: expected an integer >= 0, got {x}")
    return x


def as_positive_int(name: str, value: object) -> int:
    x = _as_int(name, value)
    if x <= 0:
        raise ValueError(f"{name}: expected an integer > 0, got {x}")
    return x
