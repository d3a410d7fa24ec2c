"""The package's one JSON policy: every file trajcore writes is strict JSON (RFC 8259).

Every writer (sweep store, run files, reports, ``.npz`` record metadata, run ids) serialises
through :func:`dumps` or :func:`canonical_json`, which first pass the value through
:func:`json_ready`:

- numpy scalars and arrays become Python numbers and (nested) lists, tuples become lists,
  dict keys become strings, paths become their string;
- a non-finite float (NaN, +inf, -inf, numpy's included) becomes ``null``.

So a reader meets only finite numbers, and ``null`` where a number was expected means "no finite
value": JSON has no NaN or infinity, and ``null`` is what pandas' ``to_json`` writes for them and
what every JSON reader (pandas, jq, a browser) takes for a missing value. The writer does not keep
which of NaN, +inf, -inf or None it was; a quantity whose infinity means something must be stored
in another form (a flag, a finite bound). Both functions pass ``allow_nan=False`` and do not let a
caller override it, so a value that escaped the conversion is an error, never a silently
non-standard file.

Readers use :func:`json.loads` unchanged; it also reads files written before this policy (whose
metadata could hold the non-standard ``NaN`` token).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

__all__ = ["json_ready", "dumps", "canonical_json"]


def json_ready(value: Any) -> Any:
    """``value`` as plain JSON data under the module's policy.

    dicts (keys as ``str``), lists and tuples (as lists) and numpy arrays (as nested lists) are
    converted item by item; numpy booleans, integers and floats become ``bool``, ``int`` and
    ``float``; a non-finite float becomes ``None``; a path becomes ``os.fspath(path)``; ``None``
    and ``str`` are kept; anything else becomes ``str(value)``. Idempotent: plain JSON data is
    returned equal to itself.
    """
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else None
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def dumps(value: Any, **options: Any) -> str:
    """``json.dumps(json_ready(value), allow_nan=False, **options)``: the text of any file trajcore writes.

    ``options`` are those of :func:`json.dumps` (``indent``, ``sort_keys`` ...); ``allow_nan`` is
    not one of them (``TypeError``): strict JSON is the policy, not a choice per writer.
    """
    if "allow_nan" in options:
        raise TypeError("allow_nan: trajcore writes strict JSON only (non-finite floats are written as null)")
    return json.dumps(json_ready(value), allow_nan=False, **options)


def canonical_json(value: Any) -> str:
    """Sorted, compact, ASCII JSON under the same policy: the same data always gives the same text
    (and so the same hash). Used for run ids and the checksums of run files."""
    return dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
