"""A training job's setup (runner/training/setup.py) and the rules it shares, in-process: the monitor's one order
(training/recipe.ranking) as best.pt, the k best checkpoints and `runner report` read it, and the Recipe's own
refusals of knobs that contradict each other."""

import ast
import inspect
import math
import re
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from runner.commands.report import sort_rows
from runner.io.errors import RunnerError
from runner.training.checkpoints import Kept
from runner.training.recipe import Monitor, Recipe, ranking

TRAINER = Path(__file__).resolve().parent.parent / "configs" / "trainer" / "default.yaml"
NAN, INF = math.nan, math.inf
# (monitored value, val_loss) of six validations, their best first in a max-mode monitor: ties go to the lower
# val_loss (a NaN one loses), a NaN or infinite value comes after every real one (among them, by val_loss too)
VALIDATIONS = [(0.9, 0.2), (0.9, 0.3), (0.9, NAN), (0.5, 0.1), (INF, 0.01), (NAN, 0.05)]


def test_best_pt_the_k_best_and_report_rank_validations_in_one_order():
    shuffled = [VALIDATIONS[i] for i in (4, 2, 5, 0, 3, 1)]
    assert shuffled != VALIDATIONS
    assert sorted(shuffled, key=lambda v: ranking(*v, mode="max")) == VALIDATIONS

    monitor = Monitor("val_accuracy", "max")
    # best.pt: each validation in turn, kept when Monitor.improved says so, ends on the first of the order
    best = SimpleNamespace(best_metric=None, best_val_loss=None)
    for value, loss in shuffled:
        if monitor.improved({"val_accuracy": value, "val_loss": loss}, best):
            best.best_metric, best.best_val_loss = value, loss
    assert (best.best_metric, best.best_val_loss) == VALIDATIONS[0]

    # the k best checkpoints, ranked by Kept.rank
    knobs = dict(save_top_k=-1, every_n_epochs=None, every_n_steps=None, save_total_limit=None)
    kept = Kept(SimpleNamespace(**knobs), monitor)
    entries = [{"epoch": i + 1, "metric": v, "val_loss": loss} for i, (v, loss) in enumerate(shuffled)]
    ranked = [(e["metric"], e["val_loss"]) for e in sorted(entries, key=kept.rank)]

    # runner report's rows of the same runs
    row = {"monitor": "val_accuracy", "mode": "max", "status": "completed", "test_metric": "test_accuracy"}
    rows = [{**row, "best": v, "final_val_loss": loss, "run_dir": f"run{i}"} for i, (v, loss) in enumerate(shuffled)]
    reported = [(r["best"], r["final_val_loss"]) for r in sort_rows(rows)]
    assert ranked == VALIDATIONS
    assert reported == VALIDATIONS


def test_a_min_monitor_ranks_the_lower_value_first_and_non_finite_last():
    assert ranking(0.1, 1.0, mode="min") < ranking(0.2, 0.0, mode="min")
    assert ranking(0.2, 0.5, mode="min") < ranking(0.2, None, mode="min")
    assert ranking(1e9, None, mode="min") < ranking(NAN, 0.0, mode="min") and ranking(-INF, 0, mode="min")[0] == 1
    assert not Monitor("val_loss", "min").improved({"val_loss": NAN}, SimpleNamespace(best_metric=NAN, best_val_loss=1))


def recipe_with(**knobs):
    cfg = OmegaConf.load(TRAINER)
    for key, value in knobs.items():
        OmegaConf.update(cfg, key, value)
    return Recipe.of(cfg)


@pytest.mark.parametrize(
    ("knobs", "words"),
    [
        ({"save_total_limit": 2}, "set trainer.every_n_epochs=5 or trainer.every_n_steps=500 with it"),
        ({"fast_dev_run": True, "overfit_batches": 2}, "Run one, then the other."),
        ({"average_top_k": True, "save_top_k": 1}, "Start the run with trainer.save_top_k=3"),
        ({"unfreeze_at_epoch": 2}, "trainer.unfreeze_at_epoch=2 unfreezes nothing: trainer.freeze is empty"),
    ],
)
def test_knobs_that_contradict_each_other_are_the_recipes_own_refusal(knobs, words):
    assert recipe_with().save_total_limit is None
    with pytest.raises(RunnerError, match=re.escape(words)):
        recipe_with(**knobs)


def test_setup_is_an_outline_of_keyword_calls():
    from runner.training import setup

    body = ast.parse(textwrap.dedent(inspect.getsource(setup.setup))).body[0].body
    calls = [
        node
        for node in ast.walk(ast.Module(body=body, type_ignores=[]))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.startswith("setup_")
    ]
    parts = [call.func.id for call in sorted(calls, key=lambda call: call.lineno)]
    order = ["config", "device", "model", "data", "optimization", "state", "freezing", "net"]
    assert parts == [f"setup_{part}" for part in order]
    # each part by keyword: the pieces of config it takes are named at the call
    assert all(call.keywords for call in calls)
    # statements, not lines: the formatter spreads a keyword call over several
    assert len(body) <= 30, len(body)
