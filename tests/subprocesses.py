"""Starting child Python processes on the trajcore under test.

Children import the same trajcore as the test process (installed in CI, the source tree when run in
place) plus the helpers in this folder, and run with a working directory outside the source tree,
since ``python -m``/``-c`` put the working directory first on ``sys.path``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import trajcore

TESTS = Path(__file__).resolve().parent
PACKAGE_HOME = Path(trajcore.__file__).resolve().parent.parent


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment with the trajcore under test and ``tests/`` on ``PYTHONPATH``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_HOME), str(TESTS), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def experiments_env(**extra: str) -> dict[str, str]:
    """:func:`child_env` with the test experiments (``tiny_experiments``) registered."""
    return child_env(TRAJCORE_EXPERIMENTS="tiny_experiments", **extra)


def run_cli(*args: str, module: str = "trajcore.cli", **extra_env: str) -> subprocess.CompletedProcess[str]:
    """``python -m <module> *args`` in a child with the test experiments registered; output captured."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=experiments_env(**extra_env),
        cwd=TESTS,
        capture_output=True,
        text=True,
        timeout=120,
    )
