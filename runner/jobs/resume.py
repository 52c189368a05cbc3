"""`runner train resume=RUN_DIR`: continue a run in its own directory from checkpoints/last.pt.

    runner train resume=outputs/2026-11-22/10-31-07                     # where it stopped
    runner train resume=outputs/2026-11-22/10-31-07 trainer.epochs=20   # and further
    runner train resume=outputs/2026-11-22/10-31-07 optimizer.lr=1e-4   # with a lower learning rate

The run's own config comes from last.pt. Each override on the command line is looked up in
RESUME_OVERRIDES: it is either applied for real to the continuing run, or refused, with the
reason, before anything in the run directory is touched.
"""

from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from runner.checkpoint import run_config
from runner.config import apply_overrides
from runner.errors import RunnerError
from runner.serialization import safe_load

# What `resume=RUN KEY=VALUE` does with each key; the first pattern that matches decides.
# (pattern, applied, what it does when applied / why it is refused). A key no pattern matches is refused.
RESUME_OVERRIDES = [
    ("trainer.epochs", True, "trains on to this many epochs: no fewer than last.pt holds, more than a completed run has"),
    ("trainer.batch_size", True, "from the next epoch on; refused when last.pt was saved mid-epoch"),
    ("trainer.eval_batch_size", True, "for validation and the final test"),
    ("trainer.grad_clip", True, "from the next step"),
    ("trainer.checkpoint_every_n_steps", True, "from the next step"),
    ("trainer.log_every_n_steps", True, "from the next step"),
    ("trainer.num_threads", True, "torch's CPU threads"),
    ("trainer.compile", True, "torch.compile, or not"),
    ("trainer.channels_last", True, "the memory format (the same values, laid out differently)"),
    ("trainer.deterministic", True, "torch.use_deterministic_algorithms"),
    ("device", True, "where the run continues: its weights and optimizer state are moved there"),
    ("device.*", True, "where the run continues: its weights and optimizer state are moved there"),
    ("dataset.root", True, "where the same data is read from"),
    ("dataset.download", True, "whether missing files may be downloaded"),
    ("dataset.workers", True, "decoding processes"),
    ("dataset.in_memory", True, "decoded into memory, or streamed"),
    ("dataset.memory_limit_gb", True, "decoded into memory, or streamed"),
    ("optimizer", False, "last.pt holds the state of the run's own optimizer, which another cannot take over"),
    ("optimizer._*", False, "last.pt holds the state of the run's own optimizer, which another cannot take over"),
    ("optimizer.*", True, "set on the restored optimizer (lr, momentum, weight_decay, betas...); "
                          "with a scheduler, a new lr becomes its base from here on"),
    ("scheduler", False, "last.pt holds the run's schedule, which another schedule cannot continue"),
    ("scheduler.*", False, "last.pt holds the run's schedule, which another schedule cannot continue"),
    ("model", False, "a resumed run keeps its model: last.pt holds that architecture's weights"),
    ("model.*", False, "a resumed run keeps its model: last.pt holds that architecture's weights"),
    ("dataset", False, "it would change the data the run trains on"),
    ("dataset.*", False, "it would change the data the run trains on"),
    ("seed", False, "every RNG state is restored from last.pt, so a seed would change nothing"),
    ("trainer.precision", False, "the loss scale and the numerics in last.pt belong to the run's precision"),
    ("trainer.monitor", False, "best.pt and the best epoch so far were chosen by the run's own metric"),
    ("trainer.monitor_mode", False, "best.pt and the best epoch so far were chosen by the run's own metric"),
]


def resume_rule(key):
    """(applied, text) for an override of `key` on a resumed run."""
    for pattern, applied, text in RESUME_OVERRIDES:
        if fnmatchcase(key, pattern):
            return applied, text
    return False, "it is not a setting a resumed run can change"


@dataclass
class Resume:
    """What a resumed run continues from: its config with the overrides applied, and its last.pt."""

    cfg: object
    checkpoint: dict
    changes: dict = field(default_factory=dict)  # key -> (value in the run, value from now on)

    def restore(self, state):
        """Load last.pt into `state`, then apply the overridden optimizer settings for real."""
        state.load_state_dict(self.checkpoint)
        for key, (_, new) in self.changes.items():
            if key.startswith("optimizer."):
                set_optimizer_value(state.optimizer, state.scheduler, key.split(".", 1)[1], new)


def _value(cfg, key):
    value = OmegaConf.select(cfg, key)
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def set_optimizer_value(optimizer, scheduler, name, value):
    for group in optimizer.param_groups:
        if name not in group:
            settings = ", ".join(k for k in group if k != "params")
            raise RunnerError(f"resume: optimizer.{name} is not a setting of {type(optimizer).__name__} "
                              f"(it has: {settings}). Drop it, or start a new run.")
        group[name] = tuple(value) if isinstance(group[name], tuple) else value
    if name == "lr" and scheduler is not None:
        scheduler.base_lrs = [value for _ in optimizer.param_groups]


def plan_resume(cfg, last, status, overrides):
    """Check a resume of the run whose last.pt is `last` and whose state is `status`; write nothing."""
    ckpt = safe_load(last)
    if not isinstance(ckpt, dict) or not {"config", "optimizer", "epoch", "batch", "rng"} <= set(ckpt):
        raise RunnerError(f"{last} is not a runner training checkpoint (no optimizer, counters or config). It cannot be resumed.")
    parsed = zip(overrides, OverridesParser.create().parse_overrides(list(overrides)))
    given = [(text, o.key_or_group) for text, o in parsed if o.key_or_group != "resume" and not o.key_or_group.startswith("hydra")]
    saved = run_config(ckpt["config"])
    run_cfg = apply_overrides(OmegaConf.create(OmegaConf.to_container(saved)), cfg, overrides)
    OmegaConf.update(run_cfg, "resume", str(last.parent.parent), force_add=True)
    changes = {}
    for override, key in given:  # an override that repeats the run's own value (the same command again) changes nothing
        old, new = (_value(c, key) for c in (saved, run_cfg))
        if old == new:
            continue
        applied, why = resume_rule(key)
        if not applied:
            raise RunnerError(f"resume: '{override}' is refused: {why}. Start a new run for it; on resume only the "
                              f"settings in the README's resume table (epochs, device, optimizer values, where the data is) may change.")
        changes[key] = (old, new)
    done, epochs = ckpt["epoch"], run_cfg.trainer.epochs
    if status == "completed" and epochs <= done:
        raise RunnerError(f"resume: the run already completed its {done} epochs. To train it further, add "
                          f"trainer.epochs={done + 10} (or any number above {done}).")
    if epochs < done:
        raise RunnerError(f"resume: trainer.epochs={epochs} is fewer than the {done} epochs last.pt holds. "
                          f"Give trainer.epochs={done} or more.")
    if ckpt["batch"] and "trainer.batch_size" in changes:
        raise RunnerError(f"resume: last.pt was saved in the middle of epoch {done + 1} (after {ckpt['batch']} batches of "
                          f"{changes['trainer.batch_size'][0]}), and that epoch must finish with the batches it began with. "
                          f"Resume without trainer.batch_size, let it finish an epoch, then change it.")
    return Resume(run_cfg, ckpt, changes)
