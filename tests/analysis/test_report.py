"""The HTML report: self-contained, escaped, deterministic, written atomically, small enough
at 200 trials; and `tuner report DIR [-o FILE]`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pandas as pd
import plotly.offline
import pytest
from analysis_fixture import write_experiment, write_partial_experiment

import tuner.io
from analysis import build_report, write_report
from tuner.cli import main

EVIL = "</script><script>alert(1)</script>"
FIGURES = ["fig-accuracy-cost", "fig-progress", "fig-rungs", "fig-param-effects", "fig-parallel",
           "fig-importance", "fig-learning-curves", "fig-diagnoses", "fig-best-model"]  # fmt: skip
MAX_BYTES = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    return write_experiment(tmp_path_factory.mktemp("exp") / "exp", trials=30, epochs=10)


@pytest.fixture(scope="module")
def page(experiment) -> str:
    return build_report(experiment)


def _without_plotlyjs(page: str) -> str:
    js = plotly.offline.get_plotlyjs()
    assert page.count(js) == 1
    return page.replace(js, "")


def test_plotlyjs_is_embedded_once_and_nothing_comes_from_the_network(page):
    assert page.count(plotly.offline.get_plotlyjs()[:200]) == 1
    rest = _without_plotlyjs(page)
    assert "<script src" not in rest and "<link" not in rest and "@import" not in rest
    assert "http://" not in rest and "https://" not in rest
    assert "MathJax" not in rest
    assert rest.count("<script") == 3  # plotly.js, the figures' JSON, the page's own code


def test_every_figure_has_a_fixed_div_and_a_spec(page):
    ids = re.findall(r'<div class="figure" id="([^"]+)"', page)
    assert ids == FIGURES
    for fig_id in FIGURES:
        assert f'"{fig_id}":{{"data":' in page


def test_the_header_answers_the_labs_questions(page, experiment):
    best = json.loads((experiment / "best.json").read_text())
    assert f"best: trial {best['trial_index']}" in page
    assert "vs lab baseline (trial 0)" in page
    assert "lab report (CIFAR-10, 20 epochs)" in page and "82.94%" in page
    assert "early stopping saved" in page and "compute used" in page
    assert "Retrain it (exact config)" in page
    retrain = f"tuner train {experiment.resolve()} --trial {best['trial_index']}"
    assert retrain in page and f"{retrain} --seeds 3 --train-on trainval" in page


def test_the_trials_table_is_sortable_with_one_row_per_trial(page):
    table = page[page.index('<table class="sortable"') : page.index("</table>")]
    assert table.count("<tr") == 1 + 30
    assert "<th>parameters</th>" in table and '<th class="t">diagnosis</th>' in table
    assert 'addEventListener("click"' in page


def test_the_report_is_deterministic(experiment, tmp_path):
    first = write_report(experiment, tmp_path / "a.html").read_bytes()
    second = write_report(experiment, tmp_path / "b.html").read_bytes()
    assert first == second


def test_the_report_is_written_atomically(experiment, monkeypatch):
    calls = []
    real = tuner.io.atomic_write_text

    def spy(path, text):
        calls.append(path)
        return real(path, text)

    monkeypatch.setattr(tuner.io, "atomic_write_text", spy)
    out = write_report(experiment)
    assert out == experiment / "report.html" and calls == [out]
    assert not list(experiment.glob(".report.html*"))  # no temp file left behind


def test_user_strings_are_escaped_everywhere(tmp_path):
    classes = (EVIL, *(f"c{i}" for i in range(9)))
    exp = write_experiment(
        tmp_path / "evil", trials=12, name=EVIL, classes=classes,
        overrides={3: {"optimizer": EVIL, "pool": EVIL}},
    )  # fmt: skip
    prov = json.loads((exp / "provenance.json").read_text())
    prov["config"]["space"] = EVIL
    (exp / "provenance.json").write_text(json.dumps(prov))
    page = build_report(exp)
    assert EVIL not in page
    assert "<script>alert" not in page.lower()
    assert "Experiment &lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "space <b>&lt;/script&gt;" in page
    assert _without_plotlyjs(page).count("</script>") == 3


def test_a_200_trial_experiment_makes_a_report_under_10_mb(tmp_path):
    exp = write_experiment(tmp_path / "big", trials=200, epochs=10, seed=1)
    size = write_report(exp).stat().st_size
    print(f"\nreport for 200 trials x up to 10 epochs: {size:,} bytes ({size / 2**20:.2f} MiB)")
    assert size < MAX_BYTES


def test_a_partial_experiment_gets_a_report(tmp_path):
    exp = write_partial_experiment(tmp_path / "partial")
    page = build_report(exp)
    assert "Partial experiment" in page
    assert page.count('<div class="figure"') == len(FIGURES)
    assert "No best trial scored on the test split" in page


def test_tuner_report_writes_the_same_file_twice(experiment, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(experiment), "-o", str(out)]) == 0
    first = out.read_bytes()
    assert main(["report", str(experiment), "-o", str(out)]) == 0
    assert out.read_bytes() == first
    assert f"Report: {out}" in capsys.readouterr().out


def test_tuner_report_defaults_to_the_experiment_dir_and_works_on_partial_ones(tmp_path):
    exp = write_partial_experiment(tmp_path / "partial")
    assert main(["report", str(exp)]) == 0
    assert (exp / "report.html").stat().st_size > 0


@pytest.mark.parametrize(
    "make, needle",
    [("missing", "does not exist"), ("empty", "is not an experiment directory"),
     ("file", "is not a directory")],
)  # fmt: skip
def test_tuner_report_refuses_what_is_not_an_experiment(tmp_path, capsys, make, needle):
    path = tmp_path / "x"
    if make == "empty":
        path.mkdir()
    elif make == "file":
        path.write_text("")
    assert main(["report", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tuner: error:") and needle in err[0]


def test_the_same_bytes_from_separate_processes(experiment, tmp_path):
    """No dict/set order, clock or random id leaks in: two processes with different hash
    seeds write identical files."""
    outs = []
    for seed in ("1", "2"):
        out = tmp_path / f"r{seed}.html"
        code = f"import analysis; analysis.write_report({str(experiment)!r}, {str(out)!r})"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


@pytest.mark.parametrize(
    "study_file, damage", [("optuna.journal", "not an operation\n{}\n"), ("optuna.db", "no")]
)
def test_a_search_that_has_not_finished_a_trial_yet_gets_a_report(tmp_path, study_file, damage):
    exp = tmp_path / "just-started"
    exp.mkdir()
    (exp / "provenance.json").write_text(json.dumps({"config": {"epochs": 5, "name": "s"}}))
    (exp / study_file).write_text(damage)  # a study that cannot be read
    page = build_report(exp)
    assert "No trials yet." in page and "Could not read the Optuna study" in page
    assert page.count('<div class="figure"') == len(FIGURES)


def test_without_a_confirm_stage_the_report_says_how_to_run_it(tmp_path):
    exp = write_experiment(tmp_path / "plain", trials=6)
    html = build_report(exp)
    section = html[html.index('<section id="confirm">') :]
    section = section[: section.index("</section>")]
    assert "Is the winner really better?" in section
    assert f"tuner confirm {exp.resolve()}" in section
    # It comes first, right after the header.
    assert html.index('<section id="confirm">') < html.index('<section id="accuracy-cost">')


def test_a_confirm_stage_stopped_before_any_result_says_resume_finishes_it(tmp_path):
    exp = write_experiment(tmp_path / "cut", trials=6)
    (exp / "confirm").mkdir()  # started, then stopped by --time-budget before a seed set ended
    html = build_report(exp)
    section = html[html.index('<section id="confirm">') :]
    section = section[: section.index("</section>")]
    assert f"tuner resume {exp.resolve()}" in section and "tuner confirm" not in section


def test_a_confirmed_winner_heads_the_report(tmp_path):
    from analysis_fixture import add_confirm

    exp = write_experiment(tmp_path / "confirmed", trials=8)
    searched = json.loads((exp / "best.json").read_text())["trial_index"]
    other = next(i for i in range(1, 8) if i != searched)
    html = build_report(add_confirm(exp, "a verdict", winner=other))
    header = html[: html.index("<nav>")]
    assert f"winner: trial {other}" in header and "mean over 3 fresh seeds" in header
    assert f"The winner's configuration (trial {other})" in header
    assert f"the search's best single run: trial {searched}" in header
    assert f"tuner train {exp.resolve()} --trial {other}" in header  # retrain the winner


def _confirm_section(html: str) -> str:
    section = html[html.index('<section id="confirm">') :]
    return section[: section.index("</section>")]


def test_accuracy_intervals_stay_inside_0_to_100_percent_and_name_their_method(tmp_path):
    """The default demo's seeds at 100, 100, 98, 99, 100 % gave "95 % CI 98.26 % to 100.74 %"
    in the first card and figure; the lab's baseline cut to 2 seeds gave [-0.66, 1.01] and a
    37-point lead called a tie."""
    from analysis_fixture import add_confirm

    from analysis.plots import plot_confirm

    exp = write_experiment(tmp_path / "demo", trials=8)
    win = json.loads((exp / "best.json").read_text())["trial_index"]
    values = {0: [0.10, 0.25], win: [1.0, 1.0, 0.98, 0.99, 1.0], 99: [0.97, 0.99, 0.98, 0.99, 0.98]}
    add_confirm(exp, "a verdict", values=values, images=360)
    confirm = json.loads((exp / "best.json").read_text())["confirm"]
    for c in confirm["configs"]:  # best.json's fields
        for split in ("val", "test"):
            assert 0.0 <= c[split]["low"] <= c[split]["mean"] <= c[split]["high"] <= 1.0
            assert c[split]["method"] == "t on logit"
    vs_base = confirm["vs_baseline"]["val"]
    assert vs_base["call"] == "too few seeds" and not vs_base["tied"]
    assert -1.0 <= vs_base["low"] and vs_base["high"] <= 1.0

    html = build_report(exp)
    header = html[: html.index("<nav>")]
    winner = next(c for c in confirm["configs"] if c["trial_index"] == win)["val"]
    low, high = f"{winner['low']:.2%}", f"{winner['high']:.2%}"
    assert f"95 % t interval on the logit over 5 seeds: {low} to {high}" in header
    assert float(high.rstrip("%")) < 100.0 and "100.74" not in html
    assert "too few seeds to tell them apart" in header and "(tied)" not in header
    section = _confirm_section(html)
    assert "t intervals on the logit" in section and "95 % t interval on the logit" in section
    row = section[section.index("winner - the lab&#x27;s baseline") :].split("</tr>")[0]
    assert "on 5 and 2 seeds <strong>too few seeds to tell</strong>" in row
    assert "<strong>tied</strong>" not in row and "+100.0)" in row  # cut at +100 points
    bars = [t for t in plot_confirm(confirm).data
            if t.error_x.array is not None and t.error_x.visible is not False]  # fmt: skip
    assert len(bars) == 6
    for bar in bars:  # the figure's
        mean, up, down = bar.x[0], bar.error_x.array[0], bar.error_x.arrayminus[0]
        assert -1e-12 <= mean - down and mean + up <= 1.0 + 1e-12
        assert "t interval on the logit" in bar.hovertemplate


def test_an_old_best_json_with_plain_t_intervals_is_rescored(tmp_path):
    """best.json written before the logit intervals: its intervals, differences and verdict
    are recomputed from the per-seed values when the report loads it."""
    from analysis_fixture import add_confirm

    from analysis import load_experiment

    exp = write_experiment(tmp_path / "old", trials=8)
    win = json.loads((exp / "best.json").read_text())["trial_index"]
    values = {0: [0.10, 0.25], win: [1.0, 1.0, 0.98, 0.99, 1.0], 99: [0.97, 0.99, 0.98, 0.99, 0.98]}
    add_confirm(exp, "", values=values)
    best = json.loads((exp / "best.json").read_text())
    confirm = best["confirm"]
    for c in confirm["configs"]:  # as the plain t interval wrote them
        for split in ("val", "test"):
            mean = c[split]["mean"]
            c[split] = {"mean": mean, "low": mean - 0.0124, "high": mean + 0.0074, "n": 5,
                        "std": 0.01}  # fmt: skip
    for key in ("vs_runner_up", "vs_baseline"):
        for split in ("val", "test"):
            d = confirm[key][split]
            confirm[key][split] = {"diff": d["diff"], "low": -0.43, "high": 1.17, "tied": True}
    confirm["verdict"] = (
        f"Over 5 fresh seeds, trial {win} has the best mean validation accuracy (99.40%); it is "
        "tied with trial 99 at these seeds (+1.2 points, 95 % CI -43.0 to +117.0), and is tied "
        "with the lab's baseline at these seeds (+81.9 points, 95 % CI -43.0 to +117.0)."
    )
    (exp / "best.json").write_text(json.dumps(best))

    loaded = load_experiment(exp).best
    assert loaded is not None
    fresh = loaded["confirm"]
    for c in fresh["configs"]:
        for split in ("val", "test"):
            assert c[split]["method"] == "t on logit"
            assert 0.0 <= c[split]["low"] <= c[split]["high"] <= 1.0
    assert fresh["vs_baseline"]["val"]["call"] == "too few seeds"
    verdict = fresh["verdict"]
    assert verdict.startswith(f"Over 5 fresh seeds, trial {win} has the best mean validation")
    assert "over the lab's baseline on 5 and 2 seeds; too few seeds to tell them apart" in verdict
    assert "tied with the lab's baseline" not in verdict and "+117.0" not in verdict
    html = build_report(exp)
    assert "95 % t interval on the logit over 5 seeds" in html[: html.index("<nav>")]


def test_a_confirm_stage_cut_to_fit_the_time_budget_says_so(tmp_path):
    """A stage cut to fit --time-budget (tuner/driver/confirm.py fit_to_time) keeps the line
    that said so in best.json; the section says what was cut, escaped, and names the lab's
    baseline among the configurations only where it ran."""
    from analysis_fixture import add_confirm

    exp = write_experiment(tmp_path / "cut", trials=8)
    win = json.loads((exp / "best.json").read_text())["trial_index"]
    add_confirm(exp, "a verdict", values={win: [0.9, 0.92, 0.91], 99: [0.89, 0.9, 0.88]})
    best = json.loads((exp / "best.json").read_text())
    best["confirm"]["cut"] = (
        "The confirm stage is cut to fit the 50 s left of --time-budget: 2 configuration(s), "
        "without the lab's baseline x 3 seeds <b>"
    )
    (exp / "best.json").write_text(json.dumps(best))
    section = _confirm_section(build_report(exp))
    assert "<strong>The confirm stage is cut to fit the 50 s left of --time-budget: 2 " in section
    assert "<b>" not in section and "&lt;b&gt;" in section
    assert "the top configurations by validation trained again" in section
    add_confirm(exp, "a verdict")  # with the baseline (trial 0), and no cut
    section = _confirm_section(build_report(exp))
    assert "the top configurations by validation and the lab's baseline trained" in section
    assert "cut to fit" not in section


def test_a_search_without_a_baseline_names_none(tmp_path):
    # The lab's network over the size budget is left out: no trial is the lab's, and the page
    # says nothing of a baseline it does not have.
    exp = write_experiment(tmp_path / "exp", trials=8, epochs=4)
    trials = pd.read_csv(exp / "trials.csv")
    assert trials["is_baseline"].any()
    with_one = build_report(exp)
    assert "grey: the lab baseline" in with_one and "lab baseline and the next best" in with_one
    trials.assign(is_baseline=False).to_csv(exp / "trials.csv", index=False)
    page = _without_plotlyjs(build_report(exp))
    assert "grey: the lab baseline" not in page and "(baseline)" not in page
    assert "Learning curves: best trial and the next best" in page
    assert "lab baseline" not in page.lower()
