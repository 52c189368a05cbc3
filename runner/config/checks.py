"""Checking a composed config before anything runs: types, ranges, and `_target_` signatures.

Hydra already refuses unknown keys and unknown group options; what it cannot know is that
`trainer.epochs=ten` is not a number, that a learning rate must be positive, or that
`+model.widht=3` is not an argument of the model class. That is checked here, against the
callables themselves (like torchtune's `tune validate`), without building anything.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf

from runner.io.errors import RunnerError
from runner.training.build import PIPELINE_KEYS
from runner.training.metrics import TASKS, check_figures
from runner.training.recipe import KNOBS, is_int, is_number, trainer_keys
from runner.training.schedules import SCHEDULE_KEYS, check_schedule

_SPECIAL_KEYS = {"_target_", "_partial_", "_convert_", "_recursive_", "_args_"}


def typed(example: object) -> object:
    """A value as it is typed on a command line: a list without spaces ([1,1,3]), which the shell keeps whole."""
    if isinstance(example, (list, tuple)):
        return "[" + ",".join(str(v) for v in example) + "]"
    return example


# (key, test, what it must be, an example to type instead); keys absent from the config are skipped.
# The trainer's come from its declarations (training/recipe.py).
RULES: list[tuple[str, Callable[[Any], object], str, str]] = [
    *((k.path, k.accepts, k.accepts.words, f"{k.path}={typed(k.example)}") for k in KNOBS),
    ("seed", lambda v: is_int(v) and v >= 0, "a non-negative integer", "seed=0"),
    ("optimizer.lr", lambda v: is_number(v) and v > 0, "a number > 0", "optimizer.lr=0.01"),
    ("optimizer.weight_decay", lambda v: is_number(v) and v >= 0, "a number >= 0", "optimizer.weight_decay=0.0001"),
    ("optimizer.momentum", lambda v: is_number(v) and 0 <= v < 1, "a number in [0, 1)", "optimizer.momentum=0.9"),
    ("dataset.task", lambda v: v in TASKS, f"one of {', '.join(TASKS)}", "dataset.task=classification"),
    ("dataset.root", lambda v: isinstance(v, str) and v != "", "a directory", "dataset.root=$HOME/pets"),
    ("dataset.num_classes", lambda v: is_int(v) and v >= 1, "an integer >= 1", "dataset.num_classes=10"),
    (
        "dataset.input_shape",
        lambda v: isinstance(v, list) and v and all(is_int(d) and d >= 1 for d in v),
        "a list of positive integers",
        "dataset.input_shape=[1,28,28]",
    ),
    (
        "dataset.val_fraction",
        lambda v: is_number(v) and 0 <= v < 1,
        "a fraction between 0 and 1 (0: no validation split, best.pt is the last epoch)",
        "dataset.val_fraction=0.1",
    ),
    ("dataset.sampler", lambda v: v in (None, "balanced"), "null or balanced", "dataset.sampler=balanced"),
    (
        "dataset.test_fraction",
        lambda v: is_number(v) and 0 < v < 1,
        "a fraction between 0 and 1",
        "dataset.test_fraction=0.2",
    ),
    ("dataset.size", lambda v: is_int(v) and v >= 2, "an integer >= 2", "dataset.size=1024"),
    (
        "dataset.augment.crop_padding",
        lambda v: is_int(v) and v >= 0,
        "an integer >= 0",
        "dataset.augment.crop_padding=4",
    ),
    ("dataset.augment.flip", lambda v: isinstance(v, bool), "true or false", "dataset.augment.flip=true"),
    ("dataset.in_memory", lambda v: v in ("auto", True, False), "auto, true or false", "dataset.in_memory=auto"),
    (
        "device.name",
        lambda v: isinstance(v, str) and v.split(":")[0] in ("auto", "cpu", "cuda", "mps"),
        "auto, cpu, cuda, cuda:N or mps",
        "device=cpu",
    ),
]


def _example(key: str) -> str:
    return next((example for k, _, _, example in RULES if k == key), f"{key}=VALUE")


def _runner_error_in(err: BaseException) -> RunnerError | None:
    """The RunnerError a resolver of ours raised somewhere inside `err`, or None."""
    cause: BaseException | None = err
    while cause is not None and not isinstance(cause, RunnerError):
        cause = cause.__cause__ or cause.__context__
    return cause


def pin_input_shape(cfg: DictConfig) -> None:
    """A dataset.input_shape that one resolver gives as a whole list (dataset=arrays' ${arrays:input_shape}: as many
    dimensions as the file's x has; any kind's of data/kinds.py, or a user's own) replaced by its value, so that model
    configs can index it (${dataset.input_shape[0]}): OmegaConf cannot index into a resolver's result. A RunnerError
    the resolver raises (a bad file) reaches the user as itself."""
    node = cfg.get("dataset")
    if node is None or "input_shape" not in node or not OmegaConf.is_interpolation(node, "input_shape"):
        return
    try:
        shape = list(node.input_shape)
    except Exception as err:
        cause = _runner_error_in(err)
        if cause is not None:
            raise cause from None
        # check_resolves names the key
        return
    node.input_shape = shape


def check_resolves(cfg: DictConfig) -> None:
    """Every interpolation in `cfg` resolves (a key may refer to itself: trainer.epochs=${trainer.epochs})."""
    from omegaconf.errors import InterpolationToMissingValueError, MissingMandatoryValue

    try:
        OmegaConf.to_container(cfg, resolve=True)
    except (MissingMandatoryValue, InterpolationToMissingValueError):
        return  # a ??? left unset: check_config names the key and an example
    except Exception as err:
        cause = _runner_error_in(err)
        if cause is not None:
            raise cause from None
        key = getattr(err, "full_key", None) or "the config"
        reason = str(err).strip().splitlines()[0].rstrip(".")
        raise RunnerError(
            f"{key} cannot be resolved: {reason}. Give it a plain value on the command line, e.g. {_example(key)}."
        ) from None


# Closed sets: keys runner itself reads. Anything else in them is a typo that would silently change
# nothing (`+trainer.epoch=1`); anything missing was deleted (`~trainer.epochs`).
CLOSED = {
    "": ("dataset", "model", "optimizer", "scheduler", "device", "trainer", "seed", "resume", "init_from", "logger"),
    "trainer": trainer_keys(),
    "trainer.early_stopping": trainer_keys("early_stopping"),
    "trainer.ema": trainer_keys("ema"),
    "dataset.augment": ("crop_padding", "flip"),
}


def unknown_key(key: str, allowed: Sequence[str]) -> str:
    """The message for a dotted `key` that is not among `allowed` (the keys beside it), with the nearest one."""
    parent, _, leaf = key.rpartition(".")
    near = difflib.get_close_matches(leaf, allowed, n=1)
    hint = f"Did you mean {parent + '.' if parent else ''}{near[0]}? " if near else ""
    return (
        f"{key} is not a key runner reads, so it would change nothing. {hint}"
        f"The keys of {parent or 'the top level'} are: {', '.join(allowed)}."
    )


def command_keys(command: str) -> tuple[str, ...]:
    """The top-level keys of `runner COMMAND`'s config (configs/COMMAND.yaml): its own and its groups'."""
    from importlib.resources import files

    # read as inference/loading.py reads trainer/default.yaml: a Traversable is not a path OmegaConf.load takes
    own = OmegaConf.create(files("runner.configs").joinpath(f"{command}.yaml").read_text())
    # every configs/COMMAND.yaml is a mapping
    assert isinstance(own, DictConfig)
    groups = [
        next(iter(d)) for d in own.get("defaults", []) if OmegaConf.is_dict(d) and "override" not in next(iter(d))
    ]
    return (*groups, *(str(k) for k in own if k not in ("defaults", "hydra")))


def check_keys(cfg: DictConfig, top: Sequence[str] | None = None) -> None:
    """A config holds exactly the keys runner reads at the top level (`top`: a fresh run's by default; eval's,
    predict's, export's: command_keys), in trainer and in dataset.augment: a key added with `+key=` that nothing
    reads is refused, not ignored."""
    closed = {**CLOSED, "": top} if top else CLOSED
    for path, allowed in closed.items():
        node = OmegaConf.select(cfg, path) if path else cfg
        if node is None:
            continue
        prefix = f"{path}." if path else ""
        for key in map(str, node):
            if key not in allowed:
                raise RunnerError(unknown_key(f"{prefix}{key}", allowed))
        if path in ("trainer", "trainer.early_stopping", "trainer.ema") or (path == "" and not top):
            missing = [k for k in allowed if k not in node and k not in ("resume", "init_from", "logger")]
            if missing:
                raise RunnerError(
                    f"{prefix}{missing[0]} is missing from the config (deleted with ~{prefix}{missing[0]}?); "
                    f"runner needs it. Override its value instead, e.g. {_example(prefix + missing[0])}."
                )


def check_config(cfg: DictConfig, groups: Sequence[str] = ("dataset", "model", "optimizer", "scheduler")) -> None:
    """Raise RunnerError on the first value or `_target_` argument that cannot work."""
    for rule in RULES:
        _check_rule(cfg, *rule)
    _check_monitor_and_groups(cfg, groups)


def checked_value(cfg: DictConfig, key: str) -> Any:
    """cfg's value of `key` (one of RULES'), checked as check_config checks it: for what must be read before the
    whole config is (trainer.ddp_timeout, before the processes of a job meet)."""
    _check_rule(cfg, *next(rule for rule in RULES if rule[0] == key))
    return OmegaConf.select(cfg, key)


def _check_rule(cfg: DictConfig, key: str, test: Callable[[Any], object], must_be: str, example: str) -> None:
    node = OmegaConf.select(cfg, key.rsplit(".", 1)[0]) if "." in key else cfg
    # keys() includes ??? values; `in` does not
    if node is None or key.rsplit(".", 1)[-1] not in node.keys():  # noqa: SIM118
        return
    if OmegaConf.is_missing(node, key.rsplit(".", 1)[-1]):
        raise RunnerError(f"{key} must be set: it has no default. Give it on the command line, e.g. {example}.")
    try:
        value = OmegaConf.select(cfg, key, throw_on_missing=True)
    except Exception as err:  # an interpolation that does not resolve, a ??? left unset
        cause = _runner_error_in(err)
        if cause is not None:  # a resolver of ours said what is wrong (e.g. count_classes)
            raise cause from None
        raise RunnerError(f"{key} cannot be resolved: {err}. Set it on the command line, e.g. {example}.") from None
    if isinstance(value, (list, dict)) or OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    if not test(value):
        raise RunnerError(f"{key} must be {must_be}, got {value!r}. Type it as, for example, {example}.")


def _check_monitor_and_groups(cfg: DictConfig, groups: Sequence[str]) -> None:
    task = TASKS[cfg.dataset.task] if "dataset" in cfg and cfg.dataset.get("task") in TASKS else None
    if task:
        check_figures(cfg.dataset.task, cfg.dataset.get("num_classes"), cfg.get("trainer"))
    if task:
        check_imbalance(cfg.dataset.task, cfg.dataset.get("num_classes"), cfg.get("trainer"), cfg.dataset)
    if task and task.metric != "accuracy" and OmegaConf.select(cfg, "trainer.label_smoothing"):
        raise RunnerError(
            f"trainer.label_smoothing={cfg.trainer.label_smoothing} smooths class labels, but this is a "
            f"{cfg.dataset.task} run (MSE on values). Drop it, or set trainer.label_smoothing=0."
        )
    if "scheduler" in cfg and "scheduler" in groups:
        check_schedule(cfg.scheduler)
    for group in groups:
        check_target(group, cfg[group])


def check_imbalance(task: str, num_classes: object, trainer: Any, dataset: Any) -> None:
    """trainer.class_weights and dataset.sampler=balanced weigh classes: refused for a regression, and a list of weights
    must have one per class (dataset.num_classes)."""
    weights: Any = OmegaConf.select(trainer, "class_weights") if trainer is not None else None
    sampler = dataset.get("sampler")
    if task != "classification":
        if weights is not None:
            raise RunnerError(
                f"trainer.class_weights={typed(list(weights)) if OmegaConf.is_list(weights) else weights} weighs "
                f"classes in the cross-entropy, but this is a {task} run (MSE on values, no classes). Drop it, or set "
                f"dataset.task=classification if the targets are class labels."
            )
        if sampler is not None:
            raise RunnerError(
                f"dataset.sampler={sampler} draws every class equally often, but this is a {task} run (values, no "
                f"classes). Drop it (dataset.sampler=null), or set dataset.task=classification if the targets are "
                f"class labels."
            )
        return
    if OmegaConf.is_list(weights) and is_int(num_classes) and len(weights) != num_classes:
        raise RunnerError(
            f"trainer.class_weights={typed(list(weights))} gives {len(weights)} weight{'s' * (len(weights) != 1)}, "
            f"and the dataset has {num_classes} classes: give one per class, in the order of the class indices (e.g. "
            f"trainer.class_weights={typed([1] * num_classes)}), or trainer.class_weights=balanced to weigh each "
            f"class by n / (k * n_c) on the training split."
        )


def check_target(group: str, node: DictConfig) -> None:
    """`node._target_` imports, and the node's keys are arguments its callable takes."""
    target = node.get("_target_")
    if target is None:
        return
    try:
        fn = get_object(target)
    except Exception as err:
        reason = str(err).strip().splitlines()[0]
        raise RunnerError(
            f"{group}._target_ '{target}' cannot be imported ({reason}). Check the spelling, and that its "
            f"module is importable from here (installed, or on PYTHONPATH)."
        ) from None
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return  # some builtins have no signature to check against
    own = {"dataset": PIPELINE_KEYS, "scheduler": SCHEDULE_KEYS, "optimizer": ("param_groups",)}.get(group, ())
    keys = [str(k) for k in node if k not in _SPECIAL_KEYS and k not in own]
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    unknown = [k for k in keys if k not in params and not takes_any]
    if unknown:
        accepted = ", ".join(n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))
        raise RunnerError(
            f"{group}.{unknown[0]} is not an argument of {target} (it takes: {accepted}). "
            f"Remove it or fix the spelling."
        )
    required = [
        n for n, p in params.items() if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    if node.get("_partial_"):
        required = required[1:]  # the trainer supplies the first argument (parameters, optimizer)
    missing = [n for n in required if n not in keys]
    if missing:
        raise RunnerError(
            f"{group} needs {missing[0]} for {target}, but the config does not set it. "
            f"Add it to the YAML file or pass +{group}.{missing[0]}=VALUE."
        )


def apply_overrides(run_cfg: DictConfig, eval_cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """The run's config with this command line's overrides on top.

    `eval_cfg` was composed by Hydra from the same groups as training, so each override is
    already checked and, for a group (device=cpu), already loaded; copy what it names.
    """
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if key in ("ckpt", "resume") or key.startswith("hydra"):
            continue
        if override.is_delete():
            raise RunnerError(f"~{key}: deleting keys is not supported here. Override the value instead.")
        OmegaConf.update(run_cfg, key, OmegaConf.select(eval_cfg, key), merge=False, force_add=True)
    return run_cfg
