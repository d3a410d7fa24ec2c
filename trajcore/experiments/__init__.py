"""Named experiments: the paper reproductions and studies, each with a typed default config.

An experiment is a function ``fn(config, out_dir) -> ExperimentResult`` registered with
:func:`experiment`. Its config is a frozen dataclass whose fields all have defaults (int, float,
str, bool, or tuples of those), shared by the Python API, the CLI (``--set key=value``) and sweeps.
``demo`` overrides give the quick configuration ``trajcore demo`` runs.

Experiment modules register themselves on import; :func:`registry` imports them all, plus the
modules named in the environment variable ``TRAJCORE_EXPERIMENTS`` (comma-separated, importable
module names): that is how a user's own experiments reach ``trajcore run``/``sweep`` and the workers.
Typed settings (``--set key=value``, sweep values) are parsed by :mod:`.settings`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import math
import os
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .settings import ConfigError, build_config, parse_assignments

__all__ = [
    "ConfigError",
    "Checks",
    "Experiment",
    "ExperimentResult",
    "MissingExtra",
    "experiment",
    "registry",
    "get",
    "save_figure",
    "tolerating_divergence",
]

#: modules of this package that define no experiment
_NOT_EXPERIMENTS = frozenset({"settings"})


def _experiment_modules() -> list[str]:
    """This package's modules that define experiments (each registers on import): every module but
    :data:`_NOT_EXPERIMENTS`, so that a new experiment module needs no list edited."""
    names = (info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))
    return sorted(name for name in names if name not in _NOT_EXPERIMENTS)


class MissingExtra(ImportError):
    """An experiment needs an optional extra that is not installed; the message says how to install it."""


@dataclass
class ExperimentResult:
    """What an experiment returns.

    metrics : JSON-ready numbers and lists (the measured results).
    checks : expectation name -> whether the run met it (the paper's claims, honestly evaluated).
    figures : file names (relative to ``out_dir``) of the figures written.
    notes : human-readable findings, including where a claimed effect did not appear.
    check_details : optional, check name -> ``(measured, threshold, comparison)``: the value a check
        compared, what it was compared with and how (``"<="``, ``"=="``, ``"all"``, ...), so a report
        can show how close a pass or a failure was. :class:`Checks` fills it.
    captions : optional, figure file name -> what the figure shows and what the theory predicts.
    """

    metrics: dict[str, Any]
    checks: dict[str, bool] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    check_details: dict[str, tuple[Any, Any, str]] = field(default_factory=dict)
    captions: dict[str, str] = field(default_factory=dict)


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "==": lambda a, b: a == b,
}


class Checks:
    """Collects an experiment's checks together with what each one measured.

    ``compare(name, measured, "<=", threshold)`` evaluates and records a numeric comparison (a NaN
    measurement fails); ``holds(name, ok, measured=..., expected=...)`` records a check that is not
    one comparison (orders, classifications, "every seed ..."). ``passed`` and ``details`` go into
    :class:`ExperimentResult` as ``checks`` and ``check_details``.
    """

    def __init__(self) -> None:
        self.passed: dict[str, bool] = {}
        self.details: dict[str, tuple[Any, Any, str]] = {}

    def compare(self, name: str, measured: Any, comparison: str, threshold: Any) -> bool:
        if comparison not in _COMPARE:
            raise ValueError(f"comparison: expected one of {', '.join(_COMPARE)}, got {comparison!r}")
        value = float(measured)
        ok = bool(math.isfinite(value) and _COMPARE[comparison](value, float(threshold)))
        self.passed[name] = ok
        self.details[name] = (value, threshold, comparison)
        return ok

    def holds(self, name: str, ok: Any, *, measured: Any = None, expected: Any = None) -> bool:
        self.passed[name] = bool(ok)
        if measured is not None or expected is not None:
            self.details[name] = (measured, expected, "is")
        return bool(ok)


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    config_type: type
    fn: Callable[[Any, Path | None], ExperimentResult]
    demo: dict[str, Any] = field(default_factory=dict)
    flagship: bool = False

    def default_config(self) -> Any:
        return self.config_type()

    def demo_config(self) -> Any:
        return dataclasses.replace(self.config_type(), **self.demo)

    def make_config(self, values: dict[str, Any] | None = None, *, demo: bool = False) -> Any:
        """The default (or ``demo``) config with ``values`` applied and typed (``ConfigError`` if not)."""
        base = self.demo_config() if demo else self.default_config()
        return build_config(self.config_type, values or {}, base, context=f"experiment {self.name!r}")

    def parse_settings(self, assignments: list[str]) -> dict[str, Any]:
        """``["key=value", ...]`` parsed by the config's field types; ``ConfigError`` if they do not fit."""
        return parse_assignments(self.config_type, assignments, context=f"experiment {self.name!r}")

    def run(self, config: Any = None, out_dir: Path | None = None) -> ExperimentResult:
        cfg = self.default_config() if config is None else config
        if not isinstance(cfg, self.config_type):
            raise TypeError(f"config: expected {self.config_type.__name__}, got {type(cfg).__name__}")
        if out_dir is not None:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
        return self.fn(cfg, None if out_dir is None else Path(out_dir))


def tolerating_divergence() -> contextlib.AbstractContextManager[Any]:
    """NumPy's floating-point warnings off, for code that knowingly handles a run that diverged (its
    NaN and infinite records): a check of the experiment reports the divergence instead."""
    import numpy as np

    return np.errstate(over="ignore", invalid="ignore", divide="ignore")


_REGISTRY: dict[str, Experiment] = {}


def save_figure(
    out_dir: Path | None,
    name: str,
    draw: Callable[[Any], Any],
    figures: list[str],
    figsize: tuple | str = "line",
    *,
    panels: tuple[int, int] = (1, 1),
    share_y: bool = False,
) -> None:
    """Draw with ``draw(ax)`` on a fresh figure and save it as ``out_dir / name`` (appending ``name``
    to ``figures``); nothing happens without an ``out_dir``.

    ``figsize`` is a :data:`trajcore.plot.style.SIZES` kind (or, as before, a size in inches);
    ``panels = (rows, cols)`` passes ``draw`` an array of axes (sharing y with ``share_y``). The
    figure is not registered with pyplot, so experiments can run in threads and leave no open windows
    behind; it is saved with :func:`trajcore.plot.style.finish`."""
    if out_dir is None:
        return
    from ..plot import style

    if isinstance(figsize, str):
        fig, axes = style.new_figure(figsize, *panels, sharey=share_y)
    else:
        import matplotlib as mpl
        from matplotlib.figure import Figure

        with mpl.rc_context(style.RC):
            fig = Figure(figsize=figsize, layout="constrained")
            axes = fig.subplots(*panels, sharey=share_y)
    draw(axes)
    style.finish(fig, out_dir / name)
    figures.append(name)


def experiment(
    name: str,
    config_type: type,
    description: str,
    *,
    demo: dict[str, Any] | None = None,
    flagship: bool = False,
) -> Callable[[Callable[[Any, Path | None], ExperimentResult]], Callable[[Any, Path | None], ExperimentResult]]:
    """Register ``fn(config, out_dir) -> ExperimentResult`` under ``name``."""
    if not dataclasses.is_dataclass(config_type):
        raise TypeError("config_type: expected a dataclass")

    def decorate(
        fn: Callable[[Any, Path | None], ExperimentResult],
    ) -> Callable[[Any, Path | None], ExperimentResult]:
        if name in _REGISTRY:
            raise ValueError(f"experiment {name!r} is already registered")
        _REGISTRY[name] = Experiment(name, description, config_type, fn, dict(demo or {}), flagship)
        return fn

    return decorate


def registry() -> dict[str, Experiment]:
    """All experiments, by name (imports the experiment modules on first use)."""
    for module in _experiment_modules():
        importlib.import_module(f"{__name__}.{module}")
    for module in filter(None, (m.strip() for m in os.environ.get("TRAJCORE_EXPERIMENTS", "").split(","))):
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ImportError(f"TRAJCORE_EXPERIMENTS names {module!r}, which cannot be imported: {error}") from error
    return dict(sorted(_REGISTRY.items()))


def get(name: str) -> Experiment:
    """The experiment called ``name``; ``KeyError`` listing the known names otherwise."""
    experiments = registry()
    if name not in experiments:
        known = ", ".join(experiments) or "(none registered)"
        raise KeyError(f"unknown experiment {name!r}; known: {known}")
    return experiments[name]
