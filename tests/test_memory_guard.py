"""The memory guard: a run whose arrays exceed the limit fails before allocating, naming the size."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import numpy as np
import pytest

import trajcore as tc
from trajcore import _memory

PROBLEM = tc.SymmetricMatrixFactorization.planted(d=5, rank=2, seed=0)
INIT = tc.small_init((4, 5, 3), 0.1, seed=0)  # B = 4, n = 15


@pytest.fixture(autouse=True)
def _default_limit() -> Iterator[None]:
    yield
    tc.set_memory_limit(None)


def _run_bytes(B: int, steps: int, every: int, K: int, n: int, iterates: bool) -> int:
    """Bytes of a run's arrays, counted independently: loss, coefficients, iterates, x, lr, steps."""
    R = len(range(0, steps + 1, every)) + (steps % every != 0)
    return 8 * (B * R + B * R * K + (B * R * n if iterates else 0) + B * n + steps + R)


@pytest.mark.parametrize("iterates", [False, True])
def test_limit_is_the_size_of_the_run(iterates: bool) -> None:
    record = tc.Record(every=3, coefficients="all", iterates=iterates)  # K = 25 pairs
    need = _run_bytes(4, 100, 3, 25, 15, iterates)
    tc.set_memory_limit(need)
    traj = tc.run(PROBLEM, INIT, lr=0.01, steps=100, record=record)
    assert traj.coefficients.shape == (4, 35, 25)
    tc.set_memory_limit(need - 1)
    with pytest.raises(MemoryError, match=r"run: record arrays \(B=4 trajectories x R=35 records") as err:
        tc.run(PROBLEM, INIT, lr=0.01, steps=100, record=record)
    assert _memory.format_bytes(need) in str(err.value)
    assert ("n=15 iterate values" in str(err.value)) == iterates


def test_environment_variable_sets_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAJCORE_MEMORY_LIMIT", "2K")
    with pytest.raises(MemoryError, match=r"needs .*more than the 2\.0 KiB allowed"):
        tc.run(PROBLEM, INIT, lr=0.01, steps=100)
    monkeypatch.setenv("TRAJCORE_MEMORY_LIMIT", "1M")
    assert tc.run(PROBLEM, INIT, lr=0.01, steps=100).loss.shape == (4, 101)
    monkeypatch.setenv("TRAJCORE_MEMORY_LIMIT", "lots")
    with pytest.raises(ValueError, match="TRAJCORE_MEMORY_LIMIT"):
        tc.run(PROBLEM, INIT, lr=0.01, steps=100)


def test_huge_run_is_refused_before_allocating() -> None:
    """10^13 recorded steps (~ PiB) under the default limit (the available memory): an immediate error."""
    started = time.perf_counter()
    with pytest.raises(MemoryError) as err:
        tc.run(PROBLEM, INIT, lr=0.01, steps=10**13, record=tc.Record(iterates=True))
    assert time.perf_counter() - started < 5.0
    size = re.search(r"needs ([0-9.]+) (PiB|TiB)", str(err.value))
    assert size is not None, str(err.value)
    assert float(size.group(1)) * (1 << 50 if size.group(2) == "PiB" else 1 << 40) == pytest.approx(
        _run_bytes(4, 10**13, 1, 4, 15, True), rel=0.01
    )  # printed with one decimal


def test_guard_counts_momentum_velocity() -> None:
    need = _run_bytes(4, 10, 1, 4, 15, False)
    tc.set_memory_limit(need)
    tc.run(PROBLEM, INIT, lr=0.01, steps=10)
    with pytest.raises(MemoryError):
        tc.run(PROBLEM, INIT, lr=0.01, steps=10, momentum=0.5)  # + velocity (B, n)
    tc.set_memory_limit(need + 8 * 4 * 15)
    assert np.all(np.isfinite(tc.run(PROBLEM, INIT, lr=0.01, steps=10, momentum=0.5).loss))


def test_set_memory_limit_validates() -> None:
    for bad in (0, -5, 1.5, "1G"):
        with pytest.raises(ValueError, match="nbytes"):
            tc.set_memory_limit(bad)  # type: ignore[arg-type]


def test_small_requests_skip_the_available_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an explicit limit only requests above SMALL_REQUEST read the available memory."""
    reads: list[int] = []

    def one_mebibyte_available() -> int:
        reads.append(1)
        return 1 << 20

    monkeypatch.delenv("TRAJCORE_MEMORY_LIMIT", raising=False)
    monkeypatch.setattr(_memory, "_available_bytes", one_mebibyte_available)
    tc.run(PROBLEM, INIT, lr=0.01, steps=100)
    _memory.check_allocation("small", _memory.SMALL_REQUEST)
    assert reads == []
    with pytest.raises(MemoryError, match=r"big: needs 64\.0 MiB, more than the 1\.0 MiB allowed"):
        _memory.check_allocation("big", _memory.SMALL_REQUEST + 1)
    assert reads == [1]
    assert tc.memory_limit() == 1 << 20


def test_explicit_limits_apply_to_small_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    tc.set_memory_limit(100)
    with pytest.raises(MemoryError, match="more than the 100 B allowed"):
        _memory.check_allocation("tiny", 101)
    tc.set_memory_limit(None)
    monkeypatch.setenv("TRAJCORE_MEMORY_LIMIT", "100")
    with pytest.raises(MemoryError, match="more than the 100 B allowed"):
        _memory.check_allocation("tiny", 101)
    _memory.check_allocation("tiny", 100)
