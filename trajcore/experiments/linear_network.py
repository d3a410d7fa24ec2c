"""Deep-linear-network experiments (PAPERS.md section 5, Paper B): rank dynamics under noise.

Units. Paper B's script minimises PyTorch's ``MSELoss`` (the mean over the ``n d_N`` entries), trajcore
the sum ``1/2 ||P X - Y||_F^2``. The configs state step sizes and gradient-noise levels in the
script's units and convert with ``c = n d_N / 2``: ``lr = lr_mse / c``, gradient-noise scale
``s = s_mse * c`` (so the per-step kick ``lr * s`` in weight space is the same), Langevin
``beta = beta_mse / c`` and the perturbed-GD gradient threshold ``* c``. Weight, input and label noise
and dropout are in their own (data or weight) units.

Every config checks its own settings when it is built (ranges, ranks within the widths, one planted
singular value per planted rank), so ``trajcore run``/``sweep`` refuse a bad setting before computing.
Step sizes and noise kicks lie within 1e-100..1e100, so the derived noise parameters (``kick / lr``,
``2 lr / kick^2``) stay finite; noise levels and scales within 1e6, so the losses do. A step size
that makes GD diverge runs; a check reports it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import analysis
from ..dynamics import Record, run
from ..linear_network import DeepLinearNetwork
from ..noise import (
    AnnealedGradientNoise,
    DropConnect,
    Dropout,
    GradientNoise,
    InputNoise,
    LabelNoise,
    Langevin,
    PerturbedGD,
    SingularValueImputation,
    WeightNoise,
)
from . import Checks, ExperimentResult, experiment, save_figure, tolerating_divergence
from .settings import POSITIVE, above, at_least, between, check_limits, require

__all__ = ["DLNReference", "DLNNoiseComparison"]

#: noise levels, init scales and planted singular values, in data or weight units: with data of
#: order 1, much larger ones make every loss overflow
LEVEL = between(0, 1e6)


def _check_widths(config: Any, rank_field: str) -> None:
    """``widths`` has an input and an output width, and ``rank_field`` (a layer's rank at the start)
    is at most the narrowest layer."""
    require(config, "widths", len(config.widths) >= 2, "at least 2 widths (input and output)")
    cap = min(config.widths)
    require(config, rank_field, getattr(config, rank_field) <= cap, f"{rank_field} <= min(widths) = {cap}")


def _values_text(values: Any) -> str:
    """Distinct values as integers where they are (``[1, 2]``), NaN shown as such (a diverged run)."""
    distinct = np.unique(np.asarray(values, dtype=float))
    return "[" + ", ".join("NaN" if not np.isfinite(v) else f"{v:g}" for v in distinct) + "]"


def _dln_figure(out_dir: Path | None, name: str, draw: Any, figures: list[str]) -> None:
    save_figure(out_dir, name, draw, figures, "line")


def _mse_factor(problem: DeepLinearNetwork) -> float:
    """``c = n d_N / 2``: the sum loss is c times the script's mean-squared error."""
    return problem.n * problem.widths[-1] / 2.0


@dataclass(frozen=True)
class DLNReference:
    """Paper B's script: widths 10-10-10-10, n = 1000, X ~ U(-5, 5), Y ~ U(-1, 1), default PyTorch init
    truncated to rank 1 per layer, full-batch GD with lr 1e-3 on the MSE loss, 100 iterations, GD
    against singular-value imputation from the same start."""

    widths: tuple[int, ...] = (10, 10, 10, 10)
    n: int = 1000
    init_rank: int = 1
    lr: float = 1e-3  # on the script's MSE loss; converted to the sum loss
    steps: int = 100
    data_seed: int = 0
    init_seeds: tuple[int, ...] = (1, 2, 3)
    noise_seed: int = 7
    imputation_scale: float = 1.0
    imputation_jitter: float = 1e-3
    imputation_threshold: float = 1e-6  # the script's absolute rank threshold inside the imputation
    script_atol: float = 1e-6  # the script's absolute threshold for the reported product rank

    def __post_init__(self) -> None:
        check_limits(
            self,
            widths=at_least(1),
            n=at_least(1),
            init_rank=at_least(1),
            lr=POSITIVE,
            steps=at_least(1),
            data_seed=at_least(0),
            init_seeds=at_least(0),
            noise_seed=at_least(0),
            imputation_scale=LEVEL,
            imputation_jitter=LEVEL,
            imputation_threshold=at_least(0),
            script_atol=above(0),
        )
        _check_widths(self, "init_rank")
        ends = min(self.widths[0], self.widths[-1])
        require(
            self, "widths", ends >= 2, "input and output widths >= 2 (the product's second singular value is measured)"
        )


@experiment(
    "dln_paper_reference",
    DLNReference,
    "Deep linear network, Paper B reference: product rank under GD (flat) and singular-value imputation (rising)",
    demo={"init_seeds": (1,)},
    flagship=True,
)
def dln_paper_reference(cfg: DLNReference, out_dir: Path | None) -> ExperimentResult:
    with tolerating_divergence():  # a large lr diverges: NaN records, reported by a check
        return _dln_paper_reference(cfg, out_dir)


def _dln_paper_reference(cfg: DLNReference, out_dir: Path | None) -> ExperimentResult:
    from ..plot import loss_curves, product_rank, product_singular_values

    problem = DeepLinearNetwork.paper_data(cfg.widths, n=cfg.n, seed=cfg.data_seed)
    lr = cfg.lr / _mse_factor(problem)
    starts = np.stack([problem.truncated_init(cfg.init_rank, seed=s) for s in cfg.init_seeds])
    record = Record(every=1, coefficients=True)
    gd = run(problem, starts, lr=lr, steps=cfg.steps, record=record)
    imputation = SingularValueImputation(
        scale=cfg.imputation_scale, jitter=cfg.imputation_jitter, threshold=cfg.imputation_threshold
    )
    noisy = run(problem, starts, lr=lr, steps=cfg.steps, record=record, noise=imputation, seed=cfg.noise_seed)
    (problem.widths[-1], problem.widths[0])
    obs_gd, obs_imp = problem.observables(gd), problem.observables(noisy)
    rank_gd, rank_imp = obs_gd["numerical_rank"], obs_imp["numerical_rank"]  # (S, R)
    spectra_gd, spectra_imp = obs_gd["product_singular_values"], obs_imp["product_singular_values"]
    atol_gd = np.asarray(analysis.numerical_rank(spectra_gd, atol=cfg.script_atol, spectrum=True))
    atol_imp = np.asarray(analysis.numerical_rank(spectra_imp, atol=cfg.script_atol, spectrum=True))
    bound = analysis.subspace_rank_bound(problem, starts)  # (S,)
    second = obs_gd["product_singular_values"][:, :, 1]
    metrics = {
        "lr_sum_loss": lr,
        "subspace_bound": np.asarray(bound).tolist(),
        "rank_cap": problem.rank_cap,
        "gd_rank_relative": rank_gd.tolist(),
        "gd_rank_atol": atol_gd.tolist(),
        "imputation_rank_relative": rank_imp.tolist(),
        "imputation_rank_atol": atol_imp.tolist(),
        "gd_final_rank_relative": rank_gd[:, -1].tolist(),
        "gd_final_rank_atol": atol_gd[:, -1].tolist(),
        "imputation_final_rank_relative": rank_imp[:, -1].tolist(),
        "imputation_final_rank_atol": atol_imp[:, -1].tolist(),
        "gd_final_effective_rank": obs_gd["effective_rank"][:, -1].tolist(),
        "imputation_final_effective_rank": obs_imp["effective_rank"][:, -1].tolist(),
        "gd_second_singular_value_final": second[:, -1].tolist(),
        "gd_final_loss": gd.loss[:, -1].tolist(),
        "imputation_final_loss": noisy.loss[:, -1].tolist(),
        "initial_loss": gd.loss[:, 0].tolist(),
        "optimal_loss": problem.optimal_loss,
        "diverged": int(np.sum(gd.diverged) + np.sum(noisy.diverged)),
    }
    bound_arr = np.asarray(bound, dtype=float).reshape(-1, 1)
    checks = Checks()
    checks.compare("no run diverged: runs that diverged (GD and imputation)", metrics["diverged"], "==", 0)
    checks.compare(
        "GD product rank never exceeds min_k dim S_k(0): largest rank - bound",
        float(np.max(rank_gd - bound_arr)),
        "<=",
        0,
    )
    checks.holds(
        "GD flat at the script's absolute threshold",
        np.all(atol_gd == cfg.init_rank),
        measured=f"ranks {_values_text(atol_gd)}",
        expected=f"{cfg.init_rank} throughout",
    )
    checks.holds(
        "GD flat after the first step at the default relative tolerance",
        np.all(rank_gd[:, 1:] == rank_gd[:, 1:2]),
        measured=f"ranks after step 0: {_values_text(rank_gd[:, 1:])}",
        expected="one value",
    )
    checks.compare(
        "imputation raises the product rank above GD (relative tolerance): min final rank gain",
        float(np.min(rank_imp[:, -1] - rank_gd[:, -1])),
        ">",
        0,
    )
    checks.compare(
        "imputation raises the product rank above GD (absolute 1e-6): min final rank gain",
        float(np.min(atol_imp[:, -1] - atol_gd[:, -1])),
        ">",
        0,
    )
    checks.compare(
        "imputation reaches full rank at the default relative tolerance: min final rank",
        float(np.min(rank_imp[:, -1])),
        "==",
        problem.rank_cap,
    )
    figures: list[str] = []
    first = {"GD": gd[0], "singular-value imputation": noisy[0]}
    seed = cfg.init_seeds[0]
    _dln_figure(
        out_dir,
        "dln_reference_rank.png",
        lambda ax: (product_rank(problem, first, ax=ax), ax.set_title(f"Product rank, default rule (seed {seed})")),
        figures,
    )
    _dln_figure(
        out_dir,
        "dln_reference_rank_atol.png",
        lambda ax: (
            product_rank(problem, first, ax=ax, atol=cfg.script_atol),
            ax.set_title(f"Product rank at the script's threshold {cfg.script_atol:g}"),
        ),
        figures,
    )
    _dln_figure(
        out_dir,
        "dln_reference_loss.png",
        lambda ax: (loss_curves(first, ax=ax), ax.set_title("Loss (data without signal)")),
        figures,
    )
    _dln_figure(
        out_dir,
        "dln_reference_gd_spectrum.png",
        lambda ax: (product_singular_values(problem, gd[0], ax=ax), ax.set_title("Singular values of the product: GD")),
        figures,
    )
    _dln_figure(
        out_dir,
        "dln_reference_imputation_spectrum.png",
        lambda ax: (
            product_singular_values(problem, noisy[0], ax=ax),
            ax.set_title("Singular values of the product: imputation"),
        ),
        figures,
    )
    widths = "-".join(str(w) for w in cfg.widths)
    captions = {
        "dln_reference_rank.png": (
            f"Numerical rank of W_N⋯W_1 (widths {widths}, n = {cfg.n}, rank-{cfg.init_rank} start) at the default "
            "relative tolerance. Paper B: under exact GD the rank cannot exceed min_k dim S_k of the start "
            "(here reached after one step); singular-value imputation fills the spectrum up to the cap."
        ),
        "dln_reference_rank_atol.png": (
            f"The same runs at the script's absolute threshold {cfg.script_atol:g}: GD stays flat at rank "
            f"{cfg.init_rank}, as in Paper B's figure; imputation rises."
        ),
        "dln_reference_loss.png": (
            "Exact loss ½‖PX − Y‖² of both runs. The data carry no signal, so a higher rank need not lower the loss."
        ),
        "dln_reference_gd_spectrum.png": (
            "All singular values of the product under GD (log scale, clipped at 1e-20): one of order "
            f"{spectra_gd[0, -1, 0]:.0e}, a second of order {second[0, -1]:.0e} in the one extra direction "
            "the S_k bound allows, the rest at rounding level."
        ),
        "dln_reference_imputation_spectrum.png": (
            f"Singular values under singular-value imputation: {rank_imp[0, -1]:.0f} of "
            f"{problem.rank_cap} end above the default relative rank threshold and {atol_imp[0, -1]:.0f} "
            f"above the script's absolute {cfg.script_atol:g}."
        ),
    }
    notes = [
        f"Step size: the script's lr {cfg.lr:g} on MSELoss (mean over n d_N = "
        f"{problem.n * problem.widths[-1]} entries) is lr {lr:.3g} on 1/2 ||P X - Y||^2.",
        "The product is the full W_N...W_1 in float64 (the script skipped the first layer and used "
        "float32 with no seed).",
        f"GD at the default relative tolerance: rank {rank_gd[0, 0]:.0f} at step 0, {rank_gd[0, 1]:.0f} "
        f"from step 1 on, final {rank_gd[0, -1]:.0f}. Independent rank-{cfg.init_rank} truncation gives "
        f"min_k dim S_k(0) = {np.asarray(bound).ravel()[0]:.0f}, and the first gradient step fills that "
        f"bound with a second singular value of order {second[0, 1]:.1e} (final {second[0, -1]:.1e}), far "
        f"below the script's 1e-6 threshold, where GD stays at rank {atol_gd[0, -1]:.0f}: 'GD flat' holds "
        "at the script's threshold and, at ours, GD is flat at the S_k bound.",
        f"Imputation: product rank {rank_imp[0, -1]:.0f} at the default relative tolerance and "
        f"{atol_imp[0, -1]:.0f} at the absolute {cfg.script_atol:g}, effective rank "
        f"{obs_imp['effective_rank'][0, -1]:.2f} (GD: {obs_gd['effective_rank'][0, -1]:.2f}).",
        f"Loss after {cfg.steps} steps: GD {gd.loss[0, -1]:.2f}, imputation {noisy.loss[0, -1]:.2f}, "
        f"global optimum {problem.optimal_loss:.2f}. On this no-signal data a higher rank does not mean "
        "a lower loss: "
        + (
            "imputation ends above GD (its draws, std "
            f"{cfg.imputation_scale:g}, are large next to the trained singular values)."
            if noisy.loss[0, -1] > gd.loss[0, -1]
            else "imputation ends below GD."
        ),
    ]
    return ExperimentResult(metrics, checks.passed, figures, notes, checks.details, captions)


@dataclass(frozen=True)
class DLNNoiseComparison:
    """Every noise model on the reference experiment and on a planted-signal variant.

    Planted: ``Y = A X + noise`` with rank(A) = 3 and a balanced, aligned rank-1 start, so that
    ``min_k dim S_k = 1``: GD converges to the best rank-1 product, a rank-deficient saddle.
    Driver-level noise is given as its per-step kick in weight space (the std of ``lr * s xi`` for
    gradient noise, ``sqrt(2 lr / beta)`` for Langevin, the initial kick for annealed noise), so a
    level means the same thing whatever the step size.
    """

    widths: tuple[int, ...] = (10, 10, 10, 10)
    n: int = 1000
    init_rank: int = 1
    lr: float = 1e-3  # reference step size, script (MSE) units
    steps: int = 100
    planted_rank: int = 3
    planted_singular_values: tuple[float, ...] = (3.0, 2.0, 1.0)
    planted_noise: float = 0.1
    planted_init_scale: float = 0.5  # singular value of each aligned rank-1 layer
    planted_lr: float = 0.25  # MSE units: 5e-5 on the sum loss for n = 1000, d_N = 10
    planted_steps: int = 1000
    data_seed: int = 0
    init_seed: int = 1
    noise_seed: int = 2
    n_runs: int = 2
    record_every: int = 1
    gradient_kick: float = 1e-5  # reference; per-step std in weight space
    planted_gradient_kick: float = 1e-3
    perturbed_radius: float = 1e-2  # ball radius (reference); planted uses 10x
    perturbed_threshold: float = 1.0  # gradient norm in MSE units
    perturbed_interval: int = 10
    imputation_scale: float = 1.0
    planted_imputation_scale: float = 0.1
    imputation_threshold: float = 1e-6
    weight_noise: float = 0.1
    dropconnect: float = 0.1
    dropout: float = 0.1
    input_noise: float = 0.5
    label_noise: float = 0.5
    batch_size: int = 100
    optimum_tolerance: float = 0.05  # planted: a final loss within this fraction of the optimum reaches it

    def __post_init__(self) -> None:
        check_limits(
            self,
            widths=at_least(1),
            n=at_least(1),
            init_rank=at_least(1),
            lr=POSITIVE,
            steps=at_least(1),
            planted_rank=at_least(1),
            planted_singular_values=between(1e-100, 1e6),
            planted_noise=LEVEL,
            planted_init_scale=between(1e-100, 1e6),
            planted_lr=POSITIVE,
            planted_steps=at_least(1),
            data_seed=at_least(0),
            init_seed=at_least(0),
            noise_seed=at_least(0),
            n_runs=at_least(1),
            record_every=at_least(1),
            gradient_kick=POSITIVE,
            planted_gradient_kick=POSITIVE,
            perturbed_radius=LEVEL,
            perturbed_threshold=LEVEL,
            perturbed_interval=at_least(0),
            imputation_scale=LEVEL,
            planted_imputation_scale=LEVEL,
            imputation_threshold=above(0),
            weight_noise=LEVEL,
            dropconnect=between(0, 1, high_open=True),
            dropout=between(0, 1, high_open=True),
            input_noise=LEVEL,
            label_noise=LEVEL,
            batch_size=at_least(1),
            optimum_tolerance=above(0),
        )
        _check_widths(self, "init_rank")
        ends = min(self.widths[0], self.widths[-1])
        require(self, "planted_rank", self.planted_rank <= ends, f"planted_rank <= min(d_0, d_N) = {ends}")
        require(
            self,
            "planted_singular_values",
            len(self.planted_singular_values) == self.planted_rank,
            f"{self.planted_rank} value{'s' if self.planted_rank != 1 else ''} (one per planted direction: "
            f"planted_rank = {self.planted_rank}), got {len(self.planted_singular_values)}",
        )
        require(self, "batch_size", self.batch_size <= self.n, f"batch_size <= n = {self.n}")


#: Noise models that keep the gradient in the S_k structure: under exact GD they cannot raise the
#: product rank beyond the start's min_k dim S_k (PAPERS.md section 5).
_SK_INVARIANT = ("GD", "input noise", "label noise", "minibatch SGD")
#: Noise models Paper B names as raising the rank.
_RANK_RAISING = ("gradient noise", "weight noise", "Langevin", "perturbed GD", "singular-value imputation")


def _noise_models(
    cfg: DLNNoiseComparison, c: float, lr: float, kick: float, radius: float, imputation_scale: float
) -> dict[str, Any]:
    return {
        "GD": None,
        "gradient noise": GradientNoise(kick / lr),
        "annealed gradient noise": AnnealedGradientNoise(10.0 * kick / lr),
        "Langevin": Langevin(2.0 * lr / kick**2),
        "perturbed GD (ball)": PerturbedGD(
            radius=radius, threshold=cfg.perturbed_threshold * c, interval=cfg.perturbed_interval
        ),
        "singular-value imputation": SingularValueImputation(
            scale=imputation_scale, threshold=cfg.imputation_threshold
        ),
        "weight noise": WeightNoise(cfg.weight_noise),
        "DropConnect": DropConnect(cfg.dropconnect),
        "dropout": Dropout(cfg.dropout),
        "input noise": InputNoise(cfg.input_noise),
        "label noise": LabelNoise(cfg.label_noise),
    }


def _compare(
    cfg: DLNNoiseComparison,
    problem: DeepLinearNetwork,
    start: np.ndarray,
    lr_mse: float,
    steps: int,
    kick: float,
    radius: float,
    imputation_scale: float,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    c = _mse_factor(problem)
    lr = lr_mse / c
    common: dict[str, Any] = dict(lr=lr, steps=steps, seed=cfg.noise_seed, n_runs=cfg.n_runs, every=cfg.record_every)
    with warnings.catch_warnings():
        # A model whose every run diverged has only NaN records: its row's means are NaN (and its
        # "diverged" count says why); NumPy's warnings about the empty means add nothing.
        for message in ("Mean of empty slice", "All-NaN slice encountered"):
            warnings.filterwarnings("ignore", message=message, category=RuntimeWarning)
        rows, trajs = analysis.compare_noise(
            problem,
            start,
            _noise_models(cfg, c, lr, kick, radius, imputation_scale),
            atol=cfg.imputation_threshold,
            return_trajectories=True,
            **common,
        )
        batch = DeepLinearNetwork(problem.widths, problem.X, problem.Y, batch_size=cfg.batch_size)
        sgd_rows, sgd_trajs = analysis.compare_noise(
            batch,
            start,
            {f"minibatch SGD (b={cfg.batch_size})": None},
            atol=cfg.imputation_threshold,
            return_trajectories=True,
            **common,
        )
    return rows + sgd_rows, {**trajs, **sgd_trajs}


def _table_notes(title: str, rows: list[dict[str, Any]]) -> list[str]:
    gd = next(r for r in rows if r["noise"] == "GD")
    notes = []
    for r in rows:
        diverged = f", {r['diverged']}/{r['n_runs']} diverged" if r["diverged"] else ""
        notes.append(
            f"{title} / {r['noise']}: product rank {r['numerical_rank']:.1f} (default rule), "
            f"{r.get('rank_atol', float('nan')):.1f} (atol 1e-6), effective {r['effective_rank']:.3f}; "
            f"loss {r['final_loss']:.2f} (GD {gd['final_loss']:.2f}, optimum "
            f"{r['optimal_loss']:.2f}){diverged}"
        )
    return notes


@experiment(
    "dln_noise_comparison",
    DLNNoiseComparison,
    "Deep linear network: every noise model's product rank (numerical, effective) and loss, reference and planted",
    demo={"n_runs": 1, "planted_steps": 600, "record_every": 5},
    flagship=True,
)
def dln_noise_comparison(cfg: DLNNoiseComparison, out_dir: Path | None) -> ExperimentResult:
    with tolerating_divergence():  # a large lr diverges: NaN records, reported by the checks
        return _dln_noise_comparison(cfg, out_dir)


def _dln_noise_comparison(cfg: DLNNoiseComparison, out_dir: Path | None) -> ExperimentResult:
    from ..plot import loss_curves, noise_rank_summary, product_rank

    reference = DeepLinearNetwork.paper_data(cfg.widths, n=cfg.n, seed=cfg.data_seed)
    planted = DeepLinearNetwork.planted(
        cfg.widths,
        n=cfg.n,
        rank=cfg.planted_rank,
        sigma=cfg.planted_singular_values,
        noise=cfg.planted_noise,
        seed=cfg.data_seed,
    )
    ref_start = reference.truncated_init(cfg.init_rank, seed=cfg.init_seed)
    pl_start = planted.aligned_init(cfg.init_rank, scale=cfg.planted_init_scale, seed=cfg.init_seed)
    ref_rows, ref_trajs = _compare(
        cfg,
        reference,
        ref_start,
        cfg.lr,
        cfg.steps,
        cfg.gradient_kick,
        cfg.perturbed_radius,
        cfg.imputation_scale,
    )
    pl_rows, pl_trajs = _compare(
        cfg,
        planted,
        pl_start,
        cfg.planted_lr,
        cfg.planted_steps,
        cfg.planted_gradient_kick,
        10.0 * cfg.perturbed_radius,
        cfg.planted_imputation_scale,
    )

    def row(rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
        return next(r for r in rows if r["noise"].startswith(name))

    cap = reference.rank_cap
    gd_pl = row(pl_rows, "GD")
    noisy_pl = [r for r in pl_rows if r["noise"] != "GD" and r["diverged"] == 0]
    best = min(noisy_pl, key=lambda r: r["final_loss"]) if noisy_pl else None
    gd_final = pl_trajs["GD"][0].final
    if gd_pl["diverged"] == 0 and np.all(np.isfinite(gd_final)):
        gd_status = analysis.global_optimality(planted, gd_final)
    else:  # GD diverged (its check fails): no critical point to classify
        gd_status = {"classification": "diverged", "relative_gradient": float("nan")}
    bound_pl = analysis.subspace_rank_bound(planted, pl_start)
    rank_bound_loss = 0.5 * (planted.yy - float(np.sum(planted.regression_eigenvalues[:bound_pl])))
    raising = [r["noise"] for r in ref_rows if r["exceeds_subspace_bound"]]
    named = [row(ref_rows, name)["noise"] for name in _RANK_RAISING]
    over_optimum = {r["noise"]: r["final_loss"] / r["optimal_loss"] for r in pl_rows}
    at_optimum = [n for n, v in over_optimum.items() if v <= 1 + cfg.optimum_tolerance]
    checks = Checks()
    checks.compare(
        "no GD run diverged (reference and planted): GD runs that diverged",
        row(ref_rows, "GD")["diverged"] + gd_pl["diverged"],
        "==",
        0,
    )
    checks.compare(
        "gradient noise gives full product rank (reference, default rule)",
        row(ref_rows, "gradient noise")["numerical_rank"],
        "==",
        cap,
    )
    checks.compare(
        "weight noise gives full product rank (reference, default rule)",
        row(ref_rows, "weight noise")["numerical_rank"],
        "==",
        cap,
    )
    checks.holds(
        "gradient, weight, Langevin, perturbed GD and imputation noise raise the rank above the S_k bound",
        all(name in raising for name in named),
        measured=", ".join(raising) or "none",
        expected=", ".join(named),
    )
    exceeding = [
        f"{title}/{row(rows, name)['noise']}"
        for title, rows in (("reference", ref_rows), ("planted", pl_rows))
        for name in _SK_INVARIANT
        if row(rows, name)["exceeds_subspace_bound"]
    ]
    checks.holds(
        "GD, input noise, label noise and SGD never exceed the S_k bound",
        not exceeding,
        measured=", ".join(exceeding) or "none exceeds",
        expected="none exceeds",
    )
    checks.compare(
        "planted: GD stays below the planted rank: max rank", gd_pl["max_numerical_rank"], "<", cfg.planted_rank
    )
    checks.compare(
        "planted: a noisy run reaches a lower loss than GD: best noisy loss / GD loss",
        best["final_loss"] / gd_pl["final_loss"] if best is not None else float("nan"),
        "<",
        1.0,
    )
    checks.holds(
        "planted: GD ends at a rank-deficient saddle",
        gd_status["classification"].startswith("saddle"),
        measured=gd_status["classification"],
        expected="saddle",
    )
    checks.compare(
        f"planted: some noise reaches the global optimum: best final loss / optimum (within "
        f"{cfg.optimum_tolerance:.0%})",
        min(over_optimum.values()),
        "<=",
        1 + cfg.optimum_tolerance,
    )
    clean = [{k: v for k, v in r.items() if k != "product_singular_values_final"} for r in ref_rows]
    clean_pl = [{k: v for k, v in r.items() if k != "product_singular_values_final"} for r in pl_rows]
    metrics = {
        "reference": clean,
        "planted": clean_pl,
        "planted_gd_classification": gd_status["classification"],
        "planted_gd_relative_gradient": float(gd_status["relative_gradient"]),
        "planted_subspace_bound": int(bound_pl),
        "planted_best_loss_at_bound_rank": rank_bound_loss,
        "planted_optimal_loss": planted.optimal_loss,
        "planted_best_noise": None if best is None else best["noise"],
        "reference_rank_raising": raising,
        "planted_reaching_optimum": at_optimum,
        "planted_loss_over_optimum": over_optimum,
    }
    notes = [
        f"Noise levels: per-step kicks {cfg.gradient_kick:g} (reference) and {cfg.planted_gradient_kick:g} "
        "(planted) for gradient noise and Langevin (annealed: 10x that at t = 0); perturbed-GD threshold "
        f"in the script's MSE units (c = n d_N / 2 = {_mse_factor(reference):g}); weight noise std "
        f"{cfg.weight_noise}, DropConnect p {cfg.dropconnect}, dropout p {cfg.dropout}, input noise std "
        f"{cfg.input_noise}, label noise std {cfg.label_noise}, minibatch b = {cfg.batch_size}; "
        f"{cfg.n_runs} noise realisation(s) per model.",
        f"Planted: rank(A) = {cfg.planted_rank}, GD start's min_k dim S_k = {bound_pl}: GD cannot do "
        f"better than the best rank-{bound_pl} loss {rank_bound_loss:.2f} (optimum "
        f"{planted.optimal_loss:.2f}); GD ends at {gd_pl['final_loss']:.2f}, classified "
        f"'{gd_status['classification']}' (relative gradient {gd_status['relative_gradient']:.1e}).",
    ]
    if best is not None:
        notes.append(f"Planted: lowest noisy loss {best['final_loss']:.2f} by {best['noise']}.")
    notes += _table_notes("reference", ref_rows) + _table_notes("planted", pl_rows)
    notes.append(
        "Input noise, label noise and minibatches keep the gradient in the S_k structure, so they cannot "
        "raise the product rank beyond the start's S_k bound: any loss they gain comes from moving within "
        "it. Dropout and DropConnect mask units or weights and do break the invariant."
    )
    figures: list[str] = []
    first_ref = {name: t[0] for name, t in ref_trajs.items()}
    first_pl = {name: t[0] for name, t in pl_trajs.items()}
    names = [r["noise"] for r in ref_rows]
    invariant_flags = [any(n.startswith(k) for k in _SK_INVARIANT) for n in names]
    order = sorted(range(len(names)), key=lambda k: not invariant_flags[k])  # S_k-invariant ones on top

    def draw_summary(axes: Any) -> None:
        noise_rank_summary(
            [names[k] for k in order],
            [ref_rows[k]["numerical_rank"] for k in order],
            row(ref_rows, "GD")["subspace_bound_start"],
            cap,
            [invariant_flags[k] for k in order],
            [over_optimum[names[k]] for k in order],
            rank_bound_loss / planted.optimal_loss,
            axes=axes,
            reached=1 + cfg.optimum_tolerance,
        )

    save_figure(out_dir, "dln_noise_summary.png", draw_summary, figures, "wide", panels=(1, 2), share_y=True)
    _dln_figure(
        out_dir,
        "dln_noise_rank_reference.png",
        lambda ax: (
            product_rank(reference, first_ref, ax=ax),
            ax.set_title("Product rank under every noise model (no signal)"),
        ),
        figures,
    )
    _dln_figure(
        out_dir,
        "dln_noise_effective_rank_planted.png",
        lambda ax: (
            product_rank(planted, first_pl, ax=ax, measure="effective"),
            ax.set_title(f"Effective rank, planted rank-{cfg.planted_rank} signal"),
        ),
        figures,
    )
    _dln_figure(
        out_dir,
        "dln_noise_loss_planted.png",
        lambda ax: (
            loss_curves(first_pl, ax=ax, optimal_loss=planted.optimal_loss, logy=True),
            ax.set_title(f"Loss, planted rank-{cfg.planted_rank} signal"),
        ),
        figures,
    )
    captions = {
        "dln_noise_summary.png": (
            "Paper B's thesis in one figure. Left: final rank of the product W_N⋯W_1 on data without signal, "
            f"from a rank-{cfg.init_rank} start whose min_k dim S_k is "
            f"{row(ref_rows, 'GD')['subspace_bound_start']:g} (dashed). Input noise, label noise and "
            "minibatches (orange) keep the gradient in the S_k structure, so under exact GD they provably "
            "cannot pass the dashed line; gradient, weight, Langevin, perturbed-GD and imputation noise "
            "(blue) can and do. Right: on planted rank-"
            f"{cfg.planted_rank} data, final loss over the global optimum (log): the S_k-bound runs stay at "
            f"the best rank-{bound_pl} loss (dotted); a run within {cfg.optimum_tolerance:.0%} of 1 "
            "reaches the optimum."
        ),
        "dln_noise_rank_reference.png": (
            "Product rank against iterations for every noise model on the reference data (default rule; "
            "later curves are drawn thinner so overlapping ones stay visible)."
        ),
        "dln_noise_effective_rank_planted.png": (
            "Effective rank on the planted data: GD and the S_k-invariant noises stay at the start's rank; "
            "rank-raising noise spreads the spectrum."
        ),
        "dln_noise_loss_planted.png": (
            "Exact loss on the planted data (log); dotted: the global optimum. GD converges to the best "
            f"rank-{bound_pl} product, a saddle; noise that raises the rank can escape it."
        ),
    }
    return ExperimentResult(metrics, checks.passed, figures, notes, checks.details, captions)
