"""The report of a real tiny search (real Ray, real training) in a real browser with the
network off: no console errors, every figure drew its SVG, and the page asked for nothing but
its own file; and a multi-objective search under a size budget shows its front and refusals."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from browser_fixture import Visit


@pytest.fixture(scope="module")
def searched_report(tmp_path_factory, shared_ray) -> Path:
    from tuner import SearchConfig, search

    out = tmp_path_factory.mktemp("browser")
    cfg = SearchConfig(
        no_confirm=True, dataset="digits", samples=4, epochs=2, out=str(out), name="browser",
        seed=0, concurrency=2,
    )  # fmt: skip
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


@pytest.mark.slow
def test_a_multi_objective_budgeted_report_renders_its_front_and_refusals(
    browser, tmp_path, shared_ray
):
    from tuner import SearchConfig, search

    cfg = SearchConfig(no_confirm=True,
                       samples=5, epochs=2, scheduler="fifo", seed=4, out=str(tmp_path),
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
