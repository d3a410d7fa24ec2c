"""Build and runtime configuration: what was compiled, how many threads, which BLAS."""

from __future__ import annotations

import functools
import os
import platform
import sys
from importlib import metadata
from typing import Any

import numpy as np

from . import _core
from ._validation import as_positive_int

__all__ = ["show_config", "config_info", "resolve_threads", "blas_single_threaded"]

# Products of at least this many multiply-adds go to BLAS dgemm; below it the register-blocked
# kernels of csrc/linalg.cpp are faster (measured in bench/compare.py: a 128 x 128 x 8 product runs
# at ~60 GFLOP/s in the core against ~48 in OpenBLAS).
BLAS_THRESHOLD = 1 << 21

#: the most threads a run may ask for (the core's run_chunk refuses more: libgomp cannot create them)
MAX_THREADS = 1024


def _register_blas() -> None:
    try:
        from scipy.linalg import cython_blas

        capsule = cython_blas.__pyx_capi__["dgemm"]
    except (ImportError, KeyError, AttributeError):  # pragma: no cover - scipy is a dependency
        return
    _core.register_blas_dgemm(capsule, BLAS_THRESHOLD)


_register_blas()


@functools.lru_cache(maxsize=1)
def _blas_libraries() -> tuple[Any, ...]:
    """threadpoolctl's controllers of the BLAS libraries loaded by now (NumPy's and SciPy's, which
    the core calls): finding them scans the process's libraries, so it happens once."""
    from threadpoolctl import ThreadpoolController

    return tuple(ThreadpoolController().select(user_api="blas").lib_controllers)


class _SingleThreadedBlas:
    """Sets every BLAS library that is not at one thread to one, and restores it on exit.

    Per use it costs a get (and, if needed, two sets) per library, where ``threadpoolctl``'s
    ``limit`` queries every library's full description. Only the libraries it changed are restored:
    nested uses, and runs in other threads that found BLAS already at one thread, leave it alone.
    """

    __slots__ = ("_changed",)

    def __init__(self) -> None:
        self._changed: list[tuple[Any, int]] = []

    def __enter__(self) -> _SingleThreadedBlas:
        try:
            for library in _blas_libraries():
                threads = library.get_num_threads()
                if threads is not None and threads != 1:
                    library.set_num_threads(1)
                    self._changed.append((library, threads))
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._restore()

    def _restore(self) -> None:
        releases: set[Any] = set()
        while self._changed:
            library, threads = self._changed.pop()
            library.set_num_threads(threads)
            releases.add(getattr(type(library), "clear_controlling_thread", None))
        # Recent threadpoolctl lets one thread at a time set OpenBLAS's process-wide pool; as its own
        # ``limit`` does on exit, the thread gives that up when done (a no-op for another thread's).
        for release in releases - {None}:
            release()


def blas_single_threaded() -> _SingleThreadedBlas:
    """Context manager limiting BLAS to one thread: the core parallelises across trajectories, and a
    BLAS call inside a trajectory must not depend on (or compete with) the thread count."""
    return _SingleThreadedBlas()


def resolve_threads(n_threads: int | None) -> int:
    """``None`` follows ``OMP_NUM_THREADS`` and then the CPU count; else a positive integer."""
    if n_threads is None:
        return min(int(_core.build_info()["max_threads"]), MAX_THREADS)
    threads = as_positive_int("n_threads", n_threads)
    if threads > MAX_THREADS:
        raise ValueError(f"n_threads: expected at most {MAX_THREADS} threads, got {threads}")
    return threads


@functools.lru_cache(maxsize=1)
def version() -> str:
    try:
        return metadata.version("trajcore")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "0.1.0+source"


def config_info() -> dict[str, Any]:
    """Version, compiler, OpenMP, threads, kernel instruction set and BLAS, as a dict."""
    info = dict(_core.build_info())
    blas = []
    try:
        from threadpoolctl import threadpool_info

        blas = [
            f"{d.get('internal_api')} {d.get('version')} ({d.get('architecture')}, {d.get('num_threads')} threads)"
            for d in threadpool_info()
            if d.get("user_api") == "blas"
        ]
    except ImportError:  # pragma: no cover
        pass
    info.update(
        version=version(),
        python=sys.version.split()[0],
        numpy=np.__version__,
        platform=platform.platform(),
        cpu_count=os.cpu_count(),
        omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
        blas=blas,
    )
    return info


def show_config() -> None:
    """Print what trajcore was built with and what it will use."""
    info = config_info()
    lines = [
        f"trajcore {info['version']}",
        f"  python        {info['python']}  numpy {info['numpy']}  ({info['platform']})",
        f"  compiler      {info['compiler']}",
        f"  OpenMP        {'on (' + str(info['openmp_version']) + ')' if info['openmp'] else 'off (serial build)'}",
        f"  threads       {info['max_threads']} (OMP_NUM_THREADS={info['omp_num_threads']}, CPUs={info['cpu_count']})",
        f"  kernels       {info['kernel_isa']} (chosen for this CPU; compiled: "
        f"{', '.join(info['kernel_isas_compiled'])}; baseline {info['kernel_baseline']})",
        f"  BLAS dgemm    {'scipy' if info['blas_registered'] else 'none'} for >= {info['blas_threshold']} "
        "multiply-adds",
        f"  sanitizers    {'on' if info['sanitizers'] else 'off'}",
    ]
    lines += [f"  BLAS          {b}" for b in info["blas"]] or ["  BLAS          (not detected)"]
    print("\n".join(lines))
