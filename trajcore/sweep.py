"""Sweeps: a TOML spec expands to a grid of runs, executed on any ``concurrent.futures`` executor
into a resumable :class:`~trajcore.store.RunStore`.

{spec_format}
Each run's id is the hash of its canonical config (:func:`trajcore.experiments.settings.run_id`), so
rerunning a spec skips what is already stored, recomputes corrupt files, and a grid that grows only
computes the new points. Workers compute, the client writes: run files are written by the process
that owns the store, so a cluster needs no shared file system.

Executors: ``local`` (worker processes, the default), ``threads`` (the kernels release the GIL),
``dask`` (a ``distributed`` cluster at ``--scheduler``, or a local one). Every task limits OpenMP to
one thread and runs configs that have ``n_threads`` with ``n_threads=1``; BLAS is limited to one
thread per worker process, and for a thread pool (whose tasks share one process) for the whole
sweep: the parallelism is across runs, and the stored results are byte-identical whatever the
executor or the number of workers. Local worker processes die with the sweep, also when it is
killed with SIGKILL (Linux: ``PR_SET_PDEATHSIG``; elsewhere a watchdog on the parent process id).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import gc
import itertools
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._json import canonical_json, dumps, json_ready
from ._storage import atomic_write_text
from .experiments import Experiment, get
from .experiments.settings import ConfigError, config_dict, run_id
from .store import PathLike, RunStore, StoreError, StoreScan

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
    "SPEC_FORMAT",
    "check_store",
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

SPEC_FORMAT = """\
The spec (TOML)::

    experiment = "smf_reference"   # required: the experiment (see trajcore list)
    chunk_size = 4                 # optional: runs per task (default: automatic)

    [base]                         # settings shared by every run, as with run --set
    steps = 400

    [grid]                         # one run per combination of these value lists
    alpha = [1e-4, 1e-6]
    seed = { range = [0, 4] }      # the list [0, 1, 2, 3]

Top-level keys: experiment (required), chunk_size, [base], [grid]; nothing else. [base] holds
key = value settings of the experiment's config (trajcore list -v shows the keys and their types);
keys not given keep their defaults. [grid] holds key = [values]: the sweep runs every combination
of the lists. A key is in [base] or in [grid], not both. Wherever a list is expected,
{ range = [start, stop] } or { range = [start, stop, step] } (integers, stop excluded, as Python's
range) stands for that list of integers. A list setting (sigma, seeds) is a list in [base] and a
list of lists in [grid]; a single value for it is a one-element list. Where a config has a list
seeds (init_seeds) and no seed (init_seed), seed = N means seeds = [N]. So in [grid],
seed = { range = [0, 4] } (or seeds = { range = [0, 4] }) is four runs of one seed each, while in
[base], seeds = { range = [0, 4] } runs every point on the four seeds together. Floats must be
finite; lists must not be empty; a spec has at most 1,000,000 runs.

Bad points: before anything is computed, every config of the grid is built and validated; if any
point does not fit the experiment (unknown key, wrong type, non-finite number, a combination the
config rejects), the sweep names the bad points, exits with status 2 and computes nothing. A run
that fails while computing (the experiment raises) does not stop the others: every other run is
computed and stored, the failures are listed in failures.json in the store, and the sweep exits
with status 1; a rerun retries only the runs not stored. Failed checks of a run are results (in
summary.csv), not failures.

One sweep per store: a spec whose experiment or [base] differ from the stored sweep's, or whose
grid does not hold every stored point, is refused (use another --out, or delete the store to start
over); a grid that grows computes only the new points. A store is locked while a sweep writes to
it (sweep.lock: the owner's process id and host); a second sweep on it refuses to start. A lock
left by a killed sweep on this host is taken over; one from another host must be deleted by hand
once that sweep is gone.
"""

if __doc__ is not None:  # python -OO drops docstrings
    __doc__ = __doc__.replace("{spec_format}", SPEC_FORMAT)

#: how many failed points a message names (the rest are counted)
_NAMED_FAILURES = 5

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
#: the most runs one spec may expand to (a typo such as range = [0, 10**9] is refused, not expanded)
MAX_RUNS = 1_000_000


def _range_values(where: str, value: dict[str, Any]) -> list[int]:
    """The integers of ``{ range = [start, stop(, step)] }``."""
    bounds = value.get("range")
    if set(value) != {"range"} or not isinstance(bounds, list) or not 2 <= len(bounds) <= 3:
        raise SpecError(f"{where}: expected a list or {{ range = [start, stop] }} / [start, stop, step]")
    if not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds):
        raise SpecError(f"{where}: range bounds must be integers, got {bounds}")
    if len(bounds) == 3 and bounds[2] == 0:
        raise SpecError(f"{where}: range step must not be zero")
    span = range(*bounds)
    count = (max(0, span.stop - span.start) + span.step - 1) // span.step if span.step > 0 else None
    if count is None:
        count = (max(0, span.start - span.stop) - span.step - 1) // -span.step
    if count > MAX_RUNS:  # (len() of a range this long would overflow)
        raise SpecError(f"{where}: range of {count} values; at most {MAX_RUNS}")
    return list(span)


def _grid_values(key: str, value: Any) -> list[Any]:
    if isinstance(value, dict):
        values: list[Any] = _range_values(f"grid.{key}", value)
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
    if "experiment" not in data:
        raise SpecError(f'{source}: missing experiment = "<name>"')
    if not isinstance(experiment, str) or not experiment.strip():
        shown = repr(experiment) if len(repr(experiment)) <= 40 else repr(experiment)[:37] + "..."
        raise SpecError(
            f'{source}: experiment = {shown}: expected a string naming an experiment, e.g. experiment = "smf_reference"'
            " (see trajcore list)"
        )
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
    base = {k: _range_values(f"base.{k}", v) if isinstance(v, dict) else v for k, v in base.items()}
    values = {k: _grid_values(k, v) for k, v in grid.items()}
    size = math.prod(len(v) for v in values.values())
    if size > MAX_RUNS:
        raise SpecError(f"{source}: the grid has {size} points; at most {MAX_RUNS}")
    return SweepSpec(experiment, base, values, chunk_size)


def load_spec(path: PathLike) -> SweepSpec:
    """Read and parse a sweep spec file (``SpecError`` with the file name and line on bad input)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise SpecError(f"{path}: cannot read the spec ({error.strerror or error})") from None
    except UnicodeDecodeError as error:
        raise SpecError(f"{path}: not a UTF-8 text file ({error.reason} at byte {error.start})") from None
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
    # [base] alone may break a rule that every grid point satisfies ([base] rank = 2 with a grid of
    # two-value sigmas): its error is the message only when every point fails
    try:
        experiment.make_config(spec.base)
        base_error = None
    except ConfigError as error:
        base_error = error
    keys = list(spec.grid)
    runs: dict[str, Run] = {}
    bad: list[str] = []
    points = 0
    for values in itertools.product(*(spec.grid[k] for k in keys)):
        points += 1
        point = dict(zip(keys, values, strict=True))
        try:
            config = experiment.make_config({**spec.base, **point})
        except ConfigError as error:
            bad.append(f"{_point_text(point)} ({error})")
            continue
        rid = run_id(experiment.name, config)
        runs.setdefault(rid, Run(rid, config))
    if bad and base_error is not None and len(bad) == points:
        raise SpecError(f"[base]: {base_error}")
    if bad:
        named = "; ".join(bad[:_NAMED_FAILURES]) + (
            f"; and {len(bad) - _NAMED_FAILURES} more" if len(bad) > _NAMED_FAILURES else ""
        )
        raise SpecError(
            f"[grid]: {len(bad)} of {points} point(s) do not fit {experiment.name}, nothing computed: {named}"
        )
    return experiment, list(runs.values())


def _point_text(point: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in point.items()) or "the base config"


# -- what a worker does --------------------------------------------------------------------------
def _single_threaded(config: Any) -> Any:
    if any(f.name == "n_threads" for f in dataclasses.fields(config)):
        return dataclasses.replace(config, n_threads=1)
    return config


def compute_chunk(experiment: Experiment, runs: Sequence[Run], limit_blas: bool = True) -> dict[str, Any]:
    """Run ``runs`` of ``experiment`` one after another with one OpenMP thread; the task of a sweep.

    Returns ``{"payloads": [...], "failures": [...]}``: the payloads of the runs that finished, and
    one ``{"id", "config", "error"}`` per run that raised (the runs after it are still attempted,
    so one bad point never blocks the others).

    OpenMP's thread count is a per-thread setting (``omp_set_num_threads`` sets the calling
    thread's ICV), so limiting it here is safe in any executor. BLAS limits are process-wide:
    ``limit_blas`` is for executors whose workers are processes; for a thread pool,
    :func:`run_sweep` limits BLAS once for the whole sweep and the tasks pass False.
    """
    from threadpoolctl import threadpool_limits

    limiter = threadpool_limits(limits=1, user_api=None if limit_blas else "openmp")
    payloads: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    with limiter:
        for run in runs:
            settings = config_dict(run.config, canonical=True)
            try:
                result = experiment.run(_single_threaded(run.config), None)
            except Exception as exc:  # reported to the client with the run that raised
                error = f"{type(exc).__name__}: {exc}"
                failures.append({"id": run.id, "config": settings, "error": error})
                continue
            payloads.append(
                {
                    "id": run.id,
                    "experiment": experiment.name,
                    "config": settings,
                    "result": json_ready(
                        {"metrics": result.metrics, "checks": result.checks, "notes": list(result.notes)}
                    ),
                }
            )
    return {"payloads": payloads, "failures": failures}


# -- worker processes that die with their parent -----------------------------------------------
#: seconds between two looks of a worker's watchdog at its parent
_WATCHDOG_SECONDS = 0.5


def _die_with_parent(parent: int) -> None:
    """Worker initializer: end this process when ``parent`` (the sweep) ends, also on SIGKILL.

    On Linux the kernel sends SIGKILL when the parent exits (``PR_SET_PDEATHSIG``); everywhere, a
    daemon thread checks the parent process id twice a second (an orphan is re-parented, so its
    parent id changes). The check right after ``prctl`` covers a parent that died before it.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(_WATCHDOG_SECONDS)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="trajcore-parent-watchdog", daemon=True).start()


# -- executors -----------------------------------------------------------------------------------
@contextlib.contextmanager
def local_executor(workers: int = 1, kind: str = "processes") -> Iterator[concurrent.futures.Executor]:
    """Local executor of ``workers`` workers: ``"processes"`` (spawned: safe with OpenMP; they die
    with this process, see :func:`_die_with_parent`) or ``"threads"`` (pass ``limit_blas=False`` to
    :func:`run_sweep`)."""
    if kind == "processes":
        pool: concurrent.futures.Executor = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers,
            # spawn, not fork: a forked child of a process that already ran OpenMP can hang in libgomp
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_die_with_parent,
            initargs=(os.getpid(),),
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


def check_store(spec: SweepSpec, runs: Sequence[Run], out: PathLike) -> None:
    """``StoreError`` unless the store at ``out`` may take the runs of ``spec`` (checked before any work).

    A store holds one sweep: it is refused when it is not a directory, holds another experiment,
    or holds a sweep with runs ``spec`` does not have (another ``[base]``, other grid keys or
    values); a spec whose runs include every stored run (a grown grid) may continue it.
    """
    store = RunStore(out)
    store.check_usable_for(spec.experiment)
    if not store.is_store():
        return
    previous = store.read_spec()
    try:
        base, grid = previous.get("base") or {}, previous.get("grid") or {}
        if not isinstance(base, dict) or not isinstance(grid, dict):
            raise TypeError
        stored = SweepSpec(spec.experiment, dict(base), {k: list(v) for k, v in grid.items()})
        _, stored_runs = expand(stored)
    except (SpecError, TypeError, ValueError):
        raise StoreError(
            f"{store.root}: its sweep.json describes a sweep this version cannot expand; use another --out"
        ) from None
    if {r.id for r in stored_runs} <= {r.id for r in runs}:
        return
    raise StoreError(
        f"{store.root}: holds another sweep of {spec.experiment} ({_spec_differences(stored, spec)}); "
        f"a store holds one sweep, whose grid may only grow: use another --out, or delete {store.root} to start over"
    )


def _spec_differences(stored: SweepSpec, spec: SweepSpec) -> str:
    """What differs between the stored spec and ``spec``, briefly (for the refusal message)."""
    differences = []
    for key in sorted(set(stored.base) | set(spec.base)):
        there, here = stored.base.get(key, "default"), spec.base.get(key, "default")
        if canonical_json(there) != canonical_json(here):
            differences.append(f"[base] {key}: {there!r} stored, {here!r} here")
    if set(stored.grid) != set(spec.grid):
        differences.append(
            f"[grid] keys: {', '.join(stored.grid) or 'none'} stored, {', '.join(spec.grid) or 'none'} here"
        )
    else:
        for key in stored.grid:
            gone = [v for v in stored.grid[key] if json_ready(v) not in json_ready(spec.grid[key])]
            if gone:
                differences.append(f"[grid] {key}: stored values {', '.join(map(repr, gone[:5]))} missing here")
    return "; ".join(differences[:3]) or "other runs"


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
        The store directory (created if needed); locked for the duration (see :mod:`trajcore.store`).
    executor : concurrent.futures.Executor, optional
        Where tasks run (e.g. from :func:`local_executor` or :func:`dask_executor`); ``None`` runs
        them in this process, one after another.
    workers : int
        Used for the default chunk size.
    chunk_size : int, optional
        Runs per task (default: the spec's, else :func:`default_chunk_size`).
    limit_blas : bool
        True: each task limits BLAS to one thread (for workers that are processes). False: the
        tasks share this process (a thread pool), so BLAS is limited to one thread here, once, for
        the whole sweep (per-task limits would race: BLAS's thread count is process-wide).
    progress : bool
        Show a tqdm bar over runs.

    Raises
    ------
    SpecError
        Bad spec or a grid point that does not fit the experiment (nothing written).
    StoreError
        The store holds another sweep, or another sweep is writing to it (nothing written).
    SweepError
        Runs raised (every other run is computed and stored; the failures are listed in
        ``failures.json``; a rerun retries the runs not stored), or the executor broke.
    """
    started = time.perf_counter()
    experiment, runs = expand(spec)
    store = RunStore(out)
    store.check_usable_for(spec.experiment)  # before the lock creates the directory
    from threadpoolctl import threadpool_limits

    shared_blas = contextlib.nullcontext() if limit_blas else threadpool_limits(limits=1, user_api="blas")
    with store.lock(), shared_blas:
        check_store(spec, runs, out)
        store.create({**spec.to_dict(), "runs": len(runs)})
        scan = store.scan()
        store.discard(scan)
        pending = [run for run in runs if run.id not in scan.complete]
        corrupt = sum(1 for run in runs if run.id in scan.corrupt)
        size = chunk_size or spec.chunk_size or default_chunk_size(len(pending), workers)
        failures, computed = _compute(experiment, store, pending, size, len(runs), executor, limit_blas, progress)
        final = store.scan()
        rows = store.rebuild_summary(final)
        failures_path = store.root / "failures.json"
        if failures:
            atomic_write_text(failures_path, dumps(failures, indent=2, sort_keys=True) + "\n")
        else:
            with contextlib.suppress(FileNotFoundError):
                failures_path.unlink()
    if failures:
        named = "; ".join(f"run {f['id']} ({f['config']}) failed: {f['error']}" for f in failures[:_NAMED_FAILURES])
        raise SweepError(
            f"{len(failures)} of {len(runs)} run(s) failed: {named}; {computed} run(s) computed and stored, "
            f"the failures are listed in {failures_path}; a rerun retries only the runs not stored"
        )
    return SweepOutcome(
        store=store.root,
        total=len(runs),
        skipped=len(runs) - len(pending),
        corrupt=corrupt,
        computed=computed,
        seconds=time.perf_counter() - started,
        rows=rows,
    )


def _compute(
    experiment: Experiment,
    store: RunStore,
    pending: list[Run],
    size: int,
    total: int,
    executor: concurrent.futures.Executor | None,
    limit_blas: bool,
    progress: bool,
) -> tuple[list[dict[str, Any]], int]:
    """Compute ``pending`` in tasks of ``size`` runs and store every payload: (failures, runs stored)."""
    bar = None
    if progress and pending:
        from tqdm.auto import tqdm

        # leave=False: erased when done, so the terminal then shows only the result lines
        bar = tqdm(total=total, initial=total - len(pending), unit="run", desc=experiment.name, leave=False)
    failures: list[dict[str, Any]] = []
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
                failures.extend(outcome["failures"])
                if bar is not None:
                    bar.update(len(outcome["payloads"]) + len(outcome["failures"]))
        except Exception as error:
            raise SweepError(f"the executor failed: {type(error).__name__}: {error}") from error
        finally:
            if bar is not None:
                bar.close()
            for future in futures:  # after a broken executor: do not start what is still queued
                future.cancel()
    # leaving the writer pool waited for every write, also after a failure: finished work is kept
    write_errors = [w.exception() for w in writes if w.exception() is not None]
    if write_errors:
        raise SweepError(f"cannot write to the store {store.root}: {write_errors[0]}")
    return failures, len(writes)


def store_scan(out: PathLike) -> StoreScan:
    """What the store at ``out`` holds (complete, corrupt, leftover temporaries), without changing it."""
    return RunStore(out).scan()
