"""The end of a training job: best.pt (and trainer.average_top_k's average) tested as `runner eval` would test
them, summary.json's `completed` record with its throughput, and the results table.

`finish` is the last step of runner/commands/train.py's recipe (claim, setup, start, fit, finish).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.data.baselines import baseline_rows, beats_trivial, trivial_verdict
from runner.inference.loading import restore_model
from runner.io.console import results_table
from runner.io.errors import Diverged
from runner.training import distributed
from runner.training.flops import peak_flops, throughput
from runner.training.metrics import (
    Outputs,
    evaluate,
    fixed_threshold,
    labelled_confusion,
    loss_floor,
    test_figures,
)

if TYPE_CHECKING:
    import torch

    from runner.io.console import RunConsole
    from runner.io.signals import StopSignals
    from runner.run.rundir import RunDir
    from runner.training.distributed import AgreedStop
    from runner.training.loop import Job
    from runner.training.recipe import Recipe


def overfit_verdict(
    rows: list[dict[str, Any]], recipe: Recipe, seen: int, floor: float = 0.0, absolute: bool = True
) -> tuple[str, dict[str, Any]]:
    """(a line, summary.json's `overfit`): whether the training loss of trainer.overfit_batches' fixed batches fell
    near its floor: the last epoch's train_loss within 5 % of the first epoch's distance to `floor` (the lowest loss
    there is: 0, or with label smoothing the entropy of the smoothed targets, training.metrics.loss_floor) and, where
    `absolute` (a cross-entropy, in nats), within 0.05 of it. A model, loss and optimizer that can learn anything
    can memorise a few batches (Karpathy's "overfit one batch"; Lightning's overfit_batches)."""
    first, last = rows[0]["train_loss"], rows[-1]["train_loss"]
    fitted = last - floor < 0.05 * (first - floor) and (not absolute or last - floor < 0.05)
    record = {
        "batches": recipe.overfit_batches,
        "samples": seen,
        "first_train_loss": first,
        "train_loss": last,
        "floor": floor,
        "fitted": fitted,
    }
    head = f"overfit_batches: train_loss {first:.4f} (epoch 1) -> {last:.4f} (epoch {len(rows)}) on {seen} samples"
    near = "near zero" if floor == 0 else f"near its floor {floor:.4f} (label smoothing)"
    if fitted:
        return f"{head}: it fell {near}, so the model, the loss and the optimizer can fit data", record
    rule = "5 % of epoch 1's" + (" and 0.05" if absolute else "")
    return (
        f"{head}: it did not fall {near} (to within {rule}). Train longer (trainer.epochs=100), raise or lower "
        f"optimizer.lr, and check that the labels match the inputs and that the model's output fits the loss",
        record,
    )


def test_averaged(job: Job, run: RunDir, stop: StopSignals | AgreedStop) -> dict[str, Any]:
    """trainer.average_top_k: checkpoints/averaged.pt, the mean of the kept k best (training/checkpoints.average),
    written by rank 0 (its failure is every rank's: none waits for it) and tested as best.pt is; summary.json's
    `averaged` (the epochs averaged, the test metrics)."""
    from runner.training.checkpoints import average_files

    folder = run.path / "checkpoints"
    # trainer.average_top_k is refused with save_top_k=1 (Recipe), so checkpoints are kept (setup.setup_kept)
    assert job.state.kept is not None
    top = job.state.kept.top

    def write() -> None:
        if run.write:
            run.save_weights(average_files([folder / entry["file"] for entry in top]), "averaged.pt")

    distributed.decided_by_rank_0(write)  # averaged.pt is on disk before any process reads it
    test, _ = test_weights(job, folder / "averaged.pt", stop, "while testing averaged.pt; a resume tests it again")
    return {"epochs": [entry["epoch"] for entry in top], **{f"test_{k}": v for k, v in test.items()}}


def test_weights(
    job: Job,
    weights: Path,
    stop: StopSignals | AgreedStop,
    where: str,
    keep: Outputs | None = None,
    split: str = "test",
) -> tuple[dict[str, float], torch.Tensor | None]:
    """(metrics, confusion) of the weights file `weights` on the test split (or `split`), loaded from disk as runner
    eval loads them; `where` says where a stop there leaves the run; `keep` gets the per-sample outputs."""
    model = restore_model(job.cfg.model, weights, device=job.device, channels_last=job.channels_last)
    return evaluate(
        model,
        job.data.test if split == "test" else job.data.val,
        task=job.task,
        num_classes=job.data.num_classes,
        precision=job.precision,
        stop=lambda: stop.check(where),
        target_std=job.data.target_std,
        target_mean=job.data.target_mean,
        keep=keep,
    )


def decided_threshold(job: Job, run: RunDir, best: Path, stop: StopSignals | AgreedStop) -> float | None:
    """A 2-class run's threshold for the test's labels (None: the argmax, for 0.5 and other tasks): trainer.threshold,
    or for "tuned" the F1-best on the validation split at best.pt (stats.metrics.tuned_threshold), which the model
    card then records for predict and export."""
    if job.data.num_classes != 2 or job.task.metric != "accuracy" or job.recipe.threshold != "tuned":
        return fixed_threshold(job.recipe.threshold, job.data.num_classes)
    from dataclasses import replace

    from runner.stats.metrics import tuned_threshold

    kept = Outputs()
    if job.samples["val"]:
        test_weights(job, best, stop, "while tuning the threshold; a resume tunes it again", keep=kept, split="val")
    threshold = tuned_threshold(kept.y, kept.out) if job.samples["val"] else 0.5
    job.card = replace(job.card, threshold=threshold)
    run.save_model_card(job.card)
    return threshold


def fold_predictions(job: Job, run: RunDir) -> None:
    """dataset.folds: val_predictions.csv, best.pt's predictions (loaded as runner predict loads it) on this job's
    held-out fold, its validation split, each sample named as in predictions.csv; the sweep's end gathers the folds'
    files into oof_predictions.csv (sweeps/folds.py). Written before the run is recorded completed, so a kept job
    has it."""
    if job.cfg.dataset.get("folds") is None or not run.write:
        return
    import torch

    from runner.data.splits import Split
    from runner.inference.predictor import load_predictor
    from runner.io.files import write_text
    from runner.io.tables import csv_table
    from runner.training.build import build_data

    val = build_data(job.cfg.dataset, "cpu")[0].val
    predictor = load_predictor(run.path / "checkpoints" / "best.pt", job.device)
    if isinstance(val, Split):
        id_name, names, inputs, truth = val.id_name, val.ids or list(range(len(val))), val.x, val.y
    else:
        # streamed image files: named by their path under dataset.root, as an in-memory split names them
        root = Path(job.cfg.dataset.root).expanduser()
        paths = [path for path, _ in val.samples]
        id_name, names, inputs = "filename", [str(Path(p).relative_to(root)) for p in paths], paths
        truth = torch.tensor([label for _, label in val.samples])
    out = predictor.predict(inputs)
    rows: list[dict[str, Any]] = [{id_name: name} for name in names]
    if out.probs is not None:
        labels = predictor.card.labels()
        columns = [id_name, "target", "prediction", *(f"prob_{c}" for c in labels)]
        assert out.labels is not None
        for row, y, predicted, probs in zip(rows, truth.tolist(), out.labels, out.probs.tolist()):
            row.update(zip(columns[1:], [labels[y], predicted, *probs]))
    else:
        assert out.values is not None
        scale = predictor.card.preprocessing.get("target_scale") or {"mean": 0.0, "std": 1.0}
        # in the targets' own units, as the predictions are
        y = truth.double() * torch.tensor(scale["std"]) + torch.tensor(scale["mean"])
        ends = [""] if y.shape[1] == 1 else [f"_{j}" for j in range(y.shape[1])]
        columns = [id_name, *(f"{k}{e}" for e in ends for k in ("target", "prediction"))]
        for row, true, pred in zip(rows, y.tolist(), out.values.tolist()):
            row.update(zip(columns[1:], [v for pair in zip(true, pred) for v in pair]))
    write_text(run.path / "val_predictions.csv", csv_table(rows, columns))


def figures_record(job: Job, kept: Outputs, ranges: dict[str, Any], threshold: float | None) -> dict[str, Any]:
    """summary.json's `intervals` ({test_<figure>: low, high, n, method}) and, for classification, `per_class`
    ({class: precision, recall, f1, support}) and a 2-class run's `threshold`."""
    record: dict[str, Any] = {"intervals": {f"test_{k}": r for k, r in ranges.items()}}
    if job.task.metric == "accuracy":
        from runner.stats.metrics import per_class

        rows = per_class(kept.y, kept.out, threshold=threshold)
        record["per_class"] = dict(zip(job.card.labels(), rows))
        if job.data.num_classes == 2:
            record["threshold"] = {"value": 0.5 if threshold is None else threshold, "rule": job.recipe.threshold}
    return record


def with_interval(value: float, interval: dict[str, Any] | None) -> float | str:
    """A test figure as the results table shows it: '0.962 [0.951, 0.971] n=1,000' where it has an interval."""
    from runner.stats.intervals import shown

    return value if interval is None else shown(value, interval["low"], interval["high"], interval["n"])


def measured_speed(job: Job, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """summary.json's `throughput` (training/flops.py): samples/s and steps/s of the median epoch, the FLOP/s the
    model's counted FLOPs make of it, and on a GPU of known peak the MFU."""
    peak, gpu = peak_flops(job.device, job.recipe.precision)
    processes = distributed.current().world  # metrics.csv's samples/s are every process's together
    speed = throughput(
        rows,
        batch_size=job.recipe.batch_size,
        accumulate=job.recipe.accumulate_grad_batches,
        flops=job.flops,
        peak=peak and peak * processes,
    )
    return speed | ({"gpu": gpu, "gpus": processes, "precision": job.recipe.precision} if gpu else {})


def speed_line(speed: dict[str, Any]) -> str:
    """The throughput in one results-table cell."""
    line = f"{speed['samples_per_s']:,.0f} samples/s, {speed['steps_per_s']:,.1f} steps/s"
    if "flop_per_s" in speed:
        line += f", {speed['flop_per_s'] / 1e9:,.2f} GFLOP/s"
    if "mfu" in speed:
        line += f" (MFU {100 * speed['mfu']:.1f} % of the {speed['gpu']}'s {speed['precision']} peak)"
    return line


def no_best(monitor: str, epochs: int) -> Diverged:
    """The end of a run none of whose validations gave a finite `monitor` (a NaN or infinite value is never best,
    training/recipe.Monitor): there is no best.pt to test. A figure undefined on the validation split (AUROC and
    average precision without a sample of every class, MAPE with a target of 0: stats.metrics.applies) is NaN at
    every epoch without anything diverging, and is said so."""
    from runner.stats.metrics import bare

    if bare(monitor) in ("auroc", "average_precision", "mape"):
        cause = "a target of 0" if bare(monitor) == "mape" else "no sample of some class"
        return Diverged(
            f"every validation's {monitor} was NaN ({epochs} epoch{'s' * (epochs != 1)}): it is not defined on a "
            f"validation split with {cause}, so no epoch is best and there is no best.pt to test; last.pt is kept. "
            f"Monitor a figure defined on it (e.g. trainer.monitor=val_loss or val_f1_macro), or draw a larger "
            f"validation split (dataset.val_fraction=0.2), and start again."
        )
    other = "" if monitor == "val_loss" else ", or monitor a metric that stays finite, e.g. trainer.monitor=val_loss"
    return Diverged(
        f"every validation's {monitor} was NaN or infinite ({epochs} epoch{'s' * (epochs != 1)}), so no epoch is "
        f"best and there is no best.pt to test; last.pt is kept. Lower optimizer.lr (or set trainer.grad_clip=1.0) "
        f"and start again{other}."
    )


def best_line(monitor: str, epoch: int, value: float | None) -> tuple[str, float | str | None]:
    """The results table's row of what best.pt is: the monitored value and its epoch, or without a validation split
    and a monitor of its own (dataset.val_fraction=0) the last epoch."""
    if monitor == "epoch":
        return "best.pt (no validation split)", f"the last epoch, {epoch}"
    return f"best {monitor} (epoch {epoch})", value


def time_row(timings: dict) -> tuple[str, str]:
    """The results table's time, saying what it counts: the run's own (setup, training, test: summary.json's
    total_s) and, where known, the whole command's so far (process_s: imports and Hydra's composing too)."""
    row = f"{timings['total_s']:.1f} s"
    if timings.get("process_s") is not None:
        row += f" (the command so far: {timings['process_s']:.1f} s)"
    return "time: setup, training, test", row


def process_s() -> float | None:
    """Seconds since this process started, by the operating system's record of its start (Linux's /proc): the
    interpreter's start, the imports and Hydra's composing too, which the run's own clock (run.elapsed, from the
    moment it claimed its directory) leaves out. None where there is no /proc."""
    import os

    try:
        fields = Path("/proc/self/stat").read_text().rpartition(")")[2].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    # field 22 of stat, the start in clock ticks after boot; the command name before ")" may hold spaces
    return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))


def finish(
    job: Job,
    run: RunDir,
    *,
    console: RunConsole,
    setup_s: float,
    first_step_at: float | None,
    stop: StopSignals | AgreedStop,
) -> dict[str, Any]:
    """Test best.pt (loaded from disk, as `runner eval` does), plot, and record the run as completed.

    A stop before the test's last batch leaves the run `interrupted` (its resume tests it); one after, `completed`."""
    state, rows = job.state, run.rows
    if not state.best_epoch:
        raise no_best(job.monitor.name, state.epoch)
    train_s = run.elapsed() - setup_s
    in_sync = distributed.in_sync(state.model)  # DDP's promise, checked: every process ends with the same weights
    distributed.barrier()  # best.pt is on disk before any process reads it
    best = run.path / "checkpoints" / "best.pt"
    where = "during the final test; last.pt holds every epoch, and a resume tests best.pt"
    kept = Outputs()
    test, confusion = test_weights(job, best, stop, where, keep=kept)
    threshold = decided_threshold(job, run, best, stop)
    confusion = labelled_confusion(confusion, kept, threshold)
    # every figure of the task, each with its 95 % interval (runner/stats), seeded by the run's seed
    test, ranges = test_figures(job.task, test, kept, seed=int(job.cfg.get("seed") or 0), threshold=threshold)
    judged = figures_record(job, kept, ranges, threshold)
    averaged = test_averaged(job, run, stop) if job.recipe.average_top_k else {}
    fold_predictions(job, run)
    run.plot(job.task.metric)
    best_row = next(r for r in rows if int(r["epoch"]) == state.best_epoch)
    ending: dict[str, Any] = {
        "stopped_by": state.stopped_by or "epochs"
    }  # what ended training: epochs, early_stopping, max_steps, max_time
    if state.stopped_by == "early_stopping":
        ending["early_stopping"] = {"epoch": state.epoch, "stale_epochs": state.stale_epochs, "best": state.early_best}
    if state.ema is not None:
        ending["ema"] = {
            "decay": job.recipe.ema_decay,
            "warmup": job.recipe.ema_warmup,
            "weights": "validation, best.pt and the test use the EMA weights",
        }
    if averaged:
        ending["averaged"] = averaged
    if job.recipe.overfit_batches:
        seen = len(job.data.train) * job.recipe.batch_size
        floor = loss_floor(job.task, job.recipe.label_smoothing, job.data.num_classes)
        classifying = job.task.metric == "accuracy"
        verdict, ending["overfit"] = overfit_verdict(rows, job.recipe, seen, floor=floor, absolute=classifying)
    speed = measured_speed(job, rows)
    tested = {f"test_{k}": v for k, v in test.items()}
    baselines = job.baselines() if job.baselines else {}
    summary = run.complete(
        epochs=state.epoch,
        steps=state.step,
        **ending,
        # the monitored value too where it is no val_ column (trainer.monitor=train_loss)
        best={
            "epoch": state.best_epoch,
            **{k: v for k, v in best_row.items() if k.startswith("val_") or (k == job.monitor.name and k != "epoch")},
        },
        final=rows[-1],
        test={f"test_{k}": v for k, v in test.items()},
        **judged,
        # the trivial baseline and scikit-learn's (data/baselines.py), and whether the test figure beats the trivial one
        **(
            {"baselines": baselines, "beats_trivial": beats_trivial(tested, baselines, job.task.metric)}
            if baselines
            else {}
        ),
        ranks_in_sync=in_sync,
        throughput=speed,
        timings={
            "setup_s": setup_s,
            "train_s": train_s,
            "total_s": run.elapsed(),
            # unix time, for the benchmark's start-up figure
            "first_step_at": first_step_at,
            "process_s": process_s(),
        },
    )
    results = {f"best_{job.monitor.name}": state.best_metric, **{f"test_{k}": v for k, v in test.items()}}
    limited = (job.data.limits or {}).get("test")
    test_note = (", EMA" if state.ema is not None else "") + (
        f", {limited['batches']} of {limited['of']} batch{'es' * (limited['of'] > 1)}" if limited else ""
    )
    run.log_end(state.step, results, confusion, job.card.labels())
    console.print(
        results_table(
            "results",
            [
                best_line(job.monitor.name, state.best_epoch, state.best_metric),
                ("final train_loss", rows[-1]["train_loss"]),
                *((f"test_{k} (best.pt{test_note})", with_interval(v, ranges.get(k))) for k, v in test.items()),
                *(
                    (f"{k} (averaged.pt: {len(averaged['epochs'])} epochs)", v)
                    for k, v in (averaged or {}).items()
                    if k.startswith("test_")
                ),
                *baseline_rows(baselines, job.task.metric),
                *(
                    [("stopped by", f"{state.stopped_by} at epoch {state.epoch}, step {state.step}")]
                    if state.stopped_by
                    else []
                ),
                ("throughput", speed_line(speed)),
                time_row(summary["timings"]),
            ],
        )
    )
    if job.recipe.overfit_batches:
        console.print(verdict)
    losing = trivial_verdict(tested, baselines, job.task.metric)
    if losing:
        console.print(losing)
    console.print(f"run directory: {run.path}", soft_wrap=True)
    return summary
