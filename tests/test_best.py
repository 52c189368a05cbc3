"""One notion of best (issue 36 item 8): an Optuna search's optimization_results.yaml, the report's star,
summary.csv's `chosen`, sweep.png's mark and `runner report --best` pick the same run, ties included, by the monitored
validation metric, ties to the lower val_loss of the best epoch, then the earlier job; never by a test figure."""

import csv

import optuna
import pytest
import yaml
from helpers.fake_runs import run

from runner.commands import report
from runner.sweeps.search import write_results


def tied_sweep(root, val_samples=144):
    """Four jobs: 0 and 3 tie on the monitored value; 3 has the lower val_loss at its best epoch (its last epoch's is
    the higher: the tie-break reads the best epoch, as best.pt does); 1 has the best test accuracy and loses."""
    figures = {
        "0": dict(best=0.99, val_loss=0.05, final_val_loss=0.05, test=0.95),
        "1": dict(best=0.98, val_loss=0.01, final_val_loss=0.01, test=0.99),
        "2": dict(best=0.90, val_loss=0.30, final_val_loss=0.30, test=0.90),
        "3": dict(best=0.99, val_loss=0.02, final_val_loss=0.09, test=0.94),
    }
    for job, f in figures.items():
        run(root, job, overrides=(f"optimizer.lr=0.00{job}1",), val_samples=val_samples, **f)
    return figures


def every_place(root, capsys, monkeypatch):
    """{place: the job it names best} for the report's star, summary.csv, --best and sweep.png."""
    names = {}
    assert report.main([str(root), "--format", "markdown"]) == 0
    starred = [line for line in capsys.readouterr().out.splitlines() if "(best" in line]
    names["star"] = starred[0].split("**")[1] if len(starred) == 1 else starred

    labels = []

    def save(fig, path, dpi):
        labels.extend(t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts())

    monkeypatch.setattr("runner.io.plots.save", save)
    assert report.main([str(root), "--format", "csv", "--out", str(root / "out")]) == 0
    capsys.readouterr()
    with (root / "out" / "summary.csv").open() as f:
        chosen = [r["job"] for r in csv.DictReader(f) if r["chosen"].startswith("best")]
    names["summary.csv"] = chosen[0] if len(chosen) == 1 else chosen
    names["sweep.png"] = next(label.split(" (best)")[0] for label in labels if "(best)" in label)

    assert report.main([str(root), "--best"]) == 0
    names["--best"] = capsys.readouterr().out.strip().rsplit("/", 1)[1]
    return names


def test_optunas_best_trial_the_star_summary_csv_sweep_png_and_best_agree_on_a_tie(tmp_path, capsys, monkeypatch):
    sweep = tmp_path / "sweep"
    figures = tied_sweep(sweep)
    study = optuna.create_study(direction="maximize")
    dist = {"optimizer.lr": optuna.distributions.FloatDistribution(1e-4, 1e-1)}
    for job in sorted(figures):
        trial = optuna.trial.create_trial(
            params={"optimizer.lr": float(f"0.00{job}1")}, distributions=dist, value=figures[job]["best"]
        )
        study.add_trial(trial)
    # the example: Optuna's own best is the first of the tied values, trial 0
    assert study.best_trial.number == 0

    write_results(study, sweep)
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert (results["best_trial"], results["best_value"]) == (3, 0.99)
    assert results["best_params"] == {"optimizer.lr": 0.0031}
    assert every_place(sweep, capsys, monkeypatch) == {"star": "3", "summary.csv": "3", "sweep.png": "3", "--best": "3"}


def test_equal_values_and_losses_go_to_the_earlier_job_by_number(tmp_path, capsys, monkeypatch):
    for job in ("10", "2"):
        run(tmp_path, job, best=0.9, val_loss=0.1, overrides=(f"optimizer.lr=0.{job}",))
    rows, _ = report.build(sorted(tmp_path.iterdir()))
    # as text, 10 sorts before 2: the directories are handed over in that order
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["10", "2"] and rows[0]["job"] == "2"
    assert set(every_place(tmp_path, capsys, monkeypatch).values()) == {"2"}


def test_a_tie_on_a_small_validation_split_is_not_distinguishable_and_no_test_figure_chooses(tmp_path, capsys):
    # the grid example: three runs at val_accuracy 1.0 on 30 validation samples; the lowest val_loss is chosen, even
    # though its test accuracy is the worst of the three, and the report says they cannot be told apart
    for job, (loss, test) in enumerate([(0.02, 0.97), (0.01, 0.91), (0.03, 0.96)]):
        run(tmp_path, str(job), best=1.0, val_loss=loss, test=test, val_samples=30, overrides=(f"model.width={job}",))
    run(tmp_path, "3", best=0.5, val_loss=0.9, test=0.5, val_samples=30, overrides=("model.width=3",))
    rows, _ = report.build(sorted(tmp_path.iterdir()))
    assert [r["job"] for r in rows] == ["1", "0", "2", "3"]
    assert [r["chosen"][:4] for r in rows] == ["best", "~ no", "~ no", ""]
    assert report.main([str(tmp_path)]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert (
        "not distinguishable on val_accuracy (Wilson 95 % intervals over 30 validation samples overlap): job 1, "
        in (text)
    )
    # no star: the marks say ~
    assert "│ * │" not in text and text.count("│ ~ │") == 3

    # with 1,000 validation samples, 1.0 and 0.5 are told apart: the star returns
    for job in range(4):
        (tmp_path / str(job) / "summary.json").write_text(
            (tmp_path / str(job) / "summary.json").read_text().replace('"val": 30', '"val": 1000')
        )
    rows, _ = report.build(sorted(tmp_path.iterdir()))
    assert rows[0]["chosen"] == "best, not distinguishable from those marked ~"
    single = [r for r in rows if r["job"] in ("1", "3")]
    assert report.sort_rows(single)[0]["chosen"] == "best"


@pytest.mark.parametrize("sort", ["test", "time_s"])
def test_sorting_by_another_column_keeps_the_best_by_the_rule(tmp_path, capsys, sort):
    tied_sweep(tmp_path)
    assert report.main([str(tmp_path), "--format", "csv", "--sort", sort]) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert [r["job"] for r in rows if r["chosen"].startswith("best")] == ["3"]
    if sort == "test":
        assert rows[0]["job"] == "1"
