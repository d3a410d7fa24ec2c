"""Threads, processes and signals: the core is re-entrant, Ctrl-C stops a run promptly, saves are
atomic, one sweep at a time writes a store, and a sweep's worker processes die with it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from subprocesses import child_env, experiments_env

import trajcore as tc
from trajcore import _core, _series
from trajcore.store import StoreError

LOCK_FILE = "sweep.lock"  # trajcore.store.StoreLock.NAME

ROOT = Path(__file__).resolve().parents[1]
N_THREADS = 8


def _jobs() -> list[tuple[Any, np.ndarray, dict[str, Any]]]:
    """Eight different runs (problems, noise, momentum) to execute at once."""
    smf = tc.SymmetricMatrixFactorization.planted(d=10, rank=3, seed=1)
    dense = tc.SymmetricMatrixFactorization.planted(d=8, rank=2, seed=2, storage="dense")
    amf = tc.AsymmetricMatrixFactorization(np.random.default_rng(3).standard_normal((6, 5)))
    jobs = []
    for i in range(N_THREADS):
        problem = (smf, dense, amf)[i % 3]
        init = tc.small_init((3, *problem.parameter_shape(4)), 0.05, seed=i)
        noise = [None, tc.GradientNoise(0.01), tc.Langevin(1e5), tc.PerturbedGD(0.01, 1e9, 5)][i % 4]
        kwargs = dict(
            lr=0.02,
            steps=150,
            noise=noise,
            seed=i,
            n_threads=1 + i % 2,
            momentum=0.5 * (i % 2),
            record=tc.Record(every=7, coefficients="all", iterates=True),
        )
        jobs.append((problem, init, kwargs))
    return jobs


def _arrays(traj: tc.Trajectory) -> list[np.ndarray]:
    return [traj.loss, traj.coefficients, traj.final, traj.iterates, np.asarray(traj.diverged_at)]


def test_runs_from_eight_threads_equal_sequential_runs() -> None:
    jobs = _jobs()
    sequential = [tc.run(p, x, **kw) for p, x, kw in jobs]
    for _ in range(2):
        with ThreadPoolExecutor(N_THREADS) as pool:
            concurrent = list(pool.map(lambda job: tc.run(job[0], job[1], **job[2]), jobs))
        for seq, con in zip(sequential, concurrent, strict=True):
            for a, b in zip(_arrays(seq), _arrays(con), strict=True):
                np.testing.assert_array_equal(a, b)


def test_one_kernel_shared_by_eight_threads() -> None:
    """Kernels are const: eight threads may drive the same kernel object on their own buffers."""
    problem = tc.SymmetricMatrixFactorization.planted(d=12, rank=3, seed=4)
    kernel = problem.build_kernel(5, "all")
    n, K, B, steps = kernel.state_size, kernel.n_observables, 4, 200
    rec = np.arange(0, steps + 1, 10, dtype=np.int64)
    lr = np.full(steps, 0.01)
    noise = [_core.NoiseTerm(_core.NoiseKind.gradient, scale=0.01)]

    def drive(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = tc.small_init((B, n), 0.1, seed=seed)
        loss, obs = np.full((B, rec.size), np.nan), np.full((B, rec.size, K), np.nan)
        kernel.run_chunk(
            x,
            None,
            np.full(B, -1),
            np.full(B, -1),
            np.full(B, 1e12),
            loss,
            obs,
            None,
            lr,
            rec,
            0,
            steps,
            steps,
            0.0,
            noise,
            seed,
            0,
            1,
        )
        return x, loss, obs

    sequential = [drive(s) for s in range(N_THREADS)]
    with ThreadPoolExecutor(N_THREADS) as pool:
        concurrent = list(pool.map(drive, range(N_THREADS)))
    for seq, con in zip(sequential, concurrent, strict=True):
        for a, b in zip(seq, con, strict=True):
            np.testing.assert_array_equal(a, b)


def test_series_statistics_from_eight_threads() -> None:
    rng = np.random.default_rng(5)
    series = [np.cumsum(rng.standard_normal((400, 50)), axis=0) for _ in range(N_THREADS)]
    funcs = (_series.monotonicity_index, _series.nonmonotone_mass, _series.monotone_fraction)
    sequential = [[f(s) for f in funcs] for s in series]
    with ThreadPoolExecutor(N_THREADS) as pool:
        concurrent = list(pool.map(lambda s: [f(s) for f in funcs], series))
    for seq, con in zip(sequential, concurrent, strict=True):
        for a, b in zip(seq, con, strict=True):
            np.testing.assert_array_equal(a, b)


# -- Ctrl-C --------------------------------------------------------------------------------------


def _default_sigint() -> None:
    """Child setup: SIGINT back to its default action. A process started in the background by a
    non-interactive shell (as CI runners may be) inherits an ignored SIGINT, and Python then installs
    no KeyboardInterrupt handler; the tests measure trajcore, not the runner's signal mask."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


_LONG_RUN = """
import sys, time
import numpy as np
import trajcore as tc

problem = tc.SymmetricMatrixFactorization.planted(d=40, rank=4, seed=0)
init = tc.small_init((4, 40, 8), 1e-3, seed=1)
reference = tc.run(problem, init, lr=0.01, steps=50, n_threads=2)
print("started", flush=True)
try:
    # 10**7 steps take minutes; the step sizes (steps,) are 80 MB, so this is a long run, not a big one.
    tc.run(problem, init, lr=0.01, steps=10**7, n_threads=2, record=tc.Record(every=10**5))
except KeyboardInterrupt:
    print("interrupted", time.perf_counter(), flush=True)
    if "{mode}" == "reraise":
        raise
# Nothing corrupt: the core computes exactly what it computed before the interrupt.
again = tc.run(problem, init, lr=0.01, steps=50, n_threads=2)
assert np.array_equal(again.loss, reference.loss) and np.array_equal(again.final, reference.final)
print("recovered", flush=True)
"""


def _interrupt_long_run(mode: str) -> tuple[subprocess.CompletedProcess[str], float]:
    env = child_env()
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_LONG_RUN.replace("{mode}", mode))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT / "tests",
        preexec_fn=_default_sigint,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    time.sleep(1.0)  # well inside the long run, its chunks now last ~0.1 s
    assert proc.poll() is None
    sent = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    line = proc.stdout.readline()
    latency = time.perf_counter() - sent
    # Read the rest through the same buffered pipe: readline may have buffered the child's next
    # lines already, which communicate() (reading the raw descriptors) would never see. The child
    # writes a traceback at most to stderr, far below a pipe's capacity.
    assert proc.stderr is not None
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.wait(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, line + out, err), latency


def test_ctrl_c_stops_a_long_run_within_a_second() -> None:
    result, latency = _interrupt_long_run("reraise")
    assert result.stdout.startswith("interrupted"), result.stderr
    assert latency < 1.0, f"KeyboardInterrupt after {latency:.2f} s"
    assert result.returncode != 0 and "KeyboardInterrupt" in result.stderr


def test_ctrl_c_leaves_the_core_usable() -> None:
    result, latency = _interrupt_long_run("recover")
    assert result.returncode == 0, result.stderr
    assert "recovered" in result.stdout and latency < 1.0


# -- atomic saves --------------------------------------------------------------------------------


def _trajectory(n_records: int = 50) -> tc.Trajectory:
    problem = tc.SymmetricMatrixFactorization.planted(d=6, rank=2, seed=0)
    return tc.run(
        problem,
        tc.small_init((2, 6, 3), 0.1, seed=0),
        lr=0.05,
        steps=n_records - 1,
        record=tc.Record(iterates=True),
    )


def test_save_interrupted_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = _trajectory(20), _trajectory(40)
    path = tmp_path / "run.npz"
    old.save(path)
    real_savez = np.savez

    def interrupted_savez(fh: Any, **arrays: Any) -> None:
        real_savez(fh, **arrays)  # the bytes are written, then Ctrl-C arrives before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr("trajcore.trajectory.np.savez", interrupted_savez)
    with pytest.raises(KeyboardInterrupt):
        new.save(path)
    with pytest.raises(KeyboardInterrupt):
        new.save(tmp_path / "fresh.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.npz"]
    np.testing.assert_array_equal(tc.Trajectory.load(path).iterates, old.iterates)


_SAVE_LOOP = """
import numpy as np, trajcore as tc
problem = tc.SymmetricMatrixFactorization.planted(d=60, rank=3, seed=0)
traj = tc.run(problem, tc.small_init((16, 60, 20), 0.1, seed=0), lr=0.01, steps=300,
              record=tc.Record(iterates=True))
traj.save("reference.npz")
print("saving", flush=True)
while True:
    traj.save("run.npz")
"""


def test_save_loop_interrupted_by_sigint(tmp_path: Path) -> None:
    """A real SIGINT in the middle of repeated ~50 MB saves: only complete files remain."""
    env = child_env()
    proc = subprocess.Popen(
        [sys.executable, "-c", _SAVE_LOOP],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
        preexec_fn=_default_sigint,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "saving"
    time.sleep(0.7)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert "KeyboardInterrupt" in err
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names in (["reference.npz"], ["reference.npz", "run.npz"]), names
    if "run.npz" in names:
        saved, reference = (
            tc.Trajectory.load(tmp_path / "run.npz"),
            tc.Trajectory.load(tmp_path / "reference.npz"),
        )
        np.testing.assert_array_equal(saved.iterates, reference.iterates)


# -- sweeps: one writer per store, workers that die with the sweep --------------------------------
_SLOW_SPEC = 'experiment = "tiny_smf"\n[base]\nsteps = 100\npause = {pause}\n[grid]\nseed = {{ range = [0, {n}] }}\n'


def _sweep_process(spec: Path, out: Path, log: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "trajcore", "sweep", str(spec), "--out", str(out), *extra],
        env=experiments_env(TRAJCORE_TEST_LOG=str(log)),
        cwd=ROOT / "tests",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _wait_for(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_second_sweep_on_a_store_in_use_refuses_and_nothing_is_computed_twice(tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(_SLOW_SPEC.format(pause=0.25, n=40))  # 5 s on 2 workers
    out, log = tmp_path / "store", tmp_path / "log"
    first = _sweep_process(spec, out, log, "--workers", "2", "--chunk-size", "1")
    try:
        _wait_for(lambda: (out / "runs").is_dir() and any((out / "runs").glob("*.json")), 60, "the first runs")
        assert first.poll() is None
        lock = json.loads((out / LOCK_FILE).read_text())
        assert lock["pid"] == first.pid and lock["host"] == socket.gethostname()
        # the same command again, while the first one writes
        second = _sweep_process(spec, out, tmp_path / "second.log", "--workers", "2")
        _, err = second.communicate(timeout=60)
        assert second.returncode == 1, err
        assert f"another sweep is writing to this store (pid {first.pid} on {socket.gethostname()}" in err
        assert len(err.strip().splitlines()) == 1
        assert not (tmp_path / "second.log").exists()  # the second sweep computed nothing
        assert first.poll() is None  # it was refused while the first one ran
        out_text, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert first.returncode == 0, err
    assert "40 computed" in out_text
    computed = [json.dumps(entry["config"], sort_keys=True) for entry in map(json.loads, log.read_text().splitlines())]
    assert len(computed) == len(set(computed)) == 40  # each run once
    assert not (out / LOCK_FILE).exists()  # released at the end


def test_store_lock_is_exclusive_and_a_dead_owners_lock_is_taken_over(tmp_path: Path) -> None:
    from trajcore.store import StoreLock

    assert StoreLock.NAME == LOCK_FILE
    root = tmp_path / "store"
    with StoreLock(root):
        # another open file description: flock excludes it even inside one process
        with pytest.raises(StoreError, match=rf"another sweep is writing to this store \(pid {os.getpid()} on "):
            StoreLock(root).acquire()
    assert not (root / LOCK_FILE).exists()
    # a lock file left by a sweep killed on this host: its pid is gone, and so is its flock
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = {"pid": int(dead.stdout), "host": socket.gethostname(), "started": "earlier"}
    (root / LOCK_FILE).write_text(json.dumps(stale))
    with StoreLock(root) as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    # one from another host cannot be checked from here: refused, with the way out
    (root / LOCK_FILE).write_text(json.dumps({**stale, "host": "elsewhere.example"}))
    with pytest.raises(StoreError, match=r"locked by a sweep on host elsewhere\.example .* delete .*sweep\.lock"):
        StoreLock(root).acquire()


def _descendants(pid: int) -> set[int]:
    """Process ids of every live descendant of ``pid`` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited (re-parented orphans may wait for a reaper)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")
def test_worker_processes_die_with_a_killed_sweep(tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(_SLOW_SPEC.format(pause=0.2, n=60))
    out = tmp_path / "store"
    sweep = _sweep_process(spec, out, tmp_path / "log", "--workers", "2", "--chunk-size", "1")
    try:
        _wait_for(lambda: (out / "runs").is_dir() and any((out / "runs").glob("*.json")), 60, "the first runs")
        helpers = _descendants(sweep.pid)  # two workers and multiprocessing's resource tracker
        assert len(helpers) >= 3, helpers
        os.kill(sweep.pid, signal.SIGKILL)  # the sweep only, not its process group
        sweep.wait(timeout=10)
        deadline = time.monotonic() + 5
        while any(map(_alive, helpers)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in helpers if _alive(pid)], "processes of the sweep outlived it"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(sweep.pid, signal.SIGKILL)
        sweep.communicate()
