"""Configs check their own settings: ranges, lengths that must match, sizes within the others.

A setting outside what an experiment can use is refused when the config is built - by ``trajcore
run --set``, by every grid point of ``trajcore sweep`` before anything is computed, and by the
Python API - with one line naming the setting and what it expects. Settings that are valid but make
GD diverge are not refused: the experiment runs and its checks say so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from trajcore.cli import main
from trajcore.experiments import get, registry
from trajcore.experiments.matrix_factorization import SMFReference
from trajcore.experiments.settings import (
    ConfigError,
    above,
    at_least,
    between,
    build_config,
    check_limits,
    require,
)

#: every experiment of the package (a new one is covered without an edit here)
CHECKED = [name for name, e in registry().items() if e.fn.__module__.startswith("trajcore.experiments.")]


@pytest.mark.parametrize("name", CHECKED)
def test_default_and_demo_configs_are_valid(name):
    experiment = get(name)
    assert experiment.make_config({}) == experiment.default_config()
    assert experiment.make_config({}, demo=True) == experiment.demo_config()


BAD = [
    ("smf_reference", ["rank=30"], "setting rank=30: expected rank <= d = 20"),
    ("smf_reference", ["rank=1"], "setting sigma=10.0,5.0,3.0,1.0: expected 1 value (one per target eigenvalue"),
    (
        "smf_reference",
        ["sigma=5,-1,2,1"],
        "setting sigma=5.0,-1.0,2.0,1.0: expected 1e-100 <= each of sigma <= 1e+100, got -1.0",
    ),
    ("smf_reference", ["seeds=0,-1"], "setting seeds=0,-1: expected each of seeds >= 0, got -1"),
    ("smf_reference", ["lr=0"], "setting lr=0.0: expected lr > 0"),
    ("smf_reference", ["q=1"], "setting q=1.0: expected 0 < q < 1"),
    ("amf_reference", ["steps=0"], "setting steps=0: expected steps >= 1"),
    ("amf_reference", ["every=0"], "setting every=0: expected every >= 1"),
    ("amf_reference", ["m=2"], "setting s=10.0,5.0,1.0: expected at most min(m, n) = 2 values"),
    ("smf_scaling", ["alphas=1e-3"], "setting alphas=0.001: expected at least 2 different values"),
    ("smf_scaling", ["eps=2"], "setting eps=2.0: expected 0 < eps < 1"),
    ("smf_scaling", ["lr=1e-9"], "setting lr=1e-09: expected runs of at most 10000000 steps; these settings need"),
    ("smf_scaling", ["budget=0"], "setting budget=0.0: expected budget > 0"),
    (
        "smf_scaling",
        ["alpha=0.5"],
        "setting sigmas=0.5,1.0,2.0,4.0,8.0,16.0: expected a small init, alpha^2 * width < sigma",
    ),
    ("dln_paper_reference", ["steps=0"], "setting steps=0: expected steps >= 1"),
    ("dln_paper_reference", ["widths=10"], "setting widths=10: expected at least 2 widths (input and output)"),
    ("dln_paper_reference", ["init_rank=11"], "setting init_rank=11: expected init_rank <= min(widths) = 10"),
    ("dln_paper_reference", ["lr=1e308"], "setting lr=1e+308: expected 1e-100 <= lr <= 1e+100"),
    ("dln_paper_reference", ["widths=1,5,1"], "setting widths=1,5,1: expected input and output widths >= 2"),
    (
        "dln_noise_comparison",
        ["planted_noise=1e100"],
        "setting planted_noise=1e+100: expected 0 <= planted_noise <= 1000000",
    ),
    ("dln_noise_comparison", ["planted_rank=2"], "setting planted_singular_values=3.0,2.0,1.0: expected 2 values"),
    ("dln_noise_comparison", ["dropout=1"], "setting dropout=1.0: expected 0 <= dropout < 1"),
    ("dln_noise_comparison", ["batch_size=5000"], "setting batch_size=5000: expected batch_size <= n = 1000"),
    ("dln_noise_comparison", ["gradient_kick=0"], "setting gradient_kick=0.0: expected 1e-100 <= gradient_kick"),
    ("ostd_reference", ["steps=0"], "setting steps=0: expected steps >= 1"),
    ("ostd_reference", ["order=2"], "setting order=2: expected 3 <= order <= 10"),
    ("ostd_reference", ["c=5e-324"], "setting c=5e-324: expected 1e-100 <= each of c <= 1e+100"),
    ("ostd_reference", ["storage=sparse"], "setting storage=sparse: expected one of factored, dense, packed"),
    ("ostd_reference", ["c=1,2,3,4,5,6,7,8,9,10,11"], "expected at most d = 10 values (orthonormal components)"),
    ("ostd_escape_scaling", ["alphas=0.01,0.01"], "setting alphas=0.01,0.01: expected at least 2 different values"),
    ("ostd_escape_scaling", ["alphas=1e-100,0.01"], "expected values whose first escape fits in 10000000 steps"),
    ("mlp_digits_ck", ["steps=0"], "setting steps=0: expected steps >= 1"),
    ("mlp_digits_ck", ["hidden=0"], "setting hidden=0: expected each of hidden >= 1"),
    ("mlp_digits_ck", ["checkpoints=500"], "setting checkpoints=500: expected at most steps + 1 = 401"),
    ("mlp_digits_ck", ["loss=hinge"], "setting loss=hinge: expected mse or cross_entropy"),
    ("torch_architectures", ["optimizers=sgd"], "setting optimizers=sgd: expected one or more of sgd_momentum"),
    ("torch_architectures", ["width=1"], "setting width=1: expected width >= 2"),
    ("cnn_mnist_depth", ["depths=2,5"], "setting depths=2,5: expected 2 <= each of depths <= 4, got 5"),
    ("cnn_mnist_depth", ["n_train=6000"], "setting n_train=6000: expected at most 4000"),
]


@pytest.mark.parametrize(("name", "settings", "message"), BAD, ids=[f"{n}-{s[0]}" for n, s, _ in BAD])
def test_run_refuses_what_the_experiment_cannot_use_in_one_line(tmp_path, capsys, name, settings, message):
    out = tmp_path / "out"
    argv = ["run", name, *[x for s in settings for x in ("--set", s)], "--out", str(out)]
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("trajcore: error: setting ") and message in lines[0], lines
    assert not out.exists()


def test_sweep_refuses_a_grid_of_out_of_range_points_before_computing(tmp_path, capsys):
    spec, store = tmp_path / "spec.toml", tmp_path / "store"
    spec.write_text('experiment = "ostd_reference"\n[grid]\nsteps = [0, 10]\norder = [2, 4]\n')
    assert main(["sweep", str(spec), "--out", str(store), "--executor", "threads"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"\[grid\]: 3 of 4 point\(s\) do not fit ostd_reference, nothing computed: ", err)
    assert "setting steps=0: expected steps >= 1" in err and "setting order=2: expected 3 <= order <= 10" in err
    assert len(err.strip().splitlines()) == 1 and not store.exists()


def test_the_python_api_checks_the_same_settings():
    with pytest.raises(ConfigError, match=r"^setting steps=0: expected steps >= 1$"):
        SMFReference(steps=0)
    with pytest.raises(ValueError, match=r"setting sigma=1\.0,2\.0: expected 4 values"):
        SMFReference(sigma=(1.0, 2.0))
    assert SMFReference(rank=2, sigma=(3.0, 1.0)).rank == 2


DIVERGING = [
    ("dln_paper_reference", {"lr": 10.0}, "no run diverged: runs that diverged (GD and imputation)"),
    (
        "dln_noise_comparison",
        {"planted_lr": 1e5, "planted_steps": 100},
        "no GD run diverged (reference and planted): GD runs that diverged",
    ),
    ("ostd_reference", {"lr": 10.0, "steps": 3000}, "no seed diverged: seeds that diverged"),
    ("ostd_escape_scaling", {"lr": 10.0}, "no run diverged: runs that diverged"),
]


@pytest.mark.parametrize(("name", "settings", "check"), DIVERGING, ids=[n for n, _, _ in DIVERGING])
def test_a_step_size_that_diverges_runs_and_fails_a_check_without_warnings(name, settings, check):
    import warnings

    experiment = get(name)
    config = experiment.make_config(settings, demo=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NumPy's overflow warnings would raise here
        result = experiment.run(config)
    assert result.checks[check] is False


@dataclass(frozen=True)
class _Limited:
    n: int = 1
    x: float = 0.5
    xs: tuple[float, ...] = (0.5,)
    scale: float | None = None

    def __post_init__(self) -> None:
        check_limits(self, n=at_least(1), x=between(0, 1, high_open=True), xs=above(0), scale=above(0))
        require(self, "xs", len(self.xs) <= self.n, f"at most n = {self.n} values")


def test_limits_and_requirements_name_the_setting_and_the_range():
    assert build_config(_Limited, {"n": 2, "xs": [1, 2], "scale": None}) == _Limited(2, 0.5, (1.0, 2.0), None)
    for values, message in [
        ({"n": 0}, "setting n=0: expected n >= 1"),
        ({"x": 1}, "setting x=1.0: expected 0 <= x < 1"),
        ({"x": -0.5}, "setting x=-0.5: expected 0 <= x < 1"),
        ({"xs": [0]}, "setting xs=0.0: expected each of xs > 0"),
        ({"n": 3, "xs": [1, 0, 2]}, "setting xs=1.0,0.0,2.0: expected each of xs > 0, got 0.0"),
        ({"scale": 0}, "setting scale=0.0: expected scale > 0"),
        ({"xs": [1, 2]}, "setting xs=1.0,2.0: expected at most n = 1 values"),
    ]:
        with pytest.raises(ConfigError) as error:
            build_config(_Limited, values, context="limited")
        assert str(error.value) == message
