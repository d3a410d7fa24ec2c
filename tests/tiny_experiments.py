"""Small, fast experiments registered only for the CLI and sweep tests.

Imported by the test modules, and by subprocesses and Dask workers through
``TRAJCORE_EXPERIMENTS=tiny_experiments`` with this directory on ``PYTHONPATH``. They run real
trajcore SMF trajectories (a few milliseconds each) and check the mathematics of the result, so a
test that depends on their checks can fail.

If ``TRAJCORE_TEST_LOG`` names a file, every finished computation appends its process id and
canonical config as one JSON line (one ``write`` on an ``O_APPEND`` descriptor: lines from
concurrent workers do not interleave) - the tests count computations with it.
``TRAJCORE_TEST_FAIL_SEED`` makes the run of that seed raise (a failure outside the config, so a
rerun without it continues the same sweep).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import trajcore as tc
from trajcore.experiments import ExperimentResult, experiment
from trajcore.experiments.settings import canonical_json, config_dict


@dataclass(frozen=True)
class TinySMFConfig:
    d: int = 8
    rank: int = 2
    sigma: tuple[float, ...] = (3.0, 1.0)
    alpha: float = 1e-3
    lr: float = 0.05
    steps: int = 400
    seed: int = 0
    pause: float = 0.0
    n_threads: int | None = None


def _log(config: TinySMFConfig) -> None:
    path = os.environ.get("TRAJCORE_TEST_LOG")
    if path:
        record = {"pid": os.getpid(), "config": config_dict(config, canonical=True)}
        line = (canonical_json(record) + "\n").encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


@experiment(
    "tiny_smf",
    TinySMFConfig,
    "Tiny symmetric matrix factorization from a small init (test experiment)",
    demo={"steps": 300},
    flagship=True,
)
def tiny_smf(config: TinySMFConfig, out_dir: Path | None) -> ExperimentResult:
    if str(config.seed) == os.environ.get("TRAJCORE_TEST_FAIL_SEED"):
        raise RuntimeError(f"asked to fail on seed {config.seed}")
    if config.pause:
        time.sleep(config.pause)
    problem = tc.SymmetricMatrixFactorization.planted(config.d, config.rank, list(config.sigma), seed=config.seed)
    init = tc.small_init((config.d, config.d), config.alpha, seed=config.seed + 1)
    traj = tc.run(
        problem, init, lr=config.lr, steps=config.steps, n_threads=config.n_threads, record=tc.Record(every=5)
    )
    _, diagonal = traj.diagonal()
    sigma = np.asarray(config.sigma)
    # learning time of mode i: first record where beta_ii reaches half of sigma_i
    reached = diagonal >= 0.5 * sigma[None, :]
    times = [int(traj.steps[np.argmax(reached[:, i])]) if reached[:, i].any() else -1 for i in range(config.rank)]
    learned = all(t >= 0 for t in times)
    metrics = {
        "final_loss": float(traj.loss[-1]),
        "initial_loss": float(traj.loss[0]),
        "learning_times": times,
        "first_learning_time": times[0],
        "final_beta": diagonal[-1].tolist(),
        # OpenMP threads a run may use here: sweeps limit every task to one
        "omp_max_threads": tc.config.resolve_threads(None),
    }
    checks = {
        "loss fell by 1e3": bool(traj.loss[-1] < 1e-3 * traj.loss[0]),
        "larger sigma learned first": bool(learned and all(a <= b for a, b in zip(times, times[1:], strict=False))),
    }
    figures = []
    if out_dir is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(4, 3))
        ax.semilogy(traj.steps, traj.loss)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        fig.tight_layout()
        fig.savefig(out_dir / "loss.png", dpi=70)
        plt.close(fig)
        figures.append("loss.png")
        figures.append("never_written.png")  # announced but absent: the report must not link it
    _log(config)
    return ExperimentResult(metrics, checks, figures, [f"learning times {times}"])


@dataclass(frozen=True)
class TinyBlasConfig:
    n: int = 400_000
    seed: int = 0


@experiment(
    "tiny_blas",
    TinyBlasConfig,
    "A long dot product through BLAS, whose last bits depend on BLAS's thread count (test experiment)",
)
def tiny_blas(config: TinyBlasConfig, out_dir: Path | None) -> ExperimentResult:
    # OpenBLAS splits a long ddot across its threads and adds the partial sums: with 2 threads the
    # result differs in the last bits from 1 thread, so a store shows whether BLAS was limited.
    x, y = np.random.default_rng(config.seed).standard_normal((2, config.n))
    dot = float(x @ y)
    _log(config)  # type: ignore[arg-type]
    return ExperimentResult({"dot": dot}, {"dot is finite": bool(np.isfinite(dot))})
