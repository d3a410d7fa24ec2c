"""The science notes that docstrings cite ship inside the package, and every cited section exists.

Docstrings say "PAPERS.md section N"; ``trajcore/PAPERS.md`` (package data, so it is in every wheel
and sdist) has a heading "## N." for each such N.
"""

from __future__ import annotations

import importlib.resources
import re
from pathlib import Path

import trajcore


def test_papers_ship_with_the_package_and_every_cited_section_exists():
    papers = importlib.resources.files(trajcore).joinpath("PAPERS.md")
    assert papers.is_file(), "trajcore/PAPERS.md is not installed with the package"
    sections = set(re.findall(r"^## (\d+)\. ", papers.read_text(encoding="utf-8"), flags=re.MULTILINE))
    assert sections >= {"1", "2", "3", "4", "5", "6"}
    sources = Path(trajcore.__file__).parent
    cited = {}
    for path in sources.rglob("*.py"):
        for number in re.findall(r"PAPERS\.md,? sections? (\d+)", path.read_text(encoding="utf-8")):
            cited.setdefault(number, []).append(path.name)
    assert cited, "no docstring cites PAPERS.md (the pattern no longer matches)"
    missing = {n: files for n, files in cited.items() if n not in sections}
    assert not missing, f"sections cited but not in trajcore/PAPERS.md: {missing}"
