"""init_from=: a new run that starts from a run's weights (runner/training/init_from.py), with the output layer
re-initialised when the number of classes changes, and everything else refused by name before anything is written."""

import csv
import fcntl
import hashlib
import json
import shlex
from pathlib import Path

import pytest
import torch
from conftest import assert_clean_failure, digest, once_per_session, runner, summary

FIRST = ["dataset.classes=[0,1,2,3,4,5]", "dataset.num_classes=6"]  # pretrain on six digits
THEN = ["dataset.classes=[6,7,8,9]", "dataset.num_classes=4", "trainer.epochs=1"]  # fine-tune on the other four


@pytest.fixture(scope="session")
def runs(tmp_path_factory, worker_id):
    """A CNN trained 3 epochs on digits 0-5 ("pre"); then one epoch on digits 6-9 from its weights ("ft") and from
    scratch ("scratch"): (their cwd, what ft printed). Made once per session, however many workers read them; a test
    that runs a command there works in its own tmp_path."""

    def make(cwd):
        runner("train", *FIRST, "trainer.epochs=3", "hydra.run.dir=pre", cwd=cwd)
        ft = runner("train", *THEN, "init_from=pre", "hydra.run.dir=ft", cwd=cwd)
        runner("train", *THEN, "hydra.run.dir=scratch", cwd=cwd)
        (cwd / "ft.stdout").write_text(ft.stdout)

    cwd = once_per_session(tmp_path_factory, worker_id, "finetune", make)
    return cwd, (cwd / "ft.stdout").read_text()


def test_a_new_run_starts_from_another_runs_weights_with_a_new_head(runs):
    cwd, ft_stdout = runs
    best = cwd / "pre" / "checkpoints" / "best.pt"
    assert (
        f"init_from: 24 tensors loaded from {best} (sha256 {hashlib.sha256(best.read_bytes()).hexdigest()[:12]})"
        in ft_stdout
    )
    assert "init_from: re-initialised (the output layer's size changed): head.3.weight, head.3.bias" in ft_stdout
    record = summary(cwd / "ft")["init_from"]
    assert record == {
        "source": str(best),
        "sha256": hashlib.sha256(best.read_bytes()).hexdigest(),
        "kept": 24,  # every tensor of the CNN's state_dict but the two of its last layer
        "reinitialised": ["head.3.weight", "head.3.bias"],
    }
    kept = torch.load(cwd / "pre" / "checkpoints" / "best.pt", weights_only=True)
    assert len(kept) == 26 and kept["head.3.weight"].shape == (6, 64)  # preconditions of the figures above
    assert "init_from" not in summary(cwd / "scratch")
    # Golden results, deterministic on CPU (re-pin from the two runs' summary.json when a change means to move
    # them): after one epoch on digits 6-9 (143 test samples), the pretrained backbone is 121 right, scratch 117.
    assert summary(cwd / "ft")["test"]["test_accuracy"] == 121 / 143
    assert summary(cwd / "scratch")["test"]["test_accuracy"] == 117 / 143


def test_a_fine_tuned_run_is_evaluated_predicted_exported_and_diffed_like_any(runs, tmp_path):
    cwd, _ = runs
    ft = cwd / "ft"
    accuracy = summary(ft)["test"]["test_accuracy"]
    proc = runner("eval", f"ckpt={ft}", cwd=tmp_path)
    evaluated = Path(proc.stdout.rpartition("eval directory: ")[2].strip()) / "metrics.json"
    assert json.loads(evaluated.read_text())["test_accuracy"] == accuracy
    assert f"{accuracy:.3f} [" in proc.stdout  # printed with its interval (runner/stats)
    runner("predict", f"ckpt={ft}", "input=test", "out=pred", cwd=tmp_path)
    with open(tmp_path / "pred" / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["label"] for r in rows} <= {"6", "7", "8", "9"}  # the new task's class names, from the model card
    assert sum(r["label"] == r["true_label"] for r in rows) == round(accuracy * len(rows))
    runner("export", f"ckpt={ft}", "format=safetensors", "out=exported", cwd=tmp_path)
    assert (tmp_path / "exported" / "model.safetensors").is_file()
    diff = json.loads(runner("diff", ft, cwd / "scratch", "--format", "json", cwd=tmp_path).stdout)
    assert {"key": "init_from", "a": "pre", "b": None} in diff["config"]
    sha = hashlib.sha256((cwd / "pre" / "checkpoints" / "best.pt").read_bytes()).hexdigest()
    assert {"metric": "init_from sha256", "a": sha, "b": "-", "b_minus_a": None} in diff["metrics"]  # "-": none


def test_init_from_a_safetensors_file_loads_the_same_weights(runs, tmp_path):
    from safetensors.torch import save_file

    cwd, _ = runs
    save_file(torch.load(cwd / "pre" / "checkpoints" / "best.pt", weights_only=True), tmp_path / "pre.safetensors")
    runner("train", *THEN, f"init_from={tmp_path / 'pre.safetensors'}", "hydra.run.dir=st", cwd=tmp_path)
    assert summary(tmp_path / "st")["test"] == summary(cwd / "ft")["test"]  # the same start, the same run


def test_init_from_cannot_change_on_resume(runs, tmp_path):
    cwd, _ = runs
    before = digest(cwd / "ft")
    proc = runner("train", f"resume={cwd / 'ft'}", f"init_from={cwd / 'scratch'}", cwd=tmp_path, check=False)
    assert_clean_failure(proc, "init_from", "where it started from is part of its history")
    assert digest(cwd / "ft") == before


def _fake_run(path, **summary_fields):
    (path / "checkpoints").mkdir(parents=True)
    (path / "summary.json").write_text(json.dumps({"kind": "train", **summary_fields}))
    return path


@pytest.mark.parametrize("which", ["architecture", "shapes", "missing", "corrupt", "running", "regression", "folder"])
def test_a_source_that_does_not_fit_is_refused_by_name_and_writes_nothing(runs, tmp_path, which):
    cwd, _ = runs
    source, phrases = {
        "architecture": (
            str(cwd / "pre"),
            [
                "does not fit this model",
                "the model has keys the weights lack: net.1.weight",
                "the weights have keys the model lacks: features.0.0.weight",
            ],
        ),
        "shapes": (str(cwd / "pre"), ["shapes differ: features.0.0.weight (32, 1, 3, 3) -> (8, 1, 3, 3)"]),
        "missing": ("nowhere.pt", ["init_from=nowhere.pt names nothing"]),
        "corrupt": ("corrupt.pt", ["cannot be read"]),
        "running": ("busy", ["is still training"]),
        "regression": ("regress", ["is a regression run, and this run is classification"]),
        "folder": ("plain", ["is a folder but not a runner training run"]),
    }[which]
    (tmp_path / "corrupt.pt").write_bytes(b"not a checkpoint")
    _fake_run(tmp_path / "regress", task="regression", status="completed")
    (tmp_path / "plain").mkdir()
    busy = _fake_run(tmp_path / "busy", task="classification", status="running")
    model = {"architecture": ["model=mlp"], "shapes": ["model.channels=[8,16]"]}.get(which, [])  # pre: a CNN [32,64]
    with open(busy / ".lock", "w") as lock:  # held as a live run's process holds it
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        before = digest(tmp_path)
        proc = runner("train", *THEN, *model, f"init_from={source}", "hydra.run.dir=new", cwd=tmp_path, check=False)
    assert_clean_failure(proc, *phrases)
    assert {p: h for p, h in digest(tmp_path).items() if p.parts[0] != "new"} == before  # every source as it was
    assert summary(tmp_path / "new")["status"] == "failed"  # refused in setup, recorded as any refused run
    assert not (tmp_path / "new" / "checkpoints").exists()


def _weights(path):
    loaded = torch.load(path, weights_only=True)
    return loaded.get("model", loaded)


def test_frozen_parameters_and_their_batchnorm_statistics_stay_as_they_were(runs, tmp_path):
    cwd, _ = runs
    pre = _weights(cwd / "pre" / "checkpoints" / "best.pt")
    frozen = ["trainer.freeze=[features]", "trainer.epochs=2"]
    runner("train", *THEN, f"init_from={cwd / 'pre'}", *frozen, "hydra.run.dir=frozen", cwd=tmp_path)
    after = _weights(tmp_path / "frozen" / "checkpoints" / "last.pt")
    features = [k for k in pre if k.startswith("features.")]
    assert len(features) == 24 and any(k.endswith("running_mean") for k in features)  # BatchNorm's statistics too
    assert all(torch.equal(pre[k], after[k]) for k in features)  # bit for bit, after two epochs
    with open(tmp_path / "frozen" / "metrics.csv", newline="") as f:
        losses = [float(r["train_loss"]) for r in csv.DictReader(f)]
    assert losses[1] < losses[0]  # the head trained
    record = summary(tmp_path / "frozen")
    assert record["frozen"] == {"parameters": 65184, "tensors": 12, "unfreeze_at_epoch": None}
    assert record["trainable_params"] == record["params"] - 65184

    # unfrozen from epoch 2: epoch 1 leaves the features as they were, epoch 2 trains them; the same when epoch 2 is
    # a resume of a run that stopped after epoch 1
    gradual = [f"init_from={cwd / 'pre'}", "trainer.freeze=[features]", "trainer.unfreeze_at_epoch=2"]
    runner("train", *THEN, *gradual, "trainer.epochs=2", "hydra.run.dir=whole", cwd=tmp_path)
    proc = runner("train", *THEN, *gradual, "hydra.run.dir=cut", cwd=tmp_path)  # THEN: one epoch
    out = " ".join(proc.stdout.split())
    assert "frozen: 65,184 of" in out and "(12 tensors, trainer.freeze) until epoch 2" in out
    assert "trainer.unfreeze_at_epoch=2 comes after the run's last epoch (trainer.epochs=1): it ends frozen" in out
    one = _weights(tmp_path / "cut" / "checkpoints" / "last.pt")
    assert all(torch.equal(pre[k], one[k]) for k in features)
    proc = runner("train", "resume=cut", "trainer.epochs=2", cwd=tmp_path)
    assert "epoch 2: trainer.unfreeze_at_epoch, every parameter trains from here on" in proc.stdout
    two = _weights(tmp_path / "cut" / "checkpoints" / "last.pt")
    assert all(not torch.equal(pre[k], two[k]) for k in features if not k.endswith("num_batches_tracked"))
    whole = _weights(tmp_path / "whole" / "checkpoints" / "last.pt")
    assert all(torch.equal(whole[k], two[k]) for k in whole)

    # what trains is part of the run's history: not changed on a resume
    before = digest(tmp_path / "cut")
    proc = runner("train", "resume=cut", "trainer.epochs=3", "trainer.freeze=[head]", cwd=tmp_path, check=False)
    assert_clean_failure(proc, "trainer.freeze", "which parameters trained in which epoch is part of the run")
    assert digest(tmp_path / "cut") == before


@pytest.mark.parametrize(
    ("settings", "phrase"),
    [
        (["trainer.freeze=[backbone]"], "trainer.freeze pattern 'backbone' matches no parameter of this model. Its "
         "modules are: features, head"),
        (["trainer.unfreeze_at_epoch=2"], "trainer.unfreeze_at_epoch=2 unfreezes nothing: trainer.freeze is empty"),
        (["trainer.freeze=features"], "trainer.freeze"),
        (["trainer.freeze=[features,head]"], "trainer.freeze=['features', 'head'] freezes every parameter that "
         "trains: nothing would learn"),
    ],
)  # fmt: skip
def test_a_freeze_that_cannot_be_done_is_refused(tmp_path, settings, phrase):
    proc = runner("train", "trainer.epochs=1", *settings, "hydra.run.dir=r", cwd=tmp_path, check=False)
    assert_clean_failure(proc, phrase)
    assert not (tmp_path / "r" / "checkpoints").exists()


@pytest.mark.slow
def test_a_mid_epoch_resume_with_frozen_and_unfrozen_layers_equals_the_uninterrupted_run(tmp_path):
    from conftest import SIGNAL_CNN, WITH_SIGNAL_MODEL, same_run, signal_at

    args = [*SIGNAL_CNN, "trainer.epochs=3", "trainer.freeze=[features]", "trainer.unfreeze_at_epoch=2"]
    args += ["optimizer.param_groups=[{params: [head], lr: 0.01}]", "scheduler=cosine"]  # and a head at 10x
    runner("train", *args, "hydra.run.dir=whole", cwd=tmp_path, env=WITH_SIGNAL_MODEL)
    proc = runner("train", *args, "hydra.run.dir=cut", cwd=tmp_path, env=signal_at("step:30"), check=False)
    assert proc.returncode == 130 and summary(tmp_path / "cut")["status"] == "interrupted"
    assert torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1  # in epoch 2
    runner("train", "resume=cut", cwd=tmp_path, env=WITH_SIGNAL_MODEL)
    same_run(tmp_path / "whole", tmp_path / "cut")


def test_a_parameter_group_trains_at_its_own_rate(runs, tmp_path):
    cwd, _ = runs
    group = "optimizer.param_groups=[{params: [head], lr: 0.01, weight_decay: 0.0001}]"  # Adam's lr is 0.001
    runner("train", *THEN, f"init_from={cwd / 'pre'}", group, "hydra.run.dir=groups", cwd=tmp_path)
    last = torch.load(tmp_path / "groups" / "checkpoints" / "last.pt", weights_only=True)
    groups = last["optimizer"]["param_groups"]
    assert [(g["lr"], g["weight_decay"], len(g["params"])) for g in groups] == [(0.001, 0.0, 12), (0.01, 0.0001, 2)]
    with open(tmp_path / "groups" / "metrics.csv", newline="") as f:
        assert [float(r["lr"]) for r in csv.DictReader(f)] == [0.001]  # metrics.csv's lr: the first group's
    before = digest(tmp_path / "groups")
    proc = runner("train", "resume=groups", "trainer.epochs=2", "optimizer.param_groups=[]", cwd=tmp_path, check=False)
    assert_clean_failure(proc, "optimizer.param_groups", "parameter groups")
    assert digest(tmp_path / "groups") == before
    # a new optimizer.lr on resume reaches the groups that take the optimizer's own, not the head's 0.01 (as a new run
    # with the same config builds them); weight_decay likewise
    runner(
        "train",
        "resume=groups",
        "trainer.epochs=2",
        "optimizer.lr=0.0005",
        "optimizer.weight_decay=0.001",
        cwd=tmp_path,
    )
    groups = torch.load(tmp_path / "groups" / "checkpoints" / "last.pt", weights_only=True)["optimizer"]["param_groups"]
    assert [(g["lr"], g["weight_decay"]) for g in groups] == [(0.0005, 0.001), (0.01, 0.0001)]


@pytest.mark.parametrize(
    ("groups", "phrase"),
    [
        ("[{params: [backbone], lr: 0.01}]", "optimizer.param_groups[0] pattern 'backbone' matches no parameter"),
        ("[{lr: 0.01}]", "optimizer.param_groups[0] = {'lr': 0.01} has no `params` list of name patterns"),
        ("[{params: [head], lrr: 0.01}]", "optimizer.param_groups[0] sets lrr, which is not an option of torch.optim"),
        ("[{params: [head]}, {params: [head.3], lr: 0.1}]", "optimizer.param_groups[1] selects head.3.weight, which an "
         "earlier group already has"),
    ],
)  # fmt: skip
def test_a_parameter_group_that_cannot_be_built_is_refused(tmp_path, groups, phrase):
    proc = runner("train", "trainer.epochs=1", f"optimizer.param_groups={groups}", "hydra.run.dir=r", cwd=tmp_path,
                  check=False)  # fmt: skip
    assert_clean_failure(proc, phrase)
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_freezing_logs_what_it_froze_and_unfreezing_gives_back_only_what_the_model_trained():
    # FastNet freezes its BatchNorm scales itself (airbench): trainer.unfreeze_at_epoch must not make them train
    from runner.models import FastNet
    from runner.training.freezing import Freezer

    model = FastNet()
    own = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert own  # the precondition: the model has parameters it never trains
    freezer = Freezer(model, ["net.0"], 2)
    freezer.at(1)
    assert {n for n, p in model.named_parameters() if not p.requires_grad} == own | {"net.0.weight", "net.0.bias"}
    freezer.at(2)
    assert {n for n, p in model.named_parameters() if not p.requires_grad} == own
    total = sum(p.numel() for p in model.parameters())
    # net.0 is the 2x2 stem from 3 to 24 channels: 24 * 3 * 2 * 2 weights and 24 biases = 312
    assert freezer.line() == f"frozen: 312 of {total:,} parameters (2 tensors, trainer.freeze) until epoch 2"


@pytest.mark.parametrize(("max_lr", "peaks"), [("${optimizer.lr}", [0.001, 0.01]), (0.002, [0.002, 0.02])])
def test_onecycle_peaks_each_parameter_group_at_its_own_rate(max_lr, peaks):
    # OneCycleLR copies one max_lr into every group: the head at lr 0.01 peaked at the backbone's 0.001. A
    # scheduler.max_lr of its own scales every group alike, as optimizer.lr does
    from pathlib import Path

    from omegaconf import OmegaConf

    from runner.training.build import build_optimizer
    from runner.training.schedules import build_schedule

    configs = Path(__file__).resolve().parent.parent / "configs"
    cfg = OmegaConf.create({"optimizer": OmegaConf.load(configs / "optimizer" / "adam.yaml")})
    cfg.scheduler = OmegaConf.load(configs / "scheduler" / "onecycle.yaml")
    cfg.optimizer.param_groups = [{"params": ["head"], "lr": 0.01}]
    cfg.scheduler.max_lr = max_lr
    model = torch.nn.ModuleDict({"backbone": torch.nn.Linear(3, 3), "head": torch.nn.Linear(3, 2)})
    optimizer = build_optimizer(cfg.optimizer, model)
    schedule = build_schedule(cfg.scheduler, optimizer, steps_per_epoch=10, epochs=2)
    lrs = []
    for _ in range(20):
        lrs.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        schedule.after_step()
    backbone, head = zip(*lrs)
    # each peaks at its own rate, at the same step (pct_start 0.25 of 20: the 5th), from a 25th of it
    assert [max(backbone), max(head)] == pytest.approx(peaks, rel=1e-12)
    assert backbone.index(max(backbone)) == head.index(max(head)) == 4
    assert [backbone[0], head[0]] == pytest.approx([p / 25 for p in peaks], rel=1e-12)


def test_the_overrides_init_from_suggests_for_inputs_read_otherwise_are_accepted_as_typed(runs, tmp_path):
    # "pre" normalised by its own split's statistics; this run by fixed ones (as the tutorials' 0.5, 0.5)
    cwd, _ = runs
    start = [
        "train",
        *THEN,
        "trainer.max_steps=1",
        f"init_from={cwd / 'pre'}",
        "dataset.normalize={mean:[0.5],std:[0.5]}",
    ]
    proc = runner(*start, "hydra.run.dir=a", cwd=tmp_path)
    (line,) = [line for line in proc.stdout.splitlines() if "read its inputs otherwise" in line]
    assert "init_from: the source run read its inputs otherwise (the mean and std: see" in line
    fixes = shlex.split(line.split("To read them as it did, add: ")[1])  # as a shell would pass them
    assert [f.split("=")[0] for f in fixes] == ["dataset.normalize"]
    # typed as suggested (no +): accepted, and the inputs are read as the source read them, so no line
    again = runner(*start, *fixes, "hydra.run.dir=b", cwd=tmp_path)
    assert "read its inputs otherwise" not in again.stdout
    pre = json.loads((cwd / "pre" / "checkpoints" / "model.json").read_text())["preprocessing"]
    now = json.loads((tmp_path / "b" / "checkpoints" / "model.json").read_text())["preprocessing"]
    for stat in ("mean", "std"):  # the suggestion's 6 significant digits
        assert torch.tensor(now[stat]).flatten().tolist() == pytest.approx(
            torch.tensor(pre[stat]).flatten().tolist(), rel=1e-5
        )
