"""The report in a real browser: Debian's chromium, driven by Playwright's Python package.

The slow test builds the report from a real tiny search (real Ray, real training) and opens it
with the network off: no console errors, every figure drew its SVG, and the page asked for
nothing but its own file. The fast ones use a synthetic experiment.

Playwright's own browser download is never used: `.ci/run` installs Debian's `chromium`, and
the tests launch it by path. Without it they are skipped locally and fail in CI.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from analysis_fixture import write_experiment

from analysis import write_report

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",  # CI runs as root, where chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
EVIL = "</script><script>alert(1)</script>"
ALL_RENDERED = (
    "document.querySelectorAll('.figure').length > 0 && "
    "document.querySelectorAll('.figure').length === "
    "document.querySelectorAll('.figure[data-rendered]').length"
)


def _skip_or_fail(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why}: .ci/run installs it, so CI must have it")
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _skip_or_fail("the playwright package is not installed")
    if not Path(CHROMIUM).exists():
        _skip_or_fail("Debian's chromium is not installed")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Visit:
    """One offline page load: what the console said, what the page tried to fetch."""

    def __init__(self, browser, report: Path):
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.context = browser.new_context(viewport={"width": 1360, "height": 900})
        self.context.set_offline(True)
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", self._dialog)
        self.page.goto(report.resolve().as_uri())
        self.page.wait_for_function(ALL_RENDERED, timeout=60_000)

    def _route(self, route) -> None:
        url = route.request.url
        if url.startswith("file://"):
            route.continue_()
        else:  # anything else would need the network: refuse it and remember it was asked for
            self.requests.append(url)
            route.abort()

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def svg_counts(self) -> dict[str, int]:
        return self.page.evaluate(
            "Object.fromEntries(Array.from(document.querySelectorAll('.figure'))"
            ".map(d => [d.id, d.querySelectorAll('.main-svg').length]))"
        )

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def searched_report(tmp_path_factory) -> Path:
    from tuner import SearchConfig, search

    out = tmp_path_factory.mktemp("browser")
    cfg = SearchConfig(
        dataset="digits", samples=4, epochs=2, out=str(out), name="browser", seed=0, concurrency=2
    )
    result = search(cfg, stream=io.StringIO())
    assert result.report == result.experiment_dir / "report.html"  # written by the search
    return result.report


@pytest.mark.slow
def test_a_real_searchs_report_renders_offline_without_errors(browser, searched_report):
    visit = Visit(browser, searched_report)
    try:
        counts = visit.svg_counts()
        assert len(counts) == 9 and all(n >= 1 for n in counts.values()), counts
        assert visit.errors == []
        assert visit.requests == []  # nothing but the file itself was asked for
        assert "Experiment browser" in visit.page.inner_text("h1")
    finally:
        visit.close()


def test_the_trials_table_sorts_on_click(browser, tmp_path):
    report = write_report(write_experiment(tmp_path / "e", trials=25))
    visit = Visit(browser, report)
    try:
        col = visit.page.evaluate(
            "Array.from(document.querySelectorAll('#trials-table th'))"
            ".findIndex(th => th.textContent === 'parameters')"
        )
        read = (
            f"Array.from(document.querySelectorAll('#trials-table tbody tr'))"
            f".map(r => Number(r.cells[{col}].getAttribute('data-v')))"
        )
        header = visit.page.locator("#trials-table th", has_text="parameters")
        header.click()
        ascending = visit.page.evaluate(read)
        assert ascending == sorted(ascending) and len(ascending) == 25
        header.click()
        assert visit.page.evaluate(read) == sorted(ascending, reverse=True)
        assert visit.errors == [] and visit.requests == []
    finally:
        visit.close()


def test_a_malicious_name_or_value_shows_as_text_and_runs_nothing(browser, tmp_path):
    classes = (EVIL, *(f"c{i}" for i in range(9)))
    exp = write_experiment(
        tmp_path / "evil", trials=10, name=EVIL, classes=classes, overrides={2: {"pool": EVIL}}
    )
    visit = Visit(browser, write_report(exp))
    try:
        assert visit.dialogs == [] and visit.errors == []
        assert visit.page.inner_text("h1") == f"Experiment {EVIL}"
        assert all(n >= 1 for n in visit.svg_counts().values())
    finally:
        visit.close()


def test_figures_keep_their_height_when_the_window_is_resized(browser, tmp_path):
    visit = Visit(browser, write_report(write_experiment(tmp_path / "e", trials=12)))
    try:
        visit.page.set_viewport_size({"width": 900, "height": 5000})
        # Plotly's resize handler is debounced: wait until every figure has followed the new
        # width (an event, not a fixed sleep), then check that none lost its height.
        visit.page.wait_for_function(
            "Array.from(document.querySelectorAll('.figure .main-svg'))"
            ".every(s => s.getBoundingClientRect().width <= 900)",
            timeout=30_000,
        )
        heights = visit.page.evaluate(
            "Array.from(document.querySelectorAll('.figure')).map(d => "
            "[d.id, parseInt(d.style.height), d.querySelector('.main-svg').getBoundingClientRect()"
            ".height, d.querySelector('.main-svg').getBoundingClientRect().width])"
        )
        for fig_id, wanted, height, width in heights:
            assert height == wanted, fig_id
            assert width <= 900, fig_id  # and they follow the window's width
    finally:
        visit.close()


@pytest.mark.slow
def test_a_multi_objective_budgeted_report_renders_its_front_and_refusals(browser, tmp_path):
    from tuner import SearchConfig, search

    cfg = SearchConfig(samples=5, epochs=2, scheduler="fifo", seed=4, out=str(tmp_path),
                       name="mo-budget", objectives="val_acc:max,params:min",
                       max_params=60_000)  # fmt: skip
    result = search(cfg, stream=io.StringIO())
    visit = Visit(browser, result.report)
    try:
        counts = visit.svg_counts()
        assert counts.get("fig-pareto", 0) >= 1, counts
        assert all(n >= 1 for n in counts.values()), counts
        assert visit.errors == [] and visit.requests == []
        front_rows = visit.page.locator("#pareto-table tbody tr").count()
        assert front_rows == len(result.best["pareto_front"]) >= 1
        assert visit.page.locator("#rejected-table tbody tr").count() >= 1  # the lab's 1.2M net
        nav = visit.page.inner_text("nav")
        assert nav.index("Pareto front") < nav.index("Accuracy against")  # the main result
    finally:
        visit.close()
