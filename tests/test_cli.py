"""The ``trajcore`` command: demo reports, run with typed --set, list/info/report, exit codes."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tiny_experiments  # noqa: F401  (registers tiny_smf, a flagship test experiment)
from subprocesses import run_cli

from trajcore.cli import main
from trajcore.experiments import get, registry
from trajcore.experiments.settings import (
    ConfigError,
    build_config,
    config_dict,
    field_types,
    parse_assignments,
    parse_value,
    type_name,
)


def _references(index: Path) -> list[str]:
    """Every local file an HTML page links or embeds."""
    refs = re.findall(r"""(?:src|href)=['"]([^'"#]+)['"]""", index.read_text())
    return [r for r in refs if "://" not in r]


def _gd_reference(d: int, rank: int, sigma: tuple[float, ...], alpha: float, lr: float, steps: int, seed: int):
    """Plain NumPy gradient descent on 1/4 ||U U^T - M||^2, independent of the C++ core."""
    rng = np.random.default_rng(seed)
    V, _ = np.linalg.qr(rng.standard_normal((d, rank)))
    M = V @ np.diag(sigma) @ V.T
    U = alpha * np.random.default_rng(seed + 1).standard_normal((d, d))
    for _ in range(steps):
        U = U - lr * (U @ U.T - M) @ U
    return 0.25 * np.sum((U @ U.T - M) ** 2)


# -- demo ----------------------------------------------------------------------------------------
def test_demo_writes_a_report_whose_checks_pass(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["demo", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert f"report: {(out / 'index.html').resolve()}" in stdout
    flagship = {name for name, e in registry().items() if e.flagship}
    # an experiment whose extra (torch, mnist) is not installed is skipped, in one line that says so
    skipped = {name for name in flagship if f"  {name}: skipped, " in stdout}
    assert all(name in ("torch_architectures", "cnn_mnist_depth") for name in skipped), skipped
    document = json.loads((out / "metrics.json").read_text())
    assert set(document["experiments"]) == flagship - skipped
    for name, record in document["experiments"].items():
        assert record["checks"], f"{name} has no checks"
        assert all(record["checks"].values()), (name, record["checks"])
        assert record["config"] == config_dict(get(name).demo_config())
    # the product promise: the whole demo in under 3 minutes (on 2 cores)
    assert sum(record["seconds"] for record in document["experiments"].values()) < 180
    for ref in _references(out / "index.html"):
        assert (out / ref).is_file(), f"index.html references a missing file: {ref}"
    pngs = list(out.rglob("*.png"))
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    # tiny_smf announces a figure it never writes: reported as missing, not linked
    html = (out / "index.html").read_text()
    assert "missing figure: <code>tiny_smf/never_written.png</code>" in html
    assert "src='tiny_smf/never_written.png'" not in html
    # the report can be rebuilt from metrics.json alone
    (out / "index.html").unlink()
    assert main(["report", str(out)]) == 0
    assert "tiny_smf/loss.png" in (out / "index.html").read_text()


def test_demo_from_a_subprocess_prints_where_the_report_is(tmp_path):
    out = tmp_path / "report"
    proc = run_cli("demo", "--only", "tiny_smf", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == f"report: {(out / 'index.html').resolve()}"
    assert "\r" not in proc.stderr  # not a terminal: no progress bars
    metrics = json.loads((out / "metrics.json").read_text())["experiments"]["tiny_smf"]
    assert all(metrics["checks"].values())
    quiet = run_cli("-q", "demo", "--only", "tiny_smf", "--out", str(out), module="trajcore")
    assert quiet.returncode == 0 and quiet.stdout.strip().splitlines() == [f"report: {(out / 'index.html').resolve()}"]


# -- run with --set ------------------------------------------------------------------------------
def test_run_applies_typed_settings_and_matches_a_numpy_reference(tmp_path):
    out = tmp_path / "run"
    settings = [
        "d=6",
        "rank=3",
        "sigma=4,2.5,1",
        "alpha=1e-3",
        "lr=0.04",
        "steps=250",
        "seed=7",
        "n_threads=1",
    ]
    assert main(["run", "tiny_smf", *sum((["--set", s] for s in settings), []), "--out", str(out)]) == 0
    record = json.loads((out / "metrics.json").read_text())["experiments"]["tiny_smf"]
    assert record["config"]["sigma"] == [4.0, 2.5, 1.0] and record["config"]["d"] == 6
    expected = _gd_reference(6, 3, (4.0, 2.5, 1.0), 1e-3, 0.04, 250, 7)
    assert record["metrics"]["final_loss"] == pytest.approx(expected, rel=1e-6, abs=1e-14)
    for ref in _references(out / "index.html"):
        assert (out / ref).is_file()
    assert (out / "loss.png").is_file()


@pytest.mark.parametrize(
    ("argv", "pattern"),
    [
        (["run", "nope"], r"unknown experiment 'nope'; known: .*tiny_smf"),
        (
            ["run", "tiny_smf", "--set", "dd=3"],
            r"unknown key 'dd'.*valid keys: d \(int\), rank \(int\), sigma",
        ),
        (["run", "tiny_smf", "--set", "d=eight"], r"setting d='eight': expected int"),
        (["run", "tiny_smf", "--set", "sigma=3,x"], r"setting sigma='3,x': expected comma list of float"),
        (["run", "tiny_smf", "--set", "n_threads=2.5"], r"n_threads='2.5': expected int or none"),
        (["run", "tiny_smf", "--set", "d"], r"setting 'd': expected key=value"),
        (["run", "tiny_smf", "--set", "rank=9"], r"tiny_smf failed: ValueError: rank: must be <= d"),
        (["frobnicate"], r"invalid choice: 'frobnicate'"),
        (["demo", "--only", "nope"], r"unknown experiment\(s\) nope"),
        (["report", "nowhere"], r"nowhere: no such directory"),
    ],
)
def test_bad_input_exits_with_a_one_line_reason_and_writes_nothing(tmp_path, capsys, monkeypatch, argv, pattern):
    monkeypatch.chdir(tmp_path)
    code = main([*argv, "--out", str(tmp_path / "out")] if argv[0] in {"run", "demo"} else argv)
    err = capsys.readouterr().err
    assert code == (1 if "failed" in pattern else 2)
    assert re.search(pattern, err), err
    assert len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # a failed run leaves no directory either


def test_help_list_info_and_version(capsys):
    for argv in (["--help"], *([c, "--help"] for c in ("demo", "list", "run", "sweep", "report", "info"))):
        assert main(argv) == 0
        assert "usage: trajcore" in capsys.readouterr().out
    assert main([]) == 2
    assert main(["list", "-v"]) == 0
    listing = capsys.readouterr().out
    assert re.search(r"^\* tiny_smf\s+Tiny symmetric", listing, re.M)
    assert "sigma = (3.0, 1.0)  [comma list of float]" in listing and "(demo: 300)" in listing
    assert main(["info"]) == 0
    info = capsys.readouterr().out
    assert info.startswith("trajcore ") and "OpenMP" in info
    assert main(["--version"]) == 0
    proc = run_cli("--version", module="trajcore")
    assert proc.returncode == 0 and proc.stdout.startswith("trajcore ")


# -- settings ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Settings:
    n: int = 1
    x: float = 0.5
    name: str = "a"
    flag: bool = False
    sizes: tuple[int, ...] = (1, 2)
    scale: float | None = None


def test_settings_are_parsed_by_field_type():
    values = parse_assignments(
        _Settings, ["n=1e3", "x=2", "name=b=c", "flag=yes", "sizes=4, 5,6", "scale=none"], context="s"
    )
    assert values == {"n": 1000, "x": 2.0, "name": "b=c", "flag": True, "sizes": (4, 5, 6), "scale": None}
    assert isinstance(values["x"], float)
    config = build_config(_Settings, {"n": 3, "x": 1, "sizes": [7], "scale": "0.25"})
    assert config == _Settings(n=3, x=1.0, sizes=(7,), scale=0.25)
    assert parse_value(tuple[float, ...], "") == ()
    # a single value for a list field is a one-element list
    assert build_config(_Settings, {"sizes": 3}).sizes == (3,)
    assert type_name(field_types(_Settings)["sizes"]) == "comma list of int"
    for bad, message in [
        ({"n": 1.5}, r"n=1\.5.*expected int"),
        ({"n": True}, r"n=True.*expected int"),
        ({"flag": 1}, r"flag=1.*expected bool"),
        ({"x": "fast"}, r"x='fast'.*expected float"),
        ({"sizes": [1.5]}, r"sizes=\[1\.5\].*expected comma list of int"),
        ({"sizes": []}, r"sizes=\[\].*expected a non-empty comma list of int"),
        ({"x": float("nan")}, r"x=nan.*expected a finite number"),
        ({"n": None}, r"n=None.*expected int"),
        ({"wat": 1}, r"unknown key 'wat' for s; valid keys: n \(int\), x \(float\), name \(str\)"),
    ]:
        with pytest.raises(ConfigError, match=message):
            build_config(_Settings, bad, context="s")


@pytest.mark.parametrize("quiet", [False, True])
def test_progress_bars_only_on_a_terminal_and_not_when_quiet(tmp_path, capsys, monkeypatch, quiet):
    spec = tmp_path / "spec.toml"
    spec.write_text('experiment = "tiny_smf"\n[base]\nsteps = 100\n[grid]\nseed = { range = [0, 12] }\n')
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    argv = ["sweep", str(spec), "--out", str(tmp_path / "store"), "--executor", "threads", "--workers", "2"]
    assert main(["-q", *argv] if quiet else argv) == 0
    captured = capsys.readouterr()
    assert ("/12 [" in captured.err) is not quiet  # a bar over the 12 runs
    assert captured.out.startswith("summary:") is quiet


def test_run_reads_settings_from_a_toml_file_and_set_overrides(tmp_path, capsys):
    settings = tmp_path / "smf.toml"
    settings.write_text("d = 6\nsigma = [4, 2]\nsteps = 200\nseed = 3\n")
    out = tmp_path / "run"
    assert main(["run", "tiny_smf", "--config", str(settings), "--set", "seed=5", "--out", str(out)]) == 0
    config = json.loads((out / "metrics.json").read_text())["experiments"]["tiny_smf"]["config"]
    assert (config["d"], config["sigma"], config["steps"], config["seed"]) == (6, [4.0, 2.0], 200, 5)
    capsys.readouterr()
    settings.write_text("d = 6\nsteps = = 2\n")
    assert main(["run", "tiny_smf", "--config", str(settings), "--out", str(tmp_path / "bad")]) == 2
    assert re.search(r"malformed TOML: .*line 2", capsys.readouterr().err)
    settings.write_text("[table]\nd = 6\n")
    assert main(["run", "tiny_smf", "--config", str(settings), "--out", str(tmp_path / "bad")]) == 2
    assert "found table(s) table" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


# -- exit status of a run whose checks fail ------------------------------------------------------------
def test_a_run_whose_checks_fail_exits_1_after_writing_its_report(tmp_path, capsys):
    out = tmp_path / "run"
    # 5 steps from a small init: the loss cannot fall by 1e3
    assert main(["run", "tiny_smf", "--set", "steps=5", "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert re.search(r"^trajcore: failed: tiny_smf: \d check\(s\) failed: loss fell by 1e3", captured.err)
    assert len(captured.err.strip().splitlines()) == 1
    assert "FAILED checks: loss fell by 1e3" in captured.out and (out / "index.html").is_file()
    record = json.loads((out / "metrics.json").read_text())["experiments"]["tiny_smf"]
    assert record["checks"]["loss fell by 1e3"] is False
    assert main(["run", "tiny_smf", "--set", "steps=5", "--no-strict", "--out", str(out)]) == 0
    assert main(["run", "tiny_smf", "--out", str(out)]) == 0  # checks pass: 0
    # demo keeps its opt-in --strict
    assert main(["demo", "--only", "tiny_smf", "--out", str(tmp_path / "demo")]) == 0


# -- progress ----------------------------------------------------------------------------------------------
def _screen(raw: str) -> list[str]:
    """What a terminal shows after ``raw`` (text, CR, LF, ESC[K erase-line, ESC[nA cursor-up)."""
    rows: list[list[str]] = [[]]
    row = col = 0
    i = 0
    while i < len(raw):
        escape = re.match(r"\x1b\[(\d*)([A-Za-z])", raw[i:])
        if escape:
            count, command = int(escape.group(1) or 1), escape.group(2)
            if command == "K":
                del rows[row][col:]
            elif command == "A":
                row = max(0, row - count)
            i += escape.end()
            continue
        char = raw[i]
        if char == "\r":
            col = 0
        elif char == "\n":
            row += 1
            col = 0
            if row == len(rows):
                rows.append([])
        else:
            line = rows[row]
            line.extend(" " * (col + 1 - len(line)))
            line[col] = char
            col += 1
        i += 1
    return ["".join(line).rstrip() for line in rows]


def _on_a_terminal(*args: str) -> tuple[int, str]:
    """Run ``python -m trajcore *args`` with stdout and stderr on one pseudo-terminal: (status, output)."""
    import os
    import pty
    import subprocess

    from subprocesses import TESTS, experiments_env

    leader, follower = pty.openpty()
    import fcntl
    import struct
    import termios

    # a real terminal's size (a fresh pty has 0 x 0, and progress bars then draw nothing)
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "trajcore", *args],
        env=experiments_env(TERM="xterm", COLUMNS="100"),
        cwd=TESTS,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return proc.wait(timeout=120), b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals")
def test_demo_on_a_terminal_shows_progress_and_leaves_only_result_lines(tmp_path):
    code, raw = _on_a_terminal("demo", "--only", "tiny_smf", "tiny_smf", "--out", str(tmp_path / "demo"))
    assert code == 0, raw
    lines = [line for line in _screen(raw) if line]
    results = (r"^trajcore demo: 2 experiment", r"^  tiny_smf: [\d.]+ s, all checks pass$", r"^done in ", r"^report: ")
    stale = [line for line in lines if not any(re.search(p, line) for p in results)]
    assert not stale, lines  # the terminal shows results only ...
    assert len(lines) == 5
    assert "[1/2] tiny_smf: running" in raw  # ... once the progress it showed is erased


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals")
def test_sweep_on_a_terminal_leaves_only_result_lines(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text('experiment = "tiny_smf"\n[base]\nsteps = 50\npause = 0.05\n[grid]\nseed = { range = [0, 16] }\n')
    code, raw = _on_a_terminal("sweep", str(spec), "--out", str(tmp_path / "store"), "--executor", "threads")
    assert code == 0, raw
    assert "/16 [" in raw  # the bar was shown
    lines = [line for line in _screen(raw) if line]
    assert [line.split(":")[0] for line in lines] == ["trajcore sweep tiny_smf", "16 runs", "summary"], lines


def test_run_shows_its_elapsed_time_with_progress_and_not_without(tmp_path):
    out = tmp_path / "run"
    slow = ["run", "tiny_smf", "--set", "pause=1.2", "--out", str(out)]
    shown = run_cli(*slow, "--progress", module="trajcore")
    assert shown.returncode == 0, shown.stderr
    # (text mode reads each carriage return as a newline)
    assert "\n\x1b[Ktiny_smf: running, 1 s\n" in shown.stderr
    assert shown.stderr.endswith("\n\x1b[K")  # erased at the end
    assert "running" not in shown.stdout
    silent = run_cli(*slow, module="trajcore")  # not a terminal: no progress unless asked
    assert silent.returncode == 0 and "running" not in silent.stderr
    if sys.platform != "win32":
        code, raw = _on_a_terminal(*slow, "--no-progress")
        assert code == 0 and "running" not in raw
        code, raw = _on_a_terminal(*slow)
        assert code == 0 and "tiny_smf: running" in raw
        assert not [line for line in _screen(raw) if "running" in line]


# -- messages that name the argument, report directories that never mix ------------------------------
def test_messages_name_the_argument_not_the_internals(tmp_path, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    cases = [
        (["run", "tiny_smf", "--set", "alpha=nan"], 2, r"setting alpha='nan': expected a finite number"),
        (["run", "smf_reference", "--set", "seeds="], 2, r"setting seeds='': expected a non-empty comma list of int"),
        (["run", "tiny_smf", "--out", str(a_file)], 2, r"--out: .*a-file exists and is not a directory"),
        (["report", str(a_file)], 2, r"DIR: .*a-file is a file; expected a sweep store or a report directory"),
        (["report", str(tmp_path / "nowhere")], 2, r"DIR: .*nowhere: no such directory"),
    ]
    for argv, code, pattern in cases:
        assert main(argv) == code, argv
        err = capsys.readouterr().err
        assert re.search(pattern, err) and len(err.strip().splitlines()) == 1, err
        assert "scale" not in err and "stack" not in err and "Error" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
    import trajcore as tc

    with pytest.raises(
        ValueError, match=r"is not a trajectory written by Trajectory\.save \(not an \.npz archive\)"
    ) as e:
        tc.Trajectory.load(a_file)
    assert "pickle" not in str(e.value)


def test_a_rerun_into_the_same_out_replaces_the_report_whole(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert main(["run", "tiny_smf", "--out", str(out)]) == 0
    assert (out / "loss.png").is_file()
    assert main(["run", "tiny_blas", "--set", "n=1000", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "metrics.json"]  # no stale loss.png
    assert set(json.loads((out / "metrics.json").read_text())["experiments"]) == {"tiny_blas"}
    # a failing run leaves the earlier report as it was, and no partial directory next to it
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["run", "tiny_smf", "--set", "rank=9", "--out", str(out)]) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    # a directory that is not a trajcore report is never replaced
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    capsys.readouterr()
    assert main(["run", "tiny_smf", "--out", str(mine)]) == 2
    assert "neither empty nor a trajcore report" in capsys.readouterr().err
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    # nor the directory the command runs in (a report replaces its --out whole)
    monkeypatch.chdir(out)
    assert main(["run", "tiny_smf", "--out", "."]) == 2
    assert "holds the current directory" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_repr_of_a_trajectory_shows_shapes_not_data():
    import trajcore as tc

    problem = tc.SymmetricMatrixFactorization.planted(d=20, rank=3, seed=0)
    traj = tc.run(
        problem, tc.small_init((3, 20, 20), 1e-3, seed=0), lr=0.01, steps=400, record=tc.Record(iterates=True)
    )
    text = repr(traj)
    assert len(text) < 300, text
    assert "batch=3" in text and "records=401" in text and "iterates (3, 401, 20, 20)" in text
    assert "diverged 0 of 3" in text and len(repr(traj[1])) < 300


# -- settings a config refuses, specs that name no experiment, runs that diverge ------------------
def _one_error_line(err: str, prefix: str = "trajcore: error: ") -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), err
    assert "Traceback" not in err and "Warning" not in err, err
    return lines[0]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        # 0 steps leaves smf_reference nothing to measure (it was "zero-size array to reduction ...")
        ("steps=0", "setting steps=0: expected steps >= 1"),
        # the init scale of a small-init experiment (it was "OverflowError: (34, ...)", exit 1)
        ("alpha=1e300", "setting alpha=1e+300: expected 1e-100 <= alpha < 1"),
        # one eigenvalue per rank (it was "expected shape (4)", exit 1)
        ("sigma=1,2", "setting sigma=1.0,2.0: expected 4 values (one per target eigenvalue: rank = 4), got 2"),
    ],
)
def test_run_refuses_a_setting_outside_its_range_naming_it(tmp_path, capsys, setting, message):
    out = tmp_path / "out"
    assert main(["run", "smf_reference", "--set", setting, "--out", str(out)]) == 2
    assert _one_error_line(capsys.readouterr().err) == f"trajcore: error: {message}"
    assert not out.exists()


def test_sweep_checks_every_point_against_the_configs_ranges_before_computing(tmp_path, capsys):
    spec, store = tmp_path / "spec.toml", tmp_path / "store"
    spec.write_text('experiment = "smf_reference"\n[base]\nsteps = 20\n[grid]\nsigma = [[4, 3, 2, 1], [1, 2]]\n')
    argv = ["sweep", str(spec), "--out", str(store), "--executor", "threads"]
    assert main(argv) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "[grid]: 1 of 2 point(s) do not fit smf_reference, nothing computed: sigma=[1, 2]" in line
    assert "setting sigma=1.0,2.0: expected 4 values (one per target eigenvalue: rank = 4), got 2" in line
    spec.write_text('experiment = "smf_reference"\n[base]\nsteps = 0\n[grid]\nseed = [0, 1]\n')
    assert main(argv) == 2
    assert _one_error_line(capsys.readouterr().err).endswith("[base]: setting steps=0: expected steps >= 1")
    assert not store.exists()


@pytest.mark.parametrize("value", ["3", '""', '["smf_reference"]', "true", '{ name = "smf_reference" }'])
def test_a_spec_whose_experiment_is_not_a_name_says_what_it_must_be(tmp_path, capsys, value):
    spec = tmp_path / "spec.toml"
    spec.write_text(f"experiment = {value}\n[grid]\nseed = [0, 1]\n")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "store")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "expected a string naming an experiment" in line and "missing" not in line, line
    spec.write_text("[grid]\nseed = [0, 1]\n")  # no experiment at all: that is what is missing
    assert main(["sweep", str(spec), "--out", str(tmp_path / "store")]) == 2
    assert 'missing experiment = "<name>"' in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "store").exists()


def test_a_diverging_run_is_reported_by_its_checks_and_prints_no_numpy_warnings(tmp_path):
    """A fresh process prints every warning it is not told to keep quiet: stderr is the one line."""
    out = tmp_path / "run"
    proc = run_cli(
        "run", "smf_reference", "--set", "lr=1e308", "--set", "steps=30", "--set", "seed=0", "--out", str(out)
    )
    assert proc.returncode == 1, proc.stderr
    line = _one_error_line(proc.stderr, "trajcore: failed: smf_reference: ")
    assert "no seed diverged" in line
    assert "warning" not in proc.stdout.lower()  # the experiment raised none for the CLI to sum up
    record = json.loads((out / "metrics.json").read_text())["experiments"]["smf_reference"]
    assert record["metrics"]["diverged"] == 1 and record["checks"]["no seed diverged: seeds that diverged"] is False
    # a sweep computes in worker processes, whose warnings would go straight to this stderr
    spec = tmp_path / "spec.toml"
    spec.write_text('experiment = "smf_reference"\n[base]\nsteps = 30\nseeds = [0]\n[grid]\nlr = [1e308, 10.0]\n')
    proc = run_cli("sweep", str(spec), "--out", str(tmp_path / "store"), "--workers", "2")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


@dataclass(frozen=True)
class _Noisy:
    n: int = 2


def _noisy(config: _Noisy, out_dir: Path | None):
    """An experiment that raises warnings, as code an experiment calls might."""
    import warnings

    from trajcore.experiments import ExperimentResult

    for _ in range(config.n):
        np.log(np.zeros(1))  # "divide by zero encountered in log"
    warnings.warn("a plotting library's complaint", UserWarning, stacklevel=1)
    return ExperimentResult({"n": config.n}, {"ran": True})


def test_warnings_an_experiment_raises_are_summed_up_on_stdout_not_printed(tmp_path, capsys, monkeypatch):
    import warnings

    from trajcore import experiments

    monkeypatch.setitem(experiments._REGISTRY, "noisy", experiments.Experiment("noisy", "warns", _Noisy, _noisy))
    out = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # as a fresh process shows them: every one
        warnings.showwarning = lambda message, *args, **kwargs: print(f"LEAKED {message}", file=sys.stderr)
        code = main(["run", "noisy", "--out", str(out)])
        captured = capsys.readouterr()
        assert code == 0 and captured.err == "", captured.err
        summary = "3 warnings (divide by zero encountered in log (x2); a plotting library's complaint)"
        assert "noisy: " in captured.out and f"all checks pass; {summary}" in captured.out
        notes = json.loads((out / "metrics.json").read_text())["experiments"]["noisy"]["notes"]
        assert notes == [f"Warnings raised during the run: {summary}."]
        # a sweep computing in threads: summed up once at the end
        spec = tmp_path / "spec.toml"
        spec.write_text('experiment = "noisy"\n[grid]\nn = [1, 2]\n')
        code = main(["sweep", str(spec), "--out", str(tmp_path / "store"), "--executor", "threads"])
        captured = capsys.readouterr()
        assert code == 0 and captured.err == "", captured.err
        assert "note: 5 warnings (divide by zero encountered in log (x3); a plotting library's complaint (x2))" in (
            captured.out
        )
