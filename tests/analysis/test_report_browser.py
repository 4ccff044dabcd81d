"""The report in a real browser (Debian's chromium) on synthetic experiments: the trials
table sorts, hostile strings stay text, figures keep their height on resize."""

from __future__ import annotations

from analysis_fixture import add_confirm, write_experiment
from browser_fixture import EVIL, Visit

from analysis import write_report


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


def test_the_confirm_section_comes_first_and_draws_the_seeds(browser, tmp_path):
    exp = add_confirm(write_experiment(tmp_path / "c", trials=8), f"verdict {EVIL}")
    visit = Visit(browser, write_report(exp))
    try:
        assert visit.dialogs == [] and visit.errors == [] and visit.requests == []
        first = visit.page.evaluate("document.querySelector('main section').id")
        assert first == "confirm"
        assert visit.page.inner_text("#confirm h2") == "Is the winner really better?"
        assert EVIL in visit.page.inner_text("#confirm .verdict")  # shown as text, not run
        assert visit.svg_counts()["fig-confirm"] >= 1
        # Per configuration: a diamond for the mean and a point per seed, on both splits.
        markers = visit.page.evaluate(
            "document.querySelectorAll('#fig-confirm .scatterlayer .point').length"
        )
        assert markers == 2 * (3 * 3 + 3)
        rows = visit.page.evaluate("document.querySelectorAll('#confirm tbody tr').length")
        assert rows == 3 + 2  # the configurations, then the two differences
    finally:
        visit.close()
