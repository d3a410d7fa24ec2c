"""Run trajcore and its anchors on the same inputs in one process and print the ratios.

    python bench/compare.py              # every suite
    python bench/compare.py --only mf    # suites whose module name contains "mf"
    python bench/compare.py --quick --json results.json

Each suite is a module ``bench/compare_<name>.py`` with ``compare(report)``; anchors that are not
installed (JAX, PyTorch, TensorLy) are reported as skipped. Each suite runs in a process of its
own: the thread pools one suite's anchors leave behind (PyTorch's, XLA's, OpenBLAS's keep spinning
for a while) would otherwise take cores from the next suite's multi-threaded timings. For a fair
NumPy anchor on machines that set OPENBLAS_CORETYPE, unset it (and OPENBLAS_L2_SIZE) for this
command alone.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from harness import Report  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated substrings of suite names")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and smaller sizes")
    parser.add_argument("--json", default=None, help="also write the table as JSON here")
    parser.add_argument("--suite", default=None, help=argparse.SUPPRESS)  # one suite, in this process
    args = parser.parse_args(argv)

    report = Report(quick=args.quick)
    if args.suite is not None:
        importlib.import_module(args.suite).compare(report)
        if args.json:
            report.to_json(args.json)
        return 0

    import trajcore

    trajcore.show_config()
    wanted = [s for s in args.only.split(",") if s]
    suites = sorted(m.name for m in pkgutil.iter_modules([HERE]) if m.name.startswith("compare_"))
    with tempfile.TemporaryDirectory(prefix="trajcore-compare-") as tmp:
        for name in suites:
            if wanted and not any(w in name for w in wanted):
                continue
            print(f"\n== {name}", flush=True)
            rows = os.path.join(tmp, f"{name}.json")
            command = [sys.executable, os.path.abspath(__file__), "--suite", name, "--json", rows]
            done = subprocess.run(command + (["--quick"] if args.quick else []), check=False)
            if done.returncode != 0:
                print(f"{name}: failed with exit code {done.returncode}", flush=True)
                continue
            report.merge_json(rows)
    report.print_table()
    if args.json:
        report.to_json(args.json)
    missed = [r for r in report.rows if r.status == "MISSED"]
    print(f"\n{len(report.rows)} rows, {len(missed)} below target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
