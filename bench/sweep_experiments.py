"""The experiment the sweep benchmarks run: one SMF trajectory (d = 50) per run.

Registered under ``bench_smf_trajectory`` when imported; worker processes import it through
``TRAJCORE_EXPERIMENTS=sweep_experiments`` with ``bench/`` on ``PYTHONPATH``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

import trajcore as tc
from trajcore.experiments import ExperimentResult, experiment


@dataclass(frozen=True)
class SMFTrajectory:
    d: int = 50
    rank: int = 4
    sigma: tuple[float, ...] = (10.0, 5.0, 3.0, 1.0)
    alpha: float = 1e-4
    lr: float = 0.04
    steps: int = 400
    every: int = 10
    seed: int = 0
    n_threads: int | None = None


@experiment("bench_smf_trajectory", SMFTrajectory, "One SMF trajectory, d = 50, r' = d (sweep benchmark)")
def smf_trajectory(cfg: SMFTrajectory, out_dir: Path | None) -> ExperimentResult:
    problem = tc.SymmetricMatrixFactorization.planted(cfg.d, cfg.rank, list(cfg.sigma), seed=0)
    init = tc.small_init((cfg.d, cfg.d), cfg.alpha, seed=cfg.seed)
    traj = tc.run(problem, init, lr=cfg.lr, steps=cfg.steps, n_threads=cfg.n_threads, record=tc.Record(every=cfg.every))
    _, diagonal = traj.diagonal()
    sigma = np.asarray(cfg.sigma)
    reached = diagonal >= 0.5 * sigma
    times = [int(traj.steps[np.argmax(reached[:, i])]) if reached[:, i].any() else -1 for i in range(cfg.rank)]
    metrics = {"final_loss": float(traj.loss[-1]), "learning_times": times}
    checks = {"converged": bool(traj.loss[-1] < 1e-6 * traj.loss[0])}
    return ExperimentResult(metrics, checks)
