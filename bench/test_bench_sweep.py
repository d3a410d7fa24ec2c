"""pytest-benchmark: sweep throughput of SMF trajectories (d = 50) per executor.

    python -m pytest bench/test_bench_sweep.py --benchmark-only

Each round sweeps 400 single-trajectory runs into a fresh store on an executor that was started
and warmed before the clock (see ``compare_sweep.py`` for the 2,000-run comparison with targets).
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from compare_sweep import dask_local, sweep_spec, warm  # noqa: E402

from trajcore.sweep import local_executor, run_sweep  # noqa: E402

N_RUNS = 400


@pytest.mark.parametrize(("kind", "workers"), [("local", 1), ("local", 2), ("dask", 2)])
def test_sweep_throughput(benchmark, tmp_path, kind, workers):
    if kind == "dask":
        pytest.importorskip("distributed")
        make = lambda: dask_local(workers)  # noqa: E731
    else:
        make = lambda: local_executor(workers)  # noqa: E731
    stores = (tmp_path / f"store{i}" for i in itertools.count())
    with make() as executor:
        warm(executor, workers)
        outcome = benchmark.pedantic(
            lambda: run_sweep(sweep_spec(N_RUNS), next(stores), executor=executor, workers=workers),
            rounds=2,
            iterations=1,
        )
    assert outcome.computed == N_RUNS
    assert all(row["check.converged"] for row in outcome.rows)
