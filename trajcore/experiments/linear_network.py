"""Deep-linear-network experiments (PAPERS.md section 5, Paper B): rank dynamics under noise.

Units. Paper B's script minimises PyTorch's ``MSELoss`` (the mean over the ``n d_N`` entries), trajcore
the sum ``1/2 ||P X - Y||_F^2``. The configs state step sizes and gradient-noise levels in the
script's units and convert with ``c = n d_N / 2``: ``lr = lr_mse / c``, gradient-noise scale
``s = s_mse * c`` (so the per-step kick ``lr * s`` in weight space is the same), Langevin
``beta = beta_mse / c`` and the perturbed-GD gradient threshold ``* c``. Weight, input and label noise
and dropout are in their own (data or weight) units.
"""

from __future__ import annotations

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
from . import ExperimentResult, experiment, save_figure

__all__ = ["DLNReference", "DLNNoiseComparison"]


def _dln_figure(out_dir: Path | None, name: str, draw: Any, figures: list[str]) -> None:
    save_figure(out_dir, name, draw, figures, figsize=(6.5, 4.5))


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


@experiment(
    "dln_paper_reference",
    DLNReference,
    "Deep linear network, Paper B reference: product rank under GD (flat) and singular-value imputation (rising)",
    demo={"init_seeds": (1,)},
    flagship=True,
)
def dln_paper_reference(cfg: DLNReference, out_dir: Path | None) -> ExperimentResult:
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
    checks = {
        "GD product rank never exceeds min_k dim S_k(0)": bool(np.all(rank_gd <= bound_arr)),
        "GD flat at the script's absolute threshold": bool(np.all(atol_gd == cfg.init_rank)),
        "GD flat after the first step at the default relative tolerance": bool(
            np.all(rank_gd[:, 1:] == rank_gd[:, 1:2])
        ),
        "imputation raises the product rank above GD (relative tolerance)": bool(
            np.all(rank_imp[:, -1] > rank_gd[:, -1])
        ),
        "imputation raises the product rank above GD (absolute 1e-6)": bool(np.all(atol_imp[:, -1] > atol_gd[:, -1])),
        "imputation reaches full rank at the default relative tolerance": bool(
            np.all(rank_imp[:, -1] == problem.rank_cap)
        ),
    }
    figures: list[str] = []
    first = {"GD": gd[0], "singular-value imputation": noisy[0]}
    _dln_figure(out_dir, "dln_reference_rank.png", lambda ax: product_rank(problem, first, ax=ax), figures)
    _dln_figure(
        out_dir,
        "dln_reference_rank_atol.png",
        lambda ax: product_rank(problem, first, ax=ax, atol=cfg.script_atol),
        figures,
    )
    _dln_figure(out_dir, "dln_reference_loss.png", lambda ax: loss_curves(first, ax=ax), figures)
    _dln_figure(
        out_dir,
        "dln_reference_gd_spectrum.png",
        lambda ax: product_singular_values(problem, gd[0], ax=ax),
        figures,
    )
    _dln_figure(
        out_dir,
        "dln_reference_imputation_spectrum.png",
        lambda ax: product_singular_values(problem, noisy[0], ax=ax),
        figures,
    )
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
    return ExperimentResult(metrics, checks, figures, notes)


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
)
def dln_noise_comparison(cfg: DLNNoiseComparison, out_dir: Path | None) -> ExperimentResult:
    from ..plot import loss_curves, product_rank

    reference = DeepLinearNetwork.paper_data(cfg.widths, n=cfg.n, seed=cfg.data_seed)
    planted = DeepLinearNetwork.planted(
        cfg.widths,
        n=cfg.n,
        rank=cfg.planted_rank,
        singular_values=cfg.planted_singular_values,
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
    gd_status = analysis.global_optimality(planted, gd_final)
    bound_pl = analysis.subspace_rank_bound(planted, pl_start)
    rank_bound_loss = 0.5 * (planted.yy - float(np.sum(planted.regression_eigenvalues[:bound_pl])))
    invariant = ["GD", "input noise", "label noise", "minibatch SGD"]
    checks = {
        "gradient noise gives full product rank (reference, default rule)": row(ref_rows, "gradient noise")[
            "numerical_rank"
        ]
        == cap,
        "weight noise gives full product rank (reference, default rule)": row(ref_rows, "weight noise")[
            "numerical_rank"
        ]
        == cap,
        "GD, input noise, label noise and SGD never exceed the S_k bound": all(
            not row(rows, name)["exceeds_subspace_bound"] for rows in (ref_rows, pl_rows) for name in invariant
        ),
        "planted: GD stays below the planted rank": gd_pl["max_numerical_rank"] < cfg.planted_rank,
        "planted: a noisy run reaches a lower loss than GD": best is not None
        and best["final_loss"] < gd_pl["final_loss"],
        "planted: GD ends at a rank-deficient saddle": gd_status["classification"].startswith("saddle"),
    }
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
    _dln_figure(out_dir, "dln_noise_rank_reference.png", lambda ax: product_rank(reference, first_ref, ax=ax), figures)
    _dln_figure(
        out_dir,
        "dln_noise_effective_rank_planted.png",
        lambda ax: product_rank(planted, first_pl, ax=ax, measure="effective"),
        figures,
    )
    _dln_figure(
        out_dir,
        "dln_noise_loss_planted.png",
        lambda ax: loss_curves(first_pl, ax=ax, optimal_loss=planted.optimal_loss, logy=True),
        figures,
    )
    return ExperimentResult(metrics, {k: bool(v) for k, v in checks.items()}, figures, notes)
