"""Orthogonal symmetric tensor decomposition experiments (PAPERS.md section 3).

Every config checks its own settings when it is built (ranges, at most d orthonormal components, a
known storage), so ``trajcore run``/``sweep`` refuse a bad setting before computing. A step size that
makes GD diverge runs; the analysis of its NaN records raises no NumPy warnings and a check reports it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import analysis
from ..dynamics import Record, run
from ..initialization import small_init
from ..tensor import MAX_ORDER, OrthogonalTensorDecomposition
from . import Checks, ExperimentResult, experiment, save_figure, tolerating_divergence
from .settings import POSITIVE, above, at_least, between, check_limits, require

__all__ = ["OSTDReference", "OSTDEscapeScaling"]

#: the storages of a planted target
STORAGES = ("factored", "dense", "packed")
#: steps a run of ostd_escape_scaling may need (its step counts follow from the settings)
MAX_STEPS = 10_000_000


def _check_common(config: OSTDReference | OSTDEscapeScaling) -> None:
    """The settings both tensor experiments share: sizes, the order (escape by blow-up needs l >= 3),
    positive coefficients c_k, one orthonormal component per c_k (at most d), step size and seeds."""
    check_limits(
        config,
        d=at_least(1),
        order=between(3, MAX_ORDER),
        width=at_least(1),
        c=POSITIVE,  # positive, with c^2 a finite non-zero number
        lr=above(0),
        every=at_least(1),
        seeds=at_least(0),
        target_seed=at_least(0),
    )
    require(config, "c", len(config.c) <= config.d, f"at most d = {config.d} values (orthonormal components)")


@dataclass(frozen=True)
class OSTDReference:
    """PAPERS.md section 3 reference setting (Paper A): l = 4, d = 10, r = 4, m = 10, un-halved loss.

    The default init seeds include ones where a smaller c_k is learned first (6, 16, 34, 36).
    """

    d: int = 10
    order: int = 4
    width: int = 10
    c: tuple[float, ...] = (10.0, 5.0, 3.0, 1.0)
    alpha: float = 2e-2
    lr: float = 1e-3
    steps: int = 200_000
    every: int = 50
    seeds: tuple[int, ...] = (6, 16, 34, 36, 10, 20)
    target_seed: int = 0
    storage: str = "factored"
    plateau_tolerance: float = 1e-3
    final_error: float = 1e-5

    def __post_init__(self) -> None:
        _check_common(self)
        check_limits(
            self,
            alpha=between(1e-100, 1.0, high_open=True),
            steps=at_least(1),
            plateau_tolerance=above(0),
            final_error=above(0),
        )
        require(self, "storage", self.storage in STORAGES, "one of " + ", ".join(STORAGES))


def _first_escape(problem: OrthogonalTensorDecomposition, U0: np.ndarray, lr: float) -> tuple[np.ndarray, np.ndarray]:
    """(predicted learning order (r,), predicted escape times (r,)) from the initial alignments."""
    if problem.sigma is None:
        raise ValueError("problem: the planted coefficients (sigma) are needed for the prediction")
    a0 = analysis.initial_alignments(problem.basis()[:, : problem.rank], U0, problem.order)
    return (
        analysis.predicted_learning_order(problem.sigma, a0, problem.order),
        analysis.predicted_escape_times(problem.sigma, a0, problem.order, lr, halved=problem.halved),
    )


@experiment(
    "ostd_reference",
    OSTDReference,
    "Orthogonal tensor decomposition, Paper A reference: error staircase, learning order by c_k a_0^(l-2)",
    demo={"seeds": (6, 10)},
    flagship=True,
)
def ostd_reference(cfg: OSTDReference, out_dir: Path | None) -> ExperimentResult:
    with tolerating_divergence():  # a large lr diverges: NaN records, reported by a check
        return _ostd_reference(cfg, out_dir)


def _ostd_reference(cfg: OSTDReference, out_dir: Path | None) -> ExperimentResult:
    from ..plot import error_staircase, tensor_coefficients

    c = np.asarray(cfg.c, dtype=float)
    r = c.shape[0]
    problem = OrthogonalTensorDecomposition.planted(
        cfg.d, cfg.order, r, sigma=c, storage=cfg.storage, seed=cfg.target_seed
    )
    inits = np.stack([small_init((cfg.d, cfg.width), cfg.alpha, seed=s) for s in cfg.seeds])
    started = time.perf_counter()
    traj = run(problem, inits, lr=cfg.lr, steps=cfg.steps, record=Record(every=cfg.every))
    seconds = time.perf_counter() - started
    error = problem.relative_error(traj.loss)  # (S, R)

    orders, predicted_orders, plateau_gaps, first_ratio = [], [], [], []
    for s in range(len(cfg.seeds)):
        order, times = analysis.measured_learning_order(traj.coefficients[s], traj.steps)
        predicted, t_pred = _first_escape(problem, inits[s], cfg.lr)
        orders.append(order.tolist())
        predicted_orders.append(predicted.tolist())
        first_ratio.append(float(times[predicted[0]] / t_pred[predicted[0]]))
        levels = analysis.predicted_plateau_levels(c, order)[:-1]
        found = np.array(
            [p.level for p in analysis.detect_plateaus(traj.steps, error[s], relative_change=1e-3, min_records=10)]
        )
        # None (JSON null) when no plateau was detected at all.
        plateau_gaps.append([float(np.min(np.abs(found - L))) if found.size else None for L in levels])

    # Gradient dominance on the first seed's escape phase, recorded densely over a short run: while one
    # column carries the first component (beta above the others' floor, below half of c), gamma = 1 - 1/l.
    first_order, first_times = _first_escape(problem, inits[0], cfg.lr)
    first = int(first_order[0])
    short_steps = int(min(cfg.steps, 1.5 * first_times[first]))
    short = run(problem, inits[0], lr=cfg.lr, steps=short_steps, record=Record(every=5, iterates=True))
    snapshots = short.iterates if short.iterates is not None else np.zeros((0, cfg.d, cfg.width))
    beta = short.coefficients[:, first]
    growth = (beta > 1e-3 * c[first]) & (beta < 0.5 * c[first])
    if growth.any():
        dominance = analysis.gradient_dominance(problem, snapshots[growth], np.array([[first, first]]))
        gamma = float(dominance.gamma[0])
    else:  # the run ends (or diverges) before the first component grows: nothing to measure
        gamma = float("nan")
    diverged = int(np.sum(traj.diverged))

    smaller_first = [o != sorted(o, key=lambda k: -c[k]) for o in orders]
    metrics = {
        "final_relative_error": error[:, -1].tolist(),
        "learning_order": orders,
        "predicted_learning_order": predicted_orders,
        "plateau_deviation": plateau_gaps,
        "first_escape_time_over_prediction": first_ratio,
        "gradient_dominance_gamma": gamma,
        "gradient_dominance_expected": 1 - 1 / cfg.order,
        "nonmonotone_mass_max": float(np.max(analysis.nonmonotone_mass(traj.coefficients))),
        "seconds": seconds,
        "steps_per_second_per_trajectory": cfg.steps * len(cfg.seeds) / max(seconds, 1e-9),
        "diverged": diverged,
    }
    gaps = [g for seed_gaps in plateau_gaps for g in seed_gaps]
    checks = Checks()
    checks.compare("no seed diverged: seeds that diverged", diverged, "==", 0)
    checks.compare(
        f"final relative error < {cfg.final_error:g} on every seed: max",
        float(np.max(error[:, -1])),
        "<",
        cfg.final_error,
    )
    checks.compare(
        f"every plateau sqrt(unlearned c^2 / sum c^2) seen within {cfg.plateau_tolerance:g}: largest gap",
        max(g if g is not None else float("nan") for g in gaps) if gaps else float("nan"),
        "<=",
        cfg.plateau_tolerance,
    )
    checks.holds(
        "learning order = decreasing c_k a_0^(l-2) on every seed",
        orders == predicted_orders,
        measured=f"{sum(o == q for o, q in zip(orders, predicted_orders, strict=True))} of {len(orders)} seeds",
        expected="all seeds",
    )
    checks.holds(
        "a smaller c_k learned first on some seed",
        any(smaller_first),
        measured=f"{sum(smaller_first)} of {len(orders)} seeds",
        expected="at least 1",
    )
    checks.compare(
        "first escape within 10% of 1 / (2 l (l-2) eta c a_0^(l-2)): max |ratio - 1|",
        float(np.max(np.abs(np.array(first_ratio) - 1))),
        "<",
        0.1,
    )
    checks.compare(
        "gradient dominance gamma within 0.05 of 1 - 1/l: |gamma - (1 - 1/l)|",
        abs(gamma - (1 - 1 / cfg.order)),
        "<",
        0.05,
    )
    notes = [
        f"Relative error from the exact recorded loss; {traj.steps.shape[0]} records per seed, "
        f"{len(cfg.seeds)} seeds x {cfg.steps} steps in {seconds:.2f} s.",
        "The c_k a_0^(l-2) prediction assumes each component escapes through its own best-aligned column; "
        "when two components share that column the later one must use another and the order can differ "
        "(4 of 40 seeds in a scan of seeds 0..39).",
    ]
    if not growth.any():
        notes.append(
            f"Gradient dominance not measured: within {short_steps} steps no record of seed {cfg.seeds[0]} has "
            f"component {first + 1} between 1e-3 c and c/2 (its predicted escape: step {first_times[first]:.0f})."
        )
    figures: list[str] = []
    # The components are learned early in a long run (the rest is flat at c_k): the coefficient figure
    # shows the run up to 1.5x the step at which the last component of seed 0 settled.
    settle = np.flatnonzero(np.any(~(np.abs(traj.coefficients[0] - c) <= 0.01 * c), axis=1))  # NaN: not settled
    shown = float(min(traj.steps[-1], 1.5 * traj.steps[settle[-1]] if settle.size else traj.steps[-1]))
    if not settle.size:
        settled = "from the start"
    elif settle[-1] + 1 < traj.steps.shape[0]:
        settled = f"from step {traj.steps[settle[-1] + 1]} on"
    else:
        settled = "nowhere in the run (not all settled)"
    levels0 = analysis.predicted_plateau_levels(c, orders[0])
    plateaus0 = analysis.detect_plateaus(traj.steps, error[0], relative_change=1e-3, min_records=10)
    save_figure(
        out_dir,
        "ostd_coefficients.png",
        lambda ax: (
            tensor_coefficients(traj[0], c, ax=ax, logx=False),
            ax.set_xlim(0, shown),
            ax.set_title(
                f"OSTD: coefficients $\\beta_k(t)$, seed {cfg.seeds[0]} (first {shown:.0f} of {cfg.steps} steps)"
            ),
        ),
        figures,
    )
    save_figure(
        out_dir,
        "ostd_error_staircase.png",
        lambda ax: (
            error_staircase(traj.steps, error[0], levels0, ax=ax, plateaus=plateaus0),
            ax.set_title(f"OSTD: relative error, seed {cfg.seeds[0]}"),
        ),
        figures,
    )
    captions = {
        "ostd_coefficients.png": (
            f"β_k = Σ_j ⟨z_k, u_j⟩^{cfg.order} against iterations (d = {cfg.d}, m = {cfg.width}, "
            f"α = {cfg.alpha:g}, η = {cfg.lr:g}); dotted: the planted c_k. Shown up to step {shown:.0f} of "
            f"{cfg.steps}: every β_k is within 1% of c_k {settled}. Paper A predicts each β_k rises "
            "monotonically to c_k, in decreasing order of c_k a_0^(l-2) "
            "(a_0: the best initial alignment), not necessarily of c_k."
        ),
        "ostd_error_staircase.png": (
            "Relative error ‖T − T*‖/‖T*‖ (log). The prediction: a staircase whose plateaus sit at "
            "sqrt(unlearned Σc_k² / Σc_k²) (dashed), one step per learned component; thick: plateaus detected."
        ),
    }
    return ExperimentResult(metrics, checks.passed, figures, notes, checks.details, captions)


@dataclass(frozen=True)
class OSTDEscapeScaling:
    """First escape time against the init scale alpha: measured, and 1 / (2 l (l-2) eta c a_0^(l-2)).

    The init direction is fixed per seed and scaled by alpha, so a_0 is exactly proportional to alpha
    and the prediction scales as alpha^-(l-2).
    """

    d: int = 10
    order: int = 4
    width: int = 10
    c: tuple[float, ...] = (10.0, 5.0, 3.0, 1.0)
    alphas: tuple[float, ...] = (5e-3, 1e-2, 2e-2, 4e-2)
    lr: float = 1e-3
    seeds: tuple[int, ...] = (0, 1, 2, 3)
    target_seed: int = 0
    every: int = 10
    slope_tolerance: float = 0.1

    def __post_init__(self) -> None:
        _check_common(self)
        check_limits(self, alphas=between(1e-100, 1.0, high_open=True), slope_tolerance=above(0))
        require(
            self,
            "alphas",
            len(set(self.alphas)) >= 2,
            "at least 2 different values (the slope against log(alpha) needs two)",
        )
        # The first escape comes near 1 / (2 l (l-2) lr c a_0^(l-2)), a_0 the best initial alignment:
        # alpha times the largest of width * r Gaussians, below sqrt(2 ln(2 width r)) + 3 for any seed
        # in practice. So this is a lower bound on the steps the smallest alpha needs.
        top = math.sqrt(2 * math.log(2 * self.width * len(self.c))) + 3
        rate = 2 * self.order * (self.order - 2) * self.lr * max(self.c) * (min(self.alphas) * top) ** (self.order - 2)
        need = 1 / rate if rate > 0 else math.inf
        require(
            self,
            "alphas",
            need <= MAX_STEPS,
            f"values whose first escape fits in {MAX_STEPS} steps; alpha = {min(self.alphas):g} needs at least "
            f"{need:.3g} (about 1 / (2 l (l-2) lr c alpha^(l-2))): raise the smallest alpha or lr",
        )


@experiment(
    "ostd_escape_scaling",
    OSTDEscapeScaling,
    "Orthogonal tensor decomposition: first escape time scales as alpha^-(l-2), against the prediction",
    demo={"alphas": (1e-2, 2e-2, 4e-2), "seeds": (0, 1)},
)
def ostd_escape_scaling(cfg: OSTDEscapeScaling, out_dir: Path | None) -> ExperimentResult:
    with tolerating_divergence():  # a large lr diverges: NaN records, reported by a check
        return _ostd_escape_scaling(cfg, out_dir)


def _ostd_escape_scaling(cfg: OSTDEscapeScaling, out_dir: Path | None) -> ExperimentResult:
    from ..plot import escape_scaling

    c = np.asarray(cfg.c, dtype=float)
    problem = OrthogonalTensorDecomposition.planted(cfg.d, cfg.order, c.shape[0], sigma=c, seed=cfg.target_seed)
    alphas = np.asarray(cfg.alphas, dtype=float)
    measured = np.full((len(cfg.seeds), alphas.shape[0]), np.nan)
    predicted = np.full_like(measured, np.nan)
    diverged = 0
    never = []  # alphas at which no seed can escape (a_0^(l-2) underflows): nothing to run
    for i, alpha in enumerate(alphas):
        inits = np.stack([small_init((cfg.d, cfg.width), alpha, seed=s) for s in cfg.seeds])
        first_pred = np.array([np.min(_first_escape(problem, U0, cfg.lr)[1]) for U0 in inits])
        predicted[:, i] = first_pred
        escaping = first_pred[np.isfinite(first_pred)]
        if not escaping.size:
            never.append(float(alpha))
            continue
        steps = int(np.ceil(2.0 * np.max(escaping))) + cfg.every
        traj = run(problem, inits, lr=cfg.lr, steps=steps, record=Record(every=cfg.every))
        diverged += int(np.sum(traj.diverged))
        for s in range(len(cfg.seeds)):
            # The first escape: the earliest step at which some beta_k reaches half of its c_k.
            reached = traj.coefficients[s] >= 0.5 * c
            hit = np.flatnonzero(np.any(reached, axis=1))
            measured[s, i] = traj.steps[hit[0]] if hit.size else np.nan
    log_a = np.log(alphas)
    slopes = [float(np.polyfit(log_a, np.log(m), 1)[0]) for m in measured if np.all(np.isfinite(m))]
    ratio = measured / predicted
    finite = ratio[np.isfinite(ratio)]
    metrics = {
        "alphas": alphas.tolist(),
        "measured_first_escape": measured.tolist(),
        "predicted_first_escape": predicted.tolist(),
        "fitted_slopes": slopes,
        "seeds_escaping_at_every_alpha": len(slopes),
        "expected_slope": -(cfg.order - 2),
        "measured_over_predicted_median": float(np.median(finite)) if finite.size else float("nan"),
        "measured_over_predicted_max_deviation": float(np.max(np.abs(finite - 1))) if finite.size else float("nan"),
        "diverged": diverged,
    }
    checks = Checks()
    checks.compare("no run diverged: runs that diverged", diverged, "==", 0)
    checks.compare(
        f"slope of log t vs log alpha within {cfg.slope_tolerance} of -(l-2) on every seed: largest |slope + (l-2)|",
        max(abs(s + (cfg.order - 2)) for s in slopes) if len(slopes) == len(cfg.seeds) else float("nan"),
        "<=",
        cfg.slope_tolerance,
    )
    checks.compare(
        "measured first escape within 15% of the prediction: max |measured / predicted - 1|",
        float(np.max(np.abs(ratio - 1))),
        "<=",
        0.15,
    )
    notes = [
        "Escape = first record with some beta_k >= c_k / 2; it comes slightly after the blow-up time of "
        "a' = 2 l eta c a^(l-1) because the last doubling of beta takes finite time.",
    ]
    if never:
        notes.append(
            f"Not run at alpha = {', '.join(f'{a:g}' for a in never)}: a_0^(l-2) underflows, no seed can escape."
        )
    figures: list[str] = []
    if np.isfinite(measured).any():  # a log-log figure of nothing (every run diverged) is left out
        save_figure(
            out_dir,
            "ostd_escape_scaling.png",
            lambda ax: (
                escape_scaling(alphas, measured, predicted, cfg.order, ax=ax),
                ax.set_title("First escape time against the init scale"),
            ),
            figures,
        )
    else:
        notes.append("No figure: no seed escaped at any alpha.")
    captions = {
        "ostd_escape_scaling.png": (
            f"First step at which some β_k reaches c_k/2, per seed ({len(cfg.seeds)} seeds), against the init "
            f"scale α (log-log). The prediction 1/(2l(l−2)ηc a_0^(l−2)) (lines) has slope −(l−2) = "
            f"−{cfg.order - 2}."
        )
    }
    return ExperimentResult(metrics, checks.passed, figures, notes, checks.details, captions)
