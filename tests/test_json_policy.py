"""One JSON policy (trajcore._json): every file the package writes is strict JSON, numpy values are
plain numbers and lists, and a non-finite float is ``null``. The same value goes through every
writer (sweep store, run file, report, ``.npz`` record metadata, config canonical form) and comes
back the same; ``allow_nan`` cannot be switched back on; and no module but ``trajcore._json``
calls ``json.dump``/``json.dumps`` itself."""

from __future__ import annotations

import ast
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import trajcore as tc
from trajcore import _json
from trajcore.experiments import ExperimentResult
from trajcore.experiments.settings import config_dict, run_id
from trajcore.network import NetworkRun
from trajcore.report import ReportEntry, rebuild_report, write_report
from trajcore.store import RunStore

PACKAGE = Path(tc.__file__).resolve().parent

# Every kind of value the policy converts, nested.
VALUE: dict[Any, Any] = {
    "nan": float("nan"),
    "inf": math.inf,
    "minus_inf": -math.inf,
    "f32": np.float32(0.1),
    "f32_nan": np.float32("nan"),
    "i64": np.int64(7),
    "flag": np.bool_(True),
    "nested": (1, (2.5, np.float64("inf")), [np.int32(3), None]),
    "array": np.array([[1.0, np.inf], [np.nan, -0.5]]),
    "path": Path("runs") / "a.json",
    3: "an int key",
    "none": None,
    "text": "NaN",  # a string stays a string
}
EXPECTED: dict[str, Any] = {
    "nan": None,
    "inf": None,
    "minus_inf": None,
    "f32": float(np.float32(0.1)),  # the float32's exact value, 0.10000000149011612
    "f32_nan": None,
    "i64": 7,
    "flag": True,
    "nested": [1, [2.5, None], [3, None]],
    "array": [[1.0, None], [None, -0.5]],
    "path": "runs/a.json",
    "3": "an int key",
    "none": None,
    "text": "NaN",
}


def _refuse(token: str) -> Any:
    raise AssertionError(f"not strict JSON: {token}")


def strict_loads(text: str) -> Any:
    """``json.loads`` that fails on the non-standard NaN/Infinity tokens."""
    return json.loads(text, parse_constant=_refuse)


def _same(a: Any, b: Any) -> bool:
    """Equal, and of the same JSON types (``1`` is not ``1.0``, ``True`` is not ``1``)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


# -- the policy ------------------------------------------------------------------------------------


def test_json_ready_converts_every_kind():
    ready = _json.json_ready(VALUE)
    assert _same(ready, EXPECTED)
    assert _same(_json.json_ready(ready), ready)  # idempotent on plain JSON data
    assert _json.json_ready(np.float64(-0.0)) == 0.0 and math.copysign(1, _json.json_ready(-0.0)) == -1


def test_dumps_writes_strict_json_and_refuses_allow_nan():
    assert _json.dumps(float("nan")) == "null"
    assert _json.dumps([math.inf, -math.inf, np.float32(2.0)]) == "[null, null, 2.0]"
    assert _same(strict_loads(_json.dumps(VALUE, indent=2)), EXPECTED)
    for allow_nan in (True, False):
        with pytest.raises(TypeError, match="allow_nan"):
            _json.dumps(1.0, allow_nan=allow_nan)


def test_canonical_json_is_sorted_compact_and_follows_the_policy():
    assert _json.canonical_json({"b": 1, "a": [1.0, math.nan]}) == '{"a":[1.0,null],"b":1}'
    assert _json.canonical_json({"k": (np.int64(1), "\u00e9")}) == '{"k":[1,"\\u00e9"]}'
    assert _same(strict_loads(_json.canonical_json(VALUE)), EXPECTED)


def test_the_old_homes_reexport_the_one_policy():
    from trajcore import store
    from trajcore.experiments import settings

    assert store.json_ready is _json.json_ready
    assert settings.canonical_json is _json.canonical_json


# -- every writer ----------------------------------------------------------------------------------


def test_store_spec_and_run_files(tmp_path):
    store = RunStore(tmp_path / "store")
    store.create({"experiment": "tiny_smf", "base": VALUE, "grid": {}})
    assert _same(strict_loads(store.spec_path.read_text())["base"], EXPECTED)
    assert _same(store.read_spec()["base"], EXPECTED)
    path = store.write_run({"id": "0123abcd", "config": {}, "result": {"metrics": VALUE}})
    assert _same(strict_loads(path.read_text())["payload"]["result"]["metrics"], EXPECTED)
    assert _same(store.read_run(path)["result"]["metrics"], EXPECTED)  # and its checksum holds


def _metadata_json(path: Path) -> Any:
    with np.load(path, allow_pickle=False) as data:
        return strict_loads(str(data["metadata_json"]))


def test_trajectory_metadata(tmp_path):
    problem = tc.SymmetricMatrixFactorization.planted(d=3, rank=1, seed=0)
    trajectory = tc.run(problem, np.full((3, 2), 0.1), lr=0.01, steps=2)
    trajectory.metadata["value"] = VALUE
    trajectory.save(tmp_path / "run.npz")
    assert _same(_metadata_json(tmp_path / "run.npz")["value"], EXPECTED)
    assert _same(tc.Trajectory.load(tmp_path / "run.npz").metadata["value"], EXPECTED)


def test_network_run_metadata(tmp_path):
    run = NetworkRun(
        steps=np.array([0, 1]),
        outputs=None,
        coefficients=None,
        feature_steps=np.array([1]),
        features=np.zeros((1, 2, 3)),
        parameters=None,
        train_loss=np.array([1.0, np.nan]),
        probe_loss=None,
        probe_inputs=None,
        probe_targets=None,
        metadata={"value": VALUE},
    )
    run.save(tmp_path / "run.npz")
    assert _same(_metadata_json(tmp_path / "run.npz")["value"], EXPECTED)
    loaded = NetworkRun.load(tmp_path / "run.npz")
    assert _same(loaded.metadata["value"], EXPECTED)
    np.testing.assert_array_equal(loaded.train_loss, [1.0, np.nan])  # arrays keep their NaN: only JSON maps it


def test_report_metrics(tmp_path):
    result = ExperimentResult(metrics={"value": VALUE}, checks={"holds": np.bool_(True)})
    write_report(tmp_path, [ReportEntry("tiny", "a test entry", config_dict(_Config()), result, 0.5)])
    document = strict_loads((tmp_path / "metrics.json").read_text())
    record = document["experiments"]["tiny"]
    assert _same(record["metrics"]["value"], EXPECTED)
    assert _same(record["config"], {"steps": 10, "limit": None, "sigma": [1.0, None]})
    assert record["checks"] == {"holds": True}
    rebuild_report(tmp_path)  # the written document renders again


@dataclasses.dataclass(frozen=True)
class _Config:
    steps: int = 10
    limit: float = math.inf
    sigma: tuple[float, ...] = (1.0, math.nan)


def test_config_canonical_form():
    """The canonical form of a config (run ids, store payloads) is the same policy, not a second one."""
    assert _same(config_dict(_Config()), {"steps": 10, "limit": None, "sigma": [1.0, None]})
    text = _json.canonical_json({"experiment": "tiny", "config": config_dict(_Config(), canonical=True)})
    assert text == '{"config":{"limit":null,"sigma":[1.0,null],"steps":10},"experiment":"tiny"}'
    assert run_id("tiny", _Config()) == run_id("tiny", _Config(sigma=(1.0, math.inf)))  # documented: both null
    assert run_id("tiny", _Config()) != run_id("tiny", _Config(steps=11))


# -- no other writer -------------------------------------------------------------------------------


def _json_dump_calls(source: str) -> list[int]:
    """Lines of ``json.dump(...)``/``json.dumps(...)`` calls and of ``from json import dump[s]``."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in ("dump", "dumps")
            and isinstance(node.value, ast.Name)
            and node.value.id == "json"
        ):
            lines.append(node.lineno)
        if isinstance(node, ast.ImportFrom) and node.module == "json":
            lines += [node.lineno for alias in node.names if alias.name in ("dump", "dumps")]
    return sorted(lines)


def test_no_module_but_the_policy_calls_json_dump():
    found = {
        str(path.relative_to(PACKAGE.parent)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "_json.py" and (lines := _json_dump_calls(path.read_text(encoding="utf-8")))
    }
    assert not found, f"JSON written around trajcore._json (use its dumps/canonical_json): {found}"
    assert _json_dump_calls("import json\nx = json.dumps(1)\nfrom json import dump\n") == [2, 3]
