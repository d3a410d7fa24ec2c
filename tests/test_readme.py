"""Every ```python block of README.md runs as written, each on its own in a fresh interpreter.

A block must be self-contained (its own imports); it runs in a temporary directory, so files it
writes go nowhere. A block that imports torch is skipped when torch is not installed.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from subprocesses import child_env

import trajcore as tc

README = Path(__file__).resolve().parent.parent / "README.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(text: str) -> list[str]:
    """The code of every ```python block of a Markdown text, in order."""
    return [match.group(1) for match in _BLOCK.finditer(text)]


def _blocks() -> list[str]:
    return python_blocks(README.read_text(encoding="utf-8")) if README.is_file() else []


def test_block_extraction():
    text = "intro\n```python\nx = 1\n```\n```bash\nls\n```\n```python\nimport y\ny.z()\n```\n"
    assert python_blocks(text) == ["x = 1\n", "import y\ny.z()\n"]


def test_readme_has_python_blocks():
    if not README.is_file():
        pytest.skip("README.md is not next to the tests (installed test run)")
    assert len(_blocks()) >= 2


@pytest.mark.parametrize("index", range(len(_blocks())))
def test_readme_block_runs_as_written(index, tmp_path):
    code = _blocks()[index]
    if re.search(r"^\s*(import torch|from torch)", code, re.MULTILINE) and importlib.util.find_spec("torch") is None:
        pytest.skip("the block needs torch, which is not installed")
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=child_env(MPLBACKEND="Agg"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    first_line = code.strip().splitlines()[0]
    assert done.returncode == 0, f"README block {index} ({first_line!r}) failed:\n{done.stderr[-3000:]}"


def test_readme_learning_time_comment_holds():
    """The API block says its noisy learning times are 26-41% early and noise-free ones within 5%."""
    problem = tc.SymmetricMatrixFactorization.planted(d=20, rank=4, sigma=[10, 5, 3, 1], seed=0)
    U0 = tc.small_init((64, 20, 20), scale=5e-7, seed=1)
    predicted = tc.analysis.predicted_learning_times([10, 5, 3, 1], alpha=5e-7, width=20, lr=0.04)
    record = tc.Record(every=1, coefficients="signal")
    noisy = tc.run(problem, U0, lr=0.04, steps=500, record=record, noise=tc.GradientNoise(1e-3, anneal=0.55), seed=7)
    clean = tc.run(problem, U0, lr=0.04, steps=500, record=record)
    for traj, (lo, hi) in [(noisy, (1 - 0.41, 1 - 0.26)), (clean, (0.95, 1.05))]:
        ratio = tc.analysis.learning_times(traj.diagonal()[1], q=0.5, steps=traj.steps) / predicted
        assert lo <= ratio.min() and ratio.max() <= hi, (ratio.min(), ratio.max())
