"""Memory guard: refuse an allocation that cannot fit before making it.

The limit defaults to the memory currently available on the machine (``MemAvailable``), can be set
for a process with :func:`set_memory_limit` or the ``TRAJCORE_MEMORY_LIMIT`` environment variable
(bytes, or with a K/M/G suffix), and is checked by every function that builds large arrays.

An explicit limit applies to every request; the available memory is only read for requests above
``SMALL_REQUEST`` bytes: reading ``/proc/meminfo`` costs more than a short run, and a request of a few
megabytes is not what exhausts a machine.
"""

from __future__ import annotations

import os
from collections.abc import Callable

__all__ = ["check_allocation", "memory_limit", "set_memory_limit", "format_bytes"]

#: requests up to this many bytes are not checked against the available memory (an explicit limit
#: still applies)
SMALL_REQUEST = 64 << 20

_limit_override: int | None = None


def _parse_bytes(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in "KMGT" else text
    try:
        value = int(float(number) * scale)
    except ValueError:
        raise ValueError(f"TRAJCORE_MEMORY_LIMIT: expected bytes like 8G or 500M, got {text!r}") from None
    if value <= 0:
        raise ValueError(f"TRAJCORE_MEMORY_LIMIT: must be positive, got {text!r}")
    return value


def _available_bytes() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 1 << 34


def _explicit_limit() -> int | None:
    """The limit set by :func:`set_memory_limit` or ``TRAJCORE_MEMORY_LIMIT``, if any."""
    if _limit_override is not None:
        return _limit_override
    env = os.environ.get("TRAJCORE_MEMORY_LIMIT")
    return _parse_bytes(env) if env else None


def memory_limit() -> int:
    """Bytes one request may allocate."""
    limit = _explicit_limit()
    return _available_bytes() if limit is None else limit


def set_memory_limit(nbytes: int | None) -> None:
    """Set the per-request limit in bytes (``None`` restores the default)."""
    global _limit_override
    if nbytes is not None and (not isinstance(nbytes, int) or nbytes <= 0):
        raise ValueError(f"nbytes: expected a positive integer or None, got {nbytes!r}")
    _limit_override = nbytes


def format_bytes(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(nbytes) < 1024 or unit == "PiB":
            return f"{nbytes:.1f} {unit}" if unit != "B" else f"{int(nbytes)} B"
        nbytes /= 1024
    return f"{nbytes:.1f} PiB"  # pragma: no cover


def check_allocation(what: str | Callable[[], str], nbytes: float) -> None:
    """Raise ``MemoryError`` naming ``what`` and the size when ``nbytes`` exceeds the limit.

    ``what`` may be a function giving the description, for callers on a fast path: it is only built
    for the error.
    """
    limit = _explicit_limit()
    if limit is None:
        if nbytes <= SMALL_REQUEST:
            return
        limit = _available_bytes()
    if nbytes > limit:
        description = what() if callable(what) else what
        raise MemoryError(
            f"{description}: needs {format_bytes(nbytes)}, more than the {format_bytes(limit)} allowed "
            "(available memory, or TRAJCORE_MEMORY_LIMIT / trajcore.set_memory_limit)"
        )
