"""Run trajcore and its anchors on the same inputs in one process and print the ratios.

    python bench/compare.py              # every suite
    python bench/compare.py --only mf    # suites whose module name contains "mf"
    python bench/compare.py --quick --json results.json

Each suite is a module ``bench/compare_<name>.py`` with ``compare(report)``; anchors that are not
installed (JAX, PyTorch, TensorLy) are reported as skipped. For a fair NumPy anchor on machines
that set OPENBLAS_CORETYPE, unset it (and OPENBLAS_L2_SIZE) for this command alone.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from harness import Report  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated substrings of suite names")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and smaller sizes")
    parser.add_argument("--json", default=None, help="also write the table as JSON here")
    args = parser.parse_args(argv)

    import trajcore

    trajcore.show_config()
    report = Report(quick=args.quick)
    wanted = [s for s in args.only.split(",") if s]
    suites = sorted(m.name for m in pkgutil.iter_modules([HERE]) if m.name.startswith("compare_"))
    for name in suites:
        if wanted and not any(w in name for w in wanted):
            continue
        print(f"\n== {name}", flush=True)
        importlib.import_module(name).compare(report)
    report.print_table()
    if args.json:
        report.to_json(args.json)
    missed = [r for r in report.rows if r.status == "MISSED"]
    print(f"\n{len(report.rows)} rows, {len(missed)} below target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
