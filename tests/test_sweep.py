"""Sweeps: spec expansion, the checksummed store, resumability (SIGKILL), corruption, executors
(local processes, a real Dask cluster on loopback, the command line with --scheduler)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tiny_experiments  # registers tiny_smf
from subprocesses import TESTS, experiments_env, run_cli

from trajcore.cli import main
from trajcore.experiments import get
from trajcore.experiments.settings import canonical_json, run_id
from trajcore.store import RunStore, StoreError, load_summary
from trajcore.sweep import (
    SpecError,
    SweepError,
    compute_chunk,
    dask_executor,
    expand,
    local_executor,
    parse_spec,
    run_sweep,
)

# 4 init scales x 50 seeds = 200 runs of a d=8 SMF, a few milliseconds each.
SPEC_200 = """
experiment = "tiny_smf"
[base]
steps = 300
[grid]
alpha = [1e-2, 1e-3, 1e-4, 1e-5]
seed = { range = [0, 50] }
"""


def _store_files(root: Path) -> dict[str, bytes]:
    """The store's files (sweep record, run files including hidden ones, summary) by relative path."""
    files = [root / "sweep.json", root / "summary.csv", *sorted((root / "runs").iterdir())]
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def _log(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _logged_ids(log: Path) -> list[str]:
    """Ids of the runs computed (one per finished computation, in order)."""
    return [run_id("tiny_smf", get("tiny_smf").make_config(entry["config"])) for entry in _log(log)]


# -- spec ----------------------------------------------------------------------------------------
def test_spec_expands_to_the_grid_with_stable_ids():
    spec = parse_spec(SPEC_200)
    experiment, runs = expand(spec)
    assert experiment.name == "tiny_smf" and len(runs) == 200
    assert len({r.id for r in runs}) == 200
    first = runs[0].config
    assert (first.alpha, first.seed, first.steps) == (1e-2, 0, 300)
    # the id is the hash of the canonical config: independent of how the config was written
    same = experiment.make_config({"seed": "0", "alpha": "0.01", "steps": 300.0})
    assert run_id("tiny_smf", same) == runs[0].id
    # n_threads is an execution setting: it does not change the id
    assert (
        run_id("tiny_smf", experiment.make_config({"seed": 0, "alpha": 1e-2, "steps": 300, "n_threads": 2}))
        == runs[0].id
    )
    # duplicate grid points are one run
    _, dup = expand(parse_spec('experiment = "tiny_smf"\n[grid]\nd = [8, 8.0, 9]'))
    assert [r.config.d for r in dup] == [8, 9]


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ('experiment = "tiny_smf"\n[grid]\nseed = [1,, 2]\nalpha = [3.0]', r"malformed TOML: .*line 3"),
        ('experiment = "nope"', r"unknown experiment 'nope'; known: .*tiny_smf"),
        (
            'experiment = "tiny_smf"\n[grid]\nsede = [1, 2]',
            r"unknown key 'sede'.*valid keys: d \(int\), rank",
        ),
        ('experiment = "tiny_smf"\n[base]\nsteps = 2.5', r"steps=2\.5.*expected int"),
        ('experiment = "tiny_smf"\n[grid]\nseed = 3', r"grid\.seed: expected a list"),
        ('experiment = "tiny_smf"\nbogus = 1', r"unknown key\(s\) bogus"),
        ('experiment = "tiny_smf"\n[grid]\nseed = { range = [0, 10000000000000] }', r"range of 10000000000000 values"),
        ('experiment = "tiny_smf"\n[grid]\nseed = { range = [0, 5, 0] }', r"range step must not be zero"),
        ('experiment = "tiny_smf"\n[grid]\nseed = { range = [0, 1000] }\nd = { range = [0, 1001] }', r"1001000 points"),
        ('experiment = "tiny_smf"\n[base]\nd=3\n[grid]\nd = [1, 2]', r"in both \[base\] and \[grid\]"),
    ],
)
def test_bad_specs_are_rejected_with_a_reason(text, pattern):
    with pytest.raises(SpecError, match=pattern):
        expand(parse_spec(text))


# -- the store -----------------------------------------------------------------------------------
def test_run_files_are_checksummed_and_corruption_is_recomputed(tmp_path, monkeypatch):
    spec = parse_spec(SPEC_200.replace("range = [0, 50]", "range = [0, 5]"))
    out = tmp_path / "store"
    first = run_sweep(spec, out)
    assert (first.total, first.computed, first.skipped) == (20, 20, 0)
    reference = _store_files(out)
    store = RunStore(out)
    ids = sorted(p.stem for p in store.runs_dir.glob("*.json"))
    # a bit flip inside a number that still parses, a truncated file, a stale temporary
    flipped = store.run_path(ids[3])
    text = flipped.read_text()
    flipped.write_text(
        re.sub(r'"final_loss":(\d)', lambda m: f'"final_loss":{(int(m.group(1)) + 1) % 10}', text, count=1)
    )
    truncated = store.run_path(ids[7])
    truncated.write_bytes(truncated.read_bytes()[:50])
    (store.runs_dir / f".{ids[9]}.json.123.abcd.tmp").write_text('{"payload": {"id"')
    scan = store.scan()
    assert sorted(scan.corrupt) == sorted([ids[3], ids[7]])
    assert len(scan.complete) == 18 and len(scan.temporaries) == 1

    log = tmp_path / "log"
    monkeypatch.setenv("TRAJCORE_TEST_LOG", str(log))
    again = run_sweep(spec, out)
    assert (again.computed, again.skipped, again.corrupt) == (2, 18, 2)
    assert sorted(_logged_ids(log)) == sorted([ids[3], ids[7]])
    assert _store_files(out) == reference
    assert not list(store.runs_dir.glob(".*.tmp"))


def test_summary_is_rebuilt_from_the_run_files(tmp_path):
    spec = parse_spec(SPEC_200.replace("range = [0, 50]", "range = [0, 3]"))
    out = tmp_path / "store"
    run_sweep(spec, out)
    (out / "summary.csv").write_text("garbage\n")
    frame = load_summary(out)
    rows = frame.to_dict("records") if hasattr(frame, "to_dict") else frame
    assert len(rows) == 12
    for row in rows:
        payload = RunStore(out).read_run(RunStore(out).run_path(row["id"]))
        assert row["final_loss"] == payload["result"]["metrics"]["final_loss"]
        assert row["alpha"] == payload["config"]["alpha"]
    assert (out / "summary.csv").read_text().startswith("id,alpha,")


def test_a_failing_run_keeps_the_finished_ones_and_the_rerun_continues(tmp_path, monkeypatch):
    spec = parse_spec(SPEC_200.replace("range = [0, 50]", "range = [0, 6]").replace("1e-4, 1e-5", "1e-4"))
    out = tmp_path / "store"
    monkeypatch.setenv("TRAJCORE_TEST_FAIL_SEED", "3")
    with pytest.raises(
        SweepError, match=r"3 of 18 run\(s\) failed: run [0-9a-f]{16} .*'seed': 3.*asked to fail.*rerun"
    ):
        run_sweep(spec, out, chunk_size=6)
    # the runs after the failing one in its task were still computed: only seed 3 is missing
    stored = RunStore(out).scan().complete.values()
    points = sorted({(p["config"]["alpha"], p["config"]["seed"]) for p in stored})
    assert points == sorted((a, s) for a in (1e-2, 1e-3, 1e-4) for s in range(6) if s != 3)
    failures = json.loads((out / "failures.json").read_text())
    assert sorted(f["config"]["alpha"] for f in failures) == [1e-4, 1e-3, 1e-2]
    assert all(f["config"]["seed"] == 3 and "asked to fail on seed 3" in f["error"] for f in failures)
    monkeypatch.delenv("TRAJCORE_TEST_FAIL_SEED")
    log = tmp_path / "log"
    monkeypatch.setenv("TRAJCORE_TEST_LOG", str(log))
    outcome = run_sweep(spec, out)
    assert (outcome.skipped, outcome.computed) == (15, 3)
    assert len(_logged_ids(log)) == 3
    assert not (out / "failures.json").exists()


# -- executors: identical results ----------------------------------------------------------------
def test_chunk_results_equal_a_direct_run():
    experiment, runs = expand(parse_spec(SPEC_200))
    outcome = compute_chunk(experiment, runs[:3])
    assert outcome["failures"] == []
    for run, payload in zip(runs[:3], outcome["payloads"], strict=True):
        direct = experiment.run(run.config, None)
        assert payload["result"]["metrics"]["final_loss"] == direct.metrics["final_loss"]
        assert payload["id"] == run.id


@pytest.fixture(scope="module")
def reference_200(tmp_path_factory):
    """The 200-run store computed in this process, one task after another: the reference."""
    serial = tmp_path_factory.mktemp("serial")
    outcome = run_sweep(parse_spec(SPEC_200), serial)
    assert outcome.computed == 200
    return _store_files(serial), outcome.rows


def test_reference_store_is_the_direct_computation(reference_200):
    files, rows = reference_200
    assert len(files) == 202  # sweep.json, summary.csv, 200 run files
    experiment, runs = expand(parse_spec(SPEC_200))
    by_id = {row["id"]: row for row in rows}
    for run in runs[::37]:
        assert by_id[run.id]["final_loss"] == experiment.run(run.config, None).metrics["final_loss"]
    # every task ran with one OpenMP thread (the machine default is the CPU count)
    assert {row["omp_max_threads"] for row in rows} == {1}


@pytest.mark.parametrize("kind", ["processes", "threads"])
def test_local_executors_give_the_reference_store(tmp_path, reference_200, kind):
    out = tmp_path / kind
    with local_executor(2, kind=kind) as pool:
        # a thread pool limits OpenMP per thread and leaves the process-wide BLAS setting alone
        outcome = run_sweep(parse_spec(SPEC_200), out, executor=pool, workers=2, limit_blas=kind == "processes")
    assert outcome.computed == 200
    assert _store_files(out) == reference_200[0]


def test_dask_cluster_and_command_line_give_the_reference_store(tmp_path, monkeypatch, reference_200):
    distributed = pytest.importorskip("distributed")
    reference = reference_200[0]
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(SPEC_200)
    monkeypatch.setenv("PYTHONPATH", experiments_env()["PYTHONPATH"])  # the worker processes import the test experiment
    monkeypatch.setenv("TRAJCORE_TEST_LOG", str(tmp_path / "dask.log"))  # inherited by the workers
    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        address = cluster.scheduler_address
        dask_store = tmp_path / "dask"
        with dask_executor(address, timeout=20) as executor:
            outcome = run_sweep(parse_spec(SPEC_200), dask_store, executor=executor, workers=2)
        assert outcome.computed == 200
        assert _store_files(dask_store) == reference
        # the runs were computed by the two worker processes, each exactly once
        log = _log(tmp_path / "dask.log")
        assert sorted(_logged_ids(tmp_path / "dask.log")) == sorted(p.stem for p in (dask_store / "runs").iterdir())
        assert len({entry["pid"] for entry in log}) == 2 and os.getpid() not in {entry["pid"] for entry in log}

        cli_store = tmp_path / "cli"
        command = ["sweep", str(spec_file), "--scheduler", address, "--out", str(cli_store)]
        proc = run_cli(*command)
        assert proc.returncode == 0, proc.stderr
        assert "200 computed" in proc.stdout
        assert _store_files(cli_store) == reference


# -- resumability ----------------------------------------------------------------------------------
def test_a_sweep_killed_halfway_resumes_without_loss_or_repetition(tmp_path):
    spec_text = SPEC_200.replace("range = [0, 50]", "range = [0, 30]").replace(
        "steps = 300", "steps = 300\npause = 0.02"
    )
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(spec_text)
    total = 120

    out = tmp_path / "killed"
    first_log = tmp_path / "first.log"
    args = [
        "sweep",
        str(spec_file),
        "--out",
        str(out),
        "--workers",
        "2",
        "--chunk-size",
        "1",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "trajcore", *args],
        env=experiments_env(TRAJCORE_TEST_LOG=str(first_log)),
        cwd=TESTS,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    runs_dir = out / "runs"
    while time.monotonic() < deadline:
        done = len(list(runs_dir.glob("*.json"))) if runs_dir.is_dir() else 0
        if done >= total // 2:
            break
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its worker processes
    proc.wait()
    stored_after_kill = {p.stem for p in runs_dir.glob("*.json")}
    assert total // 2 <= len(stored_after_kill) < total
    assert len(set(_logged_ids(first_log))) == len(_logged_ids(first_log))  # nothing ran twice in pass 1

    second_log = tmp_path / "second.log"
    rerun = run_cli(*args, module="trajcore", TRAJCORE_TEST_LOG=str(second_log))
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(stored_after_kill)} already stored" in rerun.stdout
    second = _logged_ids(second_log)
    all_ids = {r.id for r in expand(parse_spec(spec_text))[1]}
    # exactly the runs that were missing were computed, each once
    assert len(second) == len(set(second))
    assert set(second) == all_ids - stored_after_kill
    assert not list(runs_dir.glob(".*.tmp")), "a partial file was left behind"

    uninterrupted = tmp_path / "uninterrupted"
    with local_executor(2, kind="threads") as pool:
        run_sweep(parse_spec(spec_text), uninterrupted, executor=pool, workers=2, limit_blas=False)
    assert _store_files(out) == _store_files(uninterrupted)


# -- bad input through the command line: exit code, one-line reason, nothing written ------------------
@pytest.mark.parametrize(
    ("text", "extra", "code", "pattern"),
    [
        ('experiment = "tiny_smf"\n[grid]\nseed == [1]\n', [], 2, r"malformed TOML.*line 3"),
        ('experiment = "nope"\n', [], 2, r"unknown experiment 'nope'"),
        (
            'experiment = "tiny_smf"\n[grid]\nsede = [1]\n',
            [],
            2,
            r"unknown key 'sede'.*valid keys: d \(int\)",
        ),
        ('experiment = "tiny_smf"\n[grid]\nalpha = ["big"]\n', [], 2, r"alpha='big'.*expected float"),
        ('experiment = "tiny_smf"\n[grid]\nseed = [1]\n', ["--workers", "0"], 2, r"--workers"),
        (
            'experiment = "tiny_smf"\n[grid]\nseed = [1]\n',
            ["--scheduler", "127.0.0.1"],
            2,
            r"scheduler: expected tcp://host:port, got .127.0.0.1. \(missing port",
        ),
        (
            'experiment = "tiny_smf"\n[grid]\nseed = [1]\n',
            ["--scheduler", "tcp://127.0.0.1:9", "--timeout", "2"],
            1,
            r"cannot reach the Dask scheduler tcp://127.0.0.1:9 within 2 s",
        ),
    ],
)
def test_bad_sweep_input_exits_with_a_reason_and_writes_nothing(tmp_path, capsys, text, extra, code, pattern):
    if "--scheduler" in extra:
        pytest.importorskip("distributed")
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(text)
    out = tmp_path / "out"
    started = time.monotonic()
    assert main(["sweep", str(spec_file), "--out", str(out), *extra]) == code
    assert time.monotonic() - started < 15
    err = capsys.readouterr().err
    assert re.search(pattern, err), err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_spec_that_is_not_utf8_is_refused_in_one_line(tmp_path, capsys):
    spec_file = tmp_path / "spec.toml"
    spec_file.write_bytes(b'experiment = "tiny_smf"\n# \xff\xfe\n')
    assert main(["sweep", str(spec_file), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "not a UTF-8 text file" in err and len(err.strip().splitlines()) == 1
    assert main(["run", "tiny_smf", "--config", str(spec_file), "--out", str(tmp_path / "out")]) == 2
    assert "not a UTF-8 text file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_sweep_report_plots_the_metric_against_the_swept_parameter(tmp_path):
    spec = parse_spec(SPEC_200.replace("range = [0, 50]", "range = [0, 4]"))
    out = tmp_path / "store"
    run_sweep(spec, out)
    assert main(["report", str(out)]) == 0
    index = (out / "index.html").read_text()
    for ref in re.findall(r"(?:src|href)='([^']+)'", index):
        assert (out / ref).is_file(), ref
    document = json.loads((out / "metrics.json").read_text())
    assert document["swept_parameters"] == ["alpha"] and document["runs_stored"] == 16
    assert "figures/first_learning_time.png" in document["figures"]
    assert document["checks_passed"]["loss fell by 1e3"] == {"passed": 16, "runs": 16}
    # the paper's law: learning time grows linearly in log(1/alpha)
    rows = RunStore(out).rebuild_summary()
    alphas = np.array(sorted({r["alpha"] for r in rows}))
    times = np.array([np.mean([r["first_learning_time"] for r in rows if r["alpha"] == a]) for a in alphas])
    slope, intercept = np.polyfit(np.log(1 / alphas), times, 1)
    assert slope > 0
    assert np.max(np.abs(slope * np.log(1 / alphas) + intercept - times)) < 0.1 * np.ptp(times)


def test_tiny_experiment_module_is_the_registered_one():
    assert get("tiny_smf").fn is tiny_experiments.tiny_smf
    assert canonical_json({"b": 1, "a": [1.0]}) == '{"a":[1.0],"b":1}'


def test_a_store_of_another_experiment_is_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "store"
    out.mkdir()
    (out / "sweep.json").write_text('{"experiment": "smf_reference"}')
    spec = tmp_path / "spec.toml"
    spec.write_text('experiment = "tiny_smf"\n[grid]\nseed = [1, 2]\n')
    assert main(["sweep", str(spec), "--out", str(out), "--executor", "dask"]) == 1
    assert "holds runs of experiment 'smf_reference', not 'tiny_smf'" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["sweep.json"]


# -- the spec format as documented -----------------------------------------------------------------
def _documented_example() -> str:
    """The example spec of the module docstring: the indented block after its first '::'."""
    import trajcore.sweep

    lines = []
    for line in (trajcore.sweep.__doc__ or "").split("::\n\n", 1)[1].splitlines():
        if line and not line.startswith("    "):
            break
        lines.append(line[4:])
    return "\n".join(lines).strip() + "\n"


def test_the_documented_example_spec_runs(tmp_path, capsys):
    example = _documented_example()
    # one text: sweep --help shows the module docstring's format documentation
    assert main(["sweep", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert all(line.strip() in help_text for line in example.splitlines())
    spec = parse_spec(example)
    experiment, runs = expand(spec)
    # seed = { range = [0, 4] } on an experiment with a seeds list: one seed per run
    assert experiment.name == "smf_reference" and len(runs) == 8
    assert sorted((r.config.alpha, r.config.seeds) for r in runs) == sorted(
        (a, (s,)) for a in (1e-4, 1e-6) for s in range(4)
    )
    # the same runs, spelled seeds = { range } or as a list of lists
    for grid in ("seeds = { range = [0, 4] }", "seeds = [[0], [1], [2], [3]]", "seeds = [0, 1, 2, 3]"):
        _, same = expand(parse_spec(example.replace("seed = { range = [0, 4] }", grid)))
        assert sorted(r.id for r in same) == sorted(r.id for r in runs), grid
    # in [base], a range is a list setting of every run: one run on four seeds
    _, batch = expand(parse_spec('experiment = "smf_reference"\n[base]\nseeds = { range = [0, 4] }\n'))
    assert [r.config.seeds for r in batch] == [(0, 1, 2, 3)]
    # and it runs, through the command line
    spec_file = tmp_path / "example.toml"
    spec_file.write_text(example)
    out = tmp_path / "store"
    assert main(["sweep", str(spec_file), "--out", str(out), "--executor", "threads", "--workers", "2"]) == 0
    stored = RunStore(out).scan().complete
    assert sorted(stored) == sorted(r.id for r in runs)
    assert {tuple(p["config"]["seeds"]) for p in stored.values()} == {(s,) for s in range(4)}


# -- bad grid points ---------------------------------------------------------------------------------
def test_bad_grid_points_are_named_and_nothing_is_computed(tmp_path, capsys):
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text('experiment = "tiny_smf"\n[grid]\nalpha = [1e-3, 1e-4, nan, 1e-5, inf]\nseed = [0, 1]\n')
    out = tmp_path / "store"
    assert main(["sweep", str(spec_file), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "4 of 10 point(s) do not fit tiny_smf, nothing computed" in err
    assert "alpha=nan, seed=0 (setting alpha=nan: expected a finite number" in err and "alpha=inf, seed=1" in err
    assert not out.exists()


def test_a_point_failing_at_run_time_does_not_block_the_others(tmp_path):
    """alpha = -1 fits the config (a float) but the run raises: the other points are all computed."""
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(
        'experiment = "tiny_smf"\n[base]\nsteps = 100\n[grid]\nalpha = [1e-3, 1e-4, -1.0, 1e-5, 1e-6]\n'
    )
    out = tmp_path / "store"
    args = ["sweep", str(spec_file), "--out", str(out), "--workers", "2", "--chunk-size", "1"]
    for attempt in range(2):
        proc = run_cli(*args, TRAJCORE_TEST_LOG=str(tmp_path / f"log{attempt}"))
        assert proc.returncode == 1, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
        assert re.search(r"1 of 5 run\(s\) failed: run [0-9a-f]{16} \(.*'alpha': -1\.0.*scale", proc.stderr)
        stored = RunStore(out).scan().complete.values()
        assert sorted(p["config"]["alpha"] for p in stored) == [1e-6, 1e-5, 1e-4, 1e-3]
        assert [f["config"]["alpha"] for f in json.loads((out / "failures.json").read_text())] == [-1.0]
        # the rerun computes nothing it has: it only retries the failed point
        assert len(_log(tmp_path / f"log{attempt}")) == (4 if attempt == 0 else 0)


# -- one sweep per store -------------------------------------------------------------------------------
def test_a_different_spec_is_refused_and_a_grown_grid_continues_the_store(tmp_path, capsys):
    spec_file = tmp_path / "spec.toml"
    first = 'experiment = "tiny_smf"\n[base]\nsteps = 100\n[grid]\nseed = [0, 1]\n'
    spec_file.write_text(first)
    out = tmp_path / "store"
    assert main(["sweep", str(spec_file), "--out", str(out), "--executor", "threads"]) == 0
    capsys.readouterr()
    before = _store_files(out)
    refused = [
        (first.replace("steps = 100", "steps = 120"), r"\[base\] steps: 100 stored, 120 here"),
        (first.replace("steps = 100", "steps = 100\nd = 9"), r"\[base\] d: 'default' stored, 9 here"),
        (first.replace("seed = [0, 1]", "seed = [1, 2]"), r"\[grid\] seed: stored values 0 missing here"),
        (first.replace("seed = [0, 1]", "alpha = [1e-3]"), r"\[grid\] keys: seed stored, alpha here"),
    ]
    for text, pattern in refused:
        spec_file.write_text(text)
        assert main(["sweep", str(spec_file), "--out", str(out), "--executor", "threads"]) == 1
        err = capsys.readouterr().err
        assert re.search(pattern, err), err
        assert "use another --out, or delete" in err and len(err.strip().splitlines()) == 1
        assert _store_files(out) == before  # nothing written, nothing mixed
    with pytest.raises(StoreError, match="holds another sweep"):
        run_sweep(parse_spec(refused[0][0]), out)
    # the same runs written differently, or a grown grid: the store continues
    spec_file.write_text(first.replace("steps = 100", "steps = 1e2").replace("[0, 1]", "[0, 1, 2]"))
    assert main(["sweep", str(spec_file), "--out", str(out), "--executor", "threads"]) == 0
    assert "2 already stored, 1 computed" in capsys.readouterr().out
    assert json.loads((out / "sweep.json").read_text())["runs"] == 3


# -- every executor, the same bytes ---------------------------------------------------------------------
BLAS_SPEC = 'experiment = "tiny_blas"\n[grid]\nseed = { range = [0, 12] }\n'


def test_local_threads_and_dask_executors_give_byte_identical_stores(tmp_path, monkeypatch):
    """tiny_blas's result depends on BLAS's thread count: equal stores mean every executor ran BLAS
    on one thread. (On a one-core machine BLAS has one thread anyway and this cannot tell.)"""
    distributed = pytest.importorskip("distributed")
    spec = parse_spec(BLAS_SPEC)
    serial = tmp_path / "serial"
    run_sweep(spec, serial)
    reference = _store_files(serial)
    for kind in ("processes", "threads"):
        with local_executor(2, kind=kind) as pool:
            run_sweep(spec, tmp_path / kind, executor=pool, workers=2, limit_blas=kind == "processes")
        assert _store_files(tmp_path / kind) == reference, kind
    monkeypatch.setenv("PYTHONPATH", experiments_env()["PYTHONPATH"])
    monkeypatch.setenv("TRAJCORE_EXPERIMENTS", "tiny_experiments")
    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        with dask_executor(cluster.scheduler_address, timeout=20) as executor:
            run_sweep(spec, tmp_path / "dask", executor=executor, workers=2)
    assert _store_files(tmp_path / "dask") == reference
    # and through the command line, each executor
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(BLAS_SPEC)
    for kind in ("local", "threads"):
        proc = run_cli(
            "sweep", str(spec_file), "--out", str(tmp_path / f"cli-{kind}"), "--executor", kind, "--workers", "2"
        )
        assert proc.returncode == 0, proc.stderr
        assert _store_files(tmp_path / f"cli-{kind}") == reference, kind


def test_a_base_completed_by_every_grid_point_is_accepted():
    """[base] rank = 2 alone lacks a matching sigma; every grid point brings one: the sweep is valid."""
    spec = parse_spec(
        'experiment = "smf_reference"\n[base]\nrank = 2\nsteps = 50\n[grid]\nsigma = [[3.0, 1.0], [4.0, 2.0]]\n'
    )
    _, runs = expand(spec)
    assert sorted(run.config.sigma for run in runs) == [(3.0, 1.0), (4.0, 2.0)]
    bad = parse_spec('experiment = "smf_reference"\n[base]\nrank = 2\nsteps = 50\n[grid]\nseed = [0, 1]\n')
    with pytest.raises(SpecError, match=r"^\[base\]: setting sigma="):
        expand(bad)
