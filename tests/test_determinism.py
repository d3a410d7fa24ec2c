"""A seed fixes a run bitwise: for n_threads 1 and 2, for any batch split, and across processes."""

from __future__ import annotations

import hashlib
import inspect
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from subprocesses import child_env

import trajcore as tc
from trajcore.noise import NoiseSpec
from trajcore.problem import Problem

ROOT = Path(__file__).resolve().parents[1]

#: one small instance of each variant of every problem family in trajcore (Problem.examples)
PROBLEMS: dict[str, Callable[[], Problem]] = {
    name: (lambda family=family, name=name: family.examples()[name])
    for family in Problem.families
    if family.__module__.startswith("trajcore.")
    for name in family.examples()
}

#: every noise spec, strong enough to matter in 60 steps (extend when a spec lands on main)
NOISES: dict[str, Any] = {
    "none": None,
    "gradient": tc.GradientNoise(0.05),
    "gradient_annealed": tc.GradientNoise(0.05, anneal=0.55),
    "langevin": tc.Langevin(beta=1e4),
    "perturbed_gd": tc.PerturbedGD(radius=0.02, threshold=1e3, interval=7),
    "combined": [tc.GradientNoise(0.02), tc.Langevin(beta=1e5), tc.PerturbedGD(0.01, 1e3, 11)],
    "annealed": tc.noise.AnnealedGradientNoise(0.05),
    "imputation": tc.noise.SingularValueImputation(scale=1.0, jitter=1e-2, threshold=0.2),  # small layers impute
    "weight": tc.noise.WeightNoise(0.05),
    "dropconnect": tc.noise.DropConnect(0.2),
    "dropout": tc.noise.Dropout(0.2),
    "input": tc.noise.InputNoise(0.1),
    "label": tc.noise.LabelNoise(0.1),
    "model_combined": [tc.noise.Dropout(0.1), tc.noise.LabelNoise(0.05), tc.GradientNoise(0.01)],
}


def _specs(noise: Any) -> list[NoiseSpec]:
    return [] if noise is None else list(noise) if isinstance(noise, list) else [noise]


def _cases() -> list[tuple[str, str]]:
    """Every problem with every noise spec it supports (model-level noise only where implemented)."""
    problems = {name: factory() for name, factory in PROBLEMS.items()}
    return [
        (p, n)
        for p, problem in problems.items()
        for n, noise in NOISES.items()
        if all(spec.acts_on_parameters or spec.kind in problem.model_noise for spec in _specs(noise))
    ]


def _run(problem_name: str, noise_name: str, n_threads: int, batch: slice = slice(0, 6)) -> tc.Trajectory:
    problem = PROBLEMS[problem_name]()
    init = tc.small_init((6, *problem.parameter_shape(3)), 0.1, seed=5)[batch]
    return tc.run(
        problem,
        init,
        lr=0.005 if isinstance(problem, tc.DeepLinearNetwork) else 0.03,  # its loss sums over samples
        steps=60,
        noise=NOISES[noise_name],
        seed=12345,
        n_threads=n_threads,
        momentum=0.3,
        trajectory_offset=batch.start or 0,
        record=tc.Record(every=4, coefficients="all", iterates=True),
    )


def _arrays(traj: tc.Trajectory) -> list[np.ndarray]:
    return [traj.steps, traj.loss, traj.coefficients, traj.iterates, traj.final, np.asarray(traj.diverged_at)]


def _digest(traj: tc.Trajectory) -> str:
    h = hashlib.sha256()
    for a in _arrays(traj):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _assert_bitwise(a: tc.Trajectory, b: tc.Trajectory) -> None:
    for x, y in zip(_arrays(a), _arrays(b), strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()


@pytest.mark.parametrize("problem_name, noise_name", _cases())
def test_thread_count_does_not_change_results(problem_name: str, noise_name: str) -> None:
    one = _run(problem_name, noise_name, n_threads=1)
    two = _run(problem_name, noise_name, n_threads=2)
    _assert_bitwise(one, two)
    assert not np.any(one.diverged)
    if noise_name != "none":  # the noise is really there: it changes the run
        assert not np.array_equal(one.final, _run(problem_name, "none", n_threads=1).final)


@pytest.mark.parametrize("problem_name", list(PROBLEMS))
def test_model_noise_is_what_the_kernel_declares_and_the_rest_is_refused(problem_name: str) -> None:
    """Python's ``model_noise`` and the C++ kernel's declared kinds are one vocabulary; a model-level
    spec the problem does not support is an error naming it, before anything runs."""
    problem = PROBLEMS[problem_name]()
    kernel = problem.compiled(3, None).kernel
    assert set(problem.model_noise) == set(type(kernel).model_noise)
    init = tc.small_init(problem.parameter_shape(3), 0.1, seed=5)
    for spec in {spec for specs in NOISES.values() for spec in _specs(specs) if not spec.acts_on_parameters}:
        if spec.kind not in problem.model_noise:
            with pytest.raises(ValueError, match=spec.kind):
                tc.run(problem, init, lr=0.01, steps=2, noise=spec)


@pytest.mark.parametrize("problem_name", list(PROBLEMS))
def test_a_trajectory_names_its_observables(problem_name: str, tmp_path: Path) -> None:
    """One distinct name per recorded observable, in the order of the last axis, kept by save/load."""
    traj = _run(problem_name, "none", n_threads=1)
    labels = traj.observable_labels
    assert labels is not None and len(labels) == traj.coefficients.shape[-1] == len(set(labels))
    traj.save(tmp_path / "run.npz")
    assert tc.Trajectory.load(tmp_path / "run.npz").observable_labels == labels


@pytest.mark.parametrize("problem_name", list(PROBLEMS))
def test_batch_split_does_not_change_results(problem_name: str) -> None:
    whole = _run(problem_name, "combined", n_threads=2)
    first, second = (
        _run(problem_name, "combined", 1, slice(0, 2)),
        _run(problem_name, "combined", 2, slice(2, 6)),
    )
    for name in ("loss", "coefficients", "iterates", "final", "diverged_at"):
        joined = np.concatenate([getattr(first, name), getattr(second, name)])
        assert joined.tobytes() == np.asarray(getattr(whole, name)).tobytes(), name


_CHILD = """
import json, sys
sys.path.insert(0, {tests!r})
import test_determinism as td
print(json.dumps({{f"{{p}}/{{n}}": td._digest(td._run(p, n, n_threads=2)) for p, n in td._cases()}}))
"""


def test_results_are_identical_across_processes() -> None:
    env = child_env(PYTHONHASHSEED="123", OMP_NUM_THREADS="2")
    child = subprocess.run(
        [sys.executable, "-c", _CHILD.format(tests=str(ROOT / "tests"))],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT / "tests",
        timeout=300,
    )
    assert child.returncode == 0, child.stderr
    theirs = json.loads(child.stdout.strip().splitlines()[-1])
    ours = {f"{p}/{n}": _digest(_run(p, n, n_threads=1)) for p, n in _cases()}
    assert theirs == ours


def test_every_problem_and_noise_spec_is_covered() -> None:
    """Every exported problem has examples (so PROBLEMS covers it); new noise specs must be added to NOISES."""
    exported = [getattr(tc, name) for name in tc.__all__]
    problems = {c for c in exported if inspect.isclass(c) and issubclass(c, Problem) and c is not Problem}
    covered = {type(factory()) for factory in PROBLEMS.values()}
    assert problems <= covered, f"problems without a determinism case: {problems - covered}"
    specs = {c for c in vars(tc.noise).values() if inspect.isclass(c) and issubclass(c, NoiseSpec)} - {NoiseSpec}
    used = {type(spec) for p, n in _cases() for spec in _specs(NOISES[n])}  # run with at least one problem
    assert specs <= used, f"noise specs without a determinism case: {specs - used}"
