"""Deep linear networks: gradients, trajectories, noise models and the rank claims of PAPERS.md section 5."""

from __future__ import annotations

import numpy as np
import pytest

import trajcore as tc
from trajcore import _core
from trajcore.experiments import get

# -- independent NumPy references -------------------------------------------------------------------


def split(widths, x):
    """Layer matrices W_1..W_N of a flat state."""
    out, offset = [], 0
    for i in range(len(widths) - 1):
        size = widths[i + 1] * widths[i]
        out.append(x[offset : offset + size].reshape(widths[i + 1], widths[i]))
        offset += size
    return out


def chain(Ws, lo, hi, dim):
    """W_hi ... W_lo (1-based, inclusive); identity of size dim when empty."""
    P = np.eye(dim)
    for W in Ws[lo - 1 : hi]:
        P = W @ P
    return P


def reference_loss_grad(widths, x, X, Y):
    """1/2 ||P X - Y||^2 and grad W_i = (W_N..W_{i+1})^T (P X - Y) X^T (W_{i-1}..W_1)^T, from the data."""
    Ws = split(widths, x)
    N = len(Ws)
    P = chain(Ws, 1, N, widths[0])
    R = P @ X - Y
    grads = []
    for i in range(1, N + 1):
        after = chain(Ws, i + 1, N, widths[i])
        before = chain(Ws, 1, i - 1, widths[0])
        grads.append((after.T @ R @ X.T @ before.T).ravel())
    return 0.5 * np.sum(R * R), np.concatenate(grads)


def reference_gd(widths, x0, X, Y, lr, steps):
    """Plain GD; returns losses (steps+1,), product spectra (steps+1, k), final x."""
    x = x0.copy()
    losses, spectra = [], []
    for t in range(steps + 1):
        loss, g = reference_loss_grad(widths, x, X, Y)
        losses.append(loss)
        spectra.append(np.linalg.svd(chain(split(widths, x), 1, len(widths) - 1, widths[0]), compute_uv=False))
        if t < steps:
            x = x - lr * g
    return np.array(losses), np.array(spectra), x


@pytest.fixture
def small():
    rng = np.random.default_rng(3)
    widths = [5, 4, 3, 6]
    X = rng.standard_normal((5, 40))
    Y = rng.standard_normal((6, 40))
    return tc.DeepLinearNetwork(widths, X, Y), rng


def test_gradient_matches_reference_and_finite_differences(small):
    problem, rng = small
    x = 0.5 * rng.standard_normal(problem.n_params)
    kernel = problem.build_kernel(problem.n_params, True)
    loss, g = kernel.loss_and_grad(x)
    ref_loss, ref_g = reference_loss_grad(list(problem.widths), x, problem.X, problem.Y)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(g, ref_g, rtol=1e-11, atol=1e-11 * np.abs(ref_g).max())
    np.testing.assert_allclose(problem.grad(x), ref_g, rtol=1e-11, atol=1e-11 * np.abs(ref_g).max())
    assert problem.loss(x) == pytest.approx(ref_loss, rel=1e-13)
    h = 1e-6
    for i in rng.choice(problem.n_params, 12, replace=False):
        e = np.zeros(problem.n_params)
        e[i] = h
        fd = (problem.loss(x + e) - problem.loss(x - e)) / (2 * h)
        assert fd == pytest.approx(g[i], rel=1e-6, abs=1e-6 * np.abs(g).max())


def test_batched_numpy_reference_and_layer_lists(small):
    problem, rng = small
    xs = rng.standard_normal((3, problem.n_params))
    np.testing.assert_allclose(problem.grad(xs)[1], problem.grad(xs[1]), rtol=1e-13)
    layers = problem.layers(xs)
    np.testing.assert_array_equal(problem.flatten(layers), xs)
    assert problem.loss(layers)[2] == pytest.approx(problem.loss(xs[2]))
    P = problem.product(xs[0])
    np.testing.assert_allclose(P, chain(split(list(problem.widths), xs[0]), 1, 3, 5), rtol=1e-13)


@pytest.mark.parametrize("every", [1, 3])
def test_noiseless_trajectory_matches_numpy_loop(small, every):
    problem, rng = small
    x0 = 0.4 * rng.standard_normal(problem.n_params)
    steps, lr = 60, 2e-3
    traj = tc.run(problem, x0, lr=lr, steps=steps, record=tc.Record(every=every))
    losses, spectra, final = reference_gd(list(problem.widths), x0, problem.X, problem.Y, lr, steps)
    np.testing.assert_allclose(traj.final, final, rtol=1e-10, atol=1e-10 * np.abs(final).max())
    np.testing.assert_allclose(traj.loss, losses[traj.steps], rtol=1e-10)
    obs = problem.observables(traj)
    s = spectra[traj.steps]
    np.testing.assert_allclose(obs["product_singular_values"], s, rtol=1e-10, atol=1e-12 * s.max())


def test_recorded_observables_match_numpy(small):
    problem, rng = small
    widths = list(problem.widths)
    x = rng.standard_normal(problem.n_params)
    Ws = split(widths, x)
    Ws[1] = np.outer(rng.standard_normal(3), rng.standard_normal(4))  # a rank-1 middle layer
    x = np.concatenate([W.ravel() for W in Ws])
    loss, out = problem.build_kernel(problem.n_params, True).observe(x)
    layout = problem.observable_layout(True)
    P = chain(Ws, 1, 3, 5)
    s = np.linalg.svd(P, compute_uv=False)
    np.testing.assert_allclose(out[layout["product_singular_values"]], s, rtol=1e-12, atol=1e-14 * s[0])
    numerical, effective, stable = out[layout["product_ranks"]]
    assert numerical == np.linalg.matrix_rank(P) == 1
    p = s[s > 0] / s.sum()
    assert effective == pytest.approx(np.exp(-np.sum(p * np.log(p))), rel=1e-12)
    assert stable == pytest.approx(np.sum(s**2) / s[0] ** 2, rel=1e-12)
    assert list(out[layout["layer_ranks"]]) == [np.linalg.matrix_rank(W) for W in Ws]
    balance = [np.linalg.norm(Ws[j + 1].T @ Ws[j + 1] - Ws[j] @ Ws[j].T) for j in range(2)]
    np.testing.assert_allclose(out[layout["balancedness"]], balance, rtol=1e-12)
    dims = [np.linalg.matrix_rank(np.hstack([Ws[k], Ws[k + 1].T])) for k in range(2)]
    assert list(out[layout["subspace_dims"]]) == dims
    assert out[layout["optimum_distance"]][0] == pytest.approx(np.linalg.norm(P - problem.optimum), rel=1e-12)
    assert loss == pytest.approx(reference_loss_grad(widths, x, problem.X, problem.Y)[0], rel=1e-11)


def test_observable_selection_and_rank_tolerance(small):
    problem, rng = small
    x0 = 0.3 * rng.standard_normal(problem.n_params)
    traj = tc.run(problem, x0, lr=1e-3, steps=3, record=tc.Record(coefficients="spectrum"))
    assert set(problem.observables(traj)) == {
        "product_singular_values",
        "numerical_rank",
        "effective_rank",
        "stable_rank",
        "optimum_distance",
    }
    strict = tc.DeepLinearNetwork(problem.widths, problem.X, problem.Y, rank_atol=1e9)
    t2 = tc.run(strict, x0, lr=1e-3, steps=3, record=tc.Record(coefficients=["product_ranks"]))
    assert np.all(strict.observables(t2)["numerical_rank"] == 0)
    assert tc.run(problem, x0, lr=1e-3, steps=2, record=tc.Record(coefficients=None)).coefficients.shape == (
        3,
        0,
    )


def test_optimum_is_reduced_rank_regression():
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((6, 80)), rng.standard_normal((5, 80))
    problem = tc.DeepLinearNetwork([6, 2, 5], X, Y)  # the bottleneck caps the rank at 2
    # Independent route: the best rank-2 approximation of the least-squares fit P_ols X, mapped back by X^+.
    fitted = np.linalg.lstsq(X.T, Y.T, rcond=None)[0].T @ X
    U, s, Vt = np.linalg.svd(fitted, full_matrices=False)
    P_star = (U[:, :2] * s[:2]) @ Vt[:2] @ np.linalg.pinv(X)
    np.testing.assert_allclose(problem.optimum, P_star, rtol=1e-9, atol=1e-11)
    assert problem.optimal_loss == pytest.approx(0.5 * np.sum((P_star @ X - Y) ** 2), rel=1e-10)
    full = tc.DeepLinearNetwork([6, 8, 5], X, Y)  # no cap: ordinary least squares
    assert full.optimal_loss == pytest.approx(0.5 * np.sum((fitted - Y) ** 2), rel=1e-10)


def test_data_path_equals_moment_path(small):
    problem, rng = small
    x0 = 0.4 * rng.standard_normal(problem.n_params)
    plain = tc.run(problem, x0, lr=1e-3, steps=20)
    # Zero-scale input noise forces the sample path (moments rebuilt from the rows) without changing anything.
    data = tc.run(problem, x0, lr=1e-3, steps=20, noise=tc.InputNoise(0.0))
    np.testing.assert_allclose(data.final, plain.final, rtol=1e-11, atol=1e-13)
    full_batch = tc.DeepLinearNetwork(problem.widths, problem.X, problem.Y, batch_size=problem.n)
    np.testing.assert_allclose(tc.run(full_batch, x0, lr=1e-3, steps=20).final, plain.final, rtol=1e-12)


@pytest.mark.parametrize("kind", ["input", "label", "weight"])
def test_gaussian_model_noise_matches_reference(small, kind):
    problem, rng = small
    widths = list(problem.widths)
    x0 = 0.4 * rng.standard_normal(problem.n_params)
    lr, steps, scale, seed = 1e-3, 3, 0.3, 11
    spec = {"input": tc.InputNoise(scale), "label": tc.LabelNoise(scale), "weight": tc.WeightNoise(scale)}[kind]
    traj = tc.run(problem, np.stack([x0, x0]), lr=lr, steps=steps, noise=spec, seed=seed)
    for b in range(2):
        x = x0.copy()
        for t in range(steps):
            X, Y, w = problem.X, problem.Y, x
            if kind == "input":
                X = X + scale * _core.normal_draws(seed, b, t, 1, X.size).reshape(X.shape[1], X.shape[0]).T
            elif kind == "label":
                Y = Y + scale * _core.normal_draws(seed, b, t, 1, Y.size).reshape(Y.shape[1], Y.shape[0]).T
            else:
                w = x + scale * _core.normal_draws(seed, b, t, 1, x.size)
            x = x - lr * reference_loss_grad(widths, w, X, Y)[1]
        np.testing.assert_allclose(traj.final[b], x, rtol=1e-10, atol=1e-12)
    assert not np.array_equal(traj.final[0], traj.final[1])


@pytest.mark.parametrize("kind", ["dropout", "dropconnect"])
def test_masks_match_reference(small, kind):
    problem, rng = small
    widths = list(problem.widths)
    x0 = 0.4 * rng.standard_normal(problem.n_params)
    lr, steps, p, seed = 1e-3, 3, 0.3, 13
    spec = tc.Dropout(p) if kind == "dropout" else tc.DropConnect(p)
    traj = tc.run(problem, x0, lr=lr, steps=steps, noise=spec, seed=seed)
    X, Y, n = problem.X, problem.Y, problem.n
    x = x0.copy()
    for t in range(steps):
        if kind == "dropconnect":
            # One mask over all weights (state order), kept entries scaled by 1 / (1 - p).
            mask = np.where(_core.uniform_draws(seed, 0, t, 1, x.size) < p, 0.0, 1.0 / (1 - p))
            g = reference_loss_grad(widths, x * mask, X, Y)[1] * mask
        else:
            # Per-sample masks on hidden layers 1..N-1, drawn layer after layer, sample-major.
            hidden = widths[1:-1]
            u = _core.uniform_draws(seed, 0, t, 1, n * sum(hidden))
            masks, offset = [], 0
            for d in hidden:
                masks.append(np.where(u[offset : offset + n * d] < p, 0.0, 1.0 / (1 - p)).reshape(n, d).T)
                offset += n * d
            Ws = split(widths, x)
            H = [X]
            for i, W in enumerate(Ws):
                H.append(W @ H[-1] * (masks[i] if i < len(masks) else 1.0))
            G = H[-1] - Y
            grads = [None] * len(Ws)
            for i in range(len(Ws) - 1, -1, -1):
                grads[i] = (G @ H[i].T).ravel()
                if i > 0:
                    G = (Ws[i].T @ G) * masks[i - 1]
            g = np.concatenate(grads)
        x = x - lr * g
    np.testing.assert_allclose(traj.final, x, rtol=1e-10, atol=1e-12)
    assert not np.allclose(traj.final, tc.run(problem, x0, lr=lr, steps=steps).final)


def sampled_indices(seed, trajectory, step, n, b):
    """Partial Fisher-Yates shuffle driven by stream 0: the first b of a random permutation of n."""
    perm = np.arange(n)
    for j, u in enumerate(_core.uniform_draws(seed, trajectory, step, 0, b)):
        r = min(j + int(u * (n - j)), n - 1)
        perm[j], perm[r] = perm[r], perm[j]
    return perm[:b]


def test_minibatch_matches_reference_and_is_unbiased(small):
    problem, rng = small
    widths = list(problem.widths)
    x0 = 0.4 * rng.standard_normal(problem.n_params)
    batch = tc.DeepLinearNetwork(problem.widths, problem.X, problem.Y, batch_size=10)
    lr, seed = 1e-3, 5
    traj = tc.run(batch, x0, lr=lr, steps=4, seed=seed)
    x = x0.copy()
    for t in range(4):
        idx = sampled_indices(seed, 0, t, problem.n, 10)
        assert len(set(idx.tolist())) == 10  # without replacement
        g = reference_loss_grad(widths, x, problem.X[:, idx], problem.Y[:, idx])[1]
        x = x - lr * (problem.n / 10) * g
    np.testing.assert_allclose(traj.final, x, rtol=1e-10, atol=1e-12)
    # Over many trajectories the mean step is the full-batch gradient (the n / b scaling is unbiased).
    lr = 1e-6
    many = tc.run(batch, np.repeat(x0[None], 400, axis=0), lr=lr, steps=1, seed=5, record=tc.Record(coefficients=None))
    steps = (x0 - many.final) / lr
    spread = steps.std(axis=0) / np.sqrt(400)
    assert np.all(np.abs(steps.mean(axis=0) - problem.grad(x0)) <= 5 * spread + 1e-9)


def test_noisy_runs_bitwise_identical_across_threads():
    problem = tc.DeepLinearNetwork.paper_data((4, 5, 3, 4), n=60, seed=1, batch_size=20)
    x0 = problem.truncated_init(1, seed=2, batch=5)
    noise = [
        tc.GradientNoise(0.1),
        tc.WeightNoise(0.05),
        tc.DropConnect(0.2),
        tc.Dropout(0.2),
        tc.InputNoise(0.1),
        tc.LabelNoise(0.1),
        tc.SingularValueImputation(scale=0.1),
    ]
    runs = [tc.run(problem, x0, lr=1e-4, steps=25, noise=noise, seed=9, n_threads=k) for k in (1, 2)]
    np.testing.assert_array_equal(runs[0].final, runs[1].final)
    np.testing.assert_array_equal(runs[0].coefficients, runs[1].coefficients)
    np.testing.assert_array_equal(runs[0].loss, runs[1].loss)
    part = tc.run(problem, x0[3:], lr=1e-4, steps=25, noise=noise, seed=9, trajectory_offset=3)
    np.testing.assert_array_equal(part.final, runs[0].final[3:])


def test_imputation_follows_paper_rule():
    problem = tc.DeepLinearNetwork.paper_data((6, 6, 6), n=50, seed=0)
    x0 = problem.truncated_init(2, seed=1)
    seed, lr = 4, 1e-300  # a GD step below rounding: the change is the imputation alone
    spec = tc.SingularValueImputation(scale=1.0, jitter=1e-3)
    traj = tc.run(problem, x0, lr=lr, steps=1, noise=spec, seed=seed)
    draws = iter(_core.normal_draws(seed, 0, 0, 1, 8))
    for W_before, W_after in zip(problem.layers(x0), problem.layers(traj.final), strict=True):
        s = np.linalg.svd(W_before, compute_uv=False)
        r = int(np.sum(s > 6 * np.finfo(float).eps * s[0]))
        assert r == 2
        value, jitter = next(draws), 1e-3 * next(draws)
        expected = s.copy()
        expected[r] = s[r - 1] + jitter if abs(value) < s[r - 1] else value
        got = np.linalg.svd(W_after, compute_uv=False)
        np.testing.assert_allclose(got, np.sort(np.abs(expected))[::-1], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    "noise",
    [None, tc.InputNoise(0.5), tc.LabelNoise(0.5), "minibatch"],
    ids=["gd", "input", "label", "minibatch"],
)
@pytest.mark.parametrize("start", ["truncated", "aligned"])
def test_rank_never_exceeds_subspace_bound(noise, start):
    problem = tc.DeepLinearNetwork.planted((6, 6, 6, 6), n=200, rank=4, noise=0.1, seed=0)
    if noise == "minibatch":
        problem = tc.DeepLinearNetwork(problem.widths, problem.X, problem.Y, batch_size=20)
        noise = None
    x0 = problem.truncated_init(1, seed=3) if start == "truncated" else problem.aligned_init(2, 0.8, seed=3)
    bound = tc.analysis.subspace_rank_bound(problem, x0)
    assert bound == 2
    traj = tc.run(problem, x0, lr=2e-4, steps=300, noise=noise, seed=1, record=tc.Record(every=3))
    obs = problem.observables(traj)
    assert not traj.diverged
    assert np.max(obs["numerical_rank"]) <= bound
    # S_k only shrinks in exact arithmetic; rounding leaves ~1e-14 relative residue outside it, which the
    # default rule (max(m, n) eps) can count, so the invariant is checked at a 1e-12 relative tolerance.
    dims_end = tc.analysis.subspace_dimensions(problem, traj.final, rtol=1e-12)
    assert np.all(dims_end <= tc.analysis.subspace_dimensions(problem, x0, rtol=1e-12))
    assert obs["numerical_rank"][-1] == bound  # GD does use the room it has


def test_weight_density_noise_gives_full_rank_on_reference():
    problem = tc.DeepLinearNetwork.paper_data(seed=0)
    x0 = problem.truncated_init(1, seed=1)
    lr = 2e-7  # the script's lr 1e-3 on the MSE loss
    record = tc.Record(coefficients="spectrum")
    for noise in (tc.GradientNoise(1e-5 / lr), tc.WeightNoise(0.1)):
        traj = tc.run(problem, x0, lr=lr, steps=100, noise=noise, seed=3, record=record)
        assert problem.observables(traj)["numerical_rank"][-1] == 10
    gd = tc.run(problem, x0, lr=lr, steps=100, record=record)
    assert problem.observables(gd)["numerical_rank"][-1] == 2


def test_reference_experiment_reproduces():
    experiment = get("dln_paper_reference")
    result = experiment.run(experiment.demo_config())
    assert all(result.checks.values()), result.checks
    gd, imp = result.metrics["gd_rank_atol"][0], result.metrics["imputation_rank_atol"][0]
    assert gd == [1.0] * len(gd)  # flat at the script's threshold
    assert imp[-1] > imp[0] and imp[-1] >= 5  # rising


def test_planted_noisy_run_beats_gd_stuck_at_saddle():
    problem = tc.DeepLinearNetwork.planted((6, 6, 6, 6), n=300, rank=3, sigma=[3, 2, 1], seed=0)
    x0 = problem.aligned_init(1, 0.5, seed=1)
    gd = tc.run(problem, x0, lr=1.5e-4, steps=800, record=tc.Record(every=50, coefficients="spectrum"))
    noisy = tc.run(
        problem,
        x0,
        lr=1.5e-4,
        steps=800,
        noise=tc.SingularValueImputation(scale=0.1),
        seed=2,
        record=tc.Record(every=50, coefficients="spectrum"),
    )
    status = tc.analysis.global_optimality(problem, gd.final)
    assert status["classification"] == "saddle (rank-deficient critical point)"
    assert problem.observables(gd)["numerical_rank"][-1] == 1
    assert noisy.loss[-1] < 0.1 * gd.loss[-1]
    assert noisy.loss[-1] == pytest.approx(problem.optimal_loss, rel=0.05)


def test_init_helpers():
    problem = tc.DeepLinearNetwork.paper_data((4, 7, 3, 5), n=30)
    x = problem.default_init(seed=0, batch=2)
    for W, (rows, cols) in zip(problem.layers(x[0]), problem.layer_shapes, strict=True):
        assert W.shape == (rows, cols) and np.all(np.abs(W) <= 1 / np.sqrt(cols))
    np.testing.assert_array_equal(problem.default_init(seed=0), x[0])
    assert [np.linalg.matrix_rank(W) for W in problem.layers(problem.truncated_init(2, seed=1))] == [2, 2, 2]
    aligned = problem.layers(problem.aligned_init(2, 0.7, seed=3))
    for j in range(2):
        np.testing.assert_allclose(aligned[j + 1].T @ aligned[j + 1], aligned[j] @ aligned[j].T, atol=1e-12)
    assert np.linalg.matrix_rank(problem.product(problem.aligned_init(2, 0.7))) == 2
    assert np.std(problem.small_init(1e-3, seed=0)) < 2e-3


def test_bad_inputs():
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((4, 10)), rng.standard_normal((3, 10))
    with pytest.raises(ValueError, match="widths: d_0"):
        tc.DeepLinearNetwork([5, 2, 3], X, Y)
    with pytest.raises(ValueError, match="widths: d_N"):
        tc.DeepLinearNetwork([4, 2, 2], X, Y)
    with pytest.raises(ValueError, match="samples"):
        tc.DeepLinearNetwork([4, 2, 3], X, Y[:, :5])
    with pytest.raises(ValueError, match="widths"):
        tc.DeepLinearNetwork([4], X, Y)
    with pytest.raises(TypeError, match="widths"):
        tc.DeepLinearNetwork(4, X, Y)
    with pytest.raises(ValueError, match="batch_size"):
        tc.DeepLinearNetwork([4, 2, 3], X, Y, batch_size=11)
    with pytest.raises(ValueError, match="rank_rtol, rank_atol"):
        tc.DeepLinearNetwork([4, 2, 3], X, Y, rank_rtol=1e-3, rank_atol=1e-3)
    for make in (lambda: tc.WeightNoise(-0.1), lambda: tc.InputNoise(-1.0), lambda: tc.LabelNoise(-1.0)):
        with pytest.raises(ValueError, match="scale"):
            make()
    with pytest.raises(ValueError, match="scale"):
        tc.SingularValueImputation(scale=-1.0)
    for p in (1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="p:"):
            tc.Dropout(p)
        with pytest.raises(ValueError, match="p:"):
            tc.DropConnect(p)
    with pytest.raises(ValueError, match="probability"):
        _core.NoiseTerm(_core.NoiseKind.dropout, probability=1.0)
    problem = tc.DeepLinearNetwork([4, 2, 3], X, Y)
    with pytest.raises(ValueError, match="init: expected 14 parameters"):
        tc.run(problem, np.zeros(13), lr=1e-3, steps=1)
    with pytest.raises(ValueError, match="unknown observable group"):
        tc.run(problem, np.zeros(14), lr=1e-3, steps=1, record=tc.Record(coefficients="ranks"))
    smf = tc.SymmetricMatrixFactorization.planted(4, 1)
    with pytest.raises(ValueError, match="does not support"):
        tc.run(smf, np.zeros((4, 2)), lr=1e-3, steps=1, noise=tc.Dropout(0.1))
    with pytest.raises(ValueError, match="rank"):
        problem.aligned_init(3)


def test_balancedness_drift_is_second_order_in_the_step():
    # D_j = W_{j+1}^T W_{j+1} - W_j W_j^T changes by exactly lr^2 (G_{j+1}^T G_{j+1} - G_j G_j^T) per GD step,
    # so over a fixed time lr * steps the recorded drift from a balanced start is proportional to lr.
    problem = tc.DeepLinearNetwork.planted((5, 4, 4, 3), n=100, rank=2, seed=2)
    x0 = problem.aligned_init(2, 0.6, seed=1)
    drift = []
    for lr, steps in ((4e-4, 50), (2e-4, 100), (1e-4, 200)):
        traj = tc.run(problem, x0, lr=lr, steps=steps, record=tc.Record(every=steps, coefficients=["balancedness"]))
        obs = problem.observables(traj)["balancedness"]
        assert np.all(obs[0] < 1e-13)
        drift.append(obs[-1])
    np.testing.assert_allclose(drift[0] / drift[1], 2.0, rtol=0.05)
    np.testing.assert_allclose(drift[1] / drift[2], 2.0, rtol=0.05)
    x1 = tc.run(problem, x0, lr=1e-3, steps=1).final
    W0, W1 = problem.layers(x0), problem.layers(x1)
    G = problem.layers(problem.grad(x0))
    for j in range(2):
        change = (W1[j + 1].T @ W1[j + 1] - W1[j] @ W1[j].T) - (W0[j + 1].T @ W0[j + 1] - W0[j] @ W0[j].T)
        exact = 1e-6 * (G[j + 1].T @ G[j + 1] - G[j] @ G[j].T)
        np.testing.assert_allclose(change, exact, atol=1e-12 * max(1.0, np.abs(exact).max()) + 1e-14)


def test_recorded_loss_is_accurate_near_an_exact_fit():
    # Noise-free planted data: at P = A + tiny the moment form 1/2(<P Sxx, P> - 2 <P, Syx> + ||Y||^2)
    # cancels almost completely; the recorded loss must still match the data residual.
    problem = tc.DeepLinearNetwork.planted((4, 4, 4), n=50, rank=4, noise=0.0, seed=0)
    U, s, Vt = np.linalg.svd(problem.signal)
    W1 = np.sqrt(s)[:, None] * Vt
    W2 = U * np.sqrt(s) + 1e-7 * np.random.default_rng(0).standard_normal((4, 4))
    x = problem.flatten([W1, W2])
    exact = 0.5 * np.sum((W2 @ W1 @ problem.X - problem.Y) ** 2)
    assert exact < 1e-10 * problem.yy
    recorded = tc.run(problem, x, lr=1e-6, steps=0).loss[0]
    assert recorded == pytest.approx(exact, rel=1e-8)
    assert problem.build_kernel(problem.n_params, True).observe(x)[0] == pytest.approx(exact, rel=1e-8)


def test_noise_comparison_experiment_reports_every_model():
    experiment = get("dln_noise_comparison")
    result = experiment.run(experiment.demo_config())
    assert all(result.checks.values()), result.checks
    names = [row["noise"] for row in result.metrics["reference"]]
    assert len(names) == 12 and names == [row["noise"] for row in result.metrics["planted"]]
    for row in result.metrics["reference"] + result.metrics["planted"]:
        assert {"numerical_rank", "effective_rank", "rank_atol", "final_loss"} <= set(row)
