"""Trackers beside metrics.csv, which stays the record of truth: `logger=tensorboard`.

    runner train logger=tensorboard                  # <run>/tensorboard/: tensorboard --logdir outputs
    runner train -m optimizer.lr=0.1,0.01 logger=tensorboard   # the sweep's jobs side by side, with their hyperparameters

Everything is logged against the optimizer step (Lightning's x-axis): the training loss every
trainer.log_every_n_steps, each epoch's row of metrics.csv at the step that ended it, and at the
end the test metrics, the confusion matrix as a figure and the run's hyperparameters (the hparams
plugin, written into the run's own event directory so that a sweep's jobs line up in its table).
A resume opens the writer with purge_step = the step after last.pt's, so TensorBoard drops what a
process that then died logged after its checkpoint: no step appears twice.
"""

import math

from runner.errors import RunnerError

# metrics.csv's columns as TensorBoard tags
TAGS = {"train_loss": "train/loss", "val_loss": "val/loss", "lr": "train/lr", "epoch": "train/epoch",
        "epoch_time_s": "time/epoch_s", "train_samples_per_s": "time/train_samples_per_s"}


def _tag(column):
    return TAGS.get(column) or (f"val/{column[4:]}" if column.startswith("val_") else column)


def hparams(config, prefix=""):
    """The resolved config flattened to {dotted key: int, float, str or bool}, as the hparams plugin takes them."""
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(hparams(value, f"{prefix}{key}."))
        elif isinstance(value, (bool, int, float, str)):
            out[f"{prefix}{key}"] = value
        else:  # lists and nulls
            out[f"{prefix}{key}"] = str(value)
    return out


class TensorBoard:
    """A torch.utils.tensorboard.SummaryWriter in <run>/<dir>/."""

    def __init__(self, run_dir, options, purge_step=None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise RunnerError("logger=tensorboard needs the tensorboard package, which is not installed here. Install "
                              "runner's extra with pip install '.[tensorboard]' (make installs it), or drop logger=tensorboard.") from None
        self.writer = SummaryWriter(log_dir=str(run_dir / options.get("dir", "tensorboard")), purge_step=purge_step,
                                    flush_secs=options.get("flush_secs", 10))

    def log_step(self, step, loss):
        self.writer.add_scalar("train/loss_step", loss, step)

    def log_epoch(self, row, step):
        for column, value in row.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(_tag(column), value, step)

    def log_end(self, step, config, results, confusion=None, class_names=None):
        if confusion is not None:
            from runner.plots import confusion_figure

            self.writer.add_figure("test/confusion_matrix", confusion_figure(confusion, class_names), step)
        metrics = {f"hparam/{k}": v for k, v in results.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        self.writer.add_hparams(hparams(config), metrics, run_name=".")  # "." = this run's own event directory

    def close(self):
        self.writer.close()


KINDS = {"tensorboard": TensorBoard}


def open_loggers(logger_cfg, run_dir, purge_step=None):
    """The loggers `logger_cfg` (the composed `logger` node: {name: options}) turns on; [] for none."""
    return [KINDS[name](run_dir, options or {}, purge_step) for name, options in (logger_cfg or {}).items()]
