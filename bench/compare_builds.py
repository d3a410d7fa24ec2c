"""The same trajcore timings under different builds (GCC, clang, portable) in one run, as ratios.

    python bench/compare_builds.py --make /tmp/builds             # build the three, then compare
    python bench/compare_builds.py --build gcc=DIR --build clang=DIR2 --build portable=DIR3

Each DIR is a source tree with the extensions built in place (``setup.py build_ext --inplace``);
``--make DIR`` copies this tree to DIR/gcc, DIR/clang, DIR/portable and builds each (CC=clang
CXX=clang++; TRAJCORE_PORTABLE=1), keeping builds that are already there. The cases are the
matrix-factorization and tensor rows of compare_mf.py and compare_tensor.py, timed for trajcore alone
and single-threaded (the portable build has no OpenMP, so thread counts would otherwise differ). Every
build is timed in its own process, the builds taking turns round after round so that a change of load
on a shared machine hits all of them; a time is the median over rounds of per-round medians. The table
gives each build's time relative to the first build (1.00 = as fast; 1.20 = 20% slower).

Not a compare_* suite (bench/compare.py runs those on the installed build): it needs several builds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

BUILDS = {"gcc": {}, "clang": {"CC": "clang", "CXX": "clang++"}, "portable": {"TRAJCORE_PORTABLE": "1"}}


def cases(quick: bool) -> dict[str, Callable[[], object]]:
    """The timed calls, each a closure over inputs made once (imported in the worker process only)."""
    import numpy as np

    import trajcore as tc

    out: dict[str, Callable[[], object]] = {}
    # Matrix factorization (compare_mf.py).
    smf = tc.SymmetricMatrixFactorization.planted(d=20, rank=4, sigma=[10, 5, 3, 1], seed=0)
    U0 = tc.small_init((20, 20), 5e-7, seed=1)
    rec = tc.Record(every=1, coefficients="signal")
    out["MF reference d=20 r'=20, 500 steps, coefs/step"] = lambda: tc.run(
        smf, U0, lr=0.04, steps=500, record=rec, n_threads=1
    )
    for B, d, w in [(64 if quick else 256, 128, 8), (1024 if quick else 4096, 32, 4)]:
        dense = tc.SymmetricMatrixFactorization.planted(d=d, rank=4, seed=0, storage="dense")
        Ub = tc.small_init((B, d, w), 0.01, seed=1)
        none = tc.Record(every=100, coefficients=None)
        out[f"MF batch B={B} d={d} r'={w}, 100 steps, dense"] = lambda p=dense, U=Ub, r=none: tc.run(
            p, U, lr=0.01, steps=100, record=r, n_threads=1
        )
    factored = tc.SymmetricMatrixFactorization.planted(d=10000, rank=5, seed=0)
    Uf = tc.small_init((10000, 10), 1e-3, seed=1)
    recf = tc.Record(every=100, coefficients="signal")
    out["MF factored d=10000 r=5 r'=10, 100 steps"] = lambda: tc.run(
        factored, Uf, lr=0.01, steps=100, record=recf, n_threads=1
    )
    amf = tc.AsymmetricMatrixFactorization.planted(200, 300, 5, seed=0, storage="dense")
    W0 = tc.small_init((500, 10), 1e-3, seed=1)
    reca = tc.Record(every=10, coefficients="diagonal")
    out["MF asymmetric 200x300 r'=10, 1000 steps, dense"] = lambda: tc.run(
        amf, W0, lr=0.02, steps=1000, record=reca, n_threads=1
    )
    # Tensors (compare_tensor.py).
    ostd = tc.OrthogonalTensorDecomposition.planted(10, 4, 4, sigma=[10, 5, 3, 1], seed=0)
    Ut = tc.small_init((10, 10), 2e-2, seed=6)
    steps = 5_000 if quick else 20_000
    out[f"tensor reference l=4 d=10 m=10, {steps} steps"] = lambda: tc.run(
        ostd, Ut, lr=1e-3, steps=steps, record=tc.Record(every=1000), n_threads=1
    )
    dense_problem = tc.OrthogonalTensorDecomposition.planted(60, 4, 5, storage="dense", noise=0.01, seed=1)
    packed_problem = tc.OrthogonalTensorDecomposition(
        dense_problem.target.with_storage("packed"), basis=dense_problem.basis(), rank=5
    )
    U = 0.3 * np.random.default_rng(2).standard_normal((60, 20))
    dense_kernel, packed_kernel = dense_problem.build_kernel(20, None), packed_problem.build_kernel(20, None)
    out["tensor dense l=4 d=60 m=20, one gradient"] = lambda: dense_kernel.loss_and_grad(U)
    out["tensor packed l=4 d=60 m=20, one gradient"] = lambda: packed_kernel.loss_and_grad(U)
    rng = np.random.default_rng(3)
    d = 64 if quick else 128
    Zr = np.linalg.qr(rng.standard_normal((d, d)))[0]
    packed_t = tc.SymmetricTensor.from_factors(Zr, rng.standard_normal(d), 3).with_storage("packed")
    dense_t = packed_t.with_storage("dense")
    Uc = rng.standard_normal((d, 256))
    out[f"tensor dense l=3 d={d} m=256 contraction"] = lambda: dense_t.contract(Uc, n_threads=1)
    out[f"tensor packed l=3 d={d} m=256 contraction"] = lambda: packed_t.contract(Uc, n_threads=1)
    return out


def worker(quick: bool, repeat: int) -> None:
    """One round for the build on sys.path: {"build": build_info, "times": {case: median seconds}}."""
    sys.path.insert(0, HERE)
    from harness import median_time

    from trajcore import _core

    times = {name: median_time(fn, repeat=repeat, warmup=1) for name, fn in cases(quick).items()}
    print(json.dumps({"build": dict(_core.build_info()), "times": times}))


def make_builds(directory: str) -> list[tuple[str, str]]:
    made = []
    for name, env in BUILDS.items():
        target = os.path.join(directory, name)
        if not os.path.isdir(os.path.join(target, "trajcore")) or not any(
            f.startswith("_core") for f in os.listdir(os.path.join(target, "trajcore"))
        ):
            os.makedirs(target, exist_ok=True)
            files = subprocess.run(
                ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                cwd=ROOT,
                capture_output=True,
                check=True,
            ).stdout
            subprocess.run(["tar", "--null", "-cf", os.path.join(target, "src.tar"), "-T", "-"], cwd=ROOT, input=files)
            subprocess.run(["tar", "-xf", "src.tar"], cwd=target, check=True)
            print(f"building {name} in {target} ...", flush=True)
            with open(os.path.join(target, "build.log"), "w") as log:
                subprocess.run(
                    [sys.executable, "setup.py", "build_ext", "--inplace"],
                    cwd=target,
                    env={**os.environ, **env},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    check=True,
                )
        made.append((name, target))
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", action="append", default=[], metavar="NAME=DIR", help="a build tree (repeat)")
    parser.add_argument("--make", default=None, metavar="DIR", help="build gcc, clang and portable under DIR first")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per case and round")
    parser.add_argument("--quick", action="store_true", help="smaller cases")
    parser.add_argument("--json", default=None, help="also write the results as JSON here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.quick, args.repeat)
        return 0
    builds = [tuple(b.split("=", 1)) for b in args.build]
    if args.make:
        builds = make_builds(args.make) + builds
    if len(builds) < 2:
        parser.error("need at least two builds (--make DIR, or --build NAME=DIR twice)")
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name, _ in builds}
    info: dict[str, dict] = {}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    for r in range(args.rounds):
        for name, directory in builds:
            command = [sys.executable, os.path.abspath(__file__), "--worker", "--repeat", str(args.repeat)]
            done = subprocess.run(
                command + (["--quick"] if args.quick else []),
                env={**env, "PYTHONPATH": os.path.abspath(directory)},
                capture_output=True,
                text=True,
                check=True,
            )
            result = json.loads(done.stdout.strip().splitlines()[-1])
            info[name] = result["build"]
            rounds[name].append(result["times"])
        print(f"round {r + 1}/{args.rounds} done", flush=True)
    names = [name for name, _ in builds]
    for name in names:
        b = info[name]
        print(
            f"{name:<9} {b['compiler']}, kernels {b['kernel_isa']} (compiled: {', '.join(b['kernel_isas_compiled'])})"
        )
    medians = {n: {c: statistics.median(t[c] for t in rounds[n]) for c in rounds[n][0]} for n in names}
    first = names[0]
    header = f"{'case':<52} {first + ' (ms)':>12} " + " ".join(f"{n + '/' + first:>16}" for n in names[1:])
    print("\n" + header + "\n" + "-" * len(header))
    for case, t0 in medians[first].items():
        ratios = " ".join(f"{medians[n][case] / t0:16.2f}" for n in names[1:])
        print(f"{case:<52} {t0 * 1e3:12.3f} {ratios}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"builds": info, "medians": medians, "rounds": rounds}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
