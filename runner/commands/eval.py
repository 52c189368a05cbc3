"""`runner eval ckpt=RUN_DIR`: rebuild a run's model and data from its own saved config, test it.

    runner eval ckpt=outputs/2026-11-22/10-31-07              # that run's best.pt
    runner eval ckpt=outputs/2026-11-22/10-31-07 device=cpu   # overrides apply on top

The user repeats none of the run's overrides: the model and dataset come from the run's
.hydra/config.yaml (or the config inside last.pt), not from today's YAML files. An override
that would move samples into or out of the test split is refused (EVAL_KEEPS_SPLIT).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from rich.table import Table

from runner.config.checks import apply_overrides, check_config
from runner.data.baselines import baseline_rows, baselines, beats_trivial, trivial_verdict
from runner.inference.loading import find_checkpoint, restore_model
from runner.inference.tta import tta_suffix, with_tta
from runner.io import plots, signals
from runner.io.console import RunConsole, results_table
from runner.io.errors import RunnerError
from runner.io.files import write_json
from runner.run.resume import RESUME_OVERRIDES
from runner.training.build import build_data, make_batches, summarize, target_scale_std
from runner.training.finish import with_interval
from runner.training.metrics import (
    TASKS,
    Outputs,
    evaluate,
    fixed_threshold,
    labelled_confusion,
    per_class_accuracy,
    target_mean,
    test_figures,
)
from runner.training.recipe import Recipe
from runner.training.setup import setup_device

if TYPE_CHECKING:
    from collections.abc import Sequence

    import torch
    from omegaconf import DictConfig

# Dataset keys an eval may override: those a resume may change too (where the same files are and how
# they are read), and augmentation, which eval does not use. Any other `dataset` key (split_seed,
# test_fraction, size, the dataset itself...) could change which samples are in the test split.
EVAL_KEEPS_SPLIT = (
    *(pattern for pattern, applied, _ in RESUME_OVERRIDES if applied and pattern.startswith("dataset.")),
    "dataset.augment",
    "dataset.augment.*",
)


def check_eval_overrides(overrides: Sequence[str]) -> None:
    """Refuse, by key, an override that would change the run's test split."""
    for text, override in zip(overrides, OverridesParser.create().parse_overrides(list(overrides))):
        key = override.key_or_group
        if (key == "dataset" or key.startswith("dataset.")) and not any(fnmatchcase(key, p) for p in EVAL_KEEPS_SPLIT):
            raise RunnerError(
                f"eval: '{text}' is refused: it would change which samples are in the run's test split, so the model "
                f"could be tested on samples it trained on. runner eval tests on the split the run held out; of the "
                f"dataset's keys only where the same files are and how they are read may change "
                f"({', '.join(k for k in EVAL_KEEPS_SPLIT if '*' not in k)})."
            )


def class_table(rows: dict[str, dict], confusion: torch.Tensor) -> Table:
    """Per class: precision, recall (the class' accuracy), F1 (stats.metrics.per_class) and the samples right."""
    table = Table(title="per class: precision, recall (the accuracy per class), F1", title_justify="left")
    for col in ("class", "precision", "recall", "f1", "correct / total"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for i, (name, row) in enumerate(rows.items()):
        # n/a: no sample of the class in the split
        recall = "n/a" if not row["support"] else f"{100 * row['recall']:.1f} %"
        figures = (f"{100 * row['precision']:.1f} %", recall, f"{row['f1']:.3f}")
        table.add_row(name, *figures, f"{int(confusion[i, i])} / {int(confusion[i].sum())}")
    return table


def card_threshold(weights: Path, run_cfg: DictConfig, recipe: Recipe) -> float | None:
    """The run's 2-class threshold as its model card records it (a tuned one is only there), else trainer.threshold's
    number; None for the argmax."""
    from runner.inference.card import CARD
    from runner.inference.loading import read_card

    if run_cfg.dataset.task != "classification" or run_cfg.dataset.num_classes != 2:
        return None
    path = weights.parent / CARD
    threshold = read_card(path, run_cfg)["threshold"] if path.is_file() else recipe.threshold
    return fixed_threshold(threshold, 2)


def write_per_class(kept: Outputs, class_names: Sequence[str], threshold: float | None, run_dir: Path) -> dict:
    """per_class.csv (class, precision, recall, f1, support: stats.metrics.per_class) beside confusion_matrix.png, and
    reliability.png (io/plots.reliability_diagram); the per-class rows as eval's metrics.json records them."""
    from runner.io.files import write_text
    from runner.io.tables import csv_table
    from runner.stats.metrics import expected_calibration_error, per_class, probabilities, reliability_bins

    names = list(class_names) or [str(i) for i in range(kept.out.shape[1])]
    rows = per_class(kept.y, kept.out, threshold=threshold)
    columns = ["class", "precision", "recall", "f1", "support"]
    write_text(run_dir / "per_class.csv", csv_table([{"class": n, **r} for n, r in zip(names, rows)], columns))
    ece = expected_calibration_error(kept.y, probabilities(kept.out))
    plots.reliability_diagram(reliability_bins(kept.y, kept.out), ece, run_dir / "reliability.png")
    return dict(zip(names, rows))


def eval_job(cfg: DictConfig, run_dir: str | Path, overrides: Sequence[str]) -> dict:
    run_dir = Path(run_dir)
    console = RunConsole(run_dir / "eval.log")
    try:
        if OmegaConf.is_missing(cfg, "ckpt"):
            raise RunnerError(
                "runner eval needs ckpt=: the run directory or checkpoint to evaluate, e.g. "
                "ckpt=outputs/2026-11-22/10-31-07."
            )
        check_eval_overrides(overrides)
        weights, run_cfg = find_checkpoint(cfg.ckpt)
        run_cfg = apply_overrides(run_cfg, cfg, overrides)
        check_config(run_cfg)
        task = TASKS[run_cfg.dataset.task]
        recipe = Recipe.of(run_cfg.trainer)
        # the device, threads and precision as the run's training had them; eval runs the model eagerly
        device, channels_last, precision = setup_device(
            recipe, device_name=run_cfg.device.name, input_shape=run_cfg.dataset.input_shape, compiling=False
        )
        with console.relay_warnings():
            splits, normalize = build_data(run_cfg.dataset, device)
        normalize.channels_last = channels_last
        model = restore_model(run_cfg.model, weights, device=device, channels_last=channels_last)
        # can it take this data?
        summarize(model, run_cfg.dataset.input_shape, num_outputs=run_cfg.dataset.num_classes, device=device)
        tta = cfg.get("tta")
        model = with_tta(model, tta, task=run_cfg.dataset.task, input_shape=run_cfg.dataset.input_shape)

        test = make_batches(splits.test, recipe.eval_batch_size, transform=normalize, device=device)
        stop = signals.install()
        kept = Outputs()
        metrics, confusion = evaluate(
            model,
            test,
            task=task,
            num_classes=run_cfg.dataset.num_classes,
            precision=precision,
            stop=lambda: stop.check("during eval; no metrics were written"),
            target_std=target_scale_std(splits, device),
            target_mean=target_mean(splits, device),
            keep=kept,
        )
        threshold = card_threshold(weights, run_cfg, recipe)
        confusion = labelled_confusion(confusion, kept, threshold)
        # every figure of the task with its 95 % interval, as the run's final test has them (training/finish.py)
        metrics, ranges = test_figures(task, metrics, kept, seed=int(run_cfg.get("seed") or 0), threshold=threshold)
        result = {
            "checkpoint": str(weights),
            "dataset": run_cfg.dataset.name,
            "model": run_cfg.model._target_,
            "device": str(device),
            "samples": len(splits.test),
            **({"tta": tta} if tta else {}),
            **{f"test_{k}{tta_suffix(tta)}": v for k, v in metrics.items()},
            "intervals": {f"test_{k}{tta_suffix(tta)}": r for k, r in ranges.items()},
        }
        console.print(
            f"[bold]runner eval[/]  {weights}  on the {run_cfg.dataset.name} test split ({len(splits.test)} samples"
            f"{f', tta={tta}' if tta else ''})"
        )
        console.print(
            results_table("test", [(f"test_{k}", with_interval(v, ranges.get(k))) for k, v in metrics.items()])
        )
        # the trivial baseline on the same test split, fitted on the run's training split (data/baselines.py)
        result["baselines"] = baselines(splits, run_cfg.dataset.task, run_cfg.dataset.num_classes, models=False)
        tested = {f"test_{k}": v for k, v in metrics.items()}
        result["beats_trivial"] = beats_trivial(tested, result["baselines"], task.metric)
        console.print(results_table("trivial baseline", baseline_rows(result["baselines"], task.metric)))
        losing = trivial_verdict(tested, result["baselines"], task.metric)
        if losing:
            console.print(losing)
        if confusion is not None:
            result["per_class_accuracy"] = per_class_accuracy(confusion, splits.class_names)
            result["confusion_matrix"] = confusion.tolist()
            plots.confusion_matrix(confusion, splits.class_names, run_dir / "confusion_matrix.png")
            result["per_class"] = write_per_class(kept, splits.class_names, threshold, run_dir)
            console.print(class_table(result["per_class"], confusion))
        write_json(run_dir / "metrics.json", result)
        console.print(f"eval directory: {run_dir}", soft_wrap=True)
        return result
    except BaseException as err:
        console.failed(err)
        raise
    finally:
        console.close()
