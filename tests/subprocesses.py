"""Starting child Python processes on the trajcore under test.

Children import the same trajcore as the test process (installed in CI, the source tree when run in
place) plus the helpers in this folder, and run with a working directory outside the source tree,
since ``python -m``/``-c`` put the working directory first on ``sys.path``.
"""

from __future__ import annotations

import os
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
