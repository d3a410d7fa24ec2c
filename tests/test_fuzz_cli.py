"""Fuzzing the command line: any sweep spec (TOML), any ``--set`` string and any mix of arguments
ends with exit status 0, 1 or 2, at most one line on stderr (exactly one, ``trajcore: ...``, when it
fails), never a traceback, and never a partial store file or a leftover lock or temporary.

Every warning raised while the command runs is printed on its stderr, as a fresh process would print
it (pytest would otherwise record it out of sight), so a warning that leaks counts as a second line.
Besides the tiny test experiment, the real ``smf_reference`` is fuzzed (small sizes and step counts,
values at and beyond its ranges, diverging step sizes); it must not raise warnings at all.

The ``default`` Hypothesis profile keeps this to well under a minute; the ``ci`` profile (see
conftest.py) runs more examples. Settings that make a run slow (``pause``) or large (``d``,
``steps`` beyond 40) are kept small by the strategies, not excluded: every key of the test
experiment is fuzzed.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import tiny_experiments  # noqa: F401  (registers tiny_smf)
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from trajcore.cli import main
from trajcore.store import RunStore

#: fewer examples for the strategies whose examples run experiments (each writes a report)
EXAMPLES = max(15, settings.default.max_examples // 2)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEYS = ["d", "rank", "sigma", "alpha", "lr", "steps", "seed", "seeds", "pause", "n_threads", "sede", ""]


def _small_float() -> st.SearchStrategy[float]:
    return st.one_of(
        st.sampled_from([0.0, -0.0, 1e-3, 0.05, -1.0, 1e300, 5e-324, math.nan, math.inf, -math.inf]),
        st.floats(min_value=-2.0, max_value=2.0),
    )


def _scalar() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(min_value=-3, max_value=40),
        _small_float(),
        st.booleans(),
        st.text(max_size=6),
        st.sampled_from([2**63, -(2**63), 10**30]),
    )


def _value() -> st.SearchStrategy[Any]:
    scalar = _scalar()
    bound = st.one_of(st.integers(min_value=-3, max_value=8), st.just(0.5), st.text(max_size=2), st.booleans())
    return st.one_of(
        scalar,
        st.lists(scalar, max_size=3),
        st.lists(st.lists(scalar, max_size=2), max_size=2),
        st.fixed_dictionaries({"range": st.lists(bound, max_size=4)}),
        st.dictionaries(st.sampled_from(["range", "x", ""]), scalar, max_size=2),
    )


#: values a user would plausibly write, per key (some still wrong: a negative alpha, rank > d)
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "d": st.integers(1, 12),
    "rank": st.integers(0, 4),
    "sigma": st.lists(st.sampled_from([3.0, 1.0, 0.5, 2]), min_size=1, max_size=3),
    "alpha": st.sampled_from([1e-3, 1e-2, 1e-4, -1.0, 0.0, 5]),
    "lr": st.sampled_from([0.05, 0.01, 0.3, 2.0]),
    "steps": st.integers(0, 40),
    "seed": st.integers(0, 5),
    "seeds": st.lists(st.integers(0, 5), min_size=1, max_size=2),
    "n_threads": st.sampled_from([1, 2, None]),
}


@st.composite
def plausible_specs(draw: st.DrawFn) -> str:
    """Specs of the kind people write: the test experiment, known keys, values of the right kind."""
    keys = draw(st.lists(st.sampled_from(sorted(PLAUSIBLE)), max_size=4, unique=True))
    split = draw(st.integers(0, len(keys)))
    lines = ['experiment = "tiny_smf"', "[base]"]
    for key in keys[:split]:
        value = draw(PLAUSIBLE[key])
        if value is not None:
            lines.append(f"{key} = {_toml(value)}")
    lines.append("[grid]")
    for key in keys[split:]:
        if key == "seed" and draw(st.booleans()):
            lines.append(f"seed = {{ range = [0, {draw(st.integers(0, 4))}] }}")
            continue
        values = [v for v in draw(st.lists(PLAUSIBLE[key], min_size=1, max_size=3)) if v is not None]
        lines.append(f"{key} = {_toml(values)}")
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    """``value`` as a TOML value (strings as JSON strings: TOML's basic strings read them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"


@st.composite
def spec_texts(draw: st.DrawFn) -> str:
    """Sweep specs: mostly well-formed TOML around the test experiment, some mangled, some random."""
    lines = []
    experiment = draw(st.one_of(st.just("tiny_smf"), st.just("tiny_smf"), st.text(max_size=8), st.integers()))
    if draw(st.booleans()) or draw(st.booleans()):
        lines.append(f"experiment = {_toml(experiment)}")
    if draw(st.booleans()):
        lines.append(f"chunk_size = {_toml(draw(_scalar()))}")
    if draw(st.integers(0, 9)) == 0:
        lines.append(f"{json.dumps(draw(st.text(max_size=5)))} = 1")
    for table in ("base", "grid"):
        entries = draw(st.dictionaries(st.sampled_from(KEYS), _value(), max_size=3))
        if table == "base" and "pause" in entries:
            entries["pause"] = draw(st.sampled_from([0.0, 0.001, -1.0, "x"]))
        if draw(st.integers(0, 9)) == 0:
            lines.append(f"{table} = {_toml(draw(_scalar()))}")
        else:
            lines.append(f"[{table}]")
            lines += [f"{json.dumps(k)} = {_toml(v)}" for k, v in entries.items()]
    text = "\n".join(lines) + "\n"
    if draw(st.integers(0, 4)) == 0:  # a typo somewhere
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.text(max_size=3)) + text[at:]
    return draw(st.one_of(st.just(text), st.just(text), st.just(text), st.text(max_size=40)))


def _grid_is_small(text: str) -> bool:
    """Fuzz specs run for real: keep their grids (and pauses in the grid) small."""
    import trajcore.sweep as sweep

    try:
        spec = sweep.parse_spec(text)
    except sweep.SpecError:
        return True
    pauses = spec.grid.get("pause", [])
    return math.prod(len(v) for v in spec.grid.values()) <= 12 and all(
        not isinstance(p, (int, float)) or p <= 0.01 for p in pauses
    )


def _print_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _call(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("always")  # every warning, each time, printed on stderr (from any thread)
        warnings.showwarning = _print_warning
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _assert_clean_exit(code: int, err: str) -> None:
    event(f"exit {code}")
    assert code in (0, 1, 2), (code, err)
    assert "Traceback" not in err and "Warning" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) <= 1, err
    if code != 0:
        assert len(lines) == 1 and lines[0].startswith("trajcore: "), err


def _assert_store_whole(out: Path) -> None:
    """Every file of a store is whole: no temporaries, no lock, run files that pass their checksum."""
    if not out.exists():
        return
    leftovers = [p for p in out.rglob("*") if p.name.endswith(".tmp") or p.name == "sweep.lock"]
    assert not leftovers, leftovers
    store = RunStore(out)
    json.loads(store.spec_path.read_text())
    scan = store.scan()
    assert not scan.corrupt and not scan.temporaries
    assert store.summary_path.is_file()


@FUZZ
@given(text=st.one_of(spec_texts(), plausible_specs()))
def test_any_spec_exits_cleanly_and_leaves_a_whole_store_or_none(text: str) -> None:
    from hypothesis import assume

    assume(_grid_is_small(text))
    with tempfile.TemporaryDirectory() as scratch:
        spec, out = Path(scratch) / "spec.toml", Path(scratch) / "store"
        spec.write_bytes(text.encode("utf-8", "surrogatepass"))
        code, _, err = _call(["sweep", str(spec), "--out", str(out), "--executor", "threads", "--workers", "2"])
        _assert_clean_exit(code, err)
        if code == 2:
            assert not out.exists(), err  # a bad spec writes nothing
        _assert_store_whole(out)


def _setting() -> st.SearchStrategy[str]:
    text = st.text(max_size=12)
    value = st.one_of(
        text,
        st.sampled_from(["", ",", "1,2", "nan", "-inf", "1e400", "none", "0x10", "1e3", "3.5", "-1", "true", "=1"]),
        st.integers(-3, 40).map(str),
        _small_float().map(repr),
    )
    keyed = st.tuples(st.sampled_from(KEYS), value).map(lambda kv: f"{kv[0]}={kv[1]}")
    plausible = st.sampled_from(sorted(PLAUSIBLE)).flatmap(
        lambda key: PLAUSIBLE[key].map(
            lambda v: f"{key}={','.join(map(str, v)) if isinstance(v, list) else 'none' if v is None else v}"
        )
    )
    return st.one_of(keyed, plausible, plausible, text)


def _safe(assignment: str) -> bool:
    """Settings that would make a fuzz run long or huge (a big d or steps, a long pause) are left out."""
    key, _, value = assignment.partition("=")
    try:
        number = float(value.strip())
    except ValueError:
        return True
    return key.strip() not in {"d", "steps", "rank", "width", "pause", "n_threads"} or number <= (
        1 if key == "pause" else 40
    )


@FUZZ
@given(assignments=st.lists(_setting(), min_size=1, max_size=3))
def test_any_set_string_exits_cleanly(assignments: list[str]) -> None:
    from hypothesis import assume

    assume(all(_safe(a) for a in assignments))
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "run"
        argv = ["run", "tiny_smf", *[x for a in assignments for x in ("--set", a)], "--out", str(out)]
        code, _, err = _call(argv)
        _assert_clean_exit(code, err)
        # the report is there whole (exit 0, or 1 for failed checks) or not at all
        if out.exists():
            assert (out / "index.html").is_file() and (out / "metrics.json").is_file()
        assert sorted(p.name for p in Path(scratch).iterdir()) in ([], ["run"])


OPTIONS = [
    "--out",
    "--set",
    "--workers",
    "--chunk-size",
    "--executor",
    "--timeout",
    "--strict",
    "--no-strict",
    "--progress",
    "--no-progress",
    "-q",
    "--config",
    "--demo",
    "--only",
    "-v",
    "--help",
    "--version",
]


@FUZZ
@given(
    command=st.sampled_from(["run", "sweep", "report", "list", "info", "frobnicate", "-q", ""]),
    tokens=st.lists(
        st.one_of(
            st.sampled_from(OPTIONS),
            st.sampled_from(["tiny_smf", "spec.toml", "a-file", "store", "out", "0", "-1", "threads", "dask", "x=1"]),
            st.text(max_size=6).filter(lambda t: not t.startswith("/") and ".." not in t),
        ),
        max_size=6,
    ),
)
def test_any_arguments_exit_cleanly(command: str, tokens: list[str]) -> None:
    from hypothesis import assume

    # no demo (minutes of work), no scheduler to wait for, nothing slow through --set
    assume("demo" not in tokens and "dask" not in tokens and all(_safe(t) for t in tokens))
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        (root / "a-file").write_text("not a directory")
        (root / "spec.toml").write_text('experiment = "tiny_smf"\n[base]\nsteps = 20\n[grid]\nseed = [0, 1]\n')
        before = Path.cwd()
        os.chdir(root)  # every relative path the arguments name stays in the scratch directory
        try:
            argv = [command, *tokens] if command else tokens
            if command == "sweep" and "--executor" not in tokens:
                argv += ["--executor", "threads"]
            code, _, err = _call(argv)
        finally:
            os.chdir(before)
        _assert_clean_exit(code, err)
        for store in (p.parent for p in root.rglob("sweep.json")):
            _assert_store_whole(store)


# -- a real experiment: smf_reference, small ------------------------------------------------------
#: a fixed budget whatever the profile: each example runs the experiment (and writes its figures)
SMF_FUZZ = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _mostly(valid: list[Any], invalid: list[Any]) -> st.SearchStrategy[Any]:
    """Values in range two times in three (so that most examples compute), the others beyond it."""
    return st.one_of(st.sampled_from(valid), st.sampled_from(valid), st.sampled_from(invalid))


#: values inside, at and beyond each setting's range; diverging step sizes; sizes kept small
SMF_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "d": _mostly([4, 5, 8], [0, 1, 3]),
    "rank": _mostly([4], [0, 1, 2, 5]),
    "width": _mostly([1, 4, 8], [0]),
    "sigma": st.one_of(
        st.lists(st.sampled_from([4.0, 2.0, 1.0, 0.5, 1e50]), min_size=4, max_size=4),
        st.lists(st.sampled_from([4.0, 1.0, 0.0, -1.0, 1e300, 5e-324]), max_size=5),
    ),
    "alpha": _mostly([1e-3, 1e-6, 1e-100, 0.5], [1.0, 0.0, -1e-3, 1e300, 5e-324]),
    "lr": _mostly([0.04, 0.3, 2.0, 10.0, 1e308, 5e-324], [0.0, -0.1]),
    "steps": st.one_of(st.integers(1, 30), st.integers(-1, 0)),
    "seed": _mostly([0, 3], [-1]),
    "seeds": st.one_of(st.lists(st.integers(0, 3), min_size=1, max_size=2), st.lists(st.integers(-1, 3), max_size=2)),
    "target_seed": _mostly([0, 3], [-1]),
    "q": _mostly([0.5, 0.9, 0.01], [0.0, 1.0, 2.0]),
    "tolerance": _mostly([0.15, 1e300], [0.0, -1.0]),
}
SMF_SMALL = {"d": 6, "width": 6, "steps": 20, "seeds": [0]}


def _text(value: Any) -> str:
    """A value as ``--set`` writes it (lists as comma lists)."""
    return ",".join(_text(v) for v in value) if isinstance(value, list) else repr(value)


@st.composite
def smf_settings(draw: st.DrawFn) -> list[str]:
    """A few smf_reference settings: values of its kind mostly, any text sometimes."""
    keys = draw(st.lists(st.sampled_from(sorted(SMF_VALUES)), min_size=1, max_size=3, unique=True))
    odd = st.one_of(st.text(max_size=6), st.sampled_from(["", ",", "nan", "-inf", "1e400", "none", "1,2", "0x10"]))
    values = {key: st.one_of(*[SMF_VALUES[key].map(_text)] * 3, odd) for key in keys}  # any text one time in 4
    return [f"{key}={draw(values[key])}" for key in keys]


def _small_base(keys: list[str]) -> dict[str, Any]:
    """The small sizes every fuzzed smf_reference run starts from, except the settings it fuzzes."""
    seeded = any(k.strip().startswith("seed") for k in keys)
    return {k: v for k, v in SMF_SMALL.items() if k not in keys and not (k == "seeds" and seeded)}


@SMF_FUZZ
@given(assignments=smf_settings())
def test_smf_reference_with_any_settings_exits_cleanly_without_warnings(assignments: list[str]) -> None:
    from hypothesis import assume

    assume(all(_safe(a) for a in assignments))
    keys = [a.partition("=")[0] for a in assignments]
    base = [f"{k}={_text(v)}" for k, v in _small_base(keys).items()]
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "run"
        argv = ["run", "smf_reference", *[x for a in base + assignments for x in ("--set", a)], "--out", str(out)]
        code, stdout, err = _call(argv)
        _assert_clean_exit(code, err)
        assert "warning" not in stdout.lower(), stdout  # the experiment raises none for the CLI to sum up
        if code == 2:  # refused, naming the setting, before anything is computed
            assert err.startswith("trajcore: error: setting") or "unknown key" in err, err
            assert not out.exists()
        else:
            assert (out / "index.html").is_file() and (out / "metrics.json").is_file()


@st.composite
def smf_specs(draw: st.DrawFn) -> str:
    """smf_reference sweeps of up to 4 points over fuzzed settings (sizes stay small), from the small base."""
    keys = draw(st.lists(st.sampled_from(sorted(SMF_VALUES)), min_size=1, max_size=2, unique=True))
    grid = {k: draw(st.lists(SMF_VALUES[k], min_size=1, max_size=2)) for k in keys}
    lines = ['experiment = "smf_reference"', "[base]"]
    lines += [f"{k} = {_toml(v)}" for k, v in _small_base(keys).items()]
    lines += ["[grid]"] + [f"{k} = {_toml(v)}" for k, v in grid.items()]
    return "\n".join(lines) + "\n"


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=smf_specs())
def test_smf_reference_sweeps_exit_cleanly_without_warnings(text: str) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        spec, out = Path(scratch) / "spec.toml", Path(scratch) / "store"
        spec.write_text(text)
        code, stdout, err = _call(["sweep", str(spec), "--out", str(out), "--executor", "threads", "--workers", "2"])
        _assert_clean_exit(code, err)
        assert "warning" not in stdout.lower(), stdout
        if code == 2:
            assert not out.exists(), err
        _assert_store_whole(out)
