"""Sweep throughput: 2,000 SMF trajectories (d = 50, one per run) through the sweep runner.

    python bench/compare.py --only sweep          # 2,000 runs per executor (about a minute)
    python bench/compare.py --only sweep --quick  # 400 runs

Rows:
- informational: the same runs in bare processes, 2 against 1 (what the machine's cores allow),
  and the sweep on 1 worker against the bare loop (the machinery's own cost);
- 2 local worker processes against 1 (target: >= 1.8x faster);
- Dask distributed with 2 single-threaded worker processes on this machine against the local path
  with 2 workers (target: at most 20% slower, i.e. ratio >= 1/1.2).

Executors are started and warmed (worker processes spawned, trajcore imported) before the clock
starts, so the rows compare steady-state sweeping, the cost a long sweep actually pays. Every
sweep writes a real store (atomic, fsynced run files) into a temporary directory, and the stores
of the three executors are checked to be identical.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, wait
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import sweep_experiments  # noqa: E402,F401  (registers bench_smf_trajectory)

from trajcore.experiments import get  # noqa: E402
from trajcore.sweep import Run, SweepSpec, compute_chunk, dask_executor, local_executor, run_sweep  # noqa: E402

EXPERIMENT = "bench_smf_trajectory"


def sweep_spec(n_runs: int) -> SweepSpec:
    return SweepSpec(EXPERIMENT, base={"d": 50}, grid={"seed": list(range(n_runs))})


def warm(executor: Executor, workers: int) -> None:
    """Start every worker and import the experiment there (runs of seeds outside the timed grid)."""
    experiment = get(EXPERIMENT)
    runs = [Run(f"warm{i}", experiment.make_config({"seed": 10**6 + i})) for i in range(2 * workers)]
    wait([executor.submit(compute_chunk, experiment, [run]) for run in runs])


@contextlib.contextmanager
def dask_local(workers: int) -> Iterator[Executor]:
    # The worker processes must import the benchmark experiment module.
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), str(HERE.parent), previous]))
    try:
        with dask_executor(None, workers=workers, timeout=30) as executor:
            yield executor
    finally:
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous


def timed_sweep(
    make_executor: Callable[[], contextlib.AbstractContextManager[Executor]],
    workers: int,
    n_runs: int,
    store: Path,
) -> float:
    """Seconds to sweep ``n_runs`` runs into ``store`` on a started and warmed executor."""
    with make_executor() as executor:
        warm(executor, workers)
        start = time.perf_counter()
        outcome = run_sweep(sweep_spec(n_runs), store, executor=executor, workers=workers)
        seconds = time.perf_counter() - start
    assert outcome.computed == n_runs, outcome
    return seconds


def bare_loop(seeds: list[int]) -> None:
    """The runs alone, no sweep machinery (no store, no JSON): the baseline of the hardware."""
    experiment = get(EXPERIMENT)
    for seed in seeds:
        experiment.run(experiment.make_config({"seed": seed, "n_threads": 1}), None)


def bare_seconds(workers: int, n_runs: int) -> float:
    """Seconds for ``n_runs`` bare runs split evenly over ``workers`` warmed processes."""
    with local_executor(workers) as executor:
        warm(executor, workers)
        start = time.perf_counter()
        wait([executor.submit(bare_loop, list(range(i, n_runs, workers))) for i in range(workers)])
        return time.perf_counter() - start


def store_bytes(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "runs").iterdir())}


def measure(n_runs: int, with_dask: bool = True) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="trajcore-bench-sweep-") as tmp:
        root = Path(tmp)
        one = timed_sweep(lambda: local_executor(1), 1, n_runs, root / "local1")
        two = timed_sweep(lambda: local_executor(2), 2, n_runs, root / "local2")
        dask = timed_sweep(lambda: dask_local(2), 2, n_runs, root / "dask2") if with_dask else None
        reference = store_bytes(root / "local1")
        identical = store_bytes(root / "local2") == reference and (
            dask is None or store_bytes(root / "dask2") == reference
        )
    return {"local1": one, "local2": two, "dask2": dask, "identical": identical}


def compare(report: Any) -> None:
    n_runs = 400 if report.quick else 2000
    case = f"{n_runs:,} SMF trajectories d=50"
    try:
        import distributed  # noqa: F401

        has_dask = True
    except ImportError:
        has_dask = False
    bare1, bare2 = bare_seconds(1, n_runs), bare_seconds(2, n_runs)
    result = measure(n_runs, with_dask=has_dask)
    report.fact("sweep stores identical across executors", result["identical"])
    report.fact("sweep ms per run, 1 local worker", round(1e3 * result["local1"] / n_runs, 3))
    # what this machine allows: the same runs in 2 bare processes against 1 (the ceiling of the
    # 2-worker row), and the sweep's own cost on 1 worker (store, checksums, JSON, scheduling)
    report.add("sweep", f"{case}: 2 bare processes (ceiling)", "1 bare process", bare2, bare1, note="no sweep")
    report.add("sweep", f"{case}: sweep, 1 worker", "bare loop, 1 process", result["local1"], bare1, note="overhead")
    report.add("sweep", f"{case}: 2 local workers", "1 local worker", result["local2"], result["local1"], target=1.8)
    if has_dask and result["dask2"] is not None:
        report.add(
            "sweep",
            f"{case}: Dask, 2 workers",
            "local, 2 workers",
            result["dask2"],
            result["local2"],
            target=1 / 1.2,
            note="target: Dask at most 20% slower",
        )
    else:
        report.skip("sweep", f"{case}: Dask, 2 workers", "local, 2 workers", "distributed is not installed")


if __name__ == "__main__":
    from harness import Report

    compare(Report(quick="--quick" in sys.argv))
