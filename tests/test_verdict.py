"""A verdict between settings (runner/stats/compare.py): the paired permutation test against scipy's, its floor for
small n, the bootstrap interval, the pairs that would settle it; the report's verdicts only between settings that
differ in one key; `runner diff` on two groups of runs."""

import itertools
import json
import math
import re

import numpy as np
import pytest
from helpers.fake_runs import run, table
from scipy import stats

from runner.commands import diff
from runner.stats.compare import (
    FEWEST_PAIRS,
    bootstrap_mean,
    paired,
    pairs_needed,
    permutation_p,
    spread,
    worded,
)
from runner.sweeps.repeats import aggregate


@pytest.mark.parametrize("n", [2, 5, 7, 10])
def test_the_permutation_p_value_is_scipys_exact_paired_permutation_test(n):
    d = np.random.default_rng(n).normal(0.01, 0.02, size=n)
    ours = permutation_p(d)
    theirs = stats.permutation_test(
        (d,), np.mean, permutation_type="samples", alternative="two-sided", n_resamples=math.inf
    ).pvalue
    assert 0 < ours <= 1 and ours == pytest.approx(theirs, abs=1e-12)


def test_fewer_than_six_pairs_cannot_reach_005_and_the_verdict_says_so():
    a = {str(i): 0.80 + 0.01 * i for i in range(5)}
    b = {k: v + 0.05 + 0.001 * int(k) for k, v in a.items()}
    v = paired(a, b)
    # every difference positive: the most extreme of the 2^5 sign flips, and its mirror
    assert v.p_value == pytest.approx(2 / 2**5) and v.p_floor == pytest.approx(0.0625)
    assert v.low > 0 and not v.distinguishable
    sentence = worded(v, mode="max")
    assert "not distinguishable with 5 seeds; 5 pairs cannot give p < 0.05" in sentence
    assert f"about {FEWEST_PAIRS} seeds would settle it" in sentence

    eight = paired({str(i): 0.8 for i in range(8)}, {str(i): 0.85 + 0.001 * i for i in range(8)})
    assert eight.p_value == pytest.approx(2 / 2**8) and eight.distinguishable
    assert worded(eight, mode="max").endswith("B is better.")
    # for a loss, the larger B is the worse
    assert worded(eight, mode="min").endswith("A is better.")


def test_pairs_are_matched_by_key_and_unpaired_or_nan_runs_left_out():
    a = {"0": 0.9, "1": 0.8, "2": math.nan, "3": 0.7}
    b = {"1": 0.85, "0": 0.95, "2": 0.9, "4": 0.1}
    v = paired(a, b)
    assert v.keys == ("0", "1") and v.differences == pytest.approx((0.05, 0.05))
    assert paired({"0": 1.0}, {"0": 2.0}) is None


def test_the_bootstrap_interval_is_seeded_and_holds_the_mean():
    d = np.random.default_rng(0).normal(0.0, 1.0, size=12)
    low, high = bootstrap_mean(d, seed=3)
    assert (low, high) == bootstrap_mean(d, seed=3) != bootstrap_mean(d, seed=4)
    assert low < d.mean() < high
    # the brute-force mean over all 2^n flips gives the same p as the vectorised sum
    flips = [
        abs(np.mean(np.array(s) * d)) >= abs(d.mean()) * (1 - 1e-12) for s in itertools.product((1, -1), repeat=12)
    ]
    assert permutation_p(d) == pytest.approx(np.mean(flips), abs=1e-15)


@pytest.mark.parametrize(("mean", "std"), [(0.01, 0.02), (0.5, 0.1), (-0.003, 0.05)])
def test_the_pairs_needed_are_the_first_n_whose_t_interval_excludes_zero(mean, std):
    n = pairs_needed(mean, std)
    half = lambda k: stats.t.ppf(0.975, k - 1) * std / math.sqrt(k)  # noqa: E731
    assert n >= FEWEST_PAIRS and half(n) < abs(mean)
    assert n == FEWEST_PAIRS or half(n - 1) >= abs(mean)
    assert pairs_needed(0.0, 1.0) is None


def test_spread_is_the_student_t_interval_of_the_mean():
    values = [0.91, 0.93, 0.90, 0.94]
    s = spread(values)
    low, high = stats.t.interval(0.95, 3, loc=np.mean(values), scale=stats.sem(values))
    assert (s.n, s.low, s.high) == (4, pytest.approx(low), pytest.approx(high))
    assert spread([0.5]).low is None and spread([]) is None


def test_report_gives_a_verdict_only_between_settings_that_differ_in_one_key(tmp_path):
    from runner.commands.report import build
    from runner.commands.report_sections import verdicts

    for lr, wd, shift in (("0.01", "0", 0.0), ("0.001", "0", -0.05), ("0.001", "0.1", -0.02)):
        for seed in range(3):
            overrides = (f"optimizer.lr={lr}", f"optimizer.weight_decay={wd}", f"seed={seed}")
            run(tmp_path, f"{lr}-{wd}-{seed}", best=0.9 + shift + 0.01 * seed, overrides=overrides)
    rows, _ = build(sorted(tmp_path.iterdir()))
    grouped = aggregate(rows)
    assert len(grouped) == 3
    said = verdicts(grouped, "seeds")
    # lr alone (wd=0), wd alone (lr=0.001); never the pair that differs in both
    assert len(said) == 2
    assert any(s.startswith("A optimizer.lr=0.01, B optimizer.lr=0.001") for s in said)
    assert any(s.startswith("A optimizer.weight_decay=0.1, B optimizer.weight_decay=0") for s in said)
    assert all("with 3 seeds" in s for s in said)


def test_diff_of_two_groups_pairs_them_by_seed_and_refuses_other_data(tmp_path, capsys):
    for seed in range(6):
        run(tmp_path / "a", str(seed), best=0.90 + 0.01 * seed, overrides=(f"seed={seed}", "optimizer.lr=0.01"))
        run(tmp_path / "b", str(seed), best=0.93 + 0.011 * seed, overrides=(f"seed={seed}", "optimizer.lr=0.001"))
    assert diff.main([str(tmp_path / "a"), str(tmp_path / "b"), "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [p["repeat"] for p in result["pairs"]] == ["0", "1", "2", "3", "4", "5"]
    assert result["config"] == [{"key": "optimizer.lr", "a": "0.01", "b": "0.001"}]
    assert result["verdict"]["p_value"] == pytest.approx(2 / 2**6)
    assert "B is better" in result["verdict"]["sentence"]
    assert diff.main([str(tmp_path / "a" / "*"), str(tmp_path / "b")]) == 0
    assert "p = 0.0312 (exact paired permutation test, 6 seeds): B is better." in capsys.readouterr().out

    # one group of two settings: refused, not silently paired
    assert diff.main([str(tmp_path / "*" / "[0-2]"), str(tmp_path / "b")]) == 2
    assert "holds runs of 2 settings (optimizer.lr=0.001; optimizer.lr=0.01)" in capsys.readouterr().err

    run(tmp_path / "c", "0", dataset=table("cccc", task="classification"), overrides=("seed=0",))
    run(tmp_path / "c", "1", dataset=table("cccc", task="classification"), overrides=("seed=1",))
    assert diff.main([str(tmp_path / "a"), str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "the two groups' runs differ in data" in err


@pytest.mark.slow  # ten tiny trainings: the "done when"
def test_five_folds_of_two_learning_rates_report_their_cv_mean_and_a_verdict_with_its_p_value(tmp_path):
    import csv

    from conftest import runner

    rng = np.random.default_rng(0)
    with open(tmp_path / "t.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["a", "b", "c", "label"])
        for i in range(80):
            label = i % 2
            out.writerow([*np.round(rng.normal(size=3) + label, 3), "yes" if label else "no"])
    table_ = ["dataset=csv", "dataset.path=t.csv", "dataset.target=label", "trainer.epochs=3", "trainer.batch_size=8"]
    runner("train", "-m", *table_, "dataset.folds=5", "optimizer.lr=0.01,0.001", cwd=tmp_path)
    (sweep,) = tmp_path.glob("outputs/multirun/*/*")
    text = " ".join(runner("report", sweep, cwd=tmp_path).stdout.split())
    assert "10 runs in 2 settings x folds: mean ± sample std [95 % t-interval]" in text
    for lr in ("0.01", "0.001"):
        assert f"optimizer.lr={lr} │ 5 │ folds 0 1 2 3 4 │" in text
    # the table recipe's monitor (val_loss or val_accuracy), the better-ranked rate as A
    assert re.search(r"A optimizer\.lr=0\.0+1, B optimizer\.lr=0\.0+1, best val_\w+: B - A = [-+]", text)
    assert "(exact paired permutation test, 5 folds)" in text and "p = " in text
    groups = list(csv.DictReader(runner("report", sweep, "--format", "csv", cwd=tmp_path).stdout.splitlines()))
    assert sorted((g["group"], g["n"], g["folds"]) for g in groups) == [
        ("optimizer.lr=0.001", "5", "0 1 2 3 4"),
        ("optimizer.lr=0.01", "5", "0 1 2 3 4"),
    ]
    assert all(float(g["best_low"]) <= float(g["best_mean"]) <= float(g["best_high"]) for g in groups)


def test_past_sixteen_pairs_the_sentence_says_the_permutation_test_was_sampled():
    from runner.stats import compare

    a = {str(i): 0.90 + 0.001 * i for i in range(20)}
    b = {k: v + 0.01 + 0.002 * (int(k) % 3) for k, v in a.items()}
    verdict = compare.paired(a, b)
    assert verdict is not None and verdict.n == 20 > compare.EXACT_UP_TO
    assert "(sampled paired permutation test, 20 seeds)" in compare.worded(verdict, mode="max")
    small = compare.paired({k: a[k] for k in list(a)[:6]}, {k: b[k] for k in list(a)[:6]})
    assert small is not None and "(exact paired permutation test, 6 seeds)" in compare.worded(small, mode="max")
