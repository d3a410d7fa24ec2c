"""The ``trajcore`` command: demo, list, run, sweep, report, info.

Exit codes: 0 success; 2 usage error (bad arguments, unknown experiment or setting, bad spec or
grid point, an unusable ``--out``); 1 failure (an experiment raised, ``run``'s checks failed, runs of
a sweep failed, the store belongs to another sweep or is in use, an executor failed, a scheduler is
unreachable). Errors are one line on stderr. ``run`` exits 1 when any of the experiment's checks
fails (after writing the report; ``--no-strict`` makes that exit 0); ``demo`` does so only with
``--strict``.

Warnings raised while a command works (NumPy's about a diverging run, a plotting library's) are
recorded rather than printed, and summed up in one line on stdout (and, for a run, in its notes in
the report): a diverged run is reported by the experiment's checks, and stderr keeps its one line.
Worker processes of a sweep (``--executor local`` or ``dask``) print their own warnings; the
matrix-factorization, linear-network and tensor experiments raise none.

Progress (on stderr: a bar for sweeps, the elapsed time of the running experiment for ``run`` and
``demo``) appears when stderr is a terminal and ``--quiet`` is not given, or always with
``--progress`` (never with ``--no-progress``). It is erased before each result line is printed, so
a terminal shows only results once a command is done.

Report directories (``run --out``, ``demo --out``) are written whole or not at all: the run goes to
a hidden sibling directory that replaces ``--out`` once the report is complete, so a failed run
leaves nothing behind and a rerun into the same ``--out`` leaves no figure of an earlier run. An
``--out`` that is a file, a sweep store, or a non-empty directory that is not a trajcore report is
refused.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import shutil
import sys
import tempfile
import textwrap
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input from the user: exit code 2."""


class Failure(Exception):
    """The work itself failed: exit code 1."""


class Skipped(Failure):
    """An experiment needs an optional extra that is not installed: ``demo`` goes on without it,
    ``run`` exits 1 with the install hint."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


class _Console:
    """Where messages go: results on stdout, chatter suppressed by --quiet, progress on stderr
    (on a terminal, or as --progress/--no-progress say)."""

    def __init__(self, quiet: bool, progress: bool | None = None) -> None:
        self.quiet = quiet
        self.progress = progress if progress is not None else (not quiet) and sys.stderr.isatty()

    def say(self, message: str) -> None:
        if not self.quiet:
            print(message, flush=True)

    def ticker(self, label: str) -> _Ticker | contextlib.nullcontext[None]:
        return _Ticker(label) if self.progress else contextlib.nullcontext()


class _Ticker:
    """``label`` and the seconds elapsed on one stderr line, redrawn in place while the work runs
    (for work with no progress of its own to show) and erased when it ends."""

    #: seconds between redraws
    INTERVAL = 0.5

    def __init__(self, label: str) -> None:
        self.label = label
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._draw, name="trajcore-progress", daemon=True)

    def _draw(self) -> None:
        started = time.monotonic()
        while True:
            sys.stderr.write(f"\r\033[K{self.label}: running, {time.monotonic() - started:.0f} s")
            sys.stderr.flush()
            if self._stop.wait(self.INTERVAL):
                return

    def __enter__(self) -> _Ticker:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        sys.stderr.write("\r\033[K")  # erase the line: what follows is a result
        sys.stderr.flush()


# -- warnings ------------------------------------------------------------------------------------
@contextlib.contextmanager
def _recorded_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Warnings raised in the block (by any thread), recorded instead of printed: stderr holds a
    command's one error line. The filters stay as they are (``-W error`` still raises)."""
    with warnings.catch_warnings(record=True) as caught:
        yield caught


def _warnings_summary(caught: Sequence[warnings.WarningMessage]) -> str:
    """``"3 warnings (overflow encountered in matmul (x2); All-NaN slice encountered)"``."""
    counts = collections.Counter(_one_line(w.message) for w in caught)
    texts = [f"{text} (x{n})" if n > 1 else text for text, n in counts.most_common(3)]
    if len(counts) > 3:
        texts.append(f"{len(counts) - 3} other kind(s)")
    return f"{len(caught)} warning{'s' if len(caught) != 1 else ''} ({'; '.join(texts)})"


# -- report directories --------------------------------------------------------------------------
def _check_out(out: Path) -> Path:
    """``out`` as an absolute path; ``UsageError`` unless ``--out`` may receive a report (checked
    before any work)."""
    given, out = out, Path(os.path.abspath(out))
    if out == Path.cwd() or out in Path.cwd().parents:
        raise UsageError(
            f"--out: {given} holds the current directory, which a report would replace; choose another --out"
        )
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out: {out} exists and is not a directory")
    if (out / "sweep.json").exists():
        raise UsageError(f"--out: {out} is a sweep store; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / "metrics.json").is_file():
        raise UsageError(f"--out: {out} is neither empty nor a trajcore report; choose another --out")
    return out


@contextlib.contextmanager
def _staged(out: Path) -> Iterator[Path]:
    """A fresh hidden directory next to ``out`` to write the report into; it replaces ``out`` when
    the block succeeds, and is removed (with any parent directory made for it) when it fails."""
    made = [p for p in (out.parent, *out.parent.parents) if not p.exists()]
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for directory in made:  # deepest first
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise
    if out.exists():  # an earlier report (checked by _check_out): replaced whole
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=staging.parent))
        os.replace(out, old / out.name)
        os.replace(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out)


# -- commands ------------------------------------------------------------------------------------
def _experiment(name: str) -> Any:
    from .experiments import get

    try:
        return get(name)
    except KeyError as error:
        raise UsageError(str(error.args[0])) from None


def _run_into_report(
    experiment: Any, config: Any, out: Path, directory: str, console: _Console, label: str = ""
) -> Any:
    from .experiments import MissingExtra
    from .experiments.settings import config_dict
    from .report import ReportEntry

    started = time.perf_counter()
    try:
        with console.ticker(label or experiment.name), _recorded_warnings() as caught:
            result = experiment.run(config, out / directory if directory else out)
    except MissingExtra as error:
        raise Skipped(f"{experiment.name}: skipped, {error}") from None
    except Exception as error:
        raise Failure(f"experiment {experiment.name} failed: {type(error).__name__}: {error}") from error
    seconds = time.perf_counter() - started
    failed = [name for name, ok in result.checks.items() if not ok]
    status = "all checks pass" if not failed else f"FAILED checks: {', '.join(failed)}"
    if caught:  # the checks say whether the run went wrong; the warnings are noted, not printed
        summary = _warnings_summary(caught)
        result.notes.append(f"Warnings raised during the run: {summary}.")
        status += f"; {summary}"
    console.say(f"  {experiment.name}: {seconds:.1f} s, {status}")
    return ReportEntry(experiment.name, experiment.description, config_dict(config), result, seconds, directory)


def cmd_demo(args: argparse.Namespace, console: _Console) -> int:
    from .experiments import registry
    from .report import all_checks_pass, write_report

    experiments = [e for e in registry().values() if e.flagship]
    if args.only:
        known = {e.name: e for e in registry().values()}
        unknown = [n for n in args.only if n not in known]
        if unknown:
            raise UsageError(f"unknown experiment(s) {', '.join(unknown)}; known: {', '.join(known)}")
        experiments = [known[n] for n in args.only]
    if not experiments:
        raise Failure("no flagship experiments are registered (see trajcore list)")
    out = _check_out(Path(args.out))
    console.say(f"trajcore demo: {len(experiments)} experiment(s) in their quick configs -> {out}")
    started = time.perf_counter()
    entries = []
    with _staged(out) as staging:
        for number, experiment in enumerate(experiments, 1):
            label = f"[{number}/{len(experiments)}] {experiment.name}"
            try:
                entries.append(
                    _run_into_report(experiment, experiment.demo_config(), staging, experiment.name, console, label)
                )
            except Skipped as skipped:  # e.g. the deep-network experiments without PyTorch
                console.say(f"  {skipped}")
        write_report(staging, entries, title="trajcore demo: the papers' results, reproduced")
    console.say(
        f"done in {time.perf_counter() - started:.1f} s; "
        + ("all checks pass" if all_checks_pass(entries) else "some checks FAILED (see the report)")
    )
    print(f"report: {(out / 'index.html').resolve()}")
    if args.strict and not all_checks_pass(entries):
        raise Failure("some experiment checks failed (see the report)")
    return EXIT_OK


def cmd_list(args: argparse.Namespace, console: _Console) -> int:
    from .experiments import registry
    from .experiments.settings import field_types, type_name

    experiments = registry()
    if not experiments:
        print("no experiments registered")
        return EXIT_OK
    width = max(len(name) for name in experiments)
    for name, experiment in experiments.items():
        mark = "*" if experiment.flagship else " "
        print(f"{mark} {name:<{width}}  {experiment.description}")
        if args.verbose:
            defaults = experiment.default_config()
            for key, tp in field_types(experiment.config_type).items():
                demo = f"  (demo: {experiment.demo[key]!r})" if key in experiment.demo else ""
                print(f"      {key} = {getattr(defaults, key)!r}  [{type_name(tp)}]{demo}")
    console.say("(* = flagship, run by trajcore demo; trajcore list -v shows the settings)")
    return EXIT_OK


def cmd_run(args: argparse.Namespace, console: _Console) -> int:
    from .experiments import ConfigError
    from .experiments.settings import read_settings_file
    from .report import write_report

    experiment = _experiment(args.name)
    try:
        values = read_settings_file(args.config) if args.config else {}
        values.update(experiment.parse_settings(args.set))
        config = experiment.make_config(values, demo=args.demo)
    except ConfigError as error:
        raise UsageError(str(error)) from None
    out = _check_out(Path(args.out or f"trajcore-{experiment.name}"))
    console.say(f"trajcore run {experiment.name} -> {out}")
    with _staged(out) as staging:
        entry = _run_into_report(experiment, config, staging, "", console)
        write_report(staging, [entry], title=f"trajcore run {experiment.name}")
    print(f"report: {(out / 'index.html').resolve()}")
    failed = [name for name, ok in entry.result.checks.items() if not ok]
    if failed and args.strict:
        raise Failure(f"{experiment.name}: {len(failed)} check(s) failed: {', '.join(failed)} (see the report)")
    return EXIT_OK


def cmd_sweep(args: argparse.Namespace, console: _Console) -> int:
    from .store import RunStore, StoreError
    from .sweep import (
        SpecError,
        SweepError,
        check_store,
        dask_executor,
        expand,
        load_spec,
        local_executor,
        run_sweep,
    )

    if args.workers < 1:
        raise UsageError(f"--workers: expected a positive integer, got {args.workers}")
    if args.chunk_size is not None and args.chunk_size < 1:
        raise UsageError(f"--chunk-size: expected a positive integer, got {args.chunk_size}")
    kind = "dask" if args.scheduler else args.executor
    if args.scheduler and args.executor not in ("dask", None):
        raise UsageError("--scheduler needs --executor dask")
    kind = kind or "local"
    try:
        spec = load_spec(args.spec)
        _, runs = expand(spec)  # validate every config before touching the executor or the disk
    except SpecError as error:
        raise UsageError(str(error)) from None
    out = Path(args.out)
    try:
        check_store(spec, runs, out)  # another experiment or sweep: refused before any work
        if RunStore(out).is_store():
            with RunStore(out).lock():  # another sweep writing: refused before starting an executor
                pass
    except StoreError as error:
        raise Failure(str(error)) from None
    console.say(f"trajcore sweep {spec.experiment}: {len(runs)} runs, executor {kind}, -> {out}")
    try:
        if kind == "dask":
            executor_context = dask_executor(args.scheduler, workers=args.workers, timeout=args.timeout)
        elif kind == "threads":
            executor_context = local_executor(args.workers, kind="threads")
        else:
            executor_context = local_executor(args.workers, kind="processes")
        with executor_context as executor:
            outcome = run_sweep(
                spec,
                out,
                executor=executor,
                workers=args.workers,
                chunk_size=args.chunk_size,
                limit_blas=kind != "threads",
                progress=console.progress,
            )
    except (SpecError, ValueError) as error:  # a bad spec or a malformed --scheduler address
        raise UsageError(str(error)) from None
    except (SweepError, StoreError) as error:
        raise Failure(str(error)) from None
    corrupt = f", {outcome.corrupt} corrupt file(s) recomputed" if outcome.corrupt else ""
    console.say(
        f"{outcome.total} runs: {outcome.skipped} already stored, {outcome.computed} computed{corrupt} "
        f"in {outcome.seconds:.1f} s"
    )
    print(f"summary: {(out / 'summary.csv').resolve()}  (plots: trajcore report {out})")
    return EXIT_OK


def cmd_report(args: argparse.Namespace, console: _Console) -> int:
    from .report import rebuild_report, write_sweep_report
    from .store import RunStore, StoreError

    root = Path(args.dir)
    if root.exists() and not root.is_dir():
        raise UsageError(f"DIR: {root} is a file; expected a sweep store or a report directory")
    if not root.is_dir():
        raise UsageError(f"DIR: {root}: no such directory")
    try:
        if RunStore(root).is_store():
            index = write_sweep_report(root)
        elif (root / "metrics.json").is_file():
            index = rebuild_report(root)
        else:
            raise UsageError(f"{root}: neither a sweep store (sweep.json) nor a report (metrics.json)")
    except (StoreError, ValueError) as error:
        raise Failure(str(error)) from None
    print(f"report: {index.resolve()}")
    return EXIT_OK


def cmd_info(args: argparse.Namespace, console: _Console) -> int:
    from . import show_config

    show_config()
    return EXIT_OK


def _spec_format() -> str:
    from .sweep import SPEC_FORMAT

    return SPEC_FORMAT


# -- the parser ----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="trajcore",
        description="Run and analyse gradient-descent trajectories: reproduce the papers, run named "
        "experiments, sweep grids locally or on Dask.",
        epilog="Start with: trajcore demo",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print only results and errors")
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress on stderr (default: when stderr is a terminal and not --quiet)",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    # --quiet is accepted after the command too; SUPPRESS keeps the top-level value when absent.
    common = _Parser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="print only results")
    common.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=argparse.SUPPRESS,
        help="progress on stderr (default: when stderr is a terminal and not --quiet)",
    )

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="run the flagship experiments quickly and write an HTML report",
        description="Run every flagship experiment in its quick demo config and write <out>/index.html, "
        "PNG figures and metrics.json (a few minutes on a laptop).",
    )
    demo.add_argument("--out", default="trajcore-report", help="report directory (default: %(default)s)")
    demo.add_argument("--only", nargs="+", metavar="NAME", help="run only these experiments (demo configs)")
    demo.add_argument(
        "--strict",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="exit 1 if any experiment check fails (default: exit 0, the report shows the checks)",
    )
    demo.set_defaults(handler=cmd_demo)

    listing = commands.add_parser(
        "list", parents=[common], help="list the named experiments", description="List the experiments."
    )
    listing.add_argument("-v", "--verbose", action="store_true", help="also show each config's settings and types")
    listing.set_defaults(handler=cmd_list)

    run = commands.add_parser(
        "run",
        parents=[common],
        help="run one experiment with settings",
        description="Run one named experiment and write a report. Exit status: 0 when every check of "
        "the experiment passes, 1 when one fails (the report is written; --no-strict: 0), 2 for bad input.",
        epilog="Example: trajcore run smf_reference --set d=40 --set alpha=1e-4 --out smf",
    )
    run.add_argument("name", help="experiment name (see trajcore list)")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field (repeatable); lists as comma lists, e.g. sigma=10,5,3",
    )
    run.add_argument(
        "--config",
        metavar="FILE.toml",
        help="settings from a TOML file (key = value per field); --set overrides",
    )
    run.add_argument("--demo", action="store_true", help="start from the quick demo config instead of the default")
    run.add_argument("--out", help="report directory, replaced whole (default: trajcore-NAME)")
    run.add_argument(
        "--strict",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="exit 1 if any of the experiment's checks fails, after writing the report (default: on)",
    )
    run.set_defaults(handler=cmd_run)

    sweep = commands.add_parser(
        "sweep",
        parents=[common],
        help="run a grid from a TOML spec into a resumable store",
        description=textwrap.fill(
            "Expand SPEC.toml (experiment, [base], [grid]) into runs and store one checksummed file per "
            "run in --out; rerunning skips finished runs and recomputes corrupt ones. Exit status: 0 when "
            "every run is stored, 1 when runs failed or the store is another sweep's or in use, 2 for a "
            "bad spec or grid point (nothing computed).",
            width=96,
        ),
        epilog=_spec_format(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sweep.add_argument("spec", help="the sweep spec (TOML)")
    sweep.add_argument("--out", required=True, help="store directory")
    sweep.add_argument(
        "--executor",
        choices=("local", "threads", "dask"),
        default=None,
        help="local worker processes (default), threads, or Dask distributed",
    )
    sweep.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="Dask scheduler to use (implies dask)")
    sweep.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="local workers (default: CPUs)")
    sweep.add_argument("--chunk-size", type=int, help="runs per task (default: from the spec, else automatic)")
    sweep.add_argument("--timeout", type=float, default=10.0, help="seconds to reach the scheduler (default: 10)")
    sweep.set_defaults(handler=cmd_sweep)

    report = commands.add_parser(
        "report",
        parents=[common],
        help="(re)write the HTML report of a sweep store or a run/demo directory",
        description="For a sweep store: plot every metric against each swept parameter. For a run or demo "
        "directory: rebuild index.html from metrics.json.",
    )
    report.add_argument("dir", help="sweep store or report directory")
    report.set_defaults(handler=cmd_report)

    info = commands.add_parser(
        "info", parents=[common], help="show how trajcore was built", description="trajcore.show_config()"
    )
    info.set_defaults(handler=cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 failure, 2 usage error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.version:
            from .config import version

            print(f"trajcore {version()}")
            return EXIT_OK
        if args.command is None:
            parser.print_help()
            print("trajcore: error: no command given (see trajcore --help)", file=sys.stderr)
            return EXIT_USAGE
        console = _Console(args.quiet, args.progress)
        with _recorded_warnings() as caught:  # what an experiment does not note itself (see _run_into_report)
            code = int(args.handler(args, console))
        if caught:
            console.say(f"note: {_warnings_summary(caught)} while working")
        return code
    except UsageError as error:
        print(f"trajcore: error: {_one_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    except (Failure, ImportError) as error:
        print(f"trajcore: failed: {_one_line(error)}", file=sys.stderr)
        return EXIT_FAILURE
    except SystemExit as stop:  # --help and --version of argparse
        return stop.code if isinstance(stop.code, int) else EXIT_OK
    except KeyboardInterrupt:
        print("trajcore: interrupted", file=sys.stderr)
        return 130


def _one_line(error: object) -> str:
    """An error as one line (exception texts may hold newlines: an experiment's, a TOML parser's, a
    path's)."""
    return " ".join(part.strip() for part in str(error).splitlines()).strip()


if __name__ == "__main__":
    sys.exit(main())
