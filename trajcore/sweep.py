"""Sweeps: a TOML spec expands to a grid of runs, executed on any ``concurrent.futures`` executor
into a resumable :class:`~trajcore.store.RunStore`.

A spec::

    experiment = "smf_reference"
    chunk_size = 8                 # optional: runs per task

    [base]                         # settings shared by every run (like --set)
    d = 50
    steps = 400

    [grid]                         # every combination of these lists is one run
    alpha = [1e-2, 1e-3, 1e-4]
    seed = { range = [0, 100] }    # shorthand for [0, 1, ..., 99] (also [start, stop, step])

Each run's id is the hash of its canonical config (:func:`trajcore.experiments.settings.run_id`), so
rerunning a spec skips what is already stored, recomputes corrupt files, and a grid that grows only
computes the new points. Workers compute, the client writes: run files are written by the process
that owns the store, so a cluster needs no shared file system.

Executors: ``local`` (worker processes, the default), ``threads`` (the kernels release the GIL),
``dask`` (a ``distributed`` cluster at ``--scheduler``, or a local one). Every task limits OpenMP and
BLAS to one thread and runs configs that have ``n_threads`` with ``n_threads=1``: the parallelism is
across runs, and a result does not depend on the thread count.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import gc
import itertools
import math
import multiprocessing
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .experiments import Experiment, get
from .experiments.settings import ConfigError, config_dict, run_id
from .store import PathLike, RunStore, StoreScan, json_ready

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "SpecError",
    "SweepError",
    "SweepSpec",
    "Run",
    "SweepOutcome",
    "load_spec",
    "parse_spec",
    "expand",
    "run_sweep",
    "local_executor",
    "dask_executor",
    "compute_chunk",
    "default_chunk_size",
    "store_scan",
]

#: threads writing run files concurrently (see run_sweep)
_WRITERS = 8

_SPEC_KEYS = frozenset({"experiment", "base", "grid", "chunk_size"})


class SpecError(ValueError):
    """A sweep spec that cannot be read or does not fit its experiment."""


class SweepError(RuntimeError):
    """A sweep that failed while running (a run raised, the executor broke)."""


@dataclass(frozen=True)
class SweepSpec:
    """What to sweep: an experiment, ``base`` settings for every run, and a ``grid`` of value lists."""

    experiment: str
    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    chunk_size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "base": self.base,
            "grid": self.grid,
            "chunk_size": self.chunk_size,
        }


@dataclass(frozen=True)
class Run:
    """One point of a sweep: its id and its typed config."""

    id: str
    config: Any


@dataclass
class SweepOutcome:
    """What a sweep did: runs in the grid, found complete, recomputed because corrupt, computed now."""

    store: Path
    total: int
    skipped: int
    corrupt: int
    computed: int
    seconds: float
    rows: list[dict[str, Any]]


# -- the spec ------------------------------------------------------------------------------------
def _grid_values(key: str, value: Any) -> list[Any]:
    if isinstance(value, dict):
        if set(value) != {"range"} or not isinstance(value["range"], list) or not 2 <= len(value["range"]) <= 3:
            raise SpecError(f"grid.{key}: expected a list or {{ range = [start, stop] }} / [start, stop, step]")
        bounds = value["range"]
        if not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds):
            raise SpecError(f"grid.{key}: range bounds must be integers, got {bounds}")
        values: list[Any] = list(range(*bounds))
    elif isinstance(value, list):
        values = value
    else:
        raise SpecError(f"grid.{key}: expected a list of values, got {type(value).__name__}")
    if not values:
        raise SpecError(f"grid.{key}: the list of values is empty")
    return values


def parse_spec(text: str, source: str = "<spec>") -> SweepSpec:
    """Parse the TOML text of a sweep spec (see the module docstring).

    Raises
    ------
    SpecError
        Malformed TOML (the message gives the line and column), unknown top-level keys, a missing
        experiment name, or grid entries that are not lists.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"{source}: malformed TOML: {error}") from None
    unknown = sorted(set(data) - _SPEC_KEYS)
    if unknown:
        raise SpecError(f"{source}: unknown key(s) {', '.join(unknown)}; a spec has {', '.join(sorted(_SPEC_KEYS))}")
    experiment = data.get("experiment")
    if not isinstance(experiment, str) or not experiment:
        raise SpecError(f'{source}: missing experiment = "<name>"')
    base = data.get("base", {})
    grid = data.get("grid", {})
    if not isinstance(base, dict) or not isinstance(grid, dict):
        raise SpecError(f"{source}: [base] and [grid] must be tables")
    chunk_size = data.get("chunk_size")
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise SpecError(f"{source}: chunk_size must be a positive integer, got {chunk_size!r}")
    both = sorted(set(base) & set(grid))
    if both:
        raise SpecError(f"{source}: key(s) {', '.join(both)} in both [base] and [grid]")
    return SweepSpec(experiment, dict(base), {k: _grid_values(k, v) for k, v in grid.items()}, chunk_size)


def load_spec(path: PathLike) -> SweepSpec:
    """Read and parse a sweep spec file (``SpecError`` with the file name and line on bad input)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise SpecError(f"{path}: cannot read the spec ({error.strerror or error})") from None
    return parse_spec(text, str(path))


def expand(spec: SweepSpec) -> tuple[Experiment, list[Run]]:
    """The experiment and every run of the grid, each config built and validated (nothing is run).

    Duplicate points (equal canonical configs) appear once. Raises ``SpecError`` for an unknown
    experiment or a setting that does not fit the config (unknown key, mistyped value).
    """
    try:
        experiment = get(spec.experiment)
    except KeyError as error:
        raise SpecError(str(error.args[0])) from None
    try:
        experiment.make_config(spec.base)
    except ConfigError as error:
        raise SpecError(f"[base]: {error}") from None
    keys = list(spec.grid)
    runs: dict[str, Run] = {}
    for values in itertools.product(*(spec.grid[k] for k in keys)):
        try:
            config = experiment.make_config({**spec.base, **dict(zip(keys, values, strict=True))})
        except ConfigError as error:
            raise SpecError(f"[grid]: {error}") from None
        rid = run_id(experiment.name, config)
        runs.setdefault(rid, Run(rid, config))
    return experiment, list(runs.values())


# -- what a worker does --------------------------------------------------------------------------
def _single_threaded(config: Any) -> Any:
    if any(f.name == "n_threads" for f in dataclasses.fields(config)):
        return dataclasses.replace(config, n_threads=1)
    return config


def compute_chunk(experiment: Experiment, runs: Sequence[Run], limit_blas: bool = True) -> dict[str, Any]:
    """Run ``runs`` of ``experiment`` one after another with one OpenMP thread; the task of a sweep.

    Returns ``{"payloads": [...], "error": None | str}``: the payloads of the runs that finished,
    and the first failure (the runs after it are not attempted), so finished work is never lost.

    OpenMP's thread count is a per-thread setting (``omp_set_num_threads`` sets the calling
    thread's ICV), so limiting it here is safe in any executor. BLAS limits are process-wide:
    ``limit_blas`` is for executors whose workers are processes; a thread pool passes False.
    """
    from threadpoolctl import threadpool_limits

    limiter = threadpool_limits(limits=1, user_api=None if limit_blas else "openmp")
    payloads: list[dict[str, Any]] = []
    error = None
    with limiter:
        for run in runs:
            try:
                result = experiment.run(_single_threaded(run.config), None)
            except Exception as exc:  # reported to the client with the run that raised
                settings = config_dict(run.config, canonical=True)
                error = f"run {run.id} ({settings}) failed: {type(exc).__name__}: {exc}"
                break
            payloads.append(
                {
                    "id": run.id,
                    "experiment": experiment.name,
                    "config": config_dict(run.config, canonical=True),
                    "result": json_ready(
                        {"metrics": result.metrics, "checks": result.checks, "notes": list(result.notes)}
                    ),
                }
            )
    return {"payloads": payloads, "error": error}


# -- executors -----------------------------------------------------------------------------------
@contextlib.contextmanager
def local_executor(workers: int = 1, kind: str = "processes") -> Iterator[concurrent.futures.Executor]:
    """Local executor of ``workers`` workers: ``"processes"`` (spawned: safe with OpenMP) or ``"threads"``."""
    if kind == "processes":
        pool: concurrent.futures.Executor = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers,
            # spawn, not fork: a forked child of a process that already ran OpenMP can hang in libgomp
            mp_context=multiprocessing.get_context("spawn"),
        )
    elif kind == "threads":
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="trajcore-sweep")
    else:
        raise ValueError(f"kind: expected 'processes' or 'threads', got {kind!r}")
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _check_scheduler_address(address: str) -> None:
    """``ValueError`` naming ``scheduler`` unless ``address`` reads as ``scheme://host:port``
    (checked before any Client exists: a Client that fails in its constructor leaves a loop behind)."""
    from distributed.comm.addressing import get_address_host_port, parse_address
    from distributed.comm.registry import get_backend

    try:
        scheme, _ = parse_address(address)
        get_backend(scheme)
        get_address_host_port(address)
    except ValueError as error:
        raise ValueError(f"scheduler: expected tcp://host:port, got {address!r} ({error})") from None


@contextlib.contextmanager
def dask_executor(
    scheduler: str | None = None, workers: int = 1, timeout: float = 10.0
) -> Iterator[concurrent.futures.Executor]:
    """A ``concurrent.futures`` executor on Dask distributed.

    ``scheduler`` (``tcp://host:port``) connects to a running cluster, failing with ``SweepError``
    after ``timeout`` seconds if it is unreachable (``ValueError`` if malformed); without it a
    local cluster of ``workers`` single-threaded worker processes is started (and stopped at the end).
    """
    try:
        import distributed
    except ImportError:
        raise SweepError("the Dask executor needs the dask extra: pip install 'trajcore[dask]'") from None
    if scheduler is not None:
        _check_scheduler_address(scheduler)
    cluster = None
    try:
        if scheduler is None:
            cluster = distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            )
            client = distributed.Client(cluster, timeout=timeout)
        else:
            client = distributed.Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError) as error:
        if cluster is not None:
            cluster.close()
        # Collect the half-built Client now: collected later, its __del__ can deadlock inside the
        # construction of the next Client in this process (distributed 2026.8).
        gc.collect()
        raise SweepError(f"cannot reach the Dask scheduler {scheduler} within {timeout:g} s ({error})") from None
    try:
        yield client.get_executor()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# -- the sweep -----------------------------------------------------------------------------------
def _chunks(runs: Sequence[Run], size: int) -> list[list[Run]]:
    return [list(runs[i : i + size]) for i in range(0, len(runs), size)]


def default_chunk_size(pending: int, workers: int) -> int:
    """About 8 tasks per worker (balance and fine-grained resume), at most 64 runs a task."""
    return max(1, min(64, math.ceil(pending / max(1, 8 * workers))))


def run_sweep(
    spec: SweepSpec,
    out: PathLike,
    *,
    executor: concurrent.futures.Executor | None = None,
    workers: int = 1,
    chunk_size: int | None = None,
    limit_blas: bool = True,
    progress: bool = False,
) -> SweepOutcome:
    """Run every run of ``spec`` not yet stored in ``out``, and rebuild the summary.

    Parameters
    ----------
    spec : SweepSpec
        Validated completely (every config built) before anything is written.
    out : path
        The store directory (created if needed).
    executor : concurrent.futures.Executor, optional
        Where tasks run (e.g. from :func:`local_executor` or :func:`dask_executor`); ``None`` runs
        them in this process, one after another.
    workers : int
        Used for the default chunk size.
    chunk_size : int, optional
        Runs per task (default: the spec's, else :func:`default_chunk_size`).
    limit_blas : bool
        Limit BLAS to one thread inside each task (process-wide: False for a thread pool).
    progress : bool
        Show a tqdm bar over runs.

    Raises
    ------
    SpecError
        Bad spec (nothing written).
    SweepError
        A run raised; runs finished so far are stored and a rerun continues from there.
    """
    started = time.perf_counter()
    experiment, runs = expand(spec)
    store = RunStore(out)
    store.create({**spec.to_dict(), "runs": len(runs)})
    scan = store.scan()
    store.discard(scan)
    pending = [run for run in runs if run.id not in scan.complete]
    corrupt = sum(1 for run in runs if run.id in scan.corrupt)
    size = chunk_size or spec.chunk_size or default_chunk_size(len(pending), workers)
    bar = None
    if progress and pending:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(runs), initial=len(runs) - len(pending), unit="run", desc=experiment.name)
    failure = None
    futures: list[concurrent.futures.Future[dict[str, Any]]] = []
    writes: list[concurrent.futures.Future[Path]] = []
    # An fsync costs milliseconds per file on common disks (7 ms for file + directory here), more
    # than a small run computes; concurrent writers let the file system commit many files per
    # journal flush (0.3 ms per run file with 8 writers), so the client keeps up with the workers.
    with concurrent.futures.ThreadPoolExecutor(_WRITERS, thread_name_prefix="trajcore-store") as writer:
        try:
            tasks = _chunks(pending, size)
            if executor is None:
                outcomes: Iterator[dict[str, Any]] = (compute_chunk(experiment, task, limit_blas) for task in tasks)
            else:
                futures = [executor.submit(compute_chunk, experiment, task, limit_blas) for task in tasks]
                outcomes = (future.result() for future in concurrent.futures.as_completed(futures))
            for outcome in outcomes:
                for payload in outcome["payloads"]:
                    writes.append(writer.submit(store.write_run, payload))
                    if bar is not None:
                        bar.update(1)
                if outcome["error"] is not None:
                    failure = outcome["error"]
                    break
        except Exception as error:
            raise SweepError(f"the executor failed: {type(error).__name__}: {error}") from error
        finally:
            if bar is not None:
                bar.close()
            for future in futures:  # after a failure: do not start what is still queued
                future.cancel()
    # leaving the writer pool waited for every write, also after a failure: finished work is kept
    write_errors = [w.exception() for w in writes if w.exception() is not None]
    computed = len(writes) - len(write_errors)
    if write_errors:
        raise SweepError(f"cannot write to the store {store.root}: {write_errors[0]}")
    final = store.scan()
    rows = store.rebuild_summary(final)
    if failure is not None:
        raise SweepError(f"{failure}; {computed} run(s) stored, rerun the sweep to continue")
    return SweepOutcome(
        store=store.root,
        total=len(runs),
        skipped=len(runs) - len(pending),
        corrupt=corrupt,
        computed=computed,
        seconds=time.perf_counter() - started,
        rows=rows,
    )


def store_scan(out: PathLike) -> StoreScan:
    """What the store at ``out`` holds (complete, corrupt, leftover temporaries), without changing it."""
    return RunStore(out).scan()
