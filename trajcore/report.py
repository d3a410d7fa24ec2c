"""HTML reports: ``index.html`` + PNG figures + ``metrics.json`` for experiments and sweeps.

An experiment report (``trajcore demo``/``run``) has one section per experiment: its description,
config, a table of checks (each with the value it measured, its threshold and pass/fail), the notes,
its figures with a caption each (what the figure shows and what the paper predicts), and its metrics
(scalars in one table, lists, matrices and records as tables of their own); the figures live in a
sub-directory per experiment. A sweep report (``trajcore report STORE``) plots
every scalar metric against each swept parameter (mean over the other parameters, all runs as dots).

The HTML references only files that exist when it is written; a figure an experiment announced but
did not write is listed as missing in the notes instead of linked.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._json import dumps, json_ready
from ._storage import atomic_write_text
from .experiments import ExperimentResult
from .store import PathLike, RunStore

__all__ = ["ReportEntry", "write_report", "rebuild_report", "write_sweep_report", "all_checks_pass"]

_REPLICATE_KEYS = frozenset({"seed"})

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .6em 0; } td, th { border: 1px solid #ddd; padding: .25em .6em; }
th { background: #f4f4f4; text-align: left; } .pass { color: #0a6b2d; font-weight: bold; }
.fail { color: #b00020; font-weight: bold; } code { background: #f4f4f4; padding: 0 .2em; }
img { max-width: 100%; border: 1px solid #eee; } .muted { color: #777; }
figure { margin: 1.2em 0; } figcaption { font-size: .92em; color: #333; max-width: 60em; margin-top: .3em; }
h4 { margin: 1em 0 .2em; } div.scroll { overflow-x: auto; max-width: 100%; }
div.scroll table { font-size: .85em; } div.scroll td, div.scroll th { white-space: nowrap; }
"""

#: A list longer than this is summarised (count, first, last, min, max) instead of listed in full.
_LIST_LIMIT = 12


@dataclass
class ReportEntry:
    """One experiment in a report.

    name, description : the experiment's.
    config : its settings as a JSON-ready dict.
    result : what it returned; ``result.figures`` are relative to ``directory``.
    seconds : wall time of the run.
    directory : sub-directory of the report holding this experiment's figures ("" for the root).
    """

    name: str
    description: str
    config: dict[str, Any]
    result: ExperimentResult
    seconds: float
    directory: str = ""

    def figure_paths(self) -> list[str]:
        """Figure paths relative to the report root (posix)."""
        prefix = f"{self.directory}/" if self.directory else ""
        return [f"{prefix}{figure}" for figure in self.result.figures]


def all_checks_pass(entries: Sequence[ReportEntry]) -> bool:
    return all(all(entry.result.checks.values()) for entry in entries)


def _format(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):  # config values: short, shown in full
        return "[" + ", ".join(_format(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_format(v)}" for k, v in value.items()) + "}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _checks_table(checks: dict[str, bool], details: dict[str, Any] | None = None) -> str:
    """Check name, measured value, what it had to meet, pass/fail."""
    if not checks:
        return '<p class="muted">No checks.</p>'
    details = details or {}
    rows = []
    for name, ok in checks.items():
        measured, required = "", ""
        detail = details.get(name)
        if isinstance(detail, (list, tuple)) and len(detail) == 3:
            value, threshold, comparison = detail
            measured = html.escape(_format(value))
            if comparison == "is":
                required = html.escape(_format(threshold))
            else:
                required = html.escape(f"{comparison} {_format(threshold)}")
        result = '<span class="pass">pass</span>' if ok else '<span class="fail">FAIL</span>'
        rows.append([html.escape(name), measured, required, result])
    return _table(["check", "measured", "required", "result"], rows)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _summary(values: list[Any]) -> str:
    """``N values: first .., last .., min .., max ..`` of a long list of numbers."""
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    text = f"{len(values)} values: first {_format(values[0])}, last {_format(values[-1])}"
    if numbers:
        text += f", min {_format(min(numbers))}, max {_format(max(numbers))}"
    missing = len(values) - len(numbers)
    return text + (f", {missing} missing" if missing else "")


def _inline(value: Any) -> str | None:
    """A scalar or a flat list as one line of text (long lists summarised); ``None`` if nested."""
    if _is_scalar(value):
        return _format(value)
    if isinstance(value, (list, tuple)) and all(_is_scalar(v) for v in value):
        items = list(value)
        if len(items) > _LIST_LIMIT:
            return _summary(items)
        return "[" + ", ".join(_format(v) for v in items) + "]"
    return None


def _cells(values: list[Any]) -> list[str]:
    return [html.escape(_format(v)) for v in values]


def _structured(value: Any) -> str:
    """A nested metric as HTML tables: a list as one row (summarised beyond ``_LIST_LIMIT``), a list
    of lists as a matrix (one row per outer entry), a list of records as a table with one column per
    field, a mapping as key/value rows (nested values as tables of their own)."""
    text = _inline(value)
    if text is not None:
        return html.escape(text)
    if isinstance(value, dict):
        rows = [[f"<code>{html.escape(str(k))}</code>", _structured(v)] for k, v in value.items()]
        return _table(["key", "value"], rows)
    items = list(value)
    if all(isinstance(v, dict) for v in items):
        keys: list[str] = []
        for record in items:
            keys += [k for k in record if k not in keys]
        rows = [[_structured(record.get(k)) for k in keys] for record in items]
        # many fields: let the table scroll sideways rather than squeeze its columns
        return f"<div class='scroll'>{_table(keys, rows)}</div>"
    if all(isinstance(v, list) and all(_is_scalar(x) for x in v) for v in items):
        width = max(len(v) for v in items)
        if width > _LIST_LIMIT:
            return _table(["row", "values"], [[str(i), html.escape(_summary(v))] for i, v in enumerate(items)])
        return _table(
            ["row \\ column"] + [str(j) for j in range(width)], [[str(i)] + _cells(v) for i, v in enumerate(items)]
        )
    return _table(["index", "value"], [[str(i), _structured(v)] for i, v in enumerate(items)])


def _metrics_html(metrics: dict[str, Any]) -> str:
    flat = {k: _inline(v) for k, v in metrics.items()}
    scalars = [[f"<code>{html.escape(k)}</code>", html.escape(t)] for k, t in flat.items() if t is not None]
    out = _table(["metric", "value"], scalars) if scalars else ""
    for key, value in metrics.items():
        if flat[key] is None:
            out += f"<h4><code>{html.escape(key)}</code></h4>{_structured(value)}"
    return out


def _page(title: str, summary: str, sections: list[str]) -> str:
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{summary}{''.join(sections)}</body></html>\n"
    )


def _entry_record(entry: ReportEntry) -> dict[str, Any]:
    captions = getattr(entry.result, "captions", {}) or {}
    return json_ready(
        {
            "description": entry.description,
            "config": entry.config,
            "metrics": entry.result.metrics,
            "checks": entry.result.checks,
            "check_details": getattr(entry.result, "check_details", {}),
            "notes": list(entry.result.notes),
            "figures": entry.figure_paths(),
            "captions": dict(
                zip(entry.figure_paths(), [captions.get(f, "") for f in entry.result.figures], strict=True)
            ),
            "seconds": round(entry.seconds, 3),
            "passed": all(entry.result.checks.values()),
        }
    )


def _render(root: Path, title: str, records: dict[str, dict[str, Any]]) -> str:
    sections = []
    overview = []
    for name, record in records.items():
        checks: dict[str, bool] = record.get("checks", {})
        passed = sum(bool(v) for v in checks.values())
        status = '<span class="pass">pass</span>' if passed == len(checks) else '<span class="fail">FAIL</span>'
        overview.append(
            [
                f"<a href='#{html.escape(name)}'>{html.escape(name)}</a>",
                f"{passed}/{len(checks)} {status}",
                f"{record.get('seconds', 0):.1f} s",
            ]
        )
        notes = [html.escape(str(n)) for n in record.get("notes", [])]
        figures = []
        captions = record.get("captions", {}) or {}
        for figure in record.get("figures", []):
            if (root / figure).is_file():
                caption = captions.get(figure, "")
                figures.append(
                    f"<figure><img src='{html.escape(figure)}' alt='{html.escape(caption or figure)}'>"
                    + (f"<figcaption>{html.escape(caption)}</figcaption>" if caption else "")
                    + "</figure>"
                )
            else:
                notes.append(f"missing figure: <code>{html.escape(figure)}</code>")
        metrics = _metrics_html(record.get("metrics", {}))
        config = " ".join(
            f"<code>{html.escape(k)}={html.escape(_format(v))}</code>" for k, v in record["config"].items()
        )
        sections.append(
            f"<h2 id='{html.escape(name)}'>{html.escape(name)}</h2>"
            f"<p>{html.escape(record.get('description', ''))}</p><p class='muted'>config: {config}</p>"
            f"<h3>Checks</h3>{_checks_table(checks, record.get('check_details'))}"
            + ("<h3>Notes</h3><ul>" + "".join(f"<li>{n}</li>" for n in notes) + "</ul>" if notes else "")
            + ("<h3>Figures</h3>" + "".join(figures) if figures else "")
            + (f"<h3>Metrics</h3>{metrics}" if metrics else "")
        )
    from .config import version

    summary = _table(["experiment", "checks", "time"], overview) + (
        f"<p class='muted'>trajcore {html.escape(version())}. All numbers: <a href='metrics.json'>metrics.json</a>.</p>"
    )
    return _page(title, summary, sections)


def write_report(out_dir: PathLike, entries: Sequence[ReportEntry], title: str = "trajcore report") -> Path:
    """Write ``metrics.json`` and ``index.html`` for ``entries`` into ``out_dir``; returns the HTML path.

    The figures must already be in place (experiments write them into their ``directory``).
    """
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    records = {entry.name: _entry_record(entry) for entry in entries}
    document = {"title": title, "experiments": records}
    atomic_write_text(root / "metrics.json", dumps(document, indent=2) + "\n")
    index = root / "index.html"
    atomic_write_text(index, _render(root, title, records))
    return index


def rebuild_report(out_dir: PathLike) -> Path:
    """Rewrite ``index.html`` of an experiment report from its ``metrics.json`` (``ValueError`` if absent)."""
    root = Path(out_dir)
    try:
        document = json.loads((root / "metrics.json").read_text(encoding="utf-8"))
        records = document["experiments"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{root}: not a trajcore report (metrics.json unreadable: {error})") from None
    index = root / "index.html"
    atomic_write_text(index, _render(root, str(document.get("title", "trajcore report")), records))
    return index


# -- sweeps --------------------------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _plot_metric(rows: list[dict[str, Any]], parameters: list[str], metric: str, path: Path) -> bool:
    """One figure for ``metric``: a panel per swept parameter, every run a dot, the mean a line."""
    import numpy as np

    from .plot import style

    kind = {1: "line", 2: "wide"}.get(len(parameters), "triple")
    fig, axes = style.new_figure(kind, 1, len(parameters))
    axes = np.atleast_1d(axes)
    grey, blue = "#888888", style.palette(1)[0]
    drawn = False
    for ax, parameter in zip(axes, parameters, strict=True):
        points = [(row[parameter], row[metric]) for row in rows if _is_number(row.get(metric))]
        points = [(x, y) for x, y in points if _is_number(x)]
        if not points:
            ax.set_visible(False)
            continue
        xs = sorted({x for x, _ in points})
        means = [sum(y for x, y in points if x == v) / sum(1 for x, _ in points if x == v) for v in xs]
        ax.plot([x for x, _ in points], [y for _, y in points], ".", alpha=0.5, color=grey, label="each run")
        ax.plot(xs, means, "o-", color=blue, label="mean over the other parameters")
        if xs[0] > 0 and xs[-1] / xs[0] >= 100:
            ax.set_xscale("log")
        style.use_log_y_if_spanning(ax, [y for _, y in points])
        style.label_axes(ax, x=parameter, y=metric, title=f"{metric} against {parameter}")
        drawn = True
    if drawn:
        style.legend_outside(axes[-1])
        style.finish(fig, path)
    return drawn


def write_sweep_report(store_dir: PathLike, max_metrics: int = 12) -> Path:
    """Write ``index.html``, ``figures/*.png`` and ``metrics.json`` for the sweep store ``store_dir``.

    For each scalar metric (at most ``max_metrics``) one figure: the metric against each swept
    parameter (a grid key with more than one numeric value), every run a dot and the mean over the
    other parameters a line. The table gives, per check, how many runs passed it.
    """
    store = RunStore(store_dir)
    spec = store.read_spec()
    scan = store.scan()
    rows = store.rebuild_summary(scan)
    root = store.root
    grid: dict[str, list[Any]] = spec.get("grid", {})
    # x axes: grid keys with several numeric values; seeds are replicates (averaged), not an axis
    parameters = [
        k
        for k, v in grid.items()
        if k not in _REPLICATE_KEYS and len({dumps(x) for x in v}) > 1 and all(map(_is_number, v))
    ]
    metric_names: list[str] = []
    for payload in scan.complete.values():
        for name, value in payload.get("result", {}).get("metrics", {}).items():
            column = f"metric.{name}" if name in payload.get("config", {}) else name
            if _is_number(value) and column not in metric_names:
                metric_names.append(column)
    from .plot import style

    # a metric with one value in every run says nothing as a plot: listed, not drawn
    constant = [m for m in metric_names if style.is_constant([r[m] for r in rows if _is_number(r.get(m))])]
    figures_dir = root / "figures"
    figures = []
    if parameters and metric_names:
        figures_dir.mkdir(exist_ok=True)
        for metric in [m for m in metric_names if m not in constant][:max_metrics]:
            file = figures_dir / f"{metric.replace('/', '_')}.png"
            if _plot_metric(rows, parameters, metric, file):
                figures.append(f"figures/{file.name}")
    checks: dict[str, list[int]] = {}
    for row in rows:
        for key, value in row.items():
            if key.startswith("check."):
                tally = checks.setdefault(key[len("check.") :], [0, 0])
                tally[0] += bool(value)
                tally[1] += 1
    means = {
        metric: sum(r[metric] for r in rows if _is_number(r.get(metric)))
        / max(1, sum(1 for r in rows if _is_number(r.get(metric))))
        for metric in metric_names
    }
    document = {
        "experiment": spec.get("experiment"),
        "runs_in_grid": spec.get("runs"),
        "runs_stored": len(rows),
        "corrupt_files": len(scan.corrupt),
        "swept_parameters": parameters,
        "metric_means": means,
        "constant_metrics": constant,
        "checks_passed": {name: {"passed": p, "runs": n} for name, (p, n) in checks.items()},
        "figures": figures,
    }
    atomic_write_text(root / "metrics.json", dumps(document, indent=2) + "\n")
    title = f"sweep of {spec.get('experiment')}"
    summary = (
        f"<p>{len(rows)} of {spec.get('runs')} runs stored"
        + (f", {len(scan.corrupt)} corrupt file(s) (rerun the sweep to recompute them)" if scan.corrupt else "")
        + ". Table: <a href='summary.csv'>summary.csv</a>; "
        + "numbers: <a href='metrics.json'>metrics.json</a>.</p>"
        + "<p class='muted'>base: "
        + html.escape(dumps(spec.get("base", {})))
        + "; grid: "
        + html.escape(", ".join(f"{k} ({len(v)} values)" for k, v in grid.items()))
        + "</p>"
    )
    check_rows = [
        [
            html.escape(name),
            f"{p}/{n}",
            '<span class="pass">pass</span>' if p == n else '<span class="fail">FAIL</span>',
        ]
        for name, (p, n) in checks.items()
    ]
    sections = [f"<h2>Checks</h2>{_table(['check', 'runs passing', 'all'], check_rows)}" if check_rows else ""]
    sections.append(
        "<h2>Metrics across the grid</h2>"
        + _table(
            ["metric", "mean over runs"],
            [
                [html.escape(m), _format(v) + (" (the same in every run: not plotted)" if m in constant else "")]
                for m, v in means.items()
            ],
        )
    )
    sections += [f"<img src='{html.escape(f)}' alt='{html.escape(f)}'>" for f in figures if (root / f).is_file()]
    index = root / "index.html"
    atomic_write_text(index, _page(title, summary, sections))
    return index
