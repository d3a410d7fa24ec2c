"""Deep linear networks: trajcore against a NumPy loop and a PyTorch CPU loop; thread scaling.

Cases (issue 4): Paper B's reference experiment (widths 10-10-10-10, n = 1000, 100 iterations, the
product's singular values recorded every step) against the same loop written in NumPy and in
PyTorch (float64, autograd, ``torch.linalg.svdvals`` every step); a batch of 512 noisy trajectories
(singular-value imputation, the paper's noise) on 2 threads against 1.
"""

from __future__ import annotations

import numpy as np
from harness import Report, median_time

import trajcore as tc

SECTION = "linear-net"
LR = 2e-7  # Paper B's lr 1e-3 on the MSE loss, on 1/2 ||P X - Y||^2 with n d_N = 10,000
STEPS = 100


def reference_problem() -> tuple[tc.DeepLinearNetwork, np.ndarray]:
    problem = tc.DeepLinearNetwork.paper_data((10, 10, 10, 10), n=1000, seed=0)
    return problem, problem.truncated_init(1, seed=1)


def numpy_loop(problem: tc.DeepLinearNetwork, x0: np.ndarray, lr: float, steps: int) -> np.ndarray:
    """The loop a researcher writes: forward and backward on the data, the product's SVD every step."""
    Ws = [W.copy() for W in problem.layers(x0)]
    X, Y = problem.X, problem.Y
    spectra = np.empty((steps + 1, 10))
    for t in range(steps + 1):
        P = Ws[2] @ Ws[1] @ Ws[0]
        spectra[t] = np.linalg.svd(P, compute_uv=False)
        if t == steps:
            break
        H = [X]
        for W in Ws:
            H.append(W @ H[-1])
        G = H[-1] - Y
        grads = [np.empty(0)] * 3
        for i in range(2, -1, -1):
            grads[i] = G @ H[i].T
            G = Ws[i].T @ G
        for i in range(3):
            Ws[i] -= lr * grads[i]
    return spectra


def torch_loop(torch, problem: tc.DeepLinearNetwork, x0: np.ndarray, lr: float, steps: int):
    """The same loop in PyTorch (float64 on the CPU): autograd backward, SGD update, svdvals every step."""
    Ws = [torch.tensor(W.copy(), requires_grad=True) for W in problem.layers(x0)]
    X, Y = torch.from_numpy(problem.X), torch.from_numpy(problem.Y)
    spectra = []
    for t in range(steps + 1):
        with torch.no_grad():
            spectra.append(torch.linalg.svdvals(Ws[2] @ Ws[1] @ Ws[0]))
        if t == steps:
            break
        loss = 0.5 * ((Ws[2] @ (Ws[1] @ (Ws[0] @ X)) - Y) ** 2).sum()
        loss.backward()
        with torch.no_grad():
            for W in Ws:
                W -= lr * W.grad
                W.grad = None
    return torch.stack(spectra)


def compare(report: Report) -> None:
    problem, x0 = reference_problem()
    record = tc.Record(every=1, coefficients=["product_singular_values"])
    case = "Paper B reference, 100 steps, spectrum/step"

    def run_trajcore():
        return tc.run(problem, x0, lr=LR, steps=STEPS, record=record, n_threads=1)

    # trajcore is timed before any anchor runs: NumPy's OpenBLAS threads keep spinning for a while
    # after a call and would share the core with the run being measured.
    repeat = 5 if report.quick else 15
    t_tc = median_time(run_trajcore, repeat=repeat)
    # The loops compute the same trajectory (checked, so the timing compares like with like).
    spectra_tc = problem.observables(run_trajcore())["product_singular_values"]
    spectra_np = numpy_loop(problem, x0, LR, STEPS)
    assert np.allclose(spectra_tc, spectra_np, rtol=1e-8, atol=1e-12)
    t_np = median_time(lambda: numpy_loop(problem, x0, LR, STEPS), repeat=repeat)
    report.add(SECTION, case, "NumPy loop", t_tc, t_np, 5.0)
    try:
        import torch
    except ImportError:
        report.skip(SECTION, case, "PyTorch CPU loop", "torch missing")
    else:
        torch.set_num_threads(1)
        spectra_torch = torch_loop(torch, problem, x0, LR, STEPS).numpy()
        assert np.allclose(spectra_tc, spectra_torch, rtol=1e-8, atol=1e-12)
        t_torch = median_time(lambda: torch_loop(torch, problem, x0, LR, STEPS), repeat=repeat)
        report.add(SECTION, case, "PyTorch CPU loop (1 thread)", t_tc, t_torch, 10.0)

    # A batch of 512 noisy trajectories: 2 threads against 1 (same bits either way).
    batch = 128 if report.quick else 512
    starts = problem.truncated_init(1, seed=1, batch=batch)
    noise = tc.SingularValueImputation(threshold=1e-6)
    spectrum = tc.Record(every=1, coefficients="spectrum")

    def noisy(threads: int):
        return tc.run(problem, starts, lr=LR, steps=STEPS, noise=noise, seed=3, record=spectrum, n_threads=threads)

    assert np.array_equal(noisy(1).coefficients, noisy(2).coefficients)
    t1 = median_time(lambda: noisy(1), repeat=3)
    t2 = median_time(lambda: noisy(2), repeat=3)
    report.add(SECTION, f"B={batch} imputation runs, 100 steps, 2 threads", "trajcore on 1 thread", t2, t1, 1.7)
