"""Timing and reporting shared by ``bench/compare.py`` and the ``bench/compare_*.py`` suites.

Times are medians of repeated runs; what the table reports is the ratio anchor / trajcore measured
in the same process, since absolute seconds on a shared machine mean little.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np


@dataclass
class Row:
    section: str
    case: str
    anchor: str
    trajcore_s: float | None
    anchor_s: float | None
    target: float | None  # required anchor/trajcore ratio (speed-up), None = informational
    note: str = ""
    unit: str = "s"  # "s": the two values are seconds; "B": bytes (a memory row, ratio anchor / trajcore)

    @property
    def ratio(self) -> float | None:
        if self.trajcore_s is None or self.anchor_s is None or self.trajcore_s <= 0:
            return None
        return self.anchor_s / self.trajcore_s

    @property
    def status(self) -> str:
        if self.ratio is None:
            return "skipped"
        if self.target is None:
            return "info"
        return "ok" if self.ratio >= self.target else "MISSED"


def median_time(fn: Callable[[], Any], *, repeat: int = 5, warmup: int = 1, min_time: float = 0.0) -> float:
    """Median wall time of ``fn()`` over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class Report:
    def __init__(self, quick: bool = False) -> None:
        self.quick = quick
        self.rows: list[Row] = []
        self.facts: dict[str, Any] = {}

    def add(
        self,
        section: str,
        case: str,
        anchor: str,
        trajcore_s: float | None,
        anchor_s: float | None,
        target: float | None = None,
        note: str = "",
        unit: str = "s",
    ) -> Row:
        row = Row(section, case, anchor, trajcore_s, anchor_s, target, note, unit)
        self.rows.append(row)
        print(self.format_row(row), flush=True)
        return row

    def skip(self, section: str, case: str, anchor: str, reason: str) -> None:
        self.add(section, case, anchor, None, None, None, f"skipped: {reason}")

    def fact(self, name: str, value: Any) -> None:
        self.facts[name] = value
        print(f"  [{name}] {value}", flush=True)

    @staticmethod
    def format_row(row: Row) -> str:
        ratio = "-" if row.ratio is None else f"{row.ratio:8.2f}x"
        target = "" if row.target is None else f">= {row.target:g}x"

        def value(v: float | None) -> str:
            if v is None:
                return "-"
            return f"{v / 2**20:9.2f} MiB" if row.unit == "B" else f"{v * 1e3:10.3f} ms"

        tc, an = value(row.trajcore_s), value(row.anchor_s)
        return (
            f"{row.section:<14} {row.case:<57} {row.anchor:<28} {tc:>14} {an:>14} {ratio:>10} {target:>9} "
            f"{row.status:<7} {row.note}"
        )

    def print_table(self) -> None:
        header = (
            f"{'section':<14} {'case':<57} {'anchor':<28} {'trajcore':>14} {'anchor':>14} {'ratio':>10} "
            f"{'target':>9} status"
        )
        print("\n" + header + "\n" + "-" * len(header))
        for row in self.rows:
            print(self.format_row(row))

    def to_json(self, path: str) -> None:
        data = {
            "rows": [{**asdict(r), "ratio": r.ratio, "status": r.status} for r in self.rows],
            "facts": self.facts,
        }
        with open(path, "w") as fh:
            json.dump(data, fh, indent=2, default=float)

    def merge_json(self, path: str) -> None:
        """Append the rows and facts another process wrote with :meth:`to_json` (without printing)."""
        with open(path) as fh:
            data = json.load(fh)
        names = {f.name for f in fields(Row)}
        self.rows.extend(Row(**{k: v for k, v in row.items() if k in names}) for row in data["rows"])
        self.facts.update(data["facts"])


def jax_x64() -> tuple[Any, Any]:
    """``(jax, jax.numpy)`` with float64 enabled, or ``(None, None)`` when JAX is not installed."""
    try:
        import jax

        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp

        return jax, jnp
    except ImportError:
        return None, None


def dgemm_rate(threads: int, n: int = 1500) -> float:
    """This machine's measured DGEMM rate in FLOP/s (NumPy's BLAS, ``threads`` threads, n x n)."""
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).standard_normal((n, n))
    b = np.random.default_rng(1).standard_normal((n, n))
    with threadpool_limits(threads, user_api="blas"):
        seconds = median_time(lambda: a @ b, repeat=5)
    return 2.0 * n**3 / seconds
