"""``run``: one entry point for every problem; a batch is a leading axis."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import config
from ._memory import check_allocation
from ._validation import as_float_array, as_nonnegative_int, as_positive_float, as_positive_int
from .noise import NoiseArgument, as_noise_terms, noise_to_dict
from .problem import Problem
from .trajectory import Trajectory

__all__ = ["Record", "run", "record_steps", "spaced_steps"]

StepSize = float | np.ndarray | Callable[[np.ndarray], Any]

#: a chunk of steps handed to C++ at a time aims at this many seconds (Ctrl-C and progress in between)
_CHUNK_SECONDS = 0.1
#: ... and grows by at most this factor from one chunk to the next (the first chunk is a probe step,
#: whose time includes the call's fixed cost of several microseconds, so its rate is an underestimate)
_CHUNK_GROWTH = 1024
#: a run of at most this many multiply-adds in bounded products (steps x trajectories x the problem's
#: largest product) is one call: milliseconds at most, where a first one-step chunk would cost more
#: than it tells
_ONE_CALL_WORK = 2e7


@dataclass(frozen=True)
class Record:
    """What ``run`` keeps and how often.

    every : int
        Record at steps 0, every, 2 every, ... and always at the last step.
    count, spacing : int or None, {"linear", "log"}
        Instead of ``every``: ``count`` record steps in ``[0, steps]``, both ends included, spaced
        linearly or logarithmically (fewer when ``steps`` is small; :func:`spaced_steps`). Log spacing
        keeps a long run's early, fast phase and its late plateau alike. The MLP's training loop
        (``trajcore.network.Training.checkpoints``/``spacing``) records on the same schedule.
    coefficients : True | "signal" | "diagonal" | "all" | None | (K, 2) int array
        Basis coefficients projected inside the loop (no iterates stored): ``True`` and
        ``"signal"`` mean the signal block (i, j < rank), ``"diagonal"`` every beta_ii, ``"all"``
        every pair, an array the listed (i, j) pairs, ``None``/``False`` none.
    iterates : bool
        Also keep the parameters at each record (memory: R x parameters per trajectory).
    """

    every: int = 1
    coefficients: Any = True
    iterates: bool = False
    count: int | None = None
    spacing: str = "linear"

    def __post_init__(self) -> None:
        as_positive_int("every", self.every)
        if not isinstance(self.iterates, (bool, np.bool_)):
            raise TypeError(f"iterates: expected a bool, got {type(self.iterates).__name__}")
        if self.count is not None:
            as_positive_int("count", self.count)
            if self.every != 1:
                raise ValueError("record: give every= or count=, not both")
        if self.spacing not in SPACINGS:
            raise ValueError(f"spacing: expected one of {SPACINGS}, got {self.spacing!r}")
        if self.spacing != "linear" and self.count is None:
            raise ValueError("spacing: applies to count= records; every= records are evenly spaced")

    def steps_for(self, steps: int) -> np.ndarray:
        """``(R,)`` int64: the steps at which a run of ``steps`` iterations records."""
        if self.count is None:
            return record_steps(steps, self.every)
        return spaced_steps(steps, self.count, self.spacing)

    def to_dict(self) -> dict[str, Any]:
        coef = self.coefficients
        if isinstance(coef, np.ndarray):
            coef = coef.tolist()
        out = {"every": self.every, "coefficients": coef, "iterates": bool(self.iterates)}
        if self.count is not None:
            out.update(count=self.count, spacing=self.spacing)
        return out


#: how ``count`` record steps are spaced
SPACINGS = ("linear", "log")


def spaced_steps(steps: int, count: int, spacing: str = "linear") -> np.ndarray:
    """``count`` distinct record steps in ``[0, steps]`` including both ends, ``linear`` or ``log`` spaced.

    Returns (T,) int64 (fewer than ``count`` when ``steps`` is small).
    """
    steps = as_nonnegative_int("steps", steps)
    count = as_positive_int("count", count)
    if spacing == "linear":
        grid = np.linspace(0, steps, count)
    elif spacing == "log":
        grid = np.concatenate([[0.0], np.geomspace(1, max(steps, 1), max(count - 1, 1))]) if steps else np.zeros(1)
    else:
        raise ValueError(f"spacing: expected one of {SPACINGS}, got {spacing!r}")
    return np.unique(np.round(grid).astype(np.int64))


def record_steps(steps: int, every: int) -> np.ndarray:
    """Steps at which a run of ``steps`` iterations records: 0, every, ..., and ``steps``."""
    out = np.arange(0, steps + 1, every, dtype=np.int64)
    if out[-1] != steps:
        out = np.append(out, np.int64(steps))
    return out


def _record_count(steps: int, every: int) -> int:
    """Length of ``record_steps(steps, every)``, without building it."""
    return steps // every + 1 + (steps % every != 0)


def _check_run_memory(B: int, R: int, K: int, n: int, steps: int, *, iterates: bool, momentum: bool) -> None:
    """Refuse a run whose arrays exceed the memory limit, before allocating any of them.

    Float64/int64 arrays of a run: loss (B, R), coefficients (B, R, K), iterates (B, R, n) when
    recorded, the state x (B, n) and velocity (B, n) with momentum, step sizes and record steps.
    """
    words = B * R + B * R * K + (B * R * n if iterates else 0) + B * n * (2 if momentum else 1) + steps + R

    def description() -> str:
        shapes = f"B={B} trajectories x R={R} records x (1 loss + K={K} coefficients"
        shapes += f" + n={n} iterate values)" if iterates else ")"
        return f"run: record arrays ({shapes})"

    check_allocation(description, 8 * words)


def _step_sizes(lr: StepSize, steps: int) -> tuple[np.ndarray, float | list[float]]:
    """The ``(steps,)`` step sizes and how metadata records them: one float when constant."""
    if callable(lr):
        values = as_float_array("lr", lr(np.arange(steps)), shape=(steps,))
    elif np.ndim(lr) == 0:
        value = as_positive_float("lr", lr)
        return _filled(steps, value), value
    else:
        values = as_float_array("lr", lr, shape=(steps,))
    if (values <= 0).any():
        raise ValueError("lr: every step size must be > 0")
    values = np.ascontiguousarray(values)
    return values, float(values[0]) if (values == values[0]).all() else values.tolist()


def _filled(shape: int | tuple[int, ...], value: float, dtype: type = np.float64) -> np.ndarray:
    """``np.full`` without its Python-level dispatch (a few microseconds per run)."""
    out: np.ndarray = np.empty(shape, dtype)
    out.fill(value)
    return out


def _advance(
    kernel: Any, arrays: dict[str, Any], steps: int, threads: int, progress: bool, first_chunk: int = 1
) -> None:
    """Advance the run's ``arrays`` (the ``run_chunk`` buffers and settings) through ``steps`` steps,
    in chunks of about ``_CHUNK_SECONDS`` so that Ctrl-C and the progress bar act between them; the
    first chunk (``first_chunk`` steps) measures the rate."""
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, unit="step", leave=False)
    t, chunk = 0, first_chunk
    while True:
        t_end = min(steps, t + chunk)
        started = time.perf_counter()
        kernel.run_chunk(t0=t, t1=t_end, total_steps=steps, n_threads=threads, **arrays)
        elapsed = time.perf_counter() - started
        if bar is not None:
            bar.update(t_end - t)
        done = t_end - t
        t = t_end
        if t >= steps:
            break
        # Grow or shrink the chunk so each call lasts about _CHUNK_SECONDS. The first step is the
        # slowest (cold caches), so the rate it gives is safe to grow by a large factor.
        rate = done / max(elapsed, 1e-6)
        chunk = int(min(max(1, rate * _CHUNK_SECONDS), _CHUNK_GROWTH * max(chunk, 1), steps - t))
    if bar is not None:
        bar.close()


def run(
    problem: Problem,
    init: Any,
    *,
    lr: StepSize,
    steps: int,
    noise: NoiseArgument = None,
    record: Record | None = None,
    seed: int = 0,
    n_threads: int | None = None,
    momentum: float = 0.0,
    trajectory_offset: int = 0,
    divergence_factor: float = 1e8,
    progress: bool = False,
    coordinates: str = "given",
) -> Trajectory:
    """Run gradient descent on ``problem`` from ``init`` and record the trajectory.

    Parameters
    ----------
    problem : Problem
        E.g. :class:`SymmetricMatrixFactorization`.
    init : (*P) or (B, *P) float64
        Initial parameters of one trajectory (e.g. ``U (d, r')``) or of a batch of B.
    lr : float, (steps,) array, or callable ``t (steps,) -> (steps,)``
        Step size, constant or a schedule evaluated once before the run.
    steps : int >= 0
        Number of updates.
    noise : NoiseSpec or list of them, optional
        See :mod:`trajcore.noise`.
    record : Record, optional
        What to keep (default: loss and signal coefficients at every step).
    seed : int
        Key of all noise streams: with the same seed the result is bitwise identical for any
        ``n_threads`` and any batch split (pass ``trajectory_offset`` to run part of a batch).
    n_threads : int, optional
        OpenMP threads across trajectories; ``None`` follows ``OMP_NUM_THREADS`` / the CPU count.
    momentum : float in [0, 1)
        Heavy-ball momentum (0 is plain GD).
    trajectory_offset : int
        Global index of the first trajectory of this batch, for the noise streams.
    divergence_factor : float
        A trajectory diverges when its loss is non-finite or exceeds
        ``divergence_factor * max(initial loss, loss of the zero model)``; it then stops, its records
        after that step are NaN and ``diverged_at`` gives the step.
    progress : bool
        Show a progress bar (tqdm).
    coordinates : {"given", "eigenbasis"}
        Where the steps are computed. ``"given"``: on the parameters as passed. ``"eigenbasis"``
        (problems listing it in ``problem.coordinates``; noise-free runs): on ``Q^T x`` for the
        problem's basis ``Q``, where the target is diagonal -- ``O^T U`` for
        :class:`SymmetricMatrixFactorization`, ``[A_full^T X; B_full^T Y]`` for
        :class:`AsymmetricMatrixFactorization`. A step then costs O(d r'^2) instead of O(d^2 r')
        (dense target) or O(d r r' + d r'^2) (factored). Gradient descent commutes with the
        rotation, so the trajectory is the same up to rounding (about 1e-15 relative per step) and
        the result comes back in the given coordinates; it is bitwise reproducible like any run,
        but not bitwise equal to the ``"given"`` run, and a run continued from its ``final`` rotates
        it again. Needs Q (d x d) in memory.

    Returns
    -------
    Trajectory
        Batched (leading axis B) when ``init`` has the batch axis.
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem: expected a trajcore problem, got {type(problem).__name__}")
    steps = as_nonnegative_int("steps", steps)
    record = Record() if record is None else record
    if not isinstance(record, Record):
        raise TypeError(f"record: expected trajcore.Record, got {type(record).__name__}")
    seed = as_nonnegative_int("seed", seed)
    trajectory_offset = as_nonnegative_int("trajectory_offset", trajectory_offset)
    momentum = as_positive_float("momentum", momentum, allow_zero=True)
    if momentum >= 1:
        raise ValueError(f"momentum: expected a value in [0, 1), got {momentum}")
    divergence_factor = as_positive_float("divergence_factor", divergence_factor)
    threads = config.resolve_threads(n_threads)
    terms = as_noise_terms(noise, problem.model_noise)

    if not isinstance(coordinates, str) or coordinates not in problem.coordinates:
        raise ValueError(f"coordinates: expected one of {problem.coordinates} for {problem.name}, got {coordinates!r}")
    if coordinates != "given" and terms:
        raise ValueError(
            f"coordinates: {coordinates!r} runs are noise-free (noise is drawn in the given coordinates); "
            "use coordinates='given' with noise"
        )

    x0, batched = problem.validate_params("init", init)
    B = x0.shape[0]
    param_shape = x0.shape[1:]
    compiled = problem.compiled(problem._width_of(x0), record.coefficients, coordinates)
    kernel = compiled.kernel

    n = math.prod(param_shape)
    # (count= schedules are at most count long: built first; every= ones are counted without building)
    rec_steps = None if record.count is None else record.steps_for(steps)
    R = _record_count(steps, record.every) if rec_steps is None else len(rec_steps)
    K = int(kernel.n_observables)
    _check_run_memory(B, R, K, n, steps, iterates=bool(record.iterates), momentum=momentum != 0)
    # With no steps, lr is neither evaluated nor checked (and recorded as 1).
    lr_buffer, lr_record = _step_sizes(lr, steps) if steps > 0 else (np.empty(0), 1.0)
    rec_steps = record.steps_for(steps) if rec_steps is None else rec_steps
    loss = _filled((B, R), np.nan)
    observations = _filled((B, R, K), np.nan)
    iterates = _filled((B, R, n), np.nan) if record.iterates else None
    velocity = np.zeros((B, n)) if momentum != 0 else None
    diverged_at = _filled(B, -1, np.int64)
    last_perturbation = _filled(B, -1, np.int64)
    # The core's products, the changes of basis too, run with BLAS on one thread (when they can
    # reach BLAS at all: limiting it costs more than a short run).
    largest = compiled.largest_product
    if largest is None or largest >= config.BLAS_THRESHOLD:
        blas_guard: contextlib.AbstractContextManager[Any] = config.blas_single_threaded()
    else:
        blas_guard = contextlib.nullcontext()
    with blas_guard:
        x = compiled.to_state(x0, threads)
        initial_loss = kernel.losses(x, threads)
        arrays = {
            "x": x,
            "velocity": velocity,
            "diverged_at": diverged_at,
            "last_perturbation": last_perturbation,
            "loss_limit": divergence_factor * np.maximum(initial_loss, compiled.zero_loss),
            "loss": loss,
            "observations": observations,
            "iterates": iterates,
            "lr": lr_buffer,
            "record_steps": rec_steps,
            "momentum": momentum,
            "noise": terms,
            "seed": seed,
            "trajectory_offset": trajectory_offset,
        }
        small = largest is not None and steps * B * largest <= _ONE_CALL_WORK
        _advance(kernel, arrays, steps, threads, progress, first_chunk=steps if small else 1)
        final = compiled.to_params(x, threads)
        iterates_out = None if iterates is None else compiled.to_params(iterates, threads).reshape(B, R, *param_shape)
    metadata = {
        "problem": problem.describe(),
        "lr": lr_record,
        "steps": steps,
        "seed": seed,
        "noise": noise_to_dict(noise),
        "record": record.to_dict(),
        "momentum": momentum,
        "trajectory_offset": trajectory_offset,
        "divergence_factor": divergence_factor,
        "coordinates": coordinates,
        "observables": list(compiled.labels),
        "batch": B if batched else None,
        "versions": {"trajcore": config.version(), "numpy": np.__version__},
    }
    if not batched:  # what Trajectory.__getitem__ would give, without the batch index
        loss, observations, final, diverged_at = loss[0], observations[0], final[0], diverged_at[0, ...]
        iterates_out = None if iterates_out is None else iterates_out[0]
    return Trajectory(
        steps=rec_steps,
        loss=loss,
        coefficients=observations,
        coefficient_pairs=compiled.pairs.copy(),
        iterates=iterates_out,
        final=final,
        diverged_at=diverged_at,
        metadata=metadata,
    )
