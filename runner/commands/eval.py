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
from runner.inference.loading import find_checkpoint, restore_model
from runner.inference.tta import tta_suffix, with_tta
from runner.io import plots, signals
from runner.io.console import RunConsole, results_table
from runner.io.errors import RunnerError
from runner.io.files import write_json
from runner.run.resume import RESUME_OVERRIDES
from runner.training.build import build_data, make_batches, summarize, target_scale_std
from runner.training.metrics import TASKS, evaluate, per_class_accuracy
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


def class_table(per_class: dict[str, float | None], confusion: torch.Tensor) -> Table:
    table = Table(title="accuracy per class", title_justify="left")
    for col in ("class", "accuracy", "correct / total"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for i, (name, acc) in enumerate(per_class.items()):
        # n/a: no sample of the class in the split
        shown = "n/a" if acc is None else f"{100 * acc:.1f} %"
        table.add_row(name, shown, f"{int(confusion[i, i])} / {int(confusion[i].sum())}")
    return table


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
        metrics, confusion = evaluate(
            model,
            test,
            task=task,
            num_classes=run_cfg.dataset.num_classes,
            precision=precision,
            stop=lambda: stop.check("during eval; no metrics were written"),
            target_std=target_scale_std(splits, device),
        )
        result = {
            "checkpoint": str(weights),
            "dataset": run_cfg.dataset.name,
            "model": run_cfg.model._target_,
            "device": str(device),
            "samples": len(splits.test),
            **({"tta": tta} if tta else {}),
            **{f"test_{k}{tta_suffix(tta)}": v for k, v in metrics.items()},
        }
        console.print(
            f"[bold]runner eval[/]  {weights}  on the {run_cfg.dataset.name} test split ({len(splits.test)} samples"
            f"{f', tta={tta}' if tta else ''})"
        )
        console.print(results_table("test", [(k, v) for k, v in result.items() if k.startswith("test_")]))
        if confusion is not None:
            result["per_class_accuracy"] = per_class_accuracy(confusion, splits.class_names)
            result["confusion_matrix"] = confusion.tolist()
            console.print(class_table(result["per_class_accuracy"], confusion))
            plots.confusion_matrix(confusion, splits.class_names, run_dir / "confusion_matrix.png")
        write_json(run_dir / "metrics.json", result)
        console.print(f"eval directory: {run_dir}", soft_wrap=True)
        return result
    except BaseException as err:
        console.failed(err)
        raise
    finally:
        console.close()
