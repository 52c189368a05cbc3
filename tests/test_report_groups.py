"""`runner report` ranks runs only against runs of the same data (dataset, task, target, test split), lists failed
and refused runs apart, groups repeats over seeds and folds with their interval, and shows the baselines and the
test figures' intervals (runner/commands/report*.py, sweeps/repeats.py), in the pytest process on written runs."""

import csv
import io
import statistics

import pytest
from helpers.fake_runs import DIGITS, run, table
from scipy import stats

from runner.commands import report


def report_of(capsys, *args):
    code = report.main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def rows_of(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_runs_of_four_datasets_are_four_sections_never_ranked_together_and_a_refused_run_is_apart(tmp_path, capsys):
    # the example: an MAE of 1.06 on one table and 220.9 g on another were ranked in one list
    mae = {"monitor": "val_mae", "mode": "min"}
    run(tmp_path, "a1", best=1.06, test=1.1, overrides=("optimizer.lr=0.1",), dataset=table("aaaa"), **mae)
    run(tmp_path, "a2", best=1.30, test=1.2, overrides=("optimizer.lr=0.01",), dataset=table("aaaa"), **mae)
    run(tmp_path, "b1", best=220.9, test=230.0, dataset=table("bbbb", target="grams"), **mae)
    run(tmp_path, "c1", best=0.95, dataset=table("cccc", target="label", task="classification"))
    run(tmp_path, "d1", best=0.97, overrides=("optimizer.lr=0.1",))
    run(tmp_path, "d2", best=0.99, overrides=("optimizer.lr=0.01",))
    # refused before it trained: no monitor, no config of its own
    run(tmp_path, "r1", status="failed", error="dataset.target=nope is not a column of the table", config=False)
    assert report.read_run(tmp_path / "a1")[0]["data"] != report.read_run(tmp_path / "b1")[0]["data"]

    code, out, _ = report_of(capsys, tmp_path / "*", "--format", "csv")
    assert code == 0
    rows = rows_of(out)
    datas = [r["data"] for r in rows if r["status"] != "failed"]
    assert len(set(datas)) == 4
    # each section's runs together: a section never resumes after another began
    assert [d for i, d in enumerate(datas) if i == 0 or datas[i - 1] != d] == list(dict.fromkeys(datas))
    # one best per section, none across them
    best = {r["data"]: r["job"] for r in rows if r["chosen"].startswith("best")}
    assert len(best) == 4 and best[rows[0]["data"]] in ("d2", "a1")
    assert {best[d] for d in best} == {"a1", "b1", "c1", "d2"}

    code, out, _ = report_of(capsys, tmp_path / "*")
    text = " ".join(out.split())
    assert text.count("ranked among themselves") == 4
    assert "csv (regression sha256 aaaa) target=y test_fraction=0.2 split_seed=0" in text and "target=grams" in text
    # the refused run is no table of its own: it is named once, apart, after every section
    assert "best val_loss" not in text
    assert "1 failed or refused (not ranked):" in text
    assert text.index("failed or refused") > text.rindex("ranked among themselves")
    assert "dataset.target=nope is not a column of the table" in text.split("failed or refused")[1]


def test_repeats_over_folds_are_one_setting_with_mean_std_and_a_t_interval(tmp_path, capsys):
    bests = {"0.01": [0.91, 0.93, 0.90, 0.94, 0.92], "0.001": [0.85, 0.88, 0.86, 0.84, 0.87]}
    for lr, values in bests.items():
        for fold, value in enumerate(values):
            overrides = ("dataset.folds=5", f"optimizer.lr={lr}", f"dataset.fold={fold}")
            run(tmp_path, f"lr{lr}-f{fold}", best=value, overrides=overrides)
    code, out, _ = report_of(capsys, tmp_path / "*", "--format", "csv")
    groups = {g["group"]: g for g in rows_of(out)}
    assert code == 0 and set(groups) == {"optimizer.lr=0.01", "optimizer.lr=0.001"}
    for lr, values in bests.items():
        g = groups[f"optimizer.lr={lr}"]
        assert (g["n"], g["folds"]) == ("5", "0 1 2 3 4")
        assert float(g["best_mean"]) == pytest.approx(statistics.mean(values), abs=1e-12)
        assert float(g["best_std"]) == pytest.approx(statistics.stdev(values), abs=1e-12)
        low, high = stats.t.interval(0.95, 4, loc=statistics.mean(values), scale=stats.sem(values))
        assert (float(g["best_low"]), float(g["best_high"])) == (pytest.approx(low), pytest.approx(high))
    # each fold is validated on its own samples: no fold's run is starred, and --best names the best setting's folds
    _, out, _ = report_of(capsys, tmp_path / "*", "--format", "csv", "--no-group")
    assert len(rows_of(out)) == 10 and not any(r["chosen"] for r in rows_of(out))
    _, out, _ = report_of(capsys, tmp_path / "*", "--best")
    assert sorted(line.rsplit("/", 1)[1] for line in out.split()) == [f"lr0.01-f{fold}" for fold in range(5)]
    # the terminal says what the repeats are, their interval, and a verdict with its p-value
    _, out, _ = report_of(capsys, tmp_path / "*")
    text = " ".join(out.split())
    assert "2 settings x folds: mean ± sample std [95 % t-interval]" in text
    assert "A optimizer.lr=0.01, B optimizer.lr=0.001, best val_accuracy: B - A = -0.06 [" in text
    assert "p = 0.0625 (exact paired permutation test, 5 folds): not distinguishable with 5 folds" in text


def test_a_section_shows_its_baselines_and_test_figures_with_their_intervals(tmp_path, capsys):
    interval = {"test_accuracy": {"low": 0.951, "high": 0.971, "n": 1000, "method": "wilson"}}
    baselines = {"majority class": {"test_accuracy": 0.678, "test_f1_macro": 0.404}, "logistic regression": 0.912}
    run(tmp_path, "r", best=0.96, test=0.962, extra={"intervals": interval, "baselines": baselines})
    _, out, _ = report_of(capsys, tmp_path / "*")
    text = " ".join(out.split())
    assert "baselines on the test split: majority class 0.678, logistic regression 0.912" in text
    assert "0.962 [0.951, 0.971] n=1,000" in text
    assert "does not beat the trivial baseline" not in text

    # another fold's training split: its own baselines, shown as the mean; a run that loses to the trivial one named
    other = {"majority class": {"test_accuracy": 0.682}, "logistic regression": 0.908}
    run(tmp_path, "s", best=0.5, test=0.6, overrides=("x=1",), extra={"baselines": other, "beats_trivial": False})
    _, out, _ = report_of(capsys, tmp_path / "*")
    text = " ".join(out.split())
    assert "the mean over 2 runs' training splits, which differ): majority class 0.68, logistic regression 0.91" in text
    assert "does not beat the trivial baseline on its test figure: s" in text
    _, md, _ = report_of(capsys, tmp_path / "*", "--format", "markdown")
    assert "0.962 [0.951, 0.971] n=1,000" in md
    _, out, _ = report_of(capsys, tmp_path / "*", "--format", "csv")
    cells = {r["job"]: (r["test"], r["test_low"], r["test_high"]) for r in rows_of(out)}
    assert cells == {"r": ("0.962", "0.951", "0.971"), "s": ("0.6", "", "")}


def test_the_data_fingerprint_is_the_recorded_data_and_test_split_not_the_settings(tmp_path):
    from runner.run.records import data_fingerprint

    base = run(tmp_path, "base", dataset=table("aaaa"))
    other_val = run(tmp_path, "val", dataset={**table("aaaa"), "val_fraction": 0.3, "folds": 5, "fold": 1})
    other_test = run(tmp_path, "test", dataset={**table("aaaa"), "split_seed": 1})
    assert data_fingerprint(base) == data_fingerprint(other_val)
    assert data_fingerprint(base) != data_fingerprint(other_test)
    assert data_fingerprint(run(tmp_path, "digits", dataset=DIGITS))["name"] == "digits"
    assert data_fingerprint(run(tmp_path, "none", config=False)) is None


def test_runs_without_a_validation_split_are_not_ranked_by_their_epoch_count(tmp_path, capsys):
    # dataset.val_fraction=0 records monitor "epoch" (best.pt is the last epoch): a run of 9 epochs is not "better"
    # than one of 5 because 9 > 5
    for name, epochs in (("short", 5), ("long", 9)):
        no_val = {"monitor": "epoch", "monitor_mode": "max", "best": {"epoch": epochs}, "epochs": epochs}
        run(tmp_path, name, overrides=(f"trainer.epochs={epochs}",), extra=no_val)
    assert report.read_run(tmp_path / "long")[0]["monitor"] == "epoch"  # precondition: the record is read as written
    code, out, _ = report_of(capsys, tmp_path / "*", "--format", "csv")
    assert code == 0
    rows = rows_of(out)
    assert {r["job"] for r in rows} == {"short", "long"}
    assert all(r["best"] == "" and r["chosen"] == "" for r in rows)


@pytest.mark.parametrize(("figure", "larger_first"), [("test_f1_macro", True), ("test_r2", True), ("test_mae", False)])
def test_sorting_by_the_test_figure_puts_the_better_first_in_that_figures_direction(
    tmp_path, capsys, figure, larger_first
):
    # any val_<figure> can be monitored, so the test column holds any figure: each sorts in its own direction
    for name, value, lr in (("low", 0.2, 0.1), ("high", 0.8, 0.01)):
        mode = "max" if larger_first else "min"
        run(
            tmp_path,
            name,
            best=value,
            test=value,
            overrides=(f"optimizer.lr={lr}",),
            monitor=f"val_{figure[5:]}",
            mode=mode,
        )
    code, out, _ = report_of(capsys, tmp_path / "*", "--format", "csv", "--sort", "test")
    assert code == 0 and report.read_run(tmp_path / "low")[0]["test_metric"] == figure  # precondition
    assert [r["job"] for r in rows_of(out)] == (["high", "low"] if larger_first else ["low", "high"])


def test_runs_tested_on_other_samples_are_sections_of_their_own_and_one_without_the_record_stays(tmp_path, capsys):
    # the same dataset keys, different test rows (folds against no folds on a training file, duplicates dropped)
    run(tmp_path, "a", overrides=("optimizer.lr=0.1",), extra={"test_rows": "aaaaaaaaaaaa"})
    run(tmp_path, "b", overrides=("optimizer.lr=0.01",), extra={"test_rows": "bbbbbbbbbbbb"})
    run(tmp_path, "old", overrides=("optimizer.lr=0.001",))
    rows, _ = report.build(sorted(tmp_path.iterdir()))
    data = {r["job"]: r["data"] for r in rows}
    assert data["a"].endswith("test rows aaaaaaaaaaaa") and data["b"].endswith("test rows bbbbbbbbbbbb")
    assert "test rows" not in data["old"]
    assert len({r["data"] for r in rows if r["chosen"].startswith("best")}) == 3  # each section its own best
